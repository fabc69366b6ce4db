package main

// -otel: W3 and W5 run twice in each of their runs, with the engine's
// OpenTelemetry instrumentation off and on, and the table shows the "on"
// figure against the "off" one, as a floor: their ratio is the cost of the
// instrumentation, measured in one run.

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/taskwheel/tasks/internal/bench"
)

// otelWorkloads are the workloads that -otel measures both ways.
var otelWorkloads = []string{"W3", "W5"}

// otelSuffix marks, in the table, the figures taken with the
// instrumentation on.
const otelSuffix = " +otel"

// discardSpans is a span exporter that drops what it is given: the SDK
// does all its work (sampling, recording, batching), and nothing is sent.
type discardSpans struct{}

func (discardSpans) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardSpans) Shutdown(context.Context) error                             { return nil }

// discardMetrics is a metric exporter that drops what it is given.
type discardMetrics struct{}

func (discardMetrics) Temporality(k sdkmetric.InstrumentKind) metricdata.Temporality {
	return sdkmetric.DefaultTemporalitySelector(k)
}
func (discardMetrics) Aggregation(k sdkmetric.InstrumentKind) sdkmetric.Aggregation {
	return sdkmetric.DefaultAggregationSelector(k)
}
func (discardMetrics) Export(context.Context, *metricdata.ResourceMetrics) error { return nil }
func (discardMetrics) ForceFlush(context.Context) error                          { return nil }
func (discardMetrics) Shutdown(context.Context) error                            { return nil }

// withOtel runs f with the instrumentation of bench's engines on: the real
// SDK as a service sets it up, with its defaults but the exporters, which
// discard what they get. Traces: the default sampler,
// ParentBased(AlwaysSample), which records every span here (each task's
// enqueue starts a sampled trace), and a batch span processor. Metrics: a
// periodic reader collecting every second (not every minute, the default:
// so that the live gauges' counts are taken during a run too). With sample
// below 1, ParentBased(TraceIDRatioBased(sample)): that share of the
// enqueues' traces, their attempts included, is sampled.
func withOtel[T any](ctx context.Context, sample float64, f func() (T, error)) (T, error) {
	opts := []sdktrace.TracerProviderOption{sdktrace.WithBatcher(discardSpans{})}
	if sample < 1 {
		opts = append(opts, sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(sample))))
	}
	tp := sdktrace.NewTracerProvider(opts...)
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(
		sdkmetric.NewPeriodicReader(discardMetrics{}, sdkmetric.WithInterval(time.Second))))
	bench.Telemetry.TracerProvider, bench.Telemetry.MeterProvider = tp, mp
	defer func() { bench.Telemetry.TracerProvider, bench.Telemetry.MeterProvider = nil, nil }()
	v, err := f()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if serr := errors.Join(tp.Shutdown(sctx), mp.Shutdown(sctx)); serr != nil {
		err = errors.Join(err, fmt.Errorf("shut down the OpenTelemetry SDK: %w", serr))
	}
	return v, err
}

// cpuTime returns the CPU time, user and system, that the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
