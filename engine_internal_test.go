package tasks

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestEngine_ClockJumps jumps the store's clock forward an hour and back a
// little (F12, F13): tasks follow the store's clock, none starts before its
// time on that clock, none is lost and none runs twice.
func TestEngine_ClockJumps(t *testing.T) {
	t.Parallel()
	var offset atomic.Int64
	store := newMemoryStore()
	store.now = func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	e, err := NewEngine(store, &Config{PollInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	runs := map[string]int{}
	var early atomic.Int32
	e.Register("x", func(ctx context.Context, task *Task) error {
		if store.now().Before(*task.ScheduledRunTime) {
			early.Add(1)
		}
		mu.Lock()
		runs[task.ID]++
		mu.Unlock()
		return nil
	})
	ctx := context.Background()
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer e.Stop(ctx)
	enqueueBatch := func() {
		base := store.now()
		for i := range 20 {
			at := base.Add(50*time.Millisecond + time.Duration(i)*5*time.Millisecond)
			if _, err := e.Enqueue(ctx, NewTask{AppID: "a", EventType: "x", RunAt: at}); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitRuns := func(n int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			mu.Lock()
			got := len(runs)
			mu.Unlock()
			if got == n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d tasks ran, want %d", got, n)
			}
			time.Sleep(time.Millisecond)
		}
	}
	enqueueBatch()
	offset.Store(int64(time.Hour)) // forward: everything is due at once
	waitRuns(20)
	enqueueBatch()
	offset.Store(int64(time.Hour - 300*time.Millisecond)) // back: due later
	waitRuns(40)
	if n := early.Load(); n > 0 {
		t.Errorf("%d tasks started before their time on the store's clock", n)
	}
	mu.Lock()
	defer mu.Unlock()
	for id, n := range runs {
		if n != 1 {
			t.Errorf("task %s ran %d times", id, n)
		}
	}
}

// TestRun_ClaimedAgainRevokesTheEarlierAttempt: a task claimed again while
// an earlier attempt of it is active here (its lease expired, or the
// database forgot its claim, at the same attempt number) has that attempt
// revoked, and the new one not.
func TestRun_ClaimedAgainRevokesTheEarlierAttempt(t *testing.T) {
	e, err := NewEngine(NewMemoryStore(), nil)
	if err != nil {
		t.Fatal(err)
	}
	r := &run{e: e, active: make(map[string]*attempt)}
	first := r.dispatch(&Task{ID: "t1", Attempts: 1, claim: 7})
	second := r.dispatch(&Task{ID: "t1", Attempts: 1, claim: 9})
	if first.a.cause != errLeaseRevoked || second.a.cause != nil {
		t.Errorf("got causes %v (earlier) and %v (new); want %v and none", first.a.cause, second.a.cause, errLeaseRevoked)
	}
	r.forget(first.a.lease, false) // the earlier attempt ends: the new one stays
	if r.active["t1"] != second.a {
		t.Error("the earlier attempt's end forgot the new one")
	}
}

// TestRun_RevokedBeforeStart checks that a task claimed ahead whose lease
// is revoked while it waits for a worker (its cancellation was requested,
// or its lease lost) does not start: its func is not called.
func TestRun_RevokedBeforeStart(t *testing.T) {
	for _, cause := range []error{errCancelRequested, errLeaseRevoked} {
		e, err := NewEngine(NewMemoryStore(), nil)
		if err != nil {
			t.Fatal(err)
		}
		called := false
		e.Register("x", func(context.Context, *Task) error { called = true; return nil })
		r := &run{e: e, active: make(map[string]*attempt)}
		task := &Task{ID: "t1", EventType: "x", Attempts: 1, MaxAttempts: 3}
		j := r.dispatch(task)
		r.revoke(Lease{ID: task.ID, Attempt: 1}, cause)
		out, ran := r.execute(j)
		if called || ran || out.State != StateCanceled || len(out.Attempts) != 0 {
			t.Errorf("%v before start: func called %v, outcome %s with %d attempts; want not called, canceled, none",
				cause, called, out.State, len(out.Attempts))
		}
	}
}
