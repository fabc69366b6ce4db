package tasks

// The engine's OpenTelemetry instrumentation: a span per enqueue, per
// attempt and per webhook delivery, and the metrics README lists under
// "Observability". It is built from the providers of Config when NewEngine
// runs; the spans are made by a Middleware, as a user's would be.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/taskwheel/tasks/observe"
)

// instrumentationName names the tracer and the meter.
const instrumentationName = "github.com/taskwheel/tasks"

// messagingSystem is the messaging.system of spans and metrics.
const messagingSystem = "taskwheel"

// The metrics' names, units and descriptions; README's "Observability"
// lists them.
const (
	metricSent        = "messaging.client.sent.messages"
	metricConsumed    = "messaging.client.consumed.messages"
	metricProcess     = "messaging.process.duration"
	metricOutcomes    = "taskwheel.attempt.outcomes"
	metricLateness    = "taskwheel.task.lateness"
	metricLive        = "taskwheel.tasks.live"
	metricActive      = "taskwheel.attempts.active"
	metricClaimSize   = "taskwheel.claim.size"
	metricStoreErrors = "taskwheel.store.errors"
	metricDelivery    = "http.client.request.duration"
)

// Attributes of our own, besides the semantic conventions'.
const (
	attrOutcome     = attribute.Key("taskwheel.outcome")     // an attempt's outcome: a State
	attrState       = attribute.Key("taskwheel.state")       // a live task's state
	attrEndpoint    = attribute.Key("taskwheel.endpoint.id") // a delivery's endpoint
	attrStatusClass = attribute.Key("taskwheel.status_class")
	attrOperation   = attribute.Key("db.operation.name") // a store operation
	attrAttempt     = attribute.Key("taskwheel.attempt")
	attrApp         = attribute.Key("taskwheel.app.id")
)

// instrumentation holds the engine's tracer and instruments. Its methods are
// safe for concurrent use.
type instrumentation struct {
	tracer trace.Tracer // nil: traces are off
	// metrics reports whether the meter provider was not a no-op when
	// NewEngine ran; each synchronous instrument's Enabled says whether it
	// is now.
	metrics bool
	meter   metric.Meter

	sent, consumed, outcomes    metric.Int64ObservableCounter // see eventCounts
	storeErrors                 metric.Int64Counter
	process, lateness, delivery metric.Float64Histogram
	claimSize                   metric.Int64Histogram

	events   sync.Map     // event type: *eventOptions; read on every attempt, rarely written
	nEvents  atomic.Int64 // entries of events, at most maxEventTypes
	overflow *eventCounts // the counts of event types past maxEventTypes
}

// maxEventTypes bounds the event types whose options the instrumentation
// keeps: a bound on memory, whatever the event types.
const maxEventTypes = 10_000

// eventOptions are the measurement options of one event type, made once so
// that a measurement allocates nothing for them.
type eventOptions struct {
	counts *eventCounts
	record []metric.RecordOption
	// processName names an attempt's span (see startProcess). sendName and
	// sendStart start an enqueue's of one task or one event type, with the
	// attributes that are the same for every enqueue of it; the others are
	// set once the span is known to record.
	processName, sendName string
	sendStart             []trace.SpanStartOption
	destination           attribute.KeyValue // messaging.destination.name
}

