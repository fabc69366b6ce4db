package bench

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/taskwheel/tasks"
)

// The bare floors run on a table of their own, BareTable, that the
// benchmark creates beside the library's: the columns a queue's task
// needs, its primary key and the one index a claim needs (the due pending
// tasks by run time), and no trigger. The library's own table pays more
// per row (a dozen indexes for lists, counts, flow control and retention;
// on PostgreSQL a NOTIFY trigger), which is what the ratios to these
// floors show. SQLite keeps times as Unix microseconds, PostgreSQL as
// timestamptz, as the library does.
const BareTable = "bench_floor"

// bareSQL is the bare floors' statements for one dialect.
type bareSQL struct {
	create []string
	// insert takes (id, data); on SQLite also ?3, the clock.
	insert string
	// batch takes (ids, datas) as arrays on PostgreSQL; on SQLite it is a
	// head that batchRows completes.
	batch string
	// claim takes the limit (and on SQLite ?2, the clock) and returns ids.
	claim string
	// done takes the ids, as an array on PostgreSQL, as ?1.. on SQLite.
	done string
}

var bareSQLite = bareSQL{
	create: []string{
		`DROP TABLE IF EXISTS bench_floor`,
		`CREATE TABLE bench_floor (id TEXT PRIMARY KEY, state TEXT NOT NULL, run_at INTEGER NOT NULL,
	attempts INTEGER NOT NULL DEFAULT 0, data BLOB)`,
		`CREATE INDEX bench_floor_due ON bench_floor (run_at) WHERE state = 'scheduled'`,
	},
	insert: `INSERT INTO bench_floor (id, state, run_at, data) VALUES (?1, 'scheduled', ?3, ?2)`,
	batch:  `INSERT INTO bench_floor (id, state, run_at, data) VALUES `,
	claim: `UPDATE bench_floor SET state = 'running', attempts = attempts + 1
WHERE id IN (SELECT id FROM bench_floor WHERE state = 'scheduled' AND run_at <= ?2 ORDER BY run_at LIMIT ?1)
RETURNING id`,
	done: `UPDATE bench_floor SET state = 'completed' WHERE id IN (`,
}

var barePostgres = bareSQL{
	create: []string{
		`DROP TABLE IF EXISTS bench_floor`,
		`CREATE TABLE bench_floor (id text PRIMARY KEY, state text NOT NULL, run_at timestamptz NOT NULL,
	attempts integer NOT NULL DEFAULT 0, data bytea)`,
		`CREATE INDEX bench_floor_due ON bench_floor (run_at) WHERE state = 'scheduled'`,
	},
	insert: `INSERT INTO bench_floor (id, state, run_at, data) VALUES ($1, 'scheduled', now(), $2)`,
	batch: `INSERT INTO bench_floor (id, state, run_at, data)
SELECT u.id, 'scheduled', now(), u.data FROM unnest($1::text[], $2::bytea[]) AS u (id, data)`,
	claim: `UPDATE bench_floor SET state = 'running', attempts = attempts + 1
WHERE id IN (SELECT id FROM bench_floor WHERE state = 'scheduled' AND run_at <= now()
	ORDER BY run_at LIMIT $1 FOR UPDATE SKIP LOCKED)
RETURNING id`,
	done: `UPDATE bench_floor SET state = 'completed' WHERE id = ANY($1)`,
}

// bare is the bare table on one database.
type bare struct {
	db  *sql.DB
	d   tasks.Dialect
	sql *bareSQL
	// batches and dones are SQLite's statements by row count.
	batches map[int]string
	dones   [ClaimSize + 1]string
}

