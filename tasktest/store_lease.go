package tasktest

import (
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/taskwheel/tasks"
)

func (su suite) testClaim(t *testing.T) {
	su.run(t, "EmptyStore", func(h *harness) {
		h.claimNone()
	})

	su.run(t, "OnlyDueTasks", func(h *harness) {
		h.insert(at(h.now().Add(time.Hour)))
		due := h.insert()
		got := h.claim(10, time.Hour)
		if len(got) != 1 || got[0].ID != due.ID {
			h.t.Fatalf("Claim: got %v, want [%s]", ids(got), due.ID)
		}
	})

	su.run(t, "StartsAnAttempt", func(h *harness) {
		in := h.insert()
		before := h.now()
		got := h.claimOne(in.ID, time.Minute)
		after := h.now()
		h.wantState(got, tasks.StateRunning)
		if got.Attempts != 1 {
			h.t.Errorf("Attempts: got %d, want 1", got.Attempts)
		}
		h.wantTime("NextAttemptAt", got.NextAttemptAt, nil)
		h.wantBetween("LeaseExpiresAt", got.LeaseExpiresAt, before.Add(time.Minute), after.Add(time.Minute))
		h.wantBetween("UpdatedAt", &got.UpdatedAt, before, after)
		if !got.CreatedAt.Equal(in.CreatedAt) || string(got.Data) != string(in.Data) || got.MaxAttempts != in.MaxAttempts {
			h.t.Errorf("Claim changed the task: got CreatedAt %v, Data %s, MaxAttempts %d; want %v, %s, %d",
				got.CreatedAt, got.Data, got.MaxAttempts, in.CreatedAt, in.Data, in.MaxAttempts)
		}
		h.wantSame("Get after Claim", h.get(in.ID), got)
	})

	su.run(t, "EarliestFirst", func(h *harness) {
		base := h.now()
		// Due times differ from both insertion order and ID order.
		var byDue []*tasks.Task
		for _, ms := range []int{60, 20, 40, 30} {
			tk := h.insert(at(base.Add(time.Duration(ms) * time.Millisecond)))
			byDue = append(byDue, tk)
		}
		slices.SortFunc(byDue, func(a, b *tasks.Task) int { return a.NextAttemptAt.Compare(*b.NextAttemptAt) })
		eventually(h.t, waitTimeout, "all tasks due", func() bool { return h.now().After(*byDue[3].NextAttemptAt) })
		if got := h.claim(2, time.Hour); !slices.Equal(ids(got), ids(byDue[:2])) {
			h.t.Errorf("Claim(2): got %v, want %v", ids(got), ids(byDue[:2]))
		}
		if got := h.claim(10, time.Hour); !slices.Equal(ids(got), ids(byDue[2:])) {
			h.t.Errorf("Claim(10): got %v, want %v", ids(got), ids(byDue[2:]))
		}
	})

	su.run(t, "AtMostLimit", func(h *harness) {
		for range 5 {
			h.insert()
		}
		for _, want := range []int{2, 2, 1, 0} {
			if got := h.claim(2, time.Hour); len(got) != want {
				h.t.Errorf("Claim(2): got %d tasks, want %d", len(got), want)
			}
		}
	})

	su.run(t, "NotClaimedAgainWhileLeased", func(h *harness) {
		tk := h.running(time.Hour)
		h.claimNone()
		h.wantState(h.get(tk.ID), tasks.StateRunning)
	})

	su.run(t, "ExpiredLeaseWaitsForRescue", func(h *harness) {
		tk := h.running(time.Millisecond)
		h.waitExpired(tk)
		h.claimNone()
		if n := h.rescue(10); n != 1 {
			h.t.Fatalf("Rescue: got %d, want 1", n)
		}
		if got := h.claimOne(tk.ID, time.Hour); got.Attempts != 2 {
			h.t.Errorf("Attempts after rescue and claim: got %d, want 2", got.Attempts)
		}
	})

	su.run(t, "ConcurrentClaimersGetDisjointTasks", func(h *harness) {
		const tasksN, claimers, limit = 100, 8, 3
		want := make(map[string]bool)
		for range tasksN {
			want[h.insert().ID] = true
		}
		var mu sync.Mutex
		seen := make(map[string]int)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for range claimers {
			wg.Go(func() {
				<-start
				for {
					got, err := h.s.Claim(h.ctx, limit, time.Hour)
					if err != nil {
						h.t.Errorf("Claim: got error %v, want nil", err)
						return
					}
					if len(got) > limit {
						h.t.Errorf("Claim(%d): got %d tasks", limit, len(got))
					}
					if len(got) == 0 {
						return
					}
					mu.Lock()
					for _, tk := range got {
						seen[tk.ID]++
						if tk.Attempts != 1 {
							h.t.Errorf("task %s: got Attempts %d, want 1", tk.ID, tk.Attempts)
						}
					}
					mu.Unlock()
				}
			})
		}
		close(start)
		h.wait(&wg)
		for id, n := range seen {
			if n != 1 {
				h.t.Errorf("task %s: claimed %d times, want once", id, n)
			}
			if !want[id] {
				h.t.Errorf("task %s: claimed but never inserted", id)
			}
		}
		if len(seen) != tasksN {
			h.t.Errorf("claimed %d distinct tasks, want %d", len(seen), tasksN)
		}
	})
}

