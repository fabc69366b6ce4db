package tasktest

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
)

// PauseLimit: pausing and resuming a key changes its Paused alone.

func (su suite) testPauseLimit(t *testing.T) {
	su.run(t, "NotFound", func(h *harness) {
		h.setLimit(tasks.Limit{AppID: "app_2", Key: "k", Concurrency: 1})
		if _, err := h.s.PauseLimit(h.ctx, "app_1", "k", true); !errors.Is(err, tasks.ErrNotFound) {
			h.t.Errorf("PauseLimit of a key without a limit: got %v, want ErrNotFound", err)
		}
		if got, _ := h.s.GetLimit(h.ctx, "app_2", "k"); got == nil || got.Paused {
			h.t.Errorf("app_2's limit: got %+v, want it not paused", got)
		}
	})

	su.run(t, "KeepsTheRestOfTheLimit", func(h *harness) {
		before := h.setLimit(tasks.Limit{Key: "k", Rate: 2.5, Burst: 3, Concurrency: 4})
		got, err := h.s.PauseLimit(h.ctx, "app_1", "k", true)
		if err != nil {
			h.t.Fatal(err)
		}
		if !got.Paused || got.Rate != 2.5 || got.Burst != 3 || got.Concurrency != 4 || got.UpdatedAt.Before(before.UpdatedAt) {
			h.t.Errorf("PauseLimit: got %+v, want paused, rate 2.5, burst 3, concurrency 4, updated", got)
		}
		// A limit set meanwhile (another engine, the HTTP API) stays.
		h.setLimit(tasks.Limit{Key: "k", Rate: 7, Burst: 7, Paused: true})
		if _, err := h.s.PauseLimit(h.ctx, "app_1", "k", false); err != nil {
			h.t.Fatal(err)
		}
		if got := h.getLimit("k"); got.Paused || got.Rate != 7 || got.Burst != 7 || got.Concurrency != 0 {
			h.t.Errorf("after a SetLimit, then a resume: got %+v, want rate 7, burst 7, no concurrency, not paused", got)
		}
	})

	su.run(t, "WaitingTasks", func(h *harness) {
		h.setLimit(tasks.Limit{Key: "k", Concurrency: 1})
		first := h.insert(flow("k"))
		second := h.insert(flow("k"))
		got := h.claim(10, time.Hour) // starts first, parks second
		if len(got) != 1 || got[0].ID != first.ID {
			h.t.Fatalf("Claim: got %v, want only %s", ids(got), first.ID)
		}
		h.wantWaiting(second.ID, 0)
		if _, err := h.s.PauseLimit(h.ctx, "app_1", "k", true); err != nil {
			h.t.Fatal(err)
		}
		if got := h.get(second.ID).WaitReason; !strings.HasPrefix(got, "paused") {
			h.t.Errorf("waiting task's reason once paused: got %q, want paused", got)
		}
		if _, err := h.s.PauseLimit(h.ctx, "app_1", "k", false); err != nil {
			h.t.Fatal(err)
		}
		if got := h.get(second.ID).WaitReason; !strings.HasPrefix(got, "concurrency") {
			h.t.Errorf("waiting task's reason once resumed: got %q, want concurrency", got)
		}
		h.finishOne(got[0], tasks.StateCompleted, 0, "")
		h.claimOne(second.ID, time.Hour)
	})

	su.run(t, "ResumeOfAPauseAloneReleases", func(h *harness) {
		h.setLimit(tasks.Limit{Key: "k", Paused: true})
		w := h.insert(flow("k"))
		h.claimNone()
		h.wantWaiting(w.ID, 0)
		if _, err := h.s.PauseLimit(h.ctx, "app_1", "k", false); err != nil {
			h.t.Fatal(err)
		}
		if got := h.get(w.ID).WaitReason; got != "" {
			h.t.Errorf("after a resume of a limit that limits nothing else: wait reason %q, want none", got)
		}
		h.claimOne(w.ID, time.Hour)
	})

	// SetLimits and pauses at once: each is atomic, so the limit ends as
	// the last SetLimit left it, but for Paused, and never mixes the
	// fields of two SetLimits.
	su.run(t, "ConcurrentWithSetLimit", func(h *harness) {
		h.setLimit(tasks.Limit{Key: "k", Rate: 1, Burst: 1, Concurrency: 1})
		var wg sync.WaitGroup
		for i := range 4 {
			wg.Go(func() {
				for j := range 5 {
					n := 10*i + j + 2
					l := tasks.Limit{AppID: "app_1", Key: "k", Rate: float64(n), Burst: n, Concurrency: n}
					if _, err := h.s.SetLimit(h.ctx, &l); err != nil {
						h.t.Error(err)
					}
					if _, err := h.s.PauseLimit(h.ctx, "app_1", "k", j%2 == 0); err != nil {
						h.t.Error(err)
					}
				}
			})
		}
		h.wait(&wg)
		got := h.getLimit("k")
		if got.Rate < 2 || got.Rate != float64(got.Burst) || got.Burst != got.Concurrency {
			h.t.Errorf("after concurrent SetLimits and pauses: got %+v, want the fields of one SetLimit", got)
		}
	})
}
