package main

import (
	"cmp"
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
// endpoint's rate_limit; then one engine for the isolation of waiting
// tasks, the overhead of a limit on a drain and the fairness between apps.
// It runs only when named, and only the parts that -flowparts names.
func runFlow(ctx context.Context, c *config, t *target) ([]figure, error) {
	var figs []figure
	for _, p := range []struct {
		name string
		run  func(context.Context, *config, *target) ([]figure, error)
	}{{"rate", flowRate}, {"endpoint", flowEndpoint}, {"concurrency", flowConcurrency}, {"overhead", flowOverhead},
		{"isolation", flowIsolation}, {"fairness", flowFairness}} {
		if !slices.Contains(c.flowParts, p.name) {
			continue
		}
		fs, err := p.run(ctx, c, t)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.name, err)
		}
		figs = append(figs, fs...)
	}
	return figs, nil
}

// flowParts are the parts of W11, in the order they run.
var flowParts = []string{"rate", "endpoint", "concurrency", "overhead", "isolation", "fairness"}

// shared runs f on n stores of t sharing one database, as n processes
// would open it (on the memory store, one store n times), and closes them.
func shared(ctx context.Context, t *target, n int, f func([]tasks.Store) ([]figure, error)) ([]figure, error) {
	ss, closeAll, err := t.share(ctx, n)
	if err != nil {
		return nil, fmt.Errorf("open stores: %w", err)
	}
	figs, err := f(ss)
	return figs, joinClose(err, closeAll)
}

// flowRate: rate 20/s on one key across three engines, the starts of each
// whole second after the first.
func flowRate(ctx context.Context, c *config, t *target) ([]figure, error) {
	return shared(ctx, t, 3, func(ss []tasks.Store) ([]figure, error) {
		ws, err := bench.FlowRate(ctx, ss, 20, c.flowRate)
		if err != nil {
			return nil, err
		}
		return []figure{
			{name: "rate 20/s min window", unit: "starts/s", value: float64(slices.Min(ws))},
			{name: "rate 20/s max window", unit: "starts/s", value: float64(slices.Max(ws))}}, nil
	})
}

// flowEndpoint: an endpoint's rate_limit of 20/s across three engines, the
// deliveries its receiver gets in each whole second after the first.
func flowEndpoint(ctx context.Context, c *config, t *target) ([]figure, error) {
	return shared(ctx, t, 3, func(ss []tasks.Store) ([]figure, error) {
		ws, err := bench.EndpointRate(ctx, ss, 20, c.flowRate)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(os.Stderr, "W11 endpoint rate 20/s on %s: deliveries in each 1-s window after the first: %v\n", t.name, ws)
		return []figure{
			{name: "endpoint rate 20/s min window", unit: "deliveries/s", value: float64(slices.Min(ws))},
			{name: "endpoint rate 20/s max window", unit: "deliveries/s", value: float64(slices.Max(ws))}}, nil
	})
}

// flowConcurrency: concurrency 3 across three engines, tasks of 200 ms.
func flowConcurrency(ctx context.Context, c *config, t *target) ([]figure, error) {
	return shared(ctx, t, 3, func(ss []tasks.Store) ([]figure, error) {
		r, err := bench.FlowConcurrency(ctx, ss, 3, 75, 200*time.Millisecond)
		if err != nil {
			return nil, err
		}
		return []figure{
			{name: "concurrency 3 most running", unit: "tasks", value: float64(r.Most)},
			{name: "concurrency 3 throughput", unit: "tasks/s", value: r.Rate.PerSecond()}}, nil
	})
}

// flowOverhead: W3 with a concurrency limit above the workers, and without,
// -flowdrains times each, alternating, each drain on a fresh store; the
// median drain of each kind counts.
func flowOverhead(ctx context.Context, c *config, t *target) ([]figure, error) {
	var plain, limited []bench.Rate
	for range c.flowDrains {
		p, err := withStore(ctx, t, func(s tasks.Store) (bench.Rate, error) { return bench.Drain(ctx, c.drain, s) })
		if err != nil {
			return nil, err
		}
		l, err := withStore(ctx, t, func(s tasks.Store) (bench.Rate, error) {
			return bench.DrainLimited(ctx, c.drain, 1000, s)
		})
		if err != nil {
			return nil, err
		}
		plain, limited = append(plain, p), append(limited, l)
	}
	return ratioFigures("drain, limit above workers", "tasks/s", medianRate(plain), medianRate(limited)), nil
}

// medianRate returns the rate of median speed of rs.
func medianRate(rs []bench.Rate) bench.Rate {
	rs = slices.Clone(rs)
	slices.SortFunc(rs, func(a, b bench.Rate) int { return cmp.Compare(a.PerSecond(), b.PerSecond()) })
	return rs[len(rs)/2]
}

// flowIsolation: a drain while many tasks wait on a 1/s key, and the idle
// engine's CPU with them waiting; each store drains -flowdrains times, and
// its median drain counts.
func flowIsolation(ctx context.Context, c *config, t *target) ([]figure, error) {
	alone, err := withStore(ctx, t, func(s tasks.Store) (bench.FlowIsolationResult, error) {
		return bench.FlowIsolation(ctx, s, c.drain, 0, c.flowDrains, time.Second)
	})
	if err != nil {
		return nil, err
	}
	waiting, err := withStore(ctx, t, func(s tasks.Store) (bench.FlowIsolationResult, error) {
		return bench.FlowIsolation(ctx, s, c.drain, c.flowWaiting, c.flowDrains, 10*time.Second)
	})
	if err != nil {
		return nil, err
	}
	cpuRatio := 0.0 // the CPU time of the drain alone ÷ with the tasks waiting
	if waiting.DrainCPU > 0 {
		cpuRatio = alone.DrainCPU.Seconds() / waiting.DrainCPU.Seconds()
	}
	return append(ratioFigures(fmt.Sprintf("drain, %d waiting", c.flowWaiting), "tasks/s", alone.Drain, waiting.Drain),
		figure{name: fmt.Sprintf("drain, %d waiting, CPU ratio", c.flowWaiting), unit: "CPU alone ÷ CPU", value: cpuRatio},
		figure{name: "idle CPU, tasks waiting", unit: "% of a core", value: 100 * waiting.IdleCPU},
		figure{name: "setting tasks waiting", unit: "tasks/s", value: waiting.Park.PerSecond()}), nil
}

// flowFairness: app A's backlog, with app B creating 20 tasks a second
// meanwhile, and without.
func flowFairness(ctx context.Context, c *config, t *target) ([]figure, error) {
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
	return append(ratioFigures("fairness A drain", "tasks/s", soloA.Drain, withB.Drain),
		figure{name: "fairness B wait p50", unit: "ms", value: ms(withB.Wait.P50)},
		figure{name: "fairness B wait p99", unit: "ms", value: ms(withB.Wait.P99)},
		figure{name: "fairness B enqueue to claim p50", unit: "ms", value: ms(withB.Claim.P50)},
		figure{name: "fairness B enqueue to claim p99", unit: "ms", value: ms(withB.Claim.P99)},
		figure{name: "fairness B claim to start p50", unit: "ms", value: ms(withB.Queue.P50)},
		figure{name: "fairness B claim to start p99", unit: "ms", value: ms(withB.Queue.P99)}), nil
}

// joinClose returns err joined with the error of closing.
func joinClose(err error, closeAll func() error) error {
	if cerr := closeAll(); cerr != nil && err == nil {
		return fmt.Errorf("close stores: %w", cerr)
	}
	return err
}
