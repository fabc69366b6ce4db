package tasktest

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/taskwheel/tasks"
)

// Delete, ReplayMany and CancelMany.

// deleteTask deletes task id and fails unless that succeeds.
func (h *harness) deleteTask(id string) *tasks.Task {
	h.t.Helper()
	got, err := h.s.Delete(h.ctx, id)
	if err != nil {
		h.t.Fatalf("Delete(%s): got error %v, want nil", id, err)
	}
	h.check(got)
	return clone(got)
}

// wantGone fails unless each task of ids is gone: not found, with no
// attempts, not listed and not upcoming.
func (h *harness) wantGone(ids ...string) {
	h.t.Helper()
	listed := h.listAll(tasks.ListParams{})
	_, due := h.upcoming(24*time.Hour, 1000)
	for _, id := range ids {
		if got, err := h.s.Get(h.ctx, id); !errors.Is(err, tasks.ErrNotFound) {
			h.t.Errorf("Get(%s): got %v, error %v; want ErrNotFound", id, got, err)
		}
		as, err := h.s.Attempts(h.ctx, id)
		if err != nil || len(as) != 0 {
			h.t.Errorf("Attempts(%s): got %d attempts, error %v; want none", id, len(as), err)
		}
		if slices.ContainsFunc(listed, func(t *tasks.Task) bool { return t.ID == id }) {
			h.t.Errorf("List: got task %s, want it gone", id)
		}
		if slices.Contains(dueIDs(due), id) {
			h.t.Errorf("Upcoming: got task %s, want it gone", id)
		}
	}
}

// bulkRange returns ListParams of app "app_1" whose creation range holds
// every task the test creates: an hour either side of the store's clock.
func (h *harness) bulkRange(opts ...func(*tasks.ListParams)) tasks.ListParams {
	now := h.now()
	p := tasks.ListParams{AppID: "app_1", CreatedSince: now.Add(-time.Hour), CreatedBefore: now.Add(time.Hour)}
	for _, o := range opts {
		o(&p)
	}
	return p
}

// bulkFunc is ReplayMany (with 2 more attempts) or CancelMany.
type bulkFunc func(h *harness, p tasks.ListParams) (int, string, error)

func replayMany(h *harness, p tasks.ListParams) (int, string, error) {
	return h.s.ReplayMany(h.ctx, p, 2)
}
func cancelMany(h *harness, p tasks.ListParams) (int, string, error) { return h.s.CancelMany(h.ctx, p) }

// bulkAll pages through op with p until its cursor is "", and returns the
// number of tasks changed and of batches run. Every batch changes at most
// p.Limit tasks.
func (h *harness) bulkAll(op bulkFunc, p tasks.ListParams) (changed, batches int) {
	h.t.Helper()
	for range 10000 {
		n, next, err := op(h, p)
		if err != nil {
			h.t.Fatalf("batch %d (%+v): got error %v, want nil", batches+1, p, err)
		}
		batches++
		if limit := cmp.Or(p.Limit, tasks.DefaultListLimit); n < 0 || n > limit {
			h.t.Fatalf("batch %d: changed %d tasks, want 0 to %d (Limit)", batches, n, limit)
		}
		changed += n
		if next == "" {
			return changed, batches
		}
		p.Cursor = next
	}
	h.t.Fatalf("still paging after 10000 batches")
	return 0, 0
}

