package tasks_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/internal/testdb"
	"github.com/taskwheel/tasks/internal/testkit"
	"github.com/taskwheel/tasks/postgres"
)

// Changes of limits that give way to claims on PostgreSQL (flowTx's bounded
// lock waits).

// lockSetup opens a store on a new schema through a pool of maxConns
// connections opened with dsnParams added, sets a concurrency limit of 1 on
// app_1/k, enqueues n+1 tasks of k and claims one, so that n wait (parked
// by the claim). It returns the store's pool, the store, an engine on it
// and the DSN the pool was opened with (the schema's, with dsnParams).
func lockSetup(t *testing.T, maxConns, n int, dsnParams ...string) (*sql.DB, *postgres.Store, *tasks.Engine, string) {
	t.Helper()
	ctx := t.Context()
	params := map[string]string{}
	for i := 0; i+1 < len(dsnParams); i += 2 {
		params[dsnParams[i]] = dsnParams[i+1]
	}
	db, dsn := testdb.PostgresWith(t, params)
	db.SetMaxOpenConns(maxConns)
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
	for range n + 1 {
		testkit.Enqueue(t, e, tasks.NewTask{AppID: "app_1", EventType: "x", FlowKey: "k"})
	}
	if ts, err := store.Claim(ctx, n+1, time.Hour); err != nil || len(ts) != 1 {
		t.Fatalf("Claim = %d tasks, %v; want 1, the others set waiting", len(ts), err)
	}
	return db, store, e, dsn
}

// holdLock opens its own connection to dsn, runs lockSQL in a transaction
// (which must lock at least one row) and rolls it back after hold, or at
// the test's end if hold is 0.
func holdLock(t *testing.T, dsn, lockSQL string, hold time.Duration) {
	t.Helper()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := db.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := tx.QueryRowContext(t.Context(), `SELECT count(*) FROM (`+lockSQL+`) AS locked`).Scan(&n); err != nil || n == 0 {
		t.Fatalf("holdLock: locked %d rows, %v", n, err)
	}
	release := func() { tx.Rollback(); db.Close() }
	if hold == 0 {
		t.Cleanup(release)
		return
	}
	time.AfterFunc(hold, release)
}

const (
	lockWaitingTask = `SELECT 1 FROM taskwheel_tasks WHERE app_id = 'app_1' AND wait_key = 'k' LIMIT 1 FOR UPDATE`
	lockLimitRow    = `SELECT 1 FROM taskwheel_limits WHERE app_id = 'app_1' AND flow_key = 'k' FOR UPDATE`
)

