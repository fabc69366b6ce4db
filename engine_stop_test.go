package tasks_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
)

// syncBuffer is a bytes.Buffer safe for a logger and a test to share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestEngine_Stop(t *testing.T) {
	t.Parallel()
	testEngineStores(t, func(t *testing.T, newStore func(testing.TB) tasks.Store) {
		t.Run("waits for running tasks and claims nothing more (F14)", func(t *testing.T) {
			t.Parallel()
			e := newEngine(t, newStore(t), &tasks.Config{Workers: 4})
			started := make(chan string, 10)
			release := make(chan struct{})
			e.Register("x", func(ctx context.Context, task *tasks.Task) error {
				started <- task.ID
				<-release
				return nil
			})
			var ids []string
			for range 10 {
				ids = append(ids, enqueue(t, e, tasks.NewTask{EventType: "x"}).ID)
			}
			if err := e.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			running := map[string]bool{}
			for range 4 {
				running[<-started] = true
			}
			stopped := make(chan error)
			go func() { stopped <- e.Stop(context.Background()) }()
			select {
			case err := <-stopped:
				t.Fatalf("Stop returned %v while tasks ran", err)
			case <-time.After(50 * time.Millisecond):
			}
			close(release)
			if err := <-stopped; err != nil {
				t.Fatalf("Stop = %v, want nil", err)
			}
			for _, id := range ids {
				got, err := e.Get(context.Background(), id)
				if err != nil {
					t.Fatal(err)
				}
				want := tasks.StateScheduled
				if running[id] {
					want = tasks.StateCompleted
				}
				if got.State != want {
					t.Errorf("task %s is %s, want %s", id, got.State, want)
				}
			}
		})
		t.Run("cancels tasks at its deadline and hands them back (F15)", func(t *testing.T) {
			t.Parallel()
			e := newEngine(t, newStore(t), &tasks.Config{Workers: 2})
			started := make(chan struct{}, 2)
			e.Register("x", func(ctx context.Context, task *tasks.Task) error {
				started <- struct{}{}
				<-ctx.Done()
				return nil // claims success: must not be recorded
			})
			a := enqueue(t, e, tasks.NewTask{EventType: "x"})
			b := enqueue(t, e, tasks.NewTask{EventType: "x"})
			if err := e.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			<-started
			<-started
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			begin := time.Now()
			if err := e.Stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Stop = %v, want context.DeadlineExceeded", err)
			}
			if took := time.Since(begin); took > time.Second {
				t.Errorf("Stop took %v with a 50ms deadline", took)
			}
			for _, id := range []string{a.ID, b.ID} {
				got, _ := e.Get(context.Background(), id)
				if got.State != tasks.StateRetrying || got.Attempts != 1 || got.CompletedAt != nil {
					t.Errorf("task %s: state %s, attempts %d; want retrying, 1", id, got.State, got.Attempts)
				}
			}
		})
		t.Run("abandons a func that ignores its context (F5)", func(t *testing.T) {
			t.Parallel()
			var logs syncBuffer
			e := newEngine(t, newStore(t), &tasks.Config{
				Workers:        2,
				Timeout:        20 * time.Millisecond,
				Lease:          60 * time.Millisecond,
				RescueInterval: 20 * time.Millisecond,
				Logger:         slog.New(slog.NewTextHandler(&logs, nil)),
			})
			attempts := make(chan int, 2)
			stuck := make(chan struct{})
			defer close(stuck)
			e.Register("x", func(ctx context.Context, task *tasks.Task) error {
				attempts <- task.Attempts
				<-stuck // ignores ctx
				return nil
			})
			task := enqueue(t, e, tasks.NewTask{EventType: "x"})
			if err := e.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			// The stuck attempt's lease is no longer extended; the rescuer
			// hands the task to the free worker.
			if a := <-attempts; a != 1 {
				t.Fatalf("first attempt %d, want 1", a)
			}
			select {
			case a := <-attempts:
				if a != 2 {
					t.Fatalf("second attempt %d, want 2", a)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("stuck task was not rescued")
			}
			if !strings.Contains(logs.String(), "ignores its context") || !strings.Contains(logs.String(), task.ID) {
				t.Errorf("log does not name the stuck task:\n%s", logs.String())
			}
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			if err := e.Stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Stop = %v, want context.DeadlineExceeded", err)
			}
			// Still running here, it is neither completed nor handed back
			// (which would let another engine run it meanwhile): it is left
			// to its lease.
			got, _ := e.Get(context.Background(), task.ID)
			if got.State != tasks.StateRunning {
				t.Errorf("stuck task is %s after Stop, want running, left to its lease", got.State)
			}
		})
	})
}

