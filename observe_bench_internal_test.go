package tasks

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// The benchmarks of the instrumentation's cost. Each reports, besides
// ns/op, cpu-ns/op: the CPU time the whole process used per operation (the
// span processor's goroutine and the garbage collector included), which a
// machine busy with other work disturbs much less than the wall time.
//
//	go test -run '^$' -bench 'Observe_' -benchmem -count 5 . | benchstat -col /obs -

type discardSpans struct{}

func (discardSpans) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardSpans) Shutdown(context.Context) error                             { return nil }

// benchTracerProvider returns the tracer provider of the benchmarks: the
// SDK as a service would set it up, with a batch span processor (its
// defaults) and the default sampler, ParentBased(AlwaysSample), or sampler
// if not nil; the exporter drops the spans.
func benchTracerProvider(b *testing.B, sampler sdktrace.Sampler) *sdktrace.TracerProvider {
	opts := []sdktrace.TracerProviderOption{sdktrace.WithBatcher(discardSpans{})}
	if sampler != nil {
		opts = append(opts, sdktrace.WithSampler(sampler))
	}
	tp := sdktrace.NewTracerProvider(opts...)
	b.Cleanup(func() { tp.Shutdown(context.Background()) })
	return tp
}

// cpuTime returns the CPU time, user and system, the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loopCPU runs f in b.Loop and reports the process's CPU time per call.
func loopCPU(b *testing.B, f func(i int)) {
	b.ReportAllocs()
	start, n := cpuTime(), 0
	for b.Loop() {
		f(n)
		n++
	}
	b.ReportMetric(float64(cpuTime()-start)/float64(n), "cpu-ns/op")
}

// benchParents are the traceparents of the tasks of the benchmarks, one in
// ten sampled: with every span sampled, each task has the first one.
var benchParents = func() [10]string {
	var ps [10]string
	for i := range ps {
		flags := "00"
		if i == 0 {
			flags = "01"
		}
		ps[i] = fmt.Sprintf("00-4bf92f3577b34da6a3ce929d0e0e47%02x-00f067aa0ba902b7-%s", i, flags)
	}
	return ps
}()

// BenchmarkObserve_Attempt measures what the engine does around one
// attempt of a func task whose enqueue was traced, as run.execute does it:
// the hooks before and after, and Engine.attempt, which runs the func
// through the middleware. Off: no provider (the default); Traces, Metrics,
// On: the SDK's, with a batch span processor exporting nowhere, the default
// sampler and a manual reader; Sampled10: On, but one enqueue in ten was
// sampled (the others' attempts are not recorded). Off's allocation is
// Engine.attempt's record of the attempt, which is there either way.
func BenchmarkObserve_Attempt(b *testing.B) {
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	b.Cleanup(func() { mp.Shutdown(context.Background()) })
	for _, c := range []struct {
		name            string
		traces, metrics bool
		parents         int // of benchParents
	}{
		{"Off", false, false, 1},
		{"Traces", true, false, 1},
		{"Metrics", false, true, 1},
		{"On", true, true, 1},
		{"Sampled10", true, true, 10},
	} {
		b.Run("obs="+c.name, func(b *testing.B) {
			cfg := &Config{}
			if c.traces {
				cfg.TracerProvider = benchTracerProvider(b, nil)
			}
			if c.metrics {
				cfg.MeterProvider = mp
			}
			e, err := NewEngine(NewMemoryStore(), cfg)
			if err != nil {
				b.Fatal(err)
			}
			e.Register("x", func(context.Context, *Task) error { return nil })
			t := &Task{ID: "t1", AppID: "app_1", EventType: "x", Attempts: 1, MaxAttempts: 25, dueAt: time.Now()}
			ctx := context.Background()
			loopCPU(b, func(i int) {
				t.TraceParent = benchParents[i%c.parents]
				e.obs.started(t, time.Millisecond)
				if _, _, err := e.attempt(ctx, t); err != nil {
					b.Fatal(err)
				}
				e.obs.ended(t, StateCompleted)
				e.window.Record(time.Now(), t.AppID, t.EventType, time.Millisecond, false)
			})
		})
	}
}

// BenchmarkObserve_Enqueue measures an enqueue's span and count, around an
// insert that does nothing: one task, and a batch of 1000 (per task).
func BenchmarkObserve_Enqueue(b *testing.B) {
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	b.Cleanup(func() { mp.Shutdown(context.Background()) })
	for _, n := range []int{1, 1000} {
		for _, on := range []bool{false, true} {
			name := "Off"
			cfg := &Config{}
			if on {
				name = "On"
				cfg.TracerProvider, cfg.MeterProvider = benchTracerProvider(b, nil), mp
			}
			b.Run(fmt.Sprintf("tasks=%d/obs=%s", n, name), func(b *testing.B) {
				e, err := NewEngine(NewMemoryStore(), cfg)
				if err != nil {
					b.Fatal(err)
				}
				ts := make([]*Task, n)
				for i := range ts {
					ts[i] = &Task{ID: fmt.Sprintf("t%d", i), AppID: "app_1", EventType: "x"}
				}
				insert := func(ctx context.Context, ts []*Task) ([]*Task, error) { return ts, nil }
				ctx := context.Background()
				loopCPU(b, func(int) {
					keepTraceContext(ctx, ts...)
					if e.enqMW {
						if _, err := e.enqueueThrough(ctx, ts, insert); err != nil {
							b.Fatal(err)
						}
					}
				})
				b.ReportMetric(b.Elapsed().Seconds()*1e9/float64(b.N*n), "ns/task")
			})
		}
	}
}

// BenchmarkObserve_SDKSpan measures the OpenTelemetry SDK alone, as
// benchTracerProvider sets it up: the floor of an attempt's span. Bare: a
// span started and ended; Attributes: with its kind and the seven
// attributes of an attempt's span, made once; RemoteParent: also a child of
// a remote span context, as an attempt's is (of its enqueue's);
// Unsampled: the same, its parent not sampled.
func BenchmarkObserve_SDKSpan(b *testing.B) {
	tp := benchTracerProvider(b, nil)
	tr := tp.Tracer("bench")
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(
		attribute.String("messaging.system", "taskwheel"),
		attribute.String("messaging.operation.type", "process"),
		attribute.String("messaging.operation.name", "process"),
		attribute.String("messaging.destination.name", "x"),
		attribute.String("messaging.message.id", "019ae0b4-4a7e-7cc1-8c5e-4f1a0d6c2b3a"),
		attribute.String("taskwheel.app.id", "app_1"),
		attribute.Int("taskwheel.attempt", 1),
	)}
	parent := func(flags trace.TraceFlags) trace.SpanContext {
		return trace.NewSpanContext(trace.SpanContextConfig{
			TraceID: trace.TraceID{1, 2, 3}, SpanID: trace.SpanID{4, 5, 6}, TraceFlags: flags, Remote: true})
	}
	ctx := context.Background()
	for _, c := range []struct {
		name   string
		opts   []trace.SpanStartOption
		parent trace.SpanContext
	}{
		{"Bare", nil, trace.SpanContext{}},
		{"Attributes", opts, trace.SpanContext{}},
		{"RemoteParent", opts, parent(trace.FlagsSampled)},
		{"Unsampled", opts, parent(0)},
	} {
		b.Run("span="+c.name, func(b *testing.B) {
			loopCPU(b, func(int) {
				ctx := ctx
				if c.parent.IsValid() {
					ctx = trace.ContextWithRemoteSpanContext(ctx, c.parent)
				}
				_, span := tr.Start(ctx, "process x", c.opts...)
				span.End()
			})
		})
	}
}
