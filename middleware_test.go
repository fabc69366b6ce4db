package tasks_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskwheel/tasks"
)

// recorder is a Middleware that records what it wraps, named name.
type recorder struct {
	name string
	mu   *sync.Mutex
	log  *[]string
}

func (r recorder) add(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	*r.log = append(*r.log, s)
}

func (r recorder) middleware() tasks.Middleware {
	return tasks.Middleware{
		Enqueue: func(ctx context.Context, ts []*tasks.Task, next func(context.Context, []*tasks.Task) ([]*tasks.Task, error)) ([]*tasks.Task, error) {
			r.add(r.name + " enqueue " + ts[0].EventType + " " + strings.Repeat("+", len(ts)-1))
			return next(ctx, ts)
		},
		Execute: func(ctx context.Context, t *tasks.Task, next tasks.Func) error {
			r.add(r.name + " before " + t.EventType + " " + t.ID)
			err := next(ctx, t)
			r.add(r.name + " after " + t.EventType + " " + t.ID)
			return err
		},
	}
}

func TestMiddleware(t *testing.T) {
	t.Parallel()
	for _, s := range testStores {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			var log []string
			spans := tracetest.NewInMemoryExporter()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
			inSpan := make(chan bool, 1)
			e, err := tasks.NewEngine(s.open(t), &tasks.Config{
				TracerProvider: tp,
				BackoffFunc:    func(int) time.Duration { return time.Millisecond },
				Middleware: []tasks.Middleware{
					recorder{"outer", &mu, &log}.middleware(),
					recorder{"inner", &mu, &log}.middleware(),
					{Execute: func(ctx context.Context, t *tasks.Task, next tasks.Func) error {
						select { // the engine's span is outside every Middleware
						case inSpan <- trace.SpanFromContext(ctx).SpanContext().IsValid():
						default:
						}
						if t.EventType == "fixed" && t.Attempts == 1 {
							return errors.New("changed by the middleware") // the attempt fails
						}
						return next(ctx, t)
					}},
					{Execute: func(ctx context.Context, t *tasks.Task, next tasks.Func) error {
						if t.EventType == "panics" {
							panic("in a middleware")
						}
						return next(ctx, t)
					}},
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			ran := make(chan string, 10)
			for _, et := range []string{"a", "fixed", "panics"} {
				e.Register(et, func(ctx context.Context, task *tasks.Task) error {
					ran <- et
					return nil
				})
			}
			ctx := t.Context()
			as, err := e.EnqueueMany(ctx, []tasks.NewTask{{AppID: "app_1", EventType: "a"}, {AppID: "app_1", EventType: "a"}})
			if err != nil {
				t.Fatal(err)
			}
			fixed, err := e.Enqueue(ctx, tasks.NewTask{AppID: "app_1", EventType: "fixed"})
			if err != nil {
				t.Fatal(err)
			}
			panics, err := e.Enqueue(ctx, tasks.NewTask{AppID: "app_1", EventType: "panics", MaxAttempts: 1})
			if err != nil {
				t.Fatal(err)
			}
			if fixed.TraceParent == "" {
				t.Error("Enqueue with traces on: the task kept no trace context")
			}
			if err := e.Start(ctx); err != nil {
				t.Fatal(err)
			}
			defer e.Stop(context.Background())
			for range 3 { // a, a, fixed's second attempt
				select {
				case <-ran:
				case <-time.After(10 * time.Second):
					t.Fatal("tasks did not run within 10 s")
				}
			}
			if !<-inSpan {
				t.Error("a Middleware's attempt context has no span: the engine's tracing is not outside it")
			}
			got := waitTask(t, e, panics.ID, tasks.StateFailed)
			if !strings.Contains(got.LastError, "panic: in a middleware") {
				t.Errorf("a panicking middleware: got last error %q, want the panic", got.LastError)
			}
			got = waitTask(t, e, fixed.ID, tasks.StateCompleted)
			if got.Attempts != 2 {
				t.Errorf("a middleware's error: got %d attempts, want 2 (the first failed)", got.Attempts)
			}
			if err := e.Stop(ctx); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			for _, want := range [][]string{
				{"outer enqueue a +", "inner enqueue a +"}, // one call for EnqueueMany's two
				{"outer enqueue fixed ", "inner enqueue fixed "},
			} {
				if !containsRun([][]string{log}, want) {
					t.Errorf("the middleware's calls: no %q in %q", want, log)
				}
			}
			for _, a := range as { // the two run at once: each one's calls nest
				var got []string
				for _, l := range log {
					if strings.HasSuffix(l, " "+a.ID) {
						got = append(got, strings.TrimSuffix(l, " "+a.ID))
					}
				}
				if want := []string{"outer before a", "inner before a", "inner after a", "outer after a"}; !slices.Equal(got, want) {
					t.Errorf("the middleware's calls for task %s: got %q, want %q", a.ID, got, want)
				}
			}
			if n := countOf(log, "outer before fixed "+fixed.ID); n != 2 {
				t.Errorf("fixed: %d attempts wrapped, want 2", n)
			}
		})
	}
}

func countOf(s []string, v string) int {
	n := 0
	for i := slices.Index(s, v); i >= 0; i = slices.Index(s, v) {
		n++
		s = s[i+1:]
	}
	return n
}

// waitTask waits up to 10 s for task id to reach state, and returns it.
func waitTask(t *testing.T, e *tasks.Engine, id string, state tasks.State) *tasks.Task {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := e.Get(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if got.State == state {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s: state %s after 10 s, want %s", id, got.State, state)
		}
		time.Sleep(2 * time.Millisecond) // polls the store: there is no hook for stored outcomes
	}
}
