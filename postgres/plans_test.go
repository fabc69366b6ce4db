package postgres_test

import (
	"context"
	"database/sql"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/internal/testdb"
	"github.com/taskwheel/tasks/postgres"
	"github.com/taskwheel/tasks/tasktest"
)

// The statements that find tasks by the arrays they are given (Finish,
// Extend, the bulk operations, flow control's) are planned for their
// arguments each time. PostgreSQL would otherwise keep, per connection, a
// generic plan made after five calls: made while the table was new and
// nearly empty, it scanned the whole table long after the table had grown,
// and Finish took hundreds of milliseconds among 200,000 tasks.
func TestStore_PlansArrayStatementsEachTime(t *testing.T) {
	t.Parallel()
	t.Run("plain", func(t *testing.T) { t.Parallel(); testPlans(t, false) })
	// With a limit on the tasks' key, claims take flow control's way.
	t.Run("limited", func(t *testing.T) { t.Parallel(); testPlans(t, true) })
}

func testPlans(t *testing.T, limited bool) {
	ctx := t.Context()
	db := testdb.Postgres(t)
	// One session: the one whose plans and statistics the test reads.
	db.SetMaxOpenConns(1)
	s, err := postgres.New(db)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if limited {
		if _, err := s.SetLimit(ctx, &tasks.Limit{AppID: "app", Key: "e", Concurrency: 1000}); err != nil {
			t.Fatal(err)
		}
	}
	// While the table is new: tasks claimed, extended and finished one at
	// a time, more than five times.
	for range 8 {
		insert(t, s, 1)
		run(t, s, 1)
	}
	insert(t, s, 20_000)
	before := seqScans(t, db)
	run(t, s, 50)
	if after := seqScans(t, db); after != before {
		t.Errorf("sequential scans of taskwheel_tasks: %d while claiming, extending and finishing 50 of 20,000 tasks; want none", after-before)
	}
	// InsertMany's statement, given arrays too, has no plan to choose.
	rows, err := db.QueryContext(ctx, `SELECT statement FROM pg_prepared_statements
		WHERE generic_plans > 0 AND statement LIKE '%taskwheel_%' AND statement NOT LIKE '%INSERT INTO taskwheel_tasks%'
			AND (statement LIKE '%unnest(%' OR statement LIKE '%ANY($%')`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var q string
		if err := rows.Scan(&q); err != nil {
			t.Fatal(err)
		}
		t.Errorf("ran on a generic plan, given arrays:\n%s", q)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
}

// insert inserts n tasks due now, in batches of 1,000.
func insert(t *testing.T, s *postgres.Store, n int) {
	t.Helper()
	for n > 0 {
		b := min(n, 1000)
		ts := make([]*tasks.Task, b)
		for i := range ts {
			ts[i] = &tasks.Task{ID: uuid.NewString(), AppID: "app", EventType: "e", Data: []byte(`{}`), MaxAttempts: 3}
		}
		if _, err := s.InsertMany(t.Context(), ts); err != nil {
			t.Fatal(err)
		}
		n -= b
	}
}

// run claims n tasks, extends their leases and records them completed.
func run(t *testing.T, s *postgres.Store, n int) {
	t.Helper()
	ctx := t.Context()
	ts, err := s.Claim(ctx, n, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != n {
		t.Fatalf("claimed %d tasks, want %d", len(ts), n)
	}
	leases := make([]tasks.Lease, len(ts))
	outs := make([]tasks.Outcome, len(ts))
	for i, tk := range ts {
		leases[i] = tasks.Lease{ID: tk.ID, Attempt: tk.Attempts}
		outs[i] = tasks.Outcome{ID: tk.ID, Attempt: tk.Attempts, State: tasks.StateCompleted}
	}
	if revoked, err := s.Extend(ctx, leases, time.Minute); err != nil || len(revoked) > 0 {
		t.Fatalf("Extend: %v revoked, %v", revoked, err)
	}
	applied, err := s.Finish(ctx, outs)
	if err != nil {
		t.Fatal(err)
	}
	for i, ok := range applied {
		if !ok {
			t.Fatalf("outcome %d of %d not applied", i, len(outs))
		}
	}
}

// seqScans returns how many sequential scans of taskwheel_tasks the
// statistics count, once db's one session has reported its own.
func seqScans(t *testing.T, db *sql.DB) int64 {
	t.Helper()
	ctx := context.WithoutCancel(t.Context())
	// The session reports its statistics as it next goes idle.
	if _, err := db.ExecContext(ctx, `SELECT pg_stat_force_next_flush()`); err != nil {
		t.Fatal(err)
	}
	var n int64
	err := db.QueryRowContext(ctx, `SELECT seq_scan FROM pg_stat_user_tables
		WHERE relid = 'taskwheel_tasks'::regclass`).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// openWithParams opens a store by postgres.New on a pool of the caller's,
// in a fresh schema, with the connection parameters params (pgx's, such as
// default_query_exec_mode, or PostgreSQL run-time parameters).
func openWithParams(t *testing.T, params map[string]string) *postgres.Store {
	t.Helper()
	db, _ := testdb.PostgresWith(t, params)
	s, err := postgres.New(db)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	// Registered after PostgresWith's: runs before the pool is closed.
	t.Cleanup(func() { s.Close() })
	return s
}

// The store contract on pools of the caller's set up otherwise than pgx's
// default, as some are for a pooler in front of PostgreSQL: the simple
// protocol; exec mode with pgx's caches off. The statements given arrays
// run in QueryExecModeDescribeExec whatever the pool's mode, and need no
// cache.
func TestStore_PoolModes(t *testing.T) {
	t.Parallel()
	testdb.SkipWithoutPostgres(t)
	for name, params := range map[string]map[string]string{
		"simple_protocol": {"default_query_exec_mode": "simple_protocol"},
		"exec_no_caches": {"default_query_exec_mode": "exec",
			"statement_cache_capacity": "0", "description_cache_capacity": "0"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			tasktest.TestStore(t, func(t *testing.T) tasks.Store { return openWithParams(t, params) })
		})
	}
}

// Claims under limits on sessions whose DateStyle is not ISO: the
// statements given arrays return timestamps, which pgx reads as text only
// in ISO style, so they must come back in binary, as they do in
// QueryExecModeDescribeExec (in QueryExecModeExec every such claim failed).
func TestStore_DateStyleNotISO(t *testing.T) {
	t.Parallel()
	testdb.SkipWithoutPostgres(t)
	for _, style := range []string{"German", "SQL", "Postgres"} {
		t.Run(style, func(t *testing.T) {
			t.Parallel()
			s := openWithParams(t, map[string]string{"DateStyle": style})
			ctx := t.Context()
			if _, err := s.SetLimit(ctx, &tasks.Limit{AppID: "app", Key: "e", Concurrency: 1000, Rate: 100, Burst: 100}); err != nil {
				t.Fatal(err)
			}
			insert(t, s, 3)
			ts, err := s.Claim(ctx, 3, time.Minute)
			if err != nil {
				t.Fatalf("Claim under a limit, DateStyle %q: %v", style, err)
			}
			if len(ts) != 3 {
				t.Fatalf("claimed %d, want 3", len(ts))
			}
		})
	}
}

// An engine started on an empty table, whose connections ran each of its
// statements while the table was small, runs due tasks among 20,000 others
// without a sequential scan of the tasks.
func TestEngine_NoSequentialScansAfterGrowth(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	// The engine's sessions, by name: they report their statistics for
	// certain as they end.
	app := "plans_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	db, dsn := testdb.PostgresWith(t, map[string]string{"application_name": app})
	// The test's own session, in the same schema, under the same name.
	stats, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer stats.Close()
	s, err := postgres.New(db)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	eng, err := tasks.NewEngine(s, &tasks.Config{Workers: 4})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{}, 1000)
	eng.Register("e", func(context.Context, *tasks.Task) error { done <- struct{}{}; return nil })
	if err := eng.Start(ctx); err != nil {
		t.Fatal(err)
	}
	wait := func(n int) {
		t.Helper()
		for range n {
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("tasks did not run within 30 s")
			}
		}
	}
	// While the table is small: tasks one at a time.
	for range 60 {
		if _, err := eng.Enqueue(ctx, tasks.NewTask{AppID: "app", EventType: "e", Data: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
		wait(1)
	}
	later := make([]tasks.NewTask, 20_000)
	for i := range later {
		later[i] = tasks.NewTask{AppID: "app", EventType: "e", Data: []byte(`{}`), RunAt: time.Now().Add(time.Hour)}
	}
	if _, err := eng.EnqueueMany(ctx, later); err != nil {
		t.Fatal(err)
	}
	// The small table's sequential scans, which were right then, counted.
	before := settledStats(t, stats)
	// Ten at a time: batches that large a share of the table (a few
	// hundred of 20,000) have the planner rightly read it whole.
	for range 50 {
		batch := make([]tasks.NewTask, 10)
		for i := range batch {
			batch[i] = tasks.NewTask{AppID: "app", EventType: "e", Data: []byte(`{}`)}
		}
		if _, err := eng.EnqueueMany(ctx, batch); err != nil {
			t.Fatal(err)
		}
		wait(10)
	}
	if err := eng.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	s.Close()
	db.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var n int
		err := stats.QueryRowContext(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE application_name = $1 AND pid <> pg_backend_pid()`, app).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of the engine's sessions still open 30 s after its pool closed", n)
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
	after := tableStats(t, stats)
	if got, want := after.updated-before.updated, int64(2*500); got < want {
		t.Fatalf("statistics: %d updates of taskwheel_tasks, want at least %d (a claim and an outcome a task)", got, want)
	}
	if after.seqScans != before.seqScans {
		t.Errorf("sequential scans of taskwheel_tasks while 500 tasks ran among 20,000: %d, want 0", after.seqScans-before.seqScans)
	}
}

type stats struct{ seqScans, updated int64 }

// settledStats returns tableStats once they have not changed for 11 s:
// each session reports its statistics within a second of going idle, or
// ten if another session held the table's entry then (PostgreSQL's
// PGSTAT_IDLE_INTERVAL; with 3 s, one run in seven counted a scan made
// before), and the engine's sessions are idle once its tasks have run.
func settledStats(t *testing.T, db *sql.DB) stats {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	last, since := tableStats(t, db), time.Now()
	for time.Since(since) < 11*time.Second {
		if time.Now().After(deadline) {
			t.Fatal("the statistics of taskwheel_tasks did not settle within 30 s")
		}
		time.Sleep(100 * time.Millisecond) // polling interval
		if s := tableStats(t, db); s != last {
			last, since = s, time.Now()
		}
	}
	return last
}

// tableStats returns what the statistics count of taskwheel_tasks.
func tableStats(t *testing.T, db *sql.DB) stats {
	t.Helper()
	var s stats
	err := db.QueryRowContext(context.WithoutCancel(t.Context()), `SELECT seq_scan, n_tup_upd FROM pg_stat_user_tables
		WHERE relid = 'taskwheel_tasks'::regclass`).Scan(&s.seqScans, &s.updated)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
