package tasktest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
)

// The store's side of HostedHooks' messages API: an app's delivery
// attempts, newest first (ListDeliveryAttempts), and endpoints' versions.

// deliveries returns ListDeliveryAttempts(appID, offset, limit).
func (h *harness) deliveries(appID string, offset, limit int) []tasks.Attempt {
	h.t.Helper()
	got, err := h.s.ListDeliveryAttempts(h.ctx, appID, offset, limit)
	if err != nil {
		h.t.Fatalf("ListDeliveryAttempts(%q, %d, %d): got error %v, want nil", appID, offset, limit, err)
	}
	return got
}

func (su suite) testMessages(t *testing.T) {
	su.run(t, "DeliveriesNewestFirst", func(h *harness) {
		now := h.now()
		a := h.running(time.Hour)
		b := h.running(time.Hour)
		other := h.running(time.Hour, app("app_2"))
		// a: two attempts; b: one delivery and a func's attempt; the
		// other app's delivery is between them in time.
		a1 := []tasks.Attempt{
			attemptOf(a, "ep_2", now, 500, "no", "HTTP 500"),
			attemptOf(a, "ep_1", now, 200, "ok", ""), // same start: ordered by endpoint, descending
		}
		h.finishWith(a, tasks.StateRetrying, "", a1...)
		h.finishWith(other, tasks.StateCompleted, "ep_9", attemptOf(other, "ep_9", now.Add(time.Second), 200, "", ""))
		bs := []tasks.Attempt{
			attemptOf(b, "ep_1", now.Add(2*time.Second), 204, "", ""),
			attemptOf(b, "", now.Add(3*time.Second), 0, "", "a func failed"),
		}
		h.finishWith(b, tasks.StateCompleted, "ep_1", bs...)
		a = h.claimOne(a.ID, time.Hour)
		a2 := attemptOf(a, "ep_2", now.Add(4*time.Second), 200, "", "")
		h.finishWith(a, tasks.StateCompleted, "ep_2", a2)

		want := []tasks.Attempt{a2, bs[0], a1[0], a1[1]}
		h.wantAttempts("ListDeliveryAttempts(app_1, 0, 100)", h.deliveries("app_1", 0, 100), want)
		for offset := range len(want) + 1 {
			for limit := 1; limit <= len(want)+1; limit++ {
				end := min(len(want), offset+limit)
				h.wantAttempts(fmt.Sprintf("ListDeliveryAttempts(app_1, %d, %d)", offset, limit),
					h.deliveries("app_1", offset, limit), want[offset:end])
			}
		}
		h.wantAttempts("ListDeliveryAttempts(app_2, 0, 10)", h.deliveries("app_2", 0, 10),
			[]tasks.Attempt{attemptOf(other, "ep_9", now.Add(time.Second), 200, "", "")})
		h.wantAttempts("ListDeliveryAttempts(app_none, 0, 10)", h.deliveries("app_none", 0, 10), nil)
	})

	su.run(t, "DeliveriesOfDeletedTasksAreGone", func(h *harness) {
		now := h.now()
		kept := h.running(time.Hour)
		gone := h.running(time.Hour)
		h.finishWith(kept, tasks.StateCompleted, "ep_1", attemptOf(kept, "ep_1", now, 200, "", ""))
		h.finishWith(gone, tasks.StateFailed, "ep_1", attemptOf(gone, "ep_1", now.Add(time.Second), 500, "", "HTTP 500"))
		h.deleteTask(gone.ID)
		h.wantAttempts("ListDeliveryAttempts after Delete", h.deliveries("app_1", 0, 10),
			[]tasks.Attempt{attemptOf(kept, "ep_1", now, 200, "", "")})
	})

	su.run(t, "BadPagingIsRefused", func(h *harness) {
		for _, tc := range []struct {
			offset, limit int
			field         string
		}{
			{-1, 10, "offset"},
			{0, 0, "limit"},
			{0, -1, "limit"},
			{0, tasks.MaxListLimit + 1, "limit"},
		} {
			_, err := h.s.ListDeliveryAttempts(h.ctx, "app_1", tc.offset, tc.limit)
			var ve *tasks.ValidationError
			if !errors.As(err, &ve) || ve.Field != tc.field {
				h.t.Errorf("ListDeliveryAttempts(app_1, %d, %d): got error %v, want a *ValidationError of %s", tc.offset, tc.limit, err, tc.field)
			}
		}
		if got := h.deliveries("app_1", 1<<30, tasks.MaxListLimit); len(got) != 0 {
			h.t.Errorf("ListDeliveryAttempts far past the end: got %d attempts, want none", len(got))
		}
	})

	su.run(t, "EndpointVersion", func(h *harness) {
		ep := h.insertEndpoint(func(ep *tasks.Endpoint) { ep.Version = "2024-01-01 — ü" })
		if got := h.getEndpoint(ep.ID); got.Version != "2024-01-01 — ü" {
			h.t.Errorf("GetEndpoint after InsertEndpoint: got Version %q, want %q", got.Version, "2024-01-01 — ü")
		}
		none := h.insertEndpoint()
		if got := h.getEndpoint(none.ID); got.Version != "" {
			h.t.Errorf("GetEndpoint of an endpoint without a version: got Version %q, want \"\"", got.Version)
		}
		ep.Version = "2.0"
		h.updateEndpoint(ep)
		if got := h.getEndpoint(ep.ID); got.Version != "2.0" {
			h.t.Errorf("GetEndpoint after UpdateEndpoint: got Version %q, want \"2.0\"", got.Version)
		}
		var versions []string
		for _, e := range h.listEndpoints("app_1") {
			versions = append(versions, e.Version)
		}
		if want := []string{"2.0", ""}; !slices.Equal(versions, want) {
			h.t.Errorf("ListEndpoints: got versions %q, want %q", versions, want)
		}
	})
}
