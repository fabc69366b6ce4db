package tasks_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/internal/testkit"
)

// bulkRange is the ListParams of a bulk operation on app_1's tasks created
// within an hour of now.
func bulkRange(eventType string) tasks.ListParams {
	now := time.Now()
	return tasks.ListParams{AppID: "app_1", EventType: eventType, CreatedSince: now.Add(-time.Hour), CreatedBefore: now.Add(time.Hour)}
}

// TestEngine_Delete checks Delete on every store: a task that is not
// running goes with its history and frees its idempotency key; a running
// one is refused (R3).
func TestEngine_Delete(t *testing.T) {
	t.Parallel()
	testEngineStores(t, func(t *testing.T, newStore func(testing.TB) tasks.Store) {
		ctx := context.Background()
		release := make(chan struct{})
		e := startEngine(t, newStore(t), nil, map[string]tasks.Func{
			"ok":    func(context.Context, *tasks.Task) error { return nil },
			"block": func(context.Context, *tasks.Task) error { <-release; return nil },
		})
		defer close(release)
		done := enqueue(t, e, tasks.NewTask{EventType: "ok", IdempotencyKey: "k"})
		waitState(t, e, done.ID, tasks.StateCompleted)
		got, err := e.Delete(ctx, done.ID)
		if err != nil || got.ID != done.ID || got.State != tasks.StateCompleted {
			t.Fatalf("Delete of a completed task = %v, %v; want the task, nil", got, err)
		}
		if _, err := e.Get(ctx, done.ID); !errors.Is(err, tasks.ErrNotFound) {
			t.Errorf("Get after Delete: got %v, want ErrNotFound", err)
		}
		if as, err := e.Attempts(ctx, done.ID); err != nil || len(as) != 0 {
			t.Errorf("Attempts after Delete = %v, %v; want none", as, err)
		}
		again, err := e.Enqueue(ctx, tasks.NewTask{AppID: "app_1", EventType: "ok", IdempotencyKey: "k"})
		if err != nil || again.ID == done.ID {
			t.Errorf("Enqueue with the deleted task's key = %v, %v; want a new task", again, err)
		}

		running := enqueue(t, e, tasks.NewTask{EventType: "block"})
		waitState(t, e, running.ID, tasks.StateRunning)
		got, err = e.Delete(ctx, running.ID)
		if !errors.Is(err, tasks.ErrInvalidState) || got == nil || got.State != tasks.StateRunning {
			t.Errorf("Delete of a running task = %v, %v; want the task and ErrInvalidState", got, err)
		}
		if _, err := e.Get(ctx, running.ID); err != nil {
			t.Errorf("Get after a refused Delete: %v", err)
		}

		later := enqueue(t, e, tasks.NewTask{EventType: "ok", RunAt: time.Now().Add(time.Hour)})
		if _, err := e.Delete(ctx, later.ID); err != nil {
			t.Errorf("Delete of a scheduled task: %v", err)
		}
		if _, err := e.Delete(ctx, later.ID); !errors.Is(err, tasks.ErrNotFound) {
			t.Errorf("second Delete: got %v, want ErrNotFound", err)
		}
	})
}

// TestEngine_ReplayFailed checks that a bulk replay runs the failed tasks
// of its filter again, and only them, and that a second one finds none.
func TestEngine_ReplayFailed(t *testing.T) {
	t.Parallel()
	testEngineStores(t, func(t *testing.T, newStore func(testing.TB) tasks.Store) {
		ctx := context.Background()
		var runs sync.Map // task ID → *atomic.Int32
		failFirst := func(ctx context.Context, task *tasks.Task) error {
			n, _ := runs.LoadOrStore(task.ID, new(atomic.Int32))
			if n.(*atomic.Int32).Add(1) == 1 {
				return tasks.Permanent(errors.New("first run fails"))
			}
			return nil
		}
		e := startEngine(t, newStore(t), nil, map[string]tasks.Func{"x": failFirst, "y": failFirst})
		var xs, others []*tasks.Task
		for range 5 {
			xs = append(xs, enqueue(t, e, tasks.NewTask{EventType: "x"}))
		}
		others = append(others, enqueue(t, e, tasks.NewTask{EventType: "y"}), enqueue(t, e, tasks.NewTask{AppID: "app_2", EventType: "x"}))
		for _, task := range append(xs, others...) {
			waitState(t, e, task.ID, tasks.StateFailed)
		}
		p := bulkRange("x")
		p.Limit = 2 // three batches
		n, err := e.ReplayFailed(ctx, p)
		if err != nil || n != len(xs) {
			t.Fatalf("ReplayFailed = %d, %v; want %d, nil", n, err, len(xs))
		}
		for _, task := range xs {
			got := waitState(t, e, task.ID, tasks.StateCompleted)
			if got.Attempts != 2 || got.ReplayedAfter != 1 {
				t.Errorf("replayed task: Attempts %d, ReplayedAfter %d; want 2, 1", got.Attempts, got.ReplayedAfter)
			}
		}
		for _, task := range others {
			if got, _ := e.Get(ctx, task.ID); got.State != tasks.StateFailed {
				t.Errorf("task of another event type or app: state %s, want failed", got.State)
			}
		}
		if n, err := e.ReplayFailed(ctx, p); err != nil || n != 0 {
			t.Errorf("ReplayFailed again = %d, %v; want 0, nil", n, err)
		}
	})
}

