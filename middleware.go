package tasks

import (
	"context"
	"errors"
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
// Enqueue should return. What the innermost Enqueue hands to the store is
// checked again as Enqueue checks a NewTask (with Config.MaxDataBytes, a
// non-empty ID, and TraceParent and TraceState as W3C headers): an invalid
// change is a *ValidationError, and nothing is stored. An Enqueue that
// returns no task for one it was given, and no error, makes the enqueue
// fail. Execute wraps each attempt of a task: t is the
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
// middleware. Only callers that have some (e.enqMW) call it. When a
// Config.Middleware wraps enqueues, the tasks it hands on are checked
// before store sees them; many says to name a task's field by its index.
func (e *Engine) enqueueThrough(ctx context.Context, ts []*Task, many bool, store enqueueNext) ([]*Task, error) {
	if e.checkEnq {
		inner := store
		store = func(ctx context.Context, ts []*Task) ([]*Task, error) {
			for i, t := range ts {
				if err := e.checkEnqueued(t); err != nil {
					var ve *ValidationError
					if errors.As(err, &ve) && many {
						ve.Field = fmt.Sprintf("tasks[%d].%s", i, ve.Field)
					}
					return nil, err
				}
			}
			return inner(ctx, ts)
		}
	}
	return wrapEnqueue(e.mws, store)(ctx, ts)
}

// checkEnqueued checks t as an Enqueue middleware hands it on to be stored,
// as newTask checked the NewTask it came from, so that a middleware's change
// cannot store what Enqueue refuses: data past Config.MaxDataBytes, an event
// type no route matches, a task of no app, or a trace context that would be
// sent, as it is, in the header of each delivery.
func (e *Engine) checkEnqueued(t *Task) error {
	if t == nil {
		return invalid("task", "nil, as an Enqueue middleware left it")
	}
	err := validateText("id", t.ID, MaxIDLength)
	if err == nil && t.ID == "" {
		err = invalid("id", "must not be empty")
	}
	if err == nil {
		nt := NewTask{AppID: t.AppID, EventType: t.EventType, Data: t.Data, MaxAttempts: t.MaxAttempts,
			Timeout: t.Timeout, IdempotencyKey: t.IdempotencyKey}
		err = nt.Validate()
	}
	switch {
	case err != nil:
	case len(t.Data) == 0:
		err = invalid("data", "empty; null is the JSON of no data")
	case len(t.Data) > e.cfg.MaxDataBytes:
		err = invalid("data", "%d bytes, more than the limit of %d", len(t.Data), e.cfg.MaxDataBytes)
	case t.MaxAttempts < 1:
		err = invalid("max_attempts", "must be at least 1")
	default:
		err = validTraceContext(t.TraceParent, t.TraceState)
	}
	if ve := (*ValidationError)(nil); errors.As(err, &ve) {
		ve.Message += ", as an Enqueue middleware left it"
	}
	return err
}

// enqueueOne stores t with insert, through the engine's Enqueue
// middleware, and returns what insert returned for it. Only callers that
// have some (e.enqMW) call it: making the func value insert allocates.
func (e *Engine) enqueueOne(ctx context.Context, t *Task, insert func(context.Context, *Task) (*Task, error)) (*Task, error) {
	got, err := e.enqueueThrough(ctx, []*Task{t}, false, func(ctx context.Context, ts []*Task) ([]*Task, error) {
		if len(ts) != 1 {
			return nil, fmt.Errorf("tasks: enqueue middleware passed %d tasks on, not 1", len(ts))
		}
		stored, err := insert(ctx, ts[0])
		return []*Task{stored}, err
	})
	if len(got) != 1 || got[0] == nil {
		if err == nil {
			err = errMiddlewareNoTask
		}
		return nil, err
	}
	return got[0], err
}

// errMiddlewareNoTask is the error of an enqueue whose Enqueue middleware
// returned no task, and no error, for a task it was given: the caller must
// not take the task as stored, nor get a nil task without an error.
var errMiddlewareNoTask = errors.New("tasks: enqueue middleware returned no task and no error")
