package tasks_test

import (
	"context"
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
