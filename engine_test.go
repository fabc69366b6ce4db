package tasks_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/internal/testkit"
)

// The helpers these tests share with the dashboard's.
var (
	newEngine      = testkit.NewEngine
	startEngine    = testkit.StartEngine
	waitState      = testkit.WaitState
	enqueue        = testkit.Enqueue
	createEndpoint = testkit.CreateEndpoint
	status         = testkit.Status
	postgresStores = testkit.PostgresStores
	sqliteStores   = testkit.SQLiteStores
)

// testEngineStores runs body once per store kind.
func testEngineStores(t *testing.T, body func(t *testing.T, newStore func(testing.TB) tasks.Store)) {
	for _, s := range testStores {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			body(t, s.open)
		})
	}
}

func TestEngine_RunsTask(t *testing.T) {
	t.Parallel()
	testEngineStores(t, func(t *testing.T, newStore func(testing.TB) tasks.Store) {
		data := json.RawMessage(`{ "email": "a@b.c",  "n": 1.50, "z": "\u00e9" }`)
		got := make(chan *tasks.Task, 1)
		e := startEngine(t, newStore(t), nil, map[string]tasks.Func{
			"user.welcome": func(ctx context.Context, task *tasks.Task) error {
				got <- task
				return nil
			},
		})
		task := enqueue(t, e, tasks.NewTask{EventType: "user.welcome", Data: data})
		if task.State != tasks.StateScheduled || task.ScheduledRunTime != nil {
			t.Errorf("enqueued task: state %s, scheduled_run_time %v; want scheduled, nil", task.State, task.ScheduledRunTime)
		}
		ran := <-got
		if string(ran.Data) != string(data) || ran.ID != task.ID || ran.Attempts != 1 || ran.State != tasks.StateRunning {
			t.Errorf("func got %+v, want the task running at attempt 1 with data %s", ran, data)
		}
		done := waitState(t, e, task.ID, tasks.StateCompleted)
		if done.CompletedAt == nil || done.NextAttemptAt != nil || done.LastError != "" {
			t.Errorf("completed task: %+v", done)
		}
	})
}