// newInstrumentation builds the instrumentation of an engine configured by c.
func newInstrumentation(c *Config) *instrumentation {
	o := &instrumentation{}
	tp := c.TracerProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	if !noOp(tp) {
		o.tracer = tp.Tracer(instrumentationName, trace.WithInstrumentationVersion(Version), trace.WithSchemaURL(semconv.SchemaURL))
	}
	mp := c.MeterProvider
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	o.metrics = !noOp(mp)
	if !o.metrics {
		mp = metricnoop.NewMeterProvider()
	}
	m := mp.Meter(instrumentationName, metric.WithInstrumentationVersion(Version), metric.WithSchemaURL(semconv.SchemaURL))
	o.meter = m
	must := func(err error) {
		if err != nil {
			otel.Handle(err) // an SDK's instrument is usable even so
		}
	}
	var err error
	o.sent, err = m.Int64ObservableCounter(metricSent, metric.WithUnit("{message}"),
		metric.WithDescription("Tasks enqueued, by event type (messaging.destination.name)."))
	must(err)
	o.consumed, err = m.Int64ObservableCounter(metricConsumed, metric.WithUnit("{message}"),
		metric.WithDescription("Attempts started, by event type."))
	must(err)
	o.outcomes, err = m.Int64ObservableCounter(metricOutcomes, metric.WithUnit("{attempt}"),
		metric.WithDescription("Attempts ended, by event type and outcome: completed, retrying (to be retried), failed (for good), canceled."))
	must(err)
	o.registerCounts()
	o.storeErrors, err = m.Int64Counter(metricStoreErrors, metric.WithUnit("{error}"),
		metric.WithDescription("Store calls of the engine's background work that failed, by operation."))
	must(err)
	o.process, err = m.Float64Histogram(metricProcess, metric.WithUnit("s"),
		metric.WithDescription("Duration of attempts, by event type."),
		metric.WithExplicitBucketBoundaries(observe.DurationBounds...))
	must(err)
	o.lateness, err = m.Float64Histogram(metricLateness, metric.WithUnit("s"),
		metric.WithDescription("How late attempts started: their start less when they were due, by event type."),
		metric.WithExplicitBucketBoundaries(observe.LatenessBounds...))
	must(err)
	o.delivery, err = m.Float64Histogram(metricDelivery, metric.WithUnit("s"),
		metric.WithDescription("Duration of webhook deliveries, by endpoint and status class (2xx, 3xx, 4xx, 5xx, error)."),
		metric.WithExplicitBucketBoundaries(observe.DurationBounds...))
	must(err)
	o.claimSize, err = m.Int64Histogram(metricClaimSize, metric.WithUnit("{task}"),
		metric.WithDescription("Tasks taken by each claim of the store."),
		metric.WithExplicitBucketBoundaries(0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000))
	must(err)
	return o
}

// noOp reports whether p, a tracer or meter provider, records nothing: the
// API's no-op provider, or the global one that nothing was set into.
func noOp(p any) bool {
	switch p.(type) {
	case tracenoop.TracerProvider, *tracenoop.TracerProvider, metricnoop.MeterProvider, *metricnoop.MeterProvider:
		return true
	}
	// The global providers before otel.SetTracerProvider and
	// otel.SetMeterProvider: delegates, unexported, that record nothing
	// until then.
	switch fmt.Sprintf("%T", p) {
	case "*global.tracerProvider", "*global.meterProvider":
		return true
	}
	return false
}

// on reports whether the instrumentation adds spans or metrics: whether the
// engine installs its middleware.
func (o *instrumentation) on() bool { return o.tracer != nil || o.metrics }

// eventOpts returns the measurement options of eventType.
func (o *instrumentation) eventOpts(eventType string) *eventOptions {
	if eo, ok := o.events.Load(eventType); ok {
		return eo.(*eventOptions)
	}
	eo := &eventOptions{
		record: []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(
			semconv.MessagingSystemKey.String(messagingSystem), semconv.MessagingDestinationName(eventType)))},
	}
	eo.processName = "process " + eventType
	eo.destination = semconv.MessagingDestinationName(eventType)
	eo.sendName = "send " + eventType
	eo.sendStart = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(
		semconv.MessagingSystemKey.String(messagingSystem),
		semconv.MessagingOperationTypeSend,
		semconv.MessagingOperationName("send"),
		semconv.MessagingDestinationName(eventType),
	)}
	if o.nEvents.Load() >= maxEventTypes {
		eo.counts = o.overflow
		return eo // not kept
	}
	eo.counts = newEventCounts(eventType)
	if old, loaded := o.events.LoadOrStore(eventType, eo); loaded {
		return old.(*eventOptions)
	}
	o.nEvents.Add(1)
	return eo
}

// middleware returns the instrumentation's Middleware: spans of enqueues
// and attempts, and the duration of attempts.
func (o *instrumentation) middleware() Middleware {
	return Middleware{Enqueue: o.enqueue, Execute: o.execute}
}