func (su suite) testFinish(t *testing.T) {
	for _, tc := range []struct {
		name  string
		state tasks.State
		msg   string
	}{
		{"Completed", tasks.StateCompleted, ""},
		{"Failed", tasks.StateFailed, "boom"},
		{"Canceled", tasks.StateCanceled, "context canceled"},
	} {
		su.run(t, tc.name, func(h *harness) {
			tk := h.running(time.Hour)
			before := h.now()
			h.finishOne(tk, tc.state, 0, tc.msg)
			after := h.now()
			got := h.get(tk.ID)
			h.wantState(got, tc.state)
			h.wantBetween("CompletedAt", got.CompletedAt, before, after)
			h.wantBetween("UpdatedAt", &got.UpdatedAt, before, after)
			if got.LastError != tc.msg || got.Attempts != 1 {
				h.t.Errorf("got LastError %q, Attempts %d; want %q, 1", got.LastError, got.Attempts, tc.msg)
			}
			h.claimNone()
		})
	}

	su.run(t, "Retrying", func(h *harness) {
		tk := h.running(time.Hour)
		before := h.now()
		h.finishOne(tk, tasks.StateRetrying, time.Hour, "boom")
		after := h.now()
		got := h.get(tk.ID)
		h.wantState(got, tasks.StateRetrying)
		h.wantBetween("NextAttemptAt", got.NextAttemptAt, before.Add(time.Hour), after.Add(time.Hour))
		if got.LastError != "boom" || got.Attempts != 1 {
			h.t.Errorf("got LastError %q, Attempts %d; want \"boom\", 1", got.LastError, got.Attempts)
		}
		h.claimNone()
	})

	su.run(t, "RetryingIsClaimableAfterItsDelay", func(h *harness) {
		tk := h.running(time.Hour)
		h.finishOne(tk, tasks.StateRetrying, 10*time.Millisecond, "boom")
		var got []*tasks.Task
		eventually(h.t, waitTimeout, "the retried task to be claimable", func() bool {
			got = h.claim(10, time.Hour)
			return len(got) > 0
		})
		if len(got) != 1 || got[0].ID != tk.ID || got[0].Attempts != 2 || got[0].State != tasks.StateRunning {
			h.t.Fatalf("Claim: got %v, want [%s] running at attempt 2", got, tk.ID)
		}
	})

	su.run(t, "StaleAttemptIsNotApplied", func(h *harness) {
		tk := h.running(time.Hour)
		want := h.get(tk.ID)
		for _, attempt := range []int{0, 2, -1} {
			o := tasks.Outcome{ID: tk.ID, Attempt: attempt, State: tasks.StateCompleted}
			if applied := h.finish(o); applied[0] {
				h.t.Errorf("Finish at attempt %d of a task running attempt 1: got applied true, want false", attempt)
			}
		}
		h.wantSame("task after stale outcomes", h.get(tk.ID), want)
	})

	su.run(t, "TaskNotRunningIsNotApplied", func(h *harness) {
		for _, s := range []tasks.State{tasks.StateScheduled, tasks.StateRetrying, tasks.StateCompleted, tasks.StateFailed, tasks.StateCanceled} {
			tk := h.inState(s)
			for _, attempt := range []int{tk.Attempts, tk.Attempts + 1} {
				o := tasks.Outcome{ID: tk.ID, Attempt: attempt, State: tasks.StateFailed, Error: "late"}
				if applied := h.finish(o); applied[0] {
					h.t.Errorf("Finish at attempt %d of a %s task: got applied true, want false", attempt, s)
				}
			}
			h.wantSame("task after a stale outcome", h.get(tk.ID), tk)
		}
	})

	su.run(t, "UnknownTaskIsNotApplied", func(h *harness) {
		if applied := h.finish(tasks.Outcome{ID: uuid.NewString(), Attempt: 1, State: tasks.StateCompleted}); applied[0] {
			h.t.Errorf("Finish of an unknown task: got applied true, want false")
		}
	})

	// F7: a stale worker reports after its task was rescued and claimed again.
	su.run(t, "F7_StaleWorkerAfterRescue", func(h *harness) {
		tk := h.running(time.Millisecond)
		h.waitExpired(tk)
		if n := h.rescue(10); n != 1 {
			h.t.Fatalf("Rescue: got %d, want 1", n)
		}
		second := h.claimOne(tk.ID, time.Hour)
		if second.Attempts != 2 {
			h.t.Fatalf("second claim: got Attempts %d, want 2", second.Attempts)
		}
		stale := tasks.Outcome{ID: tk.ID, Attempt: 1, State: tasks.StateCompleted}
		if applied := h.finish(stale); applied[0] {
			h.t.Errorf("Finish of attempt 1: got applied true, want false")
		}
		h.wantSame("task after the stale outcome", h.get(tk.ID), second)
		h.finishOne(second, tasks.StateCompleted, 0, "")
		done := h.get(tk.ID)
		h.wantState(done, tasks.StateCompleted)
		// One terminal transition only: neither attempt applies again.
		for _, o := range []tasks.Outcome{stale, {ID: tk.ID, Attempt: 2, State: tasks.StateFailed, Error: "late"}} {
			if applied := h.finish(o); applied[0] {
				h.t.Errorf("Finish(%+v) after completion: got applied true, want false", o)
			}
		}
		h.wantSame("completed task after late outcomes", h.get(tk.ID), done)
	})

	su.run(t, "RetryingWithCancelRequestedCancels", func(h *harness) {
		tk := h.running(time.Hour)
		h.cancel(tk.ID)
		h.finishOne(tk, tasks.StateRetrying, 0, "context canceled")
		got := h.get(tk.ID)
		h.wantState(got, tasks.StateCanceled)
		h.claimNone()
	})

	for _, s := range []tasks.State{tasks.StateCompleted, tasks.StateFailed} {
		su.run(t, title(s)+"WithCancelRequestedStays"+title(s), func(h *harness) {
			tk := h.running(time.Hour)
			h.cancel(tk.ID)
			h.finishOne(tk, s, 0, "")
			h.wantState(h.get(tk.ID), s)
		})
	}

	su.run(t, "MixedBatch", func(h *harness) {
		a, b, d := h.running(time.Hour), h.running(time.Hour), h.running(time.Hour)
		bBefore := h.get(b.ID)
		applied := h.finish(
			tasks.Outcome{ID: a.ID, Attempt: 1, State: tasks.StateCompleted},
			tasks.Outcome{ID: b.ID, Attempt: 2, State: tasks.StateCompleted}, // stale
			tasks.Outcome{ID: uuid.NewString(), Attempt: 1, State: tasks.StateCompleted},
			tasks.Outcome{ID: d.ID, Attempt: 1, State: tasks.StateRetrying, Delay: time.Hour, Error: "boom"},
		)
		if want := []bool{true, false, false, true}; !slices.Equal(applied, want) {
			h.t.Errorf("Finish: got applied %v, want %v", applied, want)
		}
		h.wantState(h.get(a.ID), tasks.StateCompleted)
		h.wantSame("task with a stale outcome", h.get(b.ID), bBefore)
		h.wantState(h.get(d.ID), tasks.StateRetrying)
	})

	su.run(t, "EmptyBatch", func(h *harness) {
		if applied := h.finish(); len(applied) != 0 {
			h.t.Errorf("Finish(): got %v, want none", applied)
		}
	})

	su.run(t, "SameAttemptTwiceInABatchAppliesOnce", func(h *harness) {
		tk := h.running(time.Hour)
		outs := []tasks.Outcome{
			{ID: tk.ID, Attempt: 1, State: tasks.StateCompleted},
			{ID: tk.ID, Attempt: 1, State: tasks.StateFailed, Error: "boom"},
		}
		applied := h.finish(outs...)
		if applied[0] == applied[1] {
			h.t.Fatalf("Finish of one attempt twice: got applied %v, want exactly one true", applied)
		}
		want := outs[0].State
		if applied[1] {
			want = outs[1].State
		}
		h.wantState(h.get(tk.ID), want)
	})

	su.run(t, "ConcurrentFinishersApplyOnce", func(h *harness) {
		tk := h.running(time.Hour)
		const n = 8
		var appliedBy atomic.Int64
		var count atomic.Int64
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				<-start
				applied, err := h.s.Finish(h.ctx, []tasks.Outcome{{ID: tk.ID, Attempt: 1, State: tasks.StateFailed, Error: string(rune('a' + i))}})
				if err != nil {
					h.t.Errorf("Finish: got error %v, want nil", err)
					return
				}
				if len(applied) == 1 && applied[0] {
					count.Add(1)
					appliedBy.Store(int64(i))
				}
			})
		}
		close(start)
		h.wait(&wg)
		if count.Load() != 1 {
			h.t.Fatalf("concurrent Finish of one attempt: applied %d times, want once", count.Load())
		}
		got := h.get(tk.ID)
		h.wantState(got, tasks.StateFailed)
		if want := string(rune('a' + appliedBy.Load())); got.LastError != want {
			h.t.Errorf("LastError: got %q, want %q (the applied outcome's)", got.LastError, want)
		}
	})

	su.run(t, "RacingRescueOneWins", func(h *harness) {
		const n = 30
		for range n {
			h.insert()
		}
		claimed := h.claim(n, time.Millisecond)
		if len(claimed) != n {
			h.t.Fatalf("Claim: got %d tasks, want %d", len(claimed), n)
		}
		h.waitExpired(claimed...)
		outs := make([]tasks.Outcome, n)
		for i, tk := range claimed {
			outs[i] = tasks.Outcome{ID: tk.ID, Attempt: 1, State: tasks.StateCompleted}
		}
		var applied []bool
		var rescued atomic.Int64
		start := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			<-start
			for _, o := range outs { // one at a time, to interleave with Rescue
				a, err := h.s.Finish(h.ctx, []tasks.Outcome{o})
				if err != nil || len(a) != 1 {
					h.t.Errorf("Finish: got %v, %v; want one flag, nil", a, err)
					return
				}
				applied = append(applied, a[0])
			}
		})
		wg.Go(func() {
			<-start
			for {
				k, err := h.s.Rescue(h.ctx, 3)
				if err != nil {
					h.t.Errorf("Rescue: got error %v, want nil", err)
					return
				}
				rescued.Add(int64(k))
				if k == 0 {
					return
				}
			}
		})
		close(start)
		h.wait(&wg)
		if len(applied) != n {
			h.t.FailNow()
		}
		finished := 0
		for i, tk := range claimed {
			got := h.get(tk.ID)
			switch {
			case applied[i]:
				finished++
				h.wantState(got, tasks.StateCompleted)
			case got.State != tasks.StateRetrying || got.LastError != "lease expired":
				h.t.Errorf("task %s, outcome not applied: got State %s, LastError %q; want retrying, \"lease expired\"", tk.ID, got.State, got.LastError)
			}
		}
		if int(rescued.Load()) != n-finished {
			h.t.Errorf("Rescue: rescued %d, Finish applied %d; want %d in total", rescued.Load(), finished, n)
		}
	})
}

