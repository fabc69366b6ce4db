package bench

// Retention at scale: what the engine's retention costs the work around it
// and whether it keeps a store's size flat. RetentionPass measures one pass
// deleting a filled store's history (W9) while W5's lateness goes on;
// RetentionSteady runs W4 under a short retention and samples the
// database's size (W10).

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/taskwheel/tasks"
)

// PassRetention is the retention of every terminal state in RetentionPass:
// short enough that all of a history qualifies.
const PassRetention = time.Second

// Size is a database's size and what its tasks table holds.
type Size struct {
	// Bytes is the database's size on disk: on SQLite the file and its
	// write-ahead log; on PostgreSQL the tasks and attempts tables with
	// their indexes and TOAST (pg_total_relation_size).
	Bytes int64
	// Free is, on SQLite, the bytes of the file's free pages, which new
	// rows reuse; 0 on PostgreSQL, whose free space is in its tables.
	Free int64
	// Rows is the number of tasks in the table.
	Rows int64
	// Dead is, on PostgreSQL, the dead tuples of the tasks table that
	// vacuum has not yet freed (pg_stat_user_tables.n_dead_tup, an
	// estimate); 0 on SQLite.
	Dead int64
}

// Size queries.
const (
	sqliteFile  = `SELECT file FROM pragma_database_list WHERE name = 'main'`
	sqliteFree  = `SELECT (SELECT freelist_count FROM pragma_freelist_count) * (SELECT page_size FROM pragma_page_size)`
	countTasks  = `SELECT count(*) FROM taskwheel_tasks`
	postgresSQL = `SELECT pg_total_relation_size('taskwheel_tasks') + pg_total_relation_size('taskwheel_attempts'),
	coalesce((SELECT n_dead_tup FROM pg_stat_user_tables
		WHERE relname = 'taskwheel_tasks' AND schemaname = current_schema()), 0)`
)

// MeasureSize returns the size of db, a migrated store's database of
// dialect d. It counts the tasks, which reads the whole table's index: a
// second or so with ten million tasks.
func MeasureSize(ctx context.Context, db *sql.DB, d tasks.Dialect) (Size, error) {
	var s Size
	if d == tasks.SQLite {
		var path string
		if err := db.QueryRowContext(ctx, sqliteFile).Scan(&path); err != nil {
			return s, fmt.Errorf("database file: %w", err)
		}
		for _, p := range []string{path, path + "-wal"} {
			fi, err := os.Stat(p)
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				return s, err
			}
			if err == nil {
				s.Bytes += fi.Size()
			}
		}
		if err := db.QueryRowContext(ctx, sqliteFree).Scan(&s.Free); err != nil {
			return s, fmt.Errorf("free pages: %w", err)
		}
	} else if err := db.QueryRowContext(ctx, postgresSQL).Scan(&s.Bytes, &s.Dead); err != nil {
		return s, fmt.Errorf("table sizes: %w", err)
	}
	if err := db.QueryRowContext(ctx, countTasks).Scan(&s.Rows); err != nil {
		return s, fmt.Errorf("count tasks: %w", err)
	}
	return s, nil
}

// purgeWatch is a store that watches the retention pass that its engine
// runs through it: it counts what PurgeTasks deletes, from the pass's
// first call to the end of its last, when PurgeTasks has come back short
// (the pass's end) for every terminal state.
type purgeWatch struct {
	tasks.Store
	deleted atomic.Int64

	mu         sync.Mutex
	start, end time.Time       // of the first call and of the pass's last
	batches    []time.Duration // each call's, until the pass ended
	short      map[tasks.State]bool
	err        error
	done       chan struct{} // closed when the pass ended or a call failed
}

