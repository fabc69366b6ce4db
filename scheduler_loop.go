package tasks

import (
	"context"
	"math/rand/v2"
	"slices"
	"time"
)

// The scheduler's window: the wheel holds the tasks due within wheelWindow,
// at most wheelLimit of them read from the store at a time, so an engine's
// memory does not grow with the backlog of a durable store. The store is
// read at least every maxRefill, half the window, so that every task comes
// into the wheel before it is due, whatever Config.PollInterval says: a
// task due later than the window, whether hinted or stored by another
// engine, is read by a refill that starts at most maxRefill before the
// window reaches it, and the windows of consecutive reads overlap by the
// time a read takes.
const (
	wheelWindow = time.Minute
	maxRefill   = wheelWindow / 2
	wheelLimit  = 1000
	hintLimit   = 100_000          // wheel entries beyond which local hints wait for a refill
	maxGather   = time.Millisecond // see scheduler.gather
	maxAhead    = 4                // claim at most maxAhead×Workers ahead
	// aheadUpTo: tasks that run longer than aheadUpTo times a claim's
	// cycle are not claimed ahead; their workers wait for claims less
	// than 1% of their time.
	aheadUpTo = 100
	// maxCycle bounds the claim's cycle that the claiming ahead reckons
	// with: one slow claim (a busy database) would otherwise have tasks
	// of minutes claimed ahead, to wait in the queue held from other
	// engines. No task longer than aheadUpTo×maxCycle is claimed ahead.
	maxCycle = 10 * time.Millisecond
)

// schedule is the scheduler goroutine: it keeps the wheel of upcoming tasks
// and claims tasks when they are due and workers are free. What it knows
// and decides is a scheduler; schedule feeds it the time and the news
// (hints, reads, claims, freed workers), and does what it decides.
//
// Under a backlog it claims ahead: as many tasks more than there are free
// workers as the pool runs, on average, in a claim's cycle (the gathering
// of freed workers and the claim; at most maxAhead times Workers), so that
// workers do not wait for each claim. The average is of every task run
// here: tasks of 20 ms, with claims of 2 ms, keep a few tasks claimed
// ahead (without them, each worker waited some 3 ms of every 23); tasks
// longer than aheadUpTo cycles are not claimed before a worker is free for
// them; a long task among many short ones may wait behind its batch.
//
// It reads the store's upcoming tasks through a reader goroutine of its
// own, so that a read (a thousand rows can take milliseconds) never holds
// up a claim of a task that is due.
func (r *run) schedule() {
	defer close(r.schedulerDone)
	e := r.e
	rd := r.startReader()
	defer rd.stop()
	defer r.jobs.close() // first: the workers need not wait for the reader
	s := newScheduler(&e.cfg, e.epoch, e.sinceEpoch())
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		select {
		case res := <-rd.res:
			r.received(s, res)
		default:
		}
		nowNs := e.sinceEpoch()
		now := nowNs / int64(wheelTick)
		if r.mayBeDue.Swap(false) {
			s.mayBeDue()
		}
		if r.refill.Swap(false) {
			s.refillNow(now)
		}
		if s.startRead(now) {
			rd.req <- struct{}{} // never blocks: nothing else is asked while reading
		}
		s.addHints(nowNs, r.takeHints())
		s.advance(now)
		if n := s.claimable(now, r.runNs.Load()); n > 0 {
			select {
			case <-r.stopping:
				return
			default:
			}
			if !r.claim(s, n) {
				continue // s backs off
			}
		}
		// Sleep until the next task is due, the next refill, or news.
		timer.Reset(time.Duration(s.nextWake(now))*wheelTick - time.Duration(e.sinceEpoch()))
		select {
		case <-r.stopping:
			return
		case <-timer.C:
		case <-r.wake:
		case res := <-rd.res:
			r.received(s, res)
		case <-r.idle:
			freed := 1
		drain:
			for {
				select {
				case <-r.idle:
					freed++
				default:
					break drain
				}
			}
			s.freed(freed, e.sinceEpoch())
		}
	}
}

// takeHints returns the hints given since it was last called.
func (r *run) takeHints() []Due {
	r.hintsMu.Lock()
	defer r.hintsMu.Unlock()
	hints := r.hints
	r.hints = nil
	return hints
}

