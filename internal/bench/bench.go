/*
Package bench holds the workloads that measure package tasks, and the
raw-SQL floors they are read against. Command tasksbench runs them on every
store and prints a table; the benchmarks of package tasks (bench_test.go)
wrap the same functions for go test -bench.

Each workload runs an engine of [Workers] workers on no-op tasks, so that
what is measured is the engine and its store, not the tasks:

  - W1 [Enqueue]: [Producers] goroutines each calling Engine.Enqueue, one
    task per call, with the engine not started: the cost of storing a task,
    durably on a SQL store.
  - W2 [EnqueueBatches]: the same tasks in batches of [BatchSize] through
    the batch path, Engine.EnqueueMany, from one goroutine: the cost of
    storing a task when the caller has many at once.
  - W3 [Drain]: a backlog enqueued first, then Start until every task ran
    and Stop stored the last outcomes: end-to-end tasks/s of claiming,
    running, and recording each task's outcome and attempt.
  - W4 [Steady]: producers enqueueing as fast as they can, but never more
    than [SteadyBacklog] tasks ahead of the workers, and the workers running
    together for a while: the completed tasks/s a process sustains while it
    also takes tasks in, and how long a task waits from Enqueue to its start
    (p50, p99) with that backlog. Without the bound, producers that outrun
    the workers make a backlog, and a wait, that grow for as long as the
    run lasts, which measures the run's length, not the engine.
  - W5 [Lateness]: tasks scheduled a few seconds ahead on an idle engine:
    how late after its run time each starts (p50, p99, max), and how many
    started early, which must be none.
  - W6 [Webhooks]: tasks with no func, delivered to a local receiver that
    answers 204: deliveries/s, signed and recorded, against bare POSTs of
    the same body to the same receiver.
  - W7 [HTTPCreate]: POST /apps/{app_id}/tasks through Engine.Handler on a
    loopback http.Server from [Workers] keep-alive clients: requests/s of
    the HTTP API's create, with its authentication, decoding and
    validation, on an engine that only enqueues.
  - W13 [Overload]: W4's producers without their own bound, on an engine
    with Config.MaxWaiting or without: the backlog and the wait that
    backpressure keeps bounded.
  - M1 [MemoryHeap]: the Go heap a MemoryStore takes per scheduled task.
  - M2 [EngineHeap]: the Go heap of a started engine on a durable store
    with a large backlog scheduled ahead, which it must not hold in memory.

The floors run the bare statements that any durable queue needs per task,
with no library around them, so that an engine's figure can be read as a
ratio to its floor. The bare floors run them on [BareTable], a plain table
with a primary key, the one index a claim needs and no trigger:
[BareInsertFloor] (one INSERT per call, for W1 and W7), [BareBatchFloor]
(one INSERT of [BatchSize] rows, for W2), [BareDrainFloor] (claim ten with
UPDATE … RETURNING, over FOR UPDATE SKIP LOCKED on PostgreSQL, then mark
those done in one statement, for W3) and [BareSteadyFloor] (producers and
that claim loop together, for W4). The own-table floors run the same
statements on the library's own tables, after Migrate, triggers and
indexes included: [InsertFloor], [BatchInsertFloor] and [DrainFloor]; an
engine's figure against them shows what the library's code costs beside
what its schema does. W6's POST floor is part of [Webhooks]; tasksbench
combines it with [BareDrainFloor] (on memory, with [Drain]), since a
delivery is a claim and an outcome as well as a request.

Workloads take the stores they run on, fresh and empty, and return plain
result structs; they start and stop every engine, server and goroutine
they use, and close nothing they were given. They stop early, with ctx's
error, when ctx ends.
*/
package bench

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskwheel/tasks"
)

// The shape of every workload, as the issue that asked for them fixes it.
const (
	// Workers is the Config.Workers of every engine, and the goroutines of
	// the drain floor and of W6's and W7's clients.
	Workers = 16
	// Producers is how many goroutines enqueue in W1 and W4, and insert in
	// the insert floor.
	Producers = 8
	// SteadyBacklog is how many tasks W4's producers may be ahead of the
	// workers: enqueued and not yet started.
	SteadyBacklog = 1000
	// BatchSize is the size of a batch on the batch path and of the batch
	// insert floor's statements.
	BatchSize = 1000
	// ClaimSize is how many tasks the drain floor claims at a time.
	ClaimSize = 10
)

