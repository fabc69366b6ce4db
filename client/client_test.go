package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/client"
	"github.com/taskwheel/tasks/sqlite"
)

const (
	key = "test-key-5b1e0c7a"
	app = "app_1"
)

// server is a real engine and its handler, served by a test server as
// cmd/tasksd serves it, at /api/v1.
type server struct {
	e   *tasks.Engine
	srv *httptest.Server
	ran chan string // the IDs of the tasks that the func "x" ran
}

// stores are the stores the client is tested on.
var stores = map[string]func(t *testing.T) tasks.Store{
	"memory": func(*testing.T) tasks.Store { return tasks.NewMemoryStore() },
	"sqlite": func(t *testing.T) tasks.Store {
		s, err := sqlite.Open(filepath.Join(t.TempDir(), "tasks.db"), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	},
}

// newServer starts an engine on store with the funcs "x", which succeeds,
// and "fail", which fails for good, and serves its API behind wrap (nil for
// none).
func newServer(t *testing.T, store tasks.Store, wrap func(http.Handler) http.Handler) *server {
	t.Helper()
	s := &server{ran: make(chan string, 100)}
	e, err := tasks.NewEngine(store, &tasks.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	e.Register("x", func(_ context.Context, task *tasks.Task) error {
		s.ran <- task.ID
		return nil
	})
	e.Register("fail", func(context.Context, *tasks.Task) error { return tasks.Permanent(errors.New("no")) })
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		e.Stop(ctx)
	})
	s.e = e
	var h http.Handler = http.StripPrefix("/api/v1", e.Handler(&tasks.HandlerConfig{Keys: map[string][]string{key: {app}}}))
	h = checkRequests(t, h)
	if wrap != nil {
		h = wrap(h)
	}
	mux := http.NewServeMux()
	mux.Handle("/api/v1/", h)
	s.srv = httptest.NewServer(mux)
	t.Cleanup(s.srv.Close)
	return s
}

// client returns a client of the server with cfg (nil for the key alone).
func (s *server) client(t *testing.T, cfg *client.Config) *client.Client {
	t.Helper()
	if cfg == nil {
		cfg = &client.Config{Key: key}
	}
	c, err := client.New(s.srv.URL+"/api/v1", cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// forEachStore runs test on every store, in parallel.
func forEachStore(t *testing.T, test func(t *testing.T, s *server, c *client.Client)) {
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := newServer(t, open(t), nil)
			test(t, s, s.client(t, nil))
		})
	}
}

// waitStatus waits, up to 10 seconds, until the task id has status.
func waitStatus(t *testing.T, c *client.Client, id string, status client.Status) *client.Task {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		task, err := c.GetTask(context.Background(), app, id)
		if err != nil {
			t.Fatal(err)
		}
		if task.Status == status {
			return task
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s is %s after 10s, want %s", id, task.Status, status)
		}
		<-tick.C
	}
}

// wantError fails t unless err is an *Error of status matching target.
func wantError(t *testing.T, err error, status int, target error) *client.Error {
	t.Helper()
	var e *client.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T), want a *client.Error", err, err)
	}
	if e.Status != status || !errors.Is(err, target) {
		t.Fatalf("error %v: status %d, want %d matching %v", err, e.Status, status, target)
	}
	if e.Message == "" || e.Detail == "" || e.Title != http.StatusText(status) {
		t.Errorf("error %+v: want the problem's title, detail and error member", e)
	}
	return e
}

