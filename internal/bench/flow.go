package bench

// W11, flow control: rate and concurrency limits across several engines
// sharing a store, the cost of waiting tasks and of limits to a drain, and
// fairness between apps.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/taskwheel/tasks"
)

// flowKey is the key the flow workloads limit.
const flowKey = "bench.limited"

// startEngines starts an engine on each store, running fn for noopEvent
// with workers workers, and returns them.
func startEngines(ctx context.Context, stores []tasks.Store, workers int, fn tasks.Func) ([]*tasks.Engine, error) {
	var es []*tasks.Engine
	for _, s := range stores {
		e, err := tasks.NewEngine(s, &tasks.Config{Workers: workers})
		if err != nil {
			return es, err
		}
		e.Register(noopEvent, fn)
		es = append(es, e)
		if err := e.Start(ctx); err != nil {
			return es, err
		}
	}
	return es, nil
}

// FlowRate runs engines on stores, sharing one database, for d while the
// key they run has a rate limit of rate per second (its burst the default,
// a second's worth), and returns how many tasks started in each whole
// second after the first.
func FlowRate(ctx context.Context, stores []tasks.Store, rate float64, d time.Duration) (_ []int, err error) {
	var (
		mu     sync.Mutex
		starts []time.Duration
		began  time.Time
	)
	fn := func(context.Context, *tasks.Task) error {
		mu.Lock()
		starts = append(starts, time.Since(began))
		mu.Unlock()
		return nil
	}
	es, err := startEngines(ctx, stores, Workers, fn)
	defer func() { err = errors.Join(err, stopAll(ctx, es...)) }()
	if err != nil {
		return nil, err
	}
	if _, err := es[0].SetLimit(ctx, tasks.Limit{AppID: appID, Key: flowKey, Paused: true}); err != nil {
		return nil, err
	}
	n := int(rate*d.Seconds()*1.5) + 100
	if err := enqueueBatches(ctx, es[0], n, func(int) tasks.NewTask {
		return tasks.NewTask{AppID: appID, EventType: noopEvent, FlowKey: flowKey}
	}); err != nil {
		return nil, err
	}
	mu.Lock()
	began = time.Now()
	mu.Unlock()
	if _, err := es[0].SetLimit(ctx, tasks.Limit{AppID: appID, Key: flowKey, Rate: rate}); err != nil {
		return nil, err
	}
	select {
	case <-time.After(d):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	mu.Lock()
	defer mu.Unlock()
	windows := make([]int, int(d/time.Second))
	for _, s := range starts {
		if w := int(s / time.Second); w < len(windows) {
			windows[w]++
		}
	}
	return windows[1:], nil
}

// FlowConcurrencyResult is the outcome of [FlowConcurrency].
type FlowConcurrencyResult struct {
	Most int  // the most tasks of the key running at once, as they saw it
	Rate Rate // the tasks run
}

// FlowConcurrency runs n tasks of work each on engines on stores, sharing
// one database, while their key has a concurrency limit of c.
func FlowConcurrency(ctx context.Context, stores []tasks.Store, c, n int, work time.Duration) (_ FlowConcurrencyResult, err error) {
	var running, most, ran atomic.Int64
	all := make(chan struct{})
	fn := func(ctx context.Context, _ *tasks.Task) error {
		now := running.Add(1)
		for m := most.Load(); now > m && !most.CompareAndSwap(m, now); m = most.Load() {
		}
		select {
		case <-time.After(work):
		case <-ctx.Done():
		}
		running.Add(-1)
		if ran.Add(1) == int64(n) {
			close(all)
		}
		return nil
	}
	es, err := startEngines(ctx, stores, Workers, fn)
	defer func() { err = errors.Join(err, stopAll(ctx, es...)) }()
	if err != nil {
		return FlowConcurrencyResult{}, err
	}
	if _, err := es[0].SetLimit(ctx, tasks.Limit{AppID: appID, Key: flowKey, Concurrency: c}); err != nil {
		return FlowConcurrencyResult{}, err
	}
	start := time.Now()
	if err := enqueueBatches(ctx, es[0], n, func(int) tasks.NewTask {
		return tasks.NewTask{AppID: appID, EventType: noopEvent, FlowKey: flowKey}
	}); err != nil {
		return FlowConcurrencyResult{}, err
	}
	if err := await(ctx, all, waitTimeout, func() string { return fmt.Sprintf("%d of %d tasks ran", ran.Load(), n) }); err != nil {
		return FlowConcurrencyResult{}, err
	}
	return FlowConcurrencyResult{Most: int(most.Load()), Rate: Rate{N: n, Elapsed: time.Since(start)}}, nil
}

// DrainLimited is Drain (W3) with a concurrency limit of limit on the
// drained tasks' key, their event type.
func DrainLimited(ctx context.Context, n, limit int, store tasks.Store) (Rate, error) {
	return drain(ctx, n, func(e *tasks.Engine) error {
		_, err := e.SetLimit(ctx, tasks.Limit{AppID: appID, Key: noopEvent, Concurrency: limit})
		return err
	}, store)
}

// FlowIsolationResult is the outcome of [FlowIsolation].
type FlowIsolationResult struct {
	// Drain is the drain of the median rate, of the unlimited tasks,
	// while the others wait; DrainCPU is the process's CPU time during
	// it, which other processes on the machine move less than they move
	// Drain.
	Drain    Rate
	DrainCPU time.Duration
	IdleCPU  float64 // of the process while the engine idled with them waiting, in cores
	Park     Rate    // the claims that set the waiting tasks waiting
}

// FlowIsolation enqueues waiting tasks on a key limited to one a second,
// lets an engine set them waiting, measures the process's CPU while the
// engine idles for idle, then drains n unlimited tasks (W3) meanwhile,
// drains times, one after the other, and reports the drain of the median
// rate: one drain on a shared machine can meet a checkpoint or another
// process's burst that the next does not.
func FlowIsolation(ctx context.Context, store tasks.Store, n, waiting, drains int, idle time.Duration) (_ FlowIsolationResult, err error) {
	var res FlowIsolationResult
	if n < 1 || drains < 1 {
		return res, fmt.Errorf("want at least one drain of one task, have %d of %d", drains, n)
	}
	var ran atomic.Int64
	drained := make(chan struct{}, drains) // a value at the end of each drain
	fn := func(_ context.Context, t *tasks.Task) error {
		if t.FlowKey == noopEvent && ran.Add(1)%int64(n) == 0 {
			drained <- struct{}{}
		}
		return nil
	}
	e, err := newEngine(store, tasks.Config{}, noopEvent, fn)
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, stopAll(ctx, e)) }()
	if _, err := e.SetLimit(ctx, tasks.Limit{AppID: appID, Key: flowKey, Rate: 1, Burst: 1}); err != nil {
		return res, err
	}
	if err := enqueueBatches(ctx, e, waiting, func(int) tasks.NewTask {
		return tasks.NewTask{AppID: appID, EventType: noopEvent, FlowKey: flowKey}
	}); err != nil {
		return res, err
	}
	start := time.Now()
	if err := e.Start(ctx); err != nil {
		return res, err
	}
	for {
		l, err := e.Limit(ctx, appID, flowKey)
		if err != nil {
			return res, err
		}
		if l.Waiting+l.Running >= waiting-int(time.Since(start).Seconds())-2 {
			break
		}
		if time.Since(start) > waitTimeout {
			return res, fmt.Errorf("%d of %d tasks set waiting", l.Waiting, waiting)
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
	res.Park = Rate{N: waiting, Elapsed: time.Since(start)}
	cpu0 := cpuTime()
	select {
	case <-time.After(idle):
	case <-ctx.Done():
		return res, ctx.Err()
	}
	res.IdleCPU = (cpuTime() - cpu0).Seconds() / idle.Seconds()
	type run struct {
		rate Rate
		cpu  time.Duration
	}
	runs := make([]run, drains)
	for i := range runs {
		settle()
		start, cpu0 := time.Now(), cpuTime()
		if err := enqueueBatches(ctx, e, n, noopTask); err != nil {
			return res, err
		}
		if err := await(ctx, drained, waitTimeout, func() string {
			return fmt.Sprintf("%d of %d tasks ran", ran.Load()-int64(i*n), n)
		}); err != nil {
			return res, err
		}
		runs[i] = run{Rate{N: n, Elapsed: time.Since(start)}, cpuTime() - cpu0}
	}
	slices.SortFunc(runs, func(a, b run) int { return cmp.Compare(a.rate.Elapsed, b.rate.Elapsed) })
	res.Drain, res.DrainCPU = runs[drains/2].rate, runs[drains/2].cpu
	return res, nil
}

// CPUTime returns the CPU time of the process, user and system.
func CPUTime() time.Duration { return cpuTime() }

// cpuTime returns the CPU time of the process, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// FairnessResult is the outcome of [Fairness].
type FairnessResult struct {
	Drain Rate    // app A's backlog
	Wait  Latency // app B's tasks, from Enqueue to the start of their func
	// Claim and Queue split Wait: from Enqueue to the claim (the task's
	// UpdatedAt, on the store's clock, which is this machine's), and from
	// the claim to the start of the func, queued in the engine.
	Claim, Queue Latency
}

// Fairness drains a backlog of app A's tasks while, if bRate > 0, app B
// enqueues bRate tasks a second, each carrying when it was enqueued.
func Fairness(ctx context.Context, store tasks.Store, backlog int, bRate float64) (_ FairnessResult, err error) {
	var (
		res                  FairnessResult
		ran                  atomic.Int64
		mu                   sync.Mutex
		waits, claims, queue []time.Duration
		epoch                = time.Now()
	)
	all := make(chan struct{})
	fn := func(_ context.Context, t *tasks.Task) error {
		if t.AppID == "bench_b" {
			ns, _ := strconv.ParseInt(string(t.Data), 10, 64)
			now, at := time.Now(), epoch.Add(time.Duration(ns))
			mu.Lock()
			waits = append(waits, now.Sub(at))
			claims = append(claims, t.UpdatedAt.Sub(at))
			queue = append(queue, now.Sub(t.UpdatedAt))
			mu.Unlock()
			return nil
		}
		if ran.Add(1) == int64(backlog) {
			close(all)
		}
		return nil
	}
	e, err := newEngine(store, tasks.Config{}, noopEvent, fn)
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, stopAll(ctx, e)) }()
	if err := enqueueBatches(ctx, e, backlog, noopTask); err != nil {
		return res, err
	}
	settle()
	start := time.Now()
	if err := e.Start(ctx); err != nil {
		return res, err
	}
	done := make(chan error, 1)
	stop := make(chan struct{})
	go func() {
		if bRate <= 0 {
			done <- nil
			return
		}
		tick := time.NewTicker(time.Duration(float64(time.Second) / bRate))
		defer tick.Stop()
		for {
			select {
			case <-stop:
				done <- nil
				return
			case <-tick.C:
			}
			// Data: when it is enqueued, in nanoseconds since epoch.
			data := strconv.AppendInt(nil, int64(time.Since(epoch)), 10)
			if _, err := e.Enqueue(ctx, tasks.NewTask{AppID: "bench_b", EventType: noopEvent, Data: data}); err != nil {
				done <- err
				return
			}
		}
	}()
	err = await(ctx, all, waitTimeout, func() string { return fmt.Sprintf("%d of %d tasks ran", ran.Load(), backlog) })
	res.Drain = Rate{N: backlog, Elapsed: time.Since(start)}
	close(stop)
	if berr := <-done; err == nil {
		err = berr
	}
	mu.Lock()
	res.Wait, res.Claim, res.Queue = latency(waits), latency(claims), latency(queue)
	mu.Unlock()
	return res, err
}
