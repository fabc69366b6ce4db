package tasks_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/internal/testdb"
	"github.com/taskwheel/tasks/postgres"
	"github.com/taskwheel/tasks/sqlite"
	"github.com/taskwheel/tasks/tasktest"
)

func TestSQLiteStore(t *testing.T) {
	t.Parallel()
	tasktest.TestStore(t, func(t *testing.T) tasks.Store { return openSQLite(t) })
}

func TestPostgresStore(t *testing.T) {
	t.Parallel()
	testdb.SkipWithoutPostgres(t)
	tasktest.TestStore(t, func(t *testing.T) tasks.Store { return openPostgres(t) })
}

// openSQLite opens a store on a new SQLite file, closed when t ends.
func openSQLite(t testing.TB) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(testdb.SQLitePath(t), nil)
	if err != nil {
		t.Fatalf("sqlite.Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// openPostgres opens a migrated store in a new PostgreSQL schema.
func openPostgres(t testing.TB) *postgres.Store {
	t.Helper()
	s, err := postgres.New(testdb.Postgres(t))
	if err != nil {
		t.Fatalf("postgres.New: %v", err)
	}
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	t.Cleanup(func() { s.Close() }) // before the database's: sends the last wake-ups
	return s
}

// sqlStores are the dialects the tests below run on.
var sqlStores = []struct {
	name string
	open func(testing.TB) *tasks.SQLStore
}{
	{"SQLite", func(t testing.TB) *tasks.SQLStore { return openSQLite(t).SQLStore }},
	{"Postgres", func(t testing.TB) *tasks.SQLStore { return openPostgres(t).SQLStore }},
}

// eachSQLStore runs f as a parallel subtest of t on a fresh store of each
// dialect.
func eachSQLStore(t *testing.T, f func(t *testing.T, s *tasks.SQLStore)) {
	t.Parallel()
	for _, d := range sqlStores {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			f(t, d.open(t))
		})
	}
}

var sqlTaskN atomic.Int64

// sqlTask returns a task to insert, due now, with a unique ID.
func sqlTask(opts ...func(*tasks.Task)) *tasks.Task {
	t := &tasks.Task{
		ID:          fmt.Sprintf("00000000-0000-4000-8000-%012d", sqlTaskN.Add(1)),
		AppID:       "app_1",
		EventType:   "test.event",
		Data:        json.RawMessage(`{"n":1}`),
		MaxAttempts: 3,
	}
	for _, o := range opts {
		o(t)
	}
	return t
}

func sqlInsert(t testing.TB, s tasks.Store, opts ...func(*tasks.Task)) *tasks.Task {
	t.Helper()
	got, err := s.Insert(context.Background(), sqlTask(opts...))
	if err != nil {
		t.Fatalf("Insert: got error %v, want nil", err)
	}
	return got
}

func TestSQLStore_InsertTx(t *testing.T) {
	eachSQLStore(t, func(t *testing.T, s *tasks.SQLStore) {
		ctx := t.Context()
		inTx := func(commit bool, ts ...*tasks.Task) []error {
			tx, err := s.DB().BeginTx(ctx, nil)
			if err != nil {
				t.Fatalf("BeginTx: %v", err)
			}
			var errs []error
			for _, tk := range ts {
				_, err := s.InsertTx(ctx, tx, tk)
				errs = append(errs, err)
			}
			if commit {
				err = tx.Commit()
			} else {
				err = tx.Rollback()
			}
			if err != nil {
				t.Fatalf("ending the transaction: %v", err)
			}
			return errs
		}

		rolledBack := sqlTask()
		if errs := inTx(false, rolledBack); errs[0] != nil {
			t.Fatalf("InsertTx: %v", errs[0])
		}
		if _, err := s.Get(ctx, rolledBack.ID); !errors.Is(err, tasks.ErrNotFound) {
			t.Errorf("Get after rollback: got error %v, want ErrNotFound", err)
		}

		// A duplicate leaves the transaction usable: the task after it commits.
		first := sqlInsert(t, s, func(t *tasks.Task) { t.IdempotencyKey = "k" })
		dup, committed := sqlTask(func(t *tasks.Task) { t.IdempotencyKey = "k" }), sqlTask()
		errs := inTx(true, dup, committed)
		if !errors.Is(errs[0], tasks.ErrDuplicate) || errs[1] != nil {
			t.Fatalf("InsertTx of a duplicate, then a new task: got errors %v, want [ErrDuplicate, nil]", errs)
		}
		if _, err := s.Get(ctx, committed.ID); err != nil {
			t.Errorf("Get after commit: got error %v, want nil", err)
		}
		if _, err := s.Get(ctx, dup.ID); !errors.Is(err, tasks.ErrNotFound) {
			t.Errorf("Get of the duplicate: got error %v, want ErrNotFound (task %s has its key)", err, first.ID)
		}
	})
}

