package tasktest

import (
	"testing"
	"time"

	"github.com/google/uuid"
)

// Revoked dashboard sessions.

func (h *harness) sessionRevoked(id string) bool {
	h.t.Helper()
	revoked, err := h.s.SessionRevoked(h.ctx, id)
	if err != nil {
		h.t.Fatalf("SessionRevoked(%s): got error %v, want nil", id, err)
	}
	return revoked
}

func (h *harness) revokeSession(id string, expires time.Time) {
	h.t.Helper()
	if err := h.s.RevokeSession(h.ctx, id, expires); err != nil {
		h.t.Fatalf("RevokeSession(%s): got error %v, want nil", id, err)
	}
}

func (su suite) testSessions(t *testing.T) {
	su.run(t, "RevokedUntilItExpires", func(h *harness) {
		id, other := uuid.NewString(), uuid.NewString()
		if h.sessionRevoked(id) {
			h.t.Errorf("SessionRevoked of a session never revoked: got true, want false")
		}
		h.revokeSession(id, h.now().Add(time.Hour))
		if !h.sessionRevoked(id) {
			h.t.Errorf("SessionRevoked after RevokeSession: got false, want true")
		}
		if h.sessionRevoked(other) {
			h.t.Errorf("SessionRevoked of another session: got true, want false")
		}
		// Again: no error, still revoked.
		h.revokeSession(id, h.now().Add(time.Hour))
		if !h.sessionRevoked(id) {
			h.t.Errorf("SessionRevoked after a second RevokeSession: got false, want true")
		}
	})

	su.run(t, "ExpiredRevocationsArePurged", func(h *harness) {
		// A revocation lasts as long as its session would have: after
		// that, the session is over anyway, and the store may forget it.
		soon, later := uuid.NewString(), uuid.NewString()
		expires := h.now().Add(50 * time.Millisecond)
		h.revokeSession(soon, expires)
		h.waitPast(expires)
		if h.sessionRevoked(soon) {
			h.t.Errorf("SessionRevoked after its expiry: got true, want false")
		}
		h.revokeSession(later, h.now().Add(time.Hour)) // purges soon's
		if h.sessionRevoked(soon) || !h.sessionRevoked(later) {
			h.t.Errorf("after a later RevokeSession: got revoked %v, %v; want false, true",
				h.sessionRevoked(soon), h.sessionRevoked(later))
		}
	})
}
