package tasks_test

import (
	"testing"
	"time"

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
			if _, err := e.Reschedule(t.Context(), b.ID, time.Now()); err != nil {
				t.Fatal(err)
			}
			waitDone(t, e, []string{b.ID})
			if fast.count() != 2 || slow.count() != 2 {
				t.Errorf("deliveries: got %d to the unlimited endpoint and %d to the once-limited one, want 2 and 2 (no second delivery of b)",
					fast.count(), slow.count())
			}
		})
	}
}
