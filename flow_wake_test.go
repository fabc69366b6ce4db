package tasks_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/internal/testkit"
)

// claimCounter is a store that tells when its Claim has been called n
// times.
type claimCounter struct {
	tasks.Store
	claims  atomic.Int64
	n       int64
	reached chan struct{}
}

func (c *claimCounter) Claim(ctx context.Context, limit int, lease time.Duration) ([]*tasks.Task, error) {
	if c.claims.Add(1) == c.n {
		close(c.reached)
	}
	return c.Store.Claim(ctx, limit, lease)
}

// TestFlow_TinyRateDoesNotSpin: a rate so small that the next token is
// centuries away (it is valid: more than 0) must not make an engine claim
// in a hot loop while a task waits for it. The time to that token, as a
// time.Duration, overflowed, and the engine woke at once, again and again
// (hundreds of thousands of claims a second on the memory store).
func TestFlow_TinyRateDoesNotSpin(t *testing.T) {
	t.Parallel()
	for _, kind := range testkit.SharedStores {
		t.Run(kind.Name, func(t *testing.T) {
			t.Parallel()
			cs := &claimCounter{Store: kind.Open(t, 1)[0], n: 100, reached: make(chan struct{})}
			ran := make(chan string, 2)
			e := startEngine(t, cs, &tasks.Config{Workers: 2}, map[string]tasks.Func{"x": func(_ context.Context, tk *tasks.Task) error {
				ran <- tk.ID
				return nil
			}})
			if _, err := e.SetLimit(t.Context(), tasks.Limit{AppID: "app_1", Key: "k", Rate: 1e-12, Burst: 1}); err != nil {
				t.Fatal(err)
			}
			a := enqueue(t, e, tasks.NewTask{AppID: "app_1", EventType: "x", FlowKey: "k"})
			select {
			case <-ran:
			case <-time.After(10 * time.Second):
				t.Fatal("the burst's task did not start")
			}
			b := enqueue(t, e, tasks.NewTask{AppID: "app_1", EventType: "x", FlowKey: "k"})
			select {
			case <-cs.reached:
				t.Fatalf("%d claims with one task waiting for a token centuries away: the engine spins", cs.n)
			case id := <-ran:
				t.Fatalf("task %s started without a token (first was %s, waiting %s)", id, a.ID, b.ID)
			case <-time.After(2 * time.Second):
			}
		})
	}
}
