package tasks_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
)

func TestEngine_EnqueueMany(t *testing.T) {
	testEngineStores(t, func(t *testing.T, newStore func(testing.TB) tasks.Store) {
		ctx := context.Background()
		t.Run("RunsEveryTask", func(t *testing.T) {
			ran := make(chan string, 3)
			e := startEngine(t, newStore(t), nil, map[string]tasks.Func{
				"x": func(ctx context.Context, task *tasks.Task) error { ran <- string(task.Data); return nil },
			})
			got, err := e.EnqueueMany(ctx, []tasks.NewTask{
				{AppID: "a", EventType: "x", Data: json.RawMessage(`1`)},
				{AppID: "a", EventType: "x", Data: json.RawMessage(`2`), RunAt: time.Now().Add(50 * time.Millisecond)},
				{AppID: "a", EventType: "x", Data: json.RawMessage(`3`)},
			})
			if err != nil {
				t.Fatal(err)
			}
			for i, task := range got {
				if want := fmt.Sprint(i + 1); string(task.Data) != want || task.State != tasks.StateScheduled {
					t.Errorf("task %d: data %s, state %s; want %s, scheduled", i, task.Data, task.State, want)
				}
				waitState(t, e, task.ID, tasks.StateCompleted)
			}
			if got[1].ScheduledRunTime == nil {
				t.Errorf("task 1: no ScheduledRunTime, want its RunAt")
			}
		})
		t.Run("InvalidTaskStoresNothing", func(t *testing.T) {
			e, err := tasks.NewEngine(newStore(t), nil)
			if err != nil {
				t.Fatal(err)
			}
			_, err = e.EnqueueMany(ctx, []tasks.NewTask{{AppID: "a", EventType: "x"}, {AppID: "a", EventType: "bad type"}})
			var ve *tasks.ValidationError
			if !errors.As(err, &ve) || ve.Field != "tasks[1].event_type" {
				t.Errorf("EnqueueMany with an invalid second task = %v, want a ValidationError for tasks[1].event_type", err)
			}
			if all, _, err := e.List(ctx, tasks.ListParams{}); err != nil || len(all) != 0 {
				t.Errorf("List after a refused EnqueueMany: got %d tasks, %v; want none", len(all), err)
			}
		})
		t.Run("UsedKey", func(t *testing.T) {
			e, err := tasks.NewEngine(newStore(t), nil)
			if err != nil {
				t.Fatal(err)
			}
			first := enqueue(t, e, tasks.NewTask{EventType: "x", IdempotencyKey: "k1"})
			got, err := e.EnqueueMany(ctx, []tasks.NewTask{
				{AppID: "app_1", EventType: "x", IdempotencyKey: "k1"},
				{AppID: "app_1", EventType: "x"},
				{AppID: "app_1", EventType: "x", IdempotencyKey: "k2"},
				{AppID: "app_1", EventType: "x", IdempotencyKey: "k2"},
			})
			if !errors.Is(err, tasks.ErrDuplicate) || len(got) != 4 {
				t.Fatalf("EnqueueMany with used keys = %d tasks, %v; want 4 and ErrDuplicate", len(got), err)
			}
			if got[0].ID != first.ID || got[3].ID != got[2].ID || got[1].ID == got[2].ID {
				t.Errorf("EnqueueMany with used keys: got %s, %s, %s, %s; want %s, a new task, another, the same again",
					got[0].ID, got[1].ID, got[2].ID, got[3].ID, first.ID)
			}
			if all, _, err := e.List(ctx, tasks.ListParams{}); err != nil || len(all) != 3 {
				t.Errorf("List: got %d tasks, %v; want 3", len(all), err)
			}
		})
	})
}

// TestEngine_ConcurrentEnqueue enqueues from many goroutines at once, as
// group commit batches them on durable stores: every caller gets its own
// task, and of callers sharing an idempotency key one stores it and the
// others get that task with ErrDuplicate.
func TestEngine_ConcurrentEnqueue(t *testing.T) {
	testEngineStores(t, func(t *testing.T, newStore func(testing.TB) tasks.Store) {
		e, err := tasks.NewEngine(newStore(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		const n, keys = 100, 5
		type result struct {
			task *tasks.Task
			err  error
		}
		results := make([]result, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				nt := tasks.NewTask{AppID: "a", EventType: "x", Data: json.RawMessage(fmt.Sprint(i))}
				if i%2 == 0 {
					nt.IdempotencyKey = fmt.Sprint("k", i%keys)
				}
				<-start
				results[i].task, results[i].err = e.Enqueue(context.Background(), nt)
			})
		}
		close(start)
		wg.Wait()
		holders := map[string]string{} // key → ID of the task that stored it
		for i, r := range results {
			switch {
			case r.task == nil:
				t.Fatalf("Enqueue %d: got no task, error %v", i, r.err)
			case i%2 == 1 && (r.err != nil || string(r.task.Data) != fmt.Sprint(i)):
				t.Errorf("Enqueue %d: got task with data %s, %v; want its own task", i, r.task.Data, r.err)
			case i%2 == 0 && r.err == nil:
				if other, ok := holders[r.task.IdempotencyKey]; ok {
					t.Errorf("key %s stored twice: %s and %s", r.task.IdempotencyKey, other, r.task.ID)
				}
				holders[r.task.IdempotencyKey] = r.task.ID
			case i%2 == 0 && !errors.Is(r.err, tasks.ErrDuplicate):
				t.Errorf("Enqueue %d: got %v, want nil or ErrDuplicate", i, r.err)
			}
		}
		for i, r := range results {
			if i%2 == 0 && r.task.ID != holders[r.task.IdempotencyKey] {
				t.Errorf("Enqueue %d: got task %s for key %s, want its holder %s", i, r.task.ID, r.task.IdempotencyKey, holders[r.task.IdempotencyKey])
			}
		}
		all, _, err := e.List(context.Background(), tasks.ListParams{Limit: 1000})
		if err != nil || len(all) != n/2+keys {
			t.Errorf("List: got %d tasks, %v; want %d", len(all), err, n/2+keys)
		}
	})
}
