package tasks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// The run's other bounds (the scheduler's window is in scheduler_loop.go).
const (
	rescueLimit  = 1000
	storeTimeout = 10 * time.Second // bounds each background store call
	finishTries  = 5
	// maxOutcomeBatch bounds the outcomes stored by one Finish, and those
	// waiting for it: a worker hands its outcome over and takes its next
	// task while the previous batch is stored.
	maxOutcomeBatch = 512
	minStoreBackoff = 10 * time.Millisecond
)

// Why an attempt ended early: kept in attempt.cause when it is revoked
// (errTimeout is its context's cause).
var (
	errCancelRequested = errors.New("tasks: cancel requested")
	errLeaseRevoked    = errors.New("tasks: cancel requested or lease lost")
	errStopped         = errors.New("tasks: engine stopped before the attempt ended")
	errTimeout         = errors.New("tasks: attempt timed out")
)

// run is one Start..Stop of an engine: the goroutines it started and the
// channels between them. The scheduler goroutine claims due tasks and sends
// them to the workers over jobs; each worker runs one task at a time and sends
// its outcome to the completer, which stores outcomes in batches; the
// maintainer extends leases (heartbeats) and rescues expired ones; the
// listener turns other engines' news into hints; the periodic goroutine
// enqueues the tasks of periodic tasks (periodic.go); the retention
// goroutine deletes finished tasks past their retention (retention.go).
type run struct {
	e *Engine
	// ctx is for store calls. Stop cancels it (cancelStore) once nothing
	// more is to be stored, or when it gives up waiting; the maintainer
	// and the listener run until then.
	ctx         context.Context
	cancelStore context.CancelFunc
	untilCancel sync.WaitGroup // the maintainer and the listener
	// resultCtx bounds the storing of outcomes, which goes on while Stop
	// waits; cancelResults cancels it when Stop gives up waiting.
	resultCtx     context.Context
	cancelResults context.CancelFunc

	stopping chan struct{} // closed when Stop begins: claim nothing more
	abandon  chan struct{} // closed when Stop's ctx ends: drop late results

	// stopCtx is cancelled when Stop begins, to interrupt the store calls
	// of work that stops at once (retention).
	stopCtx    context.Context
	cancelStop context.CancelFunc

	jobs    *readyQueue   // scheduler → workers; closed by the scheduler
	idle    chan struct{} // a claimed task has ended here (capacity maxAhead+1 × Workers)
	runNs   atomic.Int64  // moving average of how long tasks run here, in ns
	results chan Outcome  // workers → completer; closed after the workers end
	exited  chan struct{} // one value per worker that has ended

	schedulerDone, completerDone, periodicDone, retentionDone chan struct{}
	periodicWake                                              chan struct{} // capacity 1: read periodic tasks now

	wake     chan struct{} // capacity 1: the scheduler has news
	mayBeDue atomic.Bool   // set with wake: claim even if the wheel says nothing is due
	refill   atomic.Bool   // set with wake: read the store's upcoming tasks now
	news     atomic.Bool   // set by hint: tasks were stored since the last claim
	skew     atomic.Int64  // store clock minus local clock, in nanoseconds

	unregister func() // the instrumentation's gauges

	hintsMu sync.Mutex
	hints   []Due // tasks stored by this engine, for the wheel

	activeMu sync.Mutex
	active   map[string]*attempt // claimed tasks by ID: queued for a worker or running
	limited  map[string]bool     // claimed under a concurrency limit: their end frees capacity
	dropped  []Lease             // attempts whose outcome was dropped
}

// job is a claimed task on its way to a worker, and its attempt.
type job struct {
	t *Task
	a *attempt
}

// attempt is a claimed task, queued for a worker or running.
// Its fields are guarded by run.activeMu.
type attempt struct {
	lease Lease
	// cause is why the attempt was revoked (errCancelRequested,
	// errLeaseRevoked, errStopped), nil while it is not; cancel cancels
	// its context once it runs.
	cause    error
	cancel   context.CancelFunc
	deadline time.Time // past it the func is stuck; zero without a timeout
	stuck    bool      // logged as stuck; its lease is no longer extended
}

