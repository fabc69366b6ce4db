package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/taskwheel/tasks"
)

// Event types of the workloads' tasks.
const (
	noopEvent    = "bench.noop"
	webhookEvent = "bench.webhook"
	httpEvent    = "bench.http"
)

// waitTimeout bounds how long a workload waits for its tasks to run.
const waitTimeout = 10 * time.Minute

// noopTask returns the task W1, W2 and W3 enqueue.
func noopTask(int) tasks.NewTask { return tasks.NewTask{AppID: appID, EventType: noopEvent} }

// Enqueue measures W1: n no-op tasks enqueued one per Engine.Enqueue call
// by Producers goroutines, on an engine that is not started.
func Enqueue(ctx context.Context, store tasks.Store, n int) (Rate, error) {
	eng, err := newEngine(store, tasks.Config{}, "", nil)
	if err != nil {
		return Rate{}, err
	}
	start := time.Now()
	err = runN(ctx, Producers, n, func(ctx context.Context, i int) error {
		_, err := eng.Enqueue(ctx, noopTask(i))
		return err
	})
	return Rate{N: n, Elapsed: time.Since(start)}, err
}

// EnqueueBatches measures W2: n no-op tasks enqueued in batches of
// BatchSize through the batch path, from one goroutine, on an engine that
// is not started.
func EnqueueBatches(ctx context.Context, store tasks.Store, n int) (Rate, error) {
	eng, err := newEngine(store, tasks.Config{}, "", nil)
	if err != nil {
		return Rate{}, err
	}
	start := time.Now()
	err = enqueueBatches(ctx, eng, n, noopTask)
	return Rate{N: n, Elapsed: time.Since(start)}, err
}

// Drain measures W3: n no-op tasks are enqueued through the batch path
// (not timed), then one engine per store is started; the time runs from
// Start until every task ran and Stop, which stores the last outcomes,
// returned. Several stores on one database run several engines, each with
// its own connection pool, as several processes would.
func Drain(ctx context.Context, n int, stores ...tasks.Store) (_ Rate, err error) {
	return drain(ctx, n, nil, stores...)
}

// drain is Drain, with setup, if not nil, run on the first engine before
// the tasks are enqueued.
func drain(ctx context.Context, n int, setup func(*tasks.Engine) error, stores ...tasks.Store) (_ Rate, err error) {
	if len(stores) == 0 {
		return Rate{}, errors.New("no store")
	}
	var ran atomic.Int64
	all := make(chan struct{})
	noop := func(ctx context.Context, t *tasks.Task) error {
		if ran.Add(1) == int64(n) {
			close(all)
		}
		return nil
	}
	var engines []*tasks.Engine
	for _, s := range stores {
		e, err := newEngine(s, tasks.Config{}, noopEvent, noop)
		if err != nil {
			return Rate{}, err
		}
		engines = append(engines, e)
	}
	defer func() { err = errors.Join(err, stopAll(ctx, engines...)) }()
	if setup != nil {
		if err := setup(engines[0]); err != nil {
			return Rate{}, err
		}
	}
	if err := enqueueBatches(ctx, engines[0], n, noopTask); err != nil {
		return Rate{}, err
	}
	settle()
	start := time.Now()
	for _, e := range engines {
		if err := e.Start(ctx); err != nil {
			return Rate{}, err
		}
	}
	if n > 0 {
		if err := await(ctx, all, waitTimeout, func() string {
			return fmt.Sprintf("%d of %d tasks ran", ran.Load(), n)
		}); err != nil {
			return Rate{}, err
		}
	}
	for _, e := range engines {
		if err := e.Stop(ctx); err != nil {
			return Rate{}, fmt.Errorf("stop engine: %w", err)
		}
	}
	return Rate{N: n, Elapsed: time.Since(start)}, nil
}

// SteadyResult is the outcome of [Steady].
type SteadyResult struct {
	// Completed counts the tasks that ran within the run's duration.
	Completed Rate
	// Enqueued counts the tasks enqueued within it.
	Enqueued Rate
	// Wait is the time from the producer's call of Enqueue to the start of
	// the task's func, of the tasks that ran within it.
	Wait Latency
}

// Steady measures W4: for duration d, Producers goroutines enqueue no-op
// tasks, one per Enqueue call, as fast as they can while they are less than
// SteadyBacklog tasks ahead of the engine's Workers, which run them. Each
// task carries the time its Enqueue was called, on the monotonic clock, in
// its data.
func Steady(ctx context.Context, store tasks.Store, d time.Duration) (SteadyResult, error) {
	return steady(ctx, store, tasks.Config{}, d, 0, nil)
}

