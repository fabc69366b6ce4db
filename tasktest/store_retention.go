package tasktest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
)

// Retention: PurgeTasks deletes finished tasks past an age (R1), and
// Elect and Resign let one engine at a time do it (R2).

// purge calls PurgeTasks and fails the test on an error.
func (h *harness) purge(state tasks.State, olderThan time.Duration, limit int) int {
	h.t.Helper()
	n, err := h.s.PurgeTasks(h.ctx, state, olderThan, limit)
	if err != nil {
		h.t.Fatalf("PurgeTasks(%s, %v, %d): got error %v, want nil", state, olderThan, limit, err)
	}
	if n < 0 || n > limit {
		h.t.Fatalf("PurgeTasks(%s, %v, %d): got %d, want 0 to %d", state, olderThan, limit, n, limit)
	}
	return n
}

// wantKept fails unless every task of ts is stored, as it was.
func (h *harness) wantKept(ts ...*tasks.Task) {
	h.t.Helper()
	for _, t := range ts {
		got, err := h.s.Get(h.ctx, t.ID)
		if err != nil {
			h.t.Errorf("Get(%s) of a task in state %s after PurgeTasks: got error %v, want the task", t.ID, t.State, err)
			continue
		}
		h.wantSame("a task PurgeTasks keeps", got, t)
	}
}

func (h *harness) elect(role, holder string, term time.Duration) bool {
	h.t.Helper()
	ok, err := h.s.Elect(h.ctx, role, holder, term)
	if err != nil {
		h.t.Fatalf("Elect(%s, %s, %v): got error %v, want nil", role, holder, term, err)
	}
	return ok
}

func (h *harness) resign(role, holder string) {
	h.t.Helper()
	if err := h.s.Resign(h.ctx, role, holder); err != nil {
		h.t.Fatalf("Resign(%s, %s): got error %v, want nil", role, holder, err)
	}
}

// wantValidationError fails unless err is a *tasks.ValidationError.
func (h *harness) wantValidationError(what string, err error) {
	h.t.Helper()
	var ve *tasks.ValidationError
	if !errors.As(err, &ve) {
		h.t.Errorf("%s: got error %v, want a *tasks.ValidationError", what, err)
	}
}

// Margins of the tests of ages: a task "old" ended retentionGap before a
// "young" one, and PurgeTasks is called with an age that leaves
// retentionSlack, on the store's clock, for the call to arrive after the
// age was computed.
const (
	retentionGap   = 400 * time.Millisecond
	retentionSlack = 200 * time.Millisecond
)

func (su suite) testRetention(t *testing.T) {
	t.Run("PurgeTasks", func(t *testing.T) {
		t.Parallel()
		su.testPurgeTasks(t)
	})
	t.Run("Elect", func(t *testing.T) {
		t.Parallel()
		su.testElect(t)
	})
}

