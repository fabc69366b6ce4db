package bench

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/taskwheel/tasks"
)

// The floors' statements, on the library's own table. Its NOT NULL columns
// without a default are id, app_id, event_type, state, run_at,
// max_attempts, created_at and updated_at; data is what a task carries.
// SQLite keeps times as Unix microseconds, which the floors pass (?1 is
// the clock); PostgreSQL's are timestamptz, which now() gives, as the
// store's own queries do.
const (
	insertFloorSQLite = `INSERT INTO taskwheel_tasks (id, app_id, event_type, state, data, run_at, max_attempts, created_at, updated_at)
VALUES (?2, 'bench', 'bench.noop', 'scheduled', ?3, ?1, 1, ?1, ?1)`
	insertFloorPostgres = `INSERT INTO taskwheel_tasks (id, app_id, event_type, state, data, run_at, max_attempts, created_at, updated_at)
VALUES ($1, 'bench', 'bench.noop', 'scheduled', $2, now(), 1, now(), now())`

	// The SQLite batch is this head, then one row of batchRowSQLite per
	// task, numbered from ?2.
	batchHeadSQLite = `INSERT INTO taskwheel_tasks (id, app_id, event_type, state, data, run_at, max_attempts, created_at, updated_at) VALUES `
	batchRowSQLite  = `(?%d, 'bench', 'bench.noop', 'scheduled', ?%d, ?1, 1, ?1, ?1)`
	batchPostgres   = `INSERT INTO taskwheel_tasks (id, app_id, event_type, state, data, run_at, max_attempts, created_at, updated_at)
SELECT u.id, 'bench', 'bench.noop', 'scheduled', u.data, now(), 1, now(), now()
FROM unnest($1::text[], $2::bytea[]) AS u (id, data)`

	claimFloorSQLite = `UPDATE taskwheel_tasks SET state = 'running', attempts = attempts + 1
WHERE id IN (SELECT id FROM taskwheel_tasks WHERE state IN ('scheduled', 'retrying') AND run_at <= ?1
	ORDER BY run_at LIMIT ?2)
RETURNING id`
	claimFloorPostgres = `UPDATE taskwheel_tasks SET state = 'running', attempts = attempts + 1
WHERE id IN (SELECT id FROM taskwheel_tasks WHERE state IN ('scheduled', 'retrying') AND run_at <= now()
	ORDER BY run_at LIMIT $1 FOR UPDATE SKIP LOCKED)
RETURNING id`

	// The SQLite done is this head and as many ?n as tasks claimed, from
	// ?2, then ")".
	doneHeadSQLite    = `UPDATE taskwheel_tasks SET state = 'completed', completed_at = ?1 WHERE id IN (`
	doneFloorPostgres = `UPDATE taskwheel_tasks SET state = 'completed', completed_at = now() WHERE id = ANY($1)`
)

// floorData is each floor task's data: what Enqueue stores for nil Data.
var floorData = []byte("null")

// newID returns a task ID of the kind Enqueue makes: a UUIDv7, which
// sorts by time and so inserts at the end of the primary key's index.
func newID() string { return uuid.Must(uuid.NewV7()).String() }

// InsertFloor is the floor of W1 and W7: n tasks inserted one INSERT
// statement each, by Producers goroutines, into the empty tables of db,
// a database of dialect d that Migrate set up. Open SQLite's db as
// sqlite.Open does, or pass the DB of its store.
func InsertFloor(ctx context.Context, db *sql.DB, d tasks.Dialect, n int) (Rate, error) {
	start := time.Now()
	err := runN(ctx, Producers, n, func(ctx context.Context, i int) error {
		var err error
		if d == tasks.SQLite {
			_, err = db.ExecContext(ctx, insertFloorSQLite, time.Now().UnixMicro(), newID(), floorData)
		} else {
			_, err = db.ExecContext(ctx, insertFloorPostgres, newID(), floorData)
		}
		return err
	})
	return Rate{N: n, Elapsed: time.Since(start)}, err
}

// BatchInsertFloor is the floor of W2: n tasks inserted from one goroutine
// in statements of BatchSize rows each (a multi-row VALUES on SQLite, an
// INSERT … SELECT FROM unnest of arrays on PostgreSQL), into the tables
// of db as for [InsertFloor].
func BatchInsertFloor(ctx context.Context, db *sql.DB, d tasks.Dialect, n int) (Rate, error) {
	start := time.Now()
	err := insertBatches(ctx, db, d, n)
	return Rate{N: n, Elapsed: time.Since(start)}, err
}