// steady is Steady on an engine configured by cfg, which also calls
// sample every interval, if it is positive, with the time since the start
// and the tasks run so far; an error from sample ends the run.
func steady(ctx context.Context, store tasks.Store, cfg tasks.Config, d, every time.Duration,
	sample func(at time.Duration, ran int64) error) (_ SteadyResult, err error) {
	w := newWaitLog()
	eng, err := newEngine(store, cfg, noopEvent, w.run)
	if err != nil {
		return SteadyResult{}, err
	}
	if err := eng.Start(ctx); err != nil {
		return SteadyResult{}, err
	}
	defer func() { err = errors.Join(err, stopAll(ctx, eng)) }()

	var stop atomic.Bool
	var enqueued atomic.Int64
	produced := make(chan error, 1)
	start := time.Now()
	go func() { // joined below, in every case
		produced <- parallel(ctx, Producers, func(ctx context.Context) error {
			for !stop.Load() {
				if enqueued.Load()-w.started.Load() >= SteadyBacklog {
					time.Sleep(50 * time.Microsecond) // let the workers catch up
					continue
				}
				if _, err := eng.Enqueue(ctx, tasks.NewTask{AppID: appID, EventType: noopEvent, Data: w.data()}); err != nil {
					return err
				}
				enqueued.Add(1)
			}
			return nil
		})
	}()
	timer := time.NewTimer(d)
	defer timer.Stop()
	var tick <-chan time.Time
	if every > 0 {
		ticker := time.NewTicker(every)
		defer ticker.Stop()
		tick = ticker.C
	}
wait:
	for {
		select {
		case <-timer.C:
			break wait
		case <-tick:
			if err := sample(time.Since(start), w.started.Load()); err != nil {
				stop.Store(true)
				return SteadyResult{}, errors.Join(fmt.Errorf("sample: %w", err), <-produced)
			}
		case err := <-produced: // an error, or ctx ended
			stop.Store(true)
			return SteadyResult{}, fmt.Errorf("enqueue: %w", err)
		}
	}
	ws := w.end()
	elapsed := time.Since(start)
	stop.Store(true)
	r := SteadyResult{
		Completed: Rate{N: len(ws), Elapsed: elapsed},
		Enqueued:  Rate{N: int(enqueued.Load()), Elapsed: elapsed},
		Wait:      latency(ws),
	}
	if err := <-produced; err != nil {
		return r, fmt.Errorf("enqueue: %w", err)
	}
	return r, w.err()
}

// waitLog records, for the task funcs of the workloads whose producers
// enqueue as fast as they can (W4, W13), the time from each task's Enqueue
// call to the start of its func, until end: each task carries in its data
// the time of its call since the log began, on the monotonic clock. Its
// methods are safe for concurrent use.
type waitLog struct {
	base    time.Time
	started atomic.Int64 // tasks whose func started
	bad     atomic.Int64 // tasks whose data did not parse

	mu    sync.Mutex
	waits []time.Duration
	ended bool
}

func newWaitLog() *waitLog { return &waitLog{base: time.Now()} }

// data returns the data of a task enqueued now.
func (w *waitLog) data() []byte { return fmt.Appendf(nil, `{"At":%d}`, time.Since(w.base)) }

// run is the tasks' func: it records the task's wait.
func (w *waitLog) run(_ context.Context, t *tasks.Task) error {
	started := time.Since(w.base)
	w.started.Add(1)
	var in struct{ At time.Duration }
	if err := json.Unmarshal(t.Data, &in); err != nil {
		w.bad.Add(1)
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.ended {
		w.waits = append(w.waits, started-in.At)
	}
	return nil
}

// end stops the recording and returns the waits recorded.
func (w *waitLog) end() []time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ended = true
	return w.waits
}

// err reports tasks whose data did not parse.
func (w *waitLog) err() error {
	if n := w.bad.Load(); n > 0 {
		return fmt.Errorf("%d tasks had data that did not parse", n)
	}
	return nil
}

// LatenessResult is the outcome of [Lateness].
type LatenessResult struct {
	// Late is the start of each task's func minus its scheduled run time.
	Late Latency
	// Early counts the tasks that started before their run time; it must
	// be 0.
	Early int
	// Enqueueing is how long it took to enqueue them all. Longer than the
	// run's from, and the first tasks fell due while it went on, so the
	// engine was not idle.
	Enqueueing time.Duration
}

// Lateness measures W5: n tasks scheduled from..to ahead, evenly spread,
// enqueued up front through the batch path on producer's engine, run by a
// started engine on worker, which is otherwise idle; it reports how late
// each task started. producer and worker are the same store, or two
// stores on one database with connection pools of their own, so that the
// worker learns of the tasks as from another process (LISTEN/NOTIFY on
// PostgreSQL).
func Lateness(ctx context.Context, producer, worker tasks.Store, n int, from, to time.Duration) (_ LatenessResult, err error) {
	if from < 0 || to < from {
		return LatenessResult{}, fmt.Errorf("want 0 <= from <= to, have from %v, to %v", from, to)
	}
	var mu sync.Mutex
	late := make([]time.Duration, 0, n)
	early := 0
	all := make(chan struct{})
	w, err := newEngine(worker, tasks.Config{}, noopEvent, func(ctx context.Context, t *tasks.Task) error {
		d := time.Since(*t.ScheduledRunTime)
		mu.Lock()
		defer mu.Unlock()
		if d < 0 {
			early++
		}
		late = append(late, d)
		if len(late) == n {
			close(all)
		}
		return nil
	})
	if err != nil {
		return LatenessResult{}, err
	}
	p := w
	if producer != worker {
		if p, err = newEngine(producer, tasks.Config{}, "", nil); err != nil {
			return LatenessResult{}, err
		}
	}
	if err := w.Start(ctx); err != nil {
		return LatenessResult{}, err
	}
	defer func() { err = errors.Join(err, stopAll(ctx, w)) }()

	start := time.Now()
	base := start.Add(from)
	spread := to - from
	err = enqueueBatches(ctx, p, n, func(i int) tasks.NewTask {
		return tasks.NewTask{AppID: appID, EventType: noopEvent, RunAt: base.Add(time.Duration(i) * spread / time.Duration(n))}
	})
	if err != nil {
		return LatenessResult{}, err
	}
	enqueueing := time.Since(start)
	if n > 0 {
		if err := await(ctx, all, to+waitTimeout, func() string {
			mu.Lock()
			defer mu.Unlock()
			return fmt.Sprintf("%d of %d tasks started", len(late), n)
		}); err != nil {
			return LatenessResult{}, err
		}
	}
	mu.Lock()
	defer mu.Unlock()
	return LatenessResult{Late: latency(late), Early: early, Enqueueing: enqueueing}, nil
}