// waitingReasons returns the count of app_1's tasks waiting for k by
// wait_reason's first word ("paused", "concurrency", "rate").
func waitingReasons(t *testing.T, db *sql.DB) map[string]int {
	t.Helper()
	rows, err := db.QueryContext(t.Context(), `SELECT wait_reason, count(*) FROM taskwheel_tasks
WHERE app_id = 'app_1' AND wait_key = 'k' GROUP BY wait_reason`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var (
			why sql.NullString
			n   int
		)
		if err := rows.Scan(&why, &n); err != nil {
			t.Fatal(err)
		}
		reason, _, _ := strings.Cut(why.String, ":")
		out[reason] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// changeLimits are the changes of a limit that flowTx runs.
var changeLimits = []string{"SetLimit", "PauseLimit", "DeleteLimit"}

// changeLimit makes the change op (one of changeLimits) of app_1/k: a
// SetLimit or PauseLimit pauses the key, a DeleteLimit deletes its limit.
func changeLimit(ctx context.Context, store tasks.Store, op string) error {
	var err error
	switch op {
	case "SetLimit":
		_, err = store.SetLimit(ctx, &tasks.Limit{AppID: "app_1", Key: "k", Concurrency: 1, Paused: true})
	case "PauseLimit":
		_, err = store.PauseLimit(ctx, "app_1", "k", true)
	case "DeleteLimit":
		err = store.DeleteLimit(ctx, "app_1", "k")
	}
	return err
}

// lockTimeoutOf returns the connection's lock_timeout.
func lockTimeoutOf(t *testing.T, db *sql.DB) string {
	t.Helper()
	var v string
	if err := db.QueryRowContext(t.Context(), `SELECT current_setting('lock_timeout')`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestFlow_LimitChangeLockTimeoutDoesNotLeak: on a pool of one connection, after
// changes that gave way (55P03) and ran again, and after plain ones, the
// connection's lock_timeout is the session's own, both the server default
// and one the application set in its DSN.
func TestFlow_LimitChangeLockTimeoutDoesNotLeak(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name   string
		params []string
		want   string
	}{
		{"default", nil, "0"},
		{"application's own", []string{"options", "-clock_timeout=5s"}, "5s"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			db, store, _, dsn := lockSetup(t, 1, 3, c.params...)
			if got := lockTimeoutOf(t, db); got != c.want {
				t.Fatalf("lock_timeout before = %q, want %q", got, c.want)
			}
			// A waiting task held for 70 ms: a few bounded tries give way.
			holdLock(t, dsn, lockWaitingTask, 70*time.Millisecond)
			if _, err := store.PauseLimit(ctx, "app_1", "k", true); err != nil {
				t.Fatal(err)
			}
			if got := lockTimeoutOf(t, db); got != c.want {
				t.Errorf("lock_timeout after a PauseLimit that gave way = %q, want %q", got, c.want)
			}
			if _, err := store.SetLimit(ctx, &tasks.Limit{AppID: "app_1", Key: "k", Concurrency: 2}); err != nil {
				t.Fatal(err)
			}
			if got := lockTimeoutOf(t, db); got != c.want {
				t.Errorf("lock_timeout after SetLimit = %q, want %q", got, c.want)
			}
			// A change whose context ends while it waits.
			holdLock(t, dsn, lockWaitingTask, 300*time.Millisecond)
			cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
			_, err := store.PauseLimit(cctx, "app_1", "k", true)
			cancel()
			if err == nil {
				t.Fatal("PauseLimit with its context ended while it waited: no error")
			}
			if got := lockTimeoutOf(t, db); got != c.want {
				t.Errorf("lock_timeout after a canceled PauseLimit = %q, want %q", got, c.want)
			}
			if err := store.DeleteLimit(ctx, "app_1", "k"); err != nil {
				t.Fatal(err)
			}
			if got := lockTimeoutOf(t, db); got != c.want {
				t.Errorf("lock_timeout after DeleteLimit = %q, want %q", got, c.want)
			}
		})
	}
}

// TestFlow_LimitChangeWaitsOutALongTransaction: a lock held by an
// application's own transaction for longer than the first nine tries
// (the limit's row, or one waiting task) delays each change until it ends;
// the change then succeeds, applied in full: a pause gives every waiting
// task its reason, a DeleteLimit releases every one.
func TestFlow_LimitChangeWaitsOutALongTransaction(t *testing.T) {
	t.Parallel()
	const hold = 500 * time.Millisecond
	for _, lock := range []struct{ name, sql string }{{"limit", lockLimitRow}, {"task", lockWaitingTask}} {
		for _, op := range changeLimits {
			t.Run(lock.name+"/"+op, func(t *testing.T) {
				t.Parallel()
				ctx := t.Context()
				db, store, _, dsn := lockSetup(t, 4, 5)
				holdLock(t, dsn, lock.sql, hold)
				start := time.Now()
				err := changeLimit(ctx, store, op)
				took := time.Since(start)
				if err != nil {
					t.Fatalf("%s after %v: %v", op, took, err)
				}
				if took < hold-50*time.Millisecond {
					t.Errorf("%s took %v, less than the lock was held (%v)", op, took, hold)
				}
				got := waitingReasons(t, db)
				l, lerr := store.GetLimit(ctx, "app_1", "k")
				if op == "DeleteLimit" {
					if !errors.Is(lerr, tasks.ErrNotFound) {
						t.Errorf("GetLimit after DeleteLimit = %+v, %v; want ErrNotFound", l, lerr)
					}
					if len(got) != 0 {
						t.Errorf("tasks waiting for k after DeleteLimit: %v, want none", got)
					}
					return
				}
				if lerr != nil || !l.Paused {
					t.Errorf("GetLimit = %+v, %v; want it paused", l, lerr)
				}
				if got["paused"] != 5 || len(got) != 1 {
					t.Errorf("waiting tasks by reason = %v, want all 5 paused", got)
				}
			})
		}
	}
}

// TestFlow_LimitChangeCanceledAppliesNothing: a change
// that waits for a task that is never released ends soon after its context
// does, in its first tries and in its later ones, and leaves the
// limit and its waiting tasks as they were.
func TestFlow_LimitChangeCanceledAppliesNothing(t *testing.T) {
	t.Parallel()
	for _, after := range []time.Duration{60 * time.Millisecond, 600 * time.Millisecond} {
		for _, op := range changeLimits {
			t.Run(op+"/"+after.String(), func(t *testing.T) {
				t.Parallel()
				db, store, _, dsn := lockSetup(t, 4, 3)
				holdLock(t, dsn, lockWaitingTask, 0)
				ctx, cancel := context.WithTimeout(t.Context(), after)
				defer cancel()
				start := time.Now()
				err := changeLimit(ctx, store, op)
				took := time.Since(start)
				if err == nil {
					t.Fatalf("%s: no error with the task locked throughout", op)
				}
				if took > after+200*time.Millisecond {
					t.Errorf("%s ended %v after it began, its context after %v", op, took, after)
				}
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Logf("%s: error %v is not context.DeadlineExceeded", op, err)
				}
				l, lerr := store.GetLimit(t.Context(), "app_1", "k")
				if lerr != nil || l.Paused {
					t.Errorf("GetLimit = %+v, %v; want the limit, not paused", l, lerr)
				}
				if got := waitingReasons(t, db); got["concurrency"] != 3 || len(got) != 1 {
					t.Errorf("waiting tasks by reason = %v, want 3 for concurrency", got)
				}
			})
		}
	}
}

// TestFlow_LimitChangeGivesWayToAClaim (L1): a change of a limit that meets
// a claim in a lock cycle gives way, where PostgreSQL would find the cycle
// only after its deadlock_timeout. A transaction stands in for the claim:
// it holds a task that waits for the key, as a claim does that locked it
// while another claim parked it, and once the change (a pause) waits for
// that task while holding the key's limit, it asks for the limit, as the
// claim would next: at once, and after the change's first tries, whose
// waits are shorter. Both sessions run with a deadlock_timeout of an hour
// (which takes a superuser to set), so the test ends only if the change
// gives way: then the transaction gets the limit and commits, and the pause
// runs again and takes effect.
func TestFlow_LimitChangeGivesWayToAClaim(t *testing.T) {
	t.Parallel()
	requireSuperuser(t)
	for _, c := range []struct {
		name  string
		after time.Duration // from the change's first wait to the claim's ask
	}{
		{"at once", 0},
		{"after its first tries", 600 * time.Millisecond}, // 9 tries of 20 ms and their round trips
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			db, _, e, dsn := lockSetup(t, 4, 1, "options", "-cdeadlock_timeout=1h")
			cdb, err := sql.Open("pgx", dsn) // deadlock_timeout 1h too
			if err != nil {
				t.Fatal(err)
			}
			defer cdb.Close()
			claim, err := cdb.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer claim.Rollback()
			var pid, held int
			if err := claim.QueryRowContext(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
				t.Fatal(err)
			}
			if err := claim.QueryRowContext(ctx, `SELECT count(*) FROM (`+lockWaitingTask+`) AS waiting`).Scan(&held); err != nil || held != 1 {
				t.Fatalf("locked %d waiting tasks, %v; want 1", held, err)
			}
			paused := make(chan error, 1)
			go func() { // joined below
				_, err := e.PauseLimit(ctx, "app_1", "k", true)
				paused <- err
			}()
			blocked := func() {
				for b := false; !b; {
					err := db.QueryRowContext(ctx, `SELECT EXISTS (
	SELECT 1 FROM pg_stat_activity WHERE $1::int = ANY(pg_blocking_pids(pid)))`, pid).Scan(&b)
					if err != nil {
						t.Fatalf("waiting for the pause to wait for the task: %v", err)
					}
				}
			}
			blocked()
			if c.after > 0 {
				time.Sleep(c.after)
				blocked()
			}
			if _, err := claim.ExecContext(ctx, lockLimitRow); err != nil {
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
		})
	}
}

// requireSuperuser skips t unless the test database's role is a superuser,
// which setting deadlock_timeout on a connection takes.
func requireSuperuser(t *testing.T) {
	t.Helper()
	var super bool
	if err := testdb.Postgres(t).QueryRowContext(t.Context(), `SELECT rolsuper FROM pg_roles WHERE rolname = current_user`).Scan(&super); err != nil {
		t.Fatal(err)
	}
	if !super {
		t.Skip("the test database's role is not a superuser, and may not set deadlock_timeout")
	}
}