// received hands s the result of a read of the store's upcoming tasks, and
// publishes the store's clock it learnt.
func (r *run) received(s *scheduler, res upcomingRead) {
	if res.err != nil {
		r.storeErr("read upcoming tasks", res.err, s.readFailed(r.e.sinceEpoch()))
		return
	}
	s.received(res)
	r.skew.Store(s.skew)
}

// claim claims n tasks for s and sends them to the workers. It reports
// whether the store answered; if not, s backs off.
func (r *run) claim(s *scheduler, n int) bool {
	ctx, cancel := context.WithTimeout(r.ctx, storeTimeout)
	fc := &flowClaim{news: r.news.Swap(false), from: s.floor}
	ctx = context.WithValue(ctx, flowClaimKey{}, fc)
	began := time.Now()
	claimed, err := r.e.store.Claim(ctx, n, r.e.cfg.Lease)
	cancel()
	took := time.Since(began)
	if err != nil {
		r.storeErr("claim tasks", err, s.claimFailed(took, r.e.sinceEpoch()))
		return false
	}
	s.claimed(n, claimed, took, r.e.sinceEpoch())
	if fc.moved {
		s.floor = fc.next
	}
	s.capped = fc.held && fc.room < (maxAhead+1)*s.workers
	if !fc.wakeAt.IsZero() {
		// Tasks wait for their key's capacity until then.
		s.addHints(r.e.sinceEpoch(), []Due{{ID: flowWakeID, RunAt: fc.wakeAt}})
	}
	r.limit(fc)
	r.e.obs.claimed(len(claimed))
	js := make([]job, len(claimed))
	for i, t := range claimed {
		js[i] = r.dispatch(t)
	}
	r.jobs.put(js...) // never blocks: at most (maxAhead+1)×Workers are out
	return true
}

// storeErr logs a store error that the scheduler backs off from for
// retryIn, unless the engine is stopping.
func (r *run) storeErr(what string, err error, retryIn time.Duration) {
	if r.ctx.Err() == nil {
		r.e.obs.storeError(what)
		r.e.log.Error("tasks: "+what+"; backing off", "err", err, "retry_in", retryIn)
	}
}

// scheduler is what the scheduler goroutine (run.schedule) knows and
// decides: the wheel of upcoming tasks, the claims in flight, and when to
// read the store, claim, back off after a store error, or wake. Its methods
// are its state's transitions, one for each kind of news; they do no I/O
// and read no clock: they are told the time, as ticks of the wheel (now)
// or nanoseconds since the engine's epoch (nowNs), and what the store
// answered, so that they can be tested without goroutines or a store.
//
// A scheduler is not safe for concurrent use; newScheduler makes one.
type scheduler struct {
	epoch   time.Time     // the engine's epoch: time 0 of nowNs and of the wheel
	workers int           // Config.Workers
	poll    time.Duration // Config.PollInterval

	w wheel
	// inWheel maps the ID of each task in the wheel to the due time
	// (ticks) of its one live entry. Entries it does not match are stale:
	// the task was claimed before the wheel said it was due, or added
	// again earlier; the wheel drops them when they come due.
	inWheel map[string]int64
	popped  []string     // IDs the wheel said were due since the last claim
	entries []wheelEntry // the wheel's entries due at the last advance (reused)
	// claimedInRead: the IDs of the tasks claimed while a read of the
	// upcoming tasks was in flight, which it may still show as pending;
	// the first wheelLimit of them (a read returns as many at most, the
	// earliest due, as claims take them), so that a read that does not
	// return bounds it. One it leaves out costs a claim that misses it.
	claimedInRead map[string]struct{}
	// skew is the store's clock minus ours, in nanoseconds: the largest
	// of the last reads' lower bounds (see learnSkew).
	skew  int64
	skews [skewReads]int64 // the last reads' lower bounds, a ring
	reads int              // reads received, the ring's next slot mod skewReads

	inFlight  int           // claimed here and not yet ended
	due       bool          // something may be due now: claim when workers are free
	refillAt  int64         // when to read the store's upcoming tasks next (ticks)
	reading   bool          // a read of upcoming tasks is in flight
	errUntil  int64         // after a store error, no store calls until then (ticks)
	backoff   time.Duration // after a store error
	recheck   time.Duration // after the store did not have what the wheel said was due
	recheckAt int64         // read again then (ticks), even if a read was in flight; 0: none

	// While the last claim took all it asked for (a backlog), a freed
	// worker waits up to the time a claim takes (at most maxGather)
	// for others to free up, so that one claim serves them all
	// rather than one claim each; and tasks are claimed ahead.
	backlog     bool
	took        time.Duration // how long the last claim took
	gatherUntil int64         // claim no later than this (ticks); 0: not gathering

	// floor: the position in the due order from which the claims scan
	// (claim_floor.go).
	floor duePos

	// capped: the last claim took tasks of a key with a concurrency
	// limit that it left with fewer free slots than this engine may
	// hold ((maxAhead+1)×Workers), and none is claimed ahead. A task
	// claimed ahead is running in the store, and holds a slot of its
	// key's limit while it waits here for a worker: a free worker of
	// another engine could have run a task of the key meanwhile. (A
	// claim of other keys' tasks lifts it: the next may take the key's
	// tasks ahead.)
	capped bool
}

