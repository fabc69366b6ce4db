package main

import (
	"context"
	"database/sql"
	"time"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/internal/bench"
)

// figure is one measured figure of one run of a workload.
type figure struct {
	name  string // after the workload's name in the table; "" for its main figure
	unit  string
	value float64
	floor float64 // the floor's figure in the same run; 0 where none applies
}

// workload is one of the measurements, as package bench describes them.
type workload struct {
	id, name string
	// stores lists the stores it runs on; nil means all.
	stores []string
	run    func(ctx context.Context, c *config, t *target) ([]figure, error)
}

// ms returns d in milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// rateFigure runs the engine's workload on a fresh store, then, where t
// has floors, floor on a fresh database.
func rateFigure(ctx context.Context, t *target, unit string,
	engine func(tasks.Store) (bench.Rate, error),
	floor func(*sql.DB, tasks.Dialect) (bench.Rate, error),
) ([]figure, error) {
	r, err := withStore(ctx, t, engine)
	if err != nil {
		return nil, err
	}
	f := figure{unit: unit, value: r.PerSecond()}
	if floor != nil && t.openDB != nil {
		fr, err := withDB(ctx, t, floor)
		if err != nil {
			return nil, err
		}
		f.floor = fr.PerSecond()
	}
	return []figure{f}, nil
}

// workloads are the measurements in the order they run.
var workloads = []workload{
	{id: "W1", name: "enqueue", run: func(ctx context.Context, c *config, t *target) ([]figure, error) {
		return rateFigure(ctx, t, "tasks/s",
			func(s tasks.Store) (bench.Rate, error) { return bench.Enqueue(ctx, s, c.enqueue) },
			func(db *sql.DB, d tasks.Dialect) (bench.Rate, error) {
				return bench.InsertFloor(ctx, db, d, c.enqueue)
			})
	}},
	{id: "W2", name: "batch enqueue", run: func(ctx context.Context, c *config, t *target) ([]figure, error) {
		return rateFigure(ctx, t, "tasks/s",
			func(s tasks.Store) (bench.Rate, error) { return bench.EnqueueBatches(ctx, s, c.batch) },
			func(db *sql.DB, d tasks.Dialect) (bench.Rate, error) {
				return bench.BatchInsertFloor(ctx, db, d, c.batch)
			})
	}},
	{id: "W3", name: "drain", run: func(ctx context.Context, c *config, t *target) ([]figure, error) {
		floor := func(db *sql.DB, d tasks.Dialect) (bench.Rate, error) { return bench.DrainFloor(ctx, db, d, c.drain) }
		if !c.otel {
			return rateFigure(ctx, t, "tasks/s", func(s tasks.Store) (bench.Rate, error) { return bench.Drain(ctx, c.drain, s) }, floor)
		}
		// With -otel, the CPU time this process used per task as well
		// (enqueueing the tasks too, not the database server's): on a
		// machine that others share, the rate varies with their load from
		// run to run, the CPU time much less. The run with the
		// instrumentation on (Telemetry set) has the one off as its
		// floor, not the raw SQL's.
		var cpu time.Duration
		if bench.Telemetry.MeterProvider != nil {
			floor = nil
		}
		figs, err := rateFigure(ctx, t, "tasks/s", func(s tasks.Store) (bench.Rate, error) {
			before := cpuTime()
			r, err := bench.Drain(ctx, c.drain, s)
			cpu = cpuTime() - before
			return r, err
		}, floor)
		if err != nil {
			return nil, err
		}
		return append(figs, figure{name: "cpu", unit: "µs/task", value: float64(cpu) / float64(time.Microsecond) / float64(c.drain)}), nil
	}},
	{id: "W4", name: "steady", run: func(ctx context.Context, c *config, t *target) ([]figure, error) {
		r, err := withStore(ctx, t, func(s tasks.Store) (bench.SteadyResult, error) {
			return bench.Steady(ctx, s, c.steady)
		})
		if err != nil {
			return nil, err
		}
		return []figure{
			{name: "completed", unit: "tasks/s", value: r.Completed.PerSecond()},
			{name: "enqueued", unit: "tasks/s", value: r.Enqueued.PerSecond()},
			{name: "wait p50", unit: "ms", value: ms(r.Wait.P50)},
			{name: "wait p99", unit: "ms", value: ms(r.Wait.P99)},
		}, nil
	}},
	{id: "W5", name: "lateness", run: func(ctx context.Context, c *config, t *target) ([]figure, error) {
		r, err := withStore(ctx, t, func(s tasks.Store) (bench.LatenessResult, error) {
			return bench.Lateness(ctx, s, s, c.lateness, c.latenessFrom, c.latenessTo)
		})
		if err != nil {
			return nil, err
		}
		return []figure{
			{name: "p50", unit: "ms", value: ms(r.Late.P50)},
			{name: "p99", unit: "ms", value: ms(r.Late.P99)},
			{name: "max", unit: "ms", value: ms(r.Late.Max)},
			{name: "early", unit: "tasks", value: float64(r.Early)},
		}, nil
	}},
	{id: "W6", name: "webhooks", run: func(ctx context.Context, c *config, t *target) ([]figure, error) {
		r, err := withStore(ctx, t, func(s tasks.Store) (bench.WebhookResult, error) {
			return bench.Webhooks(ctx, s, c.webhooks)
		})
		if err != nil {
			return nil, err
		}
		return []figure{{unit: "deliveries/s", value: r.Deliveries.PerSecond(), floor: r.Floor.PerSecond()}}, nil
	}},
	{id: "W7", name: "HTTP create", run: func(ctx context.Context, c *config, t *target) ([]figure, error) {
		return rateFigure(ctx, t, "requests/s",
			func(s tasks.Store) (bench.Rate, error) { return bench.HTTPCreate(ctx, s, c.http.d, c.http.n) },
			func(db *sql.DB, d tasks.Dialect) (bench.Rate, error) {
				return bench.InsertFloor(ctx, db, d, c.enqueue)
			})
	}},
	{id: "W8", name: "scale-out", stores: []string{"postgres"}, run: runScaleout},
	{id: "W9", name: "history", stores: historyStores, run: runHistory},
	{id: "W10", name: "retention steady", stores: historyStores, run: runRetentionSteady},
	{id: "W11", name: "flow", run: runFlow},
	{id: "W12", name: "tasksd", stores: []string{"sqlite"}, run: runTasksd},
	{id: "W13", name: "backpressure", stores: []string{"memory"}, run: runOverload},
	{id: "M1", name: "memory store", stores: []string{"memory"}, run: func(ctx context.Context, c *config, t *target) ([]figure, error) {
		h, err := bench.MemoryHeap(ctx, c.memTasks)
		if err != nil {
			return nil, err
		}
		return heapFigures(h), nil
	}},
	{id: "M2", name: "engine", stores: []string{"sqlite"}, run: func(ctx context.Context, c *config, t *target) ([]figure, error) {
		h, err := withStore(ctx, t, func(s tasks.Store) (bench.Heap, error) {
			return bench.EngineHeap(ctx, s, c.memTasks)
		})
		if err != nil {
			return nil, err
		}
		return heapFigures(h), nil
	}},
}

func heapFigures(h bench.Heap) []figure {
	return []figure{
		{name: "heap", unit: "MB", value: h.MB()},
		{name: "per task", unit: "B/task", value: h.PerTask()},
	}
}