// newBare creates BareTable in db, anew and empty.
func newBare(ctx context.Context, db *sql.DB, d tasks.Dialect) (*bare, error) {
	b := &bare{db: db, d: d, sql: &barePostgres, batches: map[int]string{}}
	if d == tasks.SQLite {
		b.sql = &bareSQLite
		for size := 1; size <= ClaimSize; size++ {
			b.dones[size] = bareSQLite.done + placeholders(1, size) + ")"
		}
	}
	for _, q := range b.sql.create {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return nil, fmt.Errorf("create %s: %w", BareTable, err)
		}
	}
	return b, nil
}

// placeholders returns "?from, ?from+1, …", n of them.
func placeholders(from, n int) string {
	var s strings.Builder
	for j := range n {
		if j > 0 {
			s.WriteString(", ")
		}
		fmt.Fprintf(&s, "?%d", from+j)
	}
	return s.String()
}

func (b *bare) insert(ctx context.Context) error {
	var err error
	if b.d == tasks.SQLite {
		_, err = b.db.ExecContext(ctx, b.sql.insert, newID(), floorData, time.Now().UnixMicro())
	} else {
		_, err = b.db.ExecContext(ctx, b.sql.insert, newID(), floorData)
	}
	return err
}

func (b *bare) insertBatch(ctx context.Context, size int) error {
	ids := make([]string, size)
	for j := range ids {
		ids[j] = newID()
	}
	if b.d != tasks.SQLite {
		data := make([][]byte, size)
		for j := range data {
			data[j] = floorData
		}
		_, err := b.db.ExecContext(ctx, b.sql.batch, ids, data)
		return err
	}
	q, ok := b.batches[size]
	if !ok {
		var s strings.Builder
		s.WriteString(b.sql.batch)
		for j := range size {
			if j > 0 {
				s.WriteString(", ")
			}
			fmt.Fprintf(&s, "(?%d, 'scheduled', ?1, ?%d)", 2+2*j, 3+2*j)
		}
		q = s.String()
		b.batches[size] = q
	}
	args := make([]any, 0, 1+2*size)
	args = append(args, time.Now().UnixMicro())
	for _, id := range ids {
		args = append(args, id, floorData)
	}
	_, err := b.db.ExecContext(ctx, q, args...)
	return err
}

// claimDone claims up to ClaimSize due tasks and completes them, and
// returns how many.
func (b *bare) claimDone(ctx context.Context) (int, error) {
	var rows *sql.Rows
	var err error
	if b.d == tasks.SQLite {
		rows, err = b.db.QueryContext(ctx, b.sql.claim, ClaimSize, time.Now().UnixMicro())
	} else {
		rows, err = b.db.QueryContext(ctx, b.sql.claim, ClaimSize)
	}
	if err != nil {
		return 0, fmt.Errorf("claim: %w", err)
	}
	ids := make([]string, 0, ClaimSize)
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, fmt.Errorf("claim: %w", err)
		}
		ids = append(ids, id)
	}
	err = rows.Err()
	if closeErr := rows.Close(); err == nil {
		err = closeErr
	}
	if err != nil || len(ids) == 0 {
		return 0, err
	}
	if b.d == tasks.SQLite {
		args := make([]any, len(ids))
		for j, id := range ids {
			args[j] = id
		}
		_, err = b.db.ExecContext(ctx, b.dones[len(ids)], args...)
	} else {
		_, err = b.db.ExecContext(ctx, b.sql.done, ids)
	}
	if err != nil {
		return 0, fmt.Errorf("complete: %w", err)
	}
	return len(ids), nil
}

// BareInsertFloor is the bare floor of W1: n rows inserted into a new
// BareTable in db, one INSERT statement each, by Producers goroutines.
func BareInsertFloor(ctx context.Context, db *sql.DB, d tasks.Dialect, n int) (Rate, error) {
	b, err := newBare(ctx, db, d)
	if err != nil {
		return Rate{}, err
	}
	start := time.Now()
	err = runN(ctx, Producers, n, func(ctx context.Context, _ int) error { return b.insert(ctx) })
	return Rate{N: n, Elapsed: time.Since(start)}, err
}