// revoke revokes a for cause, and cancels its context if it runs. The
// first cause stays.
func (a *attempt) revoke(cause error) {
	if a.cause == nil {
		a.cause = cause
	}
	if a.cancel != nil {
		a.cancel()
	}
}

func (e *Engine) startRun() *run {
	n := e.cfg.Workers
	r := &run{
		e:             e,
		stopping:      make(chan struct{}),
		abandon:       make(chan struct{}),
		jobs:          newReadyQueue((maxAhead + 1) * n),
		idle:          make(chan struct{}, (maxAhead+1)*n),
		results:       make(chan Outcome, maxOutcomeBatch),
		exited:        make(chan struct{}, n),
		schedulerDone: make(chan struct{}),
		completerDone: make(chan struct{}),
		periodicDone:  make(chan struct{}),
		retentionDone: make(chan struct{}),
		periodicWake:  make(chan struct{}, 1),
		wake:          make(chan struct{}, 1),
		active:        make(map[string]*attempt),
	}
	r.ctx, r.cancelStore = context.WithCancel(context.Background())
	r.resultCtx, r.cancelResults = context.WithCancel(context.Background())
	r.stopCtx, r.cancelStop = context.WithCancel(r.ctx)
	go r.schedule()
	for range n {
		go r.work()
	}
	go r.complete()
	r.untilCancel.Go(r.maintain)
	r.untilCancel.Go(r.listen)
	go r.periodic()
	go r.retain()
	return r
}

// stop implements Engine.Stop.
func (r *run) stop(ctx context.Context) error {
	close(r.stopping)
	r.cancelStop()
	wait := func(done <-chan struct{}) bool {
		select {
		case <-done:
			return true
		case <-ctx.Done():
			return false
		}
	}
	exited := 0 // workers that have ended
	workersDone := func() bool {
		for ; exited < r.e.cfg.Workers; exited++ {
			if !wait(r.exited) {
				return false
			}
		}
		return true
	}
	if workersDone() && wait(r.schedulerDone) && wait(r.periodicDone) && wait(r.retentionDone) {
		close(r.results)
		if wait(r.completerDone) {
			r.cancelStore()
			r.untilCancel.Wait()
			r.cancelActive(errStopped)
			r.cancelResults()
			return nil
		}
	}
	// Out of time: interrupt the running tasks and stop storing. Closing
	// abandon first makes sure no interrupted attempt reports success.
	close(r.abandon)
	r.cancelActive(errStopped)
	r.cancelStore()
	r.cancelResults()
	for _, done := range []chan struct{}{r.schedulerDone, r.periodicDone, r.retentionDone, r.completerDone} {
		<-done // each returns at once now that its store calls are cancelled
	}
	r.untilCancel.Wait()
	// Tasks claimed ahead and not started are handed back, not left to
	// their leases, even while every worker is stuck in a func. (The
	// scheduler has closed jobs; a worker that takes one meanwhile drops
	// it too.)
	for j, ok := r.jobs.take(); ok; j, ok = r.jobs.take() {
		r.forget(j.t.lease(), true)
	}
	// Funcs that honour their context return within moments; their tasks
	// are handed back. Those still running are left to their leases: handing
	// them back would let another engine run them while they still run here.
	grace := time.NewTimer(releaseGrace)
	defer grace.Stop()
	for ; exited < r.e.cfg.Workers; exited++ {
		select {
		case <-r.exited:
			continue
		case <-grace.C:
		}
		break
	}
	r.release()
	return ctx.Err()
}

// Past its deadline, Stop waits releaseGrace for cancelled task funcs to
// return, and releaseTimeout for the store to take their tasks back.
const (
	releaseGrace   = 50 * time.Millisecond
	releaseTimeout = 250 * time.Millisecond
)