func TestClient_Tasks(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *server, c *client.Client) {
		ctx := context.Background()

		// Create, run, get, attempts.
		task, err := c.CreateTask(ctx, app, client.NewTask{EventType: "x", Data: json.RawMessage(`{"n": 1}`)})
		if err != nil {
			t.Fatal(err)
		}
		if task.ID == "" || task.AppID != app || task.EventType != "x" || string(task.Data) != `{"n": 1}` || task.ScheduledRunTime != nil {
			t.Errorf("created %+v", task)
		}
		if id := <-s.ran; id != task.ID {
			t.Errorf("ran %s, want %s", id, task.ID)
		}
		done := waitStatus(t, c, task.ID, client.StatusCompleted)
		if done.CompletedAt == nil || done.Attempts != 1 {
			t.Errorf("completed %+v", done)
		}
		as, err := c.Attempts(ctx, app, task.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(as) != 1 || as[0].Number != 1 || as[0].TaskID != task.ID || as[0].Error != "" {
			t.Errorf("attempts %+v", as)
		}
		_, err = c.CancelTask(ctx, app, task.ID)
		wantError(t, err, http.StatusConflict, client.ErrConflict)

		// Replay runs it again.
		replayed, err := c.ReplayTask(ctx, app, task.ID)
		if err != nil {
			t.Fatal(err)
		}
		if replayed.Status != client.StatusScheduled || replayed.ReplayedAfter != 1 {
			t.Errorf("replayed %+v", replayed)
		}
		<-s.ran
		waitStatus(t, c, task.ID, client.StatusCompleted)

		// Reschedule, cancel (twice), delete.
		later := time.Now().Add(time.Hour).Truncate(time.Second)
		future, err := c.CreateTask(ctx, app, client.NewTask{EventType: "x", RunAt: later})
		if err != nil {
			t.Fatal(err)
		}
		if future.ScheduledRunTime == nil || !future.ScheduledRunTime.Equal(later) || string(future.Data) != "null" {
			t.Errorf("created %+v, want run time %v and null data", future, later)
		}
		evenLater := later.Add(time.Hour)
		moved, err := c.RescheduleTask(ctx, app, future.ID, evenLater)
		if err != nil {
			t.Fatal(err)
		}
		if !moved.ScheduledRunTime.Equal(evenLater) {
			t.Errorf("rescheduled to %v, want %v", moved.ScheduledRunTime, evenLater)
		}
		for range 2 {
			canceled, err := c.CancelTask(ctx, app, future.ID)
			if err != nil {
				t.Fatal(err)
			}
			if canceled.Status != client.StatusCanceled {
				t.Errorf("canceled %+v", canceled)
			}
		}
		_, err = c.RescheduleTask(ctx, app, future.ID, later)
		wantError(t, err, http.StatusConflict, client.ErrConflict)
		if err := c.DeleteTask(ctx, app, future.ID); err != nil {
			t.Fatal(err)
		}
		_, err = c.GetTask(ctx, app, future.ID)
		e := wantError(t, err, http.StatusNotFound, client.ErrNotFound)
		if want := "/apps/app_1/tasks/" + future.ID; e.Method != "GET" || e.Path != want || !strings.HasPrefix(e.Error(), "tasks: GET "+want+": 404 Not Found: ") {
			t.Errorf("error %q (%s %s), want GET %s", e, e.Method, e.Path, want)
		}

		// Bad input names the field; another app is a 404, a bad key a 401.
		_, err = c.CreateTask(ctx, app, client.NewTask{EventType: "no.route"})
		if e := wantError(t, err, http.StatusUnprocessableEntity, client.ErrInvalid); e.Field != "event_type" {
			t.Errorf("field %q, want event_type", e.Field)
		}
		_, err = c.ListTasks(ctx, app, &client.ListParams{Limit: 5000})
		if e := wantError(t, err, http.StatusBadRequest, client.ErrInvalid); e.Field != "limit" {
			t.Errorf("field %q, want limit", e.Field)
		}
		_, err = c.GetTask(ctx, "app_2", task.ID)
		wantError(t, err, http.StatusNotFound, client.ErrNotFound)
		_, err = s.client(t, &client.Config{Key: "wrong"}).GetTask(ctx, app, task.ID)
		wantError(t, err, http.StatusUnauthorized, client.ErrUnauthorized)
	})
}