// enqueue is the Enqueue middleware: a producer span ("send <event type>")
// around the store's insert, whose context the tasks keep, and the count of
// tasks enqueued.
func (o *instrumentation) enqueue(ctx context.Context, ts []*Task, next func(context.Context, []*Task) ([]*Task, error)) ([]*Task, error) {
	var span trace.Span
	if o.tracer != nil && len(ts) > 0 {
		ctx, span = o.startSend(ctx, ts)
		defer span.End()
		keepTraceContext(ctx, ts...)
	}
	stored, err := next(ctx, ts)
	if err != nil && span != nil && span.IsRecording() {
		span.SetStatus(codes.Error, err.Error())
		span.SetAttributes(semconv.ErrorTypeKey.String(errorType(err)))
	}
	if o.metrics {
		// One count per run of an event type, not per task.
		var et string
		var n int64
		for i, t := range stored {
			if t == nil || i >= len(ts) || t.ID != ts[i].ID {
				continue // a duplicate's holder, not stored now
			}
			if t.EventType != et && n > 0 {
				o.eventOpts(et).counts.sent.Add(n)
				n = 0
			}
			et = t.EventType
			n++
		}
		if n > 0 {
			o.eventOpts(et).counts.sent.Add(n)
		}
	}
	return stored, err
}

// startSend starts the producer span of an enqueue of ts, not empty.
func (o *instrumentation) startSend(ctx context.Context, ts []*Task) (context.Context, trace.Span) {
	if !sameEventType(ts) {
		return o.tracer.Start(ctx, "send", trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(
			semconv.MessagingSystemKey.String(messagingSystem),
			semconv.MessagingOperationTypeSend,
			semconv.MessagingOperationName("send"),
			semconv.MessagingBatchMessageCount(len(ts)),
		))
	}
	eo := o.eventOpts(ts[0].EventType)
	ctx, span := o.tracer.Start(ctx, eo.sendName, eo.sendStart...)
	if span.IsRecording() {
		if len(ts) == 1 {
			span.SetAttributes(semconv.MessagingMessageID(ts[0].ID), attrApp.String(ts[0].AppID))
		} else {
			span.SetAttributes(semconv.MessagingBatchMessageCount(len(ts)))
		}
	}
	return ctx, span
}

// sameEventType reports whether the tasks of ts share one event type.
func sameEventType(ts []*Task) bool {
	for _, t := range ts[1:] {
		if t.EventType != ts[0].EventType {
			return false
		}
	}
	return true
}

// execute is the Execute middleware: a consumer span ("process <event
// type>") in the trace that enqueued the task, and the attempt's duration.
//
// It runs on every attempt, so it allocates little besides what the SDK
// needs (see startProcess), and formats an error for a span only if the
// span records (is sampled).
func (o *instrumentation) execute(ctx context.Context, t *Task, next Func) error {
	eo := o.eventOpts(t.EventType)
	var start time.Time
	// Not ctx: an exemplar (the span's, offered with a measurement in a
	// sampled span) costs each attempt more than the measurement.
	bg := context.Background()
	timed := o.process.Enabled(bg)
	if timed {
		start = time.Now()
	}
	var span trace.Span
	if o.tracer != nil {
		if t.TraceParent != "" {
			ctx = remoteParent(ctx, t.TraceParent, t.TraceState)
		}
		ctx, span = o.startProcess(ctx, eo, t)
		defer span.End()
	}
	err := next(ctx, t)
	if err != nil && span != nil && span.IsRecording() {
		span.SetStatus(codes.Error, err.Error())
		span.SetAttributes(semconv.ErrorTypeKey.String(errorType(err)))
	}
	if timed {
		o.process.Record(bg, time.Since(start).Seconds(), eo.record...)
	}
	return err
}

// processStart holds the options of an attempt span's start while the
// span starts: its kind and all its attributes, so that a sampler sees them
// (the semantic conventions ask for those of messaging at the start). The
// API copies the attributes of options into the span's config, and no
// tracer keeps the options: so one is reused, from a pool, and an attempt's
// options cost one small allocation (the WithAttributes) instead of the
// four that making them anew costs.
type processStart struct {
	attrs [7]attribute.KeyValue
	opts  [2]trace.SpanStartOption
}

var processStarts = sync.Pool{New: func() any { return new(processStart) }}

