package tasks

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	_ "github.com/mattn/go-sqlite3" // the "sqlite3" driver, for sqliteDB

	"github.com/taskwheel/tasks/internal/testdb"
)

// TestSQLStore_ForgottenClaimIsFenced: PostgreSQL's claims commit without
// waiting for the disk, so a crash of the server can forget a claim whose
// task already runs; the task is then claimed again at the same attempt
// number. The test forgets a claim by putting its row back as it was, and
// claims the task again: every write of the forgotten claim's attempt is
// refused (its lease is revoked, its outcomes do not apply, it takes no
// endpoint slot), and the second claim's apply.
func TestSQLStore_ForgottenClaimIsFenced(t *testing.T) {
	t.Parallel()
	for name, open := range map[string]func(t *testing.T) (*sql.DB, Dialect){
		"sqlite":   func(t *testing.T) (*sql.DB, Dialect) { return sqliteDB(t), SQLite },
		"postgres": func(t *testing.T) (*sql.DB, Dialect) { return testdb.Postgres(t), Postgres },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			db, dialect := open(t)
			s, err := NewSQLStore(db, dialect)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			// Three tasks: two end with an outcome, one with a waiting outcome.
			var ids []string
			for range 3 {
				ids = append(ids, uuid.Must(uuid.NewV7()).String())
				if _, err := s.Insert(ctx, &Task{ID: ids[len(ids)-1], AppID: "a", EventType: "e", MaxAttempts: 3}); err != nil {
					t.Fatal(err)
				}
			}
			claim := func() map[string]*Task {
				t.Helper()
				ts, err := s.Claim(ctx, 3, time.Minute)
				if err != nil || len(ts) != 3 {
					t.Fatalf("Claim: got %d tasks, %v; want 3", len(ts), err)
				}
				byID := make(map[string]*Task)
				for _, tk := range ts {
					if tk.Attempts != 1 || tk.claim == 0 {
						t.Fatalf("Claim: task %s at attempt %d, token %d; want attempt 1, a token", tk.ID, tk.Attempts, tk.claim)
					}
					byID[tk.ID] = tk
				}
				return byID
			}
			first := claim()
			forget := s.db.Rebind(`UPDATE taskwheel_tasks SET state = 'scheduled', attempts = 0,
				lease_expires_at = NULL, claim_token = NULL WHERE id IN (?, ?, ?)`)
			if _, err := db.ExecContext(ctx, forget, ids[0], ids[1], ids[2]); err != nil {
				t.Fatal(err)
			}
			second := claim()
			var stale, fresh []Lease
			for _, id := range ids {
				stale, fresh = append(stale, first[id].lease()), append(fresh, second[id].lease())
			}
			if stale[0] == fresh[0] || stale[1] == fresh[1] || stale[2] == fresh[2] {
				t.Fatalf("two claims of one attempt: got leases %+v and %+v, want different tokens", stale, fresh)
			}

			revoked, err := s.Extend(ctx, stale, time.Minute)
			if slices.Sort(revoked); err != nil || !slices.Equal(revoked, slices.Sorted(slices.Values(ids))) {
				t.Errorf("Extend of the forgotten claim's leases: got revoked %q, %v; want all", revoked, err)
			}
			if revoked, err := s.Extend(ctx, fresh, time.Minute); err != nil || len(revoked) != 0 {
				t.Errorf("Extend of the second claim's leases: got revoked %q, %v; want none", revoked, err)
			}
			if _, _, _, err := s.TakeEndpointCapacity(ctx, "ep", stale[0], 0, ""); !errors.Is(err, ErrInvalidState) {
				t.Errorf("TakeEndpointCapacity for the forgotten claim: got %v, want ErrInvalidState", err)
			}
			if ok, _, _, err := s.TakeEndpointCapacity(ctx, "ep", fresh[0], 0, ""); !ok || err != nil {
				t.Errorf("TakeEndpointCapacity for the second claim: got %v, %v; want true, nil", ok, err)
			}

			completed := func(l Lease) Outcome {
				return Outcome{ID: l.ID, Attempt: l.Attempt, claim: l.claim, State: StateCompleted,
					Attempts: []Attempt{{Number: 1, StartedAt: time.Now()}}}
			}
			waits := func(l Lease) Outcome {
				return Outcome{ID: l.ID, Attempt: l.Attempt, claim: l.claim, State: StateRetrying,
					WaitReason: "waits", Delay: time.Hour}
			}
			// Both claims' outcomes in one call, as an engine that ran both
			// would send them: for the first two tasks the stale ones first,
			// for the third the stale one last.
			applied, err := s.Finish(ctx, []Outcome{
				completed(stale[0]), waits(stale[1]), completed(fresh[0]), waits(fresh[1]),
				completed(fresh[2]), completed(stale[2]),
			})
			if want := []bool{false, false, true, true, true, false}; err != nil || !slices.Equal(applied, want) {
				t.Fatalf("Finish of the forgotten and the second claims' outcomes: got %v, %v; want %v", applied, err, want)
			}
			done, err := s.Get(ctx, ids[0])
			if err != nil {
				t.Fatal(err)
			}
			waiting, err := s.Get(ctx, ids[1])
			if err != nil {
				t.Fatal(err)
			}
			if done.State != StateCompleted || done.claim != 0 || waiting.State != StateScheduled || waiting.Attempts != 0 {
				t.Errorf("after the outcomes: got %s (token %d) and %s at attempt %d; want completed (no token) and scheduled at 0",
					done.State, done.claim, waiting.State, waiting.Attempts)
			}
			if as, err := s.Attempts(ctx, ids[0]); err != nil || len(as) != 1 {
				t.Errorf("attempts of the completed task: got %d, %v; want the second claim's one", len(as), err)
			}
		})
	}
}