// TestEngine_CancelScheduled checks that a bulk cancel cancels the waiting
// tasks of its filter and never touches a running one.
func TestEngine_CancelScheduled(t *testing.T) {
	t.Parallel()
	testEngineStores(t, func(t *testing.T, newStore func(testing.TB) tasks.Store) {
		ctx := context.Background()
		release := make(chan struct{})
		e := startEngine(t, newStore(t), nil, map[string]tasks.Func{
			"x": func(ctx context.Context, task *tasks.Task) error {
				select {
				case <-release:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			},
		})
		running := enqueue(t, e, tasks.NewTask{EventType: "x"})
		waitState(t, e, running.ID, tasks.StateRunning)
		var waiting []*tasks.Task
		for range 4 {
			waiting = append(waiting, enqueue(t, e, tasks.NewTask{EventType: "x", RunAt: time.Now().Add(time.Hour)}))
		}
		other := enqueue(t, e, tasks.NewTask{AppID: "app_2", EventType: "x", RunAt: time.Now().Add(time.Hour)})
		n, err := e.CancelScheduled(ctx, bulkRange(""))
		if err != nil || n != len(waiting) {
			t.Fatalf("CancelScheduled = %d, %v; want %d, nil", n, err, len(waiting))
		}
		for _, task := range waiting {
			if got, _ := e.Get(ctx, task.ID); got.State != tasks.StateCanceled {
				t.Errorf("waiting task: state %s, want canceled", got.State)
			}
		}
		if got, _ := e.Get(ctx, other.ID); got.State != tasks.StateScheduled {
			t.Errorf("task of another app: state %s, want scheduled", got.State)
		}
		if got, _ := e.Get(ctx, running.ID); got.State != tasks.StateRunning || got.CancelRequested {
			t.Errorf("running task: state %s, cancel requested %v; want running, false", got.State, got.CancelRequested)
		}
		close(release)
		waitState(t, e, running.ID, tasks.StateCompleted)
		if n, err := e.CancelScheduled(ctx, bulkRange("")); err != nil || n != 0 {
			t.Errorf("CancelScheduled again = %d, %v; want 0, nil", n, err)
		}
	})
}

// TestEngine_BulkRefusesBadFilters checks R3: a bulk operation without an
// app or a bound, or with bounds the wrong way round, is a
// *ValidationError naming the field, and changes nothing.
func TestEngine_BulkRefusesBadFilters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEngine(t, tasks.NewMemoryStore(), nil)
	task := enqueue(t, e, tasks.NewTask{EventType: "x", RunAt: time.Now().Add(time.Hour)})
	now := time.Now()
	for _, tc := range []struct {
		field string
		p     tasks.ListParams
	}{
		{"app_id", tasks.ListParams{CreatedSince: now.Add(-time.Hour), CreatedBefore: now.Add(time.Hour)}},
		{"created_since", tasks.ListParams{AppID: "app_1", CreatedBefore: now.Add(time.Hour)}},
		{"created_before", tasks.ListParams{AppID: "app_1", CreatedSince: now.Add(-time.Hour)}},
		{"created_before", tasks.ListParams{AppID: "app_1", CreatedSince: now.Add(time.Hour), CreatedBefore: now}},
		{"status", tasks.ListParams{AppID: "app_1", CreatedSince: now.Add(-time.Hour), CreatedBefore: now.Add(time.Hour), States: []tasks.State{tasks.StateRunning}}},
	} {
		for name, op := range map[string]func(context.Context, tasks.ListParams) (int, error){
			"ReplayFailed": e.ReplayFailed, "CancelScheduled": e.CancelScheduled,
		} {
			n, err := op(ctx, tc.p)
			var ve *tasks.ValidationError
			if !errors.As(err, &ve) || ve.Field != tc.field || n != 0 {
				t.Errorf("%s(%+v) = %d, %v; want 0, a *ValidationError of %s", name, tc.p, n, err, tc.field)
			}
		}
	}
	if got, _ := e.Get(ctx, task.ID); got.State != tasks.StateScheduled {
		t.Errorf("task after refused bulk operations: state %s, want scheduled", got.State)
	}
}