// bigData returns a JSON string of size bytes, quotes included.
func bigData(size int) []byte {
	return []byte(`"` + strings.Repeat("x", size-2) + `"`)
}

// settle collects the garbage that a run's setup left (its enqueues, the
// tasks it set waiting) before the part that is timed, as testing.B does
// before a benchmark: the drains of the memory store last a few tenths of
// a second, and one collection of another run's garbage more or less in
// them moved their figures by a fifth either way.
func settle() { runtime.GC() }

// liveHeap returns the live Go heap after a collection.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC() // what the first one's finalizers freed
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// heapGrowth returns after − before, or 0 if the heap shrank.
func heapGrowth(before, after uint64) uint64 {
	if after < before {
		return 0
	}
	return after - before
}

// MemoryHeap measures M1: the live Go heap a MemoryStore takes for n
// tasks scheduled an hour ahead with 100 bytes of data each, enqueued
// through the batch path on an engine that is not started.
func MemoryHeap(ctx context.Context, n int) (Heap, error) {
	before := liveHeap()
	store := tasks.NewMemoryStore()
	eng, err := newEngine(store, tasks.Config{}, "", nil)
	if err != nil {
		return Heap{}, err
	}
	data := bigData(100)
	runAt := time.Now().Add(time.Hour)
	if err := enqueueBatches(ctx, eng, n, func(int) tasks.NewTask {
		return tasks.NewTask{AppID: appID, EventType: noopEvent, Data: data, RunAt: runAt}
	}); err != nil {
		return Heap{}, err
	}
	after := liveHeap()
	runtime.KeepAlive(eng)
	return Heap{Tasks: n, Bytes: heapGrowth(before, after)}, nil
}

// EngineHeap measures M2: the live Go heap of a started engine on store
// once n tasks, each scheduled at random between one minute and one hour
// after it is enqueued, were enqueued through the batch path and the
// engine polled the store once. A durable store keeps them; the engine
// should hold only those due within its window.
func EngineHeap(ctx context.Context, store tasks.Store, n int) (_ Heap, err error) {
	before := liveHeap()
	eng, err := newEngine(store, tasks.Config{}, noopEvent, func(context.Context, *tasks.Task) error { return nil })
	if err != nil {
		return Heap{}, err
	}
	if err := eng.Start(ctx); err != nil {
		return Heap{}, err
	}
	defer func() { err = errors.Join(err, stopAll(ctx, eng)) }()
	data := bigData(100)
	if err := enqueueBatches(ctx, eng, n, func(int) tasks.NewTask {
		runAt := time.Now().Add(time.Minute + rand.N(59*time.Minute))
		return tasks.NewTask{AppID: appID, EventType: noopEvent, Data: data, RunAt: runAt}
	}); err != nil {
		return Heap{}, err
	}
	// Let the engine take in what it was told and poll once.
	select {
	case <-time.After(tasks.DefaultPollInterval):
	case <-ctx.Done():
		return Heap{}, ctx.Err()
	}
	after := liveHeap()
	return Heap{Tasks: n, Bytes: heapGrowth(before, after)}, nil
}

// parallel runs f on g goroutines and waits for them. The first error
// cancels the others' context and is returned.
func parallel(ctx context.Context, g int, f func(ctx context.Context) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for range g {
		wg.Go(func() {
			if err := f(ctx); err != nil {
				once.Do(func() {
					first = err
					cancel(err)
				})
			}
		})
	}
	wg.Wait()
	return first
}

// runN calls f for i from 0 to n-1 on g goroutines, each taking the next
// i, and stops at the first error, which it returns.
func runN(ctx context.Context, g, n int, f func(ctx context.Context, i int) error) error {
	var next atomic.Int64
	return parallel(ctx, g, func(ctx context.Context) error {
		for {
			i := int(next.Add(1)) - 1
			if i >= n {
				return nil
			}
			if err := f(ctx, i); err != nil {
				return err
			}
		}
	})
}
