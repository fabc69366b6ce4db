package tasks_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
)

// faultyStore wraps a real store and fails its calls on demand: the narrow
// seam through which these tests take the database away.
type faultyStore struct {
	tasks.Store
	down        atomic.Bool  // every call fails
	finishFails atomic.Int32 // the next n Finish calls fail; -1: all of them
	finishHangs atomic.Bool  // Finish blocks until its context ends
	extendDelay time.Duration
	calls       atomic.Int64 // calls made while down
}

var errDown = errors.New("connection refused")

func (s *faultyStore) fail() error {
	if s.down.Load() {
		s.calls.Add(1)
		return errDown
	}
	return nil
}

func (s *faultyStore) Claim(ctx context.Context, limit int, lease time.Duration) ([]*tasks.Task, error) {
	if err := s.fail(); err != nil {
		return nil, err
	}
	return s.Store.Claim(ctx, limit, lease)
}

func (s *faultyStore) Upcoming(ctx context.Context, within time.Duration, limit int) (time.Time, []tasks.Due, error) {
	if err := s.fail(); err != nil {
		return time.Time{}, nil, err
	}
	return s.Store.Upcoming(ctx, within, limit)
}

func (s *faultyStore) Rescue(ctx context.Context, limit int) (int, error) {
	if err := s.fail(); err != nil {
		return 0, err
	}
	return s.Store.Rescue(ctx, limit)
}

func (s *faultyStore) Extend(ctx context.Context, leases []tasks.Lease, d time.Duration) ([]string, error) {
	if err := s.fail(); err != nil {
		return nil, err
	}
	time.Sleep(s.extendDelay)
	return s.Store.Extend(ctx, leases, d)
}

