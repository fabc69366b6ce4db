package tasktest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/taskwheel/tasks"
)

// Updates of endpoints and periodic tasks: compare and set on UpdatedAt.

func (su suite) testUpdates(t *testing.T) {
	su.run(t, "EndpointFromAStaleReadConflicts", func(h *harness) {
		read := h.insertEndpoint()
		first := cloneEndpoint(read)
		first.Description = "first"
		stored := h.updateEndpoint(first)
		if !stored.UpdatedAt.After(read.UpdatedAt) {
			h.t.Errorf("UpdatedAt: got %v, want after the previous %v", stored.UpdatedAt, read.UpdatedAt)
		}
		second := cloneEndpoint(read) // read before the first update
		second.URL = "https://second.example.com/"
		got, err := h.s.UpdateEndpoint(h.ctx, second)
		h.wantIs("UpdateEndpoint from a stale read", err, tasks.ErrConflict)
		if got != nil {
			h.t.Errorf("UpdateEndpoint from a stale read: got %v, want nil", got)
		}
		h.wantSameEndpoint("GetEndpoint after a conflicting UpdateEndpoint", h.getEndpoint(read.ID), stored)
	})

	su.run(t, "PeriodicFromAStaleReadConflicts", func(h *harness) {
		read := h.insertPeriodic()
		first := clonePeriodic(read)
		first.Spec = "@hourly"
		stored := h.updatePeriodic(first)
		if !stored.UpdatedAt.After(read.UpdatedAt) {
			h.t.Errorf("UpdatedAt: got %v, want after the previous %v", stored.UpdatedAt, read.UpdatedAt)
		}
		second := clonePeriodic(read)
		second.EventType = "second.event"
		got, err := h.s.UpdatePeriodic(h.ctx, second)
		h.wantIs("UpdatePeriodic from a stale read", err, tasks.ErrConflict)
		if got != nil {
			h.t.Errorf("UpdatePeriodic from a stale read: got %v, want nil", got)
		}
		h.wantSamePeriodic("GetPeriodic after a conflicting UpdatePeriodic", h.getPeriodic(read.ID), stored)
	})

	su.run(t, "ConcurrentSecretRotationsKeepBothSecrets", func(h *harness) {
		// Two callers rotate an endpoint's secret at once, each reading,
		// changing and writing until its write applies, as the engine
		// does: each new secret is stored, one as the secret and the
		// other as the previous secret, so neither caller was shown a
		// secret that does not sign.
		for round := range 20 {
			ep := h.insertEndpoint()
			shown := make([]string, 2)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range shown {
				secret := fmt.Sprintf("whsec_cm90YXRpb24gJWQgb2Ygcm91bmQgJWQ%d%02d", i, round)
				wg.Go(func() {
					<-start
					shown[i] = secret
					h.readModifyWriteEndpoint(ep.ID, func(ep *tasks.Endpoint) {
						ep.PreviousSecret, ep.Secret = ep.Secret, secret
					})
				})
			}
			close(start)
			h.wait(&wg)
			got := h.getEndpoint(ep.ID)
			stored := []string{got.Secret, got.PreviousSecret}
			slices.Sort(stored)
			slices.Sort(shown)
			if !slices.Equal(stored, shown) {
				h.t.Fatalf("round %d: stored secret and previous secret %q, want the two rotated in %q", round, stored, shown)
			}
		}
	})

	su.run(t, "ConcurrentUpdatesOfDifferentFieldsAllApply", func(h *harness) {
		ep := h.insertEndpoint()
		p := h.insertPeriodic()
		const n = 4
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				h.readModifyWriteEndpoint(ep.ID, func(ep *tasks.Endpoint) {
					switch i {
					case 0:
						ep.URL = "https://changed.example.com/"
					case 1:
						ep.Description = "changed"
					case 2:
						ep.Status = tasks.EndpointInactive
					case 3:
						ep.EnabledEvents = []string{"changed.event"}
					}
				})
			})
			wg.Go(func() {
				<-start
				h.readModifyWritePeriodic(p.ID, func(p *tasks.PeriodicTask) {
					switch i {
					case 0:
						p.Spec = "@hourly"
					case 1:
						p.EventType = "changed.event"
					case 2:
						p.Data = []byte(`"changed"`)
					case 3:
						p.Missed = tasks.MissedSkip
					}
				})
			})
		}
		close(start)
		h.wait(&wg)
		gotEp := h.getEndpoint(ep.ID)
		if gotEp.URL != "https://changed.example.com/" || gotEp.Description != "changed" ||
			gotEp.Status != tasks.EndpointInactive || !slices.Equal(gotEp.EnabledEvents, []string{"changed.event"}) {
			h.t.Errorf("endpoint after %d concurrent updates of different fields: got URL %q, Description %q, Status %q, EnabledEvents %q; want every change applied",
				n, gotEp.URL, gotEp.Description, gotEp.Status, gotEp.EnabledEvents)
		}
		gotP := h.getPeriodic(p.ID)
		if gotP.Spec != "@hourly" || gotP.EventType != "changed.event" || string(gotP.Data) != `"changed"` || gotP.Missed != tasks.MissedSkip {
			h.t.Errorf("periodic task after %d concurrent updates of different fields: got Spec %q, EventType %q, Data %s, Missed %q; want every change applied",
				n, gotP.Spec, gotP.EventType, gotP.Data, gotP.Missed)
		}
	})
}

// readModifyWriteEndpoint reads endpoint id, applies change and writes it,
// again from a fresh read for as long as the write conflicts.
func (h *harness) readModifyWriteEndpoint(id string, change func(*tasks.Endpoint)) {
	for {
		ep, err := h.s.GetEndpoint(h.ctx, id)
		if err != nil {
			h.t.Errorf("GetEndpoint(%s): got error %v, want nil", id, err)
			return
		}
		change(ep)
		_, err = h.s.UpdateEndpoint(h.ctx, ep)
		if !errors.Is(err, tasks.ErrConflict) {
			if err != nil {
				h.t.Errorf("UpdateEndpoint(%s): got error %v, want nil or ErrConflict", id, err)
			}
			return
		}
	}
}

// readModifyWritePeriodic is readModifyWriteEndpoint for periodic tasks.
func (h *harness) readModifyWritePeriodic(id string, change func(*tasks.PeriodicTask)) {
	for {
		p, err := h.s.GetPeriodic(h.ctx, id)
		if err != nil {
			h.t.Errorf("GetPeriodic(%s): got error %v, want nil", id, err)
			return
		}
		change(p)
		_, err = h.s.UpdatePeriodic(h.ctx, p)
		if !errors.Is(err, tasks.ErrConflict) {
			if err != nil {
				h.t.Errorf("UpdatePeriodic(%s): got error %v, want nil or ErrConflict", id, err)
			}
			return
		}
	}
}
