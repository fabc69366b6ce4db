package tasks

// Endpoints' health: disabling endpoints whose deliveries keep failing.

import (
	"context"
	"time"
)

// An endpoint's health is kept in the store (Store.RecordEndpointHealth):
// FailingSince, the start of the current run of failed deliveries, and
// when and why the engine disabled it. After each attempt to deliver to an
// endpoint, the engine records whether it settled. What it costs:
//
//   - An acknowledged attempt to an endpoint that the engine's endpoint
//     cache shows healthy (FailingSince nil) costs nothing: no write, no
//     round trip. One that the cache shows failing clears FailingSince in
//     the store, a write only if it is still set there.
//   - A failed attempt is recorded unless the cache shows a run of
//     failures that cannot reach DisableAfter within healthSkipMargin: that
//     failure would change nothing.
//
// A call that changes the endpoint (a run begins or ends, or the endpoint
// is disabled) empties the cache, so that this engine's next delivery
// reads the endpoint as it now is: once this engine disables an
// endpoint, its deliveries stop at once, and those of engines in other
// processes within endpointCacheTTL. The same emptying means that after
// this engine records a failure, its next success is recorded too.
//
// An engine in another process may acknowledge a delivery made with
// endpoints it read, at most endpointCacheTTL earlier, before this engine
// began a run of failures; that success does not end the run. Such a run
// began at most endpointCacheTTL (plus the delivery's duration) before a
// success, and every delivery that read the endpoint after that does end
// it.

// healthSkipMargin is how far ahead of DisableAfter's end, on this
// process's clock, a failure of an endpoint that is already failing is
// still recorded: the store's clock may differ from this process's by
// less than this. Skipping a failure never disables an endpoint wrongly;
// at worst a later failure disables it.
const healthSkipMargin = time.Minute

// recordHealth records in the store the attempt a to deliver to ep, as ep
// was cached when the delivery began, and logs it if that disabled ep.
func (e *Engine) recordHealth(ctx context.Context, ep *Endpoint, a *Attempt) {
	if ctx.Err() != nil {
		return // canceled, timed out or stopped: nothing to say of the endpoint
	}
	ok := acknowledges(a)
	gone := !ok && settles(a) // 410 Gone, in full
	disableAfter := e.cfg.Webhooks.DisableAfter
	switch {
	case ok && ep.FailingSince == nil:
		return
	case !ok && !gone && ep.FailingSince != nil &&
		time.Until(ep.FailingSince.Add(disableAfter)) > healthSkipMargin:
		return
	}
	changed, err := e.store.RecordEndpointHealth(ctx, ep.ID, ok, gone, disableAfter)
	if err != nil {
		e.log.Error("tasks: record endpoint health", "endpoint", ep.ID, "app", ep.AppID, "err", err)
		return
	}
	if changed == nil {
		return
	}
	e.endpoints.invalidate()
	if changed.Status == EndpointInactive {
		e.log.Warn("tasks: endpoint disabled", "endpoint", ep.ID, "app", ep.AppID, "url", ep.URL,
			"reason", changed.DisabledReason, "disabled_at", changed.DisabledAt)
	}
}
