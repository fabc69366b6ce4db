package tasks_test

import (
	"context"
	"fmt"
	"log"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/taskwheel/tasks"
)

// tenantKey is the context key of the tenant in ExampleMiddleware.
type tenantKey struct{}

// A Middleware puts each task's tenant, its app, in the context of its
// func, and reports the attempts that failed for good.
func ExampleMiddleware() {
	tenant := tasks.Middleware{
		Execute: func(ctx context.Context, t *tasks.Task, next tasks.Func) error {
			err := next(context.WithValue(ctx, tenantKey{}, t.AppID), t)
			if err != nil && t.Attempts == t.MaxAttempts {
				log.Printf("task %s failed for good: %v", t.ID, err) // or Sentry, a pager
			}
			return err
		},
	}
	eng, err := tasks.NewEngine(tasks.NewMemoryStore(), &tasks.Config{
		Middleware: []tasks.Middleware{tenant},
	})
	if err != nil {
		log.Fatal(err)
	}
	done := make(chan struct{})
	eng.Register("report.build", func(ctx context.Context, t *tasks.Task) error {
		fmt.Println("building the report of", ctx.Value(tenantKey{}))
		close(done)
		return nil
	})

	ctx := context.Background()
	if err := eng.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer eng.Stop(ctx)
	if _, err := eng.Enqueue(ctx, tasks.NewTask{AppID: "acme", EventType: "report.build"}); err != nil {
		log.Fatal(err)
	}
	<-done
	// Output: building the report of acme
}

// OpenTelemetry: the engine takes a tracer and a meter provider, here the
// SDK's; the library itself imports only the API.
func ExampleConfig_openTelemetry() {
	tp := sdktrace.NewTracerProvider( /* sdktrace.WithBatcher(exporter), ... */ )
	defer tp.Shutdown(context.Background())
	mp := sdkmetric.NewMeterProvider( /* sdkmetric.WithReader(reader), ... */ )
	defer mp.Shutdown(context.Background())

	eng, err := tasks.NewEngine(tasks.NewMemoryStore(), &tasks.Config{
		TracerProvider: tp, // default: otel.GetTracerProvider()
		MeterProvider:  mp, // default: otel.GetMeterProvider()
	})
	if err != nil {
		log.Fatal(err)
	}
	_ = eng
}