// release makes the tasks whose outcome was dropped due again at once. The
// write is fenced, so an outcome stored meanwhile wins.
func (r *run) release() {
	r.activeMu.Lock()
	leases := r.dropped
	r.activeMu.Unlock()
	if len(leases) == 0 {
		return
	}
	outs := make([]Outcome, len(leases))
	for i, l := range leases {
		outs[i] = Outcome{ID: l.ID, Attempt: l.Attempt, claim: l.claim, State: StateRetrying, Error: errStopped.Error()}
	}
	ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
	defer cancel()
	if _, err := r.e.store.Finish(ctx, outs); err != nil {
		r.e.log.Error("tasks: release unfinished tasks; the rescuer will retry them", "count", len(outs), "err", err)
	}
}

// hint tells the scheduler that tasks, new or made due again, are due at
// the given times (store clock): the next claim looks for other apps' due
// tasks too (see flowClaim.news).
func (r *run) hint(ds ...Due) {
	r.news.Store(true)
	r.hintRetries(ds...)
}

// hintRetries tells the scheduler that tasks that ran here are due again
// at the given times (store clock).
func (r *run) hintRetries(ds ...Due) {
	r.hintsMu.Lock()
	r.hints = append(r.hints, ds...)
	r.hintsMu.Unlock()
	r.poke()
}

func (r *run) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// storeNow estimates the store's clock.
func (r *run) storeNow() time.Time {
	return time.Now().Add(time.Duration(r.skew.Load()))
}

// forget ends the attempt l here; dropped says that its outcome was dropped
// and its task is to be released.
func (r *run) forget(l Lease, dropped bool) {
	r.activeMu.Lock()
	defer r.activeMu.Unlock()
	if a, ok := r.active[l.ID]; ok && a.lease == l {
		delete(r.active, l.ID)
	}
	if dropped {
		r.dropped = append(r.dropped, l)
	}
}

// cancelActive cancels the context of every active attempt.
func (r *run) cancelActive(cause error) {
	r.activeMu.Lock()
	defer r.activeMu.Unlock()
	for _, a := range r.active {
		a.revoke(cause)
	}
}

// revoke cancels the context of the attempt of task id that runs here, if
// any, or only of attempt l.Attempt when l.Attempt is not 0: the lease
// revoked may be of an earlier attempt than the one running now.
func (r *run) revoke(l Lease, cause error) {
	r.activeMu.Lock()
	defer r.activeMu.Unlock()
	if a, ok := r.active[l.ID]; ok && (l.Attempt == 0 || a.lease == l) {
		a.revoke(cause)
	}
}

// work is a worker goroutine: it runs the tasks the scheduler sends.
func (r *run) work() {
	defer func() { r.exited <- struct{}{} }()
	for j, ok := r.jobs.take(); ok; j, ok = r.jobs.take() {
		t := j.t
		select {
		case <-r.abandon: // Stop gave up waiting: start nothing more
			r.forget(t.lease(), true)
			r.idle <- struct{}{}
			continue
		default:
		}
		began := time.Now()
		out, ran := r.execute(j)
		if !ran {
			// Revoked before it started: no run time to learn from.
		} else if avg := r.runNs.Load(); avg == 0 {
			r.runNs.Store(int64(time.Since(began)))
		} else {
			r.runNs.Store(avg + (int64(time.Since(began))-avg)/8)
		}
		sent := false
		select {
		case <-r.abandon: // Stop gave up waiting: the result is dropped
		default:
			select {
			case r.results <- out:
				sent = true
			case <-r.abandon:
			}
		}
		if !sent {
			r.forget(t.lease(), true)
		}
		r.idle <- struct{}{} // never blocks: one slot per task in flight
	}
}

// dispatch makes t, just claimed, an active attempt, whose lease the
// heartbeat extends from now on, and returns its job. An earlier attempt
// of t still active here lost its lease, or the database forgot its claim,
// since the store let t be claimed again: it is revoked.
func (r *run) dispatch(t *Task) job {
	a := &attempt{lease: t.lease()}
	r.activeMu.Lock()
	if old, ok := r.active[t.ID]; ok {
		old.revoke(errLeaseRevoked)
	}
	r.active[t.ID] = a
	r.activeMu.Unlock()
	return job{t, a}
}