func TestSQLStore_MigrateIsIdempotent(t *testing.T) {
	eachSQLStore(t, func(t *testing.T, s *tasks.SQLStore) {
		tk := sqlInsert(t, s)
		countMigrations := func() int {
			var n int
			if err := s.DB().QueryRowContext(t.Context(), "SELECT COUNT(*) FROM taskwheel_migrations").Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		before := countMigrations()
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				if err := s.Migrate(context.Background()); err != nil {
					t.Errorf("Migrate: %v", err)
				}
			})
		}
		wg.Wait()
		if n := countMigrations(); n != before || n == 0 {
			t.Errorf("migrations recorded: got %d, want %d as before", n, before)
		}
		if _, err := s.Get(t.Context(), tk.ID); err != nil {
			t.Errorf("Get after Migrate: %v", err)
		}
	})
}

func TestSQLStore_ConcurrentFirstMigrations(t *testing.T) {
	t.Parallel()
	for _, d := range []struct {
		name string
		open func(t testing.TB) (*sql.DB, tasks.Dialect)
	}{
		{"SQLite", func(t testing.TB) (*sql.DB, tasks.Dialect) {
			db, err := sql.Open("sqlite3", "file:"+testdb.SQLitePath(t)+"?_busy_timeout=10000&_journal_mode=WAL")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			return db, tasks.SQLite
		}},
		{"Postgres", func(t testing.TB) (*sql.DB, tasks.Dialect) { return testdb.Postgres(t), tasks.Postgres }},
	} {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			db, dialect := d.open(t)
			var wg sync.WaitGroup
			for range 4 {
				wg.Go(func() {
					s, err := tasks.NewSQLStore(db, dialect)
					if err == nil {
						err = s.Migrate(context.Background())
					}
					if err != nil {
						t.Errorf("Migrate: %v", err)
					}
				})
			}
			wg.Wait()
			s, _ := tasks.NewSQLStore(db, dialect)
			sqlInsert(t, s)
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			if err := db.PingContext(t.Context()); err != nil {
				t.Errorf("Ping after Close: got %v, want nil (the caller's database stays open)", err)
			}
		})
	}
}

