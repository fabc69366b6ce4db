package tasktest_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/tasktest"
)

// RunTask runs the registered func on the task as a worker hands it over,
// returns its error unchanged, turns a panic into an error, and leaves the
// store alone.
func TestRunTask(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st store) {
		ctx := t.Context()
		eng := newEngine(t, st.s)
		errBounce := errors.New("mailbox full")
		var seen *tasks.Task
		eng.Register("user.welcome", func(_ context.Context, task *tasks.Task) error {
			seen = task
			return errBounce
		})
		eng.Register("user.panic", func(context.Context, *tasks.Task) error { panic("boom") })
		eng.Register("user.slow", func(ctx context.Context, _ *tasks.Task) error {
			<-ctx.Done()
			return context.Cause(ctx)
		})
		task := enqueue(t, eng, "app_1", "user.welcome", `{"email":"a@example.com"}`)

		if err := tasktest.RunTask(ctx, t, eng, task); !errors.Is(err, errBounce) {
			t.Errorf("RunTask: got %v, want the func's error", err)
		}
		if seen.ID != task.ID || seen.State != tasks.StateRunning || seen.Attempts != 1 || seen.NextAttemptAt != nil ||
			string(seen.Data) != `{"email":"a@example.com"}` {
			t.Errorf("the func saw %+v, want the task's first attempt", seen)
		}
		if got, err := eng.Get(ctx, task.ID); err != nil || got.State != tasks.StateScheduled || got.Attempts != 0 {
			t.Errorf("the task after RunTask: %+v, %v; want it unchanged", got, err)
		}

		panicky := enqueue(t, eng, "app_1", "user.panic", `{}`)
		if err := tasktest.RunTask(ctx, t, eng, panicky); err == nil || !strings.Contains(err.Error(), "boom") ||
			!strings.Contains(err.Error(), "goroutine") {
			t.Errorf("RunTask of a panicking func: got %v, want an error with the panic and its stack", err)
		}

		slow, err := eng.Enqueue(ctx, tasks.NewTask{AppID: "app_1", EventType: "user.slow", Data: json.RawMessage(`{}`),
			Timeout: 10 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if err := tasktest.RunTask(ctx, t, eng, slow); err == nil || !strings.Contains(err.Error(), "timed out") {
			t.Errorf("RunTask past the task's timeout: got %v, want the timeout", err)
		}

		hook := enqueue(t, eng, "app_1", "order.placed", `{}`)
		msg, failed := fatal(t, func(tb testing.TB) { tasktest.RunTask(ctx, tb, eng, hook) })
		if !failed || !strings.Contains(msg, `no func registered for event type "order.placed"`) {
			t.Errorf("RunTask of a webhook task: failed %v, %q", failed, msg)
		}
	})
}

