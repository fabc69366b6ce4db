package dashboard_test

// Helpers shared by the dashboard's tests: stores, engines, tasks and a
// webhook receiver, as the root package's tests have them.

import (
	"context"
	"database/sql"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/internal/testdb"
	"github.com/taskwheel/tasks/postgres"
	"github.com/taskwheel/tasks/sqlite"
)

// Keys of the dashboard in tests: keyApp1 grants app_1, keyAll every app.
const (
	keyApp1 = "k1-3f9a0c2d7e5b4a1f"
	keyAll  = "kall-8b7c6d5e4f3a2b1c"
)

// loopback lets tests deliver to httptest servers, which the SSRF guard
// refuses by default.
var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}

// testStores lists every store the dashboard tests run on, each opened
// fresh and empty for the test that asks.
var testStores = []struct {
	name string
	open func(tb testing.TB) tasks.Store
}{
	{"memory", func(testing.TB) tasks.Store { return tasks.NewMemoryStore() }},
	{"sqlite", func(tb testing.TB) tasks.Store { return openSQLite(tb, testdb.SQLitePath(tb)) }},
	{"postgres", func(tb testing.TB) tasks.Store { return postgresStores(tb, 1)[0] }},
}

// testEngineStores runs body once per store kind.
func testEngineStores(t *testing.T, body func(t *testing.T, newStore func(testing.TB) tasks.Store)) {
	for _, s := range testStores {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			body(t, s.open)
		})
	}
}

// openSQLite opens, migrated, the SQLite store of the file at path, which
// tests may open more than once; the test's cleanup closes it.
func openSQLite(tb testing.TB, path string) tasks.Store {
	tb.Helper()
	s, err := sqlite.Open(path, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// postgresStores returns n stores, each on its own connection pool, on one
// new, migrated PostgreSQL schema, as n processes would share it.
func postgresStores(tb testing.TB, n int) []tasks.Store {
	tb.Helper()
	_, dsn := testdb.PostgresDSN(tb)
	var stores []tasks.Store
	for range n {
		db, err := sql.Open("pgx", dsn)
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { db.Close() })
		s, err := postgres.New(db)
		if err != nil {
			tb.Fatal(err)
		}
		if err := s.Migrate(context.Background()); err != nil {
			tb.Fatal(err)
		}
		stores = append(stores, s)
	}
	return stores
}

func newEngine(t *testing.T, store tasks.Store, cfg *tasks.Config) *tasks.Engine {
	t.Helper()
	e, err := tasks.NewEngine(store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// startEngine returns a started engine on store; the test's cleanup stops it.
func startEngine(t *testing.T, store tasks.Store, cfg *tasks.Config, funcs map[string]tasks.Func) *tasks.Engine {
	t.Helper()
	e := newEngine(t, store, cfg)
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

// waitState polls the task until it reaches want, or fails the test.
func waitState(t *testing.T, e *tasks.Engine, id string, want tasks.State) *tasks.Task {
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

// enqueue enqueues nt, in app_1 unless it names an app.
func enqueue(t *testing.T, e *tasks.Engine, nt tasks.NewTask) *tasks.Task {
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

// newReceiver returns a webhook endpoint, an httptest server that answers
// every request with answer.
func newReceiver(t *testing.T, answer func(w http.ResponseWriter)) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { answer(w) }))
	t.Cleanup(srv.Close)
	return srv
}

func status(code int) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) { w.WriteHeader(code) }
}

// createEndpoint creates ne, in app_1 unless it names an app.
func createEndpoint(t *testing.T, e *tasks.Engine, ne tasks.NewEndpoint) *tasks.Endpoint {
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

// header sets a request header; an empty value deletes it.
func header(name, value string) func(*http.Request) {
	return func(r *http.Request) {
		if value == "" {
			r.Header.Del(name)
		} else {
			r.Header.Set(name, value)
		}
	}
}