// Text that PostgreSQL cannot store, in an ID, a filter or an error
// message, is not an error.
func TestSQLStore_UnstorableText(t *testing.T) {
	eachSQLStore(t, func(t *testing.T, s *tasks.SQLStore) {
		ctx := t.Context()
		for _, id := range []string{"a\x00b", "\xff\xfe"} {
			if _, err := s.Get(ctx, id); !errors.Is(err, tasks.ErrNotFound) {
				t.Errorf("Get(%q): got error %v, want ErrNotFound", id, err)
			}
			if _, err := s.Cancel(ctx, id); !errors.Is(err, tasks.ErrNotFound) {
				t.Errorf("Cancel(%q): got error %v, want ErrNotFound", id, err)
			}
			if got, _, err := s.List(ctx, tasks.ListParams{AppID: id, EventType: id}); err != nil || len(got) != 0 {
				t.Errorf("List of app %q: got %d tasks, error %v; want none, nil", id, len(got), err)
			}
			if _, err := s.GetEndpoint(ctx, id); !errors.Is(err, tasks.ErrNotFound) {
				t.Errorf("GetEndpoint(%q): got error %v, want ErrNotFound", id, err)
			}
			if _, err := s.UpdateEndpoint(ctx, &tasks.Endpoint{ID: id, EnabledEvents: []string{"*"}, Status: tasks.EndpointActive}); !errors.Is(err, tasks.ErrNotFound) {
				t.Errorf("UpdateEndpoint(%q): got error %v, want ErrNotFound", id, err)
			}
			if err := s.DeleteEndpoint(ctx, id); !errors.Is(err, tasks.ErrNotFound) {
				t.Errorf("DeleteEndpoint(%q): got error %v, want ErrNotFound", id, err)
			}
			if got, err := s.ListEndpoints(ctx, id); err != nil || len(got) != 0 {
				t.Errorf("ListEndpoints of app %q: got %d endpoints, error %v; want none, nil", id, len(got), err)
			}
			if got, err := s.Attempts(ctx, id); err != nil || len(got) != 0 {
				t.Errorf("Attempts(%q): got %d, error %v; want none, nil", id, len(got), err)
			}
		}
		sqlInsert(t, s)
		got, err := s.Claim(ctx, 1, time.Hour)
		if err != nil || len(got) != 1 {
			t.Fatalf("Claim: got %d tasks, error %v; want 1 task", len(got), err)
		}
		const msg = "nul \x00, invalid \xff"
		o := tasks.Outcome{ID: got[0].ID, Attempt: 1, State: tasks.StateRetrying, Delay: time.Hour, Error: msg, EndpointID: msg,
			Attempts: []tasks.Attempt{{TaskID: got[0].ID, Number: 1, EndpointID: msg, StartedAt: time.Now(), Response: msg, Error: msg}}}
		if applied, err := s.Finish(ctx, []tasks.Outcome{o}); err != nil || !applied[0] {
			t.Fatalf("Finish with error %q: got applied %v, error %v; want true, nil", msg, applied, err)
		}
		tk, err := s.Get(ctx, o.ID)
		if err != nil {
			t.Fatal(err)
		}
		as, err := s.Attempts(ctx, o.ID)
		if err != nil || len(as) != 1 {
			t.Fatalf("Attempts: got %d, error %v; want 1, nil", len(as), err)
		}
		for name, got := range map[string]string{"LastError": tk.LastError, "EndpointID": *tk.EndpointID,
			"attempt's EndpointID": as[0].EndpointID, "attempt's Response": as[0].Response, "attempt's Error": as[0].Error} {
			if got != msg && got != "nul \uFFFD, invalid \uFFFD" {
				t.Errorf("%s: got %q, want %q, or with U+FFFD for the NUL and the invalid byte", name, got, msg)
			}
		}
		ep := &tasks.Endpoint{ID: "ep_unstorable", AppID: "app_1", URL: msg, Description: msg, EnabledEvents: []string{msg, "*"},
			Status: tasks.EndpointActive, Secret: msg, PreviousSecret: msg}
		stored, err := s.InsertEndpoint(ctx, ep)
		if err != nil {
			t.Fatalf("InsertEndpoint with text %q: got error %v, want nil", msg, err)
		}
		ep.UpdatedAt = stored.UpdatedAt // the version the update compares and sets
		if _, err := s.UpdateEndpoint(ctx, ep); err != nil {
			t.Errorf("UpdateEndpoint with text %q: got error %v, want nil", msg, err)
		}
	})
}

func TestNewSQLStore_UnknownDialect(t *testing.T) {
	t.Parallel()
	if _, err := tasks.NewSQLStore(&sql.DB{}, tasks.Dialect(0)); err == nil {
		t.Error("NewSQLStore with dialect 0: got nil error, want an error")
	}
}

// claimN inserts n tasks due now and claims them with a lease of an hour.
func claimN(t *testing.T, s tasks.Store, n int) []*tasks.Task {
	t.Helper()
	ctx := t.Context()
	for i := range n {
		if _, err := s.Insert(ctx, &tasks.Task{ID: fmt.Sprintf("task-%04d", i), AppID: "a", EventType: "x",
			Data: json.RawMessage(`null`), MaxAttempts: 3}); err != nil {
			t.Fatal(err)
		}
	}
	claimed, err := s.Claim(ctx, n, time.Hour)
	if err != nil || len(claimed) != n {
		t.Fatalf("Claim: got %d tasks, %v; want %d", len(claimed), err, n)
	}
	return claimed
}

// TestPostgresStore_ExtendSkipsLockedRows checks that Extend does not wait
// for a task whose row another transaction holds (as a Finish would): it
// leaves that lease as it is, does not revoke it, and extends the others.
func TestPostgresStore_ExtendSkipsLockedRows(t *testing.T) {
	t.Parallel()
	s := openPostgres(t)
	ctx := t.Context()
	claimed := claimN(t, s, 2)
	held, free := claimed[0], claimed[1]
	tx, err := s.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `SELECT 1 FROM taskwheel_tasks WHERE id = $1 FOR UPDATE`, held.ID); err != nil {
		t.Fatal(err)
	}
	leases := []tasks.Lease{{ID: held.ID, Attempt: 1}, {ID: free.ID, Attempt: 1}}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	revoked, err := s.Extend(wctx, leases, 2*time.Hour)
	if err != nil || len(revoked) != 0 {
		t.Fatalf("Extend with a row held by another transaction: got %v, %v; want nothing revoked, nil", revoked, err)
	}
	lease := func(id string) time.Time {
		got, err := s.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return *got.LeaseExpiresAt
	}
	if !lease(held.ID).Equal(*held.LeaseExpiresAt) {
		t.Errorf("held task's lease: got %s, want it unchanged at %s", lease(held.ID), held.LeaseExpiresAt)
	}
	if !lease(free.ID).After(free.LeaseExpiresAt.Add(30 * time.Minute)) {
		t.Errorf("free task's lease: got %s, want it extended to about 2 h from now", lease(free.ID))
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if revoked, err := s.Extend(ctx, leases[:1], 2*time.Hour); err != nil || len(revoked) != 0 || !lease(held.ID).After(held.LeaseExpiresAt.Add(30*time.Minute)) {
		t.Errorf("Extend once released: got %v, %v, lease %s; want it extended", revoked, err, lease(held.ID))
	}
}

