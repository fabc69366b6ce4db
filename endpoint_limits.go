package tasks

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"
)

// Limits per webhook endpoint: Endpoint.RateLimit (deliveries per second)
// and Endpoint.MaxInFlight (deliveries at once), global across every
// engine sharing the store.
//
// Design. The engine enforces them where a delivery happens, not when a
// task is claimed: a task is claimed whole, and its endpoints have their
// own limits, so a claim cannot know which of them will have capacity.
// Before it sends a task to an endpoint with a limit, deliver takes the
// endpoint's capacity from the store (Store.TakeEndpointCapacity): in one
// transaction under the endpoint's row, a token of its rate limit's bucket
// (kept in the store, like a flow key's, see flowState) and a slot of its
// max in flight. A slot is a row held by the delivering attempt (task ID
// and attempt number) and counts only while that task is running at that
// attempt: a process that dies mid-delivery gives its slots back when its
// task's lease is rescued, with no lease of their own to expire. The
// delivery gives its slot back when it ends (Store.ReleaseEndpointCapacity),
// which makes the earliest task waiting for a slot of the endpoint due at
// once (a wake-up; on PostgreSQL every engine hears of it).
//
// The task is delivered at once to the endpoints that have capacity (and
// to those without limits). If some endpoints had none, and every other
// delivery was acknowledged, the attempt does not count: the task goes
// back to waiting (Outcome.WaitReason), scheduled or retrying as it was,
// its Attempts one less, with a WaitReason naming the endpoint, due when
// the next token is (a rate limit) or when a slot frees (a max in flight;
// with a fallback of a lease, for slots freed by a rescue). A delivery
// refused a token queues for one (see endpointCapacity); when the endpoint
// is the only one that the task's event type goes to, the same take also
// queues the app's other due tasks of that event type behind it
// (parkBatch at most), each due at its own token: a backlog due at once
// then costs a few takes rather than a claim, a take and a waiting
// outcome per task, and the tasks queued for the first tokens are not
// claimed after the whole backlog (which is older) was refused. The next
// attempt re-sends only to the endpoints that did not acknowledge, as any
// retry does. If another delivery failed, the attempt is a failed attempt
// as ever, and the waiting endpoints are tried at its retry.
//
// Without a limit on any endpoint of the task's app this costs no store
// statement: the endpoints come from the engine's cache, and the history
// is read only when the attempt is not the run's first, or the task has
// an EndpointID (an attempt that waited after an endpoint acknowledged it
// left records under the number the next one takes again, and the limits
// may have been removed since). An update of an endpoint makes the tasks
// waiting for its limits due at once (so raising one wakes them). The
// limits themselves are read from the store at each take, so that a change
// holds at once for an endpoint that had a limit; one set on an endpoint
// that had none is seen within the cache's second (see Endpoint).

// maxEndpointRate bounds Endpoint.RateLimit and MaxInFlight: a million is
// no limit.
const maxEndpointRate = 1e6

// The reasons a task waits for an endpoint, in Task.WaitReason.
func waitEndpointSlots(id string) string {
	return "max_in_flight: endpoint " + id + " has its max_in_flight deliveries in flight"
}

func waitEndpointRate(id string) string {
	return "rate_limit: endpoint " + id + "'s rate_limit is reached"
}

// validateEndpointLimits checks the limits of ep.
func validateEndpointLimits(ep *Endpoint) error {
	switch r := ep.RateLimit; {
	case math.IsNaN(r) || math.IsInf(r, 0):
		return invalid("rate_limit", "must be a number")
	case r < 0:
		return invalid("rate_limit", "must not be negative")
	case r > maxEndpointRate:
		return invalid("rate_limit", "more than %g per second", float64(maxEndpointRate))
	case ep.MaxInFlight < 0:
		return invalid("max_in_flight", "must not be negative")
	case ep.MaxInFlight > maxEndpointRate:
		return invalid("max_in_flight", "more than %d", int(maxEndpointRate))
	}
	return nil
}

// limited reports whether ep has a limit.
func (ep *Endpoint) limited() bool { return ep.RateLimit > 0 || ep.MaxInFlight > 0 }

// endpointBucket returns the token bucket of an endpoint's rate limit
// rate, holding tokens at tokensAt, or full when tokensAt is zero (a new
// bucket), refilled to now. Its burst is a tenth of a second's tokens, at
// least one, so that deliveries are spread over each second.
func endpointBucket(rate, tokens float64, tokensAt, now time.Time) *flowState {
	f := &flowState{Limit: Limit{Rate: rate, Burst: max(1, int(math.Ceil(rate/10)))}}
	if tokensAt.IsZero() {
		f.tokens, f.tokensAt = float64(f.Burst), now
	} else {
		f.tokens, f.tokensAt = tokens, tokensAt
	}
	f.refill(now)
	return f
}