// TestEngine_Time checks in fake time that tasks start exactly when due,
// never early, and that retries follow the backoff.
func TestEngine_Time(t *testing.T) {
	t.Parallel()
	t.Run("scheduled tasks start exactly at their time", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			start := time.Now()
			var mu sync.Mutex
			lateness := map[string]time.Duration{}
			e := startEngine(t, tasks.NewMemoryStore(), nil, map[string]tasks.Func{
				"x": func(ctx context.Context, task *tasks.Task) error {
					mu.Lock()
					defer mu.Unlock()
					lateness[task.ID] = time.Since(*task.ScheduledRunTime)
					return nil
				},
			})
			// From 1 ms to 3 hours ahead: every level of the wheel.
			for _, d := range []time.Duration{time.Millisecond, 7 * time.Millisecond, 250 * time.Millisecond,
				5 * time.Second, 90 * time.Second, 17 * time.Minute, 3 * time.Hour} {
				enqueue(t, e, tasks.NewTask{EventType: "x", RunAt: start.Add(d)})
			}
			time.Sleep(4 * time.Hour)
			synctest.Wait()
			mu.Lock()
			defer mu.Unlock()
			if len(lateness) != 7 {
				t.Fatalf("%d tasks ran, want 7", len(lateness))
			}
			for id, late := range lateness {
				if late != 0 {
					t.Errorf("task %s started %v after its time, want exactly on time", id, late)
				}
			}
		})
	})
	t.Run("tasks due past the wheel's window start at their time with a long poll interval", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			started := make(chan time.Time, 2)
			e := startEngine(t, tasks.NewMemoryStore(), &tasks.Config{PollInterval: 24 * time.Hour}, map[string]tasks.Func{
				"x": func(ctx context.Context, task *tasks.Task) error {
					started <- time.Now()
					return nil
				},
			})
			// Enqueued while the engine waits for its next poll, a day away.
			time.Sleep(time.Second)
			for _, d := range []time.Duration{5 * time.Minute, 3 * time.Hour} {
				runAt := time.Now().Add(d)
				enqueue(t, e, tasks.NewTask{EventType: "x", RunAt: runAt})
				if got := <-started; !got.Equal(runAt) {
					t.Errorf("a task due in %v started %v late", d, got.Sub(runAt))
				}
			}
		})
	})
	t.Run("tasks of another engine start at their time after a refill", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			store := tasks.NewMemoryStore()
			started := make(chan time.Time, 1)
			startEngine(t, store, nil, map[string]tasks.Func{
				"x": func(ctx context.Context, task *tasks.Task) error {
					started <- time.Now()
					return nil
				},
			})
			// An engine that only enqueues: the running one learns of the
			// task at its next poll, 30 s before it is due.
			producer, err := tasks.NewEngine(store, nil)
			if err != nil {
				t.Fatal(err)
			}
			runAt := time.Now().Add(30 * time.Second)
			enqueue(t, producer, tasks.NewTask{EventType: "x", RunAt: runAt})
			if got := <-started; !got.Equal(runAt) {
				t.Errorf("started at %v, want %v", got, runAt)
			}
		})
	})
	t.Run("retries follow the backoff and RetryAfter", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var starts []time.Time
			e := startEngine(t, tasks.NewMemoryStore(), &tasks.Config{
				BackoffFunc: func(attempt int) time.Duration { return time.Duration(attempt) * time.Minute },
			}, map[string]tasks.Func{
				"x": func(ctx context.Context, task *tasks.Task) error {
					starts = append(starts, time.Now())
					switch task.Attempts {
					case 1, 2:
						return errors.New("try again")
					case 3:
						return tasks.RetryAfter(time.Hour, errors.New("busy"))
					}
					return nil
				},
			})
			task := enqueue(t, e, tasks.NewTask{EventType: "x"})
			time.Sleep(2 * time.Hour)
			synctest.Wait()
			got, _ := e.Get(context.Background(), task.ID)
			if got.State != tasks.StateCompleted || got.Attempts != 4 {
				t.Fatalf("task %s after %d attempts, want completed after 4", got.State, got.Attempts)
			}
			want := []time.Duration{time.Minute, 2 * time.Minute, time.Hour}
			for i, w := range want {
				if gap := starts[i+1].Sub(starts[i]); gap != w {
					t.Errorf("attempt %d started %v after attempt %d, want %v", i+2, gap, i+1, w)
				}
			}
		})
	})
}

