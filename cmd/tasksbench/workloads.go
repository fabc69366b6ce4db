package main

import (
	"context"
	"database/sql"
	"fmt"
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

// floorFunc is a floor run on the database of a fresh store.
type floorFunc func(*sql.DB, tasks.Dialect) (bench.Rate, error)

// ownTable labels the figure read against a floor on the library's own
// tables (triggers and indexes included), beside the main one, whose
// floor is the bare table's.
const ownTable = "vs own table"

// rateFigure runs the engine's workload on a fresh store, then, where t
// has floors, the bare floor and the own-table floor, each on a fresh
// database: the engine's figure against the bare floor, and again,
// labelled ownTable, against the own-table floor. A nil floor is skipped.
func rateFigure(ctx context.Context, t *target, unit string,
	engine func(tasks.Store) (bench.Rate, error), bare, own floorFunc,
) ([]figure, error) {
	r, err := withStore(ctx, t, engine)
	if err != nil {
		return nil, err
	}
	f := figure{unit: unit, value: r.PerSecond()}
	if t.openDB == nil || bare == nil && own == nil {
		return []figure{f}, nil
	}
	figs := []figure{f}
	if bare != nil {
		fr, err := withDB(ctx, t, bare)
		if err != nil {
			return nil, fmt.Errorf("bare: %w", err)
		}
		figs[0].floor = fr.PerSecond()
	}
	if own != nil {
		fr, err := withDB(ctx, t, own)
		if err != nil {
			return nil, fmt.Errorf("own table: %w", err)
		}
		f.floor, f.name = fr.PerSecond(), ownTable
		if bare == nil {
			f.name = ""
			return []figure{f}, nil
		}
		figs = append(figs, f)
	}
	return figs, nil
}

// workloads are the measurements in the order they run.
var workloads = []workload{
	{id: "W1", name: "enqueue", run: func(ctx context.Context, c *config, t *target) ([]figure, error) {
		return rateFigure(ctx, t, "tasks/s",
			func(s tasks.Store) (bench.Rate, error) { return bench.Enqueue(ctx, s, c.enqueue) },
			func(db *sql.DB, d tasks.Dialect) (bench.Rate, error) {
				return bench.BareInsertFloor(ctx, db, d, c.enqueue)
			},
			func(db *sql.DB, d tasks.Dialect) (bench.Rate, error) {
				return bench.InsertFloor(ctx, db, d, c.enqueue)
			})
	}},
	{id: "W2", name: "batch enqueue", run: func(ctx context.Context, c *config, t *target) ([]figure, error) {
		return rateFigure(ctx, t, "tasks/s",
			func(s tasks.Store) (bench.Rate, error) { return bench.EnqueueBatches(ctx, s, c.batch) },
			func(db *sql.DB, d tasks.Dialect) (bench.Rate, error) {
				return bench.BareBatchFloor(ctx, db, d, c.batch)
			},
			func(db *sql.DB, d tasks.Dialect) (bench.Rate, error) {
				return bench.BatchInsertFloor(ctx, db, d, c.batch)
			})
	}},
	{id: "W3", name: "drain", run: func(ctx context.Context, c *config, t *target) ([]figure, error) {
		var bare floorFunc = func(db *sql.DB, d tasks.Dialect) (bench.Rate, error) {
			return bench.BareDrainFloor(ctx, db, d, c.drain)
		}
		var floor floorFunc = func(db *sql.DB, d tasks.Dialect) (bench.Rate, error) { return bench.DrainFloor(ctx, db, d, c.drain) }
		if !c.otel {
			return rateFigure(ctx, t, "tasks/s", func(s tasks.Store) (bench.Rate, error) { return bench.Drain(ctx, c.drain, s) }, bare, floor)
		}
		// With -otel, the CPU time this process used per task as well
		// (enqueueing the tasks too, not the database server's): on a
		// machine that others share, the rate varies with their load from
		// run to run, the CPU time much less. The run with the
		// instrumentation on (Telemetry set) has the one off as its
		// floor, not the raw SQL's.
		var cpu time.Duration
		// Only the own-table floor, so that both runs have the same
		// figures, the instrumented one's read against the other's.
		bare = nil
		if bench.Telemetry.MeterProvider != nil {
			floor = nil
		}
		figs, err := rateFigure(ctx, t, "tasks/s", func(s tasks.Store) (bench.Rate, error) {
			before := cpuTime()
			r, err := bench.Drain(ctx, c.drain, s)
			cpu = cpuTime() - before
			return r, err
		}, bare, floor)
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
		var floor float64
		if t.openDB != nil {
			fr, err := withDB(ctx, t, func(db *sql.DB, d tasks.Dialect) (bench.Rate, error) {
				return bench.BareSteadyFloor(ctx, db, d, c.steady)
			})
			if err != nil {
				return nil, fmt.Errorf("bare: %w", err)
			}
			floor = fr.PerSecond()
		}
		return []figure{
			{name: "completed", unit: "tasks/s", value: r.Completed.PerSecond(), floor: floor},
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
	{id: "W6", name: "webhooks", run: runWebhooks},
	{id: "W7", name: "HTTP create", run: func(ctx context.Context, c *config, t *target) ([]figure, error) {
		return rateFigure(ctx, t, "requests/s",
			func(s tasks.Store) (bench.Rate, error) { return bench.HTTPCreate(ctx, s, c.http.d, c.http.n) },
			func(db *sql.DB, d tasks.Dialect) (bench.Rate, error) {
				return bench.BareInsertFloor(ctx, db, d, c.enqueue)
			},
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

// Labels of W6's figures beside its main one, which is read against the
// combined floor: the same deliveries/s against each of the two floors it
// combines.
const (
	vsPost     = "vs bare POST"
	vsDrain    = "vs bare drain"
	vsMemoryW3 = "vs memory W3 drain" // memory has no SQL floor: its engine's own drain
)

// runWebhooks is W6: deliveries/s against its combined floor. A delivery
// is a claim, a request and an outcome, so its floor is a drain floor's
// claim and outcome and a bare POST done one after the other, their times
// per task added: 1 / (1/D + 1/P). P is the bare POSTs of the same run of
// bench.Webhooks; D, on a SQL store, the bare drain floor of as many rows
// on a fresh database of the store (bench.BareDrainFloor, as W3's); on
// memory, which has no SQL floor, the engine's own drain of as many no-op
// tasks on a fresh MemoryStore (W3's workload), labelled so.
func runWebhooks(ctx context.Context, c *config, t *target) ([]figure, error) {
	r, err := withStore(ctx, t, func(s tasks.Store) (bench.WebhookResult, error) {
		return bench.Webhooks(ctx, s, c.webhooks)
	})
	if err != nil {
		return nil, err
	}
	var drain bench.Rate
	vs := vsDrain
	if t.openDB != nil {
		drain, err = withDB(ctx, t, func(db *sql.DB, d tasks.Dialect) (bench.Rate, error) {
			return bench.BareDrainFloor(ctx, db, d, c.webhooks)
		})
	} else {
		vs = vsMemoryW3
		drain, err = withStore(ctx, t, func(s tasks.Store) (bench.Rate, error) { return bench.Drain(ctx, c.webhooks, s) })
	}
	if err != nil {
		return nil, fmt.Errorf("drain floor: %w", err)
	}
	v, d, p := r.Deliveries.PerSecond(), drain.PerSecond(), r.Floor.PerSecond()
	return []figure{
		{unit: "deliveries/s", value: v, floor: combined(d, p)},
		{name: vsPost, unit: "deliveries/s", value: v, floor: p},
		{name: vs, unit: "deliveries/s", value: v, floor: d},
		// The CPU time of a delivery and of a bare POST, the receiver's
		// included: what the rates come from on a machine others share.
		{name: "cpu", unit: "µs/delivery", value: perItem(r.CPU, c.webhooks)},
		{name: "POST cpu", unit: "µs/POST", value: perItem(r.FloorCPU, c.webhooks)},
	}, nil
}

// perItem returns d per item in microseconds.
func perItem(d time.Duration, n int) float64 {
	return float64(d) / float64(time.Microsecond) / float64(n)
}

// combined is the rate of doing one operation at rate a and then one at
// rate b, per item: 1 / (1/a + 1/b); 0 if either is 0.
func combined(a, b float64) float64 {
	if a <= 0 || b <= 0 {
		return 0
	}
	return 1 / (1/a + 1/b)
}

func heapFigures(h bench.Heap) []figure {
	return []figure{
		{name: "heap", unit: "MB", value: h.MB()},
		{name: "per task", unit: "B/task", value: h.PerTask()},
	}
}
