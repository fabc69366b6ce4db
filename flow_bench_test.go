package tasks_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/internal/bench"
)

// BenchmarkClaim_IdleLimits is the cost of one claim of up to 16 tasks,
// with the Finish of what it claimed, while limits exist: one on the
// claimed tasks' key (a concurrency of 1,000, above what runs), and idle
// ones on keys that have no due or waiting task (half rate limits, half
// concurrency limits). A claim should cost the same however many limits
// are idle. b.N claims; the tasks are enqueued first, not timed.
func BenchmarkClaim_IdleLimits(b *testing.B) {
	for _, s := range testStores {
		if s.name == "memory" {
			continue
		}
		for _, idle := range []int{0, 100, 1000} {
			b.Run(fmt.Sprintf("%s/idle=%d", s.name, idle), func(b *testing.B) {
				benchClaimIdleLimits(b, s.open(b), idle)
			})
		}
	}
}

func benchClaimIdleLimits(b *testing.B, store tasks.Store, idle int) {
	ctx := b.Context()
	e, err := tasks.NewEngine(store, nil)
	if err != nil {
		b.Fatal(err)
	}
	set := func(l tasks.Limit) {
		if _, err := e.SetLimit(ctx, l); err != nil {
			b.Fatal(err)
		}
	}
	set(tasks.Limit{AppID: "app_1", Key: "x", Concurrency: 1000})
	for i := range idle {
		l := tasks.Limit{AppID: fmt.Sprintf("app_%d", 2+i%10), Key: fmt.Sprintf("idle-%04d", i), Concurrency: 5}
		if i%2 == 1 {
			l.Concurrency, l.Rate = 0, 10
		}
		set(l)
	}
	const batch = 16
	n := b.N * batch
	for done := 0; done < n; {
		nts := make([]tasks.NewTask, min(n-done, 5000))
		for i := range nts {
			nts[i] = tasks.NewTask{AppID: "app_1", EventType: "x"}
		}
		if _, err := e.EnqueueMany(ctx, nts); err != nil {
			b.Fatal(err)
		}
		done += len(nts)
	}
	b.ResetTimer()
	for range b.N {
		ts, err := store.Claim(ctx, batch, time.Minute)
		if err != nil {
			b.Fatal(err)
		}
		if len(ts) == 0 {
			b.Fatal("claimed nothing")
		}
		outs := make([]tasks.Outcome, len(ts))
		for i, t := range ts {
			outs[i] = tasks.Outcome{ID: t.ID, Attempt: t.Attempts, State: tasks.StateCompleted}
		}
		if _, err := store.Finish(ctx, outs); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFlowOverhead is W11's overhead figure, steadier: W3 of 10,000
// tasks without a limit and with a concurrency limit of 1,000 (above the
// 16 workers) on their key, alternating, each on a fresh store, for five
// rounds; it reports the median of the rounds' ratios (limited ÷ plain),
// whose target is ≥ 0.9. Run it with -benchtime=1x.
func BenchmarkFlowOverhead(b *testing.B) {
	for _, s := range testStores {
		if s.name == "memory" {
			continue
		}
		b.Run(s.name, func(b *testing.B) {
			var ratios []float64
			for b.Loop() {
				for range 5 {
					plain, err := bench.Drain(b.Context(), 10000, s.open(b))
					if err != nil {
						b.Fatal(err)
					}
					limited, err := bench.DrainLimited(b.Context(), 10000, 1000, s.open(b))
					if err != nil {
						b.Fatal(err)
					}
					ratios = append(ratios, limited.PerSecond()/plain.PerSecond())
				}
			}
			slices.Sort(ratios)
			b.ReportMetric(ratios[len(ratios)/2], "limited/plain")
			b.ReportMetric(ratios[0], "min")
			b.ReportMetric(ratios[len(ratios)-1], "max")
		})
	}
}