func (su suite) testExtend(t *testing.T) {
	su.run(t, "ExtendsALiveLease", func(h *harness) {
		tk := h.running(time.Minute)
		before := h.now()
		if revoked := h.extend(time.Hour, tasks.Lease{ID: tk.ID, Attempt: 1}); len(revoked) != 0 {
			h.t.Errorf("Extend: got revoked %v, want none", revoked)
		}
		after := h.now()
		got := h.get(tk.ID)
		h.wantState(got, tasks.StateRunning)
		h.wantBetween("LeaseExpiresAt", got.LeaseExpiresAt, before.Add(time.Hour), after.Add(time.Hour))
		if got.Attempts != 1 {
			h.t.Errorf("Attempts: got %d, want 1", got.Attempts)
		}
	})

	su.run(t, "ExtendsAnExpiredLeaseNotYetRescued", func(h *harness) {
		tk := h.running(time.Millisecond)
		h.waitExpired(tk)
		if revoked := h.extend(time.Hour, tasks.Lease{ID: tk.ID, Attempt: 1}); len(revoked) != 0 {
			h.t.Errorf("Extend: got revoked %v, want none", revoked)
		}
		if n := h.rescue(10); n != 0 {
			h.t.Errorf("Rescue after Extend: got %d, want 0", n)
		}
		h.wantState(h.get(tk.ID), tasks.StateRunning)
	})

	su.run(t, "RevokesCancelRequested", func(h *harness) {
		tk := h.running(time.Hour)
		h.cancel(tk.ID)
		if revoked := h.extend(time.Hour, tasks.Lease{ID: tk.ID, Attempt: 1}); !slices.Equal(revoked, []string{tk.ID}) {
			h.t.Errorf("Extend: got revoked %v, want [%s]", revoked, tk.ID)
		}
	})

	su.run(t, "RevokesALostLease", func(h *harness) {
		tk := h.running(time.Millisecond)
		h.waitExpired(tk)
		if n := h.rescue(10); n != 1 {
			h.t.Fatalf("Rescue: got %d, want 1", n)
		}
		stale := tasks.Lease{ID: tk.ID, Attempt: 1}
		if revoked := h.extend(time.Hour, stale); !slices.Equal(revoked, []string{tk.ID}) {
			h.t.Errorf("Extend of a rescued attempt: got revoked %v, want [%s]", revoked, tk.ID)
		}
		second := h.claimOne(tk.ID, time.Minute)
		if revoked := h.extend(time.Hour, stale); !slices.Equal(revoked, []string{tk.ID}) {
			h.t.Errorf("Extend of attempt 1 while attempt 2 runs: got revoked %v, want [%s]", revoked, tk.ID)
		}
		h.wantSame("attempt 2 after a stale Extend", h.get(tk.ID), second)
		if revoked := h.extend(time.Hour, tasks.Lease{ID: tk.ID, Attempt: 2}); len(revoked) != 0 {
			h.t.Errorf("Extend of attempt 2: got revoked %v, want none", revoked)
		}
	})

	su.run(t, "MixedBatch", func(h *harness) {
		live := h.running(time.Minute)
		canceled := h.running(time.Hour)
		h.cancel(canceled.ID)
		done := h.running(time.Hour)
		h.finishOne(done, tasks.StateCompleted, 0, "")
		unknown := uuid.NewString()
		before := h.now()
		revoked := h.extend(time.Hour,
			tasks.Lease{ID: live.ID, Attempt: 1},
			tasks.Lease{ID: canceled.ID, Attempt: 1},
			tasks.Lease{ID: done.ID, Attempt: 1},
			tasks.Lease{ID: unknown, Attempt: 1},
		)
		after := h.now()
		slices.Sort(revoked)
		want := []string{canceled.ID, done.ID, unknown}
		slices.Sort(want)
		if !slices.Equal(revoked, want) {
			h.t.Errorf("Extend: got revoked %v, want %v", revoked, want)
		}
		h.wantBetween("LeaseExpiresAt of the live attempt", h.get(live.ID).LeaseExpiresAt, before.Add(time.Hour), after.Add(time.Hour))
		h.wantState(h.get(done.ID), tasks.StateCompleted)
	})

	su.run(t, "EmptyBatch", func(h *harness) {
		if revoked := h.extend(time.Hour); len(revoked) != 0 {
			h.t.Errorf("Extend(): got revoked %v, want none", revoked)
		}
	})
}

