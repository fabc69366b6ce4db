package tasks_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/taskwheel/tasks"
)

// collect reads the metrics of rd by name.
func collect(t *testing.T, rd *sdkmetric.ManualReader) map[string]metricdata.Aggregation {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := rd.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := make(map[string]metricdata.Aggregation)
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			out[m.Name] = m.Data
		}
	}
	return out
}

// sumWith returns the sum of the points of a counter whose attributes
// include kvs.
func sumWith(t *testing.T, a metricdata.Aggregation, kvs ...attribute.KeyValue) int64 {
	t.Helper()
	s, ok := a.(metricdata.Sum[int64])
	if !ok {
		t.Fatalf("got %T, want an int64 sum", a)
	}
	var n int64
	for _, p := range s.DataPoints {
		if hasAll(p.Attributes, kvs) {
			n += p.Value
		}
	}
	return n
}

// countWith returns the count of a float64 histogram's points whose
// attributes include kvs.
func countWith(t *testing.T, a metricdata.Aggregation, kvs ...attribute.KeyValue) uint64 {
	t.Helper()
	h, ok := a.(metricdata.Histogram[float64])
	if !ok {
		t.Fatalf("got %T, want a float64 histogram", a)
	}
	var n uint64
	for _, p := range h.DataPoints {
		if hasAll(p.Attributes, kvs) {
			n += p.Count
		}
	}
	return n
}

func hasAll(set attribute.Set, kvs []attribute.KeyValue) bool {
	for _, kv := range kvs {
		if v, ok := set.Value(kv.Key); !ok || v != kv.Value {
			return false
		}
	}
	return true
}