// execute runs the attempt of job j and returns its outcome. The attempt
// stays active, its lease extended, until its outcome is stored or given up
// (finish), or dropped (work).
//
// Its context has no parent, and no child for the timeout: registering a
// context with a parent costs a lock and a map, which were half of what a
// no-op task allocated. Revoking the attempt cancels the context, and the
// cause is kept in the attempt.
func (r *run) execute(j job) (_ Outcome, ran bool) {
	e, t, a := r.e, j.t, j.a
	timeout := e.cfg.Timeout
	if t.Timeout > 0 {
		timeout = t.Timeout
	}
	var (
		ctx      context.Context
		cancel   context.CancelFunc
		deadline time.Time
	)
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
		ctx, cancel = context.WithDeadlineCause(context.Background(), deadline, errTimeout)
	} else {
		ctx, cancel = context.WithCancel(context.Background())
	}
	defer cancel()
	r.activeMu.Lock()
	revoked := a.cause
	a.cancel, a.deadline = cancel, deadline
	r.activeMu.Unlock()
	if revoked != nil {
		// Its lease was revoked while it waited for a worker: cancel
		// requested, or lost.
		return e.outcome(t, revoked, revoked), false
	}

	late := time.Duration(-1) // not measured
	if !t.dueAt.IsZero() {
		late = max(r.storeNow().Sub(t.dueAt), 0)
	}
	e.obs.started(t, late)
	attempts, endpointID, err := e.attempt(ctx, t)
	cause := context.Cause(ctx)
	r.activeMu.Lock()
	if a.cause != nil {
		cause = a.cause
	}
	r.activeMu.Unlock()
	o := e.outcome(t, err, cause)
	o.Attempts, o.EndpointID = attempts, endpointID
	if o.WaitReason == "" {
		// One that waited for an endpoint's capacity did not happen: no
		// outcome, and no attempt in the window.
		e.obs.ended(t, o.State)
		e.window.Record(time.Now(), t.AppID, t.EventType, late, o.State == StateRetrying || o.State == StateFailed)
	}
	return o, true
}

// attempt runs the attempt of t, claimed, under ctx: t's func, or else its
// delivery to webhook endpoints. It returns the attempt's records, the
// endpoint that acknowledged it, if any, and its error.
//
// The engine's Middleware wrap the func or the delivery; a panic in
// either is recovered as one in a func.
func (e *Engine) attempt(ctx context.Context, t *Task) (attempts []Attempt, endpointID string, err error) {
	fn := e.attemptFunc(t.EventType)
	if fn == nil {
		if !e.execMW {
			return e.deliver(ctx, t)
		}
		err = call(ctx, wrapExecute(e.mws, func(ctx context.Context, t *Task) (err error) {
			attempts, endpointID, err = e.deliver(ctx, t)
			return err
		}), t)
		return attempts, endpointID, err
	}
	start := time.Now()
	err = call(ctx, fn, t)
	attempts = []Attempt{{TaskID: t.ID, Number: t.Attempts, StartedAt: start.UTC().Truncate(time.Microsecond), Duration: time.Since(start)}}
	if err != nil {
		attempts[0].Error = err.Error()
	}
	return attempts, "", err
}

// call runs fn, turning a panic into an error that carries the stack.
func call(ctx context.Context, fn Func, t *Task) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
		}
	}()
	return fn(ctx, t)
}

// outcome decides what an attempt's result means for its task.
func (e *Engine) outcome(t *Task, err, cause error) Outcome {
	o := Outcome{ID: t.ID, Attempt: t.Attempts, claim: t.claim}
	if err == nil {
		o.State = StateCompleted
		return o
	}
	o.Error = err.Error()
	if cause == errTimeout {
		o.Error = fmt.Sprintf("timed out: %v", err)
	}
	var perm *permanentError
	var after *retryAfterError
	switch {
	case cause == errCancelRequested || cause == errLeaseRevoked:
		// A lost lease makes the write stale and it is not applied.
		o.State = StateCanceled
	case waitOutcome(&o, err):
		// It waits for an endpoint's capacity: no attempt is used.
	case errors.As(err, &perm) || t.Attempts >= t.MaxAttempts:
		o.State = StateFailed
	case errors.As(err, &after):
		o.State, o.Delay = StateRetrying, max(after.d, 0)
	default:
		o.State, o.Delay = StateRetrying, e.cfg.BackoffFunc(t.Attempts)
	}
	return o
}