func TestClient_Idempotency(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *server, c *client.Client) {
		ctx := context.Background()
		nt := client.NewTask{EventType: "x", RunAt: time.Now().Add(time.Hour), Data: json.RawMessage(`[1]`), IdempotencyKey: "order-42"}
		first, err := c.CreateTask(ctx, app, nt)
		if err != nil {
			t.Fatal(err)
		}
		again, err := c.CreateTask(ctx, app, nt)
		if err != nil {
			t.Fatal(err)
		}
		if again.ID != first.ID || again.IdempotencyKey != "order-42" {
			t.Errorf("sent again: task %s (key %q), want %s", again.ID, again.IdempotencyKey, first.ID)
		}
		nt.Data = json.RawMessage(`[2]`)
		_, err = c.CreateTask(ctx, app, nt)
		if e := wantError(t, err, http.StatusUnprocessableEntity, client.ErrInvalid); e.Field != "Idempotency-Key" {
			t.Errorf("field %q, want Idempotency-Key", e.Field)
		}
	})
}

func TestClient_List(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *server, c *client.Client) {
		ctx := context.Background()
		var ids []string
		for i := range 7 {
			task, err := c.CreateTask(ctx, app, client.NewTask{EventType: "x", RunAt: time.Now().Add(time.Hour), Data: json.RawMessage(fmt.Sprint(i))})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, task.ID)
		}
		if _, err := c.CancelTask(ctx, app, ids[0]); err != nil {
			t.Fatal(err)
		}

		page, err := c.ListTasks(ctx, app, &client.ListParams{Limit: 3})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Tasks) != 3 || page.Tasks[0].ID != ids[6] || page.NextCursor == "" {
			t.Fatalf("first page: %d tasks, next %q", len(page.Tasks), page.NextCursor)
		}

		// The iterator reads every page, newest first.
		var got []string
		for task, err := range c.Tasks(ctx, app, &client.ListParams{Limit: 3}) {
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, task.ID)
		}
		if len(got) != 7 {
			t.Fatalf("iterated over %d tasks, want 7", len(got))
		}
		for i, id := range got {
			if id != ids[6-i] {
				t.Errorf("task %d is %s, want %s", i, id, ids[6-i])
			}
		}
		// Stopping early stops reading.
		n := 0
		for range c.Tasks(ctx, app, &client.ListParams{Limit: 2}) {
			if n++; n == 3 {
				break
			}
		}

		// Filters.
		var canceled []string
		for task, err := range c.Tasks(ctx, app, &client.ListParams{Statuses: []client.Status{client.StatusCanceled, client.StatusFailed}, EventType: "x"}) {
			if err != nil {
				t.Fatal(err)
			}
			canceled = append(canceled, task.ID)
		}
		if len(canceled) != 1 || canceled[0] != ids[0] {
			t.Errorf("canceled tasks %q, want [%s]", canceled, ids[0])
		}
		// An error ends the iteration.
		for task, err := range c.Tasks(ctx, app, &client.ListParams{Cursor: "not-a-cursor"}) {
			if task != nil {
				t.Fatalf("task %v with a bad cursor", task)
			}
			wantError(t, err, http.StatusBadRequest, client.ErrInvalid)
		}
	})
}

func TestClient_Bulk(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *server, c *client.Client) {
		ctx := context.Background()
		since := time.Now().Add(-time.Minute)
		var failing []string
		for range 3 {
			task, err := c.CreateTask(ctx, app, client.NewTask{EventType: "fail"})
			if err != nil {
				t.Fatal(err)
			}
			failing = append(failing, task.ID)
		}
		for range 2 {
			if _, err := c.CreateTask(ctx, app, client.NewTask{EventType: "x", RunAt: time.Now().Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
		}
		for _, id := range failing {
			waitStatus(t, c, id, client.StatusFailed)
		}
		before := time.Now().Add(time.Minute)
		n, err := c.CancelTasks(ctx, app, client.BulkFilter{EventType: "x", CreatedSince: since, CreatedBefore: before})
		if err != nil || n != 2 {
			t.Errorf("CancelTasks: %d, %v; want 2", n, err)
		}
		n, err = c.ReplayTasks(ctx, app, client.BulkFilter{CreatedSince: since, CreatedBefore: before})
		if err != nil || n != 3 {
			t.Errorf("ReplayTasks: %d, %v; want 3", n, err)
		}
		_, err = c.ReplayTasks(ctx, app, client.BulkFilter{CreatedSince: before, CreatedBefore: since})
		if e := wantError(t, err, http.StatusBadRequest, client.ErrInvalid); e.Field != "created_before" {
			t.Errorf("field %q, want created_before", e.Field)
		}
	})
}

