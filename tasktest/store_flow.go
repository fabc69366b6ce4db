package tasktest

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
)

// Flow control: flow keys, limits, and Claim enforcing them.

func flow(k string) func(*tasks.Task) { return func(t *tasks.Task) { t.FlowKey = k } }

// setLimit stores l and fails unless that succeeds.
func (h *harness) setLimit(l tasks.Limit) *tasks.Limit {
	h.t.Helper()
	if l.AppID == "" {
		l.AppID = "app_1"
	}
	got, err := h.s.SetLimit(h.ctx, &l)
	if err != nil {
		h.t.Fatalf("SetLimit(%+v): got error %v, want nil", l, err)
	}
	return got
}

// getLimit returns the limit of app_1's key.
func (h *harness) getLimit(key string) *tasks.Limit {
	h.t.Helper()
	got, err := h.s.GetLimit(h.ctx, "app_1", key)
	if err != nil {
		h.t.Fatalf("GetLimit(app_1, %s): got error %v, want nil", key, err)
	}
	return got
}

// wantWaiting fails unless task id waits for its key: scheduled (or
// retrying), no attempt started, a wait reason, not upcoming.
func (h *harness) wantWaiting(id string, attempts int) {
	h.t.Helper()
	got := h.get(id)
	if !got.State.Valid() || (got.State != tasks.StateScheduled && got.State != tasks.StateRetrying) ||
		got.WaitReason == "" || got.Attempts != attempts || got.NextAttemptAt == nil {
		h.t.Errorf("task %s: got state %s, wait reason %q, attempts %d, next attempt %v; want it waiting, %d attempts",
			id, got.State, got.WaitReason, got.Attempts, got.NextAttemptAt, attempts)
	}
	_, due := h.upcoming(time.Hour, 1000)
	if slices.Contains(dueIDs(due), id) {
		h.t.Errorf("Upcoming: got waiting task %s, want it left out", id)
	}
}