func (w *purgeWatch) PurgeTasks(ctx context.Context, state tasks.State, olderThan time.Duration, limit int) (int, error) {
	w.mu.Lock()
	if w.start.IsZero() {
		w.start = time.Now()
	}
	w.mu.Unlock()
	began := time.Now()
	n, err := w.Store.PurgeTasks(ctx, state, olderThan, limit)
	took := time.Since(began)
	w.deleted.Add(int64(n))
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.end.IsZero() {
		w.batches = append(w.batches, took)
	}
	if w.end.IsZero() && (err != nil || n < limit) {
		w.short[state] = true
		w.err = err
		if err != nil || len(w.short) == 3 {
			w.end = time.Now()
			close(w.done)
		}
	}
	return n, err
}

// purging reports whether the pass was under way at t.
func (w *purgeWatch) purging(t time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return !w.start.IsZero() && !t.Before(w.start) && (w.end.IsZero() || t.Before(w.end))
}

// passTimeout bounds how long RetentionPass waits for the pass to end: the
// pace of retention (a fifth of the time deleting) makes a pass over ten
// million tasks on PostgreSQL take about ten minutes on a quiet machine.
const passTimeout = time.Hour

// RetentionResult is the outcome of [RetentionPass].
type RetentionResult struct {
	// Deleted counts the tasks the pass deleted, over the time from its
	// first PurgeTasks call to the end of its last. It includes the tasks
	// the engine ran and finished before and during the pass, W5's and
	// any a workload before left pending.
	Deleted Rate
	// Batch is the time each PurgeTasks call of the pass took: on SQLite,
	// how long it held the write lock.
	Batch Latency
	// Late is the lateness of W5's tasks due while the pass ran.
	Late Latency
	// Early counts those of them that started before their run time.
	Early int
	// Stalls are those of them that started a second or more late, in the
	// order of their due times, the first maxStalls of them.
	Stalls []Stall
	// StallN counts all those that started a second or more late.
	StallN int
	// Vacuums is how long each VACUUM that RetentionPass ran took.
	Vacuums Latency
}

