package client_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/taskwheel/tasks/client"
)

// TestClient_TaskOptions creates a task with its own flow key, attempts
// and timeout, and refuses a timeout the API cannot carry before sending.
func TestClient_TaskOptions(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *server, c *client.Client) {
		ctx := context.Background()
		task, err := c.CreateTask(ctx, app, client.NewTask{EventType: "x", FlowKey: "mail", MaxAttempts: 3, Timeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if task.FlowKey != "mail" || task.MaxAttempts != 3 || task.TimeoutSeconds != 2 {
			t.Errorf("created flow key %q, max attempts %d, timeout %d s; want mail, 3, 2", task.FlowKey, task.MaxAttempts, task.TimeoutSeconds)
		}
		plain, err := c.CreateTask(ctx, app, client.NewTask{EventType: "x"})
		if err != nil {
			t.Fatal(err)
		}
		if plain.FlowKey != "x" || plain.TimeoutSeconds != 0 {
			t.Errorf("created flow key %q, timeout %d s; want the event type and none", plain.FlowKey, plain.TimeoutSeconds)
		}
		if _, err := c.CreateTask(ctx, app, client.NewTask{EventType: "x", Timeout: 1500 * time.Millisecond}); err == nil {
			t.Error("a timeout of 1.5 s was sent; want an error before sending")
		}
		_, err = c.CreateTask(ctx, app, client.NewTask{EventType: "x", MaxAttempts: 101})
		if e := wantError(t, err, http.StatusBadRequest, client.ErrInvalid); e.Field != "max_attempts" {
			t.Errorf("field %q, want max_attempts", e.Field)
		}
	})
}

// TestClient_Limits sets, reads, lists and deletes a flow key's limit, and
// sees a paused key's task wait, with its reason, until the limit goes.
func TestClient_Limits(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *server, c *client.Client) {
		ctx := context.Background()
		l, err := c.SetLimit(ctx, app, "mail", client.LimitParams{Rate: 5, Concurrency: 2})
		if err != nil {
			t.Fatal(err)
		}
		if l.AppID != app || l.Key != "mail" || l.Rate != 5 || l.Burst != 5 || l.Concurrency != 2 || l.Paused {
			t.Errorf("set %+v; want rate 5, burst 5 (the rate's default), concurrency 2", l)
		}
		_, err = c.SetLimit(ctx, app, "mail", client.LimitParams{Burst: 3})
		if e := wantError(t, err, http.StatusUnprocessableEntity, client.ErrInvalid); e.Field != "burst" {
			t.Errorf("burst without a rate: field %q, want burst", e.Field)
		}
		if _, err := c.SetLimit(ctx, app, "mail", client.LimitParams{Paused: true}); err != nil {
			t.Fatal(err)
		}
		task, err := c.CreateTask(ctx, app, client.NewTask{EventType: "x", FlowKey: "mail"})
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for task.WaitReason == "" {
			if time.Now().After(deadline) {
				t.Fatalf("task %+v: no wait reason after 10 s on a paused key", task)
			}
			time.Sleep(10 * time.Millisecond)
			if task, err = c.GetTask(ctx, app, task.ID); err != nil {
				t.Fatal(err)
			}
		}
		if task.Status != client.StatusScheduled || task.Attempts != 0 {
			t.Errorf("waiting task: status %s, attempts %d; want scheduled, 0", task.Status, task.Attempts)
		}
		got, err := c.GetLimit(ctx, app, "mail")
		if err != nil {
			t.Fatal(err)
		}
		if !got.Paused || got.Rate != 0 || got.Waiting != 1 {
			t.Errorf("got %+v; want paused, no rate, 1 waiting", got)
		}
		list, err := c.Limits(ctx, app)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 1 || list[0].Key != "mail" {
			t.Errorf("limits %+v; want mail's", list)
		}
		if err := c.DeleteLimit(ctx, app, "mail"); err != nil {
			t.Fatal(err)
		}
		waitStatus(t, c, task.ID, client.StatusCompleted)
		_, err = c.GetLimit(ctx, app, "mail")
		wantError(t, err, http.StatusNotFound, client.ErrNotFound)
	})
}