// BareBatchFloor is the bare floor of W2: n rows inserted into a new
// BareTable in db from one goroutine, BatchSize rows a statement (a
// multi-row VALUES on SQLite, INSERT … SELECT FROM unnest on PostgreSQL).
func BareBatchFloor(ctx context.Context, db *sql.DB, d tasks.Dialect, n int) (Rate, error) {
	b, err := newBare(ctx, db, d)
	if err != nil {
		return Rate{}, err
	}
	start := time.Now()
	for i := 0; i < n; i += BatchSize {
		if err := b.insertBatch(ctx, min(BatchSize, n-i)); err != nil {
			return Rate{}, fmt.Errorf("insert batch at row %d of %d: %w", i, n, err)
		}
	}
	return Rate{N: n, Elapsed: time.Since(start)}, nil
}

// BareSteadyFloor is the bare floor of W4: for duration dur, Producers
// goroutines insert rows into a new BareTable in db, one INSERT each,
// while they are less than SteadyBacklog rows ahead of Workers goroutines
// that each loop claiming ClaimSize due rows (UPDATE … RETURNING, over
// FOR UPDATE SKIP LOCKED on PostgreSQL) and completing them in one UPDATE,
// and wait a millisecond when none is due. It returns the rows completed
// within dur.
func BareSteadyFloor(ctx context.Context, db *sql.DB, d tasks.Dialect, dur time.Duration) (Rate, error) {
	b, err := newBare(ctx, db, d)
	if err != nil {
		return Rate{}, err
	}
	var inserted, completed atomic.Int64
	var stop atomic.Bool
	start := time.Now()
	timer := time.AfterFunc(dur, func() { stop.Store(true) })
	defer timer.Stop()
	produce := func(ctx context.Context) error {
		for !stop.Load() {
			if inserted.Load()-completed.Load() >= SteadyBacklog {
				time.Sleep(50 * time.Microsecond) // let the workers catch up
				continue
			}
			if err := b.insert(ctx); err != nil {
				return fmt.Errorf("insert: %w", err)
			}
			inserted.Add(1)
		}
		return nil
	}
	consume := func(ctx context.Context) error {
		for !stop.Load() {
			n, err := b.claimDone(ctx)
			if err != nil {
				return err
			}
			if n == 0 {
				time.Sleep(time.Millisecond)
				continue
			}
			completed.Add(int64(n))
		}
		return nil
	}
	var role atomic.Int64
	err = parallel(ctx, Producers+Workers, func(ctx context.Context) error {
		if role.Add(1) <= Producers {
			return produce(ctx)
		}
		return consume(ctx)
	})
	return Rate{N: int(completed.Load()), Elapsed: time.Since(start)}, err
}

// BareDrainFloor is the bare floor of W3: n rows inserted into a new
// BareTable in db in batches (not timed), then Workers goroutines each
// loop claiming ClaimSize due rows and completing them, as
// [BareSteadyFloor]'s do, until none is left.
func BareDrainFloor(ctx context.Context, db *sql.DB, d tasks.Dialect, n int) (Rate, error) {
	b, err := newBare(ctx, db, d)
	if err != nil {
		return Rate{}, err
	}
	for i := 0; i < n; i += BatchSize {
		if err := b.insertBatch(ctx, min(BatchSize, n-i)); err != nil {
			return Rate{}, fmt.Errorf("insert batch at row %d of %d: %w", i, n, err)
		}
	}
	var completed atomic.Int64
	start := time.Now()
	err = parallel(ctx, Workers, func(ctx context.Context) error {
		for {
			n, err := b.claimDone(ctx)
			if err != nil || n == 0 {
				return err
			}
			completed.Add(int64(n))
		}
	})
	r := Rate{N: n, Elapsed: time.Since(start)}
	if err == nil && completed.Load() != int64(n) {
		err = fmt.Errorf("completed %d of %d rows", completed.Load(), n)
	}
	return r, err
}
