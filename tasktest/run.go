package tasktest

import (
	"context"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/internal/testhook"
)

// RunTask runs, in the calling goroutine, the func that eng registered for
// task's event type on a copy of task as eng's workers hand it to the
// func for its next attempt: state running, Attempts one more,
// NextAttemptAt nil. It runs it as an attempt runs, under the task's
// Timeout (or eng's Config.Timeout), a panic becoming an error that
// carries the stack, and returns the func's error unchanged, so a test can
// check it with [errors.Is] or [errors.As]. It needs no started engine and
// changes nothing in the store: the task stays as it was (see [RunDue] to
// run the store's tasks and record their outcomes).
//
// RunTask fails t if eng has no func for the event type: such tasks are
// delivered to webhook endpoints.
func RunTask(ctx context.Context, t testing.TB, eng *tasks.Engine, task *tasks.Task) error {
	t.Helper()
	if eng == nil || task == nil {
		t.Fatalf("tasktest: RunTask with a nil engine or task")
	}
	if !testhook.Registered(eng, task.EventType) {
		t.Fatalf("tasktest: RunTask: the engine has no func registered for event type %q; its tasks are delivered to webhook endpoints", task.EventType)
	}
	c := *task
	c.State, c.Attempts, c.NextAttemptAt = tasks.StateRunning, task.Attempts+1, nil
	c.Data = append([]byte(nil), task.Data...)
	return testhook.RunFunc(ctx, eng, &c)
}

// RunDue runs, in the calling goroutine, the tasks of eng's store that are
// due at asOf, as if the clock read asOf: every scheduled or retrying task
// whose NextAttemptAt is not after asOf, earliest first. It runs each as
// eng's workers would, its func or its delivery to webhook endpoints, and
// records the outcome in the store (completed; retrying, with eng's
// backoff; failed), then runs again the retries that became due by asOf,
// until no task is due at asOf. It returns the tasks it ran, in the order
// of their first attempts, as they ended. So a test drives scheduled tasks
// without sleeping: enqueue a task an hour ahead, and RunDue at now plus
// an hour runs it; at now plus a minute, it runs nothing.
//
// It is a simulation of the clock, not a fake clock inside the engine:
//
//   - Each attempt runs when RunDue calls it, and a retry's delay counts
//     from then, not from the time the task was due.
//   - A claim takes only tasks due on the store's own clock, so RunDue
//     first reschedules to now each task due at asOf but not yet on that
//     clock: its ScheduledRunTime becomes the time it ran.
//   - Periodic tasks enqueue their slots in a started engine only; RunDue
//     runs the tasks already enqueued.
//
// eng must not be started, and no other engine may run the store's tasks
// meanwhile: RunDue fails t if it finds otherwise, or if the store fails.
// Task funcs that keep enqueueing tasks due at once make it fail t after
// 10,000 attempts.
func RunDue(ctx context.Context, t testing.TB, eng *tasks.Engine, asOf time.Time) []*tasks.Task {
	t.Helper()
	if eng == nil {
		t.Fatalf("tasktest: RunDue with a nil engine")
	}
	v, err := testhook.RunDue(ctx, eng, asOf)
	if err != nil {
		t.Fatalf("tasktest: %v", err)
	}
	return v.([]*tasks.Task)
}
