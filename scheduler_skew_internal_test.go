package tasks

import (
	"context"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// TestEngine_StoreClockSetBack checks that after the store's clock is set
// back (F13: a memory or SQLite store's clock is the process's wall clock,
// which NTP may step), a task due shortly after starts at its time on the
// store's clock: not late by the rechecks that waking it early costs.
func TestEngine_StoreClockSetBack(t *testing.T) {
	t.Parallel()
	for _, back := range []time.Duration{time.Hour, 150 * time.Millisecond} {
		t.Run(back.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var offset atomic.Int64
				store := newMemoryStore()
				store.now = func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
				e, late := startLateEngine(t, store, store.clock, 1)
				ctx := context.Background()
				offset.Store(-int64(back))
				if _, err := e.Enqueue(ctx, NewTask{AppID: "a", EventType: "x", RunAt: store.clock().Add(100 * time.Millisecond)}); err != nil {
					t.Fatal(err)
				}
				wantOnTime(t, late)
			})
		})
	}
}

// fastClockStore answers the clock call (Upcoming with limit 0) fast, as
// the Store contract asks, from the process's clock rather than the one its
// tasks' due times and claims follow: the memory store's, here an hour
// behind.
type fastClockStore struct{ *memoryStore }

func (s fastClockStore) Upcoming(ctx context.Context, within time.Duration, limit int) (time.Time, []Due, error) {
	if limit == 0 {
		return time.Now(), nil, nil
	}
	return s.memoryStore.Upcoming(ctx, within, limit)
}

// TestEngine_ClockCallShowsAnotherClock checks that a store whose clock
// call shows another clock than its reads (and claims) do, which the
// bounds of the two calls prove, does not make the engine take that clock
// for the store's: tasks start at their time, not woken early and started
// one recheck late.
func TestEngine_ClockCallShowsAnotherClock(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		mem := newMemoryStore()
		mem.now = func() time.Time { return time.Now().Add(-time.Hour) }
		e, late := startLateEngine(t, fastClockStore{mem}, mem.clock, 3)
		ctx := context.Background()
		for _, d := range []time.Duration{100 * time.Millisecond, 700 * time.Millisecond, 3 * time.Second} {
			if _, err := e.Enqueue(ctx, NewTask{AppID: "a", EventType: "x", RunAt: mem.clock().Add(d)}); err != nil {
				t.Fatal(err)
			}
		}
		for range 3 {
			wantOnTime(t, late)
		}
	})
}

// startLateEngine starts, in a synctest bubble, an engine on store whose
// tasks of event type "x" send how late they started by clock (the
// store's) on the returned channel, which holds n; it stops the engine
// when t ends, and returns once ten seconds of reads have taught the engine
// the store's clock.
func startLateEngine(t *testing.T, store Store, clock func() time.Time, n int) (*Engine, chan time.Duration) {
	t.Helper()
	e, err := NewEngine(store, nil)
	if err != nil {
		t.Fatal(err)
	}
	late := make(chan time.Duration, n)
	e.Register("x", func(ctx context.Context, task *Task) error {
		late <- clock().Sub(*task.ScheduledRunTime)
		return nil
	})
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Stop(context.Background()) })
	time.Sleep(10 * time.Second)
	return e, late
}

// wantOnTime waits for a task of startLateEngine's to start, and fails t
// unless it started at its time on the store's clock.
func wantOnTime(t *testing.T, late <-chan time.Duration) {
	t.Helper()
	select {
	case d := <-late:
		if d != 0 {
			t.Errorf("a task started %v after its time on the store's clock, want on time", d)
		}
	case <-time.After(time.Minute):
		t.Fatal("a task did not start")
	}
}