// RunDue runs what is due at the time it is given, earliest first,
// records outcomes, runs the retries due by then, and leaves later tasks.
func TestRunDue(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st store) {
		ctx := t.Context()
		eng := newEngine(t, st.s)
		var (
			mu    sync.Mutex
			order []string
			tries = make(map[string]int)
		)
		ran := func(task *tasks.Task) int {
			mu.Lock()
			defer mu.Unlock()
			order = append(order, string(task.Data))
			tries[task.ID]++
			return tries[task.ID]
		}
		eng.Register("remind", func(_ context.Context, task *tasks.Task) error { ran(task); return nil })
		eng.Register("flaky", func(_ context.Context, task *tasks.Task) error {
			if ran(task) < 3 {
				return tasks.RetryAfter(10*time.Minute, errors.New("not yet"))
			}
			return nil
		})
		eng.Register("slow.retry", func(_ context.Context, task *tasks.Task) error {
			if ran(task) < 2 {
				return tasks.RetryAfter(2*time.Hour, errors.New("later"))
			}
			return nil
		})
		eng.Register("broken", func(_ context.Context, task *tasks.Task) error {
			ran(task)
			return tasks.Permanent(errors.New("bad input"))
		})
		now := time.Now()
		at := func(eventType, data string, d time.Duration) *tasks.Task {
			task, err := eng.Enqueue(ctx, tasks.NewTask{AppID: "app_1", EventType: eventType,
				Data: json.RawMessage(data), RunAt: now.Add(d)})
			if err != nil {
				t.Fatal(err)
			}
			return task
		}
		inTwoHours := at("remind", `"in two hours"`, 2*time.Hour)
		inAnHour := at("remind", `"in an hour"`, time.Hour)
		nowTask := at("remind", `"now"`, 0)

		states := func(ts []*tasks.Task) (ids []string, ss []tasks.State) {
			for _, task := range ts {
				ids, ss = append(ids, task.ID), append(ss, task.State)
			}
			return ids, ss
		}
		if ids, ss := states(tasktest.RunDue(ctx, t, eng, now.Add(30*time.Minute))); len(ids) != 1 || ids[0] != nowTask.ID ||
			ss[0] != tasks.StateCompleted {
			t.Errorf("RunDue in 30 minutes: ran %v %v, want the task due now, completed", ids, ss)
		}
		if ids, ss := states(tasktest.RunDue(ctx, t, eng, now.Add(150*time.Minute))); len(ids) != 2 ||
			ids[0] != inAnHour.ID || ids[1] != inTwoHours.ID || ss[0] != tasks.StateCompleted || ss[1] != tasks.StateCompleted {
			t.Errorf("RunDue in 150 minutes: ran %v %v, want the tasks due in an hour and two, in order, completed", ids, ss)
		}
		if got := strings.Join(order, " "); got != `"now" "in an hour" "in two hours"` {
			t.Errorf("ran %s, want the reminders in the order due", got)
		}
		if got := tasktest.RunDue(ctx, t, eng, now.Add(150*time.Minute)); len(got) != 0 {
			t.Errorf("RunDue again: ran %d tasks, want none", len(got))
		}

		// Retries due by the time given run too; later ones wait.
		flaky := at("flaky", `"flaky"`, 0)
		slow := at("slow.retry", `"slow"`, 0)
		broken := at("broken", `"broken"`, 0)
		got := tasktest.RunDue(ctx, t, eng, now.Add(time.Hour))
		byID := make(map[string]*tasks.Task)
		for _, task := range got {
			byID[task.ID] = task
		}
		if f := byID[flaky.ID]; f == nil || f.State != tasks.StateCompleted || f.Attempts != 3 {
			t.Errorf("flaky task after RunDue in an hour: %+v, want completed at its third attempt", f)
		}
		if s := byID[slow.ID]; s == nil || s.State != tasks.StateRetrying || s.Attempts != 1 {
			t.Errorf("task retried in two hours, after RunDue in an hour: %+v, want retrying after one attempt", s)
		}
		if b := byID[broken.ID]; b == nil || b.State != tasks.StateFailed || b.Attempts != 1 || !strings.Contains(b.LastError, "bad input") {
			t.Errorf("task failing permanently: %+v, want failed at once", b)
		}
		if got := tasktest.RunDue(ctx, t, eng, now.Add(3*time.Hour)); len(got) != 1 || got[0].ID != slow.ID ||
			got[0].State != tasks.StateCompleted || got[0].Attempts != 2 {
			t.Errorf("RunDue in three hours: %v, want the slow retry completed", got)
		}
		if as, err := eng.Attempts(ctx, flaky.ID); err != nil || len(as) != 3 {
			t.Errorf("attempts of the flaky task: %d, %v; want 3 recorded", len(as), err)
		}

		// Not on a started engine.
		if err := eng.Start(ctx); err != nil {
			t.Fatal(err)
		}
		defer eng.Stop(context.Background())
		msg, failed := fatal(t, func(tb testing.TB) { tasktest.RunDue(ctx, tb, eng, now) })
		if !failed || !strings.Contains(msg, "the engine is started") {
			t.Errorf("RunDue on a started engine: failed %v, %q", failed, msg)
		}
	})
}

// RunDue delivers a task that has no func to its app's endpoints, as a
// worker would, and records the delivery's attempt.
func TestRunDue_webhook(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	got := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get("webhook-id")
	}))
	defer srv.Close()
	eng, err := tasks.NewEngine(tasks.NewMemoryStore(), &tasks.Config{Webhooks: &tasks.WebhookConfig{
		AllowNetworks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	ep, err := eng.CreateEndpoint(ctx, tasks.NewEndpoint{AppID: "app_1", URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	task, err := eng.Enqueue(ctx, tasks.NewTask{AppID: "app_1", EventType: "order.placed", Data: json.RawMessage(`{}`),
		RunAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	ran := tasktest.RunDue(ctx, t, eng, time.Now().Add(time.Hour))
	if len(ran) != 1 || ran[0].State != tasks.StateCompleted || ran[0].EndpointID == nil || *ran[0].EndpointID != ep.ID {
		t.Fatalf("RunDue: %+v, want the task delivered to the endpoint", ran)
	}
	select {
	case id := <-got:
		if id != task.ID {
			t.Errorf("the receiver got webhook-id %q, want %q", id, task.ID)
		}
	default:
		t.Error("the receiver got nothing")
	}
}