func TestClient_Endpoints(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *server, c *client.Client) {
		ctx := context.Background()
		ep, err := c.CreateEndpoint(ctx, app, client.NewEndpoint{URL: "https://example.com/hook", Description: "one", EnabledEvents: []string{"order.paid"}})
		if err != nil {
			t.Fatal(err)
		}
		if ep.ID == "" || !strings.HasPrefix(ep.Secret, "whsec_") || ep.Status != "active" || ep.EnabledEvents[0] != "order.paid" {
			t.Errorf("created %+v", ep)
		}
		got, err := c.GetEndpoint(ctx, app, ep.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Secret != "" || got.URL != ep.URL {
			t.Errorf("got %+v, want it without its secret", got)
		}
		desc, status := "two", "inactive"
		upd, err := c.UpdateEndpoint(ctx, app, ep.ID, client.EndpointUpdate{Description: &desc, Status: &status, EnabledEvents: []string{"*"}})
		if err != nil {
			t.Fatal(err)
		}
		if upd.Description != "two" || upd.Status != "inactive" || upd.EnabledEvents[0] != "*" {
			t.Errorf("updated %+v", upd)
		}
		rotated, err := c.RotateEndpointSecret(ctx, app, ep.ID, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if rotated.Secret == "" || rotated.Secret == ep.Secret {
			t.Errorf("rotated secret %q, want a new one", rotated.Secret)
		}
		if _, err := c.RotateEndpointSecret(ctx, app, ep.ID, -1); err != nil {
			t.Fatal(err)
		}
		_, err = c.RotateEndpointSecret(ctx, app, ep.ID, 365*24*time.Hour)
		wantError(t, err, http.StatusBadRequest, client.ErrInvalid)
		_, err = c.CreateEndpoint(ctx, app, client.NewEndpoint{URL: "http://127.0.0.1/hook"})
		if e := wantError(t, err, http.StatusUnprocessableEntity, client.ErrInvalid); e.Field != "url" {
			t.Errorf("field %q, want url", e.Field)
		}
		limited, err := c.CreateEndpoint(ctx, app, client.NewEndpoint{URL: "https://example.com/limited", RateLimit: 2.5, MaxInFlight: 3})
		if err != nil || limited.RateLimit != 2.5 || limited.MaxInFlight != 3 {
			t.Fatalf("CreateEndpoint with limits: got %+v, %v; want rate_limit 2.5, max_in_flight 3", limited, err)
		}
		rate, inFlight := 0.0, 1
		limited, err = c.UpdateEndpoint(ctx, app, limited.ID, client.EndpointUpdate{RateLimit: &rate, MaxInFlight: &inFlight})
		if err != nil || limited.RateLimit != 0 || limited.MaxInFlight != 1 {
			t.Fatalf("UpdateEndpoint of the limits: got %+v, %v; want rate_limit 0, max_in_flight 1", limited, err)
		}
		_, err = c.CreateEndpoint(ctx, app, client.NewEndpoint{URL: "https://example.com/bad", RateLimit: -1})
		if e := wantError(t, err, http.StatusUnprocessableEntity, client.ErrInvalid); e.Field != "rate_limit" {
			t.Errorf("field %q, want rate_limit", e.Field)
		}
		if err := c.DeleteEndpoint(ctx, app, limited.ID); err != nil {
			t.Fatal(err)
		}
		eps, err := c.Endpoints(ctx, app)
		if err != nil {
			t.Fatal(err)
		}
		if len(eps) != 1 || eps[0].ID != ep.ID || eps[0].Secret != "" {
			t.Errorf("endpoints %+v", eps)
		}
		if err := c.DeleteEndpoint(ctx, app, ep.ID); err != nil {
			t.Fatal(err)
		}
		_, err = c.GetEndpoint(ctx, app, ep.ID)
		wantError(t, err, http.StatusNotFound, client.ErrNotFound)
		err = c.DeleteEndpoint(ctx, app, ep.ID)
		wantError(t, err, http.StatusNotFound, client.ErrNotFound)
	})
}

