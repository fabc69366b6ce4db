package tasks_test

import (
	"sync"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/internal/testkit"
)

// TestFlow_ConcurrentClaimsKeepTheLimit (L1): four stores sharing one
// database (as four processes would) claim at once, in a loop, the due
// tasks of a key whose concurrency limit (40) is above a claim's batch
// (16), so that each claim below the limit is the one statement of a claim
// that no limit holds back. However the claims interleave, no more than 40
// tasks of the key are claimed (each claim counts the tasks that the claims
// before it started, also those that committed while it waited for the
// key's limit), none twice, and the key's capacity is used: a claim after
// them leaves 40 running.
func TestFlow_ConcurrentClaimsKeepTheLimit(t *testing.T) {
	t.Parallel()
	const (
		concurrency = 40
		batch       = 16
		n           = 200
	)
	for _, kind := range testkit.SharedStores {
		t.Run(kind.Name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			stores := kind.Open(t, 4)
			e, err := tasks.NewEngine(stores[0], nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.SetLimit(ctx, tasks.Limit{AppID: "app_1", Key: "k", Concurrency: concurrency}); err != nil {
				t.Fatal(err)
			}
			nts := make([]tasks.NewTask, n)
			for i := range nts {
				nts[i] = tasks.NewTask{AppID: "app_1", EventType: "x", FlowKey: "k"}
			}
			if _, err := e.EnqueueMany(ctx, nts); err != nil {
				t.Fatal(err)
			}
			var (
				mu      sync.Mutex
				claimed = map[string]int{}
				wg      sync.WaitGroup
				start   = make(chan struct{})
			)
			claim := func(s tasks.Store) (int, error) {
				ts, err := s.Claim(ctx, batch, time.Minute)
				mu.Lock()
				defer mu.Unlock()
				for _, task := range ts {
					claimed[task.ID]++
				}
				return len(ts), err
			}
			for _, s := range stores {
				wg.Go(func() {
					<-start
					for {
						got, err := claim(s)
						if err != nil {
							t.Error(err)
						}
						if got == 0 || err != nil {
							return
						}
					}
				})
			}
			close(start)
			wg.Wait()
			for {
				got, err := claim(stores[0])
				if err != nil {
					t.Fatal(err)
				}
				if got == 0 {
					break
				}
			}
			if len(claimed) != concurrency {
				t.Errorf("claimed %d tasks of the key, want its concurrency, %d", len(claimed), concurrency)
			}
			for id, times := range claimed {
				if times != 1 {
					t.Errorf("task %s claimed %d times, want once", id, times)
				}
			}
			l, err := e.Limit(ctx, "app_1", "k")
			if err != nil {
				t.Fatal(err)
			}
			if l.Running != concurrency || l.Waiting != n-concurrency {
				t.Errorf("the limit has %d running and %d waiting, want %d and %d", l.Running, l.Waiting, concurrency, n-concurrency)
			}
		})
	}
}

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