func insertBatches(ctx context.Context, db *sql.DB, d tasks.Dialect, n int) error {
	full := batchSQLite(BatchSize)
	for i := 0; i < n; i += BatchSize {
		size := min(BatchSize, n-i)
		ids := make([]string, size)
		for j := range ids {
			ids[j] = newID()
		}
		var err error
		if d == tasks.SQLite {
			query := full
			if size < BatchSize {
				query = batchSQLite(size)
			}
			args := make([]any, 0, 1+2*size)
			args = append(args, time.Now().UnixMicro())
			for _, id := range ids {
				args = append(args, id, floorData)
			}
			_, err = db.ExecContext(ctx, query, args...)
		} else {
			data := make([][]byte, size)
			for j := range data {
				data[j] = floorData
			}
			_, err = db.ExecContext(ctx, batchPostgres, ids, data)
		}
		if err != nil {
			return fmt.Errorf("insert batch at task %d of %d: %w", i, n, err)
		}
	}
	return nil
}

// batchSQLite returns the SQLite statement that inserts size rows.
func batchSQLite(size int) string {
	var b strings.Builder
	b.WriteString(batchHeadSQLite)
	for j := range size {
		if j > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, batchRowSQLite, 2+2*j, 3+2*j)
	}
	return b.String()
}

// doneSQLite returns the SQLite statement that completes size tasks.
func doneSQLite(size int) string {
	var b strings.Builder
	b.WriteString(doneHeadSQLite)
	for j := range size {
		if j > 0 {
			b.WriteString(", ")
		}
		b.WriteString("?" + strconv.Itoa(2+j))
	}
	b.WriteString(")")
	return b.String()
}

// DrainFloor is the floor of W3: n tasks are inserted in batches (not
// timed) into the empty tables of db, as for [InsertFloor]; then Workers
// goroutines each loop, claiming ClaimSize due tasks with one UPDATE …
// RETURNING (over a FOR UPDATE SKIP LOCKED subquery on PostgreSQL) and
// marking those completed with one UPDATE, until none is left.
func DrainFloor(ctx context.Context, db *sql.DB, d tasks.Dialect, n int) (Rate, error) {
	if err := insertBatches(ctx, db, d, n); err != nil {
		return Rate{}, err
	}
	var dones [ClaimSize + 1]string
	for size := 1; size <= ClaimSize; size++ {
		dones[size] = doneSQLite(size)
	}
	var completed atomic.Int64
	start := time.Now()
	err := parallel(ctx, Workers, func(ctx context.Context) error {
		for {
			var rows *sql.Rows
			var err error
			if d == tasks.SQLite {
				rows, err = db.QueryContext(ctx, claimFloorSQLite, time.Now().UnixMicro(), ClaimSize)
			} else {
				rows, err = db.QueryContext(ctx, claimFloorPostgres, ClaimSize)
			}
			if err != nil {
				return fmt.Errorf("claim: %w", err)
			}
			ids := make([]string, 0, ClaimSize)
			for rows.Next() {
				var id string
				if err := rows.Scan(&id); err != nil {
					rows.Close()
					return fmt.Errorf("claim: %w", err)
				}
				ids = append(ids, id)
			}
			err = rows.Err()
			if closeErr := rows.Close(); err == nil {
				err = closeErr
			}
			if err != nil {
				return fmt.Errorf("claim: %w", err)
			}
			if len(ids) == 0 {
				return nil
			}
			if d == tasks.SQLite {
				args := make([]any, 0, 1+len(ids))
				args = append(args, time.Now().UnixMicro())
				for _, id := range ids {
					args = append(args, id)
				}
				_, err = db.ExecContext(ctx, dones[len(ids)], args...)
			} else {
				_, err = db.ExecContext(ctx, doneFloorPostgres, ids)
			}
			if err != nil {
				return fmt.Errorf("complete: %w", err)
			}
			completed.Add(int64(len(ids)))
		}
	})
	r := Rate{N: n, Elapsed: time.Since(start)}
	if err != nil {
		return r, err
	}
	if c := completed.Load(); c != int64(n) {
		return r, fmt.Errorf("completed %d of %d tasks", c, n)
	}
	return r, nil
}