func (su suite) testDelete(t *testing.T) {
	for _, s := range []tasks.State{tasks.StateScheduled, tasks.StateRetrying, tasks.StateCompleted, tasks.StateFailed, tasks.StateCanceled} {
		su.run(t, title(s)+"IsDeleted", func(h *harness) {
			tk := h.inState(s)
			other := h.inState(s)
			got := h.deleteTask(tk.ID)
			h.wantSame("Delete", got, tk)
			h.wantGone(tk.ID)
			h.wantSame("Get of another task after Delete", h.get(other.ID), other)
		})
	}

	su.run(t, "DueTaskIsNotClaimed", func(h *harness) {
		tk := h.insert() // due now
		h.deleteTask(tk.ID)
		h.claimNone()
	})

	su.run(t, "RunningIsInvalidState", func(h *harness) {
		tk := h.running(time.Hour)
		got, err := h.s.Delete(h.ctx, tk.ID)
		h.wantIs("Delete of a running task", err, tasks.ErrInvalidState)
		if got == nil {
			h.t.Fatalf("Delete of a running task: got nil task, want the task")
		}
		h.wantSame("task returned with ErrInvalidState", got, tk)
		h.wantSame("Get after Delete", h.get(tk.ID), tk)
		h.finishOne(tk, tasks.StateCompleted, 0, "") // its lease still holds
		h.deleteTask(tk.ID)
		h.wantGone(tk.ID)
	})

	su.run(t, "UnknownIsNotFound", func(h *harness) {
		_, err := h.s.Delete(h.ctx, uuid.NewString())
		h.wantIs("Delete of an unknown task", err, tasks.ErrNotFound)
		tk := h.completed()
		h.deleteTask(tk.ID)
		_, err = h.s.Delete(h.ctx, tk.ID)
		h.wantIs("second Delete", err, tasks.ErrNotFound)
	})

	su.run(t, "DeletesTheAttemptHistory", func(h *harness) {
		tk := h.running(time.Hour)
		other := h.running(time.Hour)
		for _, r := range []*tasks.Task{tk, other} {
			o := tasks.Outcome{ID: r.ID, Attempt: r.Attempts, State: tasks.StateFailed, Error: "boom",
				Attempts: []tasks.Attempt{{Number: r.Attempts, StartedAt: h.now(), Error: "boom"}}}
			if applied := h.finish(o); !applied[0] {
				h.t.Fatalf("Finish: got applied false, want true")
			}
		}
		h.deleteTask(tk.ID)
		h.wantGone(tk.ID)
		if as, err := h.s.Attempts(h.ctx, other.ID); err != nil || len(as) != 1 {
			h.t.Errorf("Attempts of another task: got %d, error %v; want 1, nil", len(as), err)
		}
	})

	su.run(t, "FreesTheIdempotencyKey", func(h *harness) {
		tk := h.completed(key("k"), digest(digest1))
		h.deleteTask(tk.ID)
		if _, err := h.s.GetByIdempotencyKey(h.ctx, tk.AppID, "k"); !errors.Is(err, tasks.ErrNotFound) {
			h.t.Errorf("GetByIdempotencyKey after Delete: got error %v, want ErrNotFound", err)
		}
		again, err := h.s.Insert(h.ctx, h.newTask(key("k"), digest(digest2)))
		if err != nil {
			h.t.Fatalf("Insert with the freed key: got error %v, want nil", err)
		}
		if again.ID == tk.ID || again.IdempotencyDigest != digest2 {
			h.t.Errorf("Insert with the freed key: got task %s (digest %q), want a new task", again.ID, again.IdempotencyDigest)
		}
		if got, err := h.s.GetByIdempotencyKey(h.ctx, tk.AppID, "k"); err != nil || got.ID != again.ID {
			h.t.Errorf("GetByIdempotencyKey: got %v, error %v; want the new task %s", got, err, again.ID)
		}
	})

	// A worker whose lease expired, whose task was rescued and then
	// deleted, reports its outcome late: Finish applies nothing and brings
	// nothing back, and Extend revokes the lease; neither fails.
	su.run(t, "LateOutcomeOfADeletedTask", func(h *harness) {
		tk := h.running(100 * time.Millisecond)
		h.waitExpired(tk)
		if n := h.rescue(10); n != 1 {
			h.t.Fatalf("Rescue: got %d, want 1", n)
		}
		h.deleteTask(tk.ID)
		for _, state := range []tasks.State{tasks.StateCompleted, tasks.StateRetrying, tasks.StateFailed} {
			o := tasks.Outcome{ID: tk.ID, Attempt: tk.Attempts, State: state, Delay: time.Second, Error: "late",
				Attempts: []tasks.Attempt{{Number: tk.Attempts, StartedAt: h.now(), Error: "late"}}}
			if applied := h.finish(o); applied[0] {
				h.t.Errorf("Finish(%s) of a deleted task: got applied, want not", state)
			}
		}
		if revoked := h.extend(time.Hour, tasks.Lease{ID: tk.ID, Attempt: tk.Attempts}); len(revoked) != 1 || revoked[0] != tk.ID {
			h.t.Errorf("Extend of a deleted task's lease: got revoked %v, want [%s]", revoked, tk.ID)
		}
		h.wantGone(tk.ID)
	})

	// An Insert or InsertMany of a key whose task a Delete (or PurgeTasks)
	// removes at that moment finds either the task that held the key
	// (ErrDuplicate, or it in the result) or the key free, and stores a
	// new task: never an error, never a task missing from the result.
	su.run(t, "RacingInsertOfItsKey", func(h *harness) {
		const rounds = 200
		later := at(h.now().Add(time.Hour)) // never claimed by completed
		for i := range rounds {
			k := fmt.Sprintf("k%d", i)
			held := h.completed(key(k))
			start := make(chan struct{})
			var wg sync.WaitGroup
			var delErr, oneErr, manyErr error
			var one *tasks.Task
			var many []*tasks.Task
			wg.Go(func() { <-start; _, delErr = h.s.Delete(h.ctx, held.ID) })
			wg.Go(func() { <-start; one, oneErr = h.s.Insert(h.ctx, h.newTask(key(k), later)) })
			wg.Go(func() { <-start; many, manyErr = h.s.InsertMany(h.ctx, []*tasks.Task{h.newTask(key(k), later)}) })
			close(start)
			h.wait(&wg)
			if delErr != nil {
				h.t.Fatalf("round %d: Delete: %v", i, delErr)
			}
			switch {
			case oneErr == nil && one != nil && one.ID != held.ID:
			case errors.Is(oneErr, tasks.ErrDuplicate) && one != nil:
			default:
				h.t.Fatalf("round %d: Insert of a key freed meanwhile: got %v, error %v; want a task, nil or ErrDuplicate", i, one, oneErr)
			}
			if manyErr != nil || len(many) != 1 || many[0] == nil {
				h.t.Fatalf("round %d: InsertMany of a key freed meanwhile: got %v, error %v; want a task, nil", i, many, manyErr)
			}
			// Of the inserts, at most one stored a task, which holds the key.
			stored := map[string]bool{}
			for _, t := range []*tasks.Task{one, many[0]} {
				if t.ID != held.ID {
					stored[t.ID] = true
				}
			}
			got, err := h.s.GetByIdempotencyKey(h.ctx, "app_1", k)
			switch {
			case len(stored) > 1:
				h.t.Fatalf("round %d: Insert and InsertMany of one key stored %d tasks, want at most 1", i, len(stored))
			case len(stored) == 1 && (err != nil || !stored[got.ID]):
				h.t.Fatalf("round %d: GetByIdempotencyKey: got %v, error %v; want the task stored, %v", i, got, err, stored)
			case len(stored) == 0 && !errors.Is(err, tasks.ErrNotFound):
				h.t.Fatalf("round %d: GetByIdempotencyKey: got %v, error %v; want ErrNotFound", i, got, err)
			}
		}
	})

	// R3: a Delete racing claims either deletes a task before any claim
	// returns it, or fails with ErrInvalidState because a claim did:
	// never both, never a running task deleted.
	su.run(t, "RacingClaims", func(h *harness) {
		const n = 40
		var all []string
		for range n {
			all = append(all, h.insert().ID)
		}
		var (
			mu      sync.Mutex
			claimed = make(map[string]int)
			deleted = make(map[string]bool)
			refused = make(map[string]bool)
			errs    []error
			wg      sync.WaitGroup
		)
		start := make(chan struct{})
		for range 4 {
			wg.Go(func() {
				<-start
				for {
					got, err := h.s.Claim(h.ctx, 1, time.Hour)
					mu.Lock()
					if err != nil {
						errs = append(errs, fmt.Errorf("Claim: %w", err))
					}
					for _, t := range got {
						claimed[t.ID]++
					}
					mu.Unlock()
					if err != nil || len(got) == 0 {
						return
					}
				}
			})
		}
		for g := range 4 {
			wg.Go(func() {
				<-start
				// From the last task due, as claims start from the first:
				// they meet in the middle.
				for i := n - 1 - g; i >= 0; i -= 4 {
					t, err := h.s.Delete(h.ctx, all[i])
					mu.Lock()
					switch {
					case err == nil:
						deleted[all[i]] = true
					case errors.Is(err, tasks.ErrInvalidState) && t != nil && t.State == tasks.StateRunning:
						refused[all[i]] = true
					default:
						errs = append(errs, fmt.Errorf("Delete(%s): got %v, error %v", all[i], t, err))
					}
					mu.Unlock()
				}
			})
		}
		close(start)
		h.wait(&wg)
		for _, err := range errs {
			h.t.Error(err)
		}
		for _, id := range all {
			switch {
			case claimed[id] > 1:
				h.t.Errorf("task %s claimed %d times", id, claimed[id])
			case deleted[id] && claimed[id] > 0:
				h.t.Errorf("task %s: deleted and claimed", id)
			case deleted[id]:
				h.wantGone(id)
			case refused[id] && claimed[id] == 1:
				h.wantState(h.get(id), tasks.StateRunning)
			default:
				h.t.Errorf("task %s: claimed %d times, deleted %v, refused %v; want deleted or claimed and refused",
					id, claimed[id], deleted[id], refused[id])
			}
		}
		h.t.Logf("of %d tasks, %d deleted, %d claimed first", n, len(deleted), len(refused))
	})
}