func (su suite) testPurgeTasks(t *testing.T) {
	terminal := []tasks.State{tasks.StateCompleted, tasks.StateFailed, tasks.StateCanceled}

	su.run(t, "R1/DeletesOnlyTheStatePastTheAge", func(h *harness) {
		old := map[tasks.State]*tasks.Task{}
		for _, s := range terminal {
			old[s] = h.inState(s)
		}
		h.after(old[tasks.StateCanceled].CompletedAt.Add(retentionGap))
		young := map[tasks.State]*tasks.Task{}
		for _, s := range terminal {
			young[s] = h.inState(s)
		}
		for i, s := range terminal {
			// An age between the old task's and the young one's.
			age := h.now().Sub(*young[terminal[0]].CompletedAt) + retentionSlack
			if n := h.purge(s, age, 100); n != 1 {
				h.t.Errorf("PurgeTasks(%s, %v, 100): got %d, want 1 (the old task)", s, age, n)
			}
			h.wantGone(old[s].ID)
			h.wantKept(young[s])
			for _, later := range terminal[i+1:] {
				h.wantKept(old[later]) // other states are left alone
			}
		}
	})

	su.run(t, "R1/AttemptsGoWithTheirTask", func(h *harness) {
		doomed, kept := h.running(time.Hour), h.running(time.Hour)
		for _, tk := range []*tasks.Task{doomed, kept} {
			h.finish(tasks.Outcome{ID: tk.ID, Attempt: 1, State: tasks.StateCompleted,
				Attempts: []tasks.Attempt{{Number: 1, StartedAt: h.now(), StatusCode: 200}, {Number: 1, EndpointID: "ep_b", StartedAt: h.now(), StatusCode: 204}}})
		}
		h.after(*h.get(kept.ID).CompletedAt)
		if _, err := h.s.Replay(h.ctx, kept.ID, 1); err != nil {
			h.t.Fatalf("Replay: got error %v, want nil", err)
		}
		if n := h.purge(tasks.StateCompleted, 0, 10); n != 1 {
			h.t.Fatalf("PurgeTasks(completed, 0, 10): got %d, want 1", n)
		}
		h.wantGone(doomed.ID)
		if as, err := h.s.Attempts(h.ctx, doomed.ID); err != nil || len(as) != 0 {
			h.t.Errorf("Attempts of a deleted task: got %d attempts, error %v; want none", len(as), err)
		}
		if as, err := h.s.Attempts(h.ctx, kept.ID); err != nil || len(as) != 2 {
			h.t.Errorf("Attempts of a task kept: got %d attempts, error %v; want 2", len(as), err)
		}
	})

	su.run(t, "R1/FreesTheIdempotencyKey", func(h *harness) {
		first := h.completed(key("order-1"), digest(digest1))
		other := h.completed(key("order-1"), app("app_2")) // another app's key of the same name
		h.after(*other.CompletedAt)
		if n := h.purge(tasks.StateCompleted, 0, 1); n != 1 {
			h.t.Fatalf("PurgeTasks(completed, 0, 1): got %d, want 1", n)
		}
		h.wantGone(first.ID)
		if _, err := h.s.GetByIdempotencyKey(h.ctx, "app_1", "order-1"); !errors.Is(err, tasks.ErrNotFound) {
			h.t.Errorf("GetByIdempotencyKey of a deleted task's key: got error %v, want ErrNotFound", err)
		}
		in := h.newTask(key("order-1"), digest(digest2))
		got, err := h.s.Insert(h.ctx, in)
		if err != nil || got.ID != in.ID || got.State != tasks.StateScheduled || got.IdempotencyDigest != digest2 {
			h.t.Fatalf("Insert with a deleted task's key: got %v, error %v; want a new task %s", got, err, in.ID)
		}
		if held, err := h.s.GetByIdempotencyKey(h.ctx, "app_1", "order-1"); err != nil || held.ID != in.ID {
			h.t.Errorf("GetByIdempotencyKey: got %v, error %v; want the new task %s", held, err, in.ID)
		}
		h.wantKept(other)
	})

	su.run(t, "LimitAndOldestFirst", func(h *harness) {
		var done []*tasks.Task
		for range 5 {
			tk := h.completed()
			done = append(done, tk)
			h.after(*tk.CompletedAt) // distinct CompletedAt, in order
		}
		for i, want := range []int{2, 2, 1, 0} {
			if n := h.purge(tasks.StateCompleted, 0, 2); n != want {
				h.t.Fatalf("PurgeTasks(completed, 0, 2) #%d: got %d, want %d", i+1, n, want)
			}
			gone := min(2*(i+1), 5)
			h.wantGone(ids(done[:gone])...)
			h.wantKept(done[gone:]...)
		}
	})

	su.run(t, "NothingYoungerThanTheAge", func(h *harness) {
		tk := h.completed()
		if n := h.purge(tasks.StateCompleted, time.Hour, 10); n != 0 {
			h.t.Errorf("PurgeTasks(completed, 1h, 10) of a task completed just now: got %d, want 0", n)
		}
		if n := h.purge(tasks.StateCompleted, tasks.Forever, 10); n != 0 {
			h.t.Errorf("PurgeTasks(completed, Forever, 10): got %d, want 0", n)
		}
		h.wantKept(tk)
	})

	su.run(t, "R1/NeverALiveTask", func(h *harness) {
		var live []*tasks.Task
		for _, s := range []tasks.State{tasks.StateScheduled, tasks.StateRunning, tasks.StateRetrying} {
			live = append(live, h.inState(s))
		}
		// Tasks that were terminal long ago, replayed: scheduled,
		// running, retrying, and running with cancellation requested.
		for i := range 4 {
			tk := h.inState(terminal[i%3])
			h.after(*tk.CompletedAt)
			if _, err := h.s.Replay(h.ctx, tk.ID, 3); err != nil {
				h.t.Fatalf("Replay: got error %v, want nil", err)
			}
			switch i {
			case 0: // not due, so that the next claims take the others
				if _, err := h.s.Reschedule(h.ctx, tk.ID, h.now().Add(time.Hour)); err != nil {
					h.t.Fatalf("Reschedule: got error %v, want nil", err)
				}
			case 2:
				tk = h.claimOne(tk.ID, time.Hour)
				h.finishOne(tk, tasks.StateRetrying, time.Hour, "again")
			case 1, 3:
				tk = h.claimOne(tk.ID, time.Hour)
				if i == 3 {
					h.cancel(tk.ID)
				}
			}
			live = append(live, h.get(tk.ID))
		}
		history := make(map[string]int)
		for _, tk := range live {
			history[tk.ID] = len(h.attempts(tk.ID))
		}
		h.after(h.now().Add(10 * time.Millisecond))
		for _, s := range terminal {
			if n := h.purge(s, 0, 100); n != 0 {
				h.t.Errorf("PurgeTasks(%s, 0, 100) with only live tasks: got %d, want 0", s, n)
			}
		}
		h.wantKept(live...)
		for _, tk := range live {
			if got := len(h.attempts(tk.ID)); got != history[tk.ID] {
				h.t.Errorf("Attempts of live task %s (%s): got %d, want %d as before PurgeTasks", tk.ID, tk.State, got, history[tk.ID])
			}
		}
	})

	su.run(t, "InvalidArguments", func(h *harness) {
		tk := h.completed()
		h.after(*tk.CompletedAt)
		for _, c := range []struct {
			state     tasks.State
			olderThan time.Duration
			limit     int
		}{
			{tasks.StateScheduled, 0, 10},
			{tasks.StateRunning, 0, 10},
			{tasks.StateRetrying, 0, 10},
			{"", 0, 10},
			{"done", 0, 10},
			{tasks.StateCompleted, -time.Nanosecond, 10},
			{tasks.StateCompleted, 0, 0},
			{tasks.StateCompleted, 0, -1},
		} {
			n, err := h.s.PurgeTasks(h.ctx, c.state, c.olderThan, c.limit)
			h.wantValidationError(fmt.Sprintf("PurgeTasks(%q, %v, %d)", c.state, c.olderThan, c.limit), err)
			if n != 0 {
				h.t.Errorf("PurgeTasks(%q, %v, %d): got %d, want 0", c.state, c.olderThan, c.limit, n)
			}
		}
		h.wantKept(tk)
	})
}

