package tasks_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
)

// TestEngine_ManyEngines runs thousands of tasks on several engines sharing
// one store, in one process, while they are being enqueued through all of
// them (F17 when nothing fails): every task is completed, exactly once.
// TestCrash_ManyProcesses does the same across processes, with a crash.
func TestEngine_ManyEngines(t *testing.T) {
	t.Parallel()
	testEngineStores(t, func(t *testing.T, newStore func(testing.TB) tasks.Store) {
		const engines, perEngine = 4, 500
		store := newStore(t)
		var mu sync.Mutex
		runs := map[string][]int{} // task ID → the engines that ran it
		es := make([]*tasks.Engine, engines)
		for i := range es {
			es[i] = startEngine(t, store, &tasks.Config{Workers: 4, PollInterval: 50 * time.Millisecond}, map[string]tasks.Func{
				"x": func(ctx context.Context, task *tasks.Task) error {
					mu.Lock()
					defer mu.Unlock()
					runs[task.ID] = append(runs[task.ID], i)
					return nil
				},
			})
		}
		var wg sync.WaitGroup
		ids := make([][]string, engines)
		errs := make([]error, engines)
		for i, e := range es {
			wg.Go(func() {
				for range perEngine {
					task, err := e.Enqueue(context.Background(), tasks.NewTask{AppID: "app_1", EventType: "x"})
					if err != nil {
						errs[i] = err
						return
					}
					ids[i] = append(ids[i], task.ID)
				}
			})
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		var all []string
		for _, part := range ids {
			all = append(all, part...)
		}
		waitFor(t, 30*time.Second, "every task to run", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(runs) == len(all)
		})
		waitFor(t, 10*time.Second, "every outcome to be stored", func() bool {
			ts, _, err := es[0].List(context.Background(), tasks.ListParams{
				States: []tasks.State{tasks.StateScheduled, tasks.StateRunning, tasks.StateRetrying}, Limit: 1})
			if err != nil {
				t.Fatal(err)
			}
			return len(ts) == 0
		})
		final := checkSettled(t, es[0], all)
		mu.Lock()
		defer mu.Unlock()
		ranOn := make([]int, engines)
		for _, id := range all {
			switch got := runs[id]; {
			case len(got) != 1:
				t.Errorf("task %s ran %d times, on engines %v; want once", id, len(got), got)
			case final[id].State != tasks.StateCompleted || final[id].Attempts != 1:
				t.Errorf("task %s: %s after %d attempts, want completed after 1", id, final[id].State, final[id].Attempts)
			default:
				ranOn[got[0]]++
			}
		}
		t.Logf("%d tasks ran on engines: %s", len(all), fmt.Sprint(ranOn))
	})
}
