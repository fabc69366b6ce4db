package dashboard_test

// Helpers shared by the dashboard's tests: stores, engines, tasks and a
// webhook receiver, as the root package's tests have them.

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/internal/testkit"
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
	{"sqlite", func(tb testing.TB) tasks.Store { return sqliteStores(tb, 1)[0] }},
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

// The helpers these tests share with those of package tasks.
var (
	newEngine      = testkit.NewEngine
	startEngine    = testkit.StartEngine
	waitState      = testkit.WaitState
	enqueue        = testkit.Enqueue
	createEndpoint = testkit.CreateEndpoint
	status         = testkit.Status
	postgresStores = testkit.PostgresStores
	sqliteStores   = testkit.SQLiteStores
)

// newReceiver returns a webhook endpoint, an httptest server that answers
// every request with answer.
func newReceiver(t *testing.T, answer func(w http.ResponseWriter)) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { answer(w) }))
	t.Cleanup(srv.Close)
	return srv
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
