package tasks_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskwheel/tasks"
)

// TestObserve_SpanAttributes checks the spans of enqueues and attempts
// against README's table, on many attempts that run at once: the engine
// reuses what it starts their spans with, and no span may get another
// attempt's attributes.
func TestObserve_SpanAttributes(t *testing.T) {
	t.Parallel()
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	e, err := tasks.NewEngine(tasks.NewMemoryStore(), &tasks.Config{
		TracerProvider: tp,
		Workers:        8,
		BackoffFunc:    func(int) time.Duration { return time.Millisecond },
	})
	if err != nil {
		t.Fatal(err)
	}
	const n = 40
	done := make(chan struct{}, 2*n)
	for _, et := range []string{"a", "b"} {
		e.Register(et, func(ctx context.Context, task *tasks.Task) error {
			if task.Attempts == 1 && task.EventType == "b" {
				return errors.New("once") // b runs twice
			}
			done <- struct{}{}
			return nil
		})
	}
	ctx := t.Context()
	one, err := e.Enqueue(ctx, tasks.NewTask{AppID: "app_1", EventType: "a"})
	if err != nil {
		t.Fatal(err)
	}
	var nts []tasks.NewTask
	for i := range n - 1 {
		nts = append(nts, tasks.NewTask{AppID: fmt.Sprintf("app_%d", i%3+1), EventType: []string{"a", "b"}[i%2]})
	}
	many, err := e.EnqueueMany(ctx, nts)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]*tasks.Task{one.ID: one}
	for _, task := range many {
		ids[task.ID] = task
	}
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for range n {
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("tasks did not run within 10 s")
		}
	}
	if err := e.Stop(ctx); err != nil {
		t.Fatal(err)
	}

	attrs := func(s tracetest.SpanStub) map[attribute.Key]attribute.Value {
		m := map[attribute.Key]attribute.Value{}
		for _, kv := range s.Attributes {
			m[kv.Key] = kv.Value
		}
		return m
	}
	check := func(name string, got map[attribute.Key]attribute.Value, want map[attribute.Key]any) {
		t.Helper()
		for k, w := range want {
			if v, ok := got[k]; !ok || v.AsInterface() != w {
				t.Errorf("%s: %s = %v, want %v", name, k, v.AsInterface(), w)
			}
		}
	}
	sends := map[trace.SpanID]tracetest.SpanStub{}
	attempts := map[string]int{} // by task ID: attempts seen
	for _, s := range spans.GetSpans() {
		got := attrs(s)
		switch s.SpanKind {
		case trace.SpanKindProducer:
			sends[s.SpanContext.SpanID()] = s
			want := map[attribute.Key]any{"messaging.system": "taskwheel", "messaging.operation.type": "send", "messaging.operation.name": "send"}
			if s.Name == "send a" {
				want["messaging.destination.name"] = "a"
				want["messaging.message.id"] = one.ID
				want["taskwheel.app.id"] = "app_1"
			} else {
				want["messaging.batch.message_count"] = int64(n - 1) // two event types: no destination
				if s.Name != "send" {
					t.Errorf("the batch's span: got name %q, want send", s.Name)
				}
			}
			check(s.Name, got, want)
		case trace.SpanKindConsumer:
			id := got["messaging.message.id"].AsString()
			task := ids[id]
			if task == nil {
				t.Errorf("%s: messaging.message.id %q is no task's", s.Name, id)
				continue
			}
			attempts[id]++
			check(s.Name+" of "+id, got, map[attribute.Key]any{
				"messaging.system":           "taskwheel",
				"messaging.operation.type":   "process",
				"messaging.operation.name":   "process",
				"messaging.destination.name": task.EventType,
				"taskwheel.app.id":           task.AppID,
				"taskwheel.attempt":          int64(attempts[id]), // the SyncExporter has them in order of their ends
			})
			if s.Name != "process "+task.EventType {
				t.Errorf("an attempt of %s: got span %q, want %q", task.EventType, s.Name, "process "+task.EventType)
			}
			if failed := s.Status.Code.String() == "Error"; failed != (task.EventType == "b" && attempts[id] == 1) {
				t.Errorf("%s of %s, attempt %d: status %v", s.Name, id, attempts[id], s.Status)
			}
			if _, ok := sends[s.Parent.SpanID()]; !ok && s.Parent.SpanID() != (trace.SpanID{}) {
				// Sends end before their tasks' attempts start.
				t.Errorf("%s of %s: parent %s is no enqueue's span", s.Name, id, s.Parent.SpanID())
			} else if s.Parent.TraceID() != s.SpanContext.TraceID() || !s.Parent.IsValid() {
				t.Errorf("%s of %s: not a child of its enqueue's span", s.Name, id)
			}
		}
	}
	if len(sends) != 2 {
		t.Errorf("got %d enqueue spans, want 2", len(sends))
	}
	for id, task := range ids {
		if want := map[string]int{"a": 1, "b": 2}[task.EventType]; attempts[id] != want {
			t.Errorf("task %s (%s): %d attempt spans, want %d", id, task.EventType, attempts[id], want)
		}
	}
}