func (su suite) testBulk(t *testing.T) {
	// R3: the app and both bounds are required.
	for _, op := range []struct {
		name string
		f    bulkFunc
	}{{"ReplayMany", replayMany}, {"CancelMany", cancelMany}} {
		su.run(t, op.name+"/RequiresAppAndBounds", func(h *harness) {
			tk := h.failed()
			now := h.now()
			for _, tc := range []struct {
				field string
				p     tasks.ListParams
			}{
				{"app_id", tasks.ListParams{CreatedSince: now.Add(-time.Hour), CreatedBefore: now.Add(time.Hour)}},
				{"created_since", tasks.ListParams{AppID: "app_1", CreatedBefore: now.Add(time.Hour)}},
				{"created_before", tasks.ListParams{AppID: "app_1", CreatedSince: now.Add(-time.Hour)}},
				{"created_before", tasks.ListParams{AppID: "app_1", CreatedSince: now, CreatedBefore: now}},
				{"created_before", tasks.ListParams{AppID: "app_1", CreatedSince: now.Add(time.Hour), CreatedBefore: now.Add(-time.Hour)}},
				{"status", tasks.ListParams{AppID: "app_1", CreatedSince: now.Add(-time.Hour), CreatedBefore: now.Add(time.Hour),
					States: []tasks.State{tasks.StateCompleted}}},
				{"cursor", tasks.ListParams{AppID: "app_1", CreatedSince: now.Add(-time.Hour), CreatedBefore: now.Add(time.Hour),
					Cursor: "not a cursor"}},
				{"limit", tasks.ListParams{AppID: "app_1", CreatedSince: now.Add(-time.Hour), CreatedBefore: now.Add(time.Hour),
					Limit: tasks.MaxListLimit + 1}},
			} {
				n, _, err := op.f(h, tc.p)
				var ve *tasks.ValidationError
				if !errors.As(err, &ve) || ve.Field != tc.field || n != 0 {
					h.t.Errorf("%s(%+v): got %d, error %v; want 0, a *ValidationError of %s", op.name, tc.p, n, err, tc.field)
				}
			}
			h.wantSame("Get after refused bulk operations", h.get(tk.ID), tk)
		})
	}

	su.run(t, "ReplayMany/ReplaysFailedTasksOnly", func(h *harness) {
		failed := []*tasks.Task{h.failed(), h.failed(), h.failed(event("other.event"))}
		others := []*tasks.Task{
			h.inState(tasks.StateScheduled), h.inState(tasks.StateRunning), h.inState(tasks.StateRetrying),
			h.inState(tasks.StateCompleted), h.inState(tasks.StateCanceled), h.failed(app("app_2")),
		}
		before := h.now()
		n, next, err := h.s.ReplayMany(h.ctx, h.bulkRange(), 2)
		after := h.now()
		if err != nil || n != 3 || next != "" {
			h.t.Fatalf("ReplayMany: got %d, %q, error %v; want 3, \"\", nil", n, next, err)
		}
		for _, tk := range failed {
			got := h.get(tk.ID)
			h.wantState(got, tasks.StateScheduled)
			if got.Attempts != 1 || got.MaxAttempts != 3 || got.ReplayedAfter != 1 || got.LastError != "boom" || got.CancelRequested {
				h.t.Errorf("replayed %s: got Attempts %d, MaxAttempts %d, ReplayedAfter %d, LastError %q, CancelRequested %v; want 1, 3, 1, \"boom\", false",
					tk.ID, got.Attempts, got.MaxAttempts, got.ReplayedAfter, got.LastError, got.CancelRequested)
			}
			h.wantBetween("NextAttemptAt of a replayed task", got.NextAttemptAt, before, after)
			h.wantBetween("UpdatedAt of a replayed task", &got.UpdatedAt, before, after)
		}
		for _, tk := range others {
			h.wantSame("a task ReplayMany does not replay", h.get(tk.ID), tk)
		}
		claimed := h.claim(10, time.Hour)
		if !sameSet(ids(claimed), ids(failed)) {
			h.t.Errorf("Claim after ReplayMany: got %v, want %v", ids(claimed), ids(failed))
		}
		if n, _, err := h.s.ReplayMany(h.ctx, h.bulkRange(), 2); err != nil || n != 0 {
			h.t.Errorf("ReplayMany again: got %d, error %v; want 0, nil", n, err)
		}
	})

	su.run(t, "ReplayMany/OfOneEventType", func(h *harness) {
		a := h.failed()
		b := h.failed(event("other.event"))
		n, _, err := h.s.ReplayMany(h.ctx, h.bulkRange(func(p *tasks.ListParams) {
			p.EventType = "other.event"
			p.States = []tasks.State{tasks.StateFailed}
		}), 1)
		if err != nil || n != 1 {
			h.t.Fatalf("ReplayMany of other.event: got %d, error %v; want 1, nil", n, err)
		}
		h.wantSame("failed task of another event type", h.get(a.ID), a)
		if got := h.get(b.ID); got.State != tasks.StateScheduled || got.MaxAttempts != 2 {
			h.t.Errorf("got State %s, MaxAttempts %d; want scheduled, 2", got.State, got.MaxAttempts)
		}
	})

	su.run(t, "CancelMany/CancelsScheduledAndRetryingOnly", func(h *harness) {
		// Made in an order in which each claim takes the task meant.
		running := h.running(time.Hour)
		others := []*tasks.Task{h.inState(tasks.StateCompleted), h.inState(tasks.StateFailed), h.inState(tasks.StateCanceled)}
		pending := []*tasks.Task{h.retrying(time.Hour), h.inState(tasks.StateScheduled), h.retrying(0), h.insert()}
		others = append(others, h.insert(app("app_2")))
		before := h.now()
		n, next, err := h.s.CancelMany(h.ctx, h.bulkRange())
		after := h.now()
		if err != nil || n != len(pending) || next != "" {
			h.t.Fatalf("CancelMany: got %d, %q, error %v; want %d, \"\", nil", n, next, err, len(pending))
		}
		for _, tk := range pending {
			got := h.get(tk.ID)
			h.wantState(got, tasks.StateCanceled)
			h.wantBetween("CompletedAt of a canceled task", got.CompletedAt, before, after)
			if got.Attempts != tk.Attempts || got.CancelRequested {
				h.t.Errorf("canceled %s: got Attempts %d, CancelRequested %v; want %d, false", tk.ID, got.Attempts, got.CancelRequested, tk.Attempts)
			}
		}
		// Running tasks are not touched, not even their cancellation requested.
		h.wantSame("running task after CancelMany", h.get(running.ID), running)
		for _, tk := range others {
			h.wantSame("a task CancelMany does not cancel", h.get(tk.ID), tk)
		}
		if claimed := h.claim(10, time.Hour); len(claimed) != 1 || claimed[0].AppID != "app_2" {
			h.t.Errorf("Claim after CancelMany: got %v, want only the task of app_2", ids(claimed))
		}
		if _, due := h.upcoming(2*time.Hour, 10); len(due) != 0 {
			h.t.Errorf("Upcoming after CancelMany: got %v, want none", dueIDs(due))
		}
		if n, _, err := h.s.CancelMany(h.ctx, h.bulkRange()); err != nil || n != 0 {
			h.t.Errorf("CancelMany again: got %d, error %v; want 0, nil", n, err)
		}
	})

	su.run(t, "CancelMany/OfOneState", func(h *harness) {
		scheduled := h.inState(tasks.StateScheduled)
		retrying := h.inState(tasks.StateRetrying)
		n, _, err := h.s.CancelMany(h.ctx, h.bulkRange(func(p *tasks.ListParams) { p.States = []tasks.State{tasks.StateRetrying} }))
		if err != nil || n != 1 {
			h.t.Fatalf("CancelMany of retrying tasks: got %d, error %v; want 1, nil", n, err)
		}
		h.wantSame("scheduled task", h.get(scheduled.ID), scheduled)
		h.wantState(h.get(retrying.ID), tasks.StateCanceled)
	})

	// The range: CreatedSince inclusive, CreatedBefore exclusive.
	for _, op := range []struct {
		name  string
		f     bulkFunc
		state tasks.State
	}{{"ReplayMany", replayMany, tasks.StateFailed}, {"CancelMany", cancelMany, tasks.StateScheduled}} {
		su.run(t, op.name+"/BoundsOnCreatedAt", func(h *harness) {
			var all []*tasks.Task
			for range 5 {
				tk := h.inState(op.state)
				all = append(all, tk)
				h.after(tk.CreatedAt)
			}
			p := tasks.ListParams{AppID: "app_1", CreatedSince: all[1].CreatedAt, CreatedBefore: all[4].CreatedAt}
			changed, _ := h.bulkAll(op.f, p)
			if changed != 3 {
				h.t.Errorf("%s of tasks 1 to 3: got %d changed, want 3", op.name, changed)
			}
			for i, tk := range all {
				got := h.get(tk.ID)
				if in := i >= 1 && i <= 3; in == (got.State == op.state) {
					h.t.Errorf("task %d: got State %s after %s (in range: %v)", i, got.State, op.name, in)
				}
			}
		})

		su.run(t, op.name+"/InBatches", func(h *harness) {
			var want []string
			for i := range 7 {
				tk := h.inState(op.state)
				if i%3 != 1 {
					want = append(want, tk.ID)
				} else {
					h.deleteTask(tk.ID) // a gap
				}
				h.inState(tasks.StateCompleted) // looked at, not changed
			}
			p := h.bulkRange(func(p *tasks.ListParams) { p.Limit = 2 })
			changed, batches := h.bulkAll(op.f, p)
			if changed != len(want) {
				h.t.Errorf("%s: got %d changed, want %d", op.name, changed, len(want))
			}
			// 5 changed and 7 unchanged tasks, 2 to a batch: 6 batches.
			if batches != 6 {
				h.t.Errorf("%s: got %d batches, want 6", op.name, batches)
			}
			for _, id := range want {
				if got := h.get(id); got.State == op.state {
					h.t.Errorf("task %s: still %s after %s", id, got.State, op.name)
				}
			}
			if changed, _ := h.bulkAll(op.f, p); changed != 0 {
				h.t.Errorf("%s again: got %d changed, want 0", op.name, changed)
			}
		})

		// Two passes at once over the same tasks change each task once.
		su.run(t, op.name+"/Concurrent", func(h *harness) {
			const n = 30
			for range n {
				h.inState(op.state)
			}
			p := h.bulkRange(func(p *tasks.ListParams) { p.Limit = 3 })
			var wg sync.WaitGroup
			var mu sync.Mutex
			total := 0
			for range 3 {
				wg.Go(func() {
					pp := p
					for {
						k, next, err := op.f(h, pp)
						if err != nil {
							h.t.Errorf("%s: got error %v, want nil", op.name, err)
							return
						}
						mu.Lock()
						total += k
						mu.Unlock()
						if next == "" {
							return
						}
						pp.Cursor = next
					}
				})
			}
			h.wait(&wg)
			if total != n {
				h.t.Errorf("three concurrent %s passes: changed %d in all, want %d", op.name, total, n)
			}
		})
	}

	// A pass visits each task once: a task it replayed that fails again
	// before the pass ends is not replayed again by it.
	su.run(t, "ReplayMany/VisitsEachTaskOnce", func(h *harness) {
		var all []*tasks.Task
		for range 4 {
			tk := h.failed()
			all = append(all, tk)
			h.after(tk.CreatedAt)
		}
		p := h.bulkRange(func(p *tasks.ListParams) { p.Limit = 1 })
		total := 0
		for range 10 {
			n, next, err := h.s.ReplayMany(h.ctx, p, 1)
			if err != nil {
				h.t.Fatalf("ReplayMany: got error %v, want nil", err)
			}
			total += n
			// Whatever it replayed fails again at once.
			for _, c := range h.claim(10, time.Hour) {
				h.finishOne(c, tasks.StateFailed, 0, "boom again")
			}
			if next == "" {
				break
			}
			p.Cursor = next
		}
		if total != len(all) {
			h.t.Errorf("ReplayMany page by page: replayed %d, want %d", total, len(all))
		}
		for _, tk := range all {
			if got := h.get(tk.ID); got.State != tasks.StateFailed || got.Attempts != 2 {
				h.t.Errorf("task %s: got State %s, Attempts %d; want failed, 2", tk.ID, got.State, got.Attempts)
			}
		}
	})
}