// RetentionPass measures W9's retention pass: an engine on store, whose
// database holds a history of finished tasks, starts with a retention of
// PassRetention for every terminal state, and runs W5 until its first
// retention pass has deleted everything finished: every tick, a batch of
// tasks is enqueued, spread over the tick, ahead tasks ahead, rate tasks
// a second. It reports the pass's deletions and the lateness of the tasks
// due while it ran. The engine also runs, with a no-op, tasks that W7
// left pending. On PostgreSQL, if vacuum is positive, it also runs VACUUM
// on db's tasks and attempts tables every vacuum, as autovacuum would on a
// server where it is on: without it, the due index keeps an entry for
// every task claimed during the pass, and the claims slow down as they
// step over them.
func RetentionPass(ctx context.Context, store tasks.Store, db *sql.DB, dialect tasks.Dialect,
	rate int, ahead, vacuum time.Duration) (r RetentionResult, err error) {
	const tick = 100 * time.Millisecond
	perTick := max(rate*int(tick)/int(time.Second), 1)
	w := &purgeWatch{Store: store, short: make(map[tasks.State]bool), done: make(chan struct{})}
	type sample struct {
		due  time.Time
		late time.Duration
	}
	var mu sync.Mutex
	var samples []sample
	var enqueued atomic.Int64
	ran := make(chan struct{}, 1) // a task ran: the producer checks whether all did
	eng, err := newEngine(w, tasks.Config{
		RetainCompleted: PassRetention, RetainFailed: PassRetention, RetainCanceled: PassRetention,
	}, noopEvent, func(ctx context.Context, t *tasks.Task) error {
		d := time.Since(*t.ScheduledRunTime)
		mu.Lock()
		samples = append(samples, sample{*t.ScheduledRunTime, d})
		mu.Unlock()
		select {
		case ran <- struct{}{}:
		default:
		}
		return nil
	})
	if err != nil {
		return RetentionResult{}, err
	}
	eng.Register(httpEvent, func(context.Context, *tasks.Task) error { return nil })
	if err := eng.Start(ctx); err != nil {
		return RetentionResult{}, err
	}
	defer func() { err = errors.Join(err, stopAll(ctx, eng)) }()
	defer vacuumDuring(ctx, db, dialect, vacuum, &r.Vacuums, &err)()

	ticker := time.NewTicker(tick)
	defer ticker.Stop()
	timeout := time.NewTimer(passTimeout)
	defer timeout.Stop()
	passing := w.done
	for passing != nil {
		select {
		case <-ctx.Done():
			return RetentionResult{}, ctx.Err()
		case <-timeout.C:
			return RetentionResult{}, fmt.Errorf("gave up after %v: the retention pass deleted %d tasks and did not end", passTimeout, w.deleted.Load())
		case <-passing:
			passing = nil
		case now := <-ticker.C:
			base := now.Add(ahead)
			err := enqueueBatches(ctx, eng, perTick, func(i int) tasks.NewTask {
				return tasks.NewTask{AppID: appID, EventType: noopEvent, RunAt: base.Add(time.Duration(i) * tick / time.Duration(perTick))}
			})
			if err != nil {
				return RetentionResult{}, err
			}
			enqueued.Add(int64(perTick))
		}
	}
	w.mu.Lock()
	start, end, perr := w.start, w.end, w.err
	w.mu.Unlock()
	if perr != nil {
		return RetentionResult{}, fmt.Errorf("retention pass: %w", perr)
	}
	// Let the tasks enqueued so far run, for the count of early ones.
	timeout.Reset(ahead + waitTimeout)
	for {
		mu.Lock()
		n := len(samples)
		mu.Unlock()
		if int64(n) >= enqueued.Load() {
			break
		}
		select {
		case <-ran:
		case <-ctx.Done():
			return RetentionResult{}, fmt.Errorf("interrupted while waiting: %d of %d tasks started: %w", n, enqueued.Load(), ctx.Err())
		case <-timeout.C:
			return RetentionResult{}, fmt.Errorf("gave up after %v: %d of %d tasks started", ahead+waitTimeout, n, enqueued.Load())
		}
	}
	r.Deleted = Rate{N: int(w.deleted.Load()), Elapsed: end.Sub(start)}
	mu.Lock()
	defer mu.Unlock()
	var late []time.Duration
	slices.SortFunc(samples, func(a, b sample) int { return a.due.Compare(b.due) })
	for _, s := range samples {
		if w.purging(s.due) {
			late = append(late, s.late)
			if s.late < 0 {
				r.Early++
			}
			if s.late >= time.Second {
				r.StallN++
				if len(r.Stalls) < maxStalls {
					r.Stalls = append(r.Stalls, Stall{Due: s.due.Sub(start), Late: s.late})
				}
			}
		}
	}
	r.Late = latency(late)
	r.Batch = latency(w.batches)
	return r, nil
}

// Stall is a task of W5 that started a second or more late during the
// retention pass: its due time from the pass's start, and its lateness.
type Stall struct {
	Due, Late time.Duration
}

// maxStalls is how many stalls RetentionResult lists.
const maxStalls = 10

// SteadySample is a sample of [RetentionSteady].
type SteadySample struct {
	At  time.Duration // since the start
	Ran int64         // tasks run so far
	Size
}

// RetentionSteadyResult is the outcome of [RetentionSteady].
type RetentionSteadyResult struct {
	SteadyResult
	Samples []SteadySample
	// Vacuums is how long each VACUUM that RetentionSteady ran took.
	Vacuums Latency
}

// vacuumTables is what RetentionSteady and RetentionPass run on
// PostgreSQL when asked to, as autovacuum would.
const vacuumTables = `VACUUM taskwheel_tasks, taskwheel_attempts`

