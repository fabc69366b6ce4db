package tasks_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/internal/testkit"
)

// heldInsert is a store that holds the first insert of a periodic task's
// task until released: the engine on it has read the periodic task and
// decided to enqueue its slot, but not yet done so.
type heldInsert struct {
	tasks.Store
	once     sync.Once
	held     chan struct{} // closed when the insert arrives
	release  chan struct{} // closed by the test
	inserted chan struct{} // closed when the held insert returned
}

func (s *heldInsert) Insert(ctx context.Context, t *tasks.Task) (*tasks.Task, error) {
	first := false
	if strings.HasPrefix(t.IdempotencyKey, "periodic:") {
		s.once.Do(func() { first = true })
	}
	if !first {
		return s.Store.Insert(ctx, t)
	}
	close(s.held)
	select {
	case <-s.release:
	case <-ctx.Done():
	}
	defer close(s.inserted)
	return s.Store.Insert(ctx, t)
}

// lateClock is a store whose clock, as DuePeriodics reads it, is ahead by
// skew: an engine on it finds slots missed that an engine on the true clock
// finds due. It reports when the engine advances a periodic task to or past
// past.
type lateClock struct {
	tasks.Store
	skew     time.Duration
	past     time.Time
	once     sync.Once
	advanced chan struct{}
}

func (s *lateClock) DuePeriodics(ctx context.Context, within time.Duration, limit int) (time.Time, []*tasks.PeriodicTask, error) {
	now, due, err := s.Store.DuePeriodics(ctx, within+s.skew, limit)
	return now.Add(s.skew), due, err
}

func (s *lateClock) AdvancePeriodic(ctx context.Context, id string, from, to, lastRunAt time.Time, lastTaskID string) (bool, error) {
	ok, err := s.Store.AdvancePeriodic(ctx, id, from, to, lastRunAt, lastTaskID)
	if ok && !to.Before(s.past) {
		s.once.Do(func() { close(s.advanced) })
	}
	return ok, err
}

// TestPeriodic_RunOnceRace checks that two engines that disagree about
// whether a slot was missed enqueue one task for it between them. Engine A
// has been running: the slot S is due for it, and it is about to enqueue
// S's task. Engine B has just started, on a clock three hours ahead: for
// it, S, S+1h and S+2h were missed, and run_once enqueues one task for
// them. Whichever comes first, the slots up to S+2h have one task.
func TestPeriodic_RunOnceRace(t *testing.T) {
	t.Parallel()
	for _, c := range testkit.SharedStores {
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			stores := c.Open(t, 2)
			p := createPeriodic(t, newEngine(t, stores[0], nil), tasks.NewPeriodic{Spec: "@every 1h"})
			slot := time.Now().UTC().Truncate(time.Second).Add(time.Second) // S
			p.NextRunAt = &slot
			if _, err := stores[0].UpdatePeriodic(ctx, p); err != nil {
				t.Fatal(err)
			}
			lastMissed := slot.Add(2 * time.Hour)

			// The engines read periodic tasks every 30 s, the most, so
			// that each reads them once here.
			cfg := &tasks.Config{PollInterval: time.Hour}
			noop := map[string]tasks.Func{"tick": func(context.Context, *tasks.Task) error { return nil }}
			a := &heldInsert{Store: stores[0], held: make(chan struct{}), release: make(chan struct{}), inserted: make(chan struct{})}
			startEngine(t, a, cfg, noop)
			select {
			case <-a.held:
			case <-time.After(10 * time.Second):
				t.Fatal("engine A did not enqueue slot S")
			}
			b := &lateClock{Store: stores[1], skew: 3 * time.Hour, past: lastMissed.Add(time.Nanosecond), advanced: make(chan struct{})}
			startEngine(t, b, cfg, noop)
			select {
			case <-b.advanced:
			case <-time.After(10 * time.Second):
				close(a.release)
				t.Fatal("engine B did not advance the periodic task past the missed slots")
			}
			close(a.release)
			select {
			case <-a.inserted:
			case <-time.After(10 * time.Second):
				t.Fatal("engine A's insert did not return")
			}

			ts, _, err := stores[0].List(ctx, tasks.ListParams{AppID: "app_1", Limit: tasks.MaxListLimit})
			if err != nil {
				t.Fatal(err)
			}
			var window []string
			for _, task := range ts {
				if !task.ScheduledRunTime.After(lastMissed) {
					window = append(window, task.IdempotencyKey+" at "+task.ScheduledRunTime.Format(time.TimeOnly))
				}
			}
			if len(window) != 1 {
				t.Errorf("tasks for the slots from S (%v) to S+2h: got %d, %q; want 1", slot.Format(time.TimeOnly), len(window), window)
			}
		})
	}
}
