package tasks

import (
	"context"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

type discardSpans struct{}

func (discardSpans) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardSpans) Shutdown(context.Context) error                             { return nil }

// BenchmarkObserve_Attempt measures what the instrumentation adds to one
// attempt of a func task: off (no-op providers, the default) and on (the
// SDK, every span sampled, exporting nowhere).
func BenchmarkObserve_Attempt(b *testing.B) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(discardSpans{}))
	defer tp.Shutdown(context.Background())
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	defer mp.Shutdown(context.Background())
	for _, c := range []struct {
		name    string
		traces  bool
		metrics bool
	}{{"Off", false, false}, {"Traces", true, false}, {"Metrics", false, true}, {"On", true, true}} {
		name := c.name
		cfg := &Config{}
		if c.traces {
			cfg.TracerProvider = tp
		}
		if c.metrics {
			cfg.MeterProvider = mp
		}
		b.Run(name, func(b *testing.B) {
			e, err := NewEngine(NewMemoryStore(), cfg)
			if err != nil {
				b.Fatal(err)
			}
			fn := Func(func(context.Context, *Task) error { return nil })
			t := &Task{ID: "t1", AppID: "app_1", EventType: "x", Attempts: 1, dueAt: time.Now(),
				TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				{
					e.obs.started(t, time.Millisecond)
					f := fn
					if e.execMW {
						f = wrapExecute(e.mws, fn)
					}
					call(ctx, f, t)
					e.obs.ended(t, StateCompleted)
					e.window.Record(time.Now(), t.AppID, t.EventType, time.Millisecond, false)
				}
			}
		})
	}
	_ = metricdata.ResourceMetrics{}
}
