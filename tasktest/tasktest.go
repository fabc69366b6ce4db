// Package tasktest helps test code built on package tasks.
//
// To test a task func without an engine or a store, run it on the task the
// engine would hand it:
//
//	func TestWelcome(t *testing.T) {
//		err := tasktest.Run(t, sendWelcome, tasks.NewTask{
//			AppID:     "app_1",
//			EventType: "user.welcome",
//			Data:      json.RawMessage(`{"email":"a@b.c"}`),
//		})
//		if err != nil {
//			t.Fatal(err)
//		}
//	}
//
// [Task] builds that task, for a test that wants to change it first (to run
// the last attempt, say) or to call the func itself.
//
// To test code that enqueues, assert what it enqueued, by app, event type and
// a part of the data, in the store ([RequireEnqueued], [RequireNotEnqueued],
// [FindEnqueued]) or inside the transaction it enqueued in
// ([RequireEnqueuedTx]):
//
//	task := tasktest.RequireEnqueued(ctx, t, store, tasktest.EnqueuedParams{
//		EventType: "user.welcome",
//		Data:      json.RawMessage(`{"email":"a@b.c"}`),
//	})
//
// then run it, here and now, with the func the application's engine
// registered for it, without starting the engine ([RunTask]). To test
// tasks scheduled ahead without sleeping, [RunDue] runs, on an engine that
// is not started, the store's tasks due at a time the test chooses, and
// records their outcomes, retries included:
//
//	tasktest.RunDue(ctx, t, eng, time.Now().Add(24*time.Hour)) // a day later
//
// To check an implementation of [tasks.Store], run the conformance suite on
// it; every store in package tasks passes it:
//
//	func TestMyStore(t *testing.T) {
//		tasktest.TestStore(t, func(t *testing.T) tasks.Store {
//			return newMyStore(t) // fresh and empty, cleaned up by t.Cleanup
//		})
//	}
package tasktest

import (
	"context"
	"fmt"
	"runtime/debug"
	"testing"

	"github.com/taskwheel/tasks"
)

// Task returns the task that a [tasks.Func] sees on the first attempt of a
// task enqueued as nt, built as an engine with the default [tasks.Config]
// builds it: a fresh UUID, state running, Attempts 1, CreatedAt and
// UpdatedAt now, ScheduledRunTime nt.RunAt (nil when zero), Data nt.Data
// (JSON null when nil), and AppID, EventType, MaxAttempts, Timeout and
// IdempotencyKey as nt gives them, except that MaxAttempts is
// tasks.DefaultMaxAttempts when nt leaves it zero. Times are UTC, to the
// microsecond, as stores keep them. NextAttemptAt and LeaseExpiresAt are
// nil.
//
// Task fails t at once when such an engine would refuse nt (see
// [tasks.NewTask.Validate] and [tasks.Config.MaxDataBytes]).
//
// Set fields of the result to test other cases, for example Attempts equal
// to MaxAttempts for the last attempt.
func Task(t testing.TB, nt tasks.NewTask) *tasks.Task {
	t.Helper()
	// The engine's own construction, through an engine that is never
	// started, on a store of its own: what a func sees is what Enqueue
	// stores, and nothing here repeats how.
	e, err := tasks.NewEngine(tasks.NewMemoryStore(), nil)
	if err != nil {
		t.Fatalf("tasktest: %v", err)
	}
	task, err := e.Enqueue(context.Background(), nt)
	if err != nil {
		t.Fatalf("tasktest: %v", err)
	}
	task.State, task.Attempts, task.NextAttemptAt = tasks.StateRunning, 1, nil
	return task
}

// Run runs fn once on Task(t, nt), as the engine runs an attempt, and returns
// fn's error unchanged, so a test can check it with [errors.Is] or
// [errors.As]. fn runs in the calling goroutine with a context that ends when
// the test ends or, when nt.Timeout is positive, when that timeout passes. A
// panic in fn is recovered and returned as an error carrying the panic value
// and the stack, as the engine records it.
func Run(t testing.TB, fn tasks.Func, nt tasks.NewTask) (err error) {
	t.Helper()
	if fn == nil {
		t.Fatalf("tasktest: Run with a nil func")
	}
	task := Task(t, nt)
	ctx := t.Context()
	if task.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, task.Timeout)
		defer cancel()
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("tasktest: task func panicked: %v\n%s", p, debug.Stack())
		}
	}()
	return fn(ctx, task)
}