func (su suite) testRescue(t *testing.T) {
	// F1 at store level: a task whose engine died is retried.
	su.run(t, "F1_ExpiredLeaseRetries", func(h *harness) {
		tk := h.running(time.Millisecond)
		h.waitExpired(tk)
		before := h.now()
		if n := h.rescue(10); n != 1 {
			h.t.Fatalf("Rescue: got %d, want 1", n)
		}
		after := h.now()
		got := h.get(tk.ID)
		h.wantState(got, tasks.StateRetrying)
		if got.Attempts != 1 || got.LastError != "lease expired" {
			h.t.Errorf("got Attempts %d, LastError %q; want 1, \"lease expired\"", got.Attempts, got.LastError)
		}
		h.wantBetween("NextAttemptAt", got.NextAttemptAt, before, after)
		if again := h.claimOne(tk.ID, time.Hour); again.Attempts != 2 {
			h.t.Errorf("claim after rescue: got Attempts %d, want 2", again.Attempts)
		}
	})

	// F3: the engine died on the last allowed attempt.
	su.run(t, "F3_LastAttemptFails", func(h *harness) {
		tk := h.running(time.Millisecond, maxAttempts(2))
		h.waitExpired(tk)
		if n := h.rescue(10); n != 1 {
			h.t.Fatalf("first Rescue: got %d, want 1", n)
		}
		h.wantState(h.get(tk.ID), tasks.StateRetrying)
		second := h.claimOne(tk.ID, time.Millisecond)
		h.waitExpired(second)
		before := h.now()
		if n := h.rescue(10); n != 1 {
			h.t.Fatalf("second Rescue: got %d, want 1", n)
		}
		after := h.now()
		got := h.get(tk.ID)
		h.wantState(got, tasks.StateFailed)
		h.wantBetween("CompletedAt", got.CompletedAt, before, after)
		if got.Attempts != 2 || got.LastError != "lease expired" {
			h.t.Errorf("got Attempts %d, LastError %q; want 2, \"lease expired\"", got.Attempts, got.LastError)
		}
		h.claimNone()
		if _, due := h.upcoming(time.Hour, 10); len(due) != 0 {
			h.t.Errorf("Upcoming: got %v, want none", dueIDs(due))
		}
	})

	// F4: the engine died after a cancel was requested.
	su.run(t, "F4_CancelRequestedCancels", func(h *harness) {
		tk := h.running(time.Millisecond)
		h.cancel(tk.ID)
		h.waitExpired(tk)
		if n := h.rescue(10); n != 1 {
			h.t.Fatalf("Rescue: got %d, want 1", n)
		}
		got := h.get(tk.ID)
		h.wantState(got, tasks.StateCanceled)
		if got.LastError != "lease expired" {
			h.t.Errorf("LastError: got %q, want \"lease expired\"", got.LastError)
		}
		h.claimNone()
	})

	su.run(t, "LiveLeaseIsUntouched", func(h *harness) {
		tk := h.running(time.Hour)
		want := h.get(tk.ID)
		if n := h.rescue(10); n != 0 {
			h.t.Errorf("Rescue: got %d, want 0", n)
		}
		h.wantSame("task with a live lease after Rescue", h.get(tk.ID), want)
	})

	su.run(t, "RespectsLimit", func(h *harness) {
		for range 5 {
			h.insert()
		}
		claimed := h.claim(5, time.Millisecond)
		h.waitExpired(claimed...)
		for _, want := range []int{2, 2, 1, 0} {
			if got := h.rescue(2); got != want {
				h.t.Errorf("Rescue(2): got %d, want %d", got, want)
			}
		}
	})

	// F22: two rescuers at once.
	su.run(t, "F22_ConcurrentRescuersRescueEachOnce", func(h *harness) {
		const n, rescuers = 40, 4
		for range n {
			h.insert()
		}
		claimed := h.claim(n, time.Millisecond)
		if len(claimed) != n {
			h.t.Fatalf("Claim: got %d tasks, want %d", len(claimed), n)
		}
		h.waitExpired(claimed...)
		var total atomic.Int64
		start := make(chan struct{})
		var wg sync.WaitGroup
		for range rescuers {
			wg.Go(func() {
				<-start
				for {
					k, err := h.s.Rescue(h.ctx, 7)
					if err != nil {
						h.t.Errorf("Rescue: got error %v, want nil", err)
						return
					}
					total.Add(int64(k))
					if k == 0 {
						return
					}
				}
			})
		}
		close(start)
		h.wait(&wg)
		if total.Load() != n {
			h.t.Errorf("concurrent Rescue: rescued %d in total, want %d", total.Load(), n)
		}
		for _, tk := range claimed {
			if got := h.get(tk.ID); got.State != tasks.StateRetrying || got.Attempts != 1 {
				h.t.Errorf("task %s: got State %s, Attempts %d; want retrying, 1", tk.ID, got.State, got.Attempts)
			}
		}
	})
}