// TestEngine_StartStop starts and stops an engine over and over while tasks
// are enqueued (F16): no race, no leak, and every task runs exactly once.
func TestEngine_StartStop(t *testing.T) {
	t.Parallel()
	testEngineStores(t, func(t *testing.T, newStore func(testing.TB) tasks.Store) {
		e := newEngine(t, newStore(t), &tasks.Config{Workers: 4})
		var mu sync.Mutex
		runs := map[string]int{}
		e.Register("x", func(ctx context.Context, task *tasks.Task) error {
			mu.Lock()
			runs[task.ID]++
			mu.Unlock()
			return nil
		})
		var enqueued atomic.Int32
		done := make(chan struct{})
		var wg sync.WaitGroup
		for range 2 {
			wg.Go(func() {
				for range 1000 {
					select {
					case <-done:
						return
					default:
					}
					enqueue(t, e, tasks.NewTask{EventType: "x"})
					enqueued.Add(1)
				}
			})
		}
		ctx := context.Background()
		for range 20 {
			if err := e.Start(ctx); err != nil {
				t.Fatal(err)
			}
			if err := e.Start(ctx); err != nil {
				t.Fatalf("second Start = %v, want nil", err)
			}
			time.Sleep(time.Millisecond)
			if err := e.Stop(ctx); err != nil {
				t.Fatal(err)
			}
		}
		close(done)
		wg.Wait()
		if err := e.Start(ctx); err != nil {
			t.Fatal(err)
		}
		defer e.Stop(ctx)
		deadline := time.Now().Add(10 * time.Second)
		for {
			mu.Lock()
			n := len(runs)
			mu.Unlock()
			if n == int(enqueued.Load()) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d tasks ran", n, enqueued.Load())
			}
			time.Sleep(time.Millisecond)
		}
		mu.Lock()
		defer mu.Unlock()
		for id, n := range runs {
			if n != 1 {
				t.Errorf("task %s ran %d times", id, n)
			}
		}
	})
}

// TestEngine_StopHandsBackTasksClaimedAhead stops, past its deadline, an
// engine whose every worker is stuck in a func that ignores its context,
// with tasks claimed ahead of them: those tasks never started, and Stop
// hands them back to run again rather than leaving them to their leases
// (which, on a task's last attempt, would fail it unrun).
func TestEngine_StopHandsBackTasksClaimedAhead(t *testing.T) {
	t.Parallel()
	store := tasks.NewMemoryStore()
	const workers = 2
	stuck := make(chan struct{})
	t.Cleanup(func() { close(stuck) })
	var blocked atomic.Int32
	e := newEngine(t, store, &tasks.Config{Workers: workers, MaxAttempts: 1, Lease: time.Hour})
	e.Register("fast", func(context.Context, *tasks.Task) error { return nil })
	e.Register("stuck", func(context.Context, *tasks.Task) error {
		blocked.Add(1)
		<-stuck // ignores its context
		return nil
	})
	ctx := context.Background()
	var nts []tasks.NewTask
	for _, et := range []string{"fast", "stuck", "fast"} { // claimed in this order
		n := 2000
		if et == "stuck" {
			n = workers
		}
		for range n {
			nts = append(nts, tasks.NewTask{AppID: "a", EventType: et})
		}
	}
	if _, err := e.EnqueueMany(ctx, nts); err != nil {
		t.Fatal(err)
	}
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); blocked.Load() < workers; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d stuck funcs started", blocked.Load(), workers)
		}
	}
	time.Sleep(20 * time.Millisecond) // the scheduler claims ahead meanwhile, if it will
	stopCtx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := e.Stop(stopCtx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stop: got %v, want %v", err, context.DeadlineExceeded)
	}
	counts, err := store.CountTasks(ctx, "a", 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	if counts[tasks.StateRunning] != workers || counts[tasks.StateFailed] != 0 {
		t.Errorf("after Stop: %v; want only the %d stuck tasks running, and none failed", counts, workers)
	}
}

// TestEngine_StopRunsTasksClaimedAhead stops an engine in the middle of a
// backlog of short tasks, which it claims ahead of its workers: Stop runs
// what it claimed and stores the outcomes, leaving no task claimed
// (running) and none failed.
func TestEngine_StopRunsTasksClaimedAhead(t *testing.T) {
	testEngineStores(t, func(t *testing.T, newStore func(testing.TB) tasks.Store) {
		store := newStore(t)
		var ran atomic.Int64
		e := newEngine(t, store, &tasks.Config{Workers: 2, MaxAttempts: 1})
		e.Register("fast", func(context.Context, *tasks.Task) error { ran.Add(1); return nil })
		ctx := context.Background()
		nts := make([]tasks.NewTask, 5000)
		for i := range nts {
			nts[i] = tasks.NewTask{AppID: "a", EventType: "fast"}
		}
		if _, err := e.EnqueueMany(ctx, nts); err != nil {
			t.Fatal(err)
		}
		if err := e.Start(ctx); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(10 * time.Second); ran.Load() < 500; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d tasks ran, want 500 before stopping", ran.Load())
			}
		}
		if err := e.Stop(ctx); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		counts, err := store.CountTasks(ctx, "a", 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		if counts[tasks.StateRunning] != 0 || counts[tasks.StateFailed] != 0 || counts[tasks.StateCompleted] != int(ran.Load()) {
			t.Errorf("after Stop: %v, %d ran; want none running or failed, every run completed", counts, ran.Load())
		}
	})
}
