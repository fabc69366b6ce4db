package tasks_test

import (
	"context"
	"errors"
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
	return s.Store.Extend(ctx, leases, d)
}

func (s *faultyStore) Finish(ctx context.Context, outs []tasks.Outcome) ([]bool, error) {
	if err := s.fail(); err != nil {
		return nil, err
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
			ran := make(chan *tasks.Task, 2)
			e := startEngine(t, store, &tasks.Config{
				Lease:          100 * time.Millisecond,
				RescueInterval: 20 * time.Millisecond,
				Logger:         slog.New(slog.NewTextHandler(&logs, nil)),
			}, map[string]tasks.Func{
				"x": func(ctx context.Context, task *tasks.Task) error {
					ran <- task
					return nil
				},
			})
			task := enqueue(t, e, tasks.NewTask{EventType: "x"})
			first := <-ran
			// While the completer retries, the heartbeat keeps the lease:
			// the task stays running, past several leases.
			time.Sleep(300 * time.Millisecond)
			if got, _ := e.Get(context.Background(), task.ID); got.State != tasks.StateRunning {
				t.Fatalf("task is %s while its outcome is being retried, want running", got.State)
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
			second := <-ran
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