func TestEngine_Failures(t *testing.T) {
	t.Parallel()
	testEngineStores(t, func(t *testing.T, newStore func(testing.TB) tasks.Store) {
		var calls sync.Map // event type → *atomic.Int32
		count := func(et string) int32 {
			v, _ := calls.LoadOrStore(et, new(atomic.Int32))
			return v.(*atomic.Int32).Add(1)
		}
		e := startEngine(t, newStore(t), &tasks.Config{
			MaxAttempts: 3,
			BackoffFunc: func(int) time.Duration { return 0 },
		}, map[string]tasks.Func{
			"always.fails": func(ctx context.Context, task *tasks.Task) error {
				return fmt.Errorf("attempt %d failed", count("always.fails"))
			},
			"permanent": func(ctx context.Context, task *tasks.Task) error {
				count("permanent")
				return tasks.Permanent(errors.New("bad input"))
			},
			"panics": func(ctx context.Context, task *tasks.Task) error {
				if count("panics") == 1 {
					panic("boom")
				}
				return nil
			},
			"slow": func(ctx context.Context, task *tasks.Task) error {
				<-ctx.Done()
				return ctx.Err()
			},
		})
		t.Run("attempts used up", func(t *testing.T) {
			task := enqueue(t, e, tasks.NewTask{EventType: "always.fails"})
			got := waitState(t, e, task.ID, tasks.StateFailed)
			if got.Attempts != 3 || got.LastError != "attempt 3 failed" || got.CompletedAt == nil {
				t.Errorf("got attempts %d, last error %q; want 3, %q", got.Attempts, got.LastError, "attempt 3 failed")
			}
		})
		t.Run("per-task max attempts", func(t *testing.T) {
			task := enqueue(t, e, tasks.NewTask{EventType: "always.fails", MaxAttempts: 1})
			if got := waitState(t, e, task.ID, tasks.StateFailed); got.Attempts != 1 {
				t.Errorf("got %d attempts, want 1", got.Attempts)
			}
		})
		t.Run("permanent error", func(t *testing.T) {
			task := enqueue(t, e, tasks.NewTask{EventType: "permanent"})
			got := waitState(t, e, task.ID, tasks.StateFailed)
			if got.Attempts != 1 || got.LastError != "bad input" {
				t.Errorf("got attempts %d, last error %q; want 1, %q", got.Attempts, got.LastError, "bad input")
			}
		})
		t.Run("panic is a failed attempt with its stack (F6)", func(t *testing.T) {
			task := enqueue(t, e, tasks.NewTask{EventType: "panics"})
			got := waitState(t, e, task.ID, tasks.StateCompleted)
			if got.Attempts != 2 || !strings.Contains(got.LastError, "panic: boom") ||
				!strings.Contains(got.LastError, "engine_test.go") {
				t.Errorf("got attempts %d, last error %q; want 2 and the panic with its stack", got.Attempts, got.LastError)
			}
		})
		t.Run("timeout cancels the context", func(t *testing.T) {
			// The task's own timeout: one in Config would bound the
			// other attempts too, such as a webhook attempt's read of
			// the endpoints below, which 50 ms did not always allow on
			// a loaded machine.
			task := enqueue(t, e, tasks.NewTask{EventType: "slow", MaxAttempts: 1, Timeout: 50 * time.Millisecond})
			got := waitState(t, e, task.ID, tasks.StateFailed)
			if !strings.Contains(got.LastError, "timed out") {
				t.Errorf("last error %q, want a timeout", got.LastError)
			}
		})
		t.Run("no func registered: retried, saying so", func(t *testing.T) {
			task := enqueue(t, e, tasks.NewTask{EventType: "nobody.listens"})
			got := waitState(t, e, task.ID, tasks.StateRetrying)
			if got.Attempts != 1 || !strings.Contains(got.LastError, `no func registered for event type "nobody.listens"`) {
				t.Errorf("got attempts %d, last error %q", got.Attempts, got.LastError)
			}
		})
	})
}

func TestEngine_Cancel(t *testing.T) {
	t.Parallel()
	testEngineStores(t, func(t *testing.T, newStore func(testing.TB) tasks.Store) {
		running := make(chan string, 1)
		var ran atomic.Int32
		e := startEngine(t, newStore(t), nil, map[string]tasks.Func{
			"block": func(ctx context.Context, task *tasks.Task) error {
				running <- task.ID
				<-ctx.Done()
				return ctx.Err()
			},
			"count": func(ctx context.Context, task *tasks.Task) error {
				ran.Add(1)
				return nil
			},
		})
		ctx := context.Background()
		t.Run("scheduled task is canceled and never runs", func(t *testing.T) {
			// Due late enough that Enqueue and Cancel are done before it,
			// even on a loaded machine (50 ms was not, one run in 20).
			runAt := time.Now().Add(time.Second)
			task := enqueue(t, e, tasks.NewTask{EventType: "count", RunAt: runAt})
			got, err := e.Cancel(ctx, task.ID)
			if err != nil || got.State != tasks.StateCanceled {
				t.Fatalf("Cancel = %v, %v; want canceled", got.State, err)
			}
			again, err := e.Cancel(ctx, task.ID)
			if err != nil || again.State != tasks.StateCanceled {
				t.Errorf("second Cancel = %v, %v; want the same answer", again.State, err)
			}
			time.Sleep(time.Until(runAt) + 100*time.Millisecond) // past its run time: nothing may run it
			if n := ran.Load(); n != 0 {
				t.Errorf("canceled task ran %d times", n)
			}
		})
		t.Run("running task has its context cancelled", func(t *testing.T) {
			task := enqueue(t, e, tasks.NewTask{EventType: "block"})
			<-running
			got, err := e.Cancel(ctx, task.ID)
			if err != nil || !got.CancelRequested {
				t.Fatalf("Cancel = %+v, %v; want cancel requested", got, err)
			}
			waitState(t, e, task.ID, tasks.StateCanceled)
		})
		t.Run("completed task cannot be canceled", func(t *testing.T) {
			task := enqueue(t, e, tasks.NewTask{EventType: "count"})
			waitState(t, e, task.ID, tasks.StateCompleted)
			got, err := e.Cancel(ctx, task.ID)
			if !errors.Is(err, tasks.ErrInvalidState) || got.State != tasks.StateCompleted {
				t.Errorf("Cancel = %v, %v; want completed, ErrInvalidState", got.State, err)
			}
		})
		t.Run("unknown task", func(t *testing.T) {
			if _, err := e.Cancel(ctx, "00000000-0000-0000-0000-000000000000"); !errors.Is(err, tasks.ErrNotFound) {
				t.Errorf("Cancel = %v, want ErrNotFound", err)
			}
		})
	})
}

