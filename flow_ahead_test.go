package tasks_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/internal/testkit"
)

// TestFlow_ClaimAheadHoldsNoCapacity: a task claimed ahead of an engine's
// workers waits in its queue, but is running in the store and counts
// against its key's concurrency limit. An engine of one worker, with a
// backlog of a key limited to 2 at once, runs one task that takes long: the
// key's other slot is for another engine's worker, not for a task that
// waits here behind the long one.
func TestFlow_ClaimAheadHoldsNoCapacity(t *testing.T) {
	t.Parallel()
	for _, kind := range testkit.SharedStores {
		t.Run(kind.Name, func(t *testing.T) {
			t.Parallel()
			stores := kind.Open(t, 2)
			release := make(chan struct{})
			long := make(chan string, 10)
			ranOnB := make(chan string, 100)
			fn := func(b bool) tasks.Func {
				return func(ctx context.Context, task *tasks.Task) error {
					if b {
						ranOnB <- task.ID
					}
					if string(task.Data) == `"long"` {
						long <- task.ID
						select {
						case <-release:
						case <-ctx.Done():
						}
					}
					return nil
				}
			}
			a := startEngine(t, stores[0], &tasks.Config{Workers: 1}, map[string]tasks.Func{"x": fn(false)})
			if _, err := a.SetLimit(t.Context(), tasks.Limit{AppID: "app_1", Key: "k", Concurrency: 2}); err != nil {
				t.Fatal(err)
			}
			// Short tasks, then long ones, then short ones, all due at
			// once in that order: the engine has learnt that its tasks
			// are short, and has a backlog, when the first long one runs.
			at := time.Now().Add(300 * time.Millisecond)
			nts := make([]tasks.NewTask, 0, 64)
			for i := range 64 {
				data := `"short"`
				if i >= 30 && i < 34 {
					data = `"long"`
				}
				nts = append(nts, tasks.NewTask{AppID: "app_1", EventType: "x", FlowKey: "k",
					Data: []byte(data), RunAt: at.Add(time.Duration(i) * time.Millisecond)})
			}
			if _, err := a.EnqueueMany(t.Context(), nts); err != nil {
				t.Fatal(err)
			}
			var once sync.Once
			done := func() { once.Do(func() { close(release) }) }
			t.Cleanup(done) // before the engines stop
			select {
			case <-long:
			case <-time.After(10 * time.Second):
				t.Fatal("no long task started")
			}
			startEngine(t, stores[1], &tasks.Config{Workers: 1}, map[string]tasks.Func{"x": fn(true)})
			t.Cleanup(done)
			select {
			case <-ranOnB:
			case <-time.After(5 * time.Second):
				t.Fatal("while one task of k ran on the engine of one worker, no other ran on the other engine: k's other slot was held by a task claimed ahead")
			}
		})
	}
}
