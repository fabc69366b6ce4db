package tasks_test

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/internal/testkit"
)

// TestEndpointLimits_RemovedLimitNoDuplicate: a task delivered to an
// unlimited endpoint while it waited for a limited one, whose limit is then
// removed, is delivered at its next attempt only to the endpoint that has
// not acknowledged it: a retry re-sends only to endpoints that have not.
func TestEndpointLimits_RemovedLimitNoDuplicate(t *testing.T) {
	t.Parallel()
	for _, kind := range testkit.SharedStores {
		t.Run(kind.Name, func(t *testing.T) {
			t.Parallel()
			e := endpointEngines(t, kind.Open(t, 1), 4, 0)[0]
			slow, fast := newReceiver(t), newReceiver(t)
			limited := createEndpoint(t, e, tasks.NewEndpoint{AppID: "app_1", URL: slow.URL, RateLimit: 0.001})
			createEndpoint(t, e, tasks.NewEndpoint{AppID: "app_1", URL: fast.URL})
			a := enqueue(t, e, tasks.NewTask{AppID: "app_1", EventType: "order.created"})
			waitDone(t, e, []string{a.ID})
			b := enqueue(t, e, tasks.NewTask{AppID: "app_1", EventType: "order.created"})
			waitFor(t, limitWait, "task b to wait for the limited endpoint", func() bool {
				got, _ := e.Get(t.Context(), b.ID)
				return got.WaitReason != ""
			})
			none := 0.0
			if _, err := e.UpdateEndpoint(t.Context(), limited.ID, tasks.EndpointUpdate{RateLimit: &none}); err != nil {
				t.Fatal(err)
			}
			// The update makes b due at once.
			waitDone(t, e, []string{b.ID})
			if fast.count() != 2 || slow.count() != 2 {
				t.Errorf("deliveries: got %d to the unlimited endpoint and %d to the once-limited one, want 2 and 2 (no second delivery of b)",
					fast.count(), slow.count())
			}
		})
	}
}

// TestEndpointLimits_WaitIsNoOutcome: an attempt that waited for an
// endpoint's capacity did not happen: it is neither a retrying outcome in
// taskwheel.attempt.outcomes nor an attempt in AttemptStats.
func TestEndpointLimits_WaitIsNoOutcome(t *testing.T) {
	t.Parallel()
	rd := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd))
	defer mp.Shutdown(context.Background())
	cfg := webhookConfig(50 * time.Millisecond)
	cfg.MeterProvider = mp
	e := startEngine(t, tasks.NewMemoryStore(), cfg, nil)
	rc := newReceiver(t)
	createEndpoint(t, e, tasks.NewEndpoint{AppID: "app_1", URL: rc.URL, RateLimit: 0.001})
	a := enqueue(t, e, tasks.NewTask{AppID: "app_1", EventType: "order.created"})
	waitDone(t, e, []string{a.ID})
	b := enqueue(t, e, tasks.NewTask{AppID: "app_1", EventType: "order.created"})
	waitFor(t, limitWait, "task b to wait for the endpoint", func() bool {
		got, _ := e.Get(t.Context(), b.ID)
		return got.WaitReason != ""
	})
	m := collect(t, rd)
	dest := attribute.String("messaging.destination.name", "order.created")
	if got := sumWith(t, m["taskwheel.attempt.outcomes"], dest, attribute.String("taskwheel.outcome", "retrying")); got != 0 {
		t.Errorf("retrying outcomes: got %d, want 0 (a wait is no attempt)", got)
	}
	for _, s := range e.AttemptStats("app_1") {
		if s.Attempts != 1 || s.Failed != 0 {
			t.Errorf("AttemptStats: got %d attempts, %d failed; want 1, 0 (a wait is no attempt)", s.Attempts, s.Failed)
		}
	}
}

// TestEndpointLimits_RaisedLimitWakesWaiting: a task waiting for an
// endpoint's rate_limit is delivered soon after the limit is raised, not
// at the time the old limit gave it.
func TestEndpointLimits_RaisedLimitWakesWaiting(t *testing.T) {
	t.Parallel()
	for _, kind := range testkit.SharedStores {
		t.Run(kind.Name, func(t *testing.T) {
			t.Parallel()
			e := endpointEngines(t, kind.Open(t, 1), 4, 0)[0]
			rc := newReceiver(t)
			limited := createEndpoint(t, e, tasks.NewEndpoint{AppID: "app_1", URL: rc.URL, RateLimit: 0.001})
			a := enqueue(t, e, tasks.NewTask{AppID: "app_1", EventType: "order.created"})
			waitDone(t, e, []string{a.ID})
			b := enqueue(t, e, tasks.NewTask{AppID: "app_1", EventType: "order.created"})
			waitFor(t, limitWait, "task b to wait for the endpoint", func() bool {
				got, _ := e.Get(t.Context(), b.ID)
				return got.WaitReason != ""
			})
			rate := 1000.0
			if _, err := e.UpdateEndpoint(t.Context(), limited.ID, tasks.EndpointUpdate{RateLimit: &rate}); err != nil {
				t.Fatal(err)
			}
			waitDone(t, e, []string{b.ID})
		})
	}
}