func TestClient_Schedules(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *server, c *client.Client) {
		ctx := context.Background()
		sc, err := c.CreateSchedule(ctx, app, client.NewSchedule{Spec: "0 9 * * MON-FRI", TimeZone: "Europe/Paris", EventType: "x", Data: json.RawMessage(`{"report":"daily"}`)})
		if err != nil {
			t.Fatal(err)
		}
		if sc.ID == "" || sc.Status != "active" || sc.Missed != "run_once" || sc.NextRunAt == nil || sc.TimeZone != "Europe/Paris" {
			t.Errorf("created %+v", sc)
		}
		paused, err := c.PauseSchedule(ctx, app, sc.ID)
		if err != nil {
			t.Fatal(err)
		}
		if paused.Status != "paused" || paused.NextRunAt != nil {
			t.Errorf("paused %+v", paused)
		}
		resumed, err := c.ResumeSchedule(ctx, app, sc.ID)
		if err != nil {
			t.Fatal(err)
		}
		if resumed.Status != "active" || resumed.NextRunAt == nil {
			t.Errorf("resumed %+v", resumed)
		}
		spec := "@every 1h"
		upd, err := c.UpdateSchedule(ctx, app, sc.ID, client.ScheduleUpdate{Spec: &spec, Data: json.RawMessage(`null`)})
		if err != nil {
			t.Fatal(err)
		}
		if upd.Spec != spec || string(upd.Data) != "null" {
			t.Errorf("updated %+v", upd)
		}
		got, err := c.GetSchedule(ctx, app, sc.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Spec != spec {
			t.Errorf("got %+v", got)
		}
		bad := "every day"
		_, err = c.UpdateSchedule(ctx, app, sc.ID, client.ScheduleUpdate{Spec: &bad})
		if e := wantError(t, err, http.StatusUnprocessableEntity, client.ErrInvalid); e.Field != "spec" {
			t.Errorf("field %q, want spec", e.Field)
		}
		list, err := c.Schedules(ctx, app)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 1 || list[0].ID != sc.ID {
			t.Errorf("schedules %+v", list)
		}
		if err := c.DeleteSchedule(ctx, app, sc.ID); err != nil {
			t.Fatal(err)
		}
		_, err = c.GetSchedule(ctx, app, sc.ID)
		wantError(t, err, http.StatusNotFound, client.ErrNotFound)
	})
}

func TestNew(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		url string
		cfg *client.Config
	}{
		{"", nil},
		{"localhost:8080/api/v1", nil},
		{"ftp://host/api", nil},
		{"http:///api", nil},
		{"http://host/api", &client.Config{MaxRetries: -2}},
		{"http://host/api", &client.Config{MinBackoff: -1}},
		{"http://host/api", &client.Config{MaxBackoff: -1}},
	} {
		if _, err := client.New(tc.url, tc.cfg); err == nil || !strings.HasPrefix(err.Error(), "tasks: client: ") {
			t.Errorf("New(%q, %+v): error %v, want one", tc.url, tc.cfg, err)
		}
	}
	if _, err := client.New("https://tasks.example.com/api/v1/", nil); err != nil {
		t.Error(err)
	}
}

// TestClient_TimeoutWholeSeconds: the API takes a timeout in whole
// seconds; CreateTask refuses a NewTask.Timeout that is not one, rather
// than truncating it (500ms would become 0: the server's default).
func TestClient_TimeoutWholeSeconds(t *testing.T) {
	t.Parallel()
	var count atomic.Int64
	s := newServer(t, tasks.NewMemoryStore(), flaky(0, 0, "", &count))
	c := s.client(t, nil)
	for _, d := range []time.Duration{500 * time.Millisecond, 1500 * time.Millisecond, -time.Second} {
		if _, err := c.CreateTask(context.Background(), app, client.NewTask{EventType: "x", Timeout: d}); err == nil || !strings.Contains(err.Error(), "Timeout") {
			t.Errorf("Timeout %v: error %v, want one naming Timeout", d, err)
		}
	}
	if count.Load() != 0 {
		t.Errorf("%d requests sent, want none", count.Load())
	}
}
