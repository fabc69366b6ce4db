package tasks_test

import (
	"testing"
	"time"

	"github.com/taskwheel/tasks"
)

// TestFlow_LoweredLimitHoldsBack (L2): a key's concurrency limit lowered
// below the tasks of the key that run holds back its due tasks until
// enough of them end, on every store: a claim then claims none (they wait)
// rather than count a negative capacity as room, and starts one once the
// running tasks are one below the new limit.
func TestFlow_LoweredLimitHoldsBack(t *testing.T) {
	t.Parallel()
	for _, s := range testStores {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			store := s.open(t)
			e, err := tasks.NewEngine(store, nil)
			if err != nil {
				t.Fatal(err)
			}
			setLimit := func(c int) {
				t.Helper()
				if _, err := e.SetLimit(ctx, tasks.Limit{AppID: "app_1", Key: "k", Concurrency: c}); err != nil {
					t.Fatal(err)
				}
			}
			setLimit(10)
			nts := make([]tasks.NewTask, 20)
			for i := range nts {
				nts[i] = tasks.NewTask{AppID: "app_1", EventType: "x", FlowKey: "k"}
			}
			if _, err := e.EnqueueMany(ctx, nts); err != nil {
				t.Fatal(err)
			}
			running, err := store.Claim(ctx, 10, time.Minute)
			if err != nil || len(running) != 10 {
				t.Fatalf("Claim under a limit of 10 = %d tasks, %v; want 10", len(running), err)
			}
			setLimit(3)
			for range 3 {
				if ts, err := store.Claim(ctx, 10, time.Minute); err != nil || len(ts) != 0 {
					t.Fatalf("Claim with 10 running under a limit of 3 = %d tasks, %v; want none", len(ts), err)
				}
			}
			outs := make([]tasks.Outcome, 8)
			for i, task := range running[:8] {
				outs[i] = tasks.Outcome{ID: task.ID, Attempt: task.Attempts, State: tasks.StateCompleted}
			}
			if _, err := store.Finish(ctx, outs); err != nil {
				t.Fatal(err)
			}
			ts, err := store.Claim(ctx, 10, time.Minute)
			if err != nil || len(ts) != 1 {
				t.Fatalf("Claim with 2 running under a limit of 3 = %d tasks, %v; want 1", len(ts), err)
			}
		})
	}
}