func (su suite) testFlow(t *testing.T) {
	su.run(t, "FlowKey/DefaultsToEventType", func(h *harness) {
		a := h.insert()
		b := h.insert(flow("partner.api"))
		if a.FlowKey != "test.event" || b.FlowKey != "partner.api" {
			h.t.Errorf("FlowKey: got %q and %q, want test.event and partner.api", a.FlowKey, b.FlowKey)
		}
		ts, err := h.s.InsertMany(h.ctx, []*tasks.Task{h.newTask(), h.newTask(flow("k"))})
		if err != nil {
			h.t.Fatal(err)
		}
		if ts[0].FlowKey != "test.event" || ts[1].FlowKey != "k" {
			h.t.Errorf("InsertMany FlowKey: got %q and %q, want test.event and k", ts[0].FlowKey, ts[1].FlowKey)
		}
		if got := h.get(ts[1].ID).FlowKey; got != "k" {
			h.t.Errorf("Get FlowKey: got %q, want k", got)
		}
	})

	su.run(t, "Limits/SetGetListDelete", func(h *harness) {
		if _, err := h.s.GetLimit(h.ctx, "app_1", "k"); !errors.Is(err, tasks.ErrNotFound) {
			h.t.Errorf("GetLimit of none: got %v, want ErrNotFound", err)
		}
		got := h.setLimit(tasks.Limit{Key: "k", Rate: 2.5, Burst: 3, Concurrency: 4})
		if got.AppID != "app_1" || got.Key != "k" || got.Rate != 2.5 || got.Burst != 3 || got.Concurrency != 4 || got.Paused || got.UpdatedAt.IsZero() {
			h.t.Errorf("SetLimit: got %+v", got)
		}
		h.setLimit(tasks.Limit{Key: "k", Paused: true})
		h.setLimit(tasks.Limit{Key: "a", Concurrency: 1})
		h.setLimit(tasks.Limit{AppID: "app_2", Key: "k", Concurrency: 1})
		if got := h.getLimit("k"); !got.Paused || got.Rate != 0 || got.Concurrency != 0 {
			h.t.Errorf("GetLimit after replacing: got %+v, want paused and nothing else", got)
		}
		ls, err := h.s.ListLimits(h.ctx, "app_1")
		if err != nil || len(ls) != 2 || ls[0].Key != "a" || ls[1].Key != "k" {
			h.t.Errorf("ListLimits: got %v, %v; want keys a, k", ls, err)
		}
		if err := h.s.DeleteLimit(h.ctx, "app_1", "k"); err != nil {
			h.t.Fatal(err)
		}
		if err := h.s.DeleteLimit(h.ctx, "app_1", "k"); !errors.Is(err, tasks.ErrNotFound) {
			h.t.Errorf("DeleteLimit twice: got %v, want ErrNotFound", err)
		}
		if _, err := h.s.GetLimit(h.ctx, "app_2", "k"); err != nil {
			h.t.Errorf("GetLimit of app_2: got %v, want it kept", err)
		}
	})

	su.run(t, "Paused/StartsNothingUntilResumed", func(h *harness) {
		h.setLimit(tasks.Limit{Key: "k", Paused: true})
		var waiting []*tasks.Task
		for range 3 {
			waiting = append(waiting, h.insert(flow("k")))
		}
		other := h.insert(flow("other"))
		otherApp := h.insert(app("app_2"), flow("k"))
		got := h.claim(100, time.Hour)
		if want := []string{other.ID, otherApp.ID}; !sameIDs(ids(got), want) {
			h.t.Fatalf("Claim with k paused: got %v, want %v", ids(got), want)
		}
		for _, w := range waiting {
			h.wantWaiting(w.ID, 0)
		}
		h.claimNone()
		if l := h.getLimit("k"); l.Waiting != 3 || l.Running != 0 {
			h.t.Errorf("GetLimit: got %d waiting, %d running; want 3, 0", l.Waiting, l.Running)
		}
		h.setLimit(tasks.Limit{Key: "k"}) // resumed, unlimited
		got = h.claim(100, time.Hour)
		if !slices.Equal(ids(got), ids(waiting)) {
			h.t.Fatalf("Claim after resuming: got %v, want %v in due order", ids(got), ids(waiting))
		}
		for _, tk := range got {
			if tk.WaitReason != "" || tk.Attempts != 1 {
				h.t.Errorf("claimed %s: wait reason %q, attempts %d; want none, 1", tk.ID, tk.WaitReason, tk.Attempts)
			}
		}
		if l := h.getLimit("k"); l.Waiting != 0 || l.Running != 3 {
			h.t.Errorf("GetLimit: got %d waiting, %d running; want 0, 3", l.Waiting, l.Running)
		}
	})

	su.run(t, "Concurrency/CountsRunningTasks", func(h *harness) {
		h.setLimit(tasks.Limit{Key: "k", Concurrency: 2})
		var all []*tasks.Task
		for range 5 {
			all = append(all, h.insert(flow("k")))
		}
		got := h.claim(100, time.Hour)
		if !slices.Equal(ids(got), ids(all[:2])) {
			h.t.Fatalf("Claim: got %v, want the first two", ids(got))
		}
		h.claimNone()
		h.wantWaiting(all[2].ID, 0)
		h.finishOne(got[0], tasks.StateCompleted, 0, "")
		h.claimOne(all[2].ID, time.Hour)
		h.claimNone()
		// A retried task waits like any other.
		h.finishOne(got[1], tasks.StateRetrying, 0, "boom")
		next := h.claim(100, time.Hour)
		if len(next) != 1 {
			h.t.Fatalf("Claim after a retry: got %v, want one task", ids(next))
		}
		h.setLimit(tasks.Limit{Key: "k", Concurrency: 10})
		if n := len(h.claim(100, time.Hour)); n != 2 {
			h.t.Errorf("Claim after raising the limit: got %d tasks, want the 2 left", n)
		}
	})

	su.run(t, "Concurrency/ConcurrentClaims", func(h *harness) {
		h.setLimit(tasks.Limit{Key: "k", Concurrency: 3})
		for range 30 {
			h.insert(flow("k"))
		}
		var (
			wg    sync.WaitGroup
			mu    sync.Mutex
			total int
		)
		for range 8 {
			wg.Go(func() {
				got, err := h.s.Claim(h.ctx, 5, time.Hour)
				if err != nil {
					h.t.Errorf("Claim: %v", err)
				}
				mu.Lock()
				total += len(got)
				mu.Unlock()
			})
		}
		h.wait(&wg)
		if total != 3 {
			h.t.Errorf("concurrent claims with concurrency 3: got %d tasks, want 3", total)
		}
	})

	su.run(t, "Rate/TokenBucket", func(h *harness) {
		h.setLimit(tasks.Limit{Key: "k", Rate: 5, Burst: 2})
		for range 5 {
			h.insert(flow("k"))
		}
		began := time.Now()
		if n := len(h.claim(100, time.Hour)); n != 2 {
			h.t.Fatalf("Claim: got %d tasks, want the burst of 2", n)
		}
		if l := h.getLimit("k"); l.Waiting != 3 {
			h.t.Errorf("GetLimit: got %d waiting, want 3", l.Waiting)
		}
		// One token every 200 ms: three more take at least 400 ms.
		n := 0
		eventually(h.t, 5*time.Second, "the rest, at the rate", func() bool {
			n += len(h.claim(100, time.Hour))
			return n == 3
		})
		if took := time.Since(began); took < 350*time.Millisecond {
			h.t.Errorf("3 tasks past the burst at 5/s started within %v, want at least 400 ms", took)
		}
	})

	su.run(t, "Waiting/CancelRescheduleDelete", func(h *harness) {
		h.setLimit(tasks.Limit{Key: "k", Paused: true})
		a, b, c := h.insert(flow("k")), h.insert(flow("k")), h.insert(flow("k"))
		h.claimNone()
		if got := h.cancel(a.ID); got.State != tasks.StateCanceled || got.WaitReason != "" {
			h.t.Errorf("Cancel of a waiting task: got %s, wait reason %q", got.State, got.WaitReason)
		}
		later := h.now().Add(time.Hour)
		got, err := h.s.Reschedule(h.ctx, b.ID, later)
		if err != nil || got.WaitReason != "" || !got.NextAttemptAt.Equal(later.Truncate(time.Microsecond)) {
			h.t.Errorf("Reschedule of a waiting task: got %+v, %v", got, err)
		}
		if err := h.s.DeleteLimit(h.ctx, "app_1", "k"); err != nil {
			h.t.Fatal(err)
		}
		if got := h.get(c.ID); got.WaitReason != "" {
			h.t.Errorf("after DeleteLimit: wait reason %q, want none", got.WaitReason)
		}
		h.claimOne(c.ID, time.Hour)
		h.claimNone()
	})

	// A waiting task's reason follows its key's limit: a task that waited
	// for a pause does not say "paused" once the key is resumed under a
	// concurrency limit, nor one that waited for concurrency once the
	// key is paused; a key set to no limit at all releases its tasks.
	su.run(t, "Waiting/ReasonFollowsTheLimit", func(h *harness) {
		h.setLimit(tasks.Limit{Key: "k", Paused: true})
		a, b, c := h.insert(flow("k")), h.insert(flow("k")), h.insert(flow("k"))
		h.claimNone()
		h.setLimit(tasks.Limit{Key: "k", Concurrency: 1})
		h.claimOne(a.ID, time.Hour)
		for _, id := range []string{b.ID, c.ID} {
			if got := h.get(id).WaitReason; got == "" || strings.HasPrefix(got, "paused") {
				h.t.Errorf("resumed under a concurrency limit: task %s waits for %q, want its concurrency", id, got)
			}
		}
		h.setLimit(tasks.Limit{Key: "k", Paused: true})
		for _, id := range []string{b.ID, c.ID} {
			if got := h.get(id).WaitReason; !strings.HasPrefix(got, "paused") {
				h.t.Errorf("paused again: task %s waits for %q, want paused", id, got)
			}
		}
		h.setLimit(tasks.Limit{Key: "k"})
		for _, id := range []string{b.ID, c.ID} {
			if got := h.get(id); got.WaitReason != "" {
				h.t.Errorf("no limit left on k: task %s waits for %q, want none", id, got.WaitReason)
			}
		}
		if got := h.claim(100, time.Hour); !sameIDs(ids(got), []string{b.ID, c.ID}) {
			h.t.Errorf("Claim with no limit left on k: got %v, want %v", ids(got), []string{b.ID, c.ID})
		}
	})
}

// sameIDs reports whether a and b hold the same IDs, in any order.
func sameIDs(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