// vacuumCost gives a VACUUM the cost-based delay of autovacuum's defaults
// (autovacuum_vacuum_cost_delay 2 ms, and vacuum_cost_limit 200, which
// autovacuum_vacuum_cost_limit -1 stands for): a VACUUM run by hand has
// none, and reads and writes the table as fast as the disk lets it.
const vacuumCost = `SET vacuum_cost_delay = '2ms'; SET vacuum_cost_limit = 200`

// vacuumDuring starts vacuumEvery on db if dialect is PostgreSQL and
// vacuum positive, and returns the func that stops it: it stores how long
// each VACUUM took in took, and joins the loop's error to err.
func vacuumDuring(ctx context.Context, db *sql.DB, dialect tasks.Dialect, vacuum time.Duration, took *Latency, err *error) (stop func()) {
	if vacuum <= 0 || dialect != tasks.Postgres {
		return func() {}
	}
	stopVacuum := vacuumEvery(ctx, db, vacuum)
	return func() {
		var verr error
		*took, verr = stopVacuum()
		*err = errors.Join(*err, verr)
	}
}

// vacuumEvery runs vacuumTables on db every interval, one VACUUM after the
// other, on a connection of its own with autovacuum's cost-based delay,
// until the returned stop is called; stop returns how long each took, and
// the error that ended the loop early, if any. stop lets a VACUUM under
// way finish, so that every VACUUM started is counted: on a busy machine
// one can take longer than a short run has left.
func vacuumEvery(ctx context.Context, db *sql.DB, interval time.Duration) (stop func() (Latency, error)) {
	done := make(chan struct{})
	var vacuums []time.Duration
	vacuumed := make(chan error, 1)
	go func() { // joined by stop
		vacuumed <- func() error {
			conn, err := db.Conn(ctx)
			if err != nil {
				return err
			}
			defer conn.Close()
			if _, err := conn.ExecContext(ctx, vacuumCost); err != nil {
				return err
			}
			t := time.NewTicker(interval)
			defer t.Stop()
			for {
				select {
				case <-done:
					return nil
				case <-t.C:
				}
				start := time.Now()
				if _, err := conn.ExecContext(ctx, vacuumTables); err != nil {
					return err
				}
				vacuums = append(vacuums, time.Since(start))
			}
		}()
	}()
	return func() (Latency, error) {
		close(done)
		if err := <-vacuumed; err != nil && ctx.Err() == nil {
			return latency(vacuums), fmt.Errorf("vacuum: %w", err)
		}
		return latency(vacuums), nil
	}
}

// RetentionSteady measures W10: W4 (see [Steady]) for duration d on an
// engine that keeps completed tasks for retain, with the size of db,
// store's database of dialect d, measured every interval, starting with
// the empty store, and at the end, after the engine stopped. Each sample
// calls sample as it is taken. On PostgreSQL, if vacuum is positive, it
// also runs VACUUM on the tasks and attempts tables every vacuum, one
// after the other, as autovacuum would on a server where it is on.
func RetentionSteady(ctx context.Context, store tasks.Store, db *sql.DB, dialect tasks.Dialect,
	d, every, retain, vacuum time.Duration, sample func(SteadySample)) (r RetentionSteadyResult, err error) {
	defer vacuumDuring(ctx, db, dialect, vacuum, &r.Vacuums, &err)()
	take := func(at time.Duration, ran int64) error {
		s, err := MeasureSize(ctx, db, dialect)
		if err != nil {
			return err
		}
		ss := SteadySample{At: at, Ran: ran, Size: s}
		r.Samples = append(r.Samples, ss)
		if sample != nil {
			sample(ss)
		}
		return nil
	}
	if err = take(0, 0); err != nil {
		return r, err
	}
	sr, err := steady(ctx, store, tasks.Config{RetainCompleted: retain}, d, every, take)
	r.SteadyResult = sr
	if err != nil {
		return r, err
	}
	// The last sample is at the end, unless the ticker just took it.
	if last := r.Samples[len(r.Samples)-1]; last.At < d-every/2 {
		err = take(d, int64(sr.Completed.N))
	}
	return r, err
}