// complete is the completer goroutine: it stores outcomes in batches.
//
// While tasks still run here, it waits for their outcomes up to as long as
// the last Finish took (at most maxGather) before it stores a batch: under
// load one Finish then stores a claim's worth of outcomes, not a few.
func (r *run) complete() {
	defer close(r.completerDone)
	batch := make([]Outcome, 0, maxOutcomeBatch)
	var took time.Duration // by the last Finish
	gather := time.NewTimer(time.Hour)
	defer gather.Stop()
	for {
		select {
		case o, ok := <-r.results:
			if !ok {
				return
			}
			batch = append(batch, o)
		case <-r.abandon:
		}
	more:
		for len(batch) < cap(batch) {
			select {
			case o, ok := <-r.results:
				if !ok {
					break more
				}
				batch = append(batch, o)
			default:
				break more
			}
		}
		if len(batch) > 0 && took > 0 && r.running(len(batch)) {
			gather.Reset(min(took, maxGather))
		wait:
			for len(batch) < cap(batch) && r.running(len(batch)) {
				select {
				case o, ok := <-r.results:
					if !ok {
						break wait
					}
					batch = append(batch, o)
				case <-gather.C:
					break wait
				case <-r.abandon:
					break wait
				}
			}
			gather.Stop()
		}
		if len(batch) > 0 {
			began := time.Now()
			r.finish(batch)
			took = time.Since(began)
			batch = batch[:0]
		}
		select {
		case <-r.abandon:
			return
		default:
		}
	}
}

// running reports whether more than n attempts are active here: tasks
// whose outcomes have yet to reach the completer, besides the n it holds.
func (r *run) running(n int) bool {
	r.activeMu.Lock()
	defer r.activeMu.Unlock()
	return len(r.active) > n
}

// finish stores a batch of outcomes, retrying store errors a few times with
// backoff while the heartbeat keeps extending their leases. Outcomes it
// cannot store are left to the rescuer: the tasks stay running until their
// leases expire, and are never reported complete.
func (r *run) finish(outs []Outcome) {
	e := r.e
	defer func() {
		for _, o := range outs {
			r.forget(o.lease(), false)
		}
	}()
	delay := 20 * time.Millisecond
	for try := 1; ; try++ {
		// Not r.ctx: a result is stored even while the engine stops.
		ctx, cancel := context.WithTimeout(r.resultCtx, storeTimeout)
		applied, err := e.store.Finish(ctx, outs)
		cancel()
		if err == nil {
			now := r.storeNow()
			if r.freedCapacity(outs) {
				// Tasks of a key at its concurrency may start now.
				r.mayBeDue.Store(true)
				r.poke()
			}
			for i, o := range outs {
				switch {
				case !applied[i]:
					e.log.Warn("tasks: outcome not stored: the attempt's lease was lost",
						"task_id", o.ID, "attempt", o.Attempt, "state", o.State)
				case o.State == StateRetrying:
					r.hintRetries(Due{ID: o.ID, RunAt: now.Add(o.Delay)})
					if o.WaitEndpoint != "" {
						// The store makes it due now if a slot freed meanwhile.
						r.hintRetries(Due{ID: o.ID, RunAt: now})
					}
				}
			}
			return
		}
		e.obs.storeError("finish")
		if try == finishTries {
			e.log.Error("tasks: store outcomes; leaving the tasks to the rescuer",
				"count", len(outs), "err", err)
			return
		}
		select {
		case <-time.After(delay/2 + rand.N(delay/2+1)):
		case <-r.abandon:
		}
		delay *= 4
	}
}

// limit records that the tasks that a claim under fc claimed hold
// capacity of a concurrency limit.
func (r *run) limit(fc *flowClaim) {
	if len(fc.limited) == 0 {
		return
	}
	r.activeMu.Lock()
	defer r.activeMu.Unlock()
	if r.limited == nil {
		r.limited = make(map[string]bool)
	}
	for id := range fc.limited {
		r.limited[id] = true
	}
}

