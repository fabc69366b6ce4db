package tasktest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/taskwheel/tasks"
)

// Endpoint health: Store.RecordEndpointHealth.

// Outcomes of a delivery attempt, as RecordEndpointHealth takes them.
type health struct{ ok, gone bool }

var (
	acked  = health{ok: true}
	failed = health{}
	gone   = health{gone: true}
)

func (o health) String() string {
	switch {
	case o.ok:
		return "ok"
	case o.gone:
		return "gone"
	}
	return "failure"
}

// longResolution is the resolution record gives RecordEndpointHealth: a
// success within it of the last one recorded changes nothing, and a
// success recorded keeps the endpoint from being disabled for failing
// for longer than the tests run.
const longResolution = time.Hour

// record calls RecordEndpointHealth with longResolution and returns what
// it returned, checked.
func (h *harness) record(id string, o health, disableAfter time.Duration) *tasks.Endpoint {
	h.t.Helper()
	return h.recordRes(id, o, disableAfter, longResolution)
}

// recordRes calls RecordEndpointHealth and returns what it returned,
// checked.
func (h *harness) recordRes(id string, o health, disableAfter, resolution time.Duration) *tasks.Endpoint {
	h.t.Helper()
	got, err := h.s.RecordEndpointHealth(h.ctx, id, o.ok, o.gone, disableAfter, resolution)
	if err != nil {
		h.t.Fatalf("RecordEndpointHealth(%s, %v, %v, %v): got error %v, want nil", id, o, disableAfter, resolution, err)
	}
	if got == nil {
		return nil
	}
	h.checkEndpoint(got)
	return cloneEndpoint(got)
}

// recordNoChange records o and fails unless the call reports that it
// changed nothing, and the endpoint is indeed as before.
func (h *harness) recordNoChange(id string, o health, disableAfter time.Duration) {
	h.t.Helper()
	h.recordResNoChange(id, o, disableAfter, longResolution)
}

// recordResNoChange is recordNoChange with a resolution.
func (h *harness) recordResNoChange(id string, o health, disableAfter, resolution time.Duration) {
	h.t.Helper()
	before := h.getEndpoint(id)
	if got := h.recordRes(id, o, disableAfter, resolution); got != nil {
		h.t.Errorf("RecordEndpointHealth(%v, %v, %v): got endpoint %+v, want nil (no change)", o, disableAfter, resolution, got)
	}
	h.wantSameEndpoint(fmt.Sprintf("GetEndpoint after RecordEndpointHealth(%v) that changed nothing", o), h.getEndpoint(id), before)
}

// failingEndpoint inserts an endpoint and records one failure, which
// starts its run of failures; it returns the endpoint as stored.
func (h *harness) failingEndpoint() *tasks.Endpoint {
	h.t.Helper()
	ep := h.insertEndpoint()
	got := h.record(ep.ID, failed, time.Hour)
	if got == nil || got.FailingSince == nil {
		h.t.Fatalf("RecordEndpointHealth(failure) of a healthy endpoint: got %+v, want FailingSince set", got)
	}
	return got
}

// succeededEndpoint inserts an endpoint and records one success, which
// sets its LastSuccessAt; it returns the endpoint as stored.
func (h *harness) succeededEndpoint() *tasks.Endpoint {
	h.t.Helper()
	ep := h.insertEndpoint()
	got := h.record(ep.ID, acked, time.Hour)
	if got == nil || got.LastSuccessAt == nil {
		h.t.Fatalf("RecordEndpointHealth(ok) of a new endpoint: got %+v, want LastSuccessAt set", got)
	}
	return got
}

// disabledEndpoint returns an endpoint that RecordEndpointHealth disabled
// for failing.
func (h *harness) disabledEndpoint() *tasks.Endpoint {
	h.t.Helper()
	ep := h.failingEndpoint()
	h.waitPast(ep.FailingSince.Add(time.Millisecond))
	got := h.record(ep.ID, failed, time.Millisecond)
	if got == nil || got.Status != tasks.EndpointInactive {
		h.t.Fatalf("RecordEndpointHealth(failure) past disableAfter: got %+v, want the endpoint disabled", got)
	}
	return got
}

