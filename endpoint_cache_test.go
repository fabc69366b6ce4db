package tasks_test

import (
	"context"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/webhook"
)

// deliverOne enqueues a task for app_1, waits for it to complete and
// returns how many deliveries each receiver got for it (and took off its
// got channel).
func deliverOne(t *testing.T, e *tasks.Engine, rcs ...*receiver) []int {
	t.Helper()
	before := make([]int, len(rcs))
	for i, rc := range rcs {
		before[i] = rc.count()
	}
	task := enqueue(t, e, tasks.NewTask{EventType: "x"})
	waitState(t, e, task.ID, tasks.StateCompleted)
	got := make([]int, len(rcs))
	for i, rc := range rcs {
		got[i] = rc.count() - before[i]
		for range got[i] {
			<-rc.got // so that its handler never blocks
		}
	}
	return got
}

// TestDelivery_EndpointChanges checks that an engine that delivered to an
// app's endpoints, and so holds them, sees changes to them: its own at
// once, another engine's within a second.
func TestDelivery_EndpointChanges(t *testing.T) {
	t.Parallel()
	testEngineStores(t, func(t *testing.T, newStore func(testing.TB) tasks.Store) {
		t.Run("through the engine: at the next delivery", func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			a, b := newReceiver(t), newReceiver(t)
			e := startEngine(t, newStore(t), webhookConfig(time.Hour), nil)
			epA := createEndpoint(t, e, tasks.NewEndpoint{URL: a.URL})
			if got := deliverOne(t, e, a, b); got[0] != 1 || got[1] != 0 {
				t.Fatalf("with endpoint A: deliveries to A, B = %v, want [1 0]", got)
			}

			epB := createEndpoint(t, e, tasks.NewEndpoint{URL: b.URL})
			if got := deliverOne(t, e, a, b); got[0] != 1 || got[1] != 1 {
				t.Errorf("B created: deliveries to A, B = %v, want [1 1]", got)
			}

			inactive := tasks.EndpointInactive
			if _, err := e.UpdateEndpoint(ctx, epA.ID, tasks.EndpointUpdate{Status: &inactive}); err != nil {
				t.Fatal(err)
			}
			if got := deliverOne(t, e, a, b); got[0] != 0 || got[1] != 1 {
				t.Errorf("A made inactive: deliveries to A, B = %v, want [0 1]", got)
			}

			rotated, err := e.RotateEndpointSecret(ctx, epB.ID, 0)
			if err != nil {
				t.Fatal(err)
			}
			deliverOne(t, e, a, b)
			b.mu.Lock()
			reqs := b.requests
			b.mu.Unlock()
			if len(reqs) == 0 {
				t.Fatal("B got no delivery")
			}
			req := reqs[len(reqs)-1]
			if err := webhook.Verify(rotated.Secret, req.header, req.body); err != nil {
				t.Errorf("B's secret rotated: Verify with the new secret: %v", err)
			}

			active := tasks.EndpointActive
			if _, err := e.UpdateEndpoint(ctx, epA.ID, tasks.EndpointUpdate{Status: &active}); err != nil {
				t.Fatal(err)
			}
			if err := e.DeleteEndpoint(ctx, epB.ID); err != nil {
				t.Fatal(err)
			}
			if got := deliverOne(t, e, a, b); got[0] != 1 || got[1] != 0 {
				t.Errorf("A active again, B deleted: deliveries to A, B = %v, want [1 0]", got)
			}
		})
		t.Run("through another engine: within a second", func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			a, b := newReceiver(t), newReceiver(t)
			store := newStore(t)
			e := startEngine(t, store, webhookConfig(time.Hour), nil)
			admin := newEngine(t, store, webhookConfig())
			epA := createEndpoint(t, admin, tasks.NewEndpoint{URL: a.URL})
			if got := deliverOne(t, e, a, b); got[0] != 1 || got[1] != 0 {
				t.Fatalf("with endpoint A: deliveries to A, B = %v, want [1 0]", got)
			}

			createEndpoint(t, admin, tasks.NewEndpoint{URL: b.URL})
			inactive := tasks.EndpointInactive
			if _, err := admin.UpdateEndpoint(ctx, epA.ID, tasks.EndpointUpdate{Status: &inactive}); err != nil {
				t.Fatal(err)
			}
			changed := time.Now()
			for {
				got := deliverOne(t, e, a, b)
				if got[1] == 1 {
					break
				}
				// Before the change reaches e, its deliveries go to A.
				if got[0] != 1 {
					t.Fatalf("after the change: deliveries to A, B = %v, want [1 0] or [x 1]", got)
				}
				if time.Since(changed) > 10*time.Second {
					t.Fatal("the other engine's change did not reach this engine's deliveries")
				}
			}
			if got := deliverOne(t, e, a, b); got[0] != 0 || got[1] != 1 {
				t.Errorf("once the change is seen: deliveries to A, B = %v, want [0 1]", got)
			}
		})
	})
}
