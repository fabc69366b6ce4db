package tasktest

import (
	"testing"
	"time"

	"github.com/taskwheel/tasks"
)

// Limits per endpoint: Endpoint.RateLimit and MaxInFlight stored, and
// Store.TakeEndpointCapacity, ReleaseEndpointCapacity and Finish's waiting
// outcomes (Outcome.WaitReason, WaitEndpoint).

func epLimits(rate float64, maxInFlight int) func(*tasks.Endpoint) {
	return func(ep *tasks.Endpoint) { ep.RateLimit, ep.MaxInFlight = rate, maxInFlight }
}

// take takes capacity of endpoint id for t's attempt, and fails on an
// error.
func (h *harness) take(id string, t *tasks.Task) (bool, time.Duration) {
	h.t.Helper()
	ok, wait, _, err := h.s.TakeEndpointCapacity(h.ctx, id, tasks.Lease{ID: t.ID, Attempt: t.Attempts}, 0, "")
	if err != nil {
		h.t.Fatalf("TakeEndpointCapacity(%s, %s/%d): got error %v, want nil", id, t.ID, t.Attempts, err)
	}
	return ok, wait
}

// wantTake fails unless a take for t's attempt gives ok and wait.
func (h *harness) wantTake(what, id string, t *tasks.Task, wantOK bool) time.Duration {
	h.t.Helper()
	ok, wait := h.take(id, t)
	if ok != wantOK {
		h.t.Errorf("%s: TakeEndpointCapacity: got ok %v (wait %v), want %v", what, ok, wait, wantOK)
	}
	return wait
}

// release releases t's slot of endpoint id and returns what it woke.
func (h *harness) release(id string, t *tasks.Task) []tasks.Due {
	h.t.Helper()
	due, err := h.s.ReleaseEndpointCapacity(h.ctx, id, tasks.Lease{ID: t.ID, Attempt: t.Attempts})
	if err != nil {
		h.t.Fatalf("ReleaseEndpointCapacity(%s, %s): got error %v, want nil", id, t.ID, err)
	}
	return due
}

// waitOutcome is the outcome of t's attempt that waits for endpoint
// epID's capacity, for delay, with one delivery to another endpoint.
func waitOutcome(t *tasks.Task, epID, slotOf string, delay time.Duration) tasks.Outcome {
	return tasks.Outcome{ID: t.ID, Attempt: t.Attempts, State: tasks.StateRetrying, Delay: delay,
		WaitReason: "rate_limit: endpoint " + epID + " waits", WaitEndpoint: slotOf,
		Attempts: []tasks.Attempt{{TaskID: t.ID, Number: t.Attempts, EndpointID: "other-endpoint",
			StartedAt: time.Now().UTC(), StatusCode: 200}}}
}

