package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/internal/bench"
)

// W11, flow control (issue 16), on each store: three engines sharing one
// database (three stores on it, as three processes would open it; on the
// memory store, one) for the rate and the concurrency limits, and for an
// endpoint's rate_limit; then one
// engine for the isolation of waiting tasks, the overhead of a limit on a
// drain and the fairness between apps. It runs only when named.
func runFlow(ctx context.Context, c *config, t *target) ([]figure, error) {
	var figs []figure
	shared := func(f func([]tasks.Store) error) error {
		ss, closeAll, err := t.share(ctx, 3)
		if err != nil {
			return fmt.Errorf("open stores: %w", err)
		}
		return joinClose(f(ss), closeAll)
	}
	// Rate 20/s on one key across three engines: the starts of each
	// whole second after the first.
	if err := shared(func(ss []tasks.Store) error {
		ws, err := bench.FlowRate(ctx, ss, 20, c.flowRate)
		if err != nil {
			return err
		}
		figs = append(figs,
			figure{name: "rate 20/s min window", unit: "starts/s", value: float64(slices.Min(ws))},
			figure{name: "rate 20/s max window", unit: "starts/s", value: float64(slices.Max(ws))})
		return nil
	}); err != nil {
		return nil, err
	}
	// An endpoint's rate_limit of 20/s across three engines: the
	// deliveries its receiver gets in each whole second after the first.
	if err := shared(func(ss []tasks.Store) error {
		ws, err := bench.EndpointRate(ctx, ss, 20, c.flowRate)
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "W11 endpoint rate 20/s on %s: deliveries in each 1-s window after the first: %v\n", t.name, ws)
		figs = append(figs,
			figure{name: "endpoint rate 20/s min window", unit: "deliveries/s", value: float64(slices.Min(ws))},
			figure{name: "endpoint rate 20/s max window", unit: "deliveries/s", value: float64(slices.Max(ws))})
		return nil
	}); err != nil {
		return nil, err
	}
	// Concurrency 3 across three engines, tasks of 200 ms.
	if err := shared(func(ss []tasks.Store) error {
		r, err := bench.FlowConcurrency(ctx, ss, 3, 75, 200*time.Millisecond)
		if err != nil {
			return err
		}
		figs = append(figs,
			figure{name: "concurrency 3 most running", unit: "tasks", value: float64(r.Most)},
			figure{name: "concurrency 3 throughput", unit: "tasks/s", value: r.Rate.PerSecond()})
		return nil
	}); err != nil {
		return nil, err
	}
	// Overhead: W3 with a concurrency limit above the workers, and without.
	plain, err := withStore(ctx, t, func(s tasks.Store) (bench.Rate, error) { return bench.Drain(ctx, c.drain, s) })
	if err != nil {
		return nil, err
	}
	limited, err := withStore(ctx, t, func(s tasks.Store) (bench.Rate, error) {
		return bench.DrainLimited(ctx, c.drain, 1000, s)
	})
	if err != nil {
		return nil, err
	}
	figs = append(figs, ratioFigures("drain, limit above workers", "tasks/s", plain, limited)...)
	// Isolation: a drain while many tasks wait on a 1/s key, and the idle
	// engine's CPU with them waiting.
	alone, err := withStore(ctx, t, func(s tasks.Store) (bench.FlowIsolationResult, error) {
		return bench.FlowIsolation(ctx, s, c.drain, 0, time.Second)
	})
	if err != nil {
		return nil, err
	}
	waiting, err := withStore(ctx, t, func(s tasks.Store) (bench.FlowIsolationResult, error) {
		return bench.FlowIsolation(ctx, s, c.drain, c.flowWaiting, 10*time.Second)
	})
	if err != nil {
		return nil, err
	}
	figs = append(figs, ratioFigures(fmt.Sprintf("drain, %d waiting", c.flowWaiting), "tasks/s", alone.Drain, waiting.Drain)...)
	figs = append(figs,
		figure{name: "idle CPU, tasks waiting", unit: "% of a core", value: 100 * waiting.IdleCPU},
		figure{name: "setting tasks waiting", unit: "tasks/s", value: waiting.Park.PerSecond()})
	// Fairness: app A's backlog, with app B creating 20 tasks a second
	// meanwhile, and without.
	soloA, err := withStore(ctx, t, func(s tasks.Store) (bench.FairnessResult, error) {
		return bench.Fairness(ctx, s, c.fairBacklog, 0)
	})
	if err != nil {
		return nil, err
	}
	withB, err := withStore(ctx, t, func(s tasks.Store) (bench.FairnessResult, error) {
		return bench.Fairness(ctx, s, c.fairBacklog, 20)
	})
	if err != nil {
		return nil, err
	}
	figs = append(figs, ratioFigures("fairness A drain", "tasks/s", soloA.Drain, withB.Drain)...)
	figs = append(figs,
		figure{name: "fairness B wait p50", unit: "ms", value: ms(withB.Wait.P50)},
		figure{name: "fairness B wait p99", unit: "ms", value: ms(withB.Wait.P99)})
	return figs, nil
}

// joinClose returns err joined with the error of closing.
func joinClose(err error, closeAll func() error) error {
	if cerr := closeAll(); cerr != nil && err == nil {
		return fmt.Errorf("close stores: %w", cerr)
	}
	return err
}
