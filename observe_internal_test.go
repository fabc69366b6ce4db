package tasks

import (
	"context"
	"net/http"
	"reflect"
	"testing"
	"time"

	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// TestObserve_OffAllocatesNothing is ACCEPTANCE O2. Instrumentation is off
// when both providers record nothing: the API's no-op providers, or the
// global ones that nothing was set into (this test binary sets none). Then
// the engine installs no middleware, so an attempt and an enqueue call no
// wrapper, and every hook on a task's path allocates nothing.
func TestObserve_OffAllocatesNothing(t *testing.T) {
	for _, c := range []struct {
		name   string
		tracer trace.TracerProvider
		meter  metric.MeterProvider
	}{
		{"Globals", nil, nil},
		{"NoOp", tracenoop.NewTracerProvider(), metricnoop.NewMeterProvider()},
	} {
		t.Run(c.name, func(t *testing.T) {
			e, err := NewEngine(NewMemoryStore(), &Config{TracerProvider: c.tracer, MeterProvider: c.meter})
			if err != nil {
				t.Fatal(err)
			}
			if e.obs.on() || len(e.mws) != 0 || e.enqMW || e.execMW {
				t.Fatalf("instrumentation on (%v), middleware %d: want off, none", e.obs.on(), len(e.mws))
			}
			ctx := context.Background()
			task := &Task{ID: "t1", AppID: "app_1", EventType: "x", Attempts: 1, dueAt: time.Now()}
			ep := &Endpoint{ID: "ep_1", URL: "https://example.com/hook"}
			header := http.Header{}
			e.window.Record(time.Now(), "app_1", "x", 0, false) // its first attempt of x allocates
			allocs := testing.AllocsPerRun(1000, func() {
				keepTraceContext(ctx, task)
				e.obs.started(task, time.Millisecond)
				e.obs.claimed(1)
				if _, span := e.obs.deliverySpan(ctx, task, ep, header); span != nil {
					t.Fatal("a delivery span with traces off")
				}
				e.obs.delivered(ctx, ep, 200, time.Millisecond)
				e.obs.ended(task, StateCompleted)
				e.window.Record(time.Now(), "app_1", "x", time.Millisecond, false)
			})
			if allocs != 0 {
				t.Errorf("got %v allocations per task, want 0", allocs)
			}
		})
	}
}

// TestObserve_CountsPastMaxEventTypes: past maxEventTypes event types, the
// counts of the others are not lost but reported under the event type
// _OTHER; and two engines on one meter provider report their sum.
func TestObserve_CountsPastMaxEventTypes(t *testing.T) {
	rd := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd))
	defer mp.Shutdown(context.Background())
	e1, err := NewEngine(NewMemoryStore(), &Config{MeterProvider: mp})
	if err != nil {
		t.Fatal(err)
	}
	e2, err := NewEngine(NewMemoryStore(), &Config{MeterProvider: mp})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, e := range []*Engine{e1, e2} {
		if _, err := e.Enqueue(ctx, NewTask{AppID: "app_1", EventType: "x", RunAt: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	e1.obs.nEvents.Store(maxEventTypes) // as if it had seen that many
	task := &Task{ID: "t1", AppID: "app_1", EventType: "y", Attempts: 1}
	e1.obs.started(task, -1)
	e1.obs.ended(task, StateFailed)

	var rm metricdata.ResourceMetrics
	if err := rd.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{} // metric name, destination, outcome: value
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			sum, ok := m.Data.(metricdata.Sum[int64])
			if !ok {
				continue
			}
			for _, p := range sum.DataPoints {
				dest, _ := p.Attributes.Value("messaging.destination.name")
				outcome, _ := p.Attributes.Value("taskwheel.outcome")
				got[m.Name+" "+dest.AsString()+" "+outcome.AsString()] += p.Value
			}
		}
	}
	want := map[string]int64{
		"messaging.client.sent.messages x ":          2,
		"messaging.client.consumed.messages _OTHER ": 1,
		"taskwheel.attempt.outcomes _OTHER failed":   1,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got counts %v, want %v", got, want)
	}
}
