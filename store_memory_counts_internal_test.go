package tasks

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"
	"time"
)

// TestMemoryStore_CountsFollowEveryChange is a property test of the memory
// store's counts by app and state: after every one of a long random run of
// operations (insert, insert many with repeated idempotency keys, claim,
// finish in each state, fenced-off finishes, rescue, cancel, reschedule,
// replay, delete, retention's purge, bulk replay and cancel), the counts that CountTasks reads equal a walk over every task.
func TestMemoryStore_CountsFollowEveryChange(t *testing.T) {
	t.Parallel()
	for seed := range uint64(20) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			t.Parallel()
			checkCountsUnderRandomOps(t, seed, 400)
		})
	}
}

func checkCountsUnderRandomOps(t *testing.T, seed uint64, steps int) {
	ctx := context.Background()
	r := rand.New(rand.NewPCG(seed, 14))
	s := newMemoryStore()
	clock := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return clock }
	apps := []string{"a", "b", "c"}
	var ids []string // every task inserted
	var claimed []*Task
	seq := 0
	newTask := func() *Task {
		seq++
		tk := &Task{ID: fmt.Sprintf("t%04d", seq), AppID: apps[r.IntN(len(apps))], EventType: "e", MaxAttempts: 1 + r.IntN(3)}
		if r.IntN(4) == 0 {
			tk.IdempotencyKey = fmt.Sprint("k", r.IntN(10)) // often taken already
		}
		if r.IntN(3) == 0 {
			at := clock.Add(time.Duration(r.IntN(60)) * time.Second)
			tk.ScheduledRunTime = &at
		}
		return tk
	}
	pick := func() string {
		if len(ids) == 0 {
			return "none"
		}
		return ids[r.IntN(len(ids))]
	}
	ops := []struct {
		name string
		do   func()
	}{
		{"insert", func() {
			if tk, err := s.Insert(ctx, newTask()); err == nil {
				ids = append(ids, tk.ID)
			}
		}},
		{"insert many", func() {
			batch := make([]*Task, 1+r.IntN(5))
			for i := range batch {
				batch[i] = newTask()
			}
			got, err := s.InsertMany(ctx, batch)
			if err != nil {
				t.Fatalf("InsertMany: %v", err)
			}
			for _, tk := range got {
				ids = append(ids, tk.ID)
			}
		}},
		{"claim", func() {
			got, err := s.Claim(ctx, 1+r.IntN(5), time.Duration(1+r.IntN(30))*time.Second)
			if err != nil {
				t.Fatalf("Claim: %v", err)
			}
			claimed = append(claimed, got...)
		}},
		{"finish", func() {
			if len(claimed) == 0 {
				return
			}
			i := r.IntN(len(claimed))
			tk := claimed[i]
			claimed = append(claimed[:i], claimed[i+1:]...)
			st := []State{StateCompleted, StateRetrying, StateFailed, StateCanceled}[r.IntN(4)]
			// Sometimes a stale attempt, which the fence refuses.
			if _, err := s.Finish(ctx, []Outcome{{ID: tk.ID, Attempt: tk.Attempts - r.IntN(2), State: st, Delay: time.Second, Error: "x"}}); err != nil {
				t.Fatalf("Finish: %v", err)
			}
		}},
		{"rescue", func() {
			if _, err := s.Rescue(ctx, 1+r.IntN(5)); err != nil {
				t.Fatalf("Rescue: %v", err)
			}
		}},
		{"cancel", func() { s.Cancel(ctx, pick()) }},
		{"reschedule", func() { s.Reschedule(ctx, pick(), clock.Add(time.Duration(r.IntN(60))*time.Second)) }},
		{"replay", func() { s.Replay(ctx, pick(), 1+r.IntN(2)) }},
		{"delete", func() { s.Delete(ctx, pick()) }},
		{"purge", func() {
			st := []State{StateCompleted, StateFailed, StateCanceled}[r.IntN(3)]
			if _, err := s.PurgeTasks(ctx, st, time.Duration(r.IntN(30))*time.Second, 1+r.IntN(5)); err != nil {
				t.Fatalf("PurgeTasks: %v", err)
			}
		}},
		{"bulk", func() {
			p := ListParams{AppID: apps[r.IntN(len(apps))], CreatedSince: clock.Add(-time.Hour), CreatedBefore: clock.Add(time.Hour), Limit: 1 + r.IntN(5)}
			var err error
			if r.IntN(2) == 0 {
				_, _, err = s.ReplayMany(ctx, p, 1)
			} else {
				_, _, err = s.CancelMany(ctx, p)
			}
			if err != nil {
				t.Fatalf("bulk: %v", err)
			}
		}},
		{"tick", func() { clock = clock.Add(time.Duration(r.IntN(20)) * time.Second) }},
		{"clock back", func() { clock = clock.Add(-time.Duration(r.IntN(20)) * time.Second) }},
	}
	for step := range steps {
		op := ops[r.IntN(len(ops))]
		op.do()
		want := make(map[string]map[State]int)
		for m := range s.tasks.all() {
			if want[m.t.AppID] == nil {
				want[m.t.AppID] = make(map[State]int)
			}
			want[m.t.AppID][m.t.State]++
		}
		checkEndedQueues(t, s, fmt.Sprintf("step %d (%s)", step, op.name))
		if !maps.EqualFunc(s.counts, want, maps.Equal) {
			t.Fatalf("step %d (%s): counts %v, a walk of the tasks counts %v", step, op.name, s.counts, want)
		}
		for _, a := range apps {
			got, err := s.CountTasks(ctx, a, 2)
			if err != nil {
				t.Fatal(err)
			}
			for st, n := range want[a] {
				if st.Terminal() {
					n = min(n, 2)
				}
				if got[st] != n {
					t.Fatalf("step %d (%s): CountTasks(%s, 2) = %v; a walk counts %v", step, op.name, a, got, want[a])
				}
			}
			if len(got) != len(want[a]) {
				t.Fatalf("step %d (%s): CountTasks(%s, 2) = %v; a walk counts %v", step, op.name, a, got, want[a])
			}
		}
	}
}