// endpointCapacity decides a take of an endpoint's capacity: with
// maxInFlight its max in flight, inFlight its deliveries in flight and
// bucket its rate limit's bucket (nil without one), refilled to now, it
// reports whether one more delivery may start now, taking its token if
// so, or else how long until it may (0: when a slot frees).
//
// Deliveries refused a token queue: queue is when the last of them is to
// come back (zero: none waits); a refused delivery is told to come back
// 1/rate after it, or at the next token if that is later, moves queue
// there, and is marked as queued (reserve; the caller records it, and
// reserved says that the attempt comes back so marked). While deliveries
// are queued (queue is after now), only queued ones take tokens; others
// queue behind them. So the deliveries that wait come back in turn, one
// per token, and find their token, rather than all of them at each token
// for one to win it, or new ones taking the tokens from them. Tokens are
// still taken from the bucket as they come, so however late the queued
// deliveries come back, no second sees more than the burst and the rate.
func endpointCapacity(maxInFlight, inFlight int, bucket *flowState, queue *time.Time, reserved bool, now time.Time) (ok bool, wait time.Duration, reserve bool) {
	if maxInFlight > 0 && inFlight >= maxInFlight {
		return false, 0, reserved
	}
	if bucket == nil || bucket.Rate <= 0 {
		return true, 0, false
	}
	if bucket.tokens >= 1 && (reserved || !queue.After(now)) {
		bucket.take(1)
		return true, 0, false
	}
	at := now
	if t := bucket.nextToken(); t.After(at) {
		at = t
	}
	if queue.After(at) {
		at = *queue
	}
	*queue = at.Add(endpointStep(bucket.Rate))
	return false, max(at.Sub(now), time.Microsecond), true
}

// endpointStep is the time between the turns of deliveries queued for
// tokens of a rate limit rate (see endpointCapacity), to the microsecond,
// as the stores keep times.
func endpointStep(rate float64) time.Duration {
	return time.Duration(min(1/rate, maxTokenWait.Seconds()) * float64(time.Second)).Truncate(time.Microsecond)
}

// waitError ends a delivery attempt that some endpoints' limits held back
// while every other delivery was acknowledged: the attempt is not counted
// and the task waits (see Outcome.WaitReason).
type waitError struct {
	reason   string
	endpoint string // of a max in flight, or ""
	delay    time.Duration
}

func (e *waitError) Error() string { return "waiting: " + e.reason }

// endpointWaits collects, for one attempt, the endpoints whose limits held
// it back: the reason of the first, and the soonest time one may take it.
type endpointWaits struct {
	skipped  int
	reason   string
	endpoint string        // the first held back by its max in flight
	delay    time.Duration // soonest; 0 until one is known
	slots    bool          // some wait for a slot
}

// parkBatch is how many other tasks a take refused a token asks the store
// to queue with it (see Store.TakeEndpointCapacity).
const parkBatch = 256

// takeEndpoint takes capacity of the limited endpoint ep for attempt t,
// and reports whether t may be delivered to it now; if not, w records
// why. A store error is returned; the delivery is then not made. only
// says that ep is the only endpoint t's app delivers t's event type to:
// a refused token then queues the other due tasks that wait for one too,
// in the same step, rather than each at the cost of its own claim, take
// and outcome.
func (e *Engine) takeEndpoint(ctx context.Context, ep *Endpoint, t *Task, w *endpointWaits, only bool) (bool, error) {
	park := 0
	if only && ep.RateLimit > 0 {
		park = parkBatch
	}
	ok, wait, parked, err := e.store.TakeEndpointCapacity(ctx, ep.ID, t.lease(), park, waitEndpointRate(ep.ID))
	if r := e.current(); r != nil && len(parked) > 0 {
		r.hint(parked...)
	}
	if err != nil || ok {
		return ok, err
	}
	w.skipped++
	if wait == 0 {
		if w.endpoint == "" {
			w.endpoint = ep.ID
		}
		w.slots = true
		if w.reason == "" {
			w.reason = waitEndpointSlots(ep.ID)
		}
		return false, nil
	}
	if w.reason == "" {
		w.reason = waitEndpointRate(ep.ID)
	}
	if w.delay == 0 || wait < w.delay {
		w.delay = wait
	}
	return false, nil
}

// wait returns the error that makes the attempt wait for w's endpoints.
func (e *Engine) wait(w *endpointWaits) error {
	d := w.delay
	if w.slots {
		// A slot freed wakes the task; the lease bounds the wait for one
		// that a rescue frees.
		fallback := e.cfg.Lease
		if d == 0 || fallback < d {
			d = fallback
		}
	}
	return &waitError{reason: w.reason, endpoint: w.endpoint, delay: d}
}

// releaseEndpoint gives back the slot that attempt t holds of ep, if ep
// has a max in flight, and wakes what that lets start.
func (e *Engine) releaseEndpoint(ctx context.Context, ep *Endpoint, t *Task) {
	if ep.MaxInFlight <= 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	woke, err := e.store.ReleaseEndpointCapacity(ctx, ep.ID, t.lease())
	if err != nil {
		// The slot comes back when the attempt ends.
		e.log.Error("tasks: release endpoint slot", "endpoint_id", ep.ID, "task_id", t.ID, "err", err)
		return
	}
	if r := e.current(); r != nil && len(woke) > 0 {
		r.hint(woke...)
	}
}

// waitOutcome turns o, the outcome of an attempt that ended with err, into
// one that waits, if err is a waitError, and reports whether it did.
func waitOutcome(o *Outcome, err error) bool {
	var w *waitError
	if !errors.As(err, &w) {
		return false
	}
	o.State, o.Delay, o.Error = StateRetrying, w.delay, ""
	o.WaitReason, o.WaitEndpoint = w.reason, w.endpoint
	return true
}

// takeError is the attempt record of a delivery that could not take its
// endpoint's capacity for a store error.
func takeError(err error) error {
	return fmt.Errorf("take endpoint capacity: %w", err)
}
