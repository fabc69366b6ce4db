// Package testkit holds the helpers that the tests of package tasks and of
// package dashboard share: engines started for a test and stopped by its
// cleanup, tasks enqueued and waited for, webhook endpoints, and SQLite and
// PostgreSQL stores that share a database as processes would. Every helper fails the test
// at once on an error.
package testkit

import (
	"context"
	"database/sql"
	"net/http"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/internal/testdb"
	"github.com/taskwheel/tasks/postgres"
	"github.com/taskwheel/tasks/sqlite"
)

// NewEngine returns an engine on store that is not started.
func NewEngine(t *testing.T, store tasks.Store, cfg *tasks.Config) *tasks.Engine {
	t.Helper()
	e, err := tasks.NewEngine(store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// StartEngine returns a started engine on store that runs funcs; the test's
// cleanup stops it.
func StartEngine(t *testing.T, store tasks.Store, cfg *tasks.Config, funcs map[string]tasks.Func) *tasks.Engine {
	t.Helper()
	e := NewEngine(t, store, cfg)
	for et, fn := range funcs {
		e.Register(et, fn)
	}
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.Stop(context.Background()); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return e
}

// WaitState polls the task until it reaches want, or fails the test after
// 10 seconds.
func WaitState(t *testing.T, e *tasks.Engine, id string, want tasks.State) *tasks.Task {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := e.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if got.State == want {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s: state %s (last error %q), want %s", id, got.State, got.LastError, want)
		}
		time.Sleep(time.Millisecond)
	}
}

// Enqueue enqueues nt, in app_1 unless it names an app.
func Enqueue(t *testing.T, e *tasks.Engine, nt tasks.NewTask) *tasks.Task {
	t.Helper()
	if nt.AppID == "" {
		nt.AppID = "app_1"
	}
	task, err := e.Enqueue(context.Background(), nt)
	if err != nil {
		t.Fatal(err)
	}
	return task
}

// CreateEndpoint creates ne, in app_1 unless it names an app.
func CreateEndpoint(t *testing.T, e *tasks.Engine, ne tasks.NewEndpoint) *tasks.Endpoint {
	t.Helper()
	if ne.AppID == "" {
		ne.AppID = "app_1"
	}
	ep, err := e.CreateEndpoint(context.Background(), ne)
	if err != nil {
		t.Fatal(err)
	}
	return ep
}

// Status is a webhook receiver's answer: the status code alone.
func Status(code int) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) { w.WriteHeader(code) }
}

// PostgresStores returns n stores on one new, migrated PostgreSQL schema,
// each with a connection pool of its own, as n processes would have.
func PostgresStores(t testing.TB, n int) []tasks.Store {
	t.Helper()
	_, dsn := testdb.PostgresDSN(t)
	var stores []tasks.Store
	for range n {
		db, err := sql.Open("pgx", dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		s, err := postgres.New(db)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Migrate(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() }) // before db's: sends the last wake-ups
		stores = append(stores, s)
	}
	return stores
}

// SQLiteStores returns n stores on one new, migrated SQLite file, each
// opened on its own, as n processes would have; the test's cleanup closes
// them.
func SQLiteStores(t testing.TB, n int) []tasks.Store {
	t.Helper()
	path := testdb.SQLitePath(t)
	var stores []tasks.Store
	for range n {
		s, err := sqlite.Open(path, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		stores = append(stores, s)
	}
	return stores
}

// SharedStores lists every kind of store with a function that opens n
// stores on one new database, as n processes sharing it would; on the
// memory store, which no other process can reach, the n are one store.
var SharedStores = []struct {
	Name string
	Open func(t testing.TB, n int) []tasks.Store
}{
	{"memory", func(_ testing.TB, n int) []tasks.Store {
		s := tasks.NewMemoryStore()
		stores := make([]tasks.Store, n)
		for i := range stores {
			stores[i] = s
		}
		return stores
	}},
	{"sqlite", SQLiteStores},
	{"postgres", PostgresStores},
}

// RunOneTask starts an engine on s, enqueues a task and waits, up to 10
// seconds, for it to run: the store works end to end.
func RunOneTask(t *testing.T, s tasks.Store) {
	t.Helper()
	eng, err := tasks.NewEngine(s, nil)
	if err != nil {
		t.Fatal(err)
	}
	ran := make(chan string, 1)
	eng.Register("test.event", func(_ context.Context, task *tasks.Task) error {
		ran <- task.ID
		return nil
	})
	if err := eng.Start(t.Context()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer eng.Stop(context.Background())
	task, err := eng.Enqueue(t.Context(), tasks.NewTask{AppID: "app_1", EventType: "test.event", Data: []byte(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-ran:
		if got != task.ID {
			t.Errorf("ran task %s, want %s", got, task.ID)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("task %s did not run in 10 s", task.ID)
	}
}