// checkEndedQueues checks the list order of the tasks, and the queues of
// ended tasks that PurgeTasks reads: each task in a terminal state has exactly one live entry, in its state's
// queue; the stale entries are counted; and a queue holds at most about
// twice the tasks in its state.
func checkEndedQueues(t *testing.T, s *memoryStore, at string) {
	t.Helper()
	live := make(map[*memTask]int)
	for st, e := range s.ended {
		stale := 0
		for _, x := range e.q[e.head:] {
			switch {
			case x.m.ended != x.gen:
				stale++
			case x.m.t.State != st || s.tasks.at(x.m.t.ID) != x.m || x.m.t.CompletedAt == nil:
				t.Fatalf("%s: a live entry of the %s queue is task %s, %s, stored %v", at, st, x.m.t.ID, x.m.t.State, s.tasks.at(x.m.t.ID) == x.m)
			default:
				live[x.m]++
			}
		}
		if stale != e.stale {
			t.Fatalf("%s: the %s queue has %d stale entries, and counts %d", at, st, stale, e.stale)
		}
		if n := len(e.q) - e.head; n > 2*(n-stale)+1 {
			t.Fatalf("%s: the %s queue holds %d entries, %d of them stale", at, st, n, stale)
		}
	}
	if len(s.order) != s.tasks.len() {
		t.Fatalf("%s: %d tasks listed, %d stored", at, len(s.order), s.tasks.len())
	}
	for i, m := range s.order {
		if s.tasks.at(m.t.ID) != m || i > 0 && !listBefore(&m.t, &s.order[i-1].t) {
			t.Fatalf("%s: task %s, listed at %d, is not stored or out of order", at, m.t.ID, i)
		}
	}
	for m := range s.tasks.all() {
		if want := map[bool]int{true: 1}[m.t.State.Terminal()]; live[m] != want {
			t.Fatalf("%s: task %s, %s, has %d live entries in the queues of ended tasks, want %d", at, m.t.ID, m.t.State, live[m], want)
		}
	}
}
