package tasktest

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
)

// Flow control with many limits, most of them idle: a claim reads only the
// limits of keys it meets (due tasks) or that have waiting tasks, so each
// key must still obey its own limit, and a key's waiting tasks must start
// when it has capacity again though no due task of it is met.

func (su suite) testFlowMany(t *testing.T) {
	// manyLimits sets 150 limits on app_1's keys idle-000…idle-149, in
	// turn paused, a concurrency of 1, and a tiny rate (one token, then
	// none for a thousand seconds).
	manyLimits := func(h *harness) {
		for i := range 150 {
			l := tasks.Limit{Key: fmt.Sprintf("idle-%03d", i)}
			switch i % 3 {
			case 0:
				l.Paused = true
			case 1:
				l.Concurrency = 1
			case 2:
				l.Rate, l.Burst = 0.001, 1
			}
			h.setLimit(l)
		}
	}

	su.run(t, "ManyLimits/EachKeyObeysItsOwn", func(h *harness) {
		manyLimits(h)
		var first, second []*tasks.Task
		for _, k := range []string{"idle-090", "idle-091", "idle-092", "free"} {
			first = append(first, h.insert(flow(k)))
			second = append(second, h.insert(flow(k)))
		}
		got := h.claim(100, time.Hour)
		// Paused idle-090 starts nothing; idle-091 (concurrency 1) and
		// idle-092 (one token) start one each; free starts both.
		want := []string{first[1].ID, first[2].ID, first[3].ID, second[3].ID}
		if !sameIDs(ids(got), want) {
			h.t.Fatalf("Claim: got %v, want %v", ids(got), want)
		}
		for _, w := range []*tasks.Task{first[0], second[0], second[1], second[2]} {
			h.wantWaiting(w.ID, 0)
		}
		h.claimNone()
		// idle-091's task ends: its waiting task starts, though no task
		// of its key is due any more.
		for _, tk := range got {
			if tk.ID == first[1].ID {
				h.finishOne(tk, tasks.StateCompleted, 0, "")
			}
		}
		h.claimOne(second[1].ID, time.Hour)
		h.claimNone()
		if l := h.getLimit("idle-090"); l.Waiting != 2 || l.Running != 0 {
			h.t.Errorf("GetLimit(idle-090): got %d waiting, %d running; want 2, 0", l.Waiting, l.Running)
		}
	})

	su.run(t, "ManyLimits/WaitingDrainsThenNewTasksStart", func(h *harness) {
		manyLimits(h)
		h.setLimit(tasks.Limit{Key: "k", Concurrency: 1})
		var all []*tasks.Task
		for range 4 {
			all = append(all, h.insert(flow("k")))
		}
		var order []string
		for range all {
			got := h.claim(100, time.Hour)
			if len(got) != 1 {
				h.t.Fatalf("Claim: got %v, want one task of k", ids(got))
			}
			order = append(order, got[0].ID)
			h.claimNone()
			h.finishOne(got[0], tasks.StateCompleted, 0, "")
		}
		if !slices.Equal(order, ids(all)) {
			h.t.Errorf("claims: got %v, want %v, in due order", order, ids(all))
		}
		h.claimNone()
		late := h.insert(flow("k"))
		h.claimOne(late.ID, time.Hour)
	})

	su.run(t, "ManyLimits/ConcurrentClaims", func(h *harness) {
		manyLimits(h)
		h.setLimit(tasks.Limit{Key: "k", Concurrency: 3})
		for range 20 {
			h.insert(flow("k"))
			h.insert(flow("idle-001")) // concurrency 1
			h.insert(flow("free"))
		}
		var (
			wg    sync.WaitGroup
			mu    sync.Mutex
			byKey = map[string]int{}
		)
		for range 8 {
			wg.Go(func() {
				got, err := h.s.Claim(h.ctx, 6, time.Hour)
				if err != nil {
					h.t.Errorf("Claim: %v", err)
				}
				mu.Lock()
				for _, tk := range got {
					byKey[tk.FlowKey]++
				}
				mu.Unlock()
			})
		}
		h.wait(&wg)
		if byKey["k"] != 3 || byKey["idle-001"] != 1 {
			h.t.Errorf("concurrent claims: got %d of k and %d of idle-001 started, want 3 and 1", byKey["k"], byKey["idle-001"])
		}
	})
}