func (su suite) testEndpointHealth(t *testing.T) {
	su.run(t, "InsertStartsHealthy", func(h *harness) {
		past := h.now().Add(-time.Hour)
		got := h.insertEndpoint(func(ep *tasks.Endpoint) {
			ep.FailingSince, ep.LastSuccessAt, ep.DisabledAt, ep.DisabledReason = &past, &past, &past, "made up"
		})
		if got.FailingSince != nil || got.LastSuccessAt != nil || got.DisabledAt != nil || got.DisabledReason != "" {
			h.t.Errorf("InsertEndpoint: got FailingSince %s, LastSuccessAt %s, DisabledAt %s, DisabledReason %q; want nil, nil, nil, \"\"",
				fmtTime(got.FailingSince), fmtTime(got.LastSuccessAt), fmtTime(got.DisabledAt), got.DisabledReason)
		}
	})

	su.run(t, "FirstFailureSetsFailingSince", func(h *harness) {
		ep := h.insertEndpoint()
		before := h.now()
		got := h.record(ep.ID, failed, time.Hour)
		after := h.now()
		if got == nil {
			h.t.Fatalf("RecordEndpointHealth(failure) of a healthy endpoint: got nil, want the endpoint with FailingSince set")
		}
		h.wantBetween("FailingSince", got.FailingSince, before, after)
		want := cloneEndpoint(ep)
		want.FailingSince = got.FailingSince // and nothing else: UpdatedAt neither
		h.wantSameEndpoint("RecordEndpointHealth(failure)", got, want)
		h.wantSameEndpoint("GetEndpoint after RecordEndpointHealth(failure)", h.getEndpoint(ep.ID), want)
	})

	su.run(t, "FailureWithinThePeriodChangesNothing", func(h *harness) {
		ep := h.failingEndpoint()
		h.waitPast(*ep.FailingSince)
		h.recordNoChange(ep.ID, failed, time.Hour)
	})

	su.run(t, "SuccessClearsFailingSince", func(h *harness) {
		// The endpoint's last success is recent: the success is recorded
		// all the same, since it ends a run of failures.
		h.succeededEndpoint()
		ep := h.failingEndpoint()
		h.record(ep.ID, acked, time.Hour)
		h.waitPast(*ep.FailingSince)
		ep = h.record(ep.ID, failed, time.Hour)
		before := h.now()
		got := h.record(ep.ID, acked, time.Hour)
		after := h.now()
		if got == nil {
			h.t.Fatalf("RecordEndpointHealth(ok) of a failing endpoint: got nil, want the endpoint with FailingSince cleared")
		}
		h.wantBetween("LastSuccessAt", got.LastSuccessAt, before, after)
		want := cloneEndpoint(ep)
		want.FailingSince, want.LastSuccessAt = nil, got.LastSuccessAt
		h.wantSameEndpoint("RecordEndpointHealth(ok)", got, want)
		h.wantSameEndpoint("GetEndpoint after RecordEndpointHealth(ok)", h.getEndpoint(ep.ID), want)
		// A new failure starts a new run.
		h.waitPast(*ep.FailingSince)
		again := h.record(ep.ID, failed, time.Hour)
		if again == nil || again.FailingSince == nil || !again.FailingSince.After(*ep.FailingSince) {
			h.t.Errorf("RecordEndpointHealth(failure) after a success: got %+v, want FailingSince after the first run's %v", again, ep.FailingSince)
		}
	})

	su.run(t, "FirstSuccessSetsLastSuccessAt", func(h *harness) {
		ep := h.insertEndpoint()
		before := h.now()
		got := h.record(ep.ID, acked, time.Hour)
		after := h.now()
		if got == nil {
			h.t.Fatalf("RecordEndpointHealth(ok) of a new endpoint: got nil, want the endpoint with LastSuccessAt set")
		}
		h.wantBetween("LastSuccessAt", got.LastSuccessAt, before, after)
		want := cloneEndpoint(ep)
		want.LastSuccessAt = got.LastSuccessAt // and nothing else: UpdatedAt neither
		h.wantSameEndpoint("RecordEndpointHealth(ok)", got, want)
		h.wantSameEndpoint("GetEndpoint after RecordEndpointHealth(ok)", h.getEndpoint(ep.ID), want)
	})

	su.run(t, "SuccessesWithinTheResolutionChangeNothing", func(h *harness) {
		ep := h.succeededEndpoint()
		h.recordNoChange(ep.ID, acked, time.Hour)
		h.recordNoChange(ep.ID, acked, 0)
		// Past the resolution, a success moves LastSuccessAt.
		const resolution = 5 * time.Millisecond
		h.waitPast(ep.LastSuccessAt.Add(resolution))
		before := h.now()
		got := h.recordRes(ep.ID, acked, time.Hour, resolution)
		after := h.now()
		if got == nil {
			h.t.Fatalf("RecordEndpointHealth(ok) %v after the last success, with resolution %v: got nil, want LastSuccessAt moved", resolution, resolution)
		}
		h.wantBetween("LastSuccessAt", got.LastSuccessAt, before, after)
		want := cloneEndpoint(ep)
		want.LastSuccessAt = got.LastSuccessAt
		h.wantSameEndpoint("RecordEndpointHealth(ok) past the resolution", got, want)
		h.recordNoChange(ep.ID, acked, time.Hour)
	})

	su.run(t, "ZeroResolutionRecordsEverySuccess", func(h *harness) {
		ep := h.succeededEndpoint()
		h.waitPast(*ep.LastSuccessAt)
		if got := h.recordRes(ep.ID, acked, time.Hour, 0); got == nil || !got.LastSuccessAt.After(*ep.LastSuccessAt) {
			h.t.Errorf("RecordEndpointHealth(ok) with resolution 0: got %+v, want LastSuccessAt after %v", got, fmtTime(ep.LastSuccessAt))
		}
	})

	su.run(t, "OfConcurrentSuccessesOneWrites", func(h *harness) {
		// On a new endpoint, and on a failing one: the first success
		// writes, the others find the endpoint healthy with a recent
		// LastSuccessAt.
		newEndpoint := func() *tasks.Endpoint { return h.insertEndpoint() }
		for _, newEndpoint := range []func() *tasks.Endpoint{newEndpoint, h.failingEndpoint} {
			for round := range 5 {
				ep := newEndpoint()
				const n = 8
				got := make([]*tasks.Endpoint, n)
				errs := make([]error, n)
				var wg sync.WaitGroup
				start := make(chan struct{})
				for i := range n {
					wg.Go(func() {
						<-start
						got[i], errs[i] = h.s.RecordEndpointHealth(h.ctx, ep.ID, true, false, time.Hour, time.Hour)
					})
				}
				close(start)
				h.wait(&wg)
				wrote := 0
				for i := range n {
					switch {
					case errs[i] != nil:
						h.t.Errorf("round %d, call %d: got error %v, want nil", round, i, errs[i])
					case got[i] == nil:
					case got[i].LastSuccessAt != nil && got[i].FailingSince == nil:
						wrote++
					default:
						h.t.Errorf("round %d, call %d: got %+v, want nil or the endpoint with LastSuccessAt set and FailingSince nil", round, i, got[i])
					}
				}
				if wrote != 1 {
					h.t.Errorf("round %d: %d of %d concurrent successes report that they wrote, want exactly 1", round, wrote, n)
				}
				if stored := h.getEndpoint(ep.ID); stored.LastSuccessAt == nil || stored.FailingSince != nil {
					h.t.Errorf("round %d: got LastSuccessAt %s, FailingSince %s; want set, nil", round, fmtTime(stored.LastSuccessAt), fmtTime(stored.FailingSince))
				}
			}
		}
	})

	su.run(t, "RecentSuccessKeepsTheEndpoint", func(h *harness) {
		// A success recorded before the run of failures began, less than
		// disableAfter plus twice the resolution ago, keeps the endpoint
		// active: it may stand for a later success that was not recorded.
		ep := h.succeededEndpoint()
		h.waitPast(*ep.LastSuccessAt)
		ep = h.record(ep.ID, failed, time.Hour)
		const disableAfter = time.Millisecond
		h.waitPast(ep.FailingSince.Add(disableAfter))
		h.recordNoChange(ep.ID, failed, disableAfter)
		// Forever, as disableAfter, still disables none for failing.
		h.recordResNoChange(ep.ID, failed, tasks.Forever, 0)
		// Once it is old enough, the failure disables the endpoint.
		const resolution = time.Millisecond
		h.waitPast(ep.LastSuccessAt.Add(disableAfter + 2*resolution))
		got := h.recordRes(ep.ID, failed, disableAfter, resolution)
		if got == nil || got.Status != tasks.EndpointInactive {
			h.t.Fatalf("RecordEndpointHealth(failure) past disableAfter plus twice the resolution since the last success: got %+v, want the endpoint disabled", got)
		}
		want := "every delivery failed since " + ep.FailingSince.Format("2006-01-02T15:04:05Z")
		if got.DisabledReason != want || !eqTime(got.LastSuccessAt, ep.LastSuccessAt) {
			h.t.Errorf("disabled: got DisabledReason %q, LastSuccessAt %s; want %q, %s", got.DisabledReason, fmtTime(got.LastSuccessAt), want, fmtTime(ep.LastSuccessAt))
		}
	})

	su.run(t, "DisablingWaitsTwiceTheResolution", func(h *harness) {
		// A failure disables the endpoint once LastSuccessAt is
		// disableAfter plus twice the resolution ago, not once.
		const disableAfter = time.Millisecond
		var ep *tasks.Endpoint
		for try, gap := 0, 200*time.Millisecond; ; try, gap = try+1, gap*2 {
			if try == 5 {
				h.t.Fatalf("%d tries: each call came too long after the store's clock was read to show anything", try)
			}
			ep = h.succeededEndpoint()
			h.waitPast(*ep.LastSuccessAt)
			ep = h.record(ep.ID, failed, time.Hour)
			h.waitPast(ep.LastSuccessAt.Add(disableAfter + gap))
			// The call's now is between before and after: LastSuccessAt
			// is disableAfter plus more than the resolution ago, and,
			// unless after says otherwise, less than twice it.
			before := h.now()
			resolution := (before.Sub(*ep.LastSuccessAt) - disableAfter) * 2 / 3
			got := h.recordRes(ep.ID, failed, disableAfter, resolution)
			after := h.now()
			if after.Sub(*ep.LastSuccessAt)-disableAfter >= 2*resolution {
				continue // inconclusive: try again with a longer gap
			}
			if got != nil {
				h.t.Fatalf("RecordEndpointHealth(failure, resolution %v) with LastSuccessAt disableAfter plus between 1 and 2 resolutions ago: got %+v, want nil", resolution, got)
			}
			break
		}
		before := h.now()
		resolution := ((before.Sub(*ep.LastSuccessAt) - disableAfter) / 2).Truncate(time.Microsecond)
		if got := h.recordRes(ep.ID, failed, disableAfter, resolution); got == nil || got.Status != tasks.EndpointInactive {
			h.t.Errorf("RecordEndpointHealth(failure, resolution %v) with LastSuccessAt disableAfter plus 2 resolutions ago: got %+v, want the endpoint disabled", resolution, got)
		}
	})

	su.run(t, "GoneDisablesDespiteARecentSuccess", func(h *harness) {
		ep := h.succeededEndpoint()
		if got := h.record(ep.ID, gone, time.Hour); got == nil || got.Status != tasks.EndpointInactive || got.DisabledReason != "answered 410 Gone" {
			h.t.Errorf("RecordEndpointHealth(gone) right after a success: got %+v, want the endpoint disabled", got)
		}
	})

	su.run(t, "FailuresForThePeriodDisable", func(h *harness) {
		ep := h.failingEndpoint()
		const disableAfter = 5 * time.Millisecond
		h.waitPast(ep.FailingSince.Add(disableAfter))
		before := h.now()
		got := h.record(ep.ID, failed, disableAfter)
		after := h.now()
		if got == nil {
			h.t.Fatalf("RecordEndpointHealth(failure) %v after the first failure: got nil, want the endpoint disabled", disableAfter)
		}
		h.wantBetween("DisabledAt", got.DisabledAt, before, after)
		if !got.UpdatedAt.After(ep.UpdatedAt) {
			h.t.Errorf("UpdatedAt after disabling: got %v, want after %v", got.UpdatedAt, ep.UpdatedAt)
		}
		want := cloneEndpoint(ep)
		want.Status = tasks.EndpointInactive
		want.DisabledAt, want.UpdatedAt = got.DisabledAt, got.UpdatedAt
		want.DisabledReason = "every delivery failed since " + ep.FailingSince.Format("2006-01-02T15:04:05Z")
		h.wantSameEndpoint("RecordEndpointHealth(failure) that disables", got, want)
		h.wantSameEndpoint("GetEndpoint after disabling", h.getEndpoint(ep.ID), want)
		if !got.DisabledByFailures() {
			h.t.Errorf("DisabledByFailures: got false, want true")
		}
	})

	su.run(t, "ZeroDisableAfterDisablesAtTheSecondFailure", func(h *harness) {
		ep := h.insertEndpoint()
		if got := h.record(ep.ID, failed, 0); got == nil || got.Status != tasks.EndpointActive {
			h.t.Fatalf("first failure with disableAfter 0: got %+v, want the endpoint active with FailingSince set", got)
		}
		if got := h.record(ep.ID, failed, 0); got == nil || got.Status != tasks.EndpointInactive {
			h.t.Fatalf("second failure with disableAfter 0: got %+v, want the endpoint disabled", got)
		}
	})

	su.run(t, "ForeverNeverDisablesForFailing", func(h *harness) {
		ep := h.failingEndpoint()
		h.waitPast(ep.FailingSince.Add(time.Millisecond))
		h.recordNoChange(ep.ID, failed, tasks.Forever)
		if got := h.record(ep.ID, gone, tasks.Forever); got == nil || got.Status != tasks.EndpointInactive {
			h.t.Errorf("RecordEndpointHealth(gone, Forever): got %+v, want the endpoint disabled", got)
		}
	})

	su.run(t, "GoneDisablesAtOnce", func(h *harness) {
		ep := h.insertEndpoint()
		before := h.now()
		got := h.record(ep.ID, gone, time.Hour)
		after := h.now()
		if got == nil {
			h.t.Fatalf("RecordEndpointHealth(gone): got nil, want the endpoint disabled")
		}
		h.wantBetween("DisabledAt", got.DisabledAt, before, after)
		h.wantBetween("FailingSince", got.FailingSince, before, after)
		want := cloneEndpoint(ep)
		want.Status = tasks.EndpointInactive
		want.FailingSince, want.DisabledAt, want.UpdatedAt = got.FailingSince, got.DisabledAt, got.UpdatedAt
		want.DisabledReason = "answered 410 Gone"
		h.wantSameEndpoint("RecordEndpointHealth(gone)", got, want)
		h.wantSameEndpoint("GetEndpoint after RecordEndpointHealth(gone)", h.getEndpoint(ep.ID), want)
	})

	su.run(t, "GoneKeepsTheRunsStart", func(h *harness) {
		ep := h.failingEndpoint()
		got := h.record(ep.ID, gone, time.Hour)
		if got == nil || got.Status != tasks.EndpointInactive || !eqTime(got.FailingSince, ep.FailingSince) {
			h.t.Errorf("RecordEndpointHealth(gone) of a failing endpoint: got %+v, want it disabled with FailingSince %v", got, fmtTime(ep.FailingSince))
		}
	})

	su.run(t, "DisabledStaysDisabled", func(h *harness) {
		ep := h.disabledEndpoint()
		h.waitPast(*ep.DisabledAt)
		for _, o := range []health{failed, gone, failed} {
			h.recordResNoChange(ep.ID, o, 0, 0)
		}
		h.wantSuccessSetsLastSuccessAtAlone(ep.ID)
	})

	su.run(t, "InactiveEndpointIsLeftAlone", func(h *harness) {
		ep := h.insertEndpoint(func(ep *tasks.Endpoint) { ep.Status = tasks.EndpointInactive })
		for _, o := range []health{failed, failed, gone} {
			h.recordResNoChange(ep.ID, o, 0, 0)
		}
		h.wantSuccessSetsLastSuccessAtAlone(ep.ID)
	})

	su.run(t, "UnknownEndpointChangesNothing", func(h *harness) {
		h.insertEndpoint()
		for _, id := range []string{uuid.NewString(), "", "'; DROP TABLE endpoints; --"} {
			for _, o := range []health{failed, gone, acked} {
				got, err := h.s.RecordEndpointHealth(h.ctx, id, o.ok, o.gone, time.Hour, time.Hour)
				if got != nil || err != nil {
					h.t.Errorf("RecordEndpointHealth(%.20q, %v): got %v, error %v; want nil, nil", id, o, got, err)
				}
			}
		}
	})

	su.run(t, "NegativeDurationsAreInvalid", func(h *harness) {
		ep := h.failingEndpoint()
		for _, d := range []struct {
			field                    string
			disableAfter, resolution time.Duration
		}{
			{"disable_after", -time.Second, time.Hour},
			{"resolution", time.Hour, -time.Second},
		} {
			for _, o := range []health{failed, acked, gone} {
				got, err := h.s.RecordEndpointHealth(h.ctx, ep.ID, o.ok, o.gone, d.disableAfter, d.resolution)
				var ve *tasks.ValidationError
				if !errors.As(err, &ve) || ve.Field != d.field || got != nil {
					h.t.Errorf("RecordEndpointHealth(%v) with a negative %s: got %v, error %v; want a *tasks.ValidationError naming %s", o, d.field, got, err, d.field)
				}
			}
		}
		h.wantSameEndpoint("GetEndpoint after an invalid RecordEndpointHealth", h.getEndpoint(ep.ID), ep)
	})

	su.run(t, "ExactlyOneOfConcurrentCallsDisables", func(h *harness) {
		for _, o := range []health{failed, gone} {
			for round := range 5 {
				ep := h.failingEndpoint()
				h.waitPast(ep.FailingSince.Add(time.Millisecond))
				const n = 8
				got := make([]*tasks.Endpoint, n)
				errs := make([]error, n)
				var wg sync.WaitGroup
				start := make(chan struct{})
				for i := range n {
					wg.Go(func() {
						<-start
						got[i], errs[i] = h.s.RecordEndpointHealth(h.ctx, ep.ID, o.ok, o.gone, time.Millisecond, 0)
					})
				}
				close(start)
				h.wait(&wg)
				disabled := 0
				for i := range n {
					switch {
					case errs[i] != nil:
						h.t.Errorf("%v, round %d, call %d: got error %v, want nil", o, round, i, errs[i])
					case got[i] == nil:
					case got[i].Status == tasks.EndpointInactive:
						disabled++
					default:
						h.t.Errorf("%v, round %d, call %d: got %+v, want nil or the endpoint disabled", o, round, i, got[i])
					}
				}
				if disabled != 1 {
					h.t.Errorf("%v, round %d: %d of %d concurrent calls report that they disabled the endpoint, want exactly 1", o, round, disabled, n)
				}
			}
		}
	})

	su.run(t, "ReenablingClearsHealth", func(h *harness) {
		ep := h.disabledEndpoint()
		ep = h.record(ep.ID, acked, time.Hour) // sets LastSuccessAt, which updates keep
		// An update that keeps it inactive keeps why it is.
		ep.Description = "still off"
		kept := h.updateEndpoint(ep)
		if kept.DisabledAt == nil || kept.DisabledReason == "" || kept.FailingSince == nil || !eqTime(kept.LastSuccessAt, ep.LastSuccessAt) {
			h.t.Errorf("UpdateEndpoint of a disabled endpoint that keeps it inactive: got DisabledAt %s, DisabledReason %q, FailingSince %s, LastSuccessAt %s; want all kept",
				fmtTime(kept.DisabledAt), kept.DisabledReason, fmtTime(kept.FailingSince), fmtTime(kept.LastSuccessAt))
		}
		kept.Status = tasks.EndpointActive
		got := h.updateEndpoint(kept)
		if got.Status != tasks.EndpointActive || got.FailingSince != nil || got.DisabledAt != nil || got.DisabledReason != "" ||
			!eqTime(got.LastSuccessAt, ep.LastSuccessAt) {
			h.t.Errorf("UpdateEndpoint to active: got Status %s, FailingSince %s, DisabledAt %s, DisabledReason %q, LastSuccessAt %s; want active, nil, nil, \"\", %s",
				got.Status, fmtTime(got.FailingSince), fmtTime(got.DisabledAt), got.DisabledReason, fmtTime(got.LastSuccessAt), fmtTime(ep.LastSuccessAt))
		}
		h.wantSameEndpoint("GetEndpoint after re-enabling", h.getEndpoint(ep.ID), got)
		// Its next failure starts a new run; it is not disabled at once.
		if again := h.record(ep.ID, failed, time.Hour); again == nil || again.Status != tasks.EndpointActive || again.FailingSince == nil {
			h.t.Errorf("first failure after re-enabling: got %+v, want the endpoint active with a new FailingSince", again)
		}
	})

	su.run(t, "URLChangeClearsTheOldReceiversHealth", func(h *harness) {
		ep := h.succeededEndpoint()
		h.waitPast(*ep.LastSuccessAt)
		ep = h.record(ep.ID, failed, time.Hour)
		ep.URL = "https://other.example.com/hook"
		got := h.updateEndpoint(ep)
		if got.FailingSince != nil || got.LastSuccessAt != nil {
			h.t.Errorf("UpdateEndpoint with a new URL: got FailingSince %s, LastSuccessAt %s; want nil, nil: they were the old receiver's",
				fmtTime(got.FailingSince), fmtTime(got.LastSuccessAt))
		}
		h.wantSameEndpoint("GetEndpoint after the URL changed", h.getEndpoint(ep.ID), got)
		// The new receiver's first failure starts a run; it does not disable.
		if again := h.record(ep.ID, failed, 0); again == nil || again.Status != tasks.EndpointActive || again.FailingSince == nil {
			h.t.Errorf("first failure at the new URL, DisableAfter 0: got %+v, want the endpoint active with a new FailingSince", again)
		}
	})

	su.run(t, "UpdateOfAnActiveEndpointKeepsFailingSince", func(h *harness) {
		ep := h.failingEndpoint()
		ep.Description = "changed"
		got := h.updateEndpoint(ep) // read before the failure was recorded: no conflict
		if !eqTime(got.FailingSince, ep.FailingSince) {
			h.t.Errorf("UpdateEndpoint of a failing endpoint: got FailingSince %s, want %s kept", fmtTime(got.FailingSince), fmtTime(ep.FailingSince))
		}
	})

	su.run(t, "FailingSinceBookkeepingMakesNoConflict", func(h *harness) {
		read := h.insertEndpoint()
		h.record(read.ID, failed, time.Hour) // sets FailingSince
		first := cloneEndpoint(read)
		first.Description = "first"
		stored := h.updateEndpoint(first)
		if stored.FailingSince == nil {
			h.t.Errorf("UpdateEndpoint after a failure: got FailingSince nil, want it kept")
		}
		h.record(read.ID, acked, time.Hour) // clears it
		second := cloneEndpoint(stored)
		second.URL = "https://second.example.com/"
		if got := h.updateEndpoint(second); got.FailingSince != nil || got.Description != "first" {
			h.t.Errorf("UpdateEndpoint after a success: got FailingSince %s, Description %q; want nil, \"first\"", fmtTime(got.FailingSince), got.Description)
		}
	})

	su.run(t, "UpdateReadBeforeDisablingConflicts", func(h *harness) {
		// An update read while the endpoint was active must not re-enable
		// it by writing back the status it read.
		read := h.insertEndpoint()
		disabled := h.record(read.ID, gone, time.Hour)
		if disabled == nil {
			h.t.Fatalf("RecordEndpointHealth(gone): got nil, want the endpoint disabled")
		}
		stale := cloneEndpoint(read)
		stale.Description = "changed"
		got, err := h.s.UpdateEndpoint(h.ctx, stale)
		h.wantIs("UpdateEndpoint read before the endpoint was disabled", err, tasks.ErrConflict)
		if got != nil {
			h.t.Errorf("UpdateEndpoint read before the endpoint was disabled: got %v, want nil", got)
		}
		h.wantSameEndpoint("GetEndpoint after the conflicting update", h.getEndpoint(read.ID), disabled)
	})

	su.run(t, "ConcurrentUpdatesAndDisablingLoseNothing", func(h *harness) {
		// Updates of the description race the call that disables the
		// endpoint, each update reading, changing and writing until its
		// write applies, as the engine does: every update applies, and no
		// update re-enables the endpoint.
		for round := range 10 {
			ep := h.failingEndpoint()
			h.waitPast(ep.FailingSince.Add(time.Millisecond))
			const n = 4
			var wg sync.WaitGroup
			start := make(chan struct{})
			var disabledBy *tasks.Endpoint
			wg.Go(func() {
				<-start
				got, err := h.s.RecordEndpointHealth(h.ctx, ep.ID, false, false, time.Millisecond, 0)
				if err != nil {
					h.t.Errorf("RecordEndpointHealth: got error %v, want nil", err)
				}
				disabledBy = got
			})
			for i := range n {
				wg.Go(func() {
					<-start
					h.readModifyWriteEndpoint(ep.ID, func(ep *tasks.Endpoint) {
						ep.EnabledEvents = append(ep.EnabledEvents, fmt.Sprintf("update.%d", i))
					})
				})
			}
			close(start)
			h.wait(&wg)
			got := h.getEndpoint(ep.ID)
			if disabledBy == nil || got.Status != tasks.EndpointInactive || got.DisabledAt == nil {
				h.t.Errorf("round %d: got disabling call's answer %+v, Status %s, DisabledAt %s; want the endpoint disabled by it",
					round, disabledBy, got.Status, fmtTime(got.DisabledAt))
			}
			if len(got.EnabledEvents) != len(ep.EnabledEvents)+n {
				h.t.Errorf("round %d: got EnabledEvents %q, want each of the %d updates applied", round, got.EnabledEvents, n)
			}
		}
	})
}

// wantSuccessSetsLastSuccessAtAlone checks that a success of the inactive
// endpoint id sets its LastSuccessAt and changes nothing else, and that
// one within the resolution of it changes nothing.
func (h *harness) wantSuccessSetsLastSuccessAtAlone(id string) {
	h.t.Helper()
	ep := h.getEndpoint(id)
	before := h.now()
	got := h.record(id, acked, time.Hour)
	after := h.now()
	if got == nil {
		h.t.Fatalf("RecordEndpointHealth(ok) of an inactive endpoint: got nil, want LastSuccessAt set")
	}
	h.wantBetween("LastSuccessAt", got.LastSuccessAt, before, after)
	want := cloneEndpoint(ep)
	want.LastSuccessAt = got.LastSuccessAt
	h.wantSameEndpoint("RecordEndpointHealth(ok) of an inactive endpoint", got, want)
	h.wantSameEndpoint("GetEndpoint after RecordEndpointHealth(ok) of an inactive endpoint", h.getEndpoint(id), want)
	h.recordNoChange(id, acked, time.Hour)
}