// newScheduler returns the scheduler of an engine configured by cfg, whose
// epoch is epoch, at nowNs: nothing in its wheel, something may be due,
// and the store is to be read at once.
func newScheduler(cfg *Config, epoch time.Time, nowNs int64) *scheduler {
	return &scheduler{
		epoch:   epoch,
		workers: cfg.Workers,
		poll:    cfg.PollInterval,
		w:       wheel{now: nowNs / int64(wheelTick)},
		inWheel: make(map[string]int64),

		claimedInRead: make(map[string]struct{}),
		due:           true,
	}
}

// add puts task id in the wheel, due at due (ticks).
func (s *scheduler) add(id string, due int64) {
	// A task already in the wheel is added again only if it is now
	// due clearly earlier (rescheduled): the same time, converted from
	// the store's clock at another moment, can differ by a tick, and a
	// second entry would wake the scheduler for a task it has claimed.
	if d, ok := s.inWheel[id]; ok && d <= due+sameTime {
		return
	}
	due = max(due, s.w.now) // where the wheel files it
	s.inWheel[id] = due
	s.w.add(id, due)
}

// mayBeDue records that tasks the wheel does not hold may be due (the
// rescuer returned some): the next claim does not wait for the wheel, and
// scans from the start.
func (s *scheduler) mayBeDue() {
	s.due = true
	s.floor = duePos{}
}

// refillNow asks for a read of the store's upcoming tasks at once; if a
// read is in flight, for another once it is back, since what was asked
// about may have been stored after that read began.
func (s *scheduler) refillNow(now int64) {
	s.refillAt = now
	if s.reading {
		s.recheckAt = max(now, 1) // and again once this read is back (0 means none)
	}
}

// storeOK reports whether the store may be called at now: the scheduler is
// not backing off after a store error.
func (s *scheduler) storeOK(now int64) bool { return now >= s.errUntil }

// startRead reports whether to read the store's upcoming tasks at now, and
// if so takes that read to be in flight until received or readFailed.
func (s *scheduler) startRead(now int64) bool {
	if !s.storeOK(now) || now < s.refillAt || s.reading {
		return false
	}
	s.reading, s.recheckAt = true, 0
	return true
}

// received takes in the result of a successful read: the store's clock, the
// tasks it read, which go into the wheel, and when to read next: after
// PollInterval, at most maxRefill, sooner for a recheck asked for while
// the read was in flight, or when the wheel runs out if the read was full.
func (s *scheduler) received(res upcomingRead) {
	s.reading = false
	s.backoff = 0
	s.learnSkew(res)
	s.refillAt = ticks(res.atNs, min(s.poll, maxRefill))
	if s.recheckAt > 0 {
		s.refillAt = min(s.refillAt, s.recheckAt)
	}
	// The read scanned the due tasks from the start, and so does the next
	// claim: not from the first task read, whose time is as the Store
	// interface shows it, which a store wrapped to show another clock
	// shifts from the position in its due order that the floor holds.
	s.floor = duePos{}
	storeAt := s.epoch.Add(time.Duration(res.atNs + s.skew)) // the store's clock at atNs
	for _, d := range res.due {
		if _, ok := s.claimedInRead[d.ID]; !ok {
			s.add(d.ID, ticks(res.atNs, d.RunAt.Sub(storeAt)))
		}
	}
	clear(s.claimedInRead)
	if len(res.due) == wheelLimit {
		// The window holds more than we read: read again when the
		// wheel runs out. (While what we read is already due, the
		// claims, not the wheel, are what take the backlog.)
		last := ticks(res.atNs, res.due[len(res.due)-1].RunAt.Sub(res.storeNow))
		if last > res.atNs/int64(wheelTick) {
			s.refillAt = min(s.refillAt, last)
		}
	}
}