func TestEngine_RescheduleReplay(t *testing.T) {
	t.Parallel()
	testEngineStores(t, func(t *testing.T, newStore func(testing.TB) tasks.Store) {
		var fail atomic.Bool
		fail.Store(true)
		e := startEngine(t, newStore(t), &tasks.Config{MaxAttempts: 1}, map[string]tasks.Func{
			"x": func(ctx context.Context, task *tasks.Task) error {
				if fail.Load() {
					return errors.New("down")
				}
				return nil
			},
		})
		ctx := context.Background()
		task := enqueue(t, e, tasks.NewTask{EventType: "x", RunAt: time.Now().Add(time.Hour)})
		got, err := e.Reschedule(ctx, task.ID, time.Now().Add(-time.Minute))
		if err != nil || got.State != tasks.StateScheduled {
			t.Fatalf("Reschedule = %v, %v", got, err)
		}
		waitState(t, e, task.ID, tasks.StateFailed)
		if _, err := e.Reschedule(ctx, task.ID, time.Now()); !errors.Is(err, tasks.ErrInvalidState) {
			t.Errorf("Reschedule of a failed task = %v, want ErrInvalidState", err)
		}
		fail.Store(false)
		replayed, err := e.Replay(ctx, task.ID)
		if err != nil || replayed.State != tasks.StateScheduled || replayed.ID != task.ID {
			t.Fatalf("Replay = %+v, %v", replayed, err)
		}
		done := waitState(t, e, task.ID, tasks.StateCompleted)
		if done.Attempts != 2 || done.LastError != "down" {
			t.Errorf("replayed task: attempts %d, last error %q; want 2 and the earlier error kept", done.Attempts, done.LastError)
		}
		if _, err := e.Replay(ctx, enqueue(t, e, tasks.NewTask{EventType: "x", RunAt: time.Now().Add(time.Hour)}).ID); !errors.Is(err, tasks.ErrInvalidState) {
			t.Errorf("Replay of a scheduled task = %v, want ErrInvalidState", err)
		}
	})
}

