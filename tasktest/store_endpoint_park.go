package tasktest

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
)

// Parking for an endpoint's rate limit: a take refused a token queues, in
// the same step, the other due tasks of its app and event type that would
// each be refused one in turn (Store.TakeEndpointCapacity's park).

// takePark takes capacity of endpoint id for t's attempt, asking to park
// up to park others with reason, and fails on an error.
func (h *harness) takePark(id string, t *tasks.Task, park int, reason string) (bool, time.Duration, []tasks.Due) {
	h.t.Helper()
	ok, wait, parked, err := h.s.TakeEndpointCapacity(h.ctx, id, tasks.Lease{ID: t.ID, Attempt: t.Attempts}, park, reason)
	if err != nil {
		h.t.Fatalf("TakeEndpointCapacity(%s, %s/%d, %d): got error %v, want nil", id, t.ID, t.Attempts, park, err)
	}
	return ok, wait, parked
}

func (su suite) testEndpointPark(t *testing.T) {
	const why = "rate_limit: endpoint waits"

	su.run(t, "QueuesTheDueOfTheAppAndEventType", func(h *harness) {
		ep := h.insertEndpoint(epLimits(0.001, 0)) // a burst of 1, then a token each 1000 s
		a, b := h.running(time.Hour), h.running(time.Hour)
		retry := h.retrying(0) // due again, on its run's second attempt
		h.wantTake("a", ep.ID, a, true)
		var due []*tasks.Task
		for range 3 {
			due = append(due, h.insert())
		}
		slices.SortFunc(due, func(x, y *tasks.Task) int { // as they are due
			if c := x.NextAttemptAt.Compare(*y.NextAttemptAt); c != 0 {
				return c
			}
			return strings.Compare(x.ID, y.ID)
		})
		others := []*tasks.Task{retry, h.insert(event("other.event")), h.insert(app("app_2"))}
		later := h.insert(at(h.now().Add(time.Hour)))

		ok, wait, parked := h.takePark(ep.ID, b, 10, why)
		if ok || wait < 900*time.Second {
			h.t.Fatalf("b: got ok %v, wait %v; want refused, about 1000 s", ok, wait)
		}
		if len(parked) != len(due) {
			h.t.Fatalf("parked: got %v, want the %d due tasks of the app and event type", parked, len(due))
		}
		for i, d := range parked {
			if d.ID != due[i].ID {
				h.t.Errorf("parked[%d]: got %s, want %s (oldest due first)", i, d.ID, due[i].ID)
			}
			// Each a token after the one before, b's first.
			want := wait + time.Duration(i+1)*1000*time.Second
			if got := d.RunAt.Sub(h.now()); got < want-time.Minute || got > want+time.Second {
				h.t.Errorf("parked[%d]: due in %v, want about %v", i, got, want)
			}
			got := h.get(d.ID)
			if got.State != tasks.StateScheduled || got.Attempts != 0 || got.WaitReason != why {
				h.t.Errorf("parked task %d: got state %s, attempts %d, wait reason %q; want scheduled, 0, %q",
					i, got.State, got.Attempts, got.WaitReason, why)
			}
			h.wantTime("parked task's NextAttemptAt", got.NextAttemptAt, &d.RunAt)
		}
		for _, o := range append(others, later) {
			if got := h.get(o.ID); got.WaitReason != "" {
				h.t.Errorf("task %s (%s, %s, attempts %d): got wait reason %q, want it not parked",
					o.ID, o.AppID, o.EventType, o.Attempts, got.WaitReason)
			}
		}
		claimed := h.claim(10, time.Hour)
		if len(claimed) != len(others) {
			h.t.Errorf("Claim: got %d tasks, want the %d others (the parked are not due)", len(claimed), len(others))
		}

		// A later refusal queues after them, and parks none again.
		c := h.running(time.Hour)
		ok, cWait, parked := h.takePark(ep.ID, c, 10, why)
		if ok || len(parked) != 0 {
			h.t.Errorf("c: got ok %v, parked %v; want refused, none parked", ok, parked)
		}
		if want := wait + 4*1000*time.Second; cWait < want-time.Minute {
			h.t.Errorf("c: got wait %v, want about %v, after the parked tasks", cWait, want)
		}
	})

	su.run(t, "OnlyWhenAskedAndRefused", func(h *harness) {
		ep := h.insertEndpoint(epLimits(0.001, 0))
		a, b := h.running(time.Hour), h.running(time.Hour)
		d := h.insert()
		if ok, _, parked := h.takePark(ep.ID, a, 10, why); !ok || len(parked) != 0 {
			h.t.Errorf("a: got ok %v, parked %v; want the token, none parked", ok, parked)
		}
		if ok, _, parked := h.takePark(ep.ID, b, 0, why); ok || len(parked) != 0 {
			h.t.Errorf("b, park 0: got ok %v, parked %v; want refused, none parked", ok, parked)
		}
		if got := h.get(d.ID); got.WaitReason != "" {
			h.t.Errorf("due task: got wait reason %q, want none", got.WaitReason)
		}
		slots := h.insertEndpoint(epLimits(0, 1))
		h.wantTake("a's slot", slots.ID, a, true)
		if ok, wait, parked := h.takePark(slots.ID, b, 10, why); ok || wait != 0 || len(parked) != 0 {
			h.t.Errorf("b, waiting for a slot: got ok %v, wait %v, parked %v; want refused, 0, none parked", ok, wait, parked)
		}
	})

	su.run(t, "ParkedTakeTheirTurn", func(h *harness) {
		ep := h.insertEndpoint(epLimits(10, 0)) // a burst of 1, then a token each 100 ms
		a, b := h.running(time.Hour), h.running(time.Hour)
		d := h.insert()
		h.wantTake("a", ep.ID, a, true)
		ok, _, parked := h.takePark(ep.ID, b, 10, why)
		if ok || len(parked) != 1 || parked[0].ID != d.ID {
			h.t.Fatalf("b: got ok %v, parked %v; want refused, %s parked", ok, parked, d.ID)
		}
		h.waitPast(parked[0].RunAt)
		got := h.claimOne(d.ID, time.Hour)
		if got.Attempts != 1 || got.WaitReason != "" {
			h.t.Errorf("parked task claimed: got attempts %d, wait reason %q; want 1, none", got.Attempts, got.WaitReason)
		}
		h.wantTake("the parked task at its turn", ep.ID, got, true)
	})
}