// skewReads is how many reads' clocks the skew is learnt from.
const skewReads = 8

// learnSkew learns the skew from a read. A store's clock read at a
// moment between a call and its return is at least its clock at the call's
// return less our clock then: a lower bound of the skew, which wakes
// nothing early, and the closer the faster the call. A read of a thousand
// tasks took 6–9 ms, and taking its bound for the skew woke every task
// that late (tasksbench W5 on PostgreSQL); the read's first call, which
// reads only the clock, takes a fraction of a millisecond. The skew is the
// largest bound of the last skewReads reads (a fast call among them makes
// it close).
//
// The store's clock read is also at most its clock at the call's start less
// our clock then: an upper bound. A skew above a read's upper bound proves
// that the store's clock was set back since the reads it was learnt from
// (a memory or SQLite store's clock is the process's wall clock, which NTP
// may step): those reads are forgotten and the skew follows at once.
// Otherwise every task would wake early, its claim would not find it, and
// the rechecks that follow, each later than the last, would start it up to
// one recheck late (27 ms for a task due 100 ms after the clock went back).
// The same bounds of the two calls of a read show when they answered with
// different clocks; the clock call is then not learnt from.
func (s *scheduler) learnSkew(res upcomingRead) {
	local := func(ns int64) time.Time { return s.epoch.Add(time.Duration(ns)) }
	from := res.beganNs // when the read's own call began
	if !res.clock.IsZero() {
		from = res.clockNs
	}
	bound := int64(res.storeNow.Sub(local(res.atNs)))
	upper := int64(res.storeNow.Sub(local(from)))
	if !res.clock.IsZero() {
		cb, cu := int64(res.clock.Sub(local(res.clockNs))), int64(res.clock.Sub(local(res.beganNs)))
		// Bounds that do not meet show that the clock call answered
		// with another clock than the read (a store that answers it
		// from the process's clock, say): the read's is the one its
		// due times, and claims, follow.
		if r := int64(storeClockResolution); cb <= upper+r && bound <= cu+r {
			bound, upper = max(bound, cb), min(upper, cu)
		}
	}
	if s.reads > 0 && s.skew > upper+int64(storeClockResolution) {
		s.reads = 0 // the store's clock was set back
	}
	s.skews[s.reads%skewReads] = bound
	s.reads++
	s.skew = bound
	for _, b := range s.skews[:min(s.reads, skewReads)] {
		s.skew = max(s.skew, b)
	}
}

// storeClockResolution is the resolution of the stores' clocks (they keep
// times to the microsecond): a skew within it of a read's upper bound is no
// sign that the store's clock was set back. (A coarser clock is taken to
// have been set back at each read, and the skew is that read's bound.)
const storeClockResolution = time.Microsecond

// readFailed takes in that a read failed, at nowNs, and backs off; it
// returns for how long (see backOff).
func (s *scheduler) readFailed(nowNs int64) time.Duration {
	s.reading = false
	clear(s.claimedInRead)
	return s.backOff(nowNs)
}

// backOff makes the scheduler call the store no more until a delay from
// nowNs, and returns that delay: random between half and all of a backoff
// that doubles with each store error in a row, from minStoreBackoff up to
// PollInterval.
func (s *scheduler) backOff(nowNs int64) time.Duration {
	s.backoff = min(max(2*s.backoff, minStoreBackoff), s.poll)
	jittered := s.backoff/2 + rand.N(s.backoff/2+1)
	s.errUntil = ticks(nowNs, jittered)
	return jittered
}

// addHints puts into the wheel the hinted tasks (due times on the store's
// clock) due within the window from nowNs, while it holds fewer than
// hintLimit tasks; a refill reads the others.
func (s *scheduler) addHints(nowNs int64, hints []Due) {
	// The store's clock at nowNs, not at a later moment: the hints'
	// due times are reckoned from nowNs.
	storeNow := s.epoch.Add(time.Duration(nowNs + s.skew))
	for _, h := range hints {
		if h.ID != flowWakeID {
			s.lowerFloor(duePos{at: h.RunAt.Add(-floorMargin)})
		}
		delay := h.RunAt.Sub(storeNow)
		if delay <= wheelWindow && len(s.inWheel) < hintLimit {
			s.add(h.ID, ticks(nowNs, delay))
		}
	}
}

