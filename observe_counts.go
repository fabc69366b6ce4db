package tasks

import (
	"context"
	"sync/atomic"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// The counters of tasks enqueued, attempts started and attempts ended are
// observable counters: the engine counts in atomics of its own, and the
// SDK reads them when it collects. A measurement of a synchronous counter
// costs the SDK a few hundred nanoseconds (it resolves the attribute set
// each time, even a precomputed one), which an attempt would pay twice;
// an atomic add costs a few. What the SDK reports is the same: a
// monotonic sum per attribute set, cumulative or delta as its reader
// says, with no exemplars (the engine offered none).

// outcomeStates are the outcomes of attempts that taskwheel.attempt.outcomes
// counts, in the order of eventCounts.outcomes.
var outcomeStates = [...]State{StateCompleted, StateRetrying, StateFailed, StateCanceled}

// outcomeIndex returns the index of s in outcomeStates, or -1.
func outcomeIndex(s State) int {
	switch s {
	case StateCompleted:
		return 0
	case StateRetrying:
		return 1
	case StateFailed:
		return 2
	case StateCanceled:
		return 3
	}
	return -1
}

// eventCounts counts the tasks and attempts of one event type (or of all
// the event types past maxEventTypes) for the observable counters.
type eventCounts struct {
	sent, consumed atomic.Int64
	outcomes       [len(outcomeStates)]atomic.Int64

	sentObs, consumedObs []metric.ObserveOption
	outcomeObs           [len(outcomeStates)][]metric.ObserveOption
}

// newEventCounts returns the counts of eventType, at zero.
func newEventCounts(eventType string) *eventCounts {
	with := func(kv attribute.KeyValue) []metric.ObserveOption {
		return []metric.ObserveOption{metric.WithAttributeSet(attribute.NewSet(
			semconv.MessagingSystemKey.String(messagingSystem), semconv.MessagingDestinationName(eventType), kv))}
	}
	c := &eventCounts{
		sentObs:     with(semconv.MessagingOperationName("send")),
		consumedObs: with(semconv.MessagingOperationName("process")),
	}
	for i, s := range outcomeStates {
		c.outcomeObs[i] = with(attrOutcome.String(string(s)))
	}
	return c
}

// observe reports the counts that are not zero: a counter that has counted
// nothing reports no point, as a synchronous one would not.
func (c *eventCounts) observe(o *instrumentation, obs metric.Observer) {
	if n := c.sent.Load(); n > 0 {
		obs.ObserveInt64(o.sent, n, c.sentObs...)
	}
	if n := c.consumed.Load(); n > 0 {
		obs.ObserveInt64(o.consumed, n, c.consumedObs...)
	}
	for i := range c.outcomes {
		if n := c.outcomes[i].Load(); n > 0 {
			obs.ObserveInt64(o.outcomes, n, c.outcomeObs[i]...)
		}
	}
}

// registerCounts registers the callback that reports the counts, if
// metrics are on. It is never unregistered: like the sums of synchronous
// counters, which the SDK keeps for the meter provider's life, the counts
// an engine made stay reported after the engine is gone, so that no
// counter goes down. What stays is the engine's counts, not the engine.
func (o *instrumentation) registerCounts() {
	if !o.metrics {
		return
	}
	o.overflow = newEventCounts("_OTHER")
	_, err := o.meter.RegisterCallback(func(_ context.Context, obs metric.Observer) error {
		o.events.Range(func(_, eo any) bool {
			eo.(*eventOptions).counts.observe(o, obs)
			return true
		})
		o.overflow.observe(o, obs)
		return nil
	}, o.sent, o.consumed, o.outcomes)
	if err != nil {
		otel.Handle(err)
	}
}