func TestEngine_Enqueue(t *testing.T) {
	t.Parallel()
	e, err := tasks.NewEngine(tasks.NewMemoryStore(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tt := range []struct {
		name  string
		nt    tasks.NewTask
		field string
	}{
		{"no app", tasks.NewTask{EventType: "x"}, "app_id"},
		{"app with a NUL byte", tasks.NewTask{AppID: "a\x00b", EventType: "x"}, "app_id"},
		{"app not UTF-8", tasks.NewTask{AppID: "a\xffb", EventType: "x"}, "app_id"},
		{"idempotency key with a newline", tasks.NewTask{AppID: "a", EventType: "x", IdempotencyKey: "k\n"}, "idempotency_key"},
		{"negative max attempts", tasks.NewTask{AppID: "a", EventType: "x", MaxAttempts: -1}, "max_attempts"},
		{"max attempts past the stores' integers", tasks.NewTask{AppID: "a", EventType: "x", MaxAttempts: tasks.MaxMaxAttempts + 1}, "max_attempts"},
		{"no event type", tasks.NewTask{AppID: "a"}, "event_type"},
		{"event type with space", tasks.NewTask{AppID: "a", EventType: "user created"}, "event_type"},
		{"event type with leading dot", tasks.NewTask{AppID: "a", EventType: ".user"}, "event_type"},
		{"event type with trailing dot", tasks.NewTask{AppID: "a", EventType: "user."}, "event_type"},
		{"event type too long", tasks.NewTask{AppID: "a", EventType: strings.Repeat("x", 256)}, "event_type"},
		{"data not JSON", tasks.NewTask{AppID: "a", EventType: "x", Data: json.RawMessage(`{`)}, "data"},
		{"data not UTF-8", tasks.NewTask{AppID: "a", EventType: "x", Data: json.RawMessage("\"\xff\"")}, "data"},
		{"data with a lone surrogate", tasks.NewTask{AppID: "a", EventType: "x", Data: json.RawMessage(`{"s":"\ud800"}`)}, "data"},
		{"data with a lone low surrogate", tasks.NewTask{AppID: "a", EventType: "x", Data: json.RawMessage(`["\udc00\ud800"]`)}, "data"},
		{"data with a duplicate member name", tasks.NewTask{AppID: "a", EventType: "x", Data: json.RawMessage(`{"a":1,"a":2}`)}, "data"},
		{"data with a duplicate member name escaped", tasks.NewTask{AppID: "a", EventType: "x", Data: json.RawMessage(`[{"b":{"\u00e9":1,"é":2}}]`)}, "data"},
		{"data nested deeper than the API allows", tasks.NewTask{AppID: "a", EventType: "x", Data: nested(64)}, "data"},
		{"idempotency key too long", tasks.NewTask{AppID: "a", EventType: "x", IdempotencyKey: strings.Repeat("k", 256)}, "idempotency_key"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.Enqueue(ctx, tt.nt)
			var ve *tasks.ValidationError
			if !errors.As(err, &ve) || ve.Field != tt.field {
				t.Errorf("Enqueue = %v, want a ValidationError for %s", err, tt.field)
			}
		})
	}
	t.Run("data nested as deep as the API allows", func(t *testing.T) {
		// In a request body data is one level down, and the API allows 64.
		if _, err := e.Enqueue(ctx, tasks.NewTask{AppID: "a", EventType: "x", Data: nested(63)}); err != nil {
			t.Errorf("Enqueue = %v, want data nested 63 levels accepted", err)
		}
	})
	t.Run("data over the limit (W19)", func(t *testing.T) {
		small, err := tasks.NewEngine(tasks.NewMemoryStore(), &tasks.Config{MaxDataBytes: 10})
		if err != nil {
			t.Fatal(err)
		}
		_, err = small.Enqueue(ctx, tasks.NewTask{AppID: "a", EventType: "x", Data: json.RawMessage(`"0123456789"`)})
		var ve *tasks.ValidationError
		if !errors.As(err, &ve) || ve.Field != "data" {
			t.Errorf("Enqueue of 12 bytes with a limit of 10 = %v, want a ValidationError for data", err)
		}
	})
	t.Run("idempotency key", func(t *testing.T) {
		nt := tasks.NewTask{AppID: "a", EventType: "x", IdempotencyKey: "k1"}
		first, err := e.Enqueue(ctx, nt)
		if err != nil {
			t.Fatal(err)
		}
		second, err := e.Enqueue(ctx, nt)
		if !errors.Is(err, tasks.ErrDuplicate) || second == nil || second.ID != first.ID {
			t.Errorf("second Enqueue = %v, %v; want task %s and ErrDuplicate", second, err, first.ID)
		}
	})
	t.Run("data with escapes that are valid I-JSON", func(t *testing.T) {
		for _, data := range []string{`"\u0000"`, `"\ud83d\ude00"`, `"\\ud800"`} {
			if task, err := e.Enqueue(ctx, tasks.NewTask{AppID: "a", EventType: "x", Data: json.RawMessage(data)}); err != nil || string(task.Data) != data {
				t.Errorf("Enqueue of data %s = %v, want it stored as given", data, err)
			}
		}
	})
	t.Run("nil data is JSON null", func(t *testing.T) {
		task, err := e.Enqueue(ctx, tasks.NewTask{AppID: "a", EventType: "x"})
		if err != nil || string(task.Data) != "null" {
			t.Errorf("Enqueue = %s, %v; want data null", task.Data, err)
		}
	})
}

func TestEngine_Register(t *testing.T) {
	t.Parallel()
	e, err := tasks.NewEngine(tasks.NewMemoryStore(), nil)
	if err != nil {
		t.Fatal(err)
	}
	noop := func(context.Context, *tasks.Task) error { return nil }
	e.Register("x", noop)
	for name, register := range map[string]func(){
		"duplicate":          func() { e.Register("x", noop) },
		"nil func":           func() { e.Register("y", nil) },
		"invalid event type": func() { e.Register("a b", noop) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("Register did not panic")
				}
			}()
			register()
		})
	}
}

