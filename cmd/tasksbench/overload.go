package main

import (
	"context"
	"fmt"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/internal/bench"
)

// W13, backpressure (issue 18), on the MemoryStore: W4 with producers that
// do not hold back, for -steady, first with no Config.MaxWaiting, then with
// -maxwaiting, each on a fresh store. It runs only when named.
func runOverload(ctx context.Context, c *config, t *target) ([]figure, error) {
	var figs []figure
	for _, bound := range []int{0, c.maxWaiting} {
		r, err := withStore(ctx, t, func(s tasks.Store) (bench.OverloadResult, error) {
			return bench.Overload(ctx, s, c.steady, bound)
		})
		if err != nil {
			return nil, err
		}
		pre := "no bound "
		if bound > 0 {
			pre = fmt.Sprintf("MaxWaiting %d ", bound)
		}
		figs = append(figs,
			figure{name: pre + "completed", unit: "tasks/s", value: r.Completed.PerSecond()},
			figure{name: pre + "enqueued", unit: "tasks/s", value: r.Enqueued.PerSecond()},
			figure{name: pre + "refused", unit: "calls/s", value: r.Refused.PerSecond()},
			figure{name: pre + "wait p50", unit: "ms", value: ms(r.Wait.P50)},
			figure{name: pre + "wait p99", unit: "ms", value: ms(r.Wait.P99)})
	}
	return figs, nil
}
