package tasks_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
)

// Config.MaxWaiting on the MemoryStore: past the bound, Enqueue and
// EnqueueMany store nothing and return ErrOverloaded; tasks for later do
// not count; started tasks no longer count.
func TestEngine_MaxWaiting(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := tasks.NewMemoryStore()
	e := newEngine(t, store, &tasks.Config{MaxWaiting: 2})
	started := make(chan string, 10)
	e.Register("x", func(_ context.Context, task *tasks.Task) error {
		started <- task.ID
		return nil
	})
	later := tasks.NewTask{AppID: "app_1", EventType: "x", RunAt: time.Now().Add(time.Hour)}
	for range 3 { // scheduled for later: not waiting
		if _, err := e.Enqueue(ctx, later); err != nil {
			t.Fatalf("enqueue for later: %v", err)
		}
	}
	now := tasks.NewTask{AppID: "app_1", EventType: "x"}
	for i := range 2 {
		if _, err := e.Enqueue(ctx, now); err != nil {
			t.Fatalf("enqueue %d of 2: %v", i+1, err)
		}
	}
	_, err := e.Enqueue(ctx, now)
	if !errors.Is(err, tasks.ErrOverloaded) || !strings.Contains(err.Error(), "2 tasks waiting") {
		t.Fatalf("third enqueue: got %v, want ErrOverloaded saying 2 tasks waiting", err)
	}
	if _, err := e.EnqueueMany(ctx, []tasks.NewTask{now, later}); !errors.Is(err, tasks.ErrOverloaded) {
		t.Fatalf("EnqueueMany: got %v, want ErrOverloaded", err)
	}
	if _, err := e.Enqueue(ctx, later); !errors.Is(err, tasks.ErrOverloaded) {
		t.Fatalf("enqueue for later while overloaded: got %v, want ErrOverloaded", err)
	}
	if n := len(listAll(t, e)); n != 5 {
		t.Fatalf("stored %d tasks, want 5: nothing of the refused calls", n)
	}

	// Once both waiting tasks started, the engine takes tasks again.
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Stop(context.Background()) })
	for range 2 {
		select {
		case <-started:
		case <-time.After(10 * time.Second):
			t.Fatal("tasks did not start within 10 s")
		}
	}
	if _, err := e.EnqueueMany(ctx, []tasks.NewTask{now, now, now}); err != nil {
		t.Fatalf("EnqueueMany after the waiting tasks started: %v (a batch is let in whole below the bound)", err)
	}
}

// listAll returns every task of app_1.
func listAll(t *testing.T, e *tasks.Engine) []*tasks.Task {
	t.Helper()
	ts, _, err := e.List(context.Background(), tasks.ListParams{AppID: "app_1", Limit: tasks.MaxListLimit})
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

// The HTTP API answers an overloaded engine's create with 503 and
// Retry-After: 1, and stores nothing.
func TestHandler_CreateOverloaded(t *testing.T) {
	t.Parallel()
	a := newAPI(t, tasks.NewMemoryStore(), apiOpts{cfg: &tasks.Config{MaxWaiting: 1}, noStart: true})
	a.createTask(`{"event_type":"x","data":{}}`)
	r := a.do("POST", "/apps/app_1/tasks", `{"event_type":"x","data":{}}`)
	r.wantStatus(t, http.StatusServiceUnavailable)
	if got := r.header.Get("Retry-After"); got != "1" {
		t.Errorf("Retry-After: got %q, want 1", got)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type: got %q, want application/problem+json", ct)
	}
	if !strings.Contains(string(r.body), "too many tasks waiting") {
		t.Errorf("body %s: want it to say too many tasks waiting", r.body)
	}
	if n := len(listAll(t, a.e)); n != 1 {
		t.Errorf("stored %d tasks, want 1", n)
	}
}

// A negative Config.MaxWaiting is refused, naming the field.
func TestNewEngine_MaxWaitingNegative(t *testing.T) {
	t.Parallel()
	_, err := tasks.NewEngine(tasks.NewMemoryStore(), &tasks.Config{MaxWaiting: -1})
	if err == nil || !strings.Contains(err.Error(), "Config.MaxWaiting") {
		t.Fatalf("got %v, want an error naming Config.MaxWaiting", err)
	}
}
