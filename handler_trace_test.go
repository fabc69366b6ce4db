package tasks_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/taskwheel/tasks"
)

// TestHandler_TraceHeaders (O1): the create request's traceparent and
// tracestate are kept only as W3C Trace Context reads them: a malformed
// traceparent is dropped (the task is created, in no trace), an invalid
// tracestate too, and a long tracestate is cut to the 512 characters the
// specification asks to propagate, removing members over 128 characters
// first, then from the end: every delivery sends it as a header, which a
// receiver's proxy may refuse when it is large.
func TestHandler_TraceHeaders(t *testing.T) {
	t.Parallel()
	a := newAPI(t, tasks.NewMemoryStore(), apiOpts{noStart: true})
	const tid, sid = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	parent := "00-" + tid + "-" + sid + "-01"
	var short, long, many []string
	for i := range 4 {
		short = append(short, fmt.Sprintf("s%d=%s", i, strings.Repeat("v", 20)))
	}
	for i := range 8 {
		long = append(long, fmt.Sprintf("l%d=%s", i, strings.Repeat("v", 250)))
	}
	for i := range 20 {
		many = append(many, fmt.Sprintf("m%02d=%s", i, strings.Repeat("v", 96)))
	}
	// The short members, then the middle ones that fit in 512 with them.
	var kept []string
	n := len(strings.Join(short, ","))
	kept = append(kept, short...)
	for _, m := range many {
		if n+1+len(m) > 512 {
			break
		}
		kept, n = append(kept, m), n+1+len(m)
	}
	mixed := append(append(append([]string(nil), short[:2]...), long[0]), short[2:]...)
	mixed = append(append(mixed, long[1:]...), many...)
	for _, c := range []struct {
		name, parent, state   string
		wantParent, wantState string
	}{
		{"garbage", "abc", "a=b", "", ""},
		{"upper case", "00-" + strings.ToUpper(tid) + "-" + sid + "-01", "", "", ""},
		{"zero trace id", "00-" + strings.Repeat("0", 32) + "-" + sid + "-01", "", "", ""},
		{"version ff", "ff-" + tid + "-" + sid + "-01", "", "", ""},
		{"later version", "01-" + tid + "-" + sid + "-01-more", "", parent, ""},
		{"33 members", parent, strings.TrimSuffix(strings.Repeat("a=b,", 33), ","), parent, ""},
		{"invalid state", parent, "a=b\tc", parent, ""},
		{"short state", parent, strings.Join(short, ","), parent, strings.Join(short, ",")},
		{"long state", parent, strings.Join(mixed, ","), parent, strings.Join(kept, ",")},
	} {
		t.Run(c.name, func(t *testing.T) {
			created := a.createTask(`{"event_type":"x","data":null}`, header("Traceparent", c.parent), header("Tracestate", c.state))
			got, err := a.e.Get(t.Context(), created.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.TraceParent != c.wantParent || got.TraceState != c.wantState {
				t.Errorf("kept traceparent %q and tracestate (%d bytes) %.80q, want %q and (%d bytes) %.80q",
					got.TraceParent, len(got.TraceState), got.TraceState, c.wantParent, len(c.wantState), c.wantState)
			}
		})
	}
}