func (s *faultyStore) Finish(ctx context.Context, outs []tasks.Outcome) ([]bool, error) {
	if err := s.fail(); err != nil {
		return nil, err
	}
	if s.finishHangs.Load() {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if n := s.finishFails.Load(); n < 0 || n > 0 && s.finishFails.CompareAndSwap(n, n-1) {
		return nil, errDown
	}
	return s.Store.Finish(ctx, outs)
}

func TestEngine_StoreFaults(t *testing.T) {
	t.Parallel()
	testEngineStores(t, func(t *testing.T, newStore func(testing.TB) tasks.Store) {
		t.Run("completion retried when the store fails briefly (F10)", func(t *testing.T) {
			t.Parallel()
			store := &faultyStore{Store: newStore(t)}
			store.finishFails.Store(2)
			var runs atomic.Int32
			e := startEngine(t, store, nil, map[string]tasks.Func{
				"x": func(context.Context, *tasks.Task) error { runs.Add(1); return nil },
			})
			task := enqueue(t, e, tasks.NewTask{EventType: "x"})
			waitState(t, e, task.ID, tasks.StateCompleted)
			if n := runs.Load(); n != 1 {
				t.Errorf("task ran %d times, want 1", n)
			}
		})
		t.Run("completion never reported from memory; the rescuer reruns the task (F10, F2)", func(t *testing.T) {
			t.Parallel()
			store := &faultyStore{Store: newStore(t)}
			store.finishFails.Store(-1)
			var logs syncBuffer
			// Every run is reported, and none blocks: a broken guarantee
			// (a lease lost while the outcome is retried, so the task runs
			// again early) must fail this test, never hang it.
			ran := make(chan *tasks.Task, 100)
			// The completer gives up after about 0.85 to 1.7 s of retries;
			// the lease is short enough to expire twice before then, and
			// long enough that a loaded machine's late heartbeat does not
			// lose it.
			e := startEngine(t, store, &tasks.Config{
				Lease:          300 * time.Millisecond,
				RescueInterval: 20 * time.Millisecond,
				Logger:         slog.New(slog.NewTextHandler(&logs, nil)),
			}, map[string]tasks.Func{
				"x": func(ctx context.Context, task *tasks.Task) error {
					select {
					case ran <- task:
					default:
					}
					return nil
				},
			})
			next := func() *tasks.Task {
				t.Helper()
				select {
				case task := <-ran:
					return task
				case <-time.After(10 * time.Second):
					t.Fatal("the task did not run")
					return nil
				}
			}
			task := enqueue(t, e, tasks.NewTask{EventType: "x"})
			first := next()
			// While the completer retries, the heartbeat keeps the lease:
			// the task stays running, past two leases, and does not run
			// again.
			time.Sleep(700 * time.Millisecond)
			if got, _ := e.Get(context.Background(), task.ID); got.State != tasks.StateRunning || len(ran) > 0 {
				t.Fatalf("task is %s and ran %d more times while its outcome was being retried, want running and not run again", got.State, len(ran))
			}
			// Then the engine gives up; the rescuer runs the task again,
			// with the same ID (at least once).
			deadline := time.Now().Add(10 * time.Second)
			for !strings.Contains(logs.String(), "leaving the tasks to the rescuer") {
				if time.Now().After(deadline) {
					t.Fatalf("no log of the lost outcome:\n%s", logs.String())
				}
				time.Sleep(time.Millisecond)
			}
			store.finishFails.Store(0)
			second := next()
			if second.ID != first.ID || second.Attempts != first.Attempts+1 {
				t.Errorf("rerun: id %s attempt %d, want id %s attempt %d", second.ID, second.Attempts, first.ID, first.Attempts+1)
			}
			if got := waitState(t, e, task.ID, tasks.StateCompleted); got.LastError != "lease expired" {
				t.Errorf("last error %q, want %q", got.LastError, "lease expired")
			}
		})
		t.Run("store down: back off, then resume by itself (F9)", func(t *testing.T) {
			t.Parallel()
			store := &faultyStore{Store: newStore(t)}
			var logs syncBuffer
			var runs atomic.Int32
			e := startEngine(t, store, &tasks.Config{
				PollInterval: 200 * time.Millisecond,
				Logger:       slog.New(slog.NewTextHandler(&logs, nil)),
			}, map[string]tasks.Func{
				"x": func(context.Context, *tasks.Task) error { runs.Add(1); return nil },
			})
			// Stored before the outage, due during it.
			task := enqueue(t, e, tasks.NewTask{EventType: "x", RunAt: time.Now().Add(100 * time.Millisecond)})
			store.down.Store(true)
			time.Sleep(time.Second)
			calls := store.calls.Load()
			store.down.Store(false)
			// Backoff from 10 ms doubling to the poll interval (200 ms) makes
			// about 10 calls a second; a hot loop would make thousands.
			if calls == 0 || calls > 40 {
				t.Errorf("%d store calls in one second while it was down, want a few", calls)
			}
			if !strings.Contains(logs.String(), "backing off") {
				t.Errorf("no log of the outage:\n%s", logs.String())
			}
			waitState(t, e, task.ID, tasks.StateCompleted)
			if n := runs.Load(); n != 1 {
				t.Errorf("task ran %d times, want 1", n)
			}
		})
	})
}

// TestEngine_StopWhileStoreFails checks that Stop keeps its deadline when
// outcomes cannot be stored, the store failing or hanging (F9, F15).
func TestEngine_StopWhileStoreFails(t *testing.T) {
	t.Parallel()
	for _, hang := range []bool{false, true} {
		t.Run(fmt.Sprintf("hang=%v", hang), func(t *testing.T) {
			t.Parallel()
			store := &faultyStore{Store: tasks.NewMemoryStore()}
			store.finishFails.Store(-1)
			store.finishHangs.Store(hang)
			ran := make(chan struct{}, 1)
			e := newEngine(t, store, nil)
			e.Register("x", func(context.Context, *tasks.Task) error { ran <- struct{}{}; return nil })
			if err := e.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			enqueue(t, e, tasks.NewTask{EventType: "x"})
			<-ran
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			begin := time.Now()
			err := e.Stop(ctx)
			if took := time.Since(begin); took > 700*time.Millisecond {
				t.Errorf("Stop with a 200ms deadline took %v", took)
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Stop = %v, want context.DeadlineExceeded: the outcome was not stored", err)
			}
		})
	}
}

// TestEngine_RevokedEarlierAttempt checks that a heartbeat that learns an
// earlier attempt's lease is gone cancels only that attempt, not the one
// of the same task running now.
func TestEngine_RevokedEarlierAttempt(t *testing.T) {
	t.Parallel()
	// A slow heartbeat: it snapshots attempt 1, which meanwhile ends with a
	// retry due at once, and answers after attempt 2 has started.
	store := &faultyStore{Store: tasks.NewMemoryStore(), extendDelay: 40 * time.Millisecond}
	e := startEngine(t, store, &tasks.Config{Lease: 150 * time.Millisecond}, map[string]tasks.Func{
		"x": func(ctx context.Context, task *tasks.Task) error {
			if task.Attempts == 1 {
				time.Sleep(60 * time.Millisecond)
				return tasks.RetryAfter(0, errors.New("again"))
			}
			select {
			case <-time.After(200 * time.Millisecond):
				return nil
			case <-ctx.Done():
				return context.Cause(ctx)
			}
		},
	})
	var ids []string
	for range 20 {
		ids = append(ids, enqueue(t, e, tasks.NewTask{EventType: "x"}).ID)
		time.Sleep(7 * time.Millisecond)
	}
	for _, id := range ids {
		if got := waitState(t, e, id, tasks.StateCompleted); got.Attempts != 2 {
			t.Errorf("task %s: %d attempts, want 2", id, got.Attempts)
		}
	}
}
