package tasks

import (
	"context"
	"fmt"
)

// Middleware wraps what the engine does with tasks, for what every task
// needs around it: a trace, metrics, error reporting, a tenant's context.
// Either field may be nil. [Config].Middleware lists them, the first
// outermost; the engine's own OpenTelemetry instrumentation (see
// Config.TracerProvider) is one more, outside them all, so that theirs
// see its span in their context.
//
// Enqueue wraps each enqueue, after validation: ts are the tasks about to
// be stored, with their IDs (one for [Engine.Enqueue], [Engine.EnqueueTx]
// and a periodic task's slot, all of [Engine.EnqueueMany]'s), which it may
// change; next stores them and returns what the store returned, which
// Enqueue should return. Execute wraps each attempt of a task: t is the
// task, t.Attempts the attempt's number; next runs the task's func, or
// delivers it to its endpoints, and Execute's error is the attempt's
// (return next's to change nothing). A panic in Execute is recovered as a
// panic in a func is. Neither may keep ts, t or next past its return.
//
//	audit := tasks.Middleware{
//		Execute: func(ctx context.Context, t *tasks.Task, next tasks.Func) error {
//			err := next(ctx, t)
//			if err != nil && t.Attempts == t.MaxAttempts {
//				sentry.CaptureException(err)
//			}
//			return err
//		},
//	}
//
// With no Middleware and the instrumentation off, the engine calls no
// wrapper and allocates nothing for them.
type Middleware struct {
	Enqueue func(ctx context.Context, ts []*Task, next func(context.Context, []*Task) ([]*Task, error)) ([]*Task, error)
	Execute func(ctx context.Context, t *Task, next Func) error
}

// enqueueNext stores tasks; it is what the innermost Enqueue wraps.
type enqueueNext = func(context.Context, []*Task) ([]*Task, error)

// wrapEnqueue returns store wrapped by the Enqueue of each of mws, the
// first outermost.
func wrapEnqueue(mws []Middleware, store enqueueNext) enqueueNext {
	next := store
	for i := len(mws) - 1; i >= 0; i-- {
		if mw := mws[i].Enqueue; mw != nil {
			inner := next
			next = func(ctx context.Context, ts []*Task) ([]*Task, error) { return mw(ctx, ts, inner) }
		}
	}
	return next
}

// wrapExecute returns run wrapped by the Execute of each of mws, the first
// outermost.
func wrapExecute(mws []Middleware, run Func) Func {
	next := run
	for i := len(mws) - 1; i >= 0; i-- {
		if mw := mws[i].Execute; mw != nil {
			inner := next
			next = func(ctx context.Context, t *Task) error { return mw(ctx, t, inner) }
		}
	}
	return next
}

// enqueueThrough stores ts with store, through the engine's Enqueue
// middleware. Only callers that have some (e.enqMW) call it.
func (e *Engine) enqueueThrough(ctx context.Context, ts []*Task, store enqueueNext) ([]*Task, error) {
	return wrapEnqueue(e.mws, store)(ctx, ts)
}

// enqueueOne stores t with insert, through the engine's Enqueue
// middleware, and returns what insert returned for it. Only callers that
// have some (e.enqMW) call it: making the func value insert allocates.
func (e *Engine) enqueueOne(ctx context.Context, t *Task, insert func(context.Context, *Task) (*Task, error)) (*Task, error) {
	got, err := e.enqueueThrough(ctx, []*Task{t}, func(ctx context.Context, ts []*Task) ([]*Task, error) {
		if len(ts) != 1 {
			return nil, fmt.Errorf("tasks: enqueue middleware passed %d tasks on, not 1", len(ts))
		}
		stored, err := insert(ctx, ts[0])
		return []*Task{stored}, err
	})
	if len(got) != 1 {
		return nil, err
	}
	return got[0], err
}