// advance moves the wheel to now: the tasks it held due by then are due,
// but for stale entries (see inWheel).
func (s *scheduler) advance(now int64) {
	s.entries = s.w.advance(now, s.entries[:0])
	popped := len(s.popped)
	for _, e := range s.entries {
		if d, ok := s.inWheel[e.id]; ok && d == e.due {
			delete(s.inWheel, e.id)
			s.popped = append(s.popped, e.id)
		}
	}
	if len(s.popped) > popped {
		s.due = true
	}
	// A wake-up for tasks waiting for their flow key's capacity is no
	// task that a claim could miss.
	s.popped = slices.DeleteFunc(s.popped, func(id string) bool { return id == flowWakeID })
}

// claimable returns how many tasks to claim at now, 0 for none: as many as
// may be claimed here at once (Workers, and under a backlog those to claim
// ahead of tasks that run runNs each on average) less those in flight, when something may be due, the store is not backing off and
// no freed worker is gathering others.
func (s *scheduler) claimable(now, runNs int64) int {
	slots := s.workers // tasks that may be claimed here at once
	if s.backlog {
		slots += s.ahead(runNs)
	}
	free := slots - s.inFlight
	gathering := s.backlog && free < slots && s.gatherUntil > now
	if !s.due || free <= 0 || !s.storeOK(now) || gathering {
		return 0
	}
	return free
}

// gather returns how long a freed worker waits for others to free up under
// a backlog: as long as the last claim took, at most maxGather.
func (s *scheduler) gather() time.Duration { return min(s.took, maxGather) }

// ahead returns how many tasks to claim beyond the workers under a backlog
// of tasks that run runNs each on average: as many as the pool runs in a
// claim's cycle (a gathering and a claim, at most maxCycle), rounded up,
// at most maxAhead times Workers; none before a task ran here, for tasks
// longer than aheadUpTo cycles, or while the last claim left a key with a
// concurrency limit short of free slots (capped).
func (s *scheduler) ahead(runNs int64) int {
	cycle := int64(min(s.gather()+s.took, maxCycle))
	if s.capped || runNs <= 0 || cycle <= 0 || runNs > aheadUpTo*cycle {
		return 0
	}
	return int(min(maxAhead*int64(s.workers), (int64(s.workers)*cycle+runNs-1)/runNs))
}

// claimed takes in the tasks that a claim of asked tasks returned, after
// took, at nowNs: they are in flight, and more are due if it took all it
// asked for.
func (s *scheduler) claimed(asked int, tasks []*Task, took time.Duration, nowNs int64) {
	s.took, s.gatherUntil = took, 0
	s.backoff = 0
	s.due = len(tasks) == asked
	s.backlog = s.due
	if !s.due && missing(s.popped, tasks) {
		// The wheel said due, the store did not (its clock is
		// behind ours, or another engine holds the task): ask
		// the store again soon, less soon each time.
		s.recheck = min(max(2*s.recheck, time.Millisecond), s.poll)
		s.recheckAt = ticks(nowNs, s.recheck)
		s.refillAt = min(s.refillAt, s.recheckAt)
	} else if s.due || len(s.popped) > 0 {
		s.recheck = 0
	}
	s.popped = s.popped[:0]
	s.inFlight += len(tasks)
	// A claim takes every task due by the store's clock, also those the
	// wheel would say are due only later (it wakes by a lower bound of
	// that clock). Their entries are stale now: a claim when they came
	// due would not find them, and the store would be read again for
	// nothing (1,014 rereads of 1,000 tasks for 1,195 claims in W5).
	for _, t := range tasks {
		delete(s.inWheel, t.ID)
		if s.reading && len(s.claimedInRead) < wheelLimit {
			s.claimedInRead[t.ID] = struct{}{}
		}
	}
}

// claimFailed takes in that a claim failed after took, at nowNs, and backs
// off; it returns for how long (see backOff). A failed claim (it may have
// waited storeTimeout) tells nothing of how long claims take: the last
// claim's cycle stays.
func (s *scheduler) claimFailed(took time.Duration, nowNs int64) time.Duration {
	s.gatherUntil = 0
	return s.backOff(nowNs)
}

