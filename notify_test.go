package tasks_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/internal/testdb"
)

// postgresStores returns n stores on one new PostgreSQL schema, each with a
// connection pool of its own, as n processes would have.
func postgresStores(t testing.TB, n int) []tasks.Store {
	t.Helper()
	_, dsn := testdb.PostgresDSN(t)
	var stores []tasks.Store
	for range n {
		db, err := sql.Open("pgx", dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		s, err := tasks.NewSQLStore(db, tasks.Postgres)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Migrate(context.Background()); err != nil {
			t.Fatal(err)
		}
		stores = append(stores, s)
	}
	return stores
}

// TestPostgres_Notify checks that an engine learns at once of the tasks
// another process stores, through LISTEN/NOTIFY: with polling all but off,
// a task due now and a task due shortly start near their time.
func TestPostgres_Notify(t *testing.T) {
	t.Parallel()
	stores := postgresStores(t, 2)
	producerStore, workerStore := stores[0], stores[1]
	started := make(chan time.Time, 2)
	startEngine(t, workerStore, &tasks.Config{PollInterval: time.Hour}, map[string]tasks.Func{
		"x": func(ctx context.Context, task *tasks.Task) error {
			started <- time.Now()
			return nil
		},
	})
	producer := newEngine(t, producerStore, nil) // enqueues only
	// The worker's listener may still be connecting: wait until a task due
	// now gets through, then measure.
	deadline := time.Now().Add(10 * time.Second)
	for {
		enqueue(t, producer, tasks.NewTask{EventType: "x"})
		select {
		case <-started:
		case <-time.After(100 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatal("the worker never heard of the producer's task")
			}
			continue
		}
		break
	}
	for _, ahead := range []time.Duration{0, 300 * time.Millisecond} {
		runAt := time.Now().Add(ahead)
		enqueue(t, producer, tasks.NewTask{EventType: "x", RunAt: runAt})
		select {
		case at := <-started:
			if late := at.Sub(runAt); late < 0 || late > 200*time.Millisecond {
				t.Errorf("task due in %v started %v after its time, want within 200ms", ahead, late)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("task due in %v never started: the notification was not heard", ahead)
		}
	}
}

// plainStore hides every method but those of Store, so the engine cannot
// listen: a store whose notifications are all lost.
type plainStore struct{ tasks.Store }

// TestPostgres_LostNotification checks the bound on a lost notification:
// the engine's poll finds the task within Config.PollInterval.
func TestPostgres_LostNotification(t *testing.T) {
	t.Parallel()
	stores := postgresStores(t, 2)
	producerStore, workerStore := stores[0], stores[1]
	started := make(chan time.Time, 1)
	const poll = 200 * time.Millisecond
	startEngine(t, plainStore{workerStore}, &tasks.Config{PollInterval: poll}, map[string]tasks.Func{
		"x": func(ctx context.Context, task *tasks.Task) error {
			started <- time.Now()
			return nil
		},
	})
	producer := newEngine(t, producerStore, nil)
	enqueued := time.Now()
	enqueue(t, producer, tasks.NewTask{EventType: "x"})
	select {
	case at := <-started:
		if wait := at.Sub(enqueued); wait > poll+300*time.Millisecond {
			t.Errorf("task started %v after it was stored, want within the poll interval %v", wait, poll)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("task never started")
	}
}