// startProcess starts the consumer span of an attempt of t.
func (o *instrumentation) startProcess(ctx context.Context, eo *eventOptions, t *Task) (context.Context, trace.Span) {
	p := processStarts.Get().(*processStart)
	p.attrs = [...]attribute.KeyValue{
		semconv.MessagingSystemKey.String(messagingSystem),
		semconv.MessagingOperationTypeProcess,
		semconv.MessagingOperationName("process"),
		eo.destination,
		semconv.MessagingMessageID(t.ID),
		attrApp.String(t.AppID),
		attrAttempt.Int(t.Attempts),
	}
	p.opts = [...]trace.SpanStartOption{consumerSpan, trace.WithAttributes(p.attrs[:]...)}
	ctx, span := o.tracer.Start(ctx, eo.processName, p.opts[:]...)
	*p = processStart{} // keeps no task's strings alive
	processStarts.Put(p)
	return ctx, span
}

// consumerSpan is the kind of attempts' spans.
var consumerSpan = trace.WithSpanKind(trace.SpanKindConsumer)

// remoteParent returns ctx with the remote span context of a W3C
// traceparent and tracestate, as propagation.TraceContext reads them, or
// ctx if the traceparent is not one (of version 00, the one stores keep).
func remoteParent(ctx context.Context, parent, state string) context.Context {
	// "00-" trace ID (32 hex) "-" span ID (16 hex) "-" flags (2 hex)
	if len(parent) != 55 || parent[:3] != "00-" || parent[35] != '-' || parent[52] != '-' {
		return propagation.TraceContext{}.Extract(ctx, &traceCarrier{parent, state})
	}
	tid, err1 := trace.TraceIDFromHex(parent[3:35])
	sid, err2 := trace.SpanIDFromHex(parent[36:52])
	flags, err3 := strconv.ParseUint(parent[53:], 16, 8)
	if err1 != nil || err2 != nil || err3 != nil {
		return ctx
	}
	cfg := trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.TraceFlags(flags) & trace.FlagsSampled, Remote: true}
	if state != "" {
		if ts, err := trace.ParseTraceState(state); err == nil {
			cfg.TraceState = ts
		}
	}
	return trace.ContextWithRemoteSpanContext(ctx, trace.NewSpanContext(cfg))
}

// errorType is the error.type of err: the outcome it leads to.
func errorType(err error) string {
	var perm *permanentError
	var ve *ValidationError
	switch {
	case errors.As(err, &perm):
		return "permanent"
	case errors.As(err, &ve):
		return "invalid"
	}
	return "_OTHER"
}

// started records the start of an attempt of t, lateness late (negative:
// not measured).
func (o *instrumentation) started(t *Task, late time.Duration) {
	if !o.metrics {
		return
	}
	eo := o.eventOpts(t.EventType)
	eo.counts.consumed.Add(1)
	if ctx := context.Background(); late >= 0 && o.lateness.Enabled(ctx) {
		o.lateness.Record(ctx, late.Seconds(), eo.record...)
	}
}

// ended records the outcome of an attempt of t.
func (o *instrumentation) ended(t *Task, s State) {
	if !o.metrics {
		return
	}
	if i := outcomeIndex(s); i >= 0 {
		o.eventOpts(t.EventType).counts.outcomes[i].Add(1)
	}
}

// claimed records the size of a claim.
func (o *instrumentation) claimed(n int) {
	ctx := context.Background()
	if o.claimSize.Enabled(ctx) {
		o.claimSize.Record(ctx, int64(n))
	}
}

// storeError records a failed store call of operation op.
func (o *instrumentation) storeError(op string) {
	ctx := context.Background()
	if o.storeErrors.Enabled(ctx) {
		o.storeErrors.Add(ctx, 1, metric.WithAttributes(attrOperation.String(op)))
	}
}

// delivered records a webhook delivery to ep that took d and answered
// status (0: no answer).
func (o *instrumentation) delivered(ctx context.Context, ep *Endpoint, status int, d time.Duration) {
	if !o.delivery.Enabled(ctx) {
		return
	}
	class := "error"
	if status >= 100 && status < 600 {
		class = strconv.Itoa(status/100) + "xx"
	}
	o.delivery.Record(ctx, d.Seconds(), metric.WithAttributes(
		semconv.HTTPRequestMethodPost, attrEndpoint.String(ep.ID), attrStatusClass.String(class)))
}