// freed takes in that n claimed tasks ended, at nowNs. Under a backlog, the
// freed workers start gathering others, for as long as a claim takes.
func (s *scheduler) freed(n int, nowNs int64) {
	s.inFlight -= n
	if g := s.gather(); s.backlog && s.gatherUntil == 0 && g >= wheelTick {
		s.gatherUntil = ticks(nowNs, g)
	}
}

// nextWake returns when to wake next (ticks), with nothing new to hear of
// meanwhile, having done at now what was to be done: when the backoff
// after a store error ends, else at the earliest of the next refill, the
// next task due in the wheel, and the end of a gathering of workers that
// holds up a claim. (A gathering is only under a backlog and ended by a
// claim, so one that holds up a claim is one that has not ended.)
func (s *scheduler) nextWake(now int64) int64 {
	if !s.storeOK(now) {
		return s.errUntil
	}
	wakeAt := now + int64(time.Hour/wheelTick) // no sooner than news, while reading
	if !s.reading {
		wakeAt = s.refillAt
	}
	if next, ok := s.w.next(); ok {
		wakeAt = min(wakeAt, next)
	}
	if s.due && s.gatherUntil > now {
		wakeAt = min(wakeAt, s.gatherUntil)
	}
	return wakeAt
}

// reader is the scheduler's reader goroutine (run.read) and its channels.
type reader struct {
	req    chan struct{}     // scheduler → reader: read now
	res    chan upcomingRead // reader → scheduler: at most one, per request
	cancel context.CancelFunc
	done   chan struct{}
}

// startReader starts the scheduler's reader goroutine.
func (r *run) startReader() *reader {
	ctx, cancel := context.WithCancel(r.ctx)
	rd := &reader{
		req:    make(chan struct{}, 1),
		res:    make(chan upcomingRead, 1),
		cancel: cancel,
		done:   make(chan struct{}),
	}
	go r.read(ctx, rd.req, rd.res, rd.done)
	return rd
}

// stop stops the reader goroutine and waits for it to end.
func (rd *reader) stop() {
	rd.cancel() // a read in flight is of no use now
	close(rd.req)
	<-rd.done
}

// upcomingRead is what a read of the store's upcoming tasks returned, and
// when (nanoseconds since the engine's epoch); when its first call began;
// and the store's clock as that call returned it (without tasks), and when.
type upcomingRead struct {
	storeNow time.Time
	due      []Due
	atNs     int64
	err      error

	beganNs int64 // when the read's first call began
	clock   time.Time
	clockNs int64
}

// read is the scheduler's reader goroutine: for each request on req it
// reads the store's upcoming tasks, within ctx, and sends the result on
// res, until req is closed; then it closes done.
func (r *run) read(ctx context.Context, req <-chan struct{}, res chan<- upcomingRead, done chan<- struct{}) {
	defer close(done)
	for range req {
		ctx, cancel := context.WithTimeout(ctx, storeTimeout)
		rd := upcomingRead{beganNs: r.e.sinceEpoch()}
		// The clock alone first: see scheduler.learnSkew.
		rd.clock, _, rd.err = r.e.store.Upcoming(ctx, 0, 0)
		rd.clockNs = r.e.sinceEpoch()
		if rd.err == nil {
			rd.storeNow, rd.due, rd.err = r.e.store.Upcoming(ctx, wheelWindow, wheelLimit)
		}
		rd.atNs = r.e.sinceEpoch()
		cancel()
		res <- rd // never blocks: one per request
	}
}

// missing reports whether an ID of want is not among the claimed tasks.
func missing(want []string, claimed []*Task) bool {
	if len(want) > len(claimed) {
		return true
	}
	ids := make(map[string]bool, len(claimed))
	for _, t := range claimed {
		ids[t.ID] = true
	}
	for _, id := range want {
		if !ids[id] {
			return true
		}
	}
	return false
}

func (e *Engine) sinceEpoch() int64 { return int64(time.Since(e.epoch)) }

// sameTime is how many ticks apart two due times of one task may be and
// still be taken for the same.
const sameTime = int64(time.Millisecond / wheelTick)

// ticks converts a delay from nowNs (nanoseconds since the epoch) into the
// wheel's time, rounding up so that no task is woken early.
func ticks(nowNs int64, delay time.Duration) int64 {
	t := nowNs + int64(delay)
	return (t + int64(wheelTick) - 1) / int64(wheelTick)
}
