package tasktest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/tasktest"
)

// uuidRE matches a UUID of any version (the engine makes version 7).
var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[1-8][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestTask(t *testing.T) {
	t.Parallel()

	t.Run("FirstAttempt", func(t *testing.T) {
		t.Parallel()
		runAt := time.Date(2030, 1, 2, 3, 4, 5, 6789, time.FixedZone("X", 3600))
		data := json.RawMessage(`{"a": 1}`)
		nt := tasks.NewTask{
			AppID: "app_1", EventType: "user.welcome", Data: data, RunAt: runAt,
			MaxAttempts: 5, Timeout: time.Second, IdempotencyKey: "k",
		}
		before := time.Now().Add(-time.Millisecond)
		got := tasktest.Task(t, nt)
		data[0] = 'X' // the task must not share the caller's bytes
		if !uuidRE.MatchString(got.ID) {
			t.Errorf("ID: got %q, want a UUID", got.ID)
		}
		if got.State != tasks.StateRunning || got.Attempts != 1 || got.MaxAttempts != 5 {
			t.Errorf("got State %s, Attempts %d, MaxAttempts %d; want running, 1, 5", got.State, got.Attempts, got.MaxAttempts)
		}
		if got.AppID != nt.AppID || got.EventType != nt.EventType || got.Timeout != nt.Timeout || got.IdempotencyKey != nt.IdempotencyKey {
			t.Errorf("got AppID %q, EventType %q, Timeout %v, IdempotencyKey %q; want %q, %q, %v, %q",
				got.AppID, got.EventType, got.Timeout, got.IdempotencyKey, nt.AppID, nt.EventType, nt.Timeout, nt.IdempotencyKey)
		}
		if string(got.Data) != `{"a": 1}` {
			t.Errorf("Data: got %s, want {\"a\": 1}", got.Data)
		}
		wantRunAt := time.Date(2030, 1, 2, 2, 4, 5, 6000, time.UTC)
		if got.ScheduledRunTime == nil || !got.ScheduledRunTime.Equal(wantRunAt) || got.ScheduledRunTime.Location() != time.UTC {
			t.Errorf("ScheduledRunTime: got %v, want %v", got.ScheduledRunTime, wantRunAt)
		}
		if got.CreatedAt.Before(before) || got.CreatedAt.After(time.Now()) || got.CreatedAt.Location() != time.UTC || !got.UpdatedAt.Equal(got.CreatedAt) {
			t.Errorf("got CreatedAt %v, UpdatedAt %v; want both now, in UTC", got.CreatedAt, got.UpdatedAt)
		}
		nt.Data = nil
		if other := tasktest.Task(t, nt); other.ID == got.ID {
			t.Errorf("two tasks got the same ID %s, want fresh IDs", got.ID)
		}
	})

	t.Run("Defaults", func(t *testing.T) {
		t.Parallel()
		got := tasktest.Task(t, tasks.NewTask{AppID: "app_1", EventType: "e"})
		if string(got.Data) != "null" || got.MaxAttempts != tasks.DefaultMaxAttempts || got.ScheduledRunTime != nil || got.Timeout != 0 {
			t.Errorf("got Data %s, MaxAttempts %d, ScheduledRunTime %v, Timeout %v; want null, %d, nil, 0",
				got.Data, got.MaxAttempts, got.ScheduledRunTime, got.Timeout, tasks.DefaultMaxAttempts)
		}
	})

	t.Run("InvalidNewTaskFailsTheTest", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			name string
			nt   tasks.NewTask
			want string
		}{
			{"NoAppID", tasks.NewTask{EventType: "e"}, "app_id"},
			{"BadEventType", tasks.NewTask{AppID: "a", EventType: "a..b"}, "event_type"},
			{"BadData", tasks.NewTask{AppID: "a", EventType: "e", Data: json.RawMessage(`{`)}, "data"},
			{"NegativeMaxAttempts", tasks.NewTask{AppID: "a", EventType: "e", MaxAttempts: -1}, "max_attempts"},
			{"NegativeTimeout", tasks.NewTask{AppID: "a", EventType: "e", Timeout: -1}, "timeout"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				msg, failed := fatal(t, func(tb testing.TB) { tasktest.Task(tb, tc.nt) })
				if !failed || !strings.Contains(msg, tc.want) {
					t.Errorf("Task(%+v): got failed %v, message %q; want a failure naming %q", tc.nt, failed, msg, tc.want)
				}
			})
		}
	})
}

func TestRun(t *testing.T) {
	t.Parallel()
	nt := tasks.NewTask{AppID: "app_1", EventType: "user.welcome", Data: json.RawMessage(`{"email":"a@b.c"}`)}

	t.Run("PassesTheTask", func(t *testing.T) {
		t.Parallel()
		var seen *tasks.Task
		err := tasktest.Run(t, func(ctx context.Context, tk *tasks.Task) error {
			seen = tk
			return nil
		}, nt)
		if err != nil {
			t.Fatalf("Run: got error %v, want nil", err)
		}
		if seen == nil || seen.EventType != nt.EventType || string(seen.Data) != string(nt.Data) || seen.Attempts != 1 {
			t.Errorf("func saw %+v, want the first attempt of %+v", seen, nt)
		}
	})

	t.Run("ReturnsTheFuncsError", func(t *testing.T) {
		t.Parallel()
		errBounce := errors.New("mailbox full")
		for _, want := range []error{errBounce, tasks.Permanent(errBounce), tasks.RetryAfter(time.Minute, errBounce)} {
			err := tasktest.Run(t, func(context.Context, *tasks.Task) error { return want }, nt)
			if err != want || !errors.Is(err, errBounce) {
				t.Errorf("Run: got error %v, want %v", err, want)
			}
		}
	})

	t.Run("TimeoutBoundsTheContext", func(t *testing.T) {
		t.Parallel()
		withTimeout := nt
		withTimeout.Timeout = 10 * time.Millisecond
		err := tasktest.Run(t, func(ctx context.Context, tk *tasks.Task) error {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(10 * time.Second):
				return errors.New("context not cancelled at the timeout")
			}
		}, withTimeout)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Run: got error %v, want %v", err, context.DeadlineExceeded)
		}
		err = tasktest.Run(t, func(ctx context.Context, tk *tasks.Task) error {
			if _, ok := ctx.Deadline(); ok {
				return errors.New("got a deadline, want none without a Timeout")
			}
			return ctx.Err()
		}, nt)
		if err != nil {
			t.Errorf("Run without Timeout: got error %v, want nil", err)
		}
	})

	t.Run("PanicBecomesAnError", func(t *testing.T) {
		t.Parallel()
		err := tasktest.Run(t, func(context.Context, *tasks.Task) error { panic("kaboom") }, nt)
		if err == nil || !strings.Contains(err.Error(), "kaboom") || !strings.Contains(err.Error(), "goroutine") {
			t.Errorf("Run of a panicking func: got error %v, want one with the panic value and the stack", err)
		}
	})
}

// fatal runs f with a testing.TB whose Fatal methods record the message and
// end f's goroutine, and reports whether f called one.
func fatal(t *testing.T, f func(testing.TB)) (msg string, failed bool) {
	tb := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(tb)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("f did not return")
	}
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return tb.msg, tb.failed
}

type recorder struct {
	testing.TB
	mu     sync.Mutex
	msg    string
	failed bool
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) {
	r.mu.Lock()
	r.msg, r.failed = fmt.Sprintf(format, args...), true
	r.mu.Unlock()
	runtime.Goexit()
}

func (r *recorder) Fatal(args ...any) { r.Fatalf("%s", fmt.Sprint(args...)) }