func (su suite) testUpcoming(t *testing.T) {
	su.run(t, "EmptyStore", func(h *harness) {
		if _, due := h.upcoming(time.Hour, 10); len(due) != 0 {
			h.t.Errorf("Upcoming: got %v, want none", dueIDs(due))
		}
	})

	// fixture stores tasks in every state and returns the pending ones due
	// within an hour, earliest first.
	fixture := func(h *harness) []*tasks.Task {
		h.running(time.Hour)
		h.completed()
		h.failed()
		h.canceled()
		base := h.now()
		h.canceled(at(base.Add(10 * time.Minute)))
		h.insert(at(base.Add(2 * time.Hour)))
		retry := h.retrying(20 * time.Minute)
		soon := h.insert(at(base.Add(30 * time.Minute)))
		overdue := h.insert(at(base.Add(-time.Hour)))
		now := h.insert()
		return []*tasks.Task{overdue, now, retry, soon}
	}

	// wantDue reports due unless it holds the tasks of want, earliest first
	// (tasks due at the same instant in any order), each at its NextAttemptAt.
	wantDue := func(h *harness, what string, due []tasks.Due, want []*tasks.Task) {
		h.t.Helper()
		if !sameSet(dueIDs(due), ids(want)) {
			h.t.Fatalf("%s: got %v, want %v", what, dueIDs(due), ids(want))
		}
		byID := make(map[string]*tasks.Task)
		for _, tk := range want {
			byID[tk.ID] = tk
		}
		for i, d := range due {
			if !d.RunAt.Equal(*byID[d.ID].NextAttemptAt) {
				h.t.Errorf("%s: task %s RunAt got %v, want its NextAttemptAt %v", what, d.ID, d.RunAt, byID[d.ID].NextAttemptAt)
			}
			if i > 0 && d.RunAt.Before(due[i-1].RunAt) {
				h.t.Errorf("%s: got %v, want earliest first", what, due)
			}
		}
	}

	su.run(t, "PendingTasksWithinTheWindow", func(h *harness) {
		want := fixture(h)
		before := h.now()
		now, due := h.upcoming(time.Hour, 100)
		after := h.now()
		h.wantBetween("now", &now, before, after)
		wantDue(h, "Upcoming(1h)", due, want)
	})

	su.run(t, "RespectsLimit", func(h *harness) {
		want := fixture(h)
		_, due := h.upcoming(time.Hour, 2)
		wantDue(h, "Upcoming(1h, limit 2)", due, want[:2])
	})

	su.run(t, "ZeroWindowGivesDueTasks", func(h *harness) {
		want := fixture(h)
		_, due := h.upcoming(0, 100)
		wantDue(h, "Upcoming(0)", due, want[:2])
	})

	// The engine reads the store's clock so before each read of the
	// upcoming tasks.
	su.run(t, "ZeroLimitGivesTheClockAlone", func(h *harness) {
		fixture(h)
		before := h.now()
		now, due := h.upcoming(time.Hour, 0)
		after := h.now()
		h.wantBetween("now", &now, before, after)
		if len(due) != 0 {
			h.t.Errorf("Upcoming(1h, limit 0): got %v, want none", dueIDs(due))
		}
	})
}