// deliverySpan starts the client span of a delivery of t to ep, and puts
// the trace context in header: the span's when traces are on, else the
// one t was enqueued in, if any.
func (o *instrumentation) deliverySpan(ctx context.Context, t *Task, ep *Endpoint, header map[string][]string) (context.Context, trace.Span) {
	if o.tracer == nil {
		if t.TraceParent != "" {
			header["Traceparent"] = []string{t.TraceParent}
			if t.TraceState != "" {
				header["Tracestate"] = []string{t.TraceState}
			}
		}
		return ctx, nil
	}
	host := ""
	if u, err := url.Parse(ep.URL); err == nil {
		host = u.Hostname()
	}
	ctx, span := o.tracer.Start(ctx, "POST", trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
		semconv.HTTPRequestMethodPost, semconv.ServerAddress(host), attrEndpoint.String(ep.ID)))
	propagation.TraceContext{}.Inject(ctx, propagation.HeaderCarrier(header))
	return ctx, span
}

// registerGauges registers the callback of the live gauges for r; the
// returned func unregisters it.
func (o *instrumentation) registerGauges(r *run) func() {
	if !o.metrics {
		return func() {}
	}
	live, err1 := o.meter.Int64ObservableGauge(metricLive, metric.WithUnit("{task}"),
		metric.WithDescription("Tasks of the store in each live state (scheduled, running, retrying), counted when collected: every engine on a store reports the store's count."))
	active, err2 := o.meter.Int64ObservableGauge(metricActive, metric.WithUnit("{attempt}"),
		metric.WithDescription("Attempts claimed by this engine and not ended: queued for a worker or running."))
	if err := firstErr(err1, err2); err != nil {
		otel.Handle(err)
		return func() {}
	}
	reg, err := o.meter.RegisterCallback(func(ctx context.Context, obs metric.Observer) error {
		r.activeMu.Lock()
		n := len(r.active)
		r.activeMu.Unlock()
		obs.ObserveInt64(active, int64(n))
		lc, ok := r.e.store.(liveCounter)
		if !ok {
			return nil
		}
		ctx, cancel := context.WithTimeout(ctx, storeTimeout)
		defer cancel()
		counts, err := lc.countLive(ctx)
		if err != nil {
			o.storeError("count live tasks")
			return err
		}
		for _, s := range []State{StateScheduled, StateRunning, StateRetrying} {
			obs.ObserveInt64(live, int64(counts[s]), metric.WithAttributes(attrState.String(string(s))))
		}
		return nil
	}, live, active)
	if err != nil {
		otel.Handle(err)
		return func() {}
	}
	return func() {
		if err := reg.Unregister(); err != nil {
			otel.Handle(err)
		}
	}
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// liveCounter is a store that counts its live tasks, of every app, at a
// cost that grows with them and not with its history: the memory store and
// SQLStore are. On another store the gauge of live tasks reports nothing.
type liveCounter interface {
	countLive(ctx context.Context) (map[State]int, error)
}

// traceCarrier carries one task's trace context for a propagator, without
// the map of a header.
type traceCarrier struct{ parent, state string }

func (c *traceCarrier) Get(key string) string {
	switch key {
	case "traceparent":
		return c.parent
	case "tracestate":
		return c.state
	}
	return ""
}

func (c *traceCarrier) Set(key, value string) {
	switch key {
	case "traceparent":
		c.parent = value
	case "tracestate":
		c.state = value
	}
}

func (c *traceCarrier) Keys() []string { return []string{"traceparent", "tracestate"} }

// keepTraceContext sets the trace context of each of ts to ctx's span's, if
// ctx has a valid one. It allocates only then.
func keepTraceContext(ctx context.Context, ts ...*Task) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return
	}
	var c traceCarrier
	propagation.TraceContext{}.Inject(ctx, &c)
	for _, t := range ts {
		t.TraceParent, t.TraceState = c.parent, c.state
	}
}

// traceContext returns ctx with the remote span context of r's W3C
// traceparent and tracestate headers, if r has a valid one: the task that
// r creates is then enqueued in r's trace.
func traceContext(ctx context.Context, r *http.Request) context.Context {
	if r.Header.Get("Traceparent") == "" {
		return ctx
	}
	return propagation.TraceContext{}.Extract(ctx, propagation.HeaderCarrier(r.Header))
}