func (su suite) testElect(t *testing.T) {
	su.run(t, "R2/Exclusive", func(h *harness) {
		if !h.elect("retention", "engine-a", time.Hour) {
			h.t.Fatal("Elect of a free role: got false, want true")
		}
		if h.elect("retention", "engine-b", time.Hour) {
			h.t.Error("Elect of a role another holds: got true, want false")
		}
		if !h.elect("other", "engine-b", time.Hour) {
			h.t.Error("Elect of another free role: got false, want true (roles are independent)")
		}
	})

	su.run(t, "RenewsTheHoldersTerm", func(h *harness) {
		const short = 300 * time.Millisecond
		if !h.elect("retention", "engine-a", short) {
			h.t.Fatal("Elect of a free role: got false, want true")
		}
		firstTermEnd := h.now().Add(short) // or earlier
		if !h.elect("retention", "engine-a", time.Hour) {
			h.t.Fatal("Elect by the holder: got false, want true (renewed)")
		}
		h.after(firstTermEnd)
		if h.elect("retention", "engine-b", time.Hour) {
			h.t.Error("Elect after the first term, which was renewed: got true, want false")
		}
	})

	su.run(t, "R2/ExpiredTermIsTakenOver", func(h *harness) {
		const term = 300 * time.Millisecond
		if !h.elect("retention", "engine-a", term) {
			h.t.Fatal("Elect of a free role: got false, want true")
		}
		after := h.now()
		if h.elect("retention", "engine-b", time.Hour) {
			h.t.Fatal("Elect within the holder's term: got true, want false")
		}
		h.after(after.Add(term))
		if !h.elect("retention", "engine-b", time.Hour) {
			h.t.Fatal("Elect after the holder's term: got false, want true")
		}
		if h.elect("retention", "engine-a", time.Hour) {
			h.t.Error("Elect by the former holder: got true, want false")
		}
	})

	su.run(t, "ResignLetsAnotherTakeOver", func(h *harness) {
		h.resign("retention", "engine-a") // nobody holds it: nothing to do
		if !h.elect("retention", "engine-a", time.Hour) {
			h.t.Fatal("Elect of a free role: got false, want true")
		}
		h.resign("retention", "engine-b") // not the holder: changes nothing
		if h.elect("retention", "engine-b", time.Hour) {
			h.t.Fatal("Elect after a non-holder resigned: got true, want false")
		}
		h.resign("retention", "engine-a")
		if !h.elect("retention", "engine-b", time.Hour) {
			h.t.Error("Elect after the holder resigned: got false, want true")
		}
	})

	su.run(t, "R2/ConcurrentElectionsHaveOneWinner", func(h *harness) {
		const rounds, electors = 5, 16
		for round := range rounds {
			role := fmt.Sprintf("role-%d", round)
			var wins sync.Map
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range electors {
				wg.Go(func() {
					<-start
					holder := fmt.Sprintf("engine-%d", i)
					ok, err := h.s.Elect(h.ctx, role, holder, time.Hour)
					if err != nil {
						h.t.Errorf("Elect(%s, %s): got error %v, want nil", role, holder, err)
					}
					if ok {
						wins.Store(holder, true)
					}
				})
			}
			close(start)
			h.wait(&wg)
			var winners []any
			wins.Range(func(k, _ any) bool { winners = append(winners, k); return true })
			if len(winners) != 1 {
				h.t.Errorf("%d concurrent Elects of role %s: got winners %v, want exactly one", electors, role, winners)
			}
		}
	})

	su.run(t, "InvalidArguments", func(h *harness) {
		for _, c := range []struct {
			role, holder string
			term         time.Duration
		}{
			{"", "engine-a", time.Hour},
			{"retention", "", time.Hour},
			{"retention", "engine-a", 0},
			{"retention", "engine-a", -time.Second},
		} {
			ok, err := h.s.Elect(h.ctx, c.role, c.holder, c.term)
			h.wantValidationError(fmt.Sprintf("Elect(%q, %q, %v)", c.role, c.holder, c.term), err)
			if ok {
				h.t.Errorf("Elect(%q, %q, %v): got true, want false", c.role, c.holder, c.term)
			}
		}
	})
}
