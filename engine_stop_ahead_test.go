package tasks_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
)

// TestEngine_StopPastDeadlineWithTasksClaimedAhead stops, with a deadline
// shorter than a task, an engine of one worker that runs a long task (it
// honours its context) with tasks claimed ahead of it: Stop returns its
// ctx's error, no task is left running or marked complete unless its func
// returned nil, none fails, and another engine then runs every task.
func TestEngine_StopPastDeadlineWithTasksClaimedAhead(t *testing.T) {
	testEngineStores(t, func(t *testing.T, newStore func(testing.TB) tasks.Store) {
		store := newStore(t)
		ctx := context.Background()
		var (
			mu   sync.Mutex
			done = map[string]bool{} // returned nil
		)
		long := make(chan struct{}, 1)
		fn := func(ctx context.Context, task *tasks.Task) error {
			if string(task.Data) == `"long"` {
				select {
				case long <- struct{}{}:
				default:
				}
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(time.Hour):
				}
			}
			mu.Lock()
			done[task.ID] = true
			mu.Unlock()
			return nil
		}
		e := newEngine(t, store, &tasks.Config{Workers: 1, MaxAttempts: 1})
		e.Register("x", fn)
		nts := make([]tasks.NewTask, 0, 60)
		at := time.Now().Add(200 * time.Millisecond)
		for i := range 60 {
			data := `"short"`
			if i == 40 {
				data = `"long"`
			}
			nts = append(nts, tasks.NewTask{AppID: "a", EventType: "x", Data: []byte(data),
				RunAt: at.Add(time.Duration(i) * time.Microsecond)})
		}
		ts, err := e.EnqueueMany(ctx, nts)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Start(ctx); err != nil {
			t.Fatal(err)
		}
		select {
		case <-long:
		case <-time.After(10 * time.Second):
			t.Fatal("the long task did not start")
		}
		stopCtx, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
		defer cancel()
		if err := e.Stop(stopCtx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Stop: got %v, want %v", err, context.DeadlineExceeded)
		}
		mu.Lock()
		handedBack := 0
		for _, task := range ts {
			got, err := e.Get(ctx, task.ID)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case got.State == tasks.StateCompleted && !done[task.ID]:
				t.Errorf("task %s (%s) completed, but its func never returned nil", task.ID, task.Data)
			case got.State == tasks.StateRunning || got.State == tasks.StateFailed:
				t.Errorf("task %s (%s) %s after Stop, want handed back or completed", task.ID, task.Data, got.State)
			case got.State == tasks.StateRetrying && string(task.Data) != `"long"`:
				handedBack++ // claimed ahead, never started
			}
		}
		mu.Unlock()
		t.Logf("%d tasks claimed ahead handed back unstarted", handedBack)

		// Another engine runs them all (the long one is let end at once).
		e2 := startEngine(t, store, &tasks.Config{Workers: 4}, map[string]tasks.Func{
			"x": func(context.Context, *tasks.Task) error { return nil },
		})
		for _, task := range ts {
			waitState(t, e2, task.ID, tasks.StateCompleted)
		}
	})
}
