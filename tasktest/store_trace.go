package tasktest

import (
	"testing"
	"time"

	"github.com/taskwheel/tasks"
)

// The W3C trace context of a task's enqueuer, as the engine stores it.
const (
	traceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	traceState  = "vendor1=opaque1,vendor2=opaque=2"
)

func traced(t *tasks.Task) { t.TraceParent, t.TraceState = traceParent, traceState }

// testTraceContext: a task's TraceParent and TraceState are stored as
// given, returned by every read, and kept across the task's life.
func (su suite) testTraceContext(t *testing.T) {
	su.run(t, "InsertKeepsIt", func(h *harness) {
		in := h.insert(traced)
		if in.TraceParent != traceParent || in.TraceState != traceState {
			h.t.Errorf("Insert: got trace context %q %q, want %q %q", in.TraceParent, in.TraceState, traceParent, traceState)
		}
		h.wantSame("Get after Insert", h.get(in.ID), in)
	})

	su.run(t, "EmptyStaysEmpty", func(h *harness) {
		in := h.insert()
		if got := h.get(in.ID); got.TraceParent != "" || got.TraceState != "" {
			h.t.Errorf("Get: got trace context %q %q, want none", got.TraceParent, got.TraceState)
		}
	})

	su.run(t, "InsertManyKeepsIt", func(h *harness) {
		ts := []*tasks.Task{h.newTask(traced), h.newTask(), h.newTask(traced, key("k"))}
		got, err := h.s.InsertMany(h.ctx, ts)
		if err != nil {
			h.t.Fatalf("InsertMany: got error %v, want nil", err)
		}
		for i, g := range got {
			if g.TraceParent != ts[i].TraceParent || g.TraceState != ts[i].TraceState {
				h.t.Errorf("InsertMany: task %d: got trace context %q %q, want %q %q", i, g.TraceParent, g.TraceState, ts[i].TraceParent, ts[i].TraceState)
			}
			h.wantSame("Get after InsertMany", h.get(g.ID), g)
		}
	})

	su.run(t, "ClaimFinishAndReplayKeepIt", func(h *harness) {
		in := h.insert(traced)
		c := h.claimOne(in.ID, time.Minute)
		if c.TraceParent != traceParent || c.TraceState != traceState {
			h.t.Errorf("Claim: got trace context %q %q, want %q %q", c.TraceParent, c.TraceState, traceParent, traceState)
		}
		h.finishOne(c, tasks.StateCompleted, 0, "")
		r, err := h.s.Replay(h.ctx, in.ID, 3)
		if err != nil {
			h.t.Fatalf("Replay: got error %v, want nil", err)
		}
		if r.TraceParent != traceParent || r.TraceState != traceState {
			h.t.Errorf("Replay: got trace context %q %q, want %q %q", r.TraceParent, r.TraceState, traceParent, traceState)
		}
	})
}