// appID is the app of every task the workloads enqueue.
const appID = "bench"

// stopTimeout bounds the Stop of an engine when a workload cleans up
// after an error.
const stopTimeout = 30 * time.Second

// Rate is a count of operations over the time they took.
type Rate struct {
	N       int           // operations done
	Elapsed time.Duration // the time they took
}

// PerSecond returns N per second of Elapsed, or 0 when nothing elapsed.
func (r Rate) PerSecond() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.N) / r.Elapsed.Seconds()
}

// Latency summarizes a sample of durations.
type Latency struct {
	N             int // samples
	P50, P99, Max time.Duration
}

// latency summarizes ds, which it sorts.
func latency(ds []time.Duration) Latency {
	if len(ds) == 0 {
		return Latency{}
	}
	slices.Sort(ds)
	return Latency{N: len(ds), P50: ds[len(ds)/2], P99: ds[len(ds)*99/100], Max: ds[len(ds)-1]}
}

// Heap is the Go heap a store or an engine holds for a number of tasks.
type Heap struct {
	Tasks int
	// Bytes is the growth of the live heap (HeapAlloc after a GC) from
	// before the store was filled to after; 0 if it shrank.
	Bytes uint64
}

// PerTask returns Bytes per task.
func (h Heap) PerTask() float64 {
	if h.Tasks == 0 {
		return 0
	}
	return float64(h.Bytes) / float64(h.Tasks)
}

// MB returns Bytes in megabytes (10⁶ bytes).
func (h Heap) MB() float64 { return float64(h.Bytes) / 1e6 }

// enqueueBatches enqueues n tasks made by nt through the batch path,
// Engine.EnqueueMany, in batches of BatchSize.
func enqueueBatches(ctx context.Context, eng *tasks.Engine, n int, nt func(i int) tasks.NewTask) error {
	batch := make([]tasks.NewTask, 0, BatchSize)
	for i := 0; i < n; i += BatchSize {
		batch = batch[:0]
		for j := i; j < min(i+BatchSize, n); j++ {
			batch = append(batch, nt(j))
		}
		if _, err := eng.EnqueueMany(ctx, batch); err != nil {
			return fmt.Errorf("enqueue batch at task %d of %d: %w", i, n, err)
		}
	}
	return nil
}

// Telemetry holds the OpenTelemetry providers that newEngine gives every
// engine, nil for the engine's defaults (off, in a process that sets no
// global provider). tasksbench -otel sets them between runs; nothing else
// may change them while a workload runs.
var Telemetry struct {
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
}

// newEngine returns an engine of Workers workers on store, with fn
// registered for eventType unless fn is nil.
func newEngine(store tasks.Store, cfg tasks.Config, eventType string, fn tasks.Func) (*tasks.Engine, error) {
	cfg.Workers = Workers
	cfg.TracerProvider, cfg.MeterProvider = Telemetry.TracerProvider, Telemetry.MeterProvider
	eng, err := tasks.NewEngine(store, &cfg)
	if err != nil {
		return nil, err
	}
	if fn != nil {
		eng.Register(eventType, fn)
	}
	return eng, nil
}

// stopAll stops engines, for cleanup after an error or an interruption:
// within stopTimeout, even when ctx has ended.
func stopAll(ctx context.Context, engines ...*tasks.Engine) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopTimeout)
	defer cancel()
	var errs []error
	for _, e := range engines {
		if err := e.Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop engine: %w", err))
		}
	}
	return errors.Join(errs...)
}

// await waits until done is closed, ctx ends or timeout passes, and says
// which with an error naming what it waited for.
func await(ctx context.Context, done <-chan struct{}, timeout time.Duration, what func() string) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("interrupted while waiting: %s: %w", what(), ctx.Err())
	case <-t.C:
		return fmt.Errorf("gave up after %v: %s", timeout, what())
	}
}