// freedCapacity reports whether outs, stored, ended tasks that held
// capacity of a concurrency limit, and forgets them.
func (r *run) freedCapacity(outs []Outcome) bool {
	r.activeMu.Lock()
	defer r.activeMu.Unlock()
	freed := false
	for _, o := range outs {
		if r.limited[o.ID] {
			delete(r.limited, o.ID)
			freed = true
		}
	}
	return freed
}

// maintain is the maintainer goroutine: heartbeats and rescues, until
// r.ctx is cancelled.
func (r *run) maintain() {
	e := r.e
	heartbeat := time.NewTicker(max(e.cfg.Lease/3, time.Millisecond))
	defer heartbeat.Stop()
	rescue := time.NewTimer(0)
	defer rescue.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-heartbeat.C:
			r.heartbeat()
		case <-rescue.C:
			ctx, cancel := context.WithTimeout(r.ctx, storeTimeout)
			n, err := e.store.Rescue(ctx, rescueLimit)
			cancel()
			switch {
			case err != nil && r.ctx.Err() == nil:
				e.obs.storeError("rescue")
				e.log.Error("tasks: rescue expired leases", "err", err)
			case n > 0:
				e.log.Info("tasks: rescued tasks whose lease expired", "count", n)
				r.mayBeDue.Store(true)
				r.poke()
			}
			if n == rescueLimit {
				rescue.Reset(0)
			} else {
				iv := e.cfg.RescueInterval
				rescue.Reset(iv*3/4 + rand.N(iv/2+1))
			}
		}
	}
}

// heartbeat extends the leases of the running tasks, except stuck ones, and
// cancels the tasks whose lease was revoked.
func (r *run) heartbeat() {
	e := r.e
	now := time.Now()
	r.activeMu.Lock()
	leases := make([]Lease, 0, len(r.active))
	for _, a := range r.active {
		if !a.deadline.IsZero() && now.After(a.deadline.Add(e.cfg.Lease)) {
			if !a.stuck {
				a.stuck = true
				e.log.Warn("tasks: task func ignores its context past its timeout; its lease will expire and it will be rescued",
					slog.String("task_id", a.lease.ID), slog.Int("attempt", a.lease.Attempt))
			}
			continue
		}
		leases = append(leases, a.lease)
	}
	r.activeMu.Unlock()
	if len(leases) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(r.ctx, e.cfg.Lease/3+time.Second)
	revoked, err := e.store.Extend(ctx, leases, e.cfg.Lease)
	cancel()
	if err != nil {
		if r.ctx.Err() == nil {
			e.obs.storeError("extend")
			e.log.Error("tasks: extend leases", "count", len(leases), "err", err)
		}
		return
	}
	byID := make(map[string]Lease, len(leases))
	for _, l := range leases {
		byID[l.ID] = l
	}
	for _, id := range revoked {
		r.revoke(byID[id], errLeaseRevoked)
	}
}

// listen is the listener goroutine: on a store that can listen it turns other
// engines' news into hints, listening again after each failure. Each time it
// (re)starts listening it has the scheduler re-read the store, for what it
// missed meanwhile.
func (r *run) listen() {
	backoff := minStoreBackoff
	for {
		err := r.e.store.Listen(r.ctx, func() {
			backoff = minStoreBackoff
			r.refill.Store(true)
			r.poke()
		}, func(d Due) {
			if d.ID == "" { // many tasks: read them from the store
				r.refill.Store(true)
				r.poke()
				return
			}
			r.hint(d)
		})
		switch {
		case r.ctx.Err() != nil:
			return
		case errors.Is(err, ErrNotSupported):
			return
		}
		r.e.obs.storeError("listen")
		r.e.log.Error("tasks: listen for other engines' tasks; polling meanwhile", "err", err, "retry_in", backoff)
		select {
		case <-time.After(backoff):
		case <-r.ctx.Done():
			return
		}
		backoff = min(2*backoff, r.e.cfg.PollInterval)
	}
}
