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
				e, err := NewEngine(store, nil)
				if err != nil {
					t.Fatal(err)
				}
				late := make(chan time.Duration, 1)
				e.Register("x", func(ctx context.Context, task *Task) error {
					late <- store.clock().Sub(*task.ScheduledRunTime)
					return nil
				})
				ctx := context.Background()
				if err := e.Start(ctx); err != nil {
					t.Fatal(err)
				}
				defer e.Stop(ctx)
				time.Sleep(10 * time.Second) // reads learn the store's clock
				offset.Store(-int64(back))
				if _, err := e.Enqueue(ctx, NewTask{AppID: "a", EventType: "x", RunAt: store.clock().Add(100 * time.Millisecond)}); err != nil {
					t.Fatal(err)
				}
				select {
				case d := <-late:
					if d != 0 {
						t.Errorf("the task started %v after its time on the store's clock, want on time", d)
					}
				case <-time.After(time.Minute):
					t.Fatal("the task did not start")
				}
			})
		})
	}
}
