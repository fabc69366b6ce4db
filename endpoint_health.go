package tasks

// Endpoints' health: disabling endpoints whose deliveries keep failing.

import (
	"context"
	"errors"
	"sync"
	"time"
)

// An endpoint's health is kept in the store (Store.RecordEndpointHealth):
// FailingSince, the start of the current run of failed deliveries;
// LastSuccessAt, about when a delivery was last acknowledged; and when
// and why the engine disabled it. After each attempt to deliver to an
// endpoint, the engine records whether it settled. What it costs:
//
//   - An acknowledged attempt to an endpoint that the engine's endpoint
//     cache shows healthy (FailingSince nil) is recorded only if this
//     engine has not recorded one for the endpoint in the last
//     healthRecordEvery: per endpoint and engine, one statement every 25
//     seconds or so, which writes only if LastSuccessAt is older than
//     healthResolution (so at most about one write per endpoint every 30
//     seconds, however many engines deliver to it). One that the cache
//     shows failing clears FailingSince in the store, and sets
//     LastSuccessAt.
//   - A failed attempt is recorded unless the cache shows an endpoint
//     that cannot be disabled within healthSkipMargin: that failure would
//     change nothing.
//
// A call that changes what deliveries read of the endpoint (a run begins
// or ends, or the endpoint is disabled) empties the cache, so that this
// engine's next delivery reads the endpoint as it now is: once this
// engine disables an endpoint, its deliveries stop at once, and those of
// engines in other processes within endpointCacheTTL. The same emptying
// means that after this engine records a failure, its next success is
// recorded too.
//
// An engine may acknowledge a delivery made with the endpoint as it read
// it, healthy, before another engine began a run of failures, and skip
// recording it; that success does not end the run. It does keep the
// endpoint from being disabled for DisableAfter after it: the store
// disables an endpoint for failing only if LastSuccessAt is also more
// than DisableAfter plus twice healthResolution ago, and every skipped
// success came less than healthRecordEvery after the start of a call
// that left LastSuccessAt no more than healthResolution before that
// start (see Store.RecordEndpointHealth), so LastSuccessAt is never more
// than twice healthResolution older than a success, both read on the
// store's clock. The price is that an endpoint is disabled up to a minute
// (twice healthResolution) later than DisableAfter into its run of
// failures.

// healthResolution is the resolution at which the engine records
// acknowledged deliveries to endpoints in the store (the resolution of
// Store.RecordEndpointHealth): the store writes a success of an endpoint
// that is not failing only if its LastSuccessAt is at least this old.
const healthResolution = 30 * time.Second

// healthRecordEvery is how often, at most, an engine records an
// acknowledged delivery to an endpoint that it reads healthy. It is
// shorter than healthResolution by a margin for the store's clock, which
// LastSuccessAt is on, to run at another pace than this process's
// monotonic clock, which this is measured on, or to be stepped a little.
const healthRecordEvery = healthResolution - 5*time.Second

// healthSkipMargin is how far ahead of the time when an endpoint that is
// already failing may be disabled, on this process's clock, a failure is
// still recorded: the store's clock may differ from this process's by
// less than this. Skipping a failure never disables an endpoint wrongly;
// at worst a later failure disables it.
const healthSkipMargin = time.Minute

// recordHealth records in the store the attempt a to deliver to ep, as ep
// was cached when the delivery began, and logs it if that disabled ep.
// ctx is the attempt's: an attempt canceled (its task's cancellation
// requested, its lease lost, or the engine stopping) says nothing of the
// endpoint, but one that timed out (Config.Timeout, or the task's, shorter
// than WebhookConfig.Timeout) is a failure of the endpoint to answer in
// time, as the webhook client's own timeout is: it is recorded, in a
// context of its own.
func (e *Engine) recordHealth(ctx context.Context, ep *Endpoint, a *Attempt) {
	if ctx.Err() != nil {
		if !errors.Is(context.Cause(ctx), errTimeout) {
			return
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
		defer cancel()
	}
	ok := acknowledges(a)
	gone := !ok && settles(a) // 410 Gone, in full
	disableAfter := e.cfg.Webhooks.DisableAfter
	began := time.Now()
	switch {
	case ok && ep.FailingSince == nil && e.healthCalls.recent(ep.ID, began):
		return
	case !ok && !gone && ep.FailingSince != nil && time.Until(disablesFrom(ep, disableAfter)) > healthSkipMargin:
		return
	}
	changed, err := e.store.RecordEndpointHealth(ctx, ep.ID, ok, gone, disableAfter, healthResolution)
	if err != nil {
		e.log.Error("tasks: record endpoint health", "endpoint", ep.ID, "app", ep.AppID, "err", err)
		return
	}
	if ok {
		e.healthCalls.done(ep.ID, began)
	}
	if changed == nil || changed.Status == ep.Status && (changed.FailingSince == nil) == (ep.FailingSince == nil) {
		return // deliveries read nothing new: LastSuccessAt at most
	}
	e.endpoints.invalidate()
	if !ok && changed.Status == EndpointInactive {
		e.log.Warn("tasks: endpoint disabled", "endpoint", ep.ID, "app", ep.AppID, "url", ep.URL,
			"reason", changed.DisabledReason, "disabled_at", changed.DisabledAt)
	}
}

// disablesFrom returns the earliest time, on the store's clock, at which
// a failure may disable the endpoint ep, which is failing, as read: the
// store's FailingSince and LastSuccessAt are those read, or later.
func disablesFrom(ep *Endpoint, disableAfter time.Duration) time.Time {
	t := ep.FailingSince.Add(disableAfter)
	if ep.LastSuccessAt != nil {
		if l := ep.LastSuccessAt.Add(disableAfter).Add(2 * healthResolution); l.After(t) {
			t = l
		}
	}
	return t
}

// healthCalls holds when, on the monotonic clock, an engine last began
// recording an acknowledged delivery to each endpoint, in a call that
// returned no error, for the endpoints it did so in the last
// healthRecordEvery or so: older entries are swept as new ones come. Its
// zero value is empty and ready for use; it is safe for concurrent use.
type healthCalls struct {
	mu    sync.Mutex
	began map[string]time.Time // by endpoint ID
	swept time.Time            // when entries older than healthRecordEvery were last removed
}

// recent reports whether a success of endpoint id was recorded from less
// than healthRecordEvery before now.
func (c *healthCalls) recent(id string, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	began, ok := c.began[id]
	return ok && now.Sub(began) < healthRecordEvery
}

// done notes that a call recording a success of endpoint id, begun at
// began, returned no error. At most every healthRecordEvery, it first
// removes the entries older than that, which recent no longer reports:
// those of endpoints deleted or no longer delivered to.
func (c *healthCalls) done(id string, began time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if began.Sub(c.swept) >= healthRecordEvery {
		for id, b := range c.began {
			if began.Sub(b) >= healthRecordEvery {
				delete(c.began, id)
			}
		}
		c.swept = began
	}
	if c.began == nil {
		c.began = make(map[string]time.Time)
	}
	if b, ok := c.began[id]; !ok || began.After(b) {
		c.began[id] = began
	}
}
