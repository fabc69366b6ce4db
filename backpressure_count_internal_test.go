package tasks

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/uuid"
)

// The memory store's count for Config.MaxWaiting does not drift under a
// random mix of enqueues (now and later), claims, retries, cancels,
// deletes, reschedules, replays and rescues: at every step it is at most
// the pending tasks due by now, never negative, and 0 once none is pending.
func TestMemoryStore_WaitingCountDrift(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := NewMemoryStore().(*memoryStore)
	var ids []string
	pick := func(r *rand.Rand) string { return ids[r.IntN(len(ids))] }
	r := rand.New(rand.NewPCG(1, 2))
	for step := range 5000 {
		switch op := r.IntN(9); {
		case op == 0 || len(ids) == 0:
			task := &Task{ID: uuid.NewString(), AppID: "app_1", EventType: "x", MaxAttempts: 3}
			if r.IntN(2) == 0 {
				at := time.Now().Add(time.Duration(r.IntN(3)-1) * time.Millisecond)
				task.ScheduledRunTime = &at
			}
			if _, err := s.Insert(ctx, task); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, task.ID)
		case op == 1:
			claimed, _ := s.Claim(ctx, 1+r.IntN(3), time.Millisecond)
			var outs []Outcome
			for _, c := range claimed {
				st := []State{StateCompleted, StateRetrying, StateFailed}[r.IntN(3)]
				outs = append(outs, Outcome{ID: c.ID, Attempt: c.Attempts, State: st, Delay: time.Duration(r.IntN(2)) * time.Millisecond})
			}
			if r.IntN(4) > 0 { // else left to the rescuer
				s.Finish(ctx, outs)
			}
		case op == 2:
			s.Cancel(ctx, pick(r))
		case op == 3:
			s.Delete(ctx, pick(r))
		case op == 4:
			s.Reschedule(ctx, pick(r), time.Now().Add(time.Duration(r.IntN(3)-1)*time.Millisecond))
		case op == 5:
			s.Replay(ctx, pick(r), 1)
		case op == 6:
			time.Sleep(time.Millisecond)
			s.Rescue(ctx, 10)
		default:
			s.Insert(ctx, &Task{ID: uuid.NewString(), AppID: "app_1", EventType: "x", MaxAttempts: 1})
		}
		if got, due := s.waitingTasks(), pendingDue(s); got < 0 || got > due {
			t.Fatalf("step %d: counted %d tasks waiting, want 0 to %d (pending tasks due by now)", step, got, due)
		}
	}
	s.mu.Lock()
	var all []string
	for m := range s.tasks.all() {
		all = append(all, m.t.ID)
	}
	s.mu.Unlock()
	for _, id := range all {
		s.Cancel(ctx, id)
	}
	if got := s.waitingTasks(); got != 0 {
		t.Errorf("counted %d tasks waiting with none pending, want 0", got)
	}
}

// pendingDue counts s's pending tasks due by now.
func pendingDue(s *memoryStore) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock()
	n := 0
	for m := range s.tasks.all() {
		if m.t.State.pending() && !m.runAt.After(now) {
			n++
		}
	}
	return n
}

// A replayed task waits to run at once, as the count's doc says: it is
// counted until it starts, like an enqueued one.
func TestMemoryStore_WaitingCountsReplays(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := NewMemoryStore().(*memoryStore)
	task := &Task{ID: uuid.NewString(), AppID: "app_1", EventType: "x", MaxAttempts: 1}
	if _, err := s.Insert(ctx, task); err != nil {
		t.Fatal(err)
	}
	claimed, err := s.Claim(ctx, 1, time.Minute)
	if err != nil || len(claimed) != 1 {
		t.Fatalf("Claim: %v, %v", claimed, err)
	}
	if _, err := s.Finish(ctx, []Outcome{{ID: task.ID, Attempt: 1, State: StateFailed}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Replay(ctx, task.ID, 1); err != nil {
		t.Fatal(err)
	}
	if got := s.waitingTasks(); got != 1 {
		t.Errorf("counted %d tasks waiting after a replay, want 1", got)
	}
}
