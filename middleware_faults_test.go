package tasks_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/taskwheel/tasks"
)

// enqueueFunc is the type of Middleware.Enqueue.
type enqueueFunc = func(ctx context.Context, ts []*tasks.Task, next func(context.Context, []*tasks.Task) ([]*tasks.Task, error)) ([]*tasks.Task, error)

// enqueueMiddleware is a Config with one Enqueue middleware, mw.
func enqueueMiddleware(mw enqueueFunc) *tasks.Config {
	return &tasks.Config{MaxDataBytes: 64, Middleware: []tasks.Middleware{{Enqueue: mw}}}
}

// TestMiddleware_EnqueueReturnsNoTask: an Enqueue middleware that returns
// no task and no error (it did not call next, or lost what next returned)
// gives Enqueue and EnqueueMany an error, never a nil task with a nil error
// or a panic.
func TestMiddleware_EnqueueReturnsNoTask(t *testing.T) {
	t.Parallel()
	mws := map[string]enqueueFunc{
		"next not called": func(ctx context.Context, ts []*tasks.Task, next func(context.Context, []*tasks.Task) ([]*tasks.Task, error)) ([]*tasks.Task, error) {
			return nil, nil
		},
		"nil tasks": func(ctx context.Context, ts []*tasks.Task, next func(context.Context, []*tasks.Task) ([]*tasks.Task, error)) ([]*tasks.Task, error) {
			stored, err := next(ctx, ts)
			return make([]*tasks.Task, len(stored)), err
		},
	}
	for _, s := range testStores {
		for name, mw := range mws {
			t.Run(s.name+"/"+name, func(t *testing.T) {
				t.Parallel()
				e, err := tasks.NewEngine(s.open(t), enqueueMiddleware(mw))
				if err != nil {
					t.Fatal(err)
				}
				ctx := t.Context()
				got, err := e.Enqueue(ctx, tasks.NewTask{AppID: "app_1", EventType: "a"})
				if err == nil || got != nil {
					t.Errorf("Enqueue: got %v, %v; want no task and an error", got, err)
				}
				gots, err := e.EnqueueMany(ctx, []tasks.NewTask{{AppID: "app_1", EventType: "a"}, {AppID: "app_1", EventType: "b"}})
				if err == nil {
					t.Errorf("EnqueueMany: got %v, nil; want an error", gots)
				}
			})
		}
	}
}

// TestMiddleware_EnqueueInvalidChange: an Enqueue middleware may change the
// tasks it is given, but what it hands on to be stored is checked as Enqueue
// checks a NewTask: an invalid change is a *ValidationError naming the
// field, and nothing is stored.
func TestMiddleware_EnqueueInvalidChange(t *testing.T) {
	t.Parallel()
	changes := map[string]struct {
		change func(*tasks.Task)
		field  string
	}{
		"data over the limit": {func(t *tasks.Task) { t.Data = json.RawMessage(`"` + strings.Repeat("x", 100) + `"`) }, "data"},
		"data not JSON":       {func(t *tasks.Task) { t.Data = json.RawMessage(`{`) }, "data"},
		"event type":          {func(t *tasks.Task) { t.EventType = "has spaces" }, "event_type"},
		"no app":              {func(t *tasks.Task) { t.AppID = "" }, "app_id"},
		"no id":               {func(t *tasks.Task) { t.ID = "" }, "id"},
		"max attempts":        {func(t *tasks.Task) { t.MaxAttempts = 0 }, "max_attempts"},
		"trace context":       {func(t *tasks.Task) { t.TraceParent = "00-x\r\nX-Injected: 1" }, "traceparent"},
		"long trace state": {func(t *tasks.Task) {
			t.TraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
			t.TraceState = "a=" + strings.Repeat("v", 250) + ",b=" + strings.Repeat("v", 250) + ",c=" + strings.Repeat("v", 250)
		}, "tracestate"},
	}
	for _, s := range testStores {
		for name, c := range changes {
			t.Run(s.name+"/"+name, func(t *testing.T) {
				t.Parallel()
				e, err := tasks.NewEngine(s.open(t), enqueueMiddleware(
					func(ctx context.Context, ts []*tasks.Task, next func(context.Context, []*tasks.Task) ([]*tasks.Task, error)) ([]*tasks.Task, error) {
						for _, t := range ts {
							if t.EventType == "changed" {
								c.change(t)
							}
						}
						return next(ctx, ts)
					}))
				if err != nil {
					t.Fatal(err)
				}
				ctx := t.Context()
				var ve *tasks.ValidationError
				_, err = e.Enqueue(ctx, tasks.NewTask{AppID: "app_1", EventType: "changed"})
				if !errors.As(err, &ve) || ve.Field != c.field {
					t.Errorf("Enqueue: got error %v, want a *ValidationError of %s", err, c.field)
				}
				_, err = e.EnqueueMany(ctx, []tasks.NewTask{{AppID: "app_1", EventType: "kept"}, {AppID: "app_1", EventType: "changed"}})
				if !errors.As(err, &ve) || ve.Field != "tasks[1]."+c.field {
					t.Errorf("EnqueueMany: got error %v, want a *ValidationError of tasks[1].%s", err, c.field)
				}
				list, _, err := e.List(ctx, tasks.ListParams{}) // every app's
				if err != nil {
					t.Fatal(err)
				}
				if len(list) != 0 {
					t.Errorf("%d tasks stored, want none", len(list))
				}
			})
		}
	}
}