func TestObserve_Metrics(t *testing.T) {
	rd := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd))
	defer mp.Shutdown(context.Background())

	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer recv.Close()

	e, err := tasks.NewEngine(tasks.NewMemoryStore(), &tasks.Config{
		MeterProvider: mp,
		BackoffFunc:   func(int) time.Duration { return time.Millisecond },
		Webhooks:      &tasks.WebhookConfig{AllowNetworks: loopback, RetrySchedule: []time.Duration{time.Hour}},
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan string, 10)
	e.Register("ok", func(ctx context.Context, task *tasks.Task) error { done <- "ok"; return nil })
	e.Register("flaky", func(ctx context.Context, task *tasks.Task) error {
		if task.Attempts == 1 {
			return errors.New("once")
		}
		done <- "flaky"
		return nil
	})
	e.Register("bad", func(ctx context.Context, task *tasks.Task) error {
		done <- "bad"
		return tasks.Permanent(errors.New("never"))
	})
	ctx := t.Context()
	if _, err := e.CreateEndpoint(ctx, tasks.NewEndpoint{AppID: "app_1", URL: recv.URL, EnabledEvents: []string{"hook"}}); err != nil {
		t.Fatal(err)
	}
	for _, et := range []string{"ok", "ok", "flaky", "bad", "hook"} {
		if _, err := e.Enqueue(ctx, tasks.NewTask{AppID: "app_1", EventType: et}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.Enqueue(ctx, tasks.NewTask{AppID: "app_1", EventType: "ok", RunAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("tasks did not run within 10 s")
		}
	}
	// The hook task's delivery fails, and it waits an hour to retry; every
	// other outcome is stored.
	deadline := time.Now().Add(10 * time.Second)
	for {
		counts, err := e.CountTasks(ctx, "app_1", 100)
		if err != nil {
			t.Fatal(err)
		}
		if counts[tasks.StateRetrying] == 1 && counts[tasks.StateRunning] == 0 && counts[tasks.StateCompleted] == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("outcomes not stored within 10 s: counts %v", counts)
		}
		time.Sleep(5 * time.Millisecond) // polls the store, which has no hook for outcomes
	}
	m := collect(t, rd)
	dest := func(et string) attribute.KeyValue { return attribute.String("messaging.destination.name", et) }
	outcome := func(s tasks.State) attribute.KeyValue { return attribute.String("taskwheel.outcome", string(s)) }
	for _, c := range []struct {
		name string
		got  int64
		want int64
	}{
		{"sent ok", sumWith(t, m["messaging.client.sent.messages"], dest("ok")), 3},
		{"sent hook", sumWith(t, m["messaging.client.sent.messages"], dest("hook")), 1},
		{"consumed flaky", sumWith(t, m["messaging.client.consumed.messages"], dest("flaky")), 2},
		{"completed ok", sumWith(t, m["taskwheel.attempt.outcomes"], dest("ok"), outcome(tasks.StateCompleted)), 2},
		{"retrying flaky", sumWith(t, m["taskwheel.attempt.outcomes"], dest("flaky"), outcome(tasks.StateRetrying)), 1},
		{"completed flaky", sumWith(t, m["taskwheel.attempt.outcomes"], dest("flaky"), outcome(tasks.StateCompleted)), 1},
		{"failed bad", sumWith(t, m["taskwheel.attempt.outcomes"], dest("bad"), outcome(tasks.StateFailed)), 1},
		{"retrying hook", sumWith(t, m["taskwheel.attempt.outcomes"], dest("hook"), outcome(tasks.StateRetrying)), 1},
		{"attempts timed", int64(countWith(t, m["messaging.process.duration"])), 6},
		{"lateness measured", int64(countWith(t, m["taskwheel.task.lateness"])), 6},
		{"deliveries 5xx", int64(countWith(t, m["http.client.request.duration"], attribute.String("taskwheel.status_class", "5xx"))), 1},
	} {
		if c.got != c.want {
			t.Errorf("%s: got %d, want %d", c.name, c.got, c.want)
		}
	}
	if h, ok := m["taskwheel.claim.size"].(metricdata.Histogram[int64]); !ok || len(h.DataPoints) == 0 || h.DataPoints[0].Sum < 5 {
		t.Errorf("taskwheel.claim.size: got %+v, want claims of 5 tasks or more in all", m["taskwheel.claim.size"])
	}
	live, ok := m["taskwheel.tasks.live"].(metricdata.Gauge[int64])
	if !ok {
		t.Fatalf("taskwheel.tasks.live: got %T, want an int64 gauge", m["taskwheel.tasks.live"])
	}
	counts := map[string]int64{}
	for _, p := range live.DataPoints {
		s, _ := p.Attributes.Value("taskwheel.state")
		counts[s.AsString()] = p.Value
	}
	if counts["scheduled"] != 1 || counts["retrying"] != 1 || counts["running"] != 0 {
		t.Errorf("taskwheel.tasks.live: got %v, want scheduled 1, retrying 1, running 0", counts)
	}

	// The dashboard's window saw the same attempts.
	stats := map[string]int64{}
	for _, s := range e.AttemptStats("app_1") {
		stats[s.EventType] = s.Attempts*10 + s.Failed
	}
	if want := map[string]int64{"ok": 20, "flaky": 21, "bad": 11, "hook": 11}; !equalMaps(stats, want) {
		t.Errorf("AttemptStats (attempts×10 + failed): got %v, want %v", stats, want)
	}

	if err := e.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	// Stopped, the engine reports no gauges.
	if _, ok := collect(t, rd)["taskwheel.attempts.active"]; ok {
		t.Error("taskwheel.attempts.active reported after Stop")
	}
}

func equalMaps(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// failingClaims is a store whose claims fail.
type failingClaims struct{ tasks.Store }

func (failingClaims) Claim(context.Context, int, time.Duration) ([]*tasks.Task, error) {
	return nil, errors.New("the disk is on fire")
}

func TestObserve_StoreErrors(t *testing.T) {
	t.Parallel()
	rd := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd))
	defer mp.Shutdown(context.Background())
	e, err := tasks.NewEngine(failingClaims{tasks.NewMemoryStore()}, &tasks.Config{
		MeterProvider: mp,
		Logger:        slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer e.Stop(context.Background())
	deadline := time.Now().Add(10 * time.Second)
	for {
		m := collect(t, rd)
		if a, ok := m["taskwheel.store.errors"]; ok && sumWith(t, a, attribute.String("db.operation.name", "claim tasks")) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no taskwheel.store.errors of claim tasks within 10 s: %v", m)
		}
		time.Sleep(5 * time.Millisecond) // polls the reader: the engine retries the claim with backoff
	}
	// The store counts no live tasks of its own: the gauge of live tasks
	// of a store of another kind reports nothing, the active one still does.
	m := collect(t, rd)
	if _, ok := m["taskwheel.attempts.active"]; !ok {
		t.Error("taskwheel.attempts.active: not reported")
	}
	if g, ok := m["taskwheel.tasks.live"].(metricdata.Gauge[int64]); ok && len(g.DataPoints) > 0 {
		t.Errorf("taskwheel.tasks.live: got %v on a store that cannot count them, want nothing", g.DataPoints)
	}
}