func TestNewEngine_Config(t *testing.T) {
	t.Parallel()
	for _, cfg := range []tasks.Config{{Workers: -1}, {MaxAttempts: -1}, {MaxAttempts: tasks.MaxMaxAttempts + 1}, {Lease: -1}, {PollInterval: -1}, {RescueInterval: -1}} {
		if _, err := tasks.NewEngine(tasks.NewMemoryStore(), &cfg); err == nil {
			t.Errorf("NewEngine(%+v) succeeded, want an error", cfg)
		}
	}
	if _, err := tasks.NewEngine(nil, nil); err == nil {
		t.Error("NewEngine(nil store) succeeded, want an error")
	}
}

// brokenStore fails every call, as a store whose database is down.
type brokenStore struct{ tasks.Store }

func (brokenStore) Upcoming(context.Context, time.Duration, int) (time.Time, []tasks.Due, error) {
	return time.Time{}, nil, errors.New("connection refused")
}

// noClockStore is a store written before the Store contract said what
// Upcoming returns with limit 0: it refuses it.
type noClockStore struct{ tasks.Store }

func (s noClockStore) Upcoming(ctx context.Context, within time.Duration, limit int) (time.Time, []tasks.Due, error) {
	if limit < 1 {
		return time.Time{}, nil, errors.New("limit must be positive")
	}
	return s.Store.Upcoming(ctx, within, limit)
}

// TestEngine_StartFailsFast checks that Start fails with the store's error
// on a store that is down, and on one that cannot tell its clock alone
// (Upcoming with limit 0), which the scheduler asks before each read of
// the upcoming tasks: started, it would never read them, and a task stored
// by another process would never run.
func TestEngine_StartFailsFast(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name  string
		store tasks.Store
		want  string
	}{
		{"store down", brokenStore{tasks.NewMemoryStore()}, "connection refused"},
		{"no clock call", noClockStore{tasks.NewMemoryStore()}, "limit must be positive"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e, err := tasks.NewEngine(tt.store, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := e.Start(context.Background()); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Start = %v, want the store's error (%s)", err, tt.want)
			}
			if err := e.Stop(context.Background()); err != nil {
				t.Errorf("Stop of an engine that never started = %v, want nil", err)
			}
		})
	}
}

