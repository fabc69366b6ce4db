package tasks_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/internal/testdb"
	"github.com/taskwheel/tasks/internal/testkit"
	"github.com/taskwheel/tasks/postgres"
)

// TestFlow_LimitChangeGivesWayToAClaim (L1), on PostgreSQL: a change of a
// limit that meets a claim in a lock cycle gives way within milliseconds,
// where PostgreSQL would find the cycle only after its deadlock_timeout. A
// transaction stands in for the claim: it holds a task that waits for the
// key, as a claim does that locked it while another claim parked it, and
// once the change (a pause) waits for that task while holding the key's
// limit, it asks for the limit, as the claim would next. Both sessions
// run with a deadlock_timeout of an hour, so the test ends only if the
// change gives way: then the transaction gets the limit, commits, and the
// pause runs again and takes effect.
func TestFlow_LimitChangeGivesWayToAClaim(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	_, dsn := testdb.PostgresDSN(t)
	dsn, err := testdb.WithParam(dsn, "options", "-cdeadlock_timeout=1h")
	if err != nil {
		t.Fatal(err)
	}
	open := func() *sql.DB {
		db, err := sql.Open("pgx", dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	db := open()
	store, err := postgres.New(db)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	e := testkit.NewEngine(t, store, nil)
	if _, err := e.SetLimit(ctx, tasks.Limit{AppID: "app_1", Key: "k", Concurrency: 1}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		testkit.Enqueue(t, e, tasks.NewTask{AppID: "app_1", EventType: "x", FlowKey: "k"})
	}
	if ts, err := store.Claim(ctx, 2, time.Hour); err != nil || len(ts) != 1 {
		t.Fatalf("Claim = %d tasks, %v; want 1, the other set waiting", len(ts), err)
	}

	claim, err := open().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer claim.Rollback()
	var pid int
	if err := claim.QueryRowContext(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	var held int
	if err := claim.QueryRowContext(ctx, `SELECT count(*) FROM (
	SELECT 1 FROM taskwheel_tasks WHERE app_id = 'app_1' AND wait_key = 'k' FOR UPDATE) AS waiting`).Scan(&held); err != nil || held != 1 {
		t.Fatalf("locked %d waiting tasks, %v; want 1", held, err)
	}
	paused := make(chan error, 1)
	go func() { // joined below
		_, err := e.PauseLimit(ctx, "app_1", "k", true)
		paused <- err
	}()
	for blocked := false; !blocked; {
		err := db.QueryRowContext(ctx, `SELECT EXISTS (
	SELECT 1 FROM pg_stat_activity WHERE $1::int = ANY(pg_blocking_pids(pid)))`, pid).Scan(&blocked)
		if err != nil {
			t.Fatalf("waiting for the pause to wait for the task: %v", err)
		}
	}
	if _, err := claim.ExecContext(ctx, `SELECT 1 FROM taskwheel_limits WHERE app_id = 'app_1' AND flow_key = 'k' FOR UPDATE`); err != nil {
		t.Fatalf("the claim's lock of the limit: %v (the pause held it)", err)
	}
	if err := claim.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-paused; err != nil {
		t.Fatalf("PauseLimit: %v", err)
	}
	if l, err := e.Limit(ctx, "app_1", "k"); err != nil || !l.Paused {
		t.Fatalf("Limit = %+v, %v; want the key paused", l, err)
	}
}