// TestSQLStore_ClaimsCommitAsync: on PostgreSQL every way of claiming
// commits with synchronous_commit off, and an outcome with the server's
// setting; with taskwheel.synchronous_claims on, claims too.
func TestSQLStore_ClaimsCommitAsync(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db, dsn := testdb.PostgresDSN(t)
	s := migrated(t, db, Postgres)
	// Each change of a task's state records the commit setting of its
	// transaction as it stands at the end of the statement.
	if _, err := db.ExecContext(ctx, `CREATE TABLE commit_log (state text, sync text);
CREATE FUNCTION log_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO commit_log VALUES (NEW.state, current_setting('synchronous_commit'));
	RETURN NEW;
END $$;
CREATE TRIGGER log_commit AFTER UPDATE OF state ON taskwheel_tasks
	FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state) EXECUTE FUNCTION log_commit()`); err != nil {
		t.Fatal(err)
	}
	var server string
	if err := db.QueryRowContext(ctx, `SHOW synchronous_commit`).Scan(&server); err != nil {
		t.Fatal(err)
	}
	if server == "off" {
		t.Skip("the server's synchronous_commit is off: no claim could wait")
	}
	optedOut, err := sql.Open("pgx", must(testdb.WithParam(dsn, "options", "-ctaskwheel.synchronous_claims=True")))
	if err != nil {
		t.Fatal(err)
	}
	defer optedOut.Close()
	sync, err := NewSQLStore(optedOut, Postgres)
	if err != nil {
		t.Fatal(err)
	}
	insert := func(app string) {
		t.Helper()
		tk := &Task{ID: uuid.Must(uuid.NewV7()).String(), AppID: app, EventType: "e", FlowKey: "k", MaxAttempts: 1}
		if _, err := s.Insert(ctx, tk); err != nil {
			t.Fatal(err)
		}
	}
	for _, store := range []struct {
		s    *SQLStore
		want string
	}{{s, "off"}, {sync, server}} {
		var claimed []*Task
		for _, path := range []struct {
			name  string
			claim func() ([]taskRow, error)
		}{
			{"plain", func() ([]taskRow, error) {
				return queryClaim(ctx, store.s.db, claimPostgres, 1, time.Minute)
			}},
			{"fair", func() ([]taskRow, error) {
				insert("b") // apps are served in turn when two have tasks due
				rs, ok, err := store.s.claimFair(ctx, store.s.db, 1, time.Minute)
				if !ok && err == nil {
					err = errors.New("claimFair did not claim")
				}
				return rs, err
			}},
			{"flow, nothing held back", func() ([]taskRow, error) {
				if _, err := store.s.SetLimit(ctx, &Limit{AppID: "a", Key: "k", Concurrency: 100}); err != nil {
					return nil, err
				}
				defer store.s.DeleteLimit(ctx, "a", "k")
				return store.s.claimFlowFast(ctx, store.s.db, 1, time.Minute)
			}},
			{"flow", func() ([]taskRow, error) {
				// A rate limit has claimFlowFast claim nothing.
				if _, err := store.s.SetLimit(ctx, &Limit{AppID: "a", Key: "k", Rate: 1000, Burst: 10}); err != nil {
					return nil, err
				}
				defer store.s.DeleteLimit(ctx, "a", "k")
				ts, err := store.s.claimFlow(ctx, store.s.db, 1, time.Minute)
				rs := make([]taskRow, len(ts))
				for i, tk := range ts {
					rs[i] = taskRow{ID: tk.ID, Attempts: tk.Attempts, ClaimToken: sql.NullInt64{Int64: tk.claim, Valid: true}}
				}
				return rs, err
			}},
		} {
			insert("a")
			rs, err := path.claim()
			if err != nil || len(rs) != 1 {
				t.Fatalf("%s claim: got %d tasks, %v; want 1", path.name, len(rs), err)
			}
			claimed = append(claimed, rs[0].task())
			var got string
			if err := db.QueryRowContext(ctx, `SELECT string_agg(sync, ',') FROM commit_log`).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != store.want {
				t.Errorf("%s claim, taskwheel.synchronous_claims %s: got synchronous_commit %q, want %q",
					path.name, map[bool]string{true: "on", false: "unset"}[store.s == sync], got, store.want)
			}
			if _, err := db.ExecContext(ctx, `TRUNCATE commit_log`); err != nil {
				t.Fatal(err)
			}
		}
		outs := make([]Outcome, len(claimed))
		for i, tk := range claimed {
			outs[i] = Outcome{ID: tk.ID, Attempt: tk.Attempts, claim: tk.claim, State: StateCompleted}
		}
		if applied, err := store.s.Finish(ctx, outs); err != nil || slices.Contains(applied, false) {
			t.Fatalf("Finish: got %v, %v; want every outcome applied", applied, err)
		}
		var got string
		if err := db.QueryRowContext(ctx, `SELECT string_agg(DISTINCT sync, ',') FROM commit_log`).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != server {
			t.Errorf("Finish: got synchronous_commit %q, want the server's %q", got, server)
		}
		if _, err := db.ExecContext(ctx, `TRUNCATE commit_log`); err != nil {
			t.Fatal(err)
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestEngine_CancelStopsForgottenClaim: a task whose claim the database
// forgot is scheduled again as far as the store knows, and a cancel
// through the engine that runs it cancels it at once: the run here is
// stale, and its context is cancelled then, not at its next lease
// extension. Its outcome is not stored.
func TestEngine_CancelStopsForgottenClaim(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db, s := openSQLite(t)
	e, err := NewEngine(s, &Config{Lease: time.Hour}) // no lease extension during the test
	if err != nil {
		t.Fatal(err)
	}
	started, stopped := make(chan struct{}), make(chan error, 1)
	e.Register("e", func(ctx context.Context, _ *Task) error {
		close(started)
		select {
		case <-ctx.Done():
			stopped <- ctx.Err()
		case <-time.After(time.Minute):
			stopped <- nil
		}
		return ctx.Err()
	})
	defer e.Stop(context.Background())
	tk := runForgotten(t, db, e, func() { <-started }, time.Hour) // due in an hour, as far as the store knows
	got, err := e.Cancel(ctx, tk.ID)
	if err != nil || got.State != StateCanceled {
		t.Fatalf("Cancel: got %v, %v; want the task canceled", got, err)
	}
	select {
	case err := <-stopped:
		if err == nil {
			t.Error("the forgotten run's context was not cancelled")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the forgotten run was not cancelled within 10 s of the cancel")
	}
	if err := e.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	got, err = e.Get(ctx, tk.ID)
	if err != nil || got.State != StateCanceled || got.Attempts != 0 {
		t.Errorf("after Stop: got %+v, %v; want canceled at attempt 0", got, err)
	}
}

// TestEngine_ForgottenClaimReclaimedHereIsCancelled: when the engine that
// still runs a forgotten claim's attempt is the one that claims the task
// again (one engine, as after a crash of its server), the forgotten run's
// context is cancelled, and only the second run goes on.
func TestEngine_ForgottenClaimReclaimedHereIsCancelled(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db, s := openSQLite(t)
	e, err := NewEngine(s, &Config{Lease: time.Hour, PollInterval: 50 * time.Millisecond}) // no lease extension during the test
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan int, 2)
	firstDone := make(chan error, 1)
	var runs atomic.Int32
	e.Register("e", func(ctx context.Context, _ *Task) error {
		n := runs.Add(1)
		started <- int(n)
		if n > 1 {
			return nil
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Minute):
		}
		firstDone <- ctx.Err()
		return ctx.Err()
	})
	defer e.Stop(context.Background())
	tk := runForgotten(t, db, e, func() { <-started }, 0) // due again now, as far as the store knows
	select {
	case <-started: // claimed again here, at attempt 1
	case <-time.After(10 * time.Second):
		t.Fatal("the forgotten task was not claimed again within 10 s")
	}
	select {
	case err := <-firstDone:
		if err == nil {
			t.Error("the forgotten run ended without its context cancelled")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the forgotten run was not cancelled within 10 s of the second claim")
	}
	if err := e.Stop(ctx); err != nil { // stores the second run's outcome
		t.Fatal(err)
	}
	got, err := s.Get(ctx, tk.ID)
	if err != nil {
		t.Fatal(err)
	}
	if as, err := s.Attempts(ctx, tk.ID); err != nil || len(as) != 1 || got.State != StateCompleted || got.Attempts != 1 {
		t.Errorf("the task: %s at attempt %d, %d attempts recorded (%v); want completed, the second run's only",
			got.State, got.Attempts, len(as), err)
	}
}

// TestSQLStore_SynchronousClaimsReadAsABoolean: claims wait for the disk
// exactly when PostgreSQL reads taskwheel.synchronous_claims as true; a
// value that is false, or not a boolean, leaves them asynchronous.
func TestSQLStore_SynchronousClaimsReadAsABoolean(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := testdb.Postgres(t)
	var server string
	if err := db.QueryRowContext(ctx, `SHOW synchronous_commit`).Scan(&server); err != nil {
		t.Fatal(err)
	}
	if server == "off" {
		t.Skip("the server's synchronous_commit is off: no claim could wait")
	}
	for _, v := range []string{"on", "ON", "true", "True", "yes", "1", "t", "tr", "tru", "y", "ye", " on", "on\t",
		"off", "false", "no", "0", "o", "", "garbage", "onn"} {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.ExecContext(ctx, `SELECT set_config('taskwheel.synchronous_claims', $1, true)`, v); err != nil {
			t.Fatal(err)
		}
		var isTrue bool // as PostgreSQL reads it; false if it cannot
		if err := tx.QueryRowContext(ctx, `SELECT CASE WHEN $1::text ~* '^\s*(t|tr|tru|true|y|ye|yes|on|1)\s*$' THEN true ELSE false END`, v).Scan(&isTrue); err != nil {
			t.Fatal(err)
		}
		if isTrue {
			var pg bool
			if err := tx.QueryRowContext(ctx, `SELECT current_setting('taskwheel.synchronous_claims')::boolean`).Scan(&pg); err != nil || !pg {
				t.Fatalf("%q: PostgreSQL reads it as %v, %v; the test's reading is wrong", v, pg, err)
			}
		}
		if _, err := tx.ExecContext(ctx, `SELECT 1 WHERE `+claimCommitsAsync); err != nil {
			t.Fatal(err)
		}
		var got string
		if err := tx.QueryRowContext(ctx, `SHOW synchronous_commit`).Scan(&got); err != nil {
			t.Fatal(err)
		}
		tx.Rollback()
		want := "off"
		if isTrue {
			want = server
		}
		if got != want {
			t.Errorf("taskwheel.synchronous_claims = %q: got synchronous_commit %q for the claim, want %q", v, got, want)
		}
	}
}

// TestSQLStore_ClaimTokenDoesNotFollowSetseed: a session's setseed()
// makes its random() values repeat; the claim tokens do not, so that a
// pool whose connections seed random() at connect still tells two claims
// of one attempt apart.
func TestSQLStore_ClaimTokenDoesNotFollowSetseed(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := testdb.Postgres(t)
	db.SetMaxOpenConns(1)
	s := migrated(t, db, Postgres)
	id := uuid.Must(uuid.NewV7()).String()
	if _, err := s.Insert(ctx, &Task{ID: id, AppID: "a", EventType: "e", MaxAttempts: 3}); err != nil {
		t.Fatal(err)
	}
	claim := func() *Task {
		t.Helper()
		if _, err := db.ExecContext(ctx, `SELECT setseed(0.5)`); err != nil { // as a connect hook would
			t.Fatal(err)
		}
		ts, err := s.Claim(ctx, 1, time.Minute)
		if err != nil || len(ts) != 1 {
			t.Fatalf("Claim: got %d tasks, %v; want 1", len(ts), err)
		}
		return ts[0]
	}
	first := claim()
	if _, err := db.ExecContext(ctx, `UPDATE taskwheel_tasks SET state = 'scheduled', attempts = 0,
		lease_expires_at = NULL, claim_token = NULL WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	if second := claim(); first.lease() == second.lease() {
		t.Errorf("two claims of attempt 1, each after setseed(0.5): got the same token %d twice", first.claim)
	}
}

// sqliteDB opens an SQLite database in t's temporary directory with the
// settings package sqlite gives its stores, which this package's tests
// cannot import.
func sqliteDB(t *testing.T) *sql.DB {
	t.Helper()
	return sqliteDBAt(t, filepath.Join(t.TempDir(), "tasks.db"))
}

// sqliteDBAt is sqliteDB on the file at path, which another may share, as
// another process would.
func sqliteDBAt(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?_journal_mode=WAL&_busy_timeout=10000&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

// openSQLite returns a migrated SQLStore on sqliteDB, and its database.
func openSQLite(t *testing.T) (*sql.DB, *SQLStore) {
	t.Helper()
	db := sqliteDB(t)
	return db, migrated(t, db, SQLite)
}

// migrated returns an SQLStore of dialect d on db, migrated.
func migrated(t *testing.T, db *sql.DB, d Dialect) *SQLStore {
	t.Helper()
	s, err := NewSQLStore(db, d)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	return s
}

// runForgotten starts e on the SQLite store of db, enqueues a task of
// event type "e", waits for its first run to start (firstRun), and forgets
// that run's claim as a crash of PostgreSQL would: the task is scheduled
// again at attempt 0, due later than it was.
func runForgotten(t *testing.T, db *sql.DB, e *Engine, firstRun func(), later time.Duration) *Task {
	t.Helper()
	ctx := t.Context()
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	tk, err := e.Enqueue(ctx, NewTask{AppID: "a", EventType: "e"})
	if err != nil {
		t.Fatal(err)
	}
	firstRun()
	if _, err := db.ExecContext(ctx, `UPDATE taskwheel_tasks SET state = 'scheduled', attempts = 0,
		run_at = run_at + ?, lease_expires_at = NULL, claim_token = NULL WHERE id = ?`, later.Microseconds(), tk.ID); err != nil {
		t.Fatal(err)
	}
	return tk
}

// TestSQLStore_FinishReadsByKey: on PostgreSQL, Finish finds a batch's
// tasks by their primary key, also a batch of hundreds in a table that was
// never analyzed, whose planner estimates its rows from its size alone and
// read the whole table for such a batch (taskwheel_finish, migration
// 0028). The table's own counters tell: no sequential scan of it.
func TestSQLStore_FinishReadsByKey(t *testing.T) {
	t.Parallel()
	db := testdb.Postgres(t)
	db.SetMaxOpenConns(1) // one backend, whose counters the test flushes
	s := migrated(t, db, Postgres)
	ctx := t.Context()
	insertAt(t, s, "app_1", 20_000, nil)
	ts, err := s.Claim(ctx, maxOutcomeBatch, time.Minute)
	if err != nil || len(ts) != maxOutcomeBatch {
		t.Fatalf("Claim = %d tasks, %v; want %d", len(ts), err, maxOutcomeBatch)
	}
	scans := func() (seq, idx int64) {
		t.Helper()
		// The backend's counters reach pg_stat_user_tables when its next
		// transaction ends.
		if _, err := db.ExecContext(ctx, `SELECT pg_stat_force_next_flush()`); err != nil {
			t.Fatal(err)
		}
		if err := db.QueryRowContext(ctx, `SELECT seq_scan, idx_scan FROM pg_stat_user_tables
			WHERE relid = 'taskwheel_tasks'::regclass`).Scan(&seq, &idx); err != nil {
			t.Fatal(err)
		}
		return seq, idx
	}
	seq, idx := scans()
	outs := make([]Outcome, len(ts))
	for i, task := range ts {
		outs[i] = Outcome{ID: task.ID, Attempt: task.Attempts, claim: task.claim, State: StateCompleted}
	}
	applied, err := s.Finish(ctx, outs)
	if err != nil || !slices.Equal(applied, slices.Repeat([]bool{true}, len(outs))) {
		t.Fatalf("Finish = %v, %v; want every outcome applied", applied, err)
	}
	seq2, idx2 := scans()
	if seq2 != seq || idx2 == idx {
		t.Errorf("Finish of %d outcomes among 20,000 tasks: %d sequential and %d index scans of the table, want 0 and some",
			len(outs), seq2-seq, idx2-idx)
	}
}