// TestPostgresStore_FinishAndExtendDoNotDeadlock runs Finish and Extend
// over the same running tasks at once, in opposite orders, as an engine's
// completer and heartbeat do: Extend skips the rows Finish holds, so
// neither waits for the other in a cycle (PostgreSQL would end one with a
// deadlock error after a second).
func TestPostgresStore_FinishAndExtendDoNotDeadlock(t *testing.T) {
	t.Parallel()
	s := openPostgres(t)
	ctx := t.Context()
	const n = 400
	claimed := claimN(t, s, n)
	leases := make([]tasks.Lease, n)
	for i, c := range claimed {
		leases[i] = tasks.Lease{ID: c.ID, Attempt: c.Attempts}
	}
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			if _, err := s.Extend(ctx, leases, time.Hour); err != nil {
				t.Errorf("Extend: %v", err)
				return
			}
		}
	})
	slices.Reverse(claimed) // Extend goes the other way
	for batch := range slices.Chunk(claimed, 40) {
		outs := make([]tasks.Outcome, len(batch))
		for i, c := range batch {
			outs[i] = tasks.Outcome{ID: c.ID, Attempt: c.Attempts, State: tasks.StateCompleted}
		}
		if _, err := s.Finish(ctx, outs); err != nil {
			t.Errorf("Finish: %v", err)
		}
	}
	close(done)
	wg.Wait()
	counts, err := s.CountTasks(ctx, "a", 1<<30)
	if err != nil || counts[tasks.StateCompleted] != n {
		t.Errorf("CountTasks: got %v, %v; want %d completed", counts, err, n)
	}
}

// A PostgreSQL server that ends the store's connections (pg_terminate_backend,
// as an administrator or a failover does) costs no caller an error: the pool
// still works, and Enqueue, Get, List (the health check), Attempts and the
// endpoint reads succeed on their first call.
func TestPostgresStore_ConnectionsTerminatedByTheServer(t *testing.T) {
	t.Parallel()
	app := "tw_kill_" + strings.ToLower(rand.Text()[:10])
	db, _ := testdb.PostgresWith(t, map[string]string{"application_name": app})
	admin := testdb.Postgres(t)
	s, err := postgres.New(db)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	e := newEngine(t, s, nil)
	ctx := t.Context()
	task := enqueue(t, e, tasks.NewTask{EventType: "x"})
	ep := createEndpoint(t, e, tasks.NewEndpoint{URL: "https://example.com/hooks"})

	for round := range 3 {
		// Fill the pool with connections used just now, which the pool
		// hands out again without checking them.
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				if _, err := s.Get(ctx, task.ID); err != nil {
					t.Errorf("Get: %v", err)
				}
			})
		}
		wg.Wait()
		var killed int
		if err := admin.QueryRowContext(ctx, `SELECT count(pg_terminate_backend(pid, 5000))
FROM pg_stat_activity WHERE application_name = $1`, app).Scan(&killed); err != nil {
			t.Fatal(err)
		}
		if killed == 0 {
			t.Fatalf("round %d: no backend of %s to terminate", round, app)
		}
		var err error
		switch round {
		case 0:
			_, err = e.Enqueue(ctx, tasks.NewTask{AppID: "app_1", EventType: "x"})
		case 1:
			_, err = e.Get(ctx, task.ID)
			if err == nil {
				_, err = e.Attempts(ctx, task.ID)
			}
		case 2:
			_, _, err = e.List(ctx, tasks.ListParams{Limit: 1}) // tasksd's /healthz
			if err == nil {
				_, err = e.Endpoint(ctx, ep.ID)
			}
		}
		if err != nil {
			t.Errorf("round %d, after %d connections were terminated: %v", round, killed, err)
		}
	}
}