func (su suite) testEndpointLimits(t *testing.T) {
	su.run(t, "Fields/StoredAndUpdated", func(h *harness) {
		ep := h.insertEndpoint(epLimits(2.5, 3))
		if got := h.getEndpoint(ep.ID); got.RateLimit != 2.5 || got.MaxInFlight != 3 {
			h.t.Errorf("GetEndpoint: got rate_limit %v, max_in_flight %d; want 2.5, 3", got.RateLimit, got.MaxInFlight)
		}
		plain := h.insertEndpoint()
		if plain.RateLimit != 0 || plain.MaxInFlight != 0 {
			h.t.Errorf("InsertEndpoint without limits: got %v, %d; want 0, 0", plain.RateLimit, plain.MaxInFlight)
		}
		ep.RateLimit, ep.MaxInFlight = 0, 1
		got, err := h.s.UpdateEndpoint(h.ctx, ep)
		if err != nil || got.RateLimit != 0 || got.MaxInFlight != 1 {
			h.t.Fatalf("UpdateEndpoint: got %+v, %v; want rate_limit 0, max_in_flight 1", got, err)
		}
		for _, l := range h.listEndpoints("app_1") {
			if l.ID == ep.ID && (l.RateLimit != 0 || l.MaxInFlight != 1) {
				h.t.Errorf("ListEndpoints: got %v, %d; want 0, 1", l.RateLimit, l.MaxInFlight)
			}
		}
	})

	su.run(t, "Take/NoLimitOrUnknownEndpoint", func(h *harness) {
		ep := h.insertEndpoint()
		for range 3 {
			r := h.running(time.Hour)
			h.wantTake("no limit", ep.ID, r, true)
			h.wantTake("unknown endpoint", "no-such-endpoint", r, true)
		}
	})

	su.run(t, "Take/NotRunningIsInvalidState", func(h *harness) {
		ep := h.insertEndpoint(epLimits(0, 1))
		for _, tk := range []*tasks.Task{h.insert(at(h.now().Add(time.Hour))), h.completed()} {
			_, _, _, err := h.s.TakeEndpointCapacity(h.ctx, ep.ID, tasks.Lease{ID: tk.ID, Attempt: max(tk.Attempts, 1)}, 0, "")
			h.wantIs("TakeEndpointCapacity of an attempt that does not run", err, tasks.ErrInvalidState)
		}
		r := h.running(time.Hour)
		_, _, _, err := h.s.TakeEndpointCapacity(h.ctx, ep.ID, tasks.Lease{ID: r.ID, Attempt: r.Attempts + 1}, 0, "")
		h.wantIs("TakeEndpointCapacity of another attempt", err, tasks.ErrInvalidState)
	})

	su.run(t, "Take/MaxInFlight", func(h *harness) {
		ep := h.insertEndpoint(epLimits(0, 2))
		a, b, c := h.running(time.Hour), h.running(time.Hour), h.running(time.Hour)
		h.wantTake("first", ep.ID, a, true)
		h.wantTake("second", ep.ID, b, true)
		if wait := h.wantTake("third", ep.ID, c, false); wait != 0 {
			h.t.Errorf("third: got wait %v, want 0 (for a slot)", wait)
		}
		h.wantTake("a slot held already", ep.ID, a, true)
		other := h.insertEndpoint(epLimits(0, 2))
		h.wantTake("another endpoint", other.ID, c, true)
		h.release(ep.ID, a)
		h.wantTake("after a release", ep.ID, c, true)
		h.wantTake("full again", ep.ID, a, false)
	})

	su.run(t, "Take/SlotComesBackWhenItsAttemptEnds", func(h *harness) {
		ep := h.insertEndpoint(epLimits(0, 1))
		a, b := h.running(time.Hour), h.running(time.Hour)
		h.wantTake("a", ep.ID, a, true)
		h.wantTake("b while a holds the slot", ep.ID, b, false)
		h.finishOne(a, tasks.StateCompleted, 0, "") // ended without a release
		h.wantTake("b after a ended", ep.ID, b, true)
	})

	su.run(t, "Take/SlotOfARescuedAttemptComesBack", func(h *harness) {
		ep := h.insertEndpoint(epLimits(0, 1))
		dead := h.running(time.Millisecond) // its process died while delivering
		h.wantTake("dead", ep.ID, dead, true)
		b := h.running(time.Hour)
		h.wantTake("b while the dead attempt holds the slot", ep.ID, b, false)
		h.waitExpired(dead)
		if n := h.rescue(100); n != 1 {
			h.t.Fatalf("Rescue: got %d, want 1", n)
		}
		h.wantTake("b after the rescue", ep.ID, b, true)
	})

	su.run(t, "Take/RateLimit", func(h *harness) {
		ep := h.insertEndpoint(epLimits(0.001, 0)) // a burst of 1, then one each 1000 s
		a, b := h.running(time.Hour), h.running(time.Hour)
		h.wantTake("first", ep.ID, a, true)
		wait := h.wantTake("second", ep.ID, b, false)
		if wait < 900*time.Second || wait > 1001*time.Second {
			h.t.Errorf("second: got wait %v, want about 1000s", wait)
		}
		// A new rate refills the bucket.
		ep = h.getEndpoint(ep.ID)
		ep.RateLimit = 0.002
		if _, err := h.s.UpdateEndpoint(h.ctx, ep); err != nil {
			h.t.Fatal(err)
		}
		h.wantTake("after the rate changed", ep.ID, b, true)
		h.wantTake("then", ep.ID, h.running(time.Hour), false)
	})

	su.run(t, "Take/RateAndMaxInFlightTakeBothOrNeither", func(h *harness) {
		ep := h.insertEndpoint(epLimits(0.001, 1))
		a, b := h.running(time.Hour), h.running(time.Hour)
		h.wantTake("a", ep.ID, a, true)
		h.wantTake("b: no slot", ep.ID, b, false)
		h.release(ep.ID, a)
		if wait := h.wantTake("b: a slot, no token", ep.ID, b, false); wait == 0 {
			h.t.Errorf("b: got wait 0, want the time to the next token")
		}
		c := h.running(time.Hour)
		if wait := h.wantTake("c: the slot b did not take", ep.ID, c, false); wait == 0 {
			h.t.Errorf("c: got wait 0 (no slot), want the time to the next token: b took no slot")
		}
	})

	su.run(t, "Finish/WaitUsesNoAttempt", func(h *harness) {
		now := h.now()
		first := h.running(time.Hour)
		if applied := h.finish(waitOutcome(first, "ep-1", "", time.Hour)); !applied[0] {
			h.t.Fatalf("Finish of a waiting outcome: got not applied")
		}
		got := h.get(first.ID)
		if got.State != tasks.StateScheduled || got.Attempts != 0 || got.WaitReason == "" || got.LastError != "" {
			h.t.Errorf("after waiting on its first attempt: got state %s, attempts %d, wait reason %q, last error %q; want scheduled, 0, a reason, none",
				got.State, got.Attempts, got.WaitReason, got.LastError)
		}
		h.wantBetween("NextAttemptAt", got.NextAttemptAt, now.Add(time.Hour-time.Minute), now.Add(time.Hour+time.Minute))
		if as, err := h.s.Attempts(h.ctx, first.ID); err != nil || len(as) != 1 || as[0].EndpointID != "other-endpoint" {
			h.t.Errorf("Attempts: got %v, %v; want the other endpoint's delivery", as, err)
		}
		if applied := h.finish(waitOutcome(first, "ep-1", "", time.Hour)); applied[0] {
			h.t.Errorf("Finish of the same waiting outcome again: got applied, want fenced out")
		}

		retry := h.retrying(0)
		r := h.claimOne(retry.ID, time.Hour)
		h.finish(waitOutcome(r, "ep-1", "", 0))
		got = h.get(retry.ID)
		if got.State != tasks.StateRetrying || got.Attempts != 1 || got.LastError != "boom" {
			h.t.Errorf("after waiting on its second attempt: got state %s, attempts %d, last error %q; want retrying, 1, boom",
				got.State, got.Attempts, got.LastError)
		}
		again := h.claimOne(retry.ID, time.Hour)
		if again.Attempts != 2 || again.WaitReason != "" {
			h.t.Errorf("claimed again: got attempts %d, wait reason %q; want 2, none", again.Attempts, again.WaitReason)
		}
	})

	su.run(t, "Finish/WaitOfACanceledTaskCancels", func(h *harness) {
		r := h.running(time.Hour)
		h.cancel(r.ID)
		h.finish(waitOutcome(r, "ep-1", "", time.Hour))
		if got := h.get(r.ID); got.State != tasks.StateCanceled {
			h.t.Errorf("got state %s, want canceled", got.State)
		}
	})

	su.run(t, "Finish/WaitForASlot/WokenByRelease", func(h *harness) {
		ep := h.insertEndpoint(epLimits(0, 1))
		holder := h.running(time.Hour)
		h.wantTake("holder", ep.ID, holder, true)
		w := h.running(time.Hour)
		h.wantTake("waiter", ep.ID, w, false)
		h.finish(waitOutcome(w, ep.ID, ep.ID, time.Hour))
		h.claimNone()
		due := h.release(ep.ID, holder)
		if len(due) != 1 || due[0].ID != w.ID {
			h.t.Fatalf("ReleaseEndpointCapacity: got %v, want the waiting task %s", due, w.ID)
		}
		got := h.claimOne(w.ID, time.Hour)
		if got.Attempts != 1 {
			h.t.Errorf("woken task: got attempts %d, want 1", got.Attempts)
		}
		if due := h.release(ep.ID, holder); len(due) != 0 {
			h.t.Errorf("ReleaseEndpointCapacity again: got %v, want none woken", due)
		}
	})

	su.run(t, "Finish/WaitForASlot/FreedMeanwhileIsDueNow", func(h *harness) {
		ep := h.insertEndpoint(epLimits(0, 1))
		holder := h.running(time.Hour)
		h.wantTake("holder", ep.ID, holder, true)
		w := h.running(time.Hour)
		h.wantTake("waiter", ep.ID, w, false)
		if due := h.release(ep.ID, holder); len(due) != 0 {
			h.t.Errorf("release before the waiter's outcome: got %v, want none woken", due)
		}
		h.finish(waitOutcome(w, ep.ID, ep.ID, time.Hour))
		h.claimOne(w.ID, time.Hour)
	})

	su.run(t, "Finish/WaitForASlot/ReleaseWakesTheEarliest", func(h *harness) {
		ep := h.insertEndpoint(epLimits(0, 1))
		holder := h.running(time.Hour)
		h.wantTake("holder", ep.ID, holder, true)
		var ws []*tasks.Task
		for i := range 3 {
			w := h.running(time.Hour)
			h.finish(waitOutcome(w, ep.ID, ep.ID, time.Duration(3-i)*time.Hour))
			ws = append(ws, w)
		}
		due := h.release(ep.ID, holder)
		if len(due) != 1 || due[0].ID != ws[2].ID {
			h.t.Errorf("ReleaseEndpointCapacity: got %v, want the earliest due, %s", due, ws[2].ID)
		}
	})

	su.run(t, "Release/UnknownIsNoError", func(h *harness) {
		r := h.running(time.Hour)
		if due, err := h.s.ReleaseEndpointCapacity(h.ctx, "no-such-endpoint", tasks.Lease{ID: r.ID, Attempt: 1}); err != nil || len(due) != 0 {
			h.t.Errorf("ReleaseEndpointCapacity of nothing: got %v, %v; want nothing, nil", due, err)
		}
	})
}