// TestEngine_ClaimsOneAheadForLongTasks checks that an engine with a
// backlog of tasks that run longer than its workers take to claim them
// holds at most one task more than it has workers (claimed ahead, so that
// a freed worker need not wait for a claim), and leaves the rest to other
// engines.
func TestEngine_ClaimsOneAheadForLongTasks(t *testing.T) {
	testEngineStores(t, func(t *testing.T, newStore func(testing.TB) tasks.Store) {
		store := newStore(t)
		// 100 ms tasks on 2 workers: one ahead unless a claim's cycle
		// (a gathering and a claim) took over 50 ms.
		const workers, n = 2, 6
		started := make(chan struct{}, n)
		var ended atomic.Int64
		e := startEngine(t, store, &tasks.Config{Workers: workers}, map[string]tasks.Func{
			"long": func(ctx context.Context, task *tasks.Task) error {
				started <- struct{}{}
				time.Sleep(100 * time.Millisecond)
				ended.Add(1)
				return nil
			},
		})
		nts := make([]tasks.NewTask, n)
		for i := range nts {
			nts[i] = tasks.NewTask{AppID: "a", EventType: "long"}
		}
		if _, err := e.EnqueueMany(context.Background(), nts); err != nil {
			t.Fatal(err)
		}
		for i := range n {
			select {
			case <-started:
			case <-time.After(10 * time.Second):
				t.Fatalf("%d of %d tasks started", i, n)
			}
			counts, err := store.CountTasks(context.Background(), "a", 1<<30)
			if err != nil {
				t.Fatal(err)
			}
			// Running in the store are the tasks claimed and not yet
			// ended, and those ended whose outcome is not yet stored.
			held := int64(counts[tasks.StateRunning]) - (ended.Load() - int64(counts[tasks.StateCompleted]))
			if held > workers+1 {
				t.Fatalf("after %d tasks started: %d claimed and not ended, want at most %d", i+1, held, workers+1)
			}
		}
	})
}

// TestEngine_ScheduledTasksNeedNoPoll schedules tasks a little ahead on an
// engine whose poll would come only after an hour: each must start from the
// timer wheel alone, none before its time. A task the wheel lets slip (woken
// before the store holds it due, then not asked for again soon) would wait
// for the poll, and the test would time out.
func TestEngine_ScheduledTasksNeedNoPoll(t *testing.T) {
	testEngineStores(t, func(t *testing.T, newStore func(testing.TB) tasks.Store) {
		const n = 1000
		var started atomic.Int64
		all := make(chan struct{})
		var early atomic.Int64
		e := startEngine(t, newStore(t), &tasks.Config{PollInterval: time.Hour}, map[string]tasks.Func{
			"x": func(ctx context.Context, task *tasks.Task) error {
				if time.Now().Before(*task.ScheduledRunTime) {
					early.Add(1)
				}
				if started.Add(1) == n {
					close(all)
				}
				return nil
			},
		})
		base := time.Now().Add(200 * time.Millisecond)
		nts := make([]tasks.NewTask, n)
		for i := range nts {
			nts[i] = tasks.NewTask{AppID: "a", EventType: "x", RunAt: base.Add(time.Duration(i) * 500 * time.Millisecond / n)}
		}
		if _, err := e.EnqueueMany(context.Background(), nts); err != nil {
			t.Fatal(err)
		}
		select {
		case <-all:
		case <-time.After(30 * time.Second):
			t.Fatalf("%d of %d tasks started; the others wait for the poll", started.Load(), n)
		}
		if early.Load() > 0 {
			t.Errorf("%d tasks started before their time", early.Load())
		}
	})
}

// nested returns JSON data nested depth levels deep, objects and arrays by
// turns.
func nested(depth int) json.RawMessage {
	var b strings.Builder
	for i := range depth {
		if i%2 == 0 {
			b.WriteString(`{"a":`)
		} else {
			b.WriteString("[")
		}
	}
	b.WriteString("1")
	for i := depth - 1; i >= 0; i-- {
		if i%2 == 0 {
			b.WriteString("}")
		} else {
			b.WriteString("]")
		}
	}
	return json.RawMessage(b.String())
}