// TestEngine_BulkStopsWithContext checks that a bulk operation whose
// context ends stops between batches, returning what it did: every batch
// is whole, and running the operation again finishes the rest.
func TestEngine_BulkStopsWithContext(t *testing.T) {
	t.Parallel()
	e := newEngine(t, tasks.NewMemoryStore(), nil)
	for range 5 {
		enqueue(t, e, tasks.NewTask{EventType: "x", RunAt: time.Now().Add(time.Hour)})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if n, err := e.CancelScheduled(ctx, bulkRange("")); n != 0 || !errors.Is(err, context.Canceled) {
		t.Errorf("CancelScheduled with an ended context = %d, %v; want 0, context.Canceled", n, err)
	}
	if n, err := e.CancelScheduled(context.Background(), bulkRange("")); n != 5 || err != nil {
		t.Errorf("CancelScheduled again = %d, %v; want 5, nil", n, err)
	}
}

// TestEngine_BulkConcurrent checks that bulk operations run at once by two
// engines sharing a store touch each task once: the totals of both add up
// to the number of tasks.
func TestEngine_BulkConcurrent(t *testing.T) {
	t.Parallel()
	for _, kind := range testkit.SharedStores {
		t.Run(kind.Name, func(t *testing.T) {
			t.Parallel()
			const n = 60
			stores := kind.Open(t, 2)
			fail := map[string]tasks.Func{"x": func(context.Context, *tasks.Task) error { return tasks.Permanent(errors.New("no")) }}
			engines := []*tasks.Engine{newEngine(t, stores[0], nil), newEngine(t, stores[1], nil)}
			nts := make([]tasks.NewTask, n)
			for i := range nts {
				nts[i] = tasks.NewTask{AppID: "app_1", EventType: "x"}
			}
			ts, err := engines[0].EnqueueMany(context.Background(), nts)
			if err != nil {
				t.Fatal(err)
			}
			// Make them fail, on an engine that stops before the replays.
			runner := newEngine(t, stores[0], nil)
			runner.Register("x", fail["x"])
			if err := runner.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			for _, task := range ts {
				waitState(t, runner, task.ID, tasks.StateFailed)
			}
			if err := runner.Stop(context.Background()); err != nil {
				t.Fatal(err)
			}
			both := func(op func(*tasks.Engine) (int, error)) int {
				var total atomic.Int64
				var wg sync.WaitGroup
				for _, e := range engines {
					wg.Go(func() {
						k, err := op(e)
						if err != nil {
							t.Error(err)
						}
						total.Add(int64(k))
					})
				}
				wg.Wait()
				return int(total.Load())
			}
			p := bulkRange("")
			p.Limit = 7
			if got := both(func(e *tasks.Engine) (int, error) { return e.ReplayFailed(context.Background(), p) }); got != n {
				t.Errorf("two ReplayFailed at once: %d replayed in all, want %d", got, n)
			}
			if got := both(func(e *tasks.Engine) (int, error) { return e.CancelScheduled(context.Background(), p) }); got != n {
				t.Errorf("two CancelScheduled at once: %d canceled in all, want %d", got, n)
			}
			counts, err := engines[1].CountTasks(context.Background(), "app_1", n+1)
			if err != nil || counts[tasks.StateCanceled] != n {
				t.Errorf("CountTasks = %v, %v; want %d canceled", counts, err, n)
			}
		})
	}
}
