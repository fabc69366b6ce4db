package postgres_test

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/pressly/goose/v3"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/internal/testdb"
	"github.com/taskwheel/tasks/postgres"
)

// TestStore_WakeResentWhenTheSendersConnectionEnds checks that a wake-up
// whose NOTIFY fails after its insert committed is sent again: here the
// sender's backend is terminated while the NOTIFY runs (in production, a
// failover, or a connection killed by a proxy or an idle timeout), and the
// listener must still hear of the task. The insert itself is retried on a
// lost connection (retryLost); this is the same for its wake-up, which is
// no longer in the insert's transaction.
//
// taskwheel_wake is replaced, in the test's schema only, by one that
// sleeps first, so that the NOTIFY is still running when its backend is
// terminated. Only the sender calls it: the trigger skips deferred inserts.
func TestStore_WakeResentWhenTheSendersConnectionEnds(t *testing.T) {
	t.Parallel()
	db, dsn := testdb.PostgresDSN(t)
	heard := listenOn(t, dsn)
	app := "pgreview_" + time.Now().Format("150405.000000")
	producer, err := postgres.Open(t.Context(), dsn+"&application_name="+app, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	if _, err := db.ExecContext(t.Context(), `CREATE OR REPLACE FUNCTION taskwheel_wake(lo timestamptz, id text, hi timestamptz)
RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_sleep(2);
	RETURN (extract(epoch FROM lo) * 1000000)::bigint || ' ' || id ||
		CASE WHEN hi > lo THEN ' ' || (extract(epoch FROM hi) * 1000000)::bigint ELSE '' END;
END
$$`); err != nil {
		t.Fatal(err)
	}

	stored, err := producer.InsertMany(t.Context(), []*tasks.Task{wakeTask(nil)})
	if err != nil {
		t.Fatal(err)
	}
	// The insert is committed; its wake-up is being sent. End the sender's
	// connection.
	killed := false
	for deadline := time.Now().Add(5 * time.Second); !killed && time.Now().Before(deadline); {
		err := db.QueryRowContext(t.Context(), `SELECT count(pg_terminate_backend(pid)) > 0 FROM pg_stat_activity
WHERE application_name = $1 AND state = 'active' AND query LIKE '%pg_notify%'`, app).Scan(&killed)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !killed {
		t.Fatal("found no sender's NOTIFY running to terminate")
	}
	var n int
	if err := db.QueryRowContext(t.Context(), `SELECT count(*) FROM taskwheel_tasks WHERE id = $1`, stored[0].ID).Scan(&n); err != nil || n != 1 {
		t.Fatalf("task stored: got %d, %v; want 1", n, err)
	}
	select {
	case d := <-heard:
		t.Logf("heard %+v", d)
	case <-time.After(5 * time.Second):
		t.Errorf("task %s committed, but no engine heard of it: its wake-up died with the sender's connection and was not sent again", stored[0].ID)
	}
}

// TestStore_DeferredSettingDoesNotLeak checks that InsertMany's
// transaction-local setting does not outlive its statement on a pooled
// connection: with one connection in the pool, the application's own
// insert, in its transaction and by raw SQL, right after an InsertMany on
// that same connection, is notified by the trigger.
func TestStore_DeferredSettingDoesNotLeak(t *testing.T) {
	t.Parallel()
	_, dsn := testdb.PostgresDSN(t)
	heard := listenOn(t, dsn)
	pool, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	pool.SetMaxOpenConns(1)
	producer, err := postgres.New(pool)
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	const insert = `INSERT INTO taskwheel_tasks (id, app_id, event_type, state, data, run_at, max_attempts, created_at, updated_at)
VALUES ($1, 'a', 'e', 'scheduled', '{}', now(), 1, now(), now())`
	for i := range 20 {
		// keyed: InsertMany's own transaction (insertManyTx); unkeyed: one statement.
		task := wakeTask(nil)
		if i%2 == 1 {
			task.IdempotencyKey = task.ID
		}
		got, err := producer.InsertMany(t.Context(), []*tasks.Task{task})
		if err != nil {
			t.Fatal(err)
		}
		if d := next(t, heard, "InsertMany"); d.ID != got[0].ID {
			t.Fatalf("got %+v, want %s", d, got[0].ID)
		}
		tx, err := pool.BeginTx(t.Context(), nil)
		if err != nil {
			t.Fatal(err)
		}
		id := wakeTask(nil).ID
		if _, err := tx.ExecContext(t.Context(), insert, id); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		if d := next(t, heard, "the app's insert after InsertMany"); d.ID != id {
			t.Fatalf("app's insert: got %+v, want %s", d, id)
		}
		if _, err := pool.ExecContext(context.Background(), insert, id+"x"); err != nil {
			t.Fatal(err)
		}
		if d := next(t, heard, "the app's autocommit insert"); d.ID != id+"x" {
			t.Fatalf("app's autocommit insert: got %+v, want %s", d, id+"x")
		}
	}
}

// TestMigration0024FromAt0022 upgrades a schema that goose brought
// to 0022 (postgres.Migrations) while a store of this version already
// defers its wake-ups: before 0024 an insert is notified twice (trigger
// and sender), harmless; after goose applies the rest, once; Migrate then
// finds nothing to do and changes nothing.
func TestMigration0024FromAt0022(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db, dsn, p := openGoose(t)
	if _, err := p.UpTo(ctx, 22); err != nil {
		t.Fatalf("goose up to 22: %v", err)
	}
	ldb, err := sql.Open("pgx", dsn) // not Open, which migrates
	if err != nil {
		t.Fatal(err)
	}
	defer ldb.Close()
	listener, err := postgres.New(ldb)
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close()
	heard := listenTo(t, listener)
	if v, _, err := listener.SchemaVersion(ctx); err != nil || v != 22 {
		t.Fatalf("schema version: got %d, %v; want 22", v, err)
	}
	producer, err := postgres.New(db)
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	got, err := producer.InsertMany(ctx, []*tasks.Task{wakeTask(nil)})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if d := next(t, heard, fmt.Sprintf("wake-up %d at 0022", i+1)); d.ID != got[0].ID {
			t.Fatalf("at 0022: got %+v, want %s", d, got[0].ID)
		}
	}
	res, err := p.Up(ctx)
	if err != nil {
		t.Fatalf("goose up: %v", err)
	}
	if !slices.ContainsFunc(res, func(r *goose.MigrationResult) bool { return r.Source.Version == 24 }) {
		t.Fatalf("goose up from 22 applied %v, want 24 among them", res)
	}
	before := pgSchema(t, db)
	if err := producer.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if after := pgSchema(t, db); after != before {
		t.Errorf("Migrate after goose changed the schema:\n%s\nwas\n%s", after, before)
	}
	got, err = producer.InsertMany(ctx, []*tasks.Task{wakeTask(nil)})
	if err != nil {
		t.Fatal(err)
	}
	if d := next(t, heard, "the insert at 0024"); d.ID != got[0].ID {
		t.Fatalf("at 0024: got %+v, want %s", d, got[0].ID)
	}
	select {
	case d := <-heard:
		t.Errorf("at 0024: a second wake-up %+v for one insert", d)
	case <-time.After(500 * time.Millisecond):
	}
}

// TestStore_CloseWhileOthersInsert closes a store from New while other
// goroutines go on inserting through it, which its doc allows (its inserts
// then leave their wake-ups to the trigger). Close must return soon: it
// waits for the wake-ups pending when it came, not for those of inserts
// after it. (It waited for as long as the inserts went on, when the sender
// also took the wake-ups of inserts that the trigger had notified.)
func TestStore_CloseWhileOthersInsert(t *testing.T) {
	t.Parallel()
	_, dsn := testdb.PostgresDSN(t)
	producer := borrowing(t, dsn)
	ctx, cancel := context.WithCancel(context.Background())
	inserted := make(chan error, 4)
	for range 4 {
		go func() { // joined below
			var err error
			for ctx.Err() == nil && err == nil {
				_, err = producer.InsertMany(ctx, []*tasks.Task{wakeTask(nil)})
			}
			if ctx.Err() != nil {
				err = nil
			}
			inserted <- err
		}()
	}
	time.Sleep(200 * time.Millisecond)
	closed := make(chan error, 1)
	begun := time.Now()
	go func() { closed <- producer.Close() }() // joined below
	select {
	case err := <-closed:
		if err != nil {
			t.Error(err)
		}
		closed = nil
	case <-time.After(3 * time.Second):
		t.Errorf("Close still waiting after 3s while inserts go on")
	}
	cancel()
	for range 4 {
		if err := <-inserted; err != nil {
			t.Error(err)
		}
	}
	if closed != nil {
		if err := <-closed; err != nil {
			t.Error(err)
		}
		t.Logf("Close returned %v after it began, once the inserts stopped", time.Since(begun))
	}
}

// TestStore_InsertAcrossClose checks the wake-up of an insert that began
// before its store's Close, and so left its wake-up to the store, and
// committed after: the insert sends it itself, and Close does not wait
// for it. The insert is held on a row lock: another transaction has
// inserted a task with the same ID, and rolls back once Close returned.
func TestStore_InsertAcrossClose(t *testing.T) {
	t.Parallel()
	db, dsn := testdb.PostgresDSN(t)
	heard := listenOn(t, dsn)
	app := "across_" + time.Now().Format("150405.000000")
	producer := borrowing(t, dsn+"&application_name="+app)
	task := wakeTask(nil)
	holder, err := db.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback()
	if _, err := producer.InsertTx(t.Context(), holder, &tasks.Task{
		ID: task.ID, AppID: task.AppID, EventType: task.EventType, MaxAttempts: 1,
	}); err != nil {
		t.Fatal(err)
	}
	inserted := make(chan error, 1)
	go func() { // joined below
		_, err := producer.InsertMany(context.Background(), []*tasks.Task{task})
		inserted <- err
	}()
	for waiting := false; !waiting; {
		if err := db.QueryRowContext(t.Context(), `SELECT count(*) > 0 FROM pg_stat_activity
WHERE application_name = $1 AND wait_event_type = 'Lock'`, app).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-inserted:
			t.Fatalf("the insert returned %v before the holder's rollback", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	if err := producer.Close(); err != nil {
		t.Fatal(err)
	}
	if err := holder.Rollback(); err != nil {
		t.Fatal(err)
	}
	if err := <-inserted; err != nil {
		t.Fatal(err)
	}
	if d := next(t, heard, "the insert across Close"); d.ID != task.ID {
		t.Errorf("got %+v, want %s", d, task.ID)
	}
}

// borrowing returns a migrated store from New on a pool of dsn that the
// test owns, closed when it ends.
func borrowing(t *testing.T, dsn string) *postgres.Store {
	t.Helper()
	pool, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pool.Close() })
	s, err := postgres.New(pool)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	return s
}
