package postgres_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/stdlib"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/internal/testdb"
	"github.com/taskwheel/tasks/postgres"
)

var wakeN atomic.Int64

// wakeTask returns a task to insert, due at (nil: now), with a unique ID.
func wakeTask(at *time.Time) *tasks.Task {
	return &tasks.Task{
		ID:    fmt.Sprintf("00000000-0000-4000-9000-%012d", wakeN.Add(1)),
		AppID: "a", EventType: "e", MaxAttempts: 1, ScheduledRunTime: at,
	}
}

// listenOn opens a store on dsn, closed when the test ends, and returns
// listenTo of it.
func listenOn(t *testing.T, dsn string) <-chan tasks.Due {
	t.Helper()
	s, err := postgres.Open(t.Context(), dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() }) // after listenTo's cleanup
	return listenTo(t, s)
}

// listenTo starts a Listen of s that runs until the test ends, and returns
// the wake-ups it hears, once it listens.
func listenTo(t *testing.T, s *postgres.Store) <-chan tasks.Due {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	listening := make(chan struct{})
	heard := make(chan tasks.Due, 64)
	returned := make(chan error, 1)
	go func() { // joined below, at cleanup
		returned <- s.Listen(ctx, func() { close(listening) }, func(d tasks.Due) { heard <- d })
	}()
	t.Cleanup(func() { cancel(); <-returned })
	select {
	case <-listening:
	case err := <-returned:
		t.Fatalf("Listen returned %v before listening", err)
	case <-time.After(10 * time.Second):
		t.Fatal("Listen did not start listening")
	}
	return heard
}

// next returns the next wake-up heard, failing the test after 10 s.
func next(t *testing.T, heard <-chan tasks.Due, what string) tasks.Due {
	t.Helper()
	select {
	case d := <-heard:
		return d
	case <-time.After(10 * time.Second):
		t.Fatalf("no wake-up heard for %s", what)
		return tasks.Due{}
	}
}

// TestStore_WakeUpsAfterCommit checks the wake-ups of a store's own
// inserts, which it sends after their commit instead of the trigger: a
// batch is one wake-up (its earliest task, then its latest time); an
// insert in the caller's transaction, on the store's own connections, is
// still notified by the trigger; Close returns once the wake-ups are sent;
// and a store from New, once closed, leaves its inserts' wake-ups to the
// trigger again.
func TestStore_WakeUpsAfterCommit(t *testing.T) {
	t.Parallel()
	db, dsn := testdb.PostgresDSN(t)
	heard := listenOn(t, dsn)
	producer, err := postgres.Open(t.Context(), dsn, nil)
	if err != nil {
		t.Fatal(err)
	}

	later := time.Now().Add(2 * time.Second)
	batch := []*tasks.Task{wakeTask(nil), wakeTask(nil), wakeTask(&later)}
	stored, err := producer.InsertMany(t.Context(), batch)
	if err != nil {
		t.Fatal(err)
	}
	if d := next(t, heard, "a batch"); d.ID != stored[0].ID || !d.RunAt.Equal(*stored[0].NextAttemptAt) {
		t.Errorf("batch: got %+v, want its earliest task %s at %v", d, stored[0].ID, stored[0].NextAttemptAt)
	}
	if d := next(t, heard, "a batch's latest time"); d.ID != "" || !d.RunAt.Equal(*stored[2].NextAttemptAt) {
		t.Errorf("batch: got %+v, want its latest time %v without an ID", d, stored[2].NextAttemptAt)
	}

	tx, err := producer.DB().BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	inTx, err := producer.InsertTx(t.Context(), tx, wakeTask(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if d := next(t, heard, "an insert in the caller's transaction"); d.ID != inTx.ID {
		t.Errorf("in a transaction: got %+v, want %s", d, inTx.ID)
	}

	last, err := producer.InsertMany(t.Context(), []*tasks.Task{wakeTask(nil)})
	if err != nil {
		t.Fatal(err)
	}
	if err := producer.Close(); err != nil {
		t.Fatal(err)
	}
	if d := next(t, heard, "an insert just before Close"); d.ID != last[0].ID {
		t.Errorf("before Close: got %+v, want %s", d, last[0].ID)
	}

	// A store from New on a pool it does not own: closed, its inserts go
	// on, and the trigger notifies them.
	borrowed, err := postgres.New(db)
	if err != nil {
		t.Fatal(err)
	}
	if err := borrowed.Close(); err != nil {
		t.Fatal(err)
	}
	after, err := borrowed.InsertMany(t.Context(), []*tasks.Task{wakeTask(nil)})
	if err != nil {
		t.Fatal(err)
	}
	if d := next(t, heard, "an insert after Close, by the trigger"); d.ID != after[0].ID {
		t.Errorf("after Close: got %+v, want %s", d, after[0].ID)
	}
}

// TestWakeDeferredByTheTransaction checks the trigger's side of migration
// 0024: an insert whose transaction set taskwheel.notify to 'deferred' is
// not notified, and the setting ends with its transaction. One session's
// notifications arrive in the order of its commits, so hearing the second
// insert first shows that the first sent nothing.
func TestWakeDeferredByTheTransaction(t *testing.T) {
	t.Parallel()
	db, dsn := testdb.PostgresDSN(t)
	heard := listenOn(t, dsn)
	if _, ok := db.Driver().(*stdlib.Driver); !ok {
		t.Fatalf("test database opened with %T", db.Driver())
	}
	conn, err := db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const insert = `INSERT INTO taskwheel_tasks (id, app_id, event_type, state, data, run_at, max_attempts, created_at, updated_at)
VALUES ($1, 'a', 'e', 'scheduled', '{}', now(), 1, now(), now())`
	tx, err := conn.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(`SELECT set_config('taskwheel.notify', 'deferred', true)`); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(insert, "deferred"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(t.Context(), insert, "notified"); err != nil {
		t.Fatal(err)
	}
	if d := next(t, heard, "the insert after the deferred one"); d.ID != "notified" {
		t.Errorf("got a wake-up for %q, want %q: the deferred insert notified, or the setting outlived its transaction", d.ID, "notified")
	}
}
