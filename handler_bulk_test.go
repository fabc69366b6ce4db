package tasks_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
)

// bulkBody is the filter of a bulk request on the tasks created within an
// hour of now, of eventType if not "".
func bulkBody(eventType string) string {
	since, before := time.Now().Add(-time.Hour).UTC(), time.Now().Add(time.Hour).UTC()
	m := map[string]string{"created_since": since.Format(time.RFC3339Nano), "created_before": before.Format(time.RFC3339Nano)}
	if eventType != "" {
		m["event_type"] = eventType
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// count decodes the answer of a bulk request that finished its range,
// {name: n, "next_cursor": null}, and returns n.
func (r *response) count(t *testing.T, name string) int {
	t.Helper()
	n, next := r.bulk(t, name)
	if next != nil {
		t.Fatalf("bulk answer %s: want next_cursor null, the range done", r.body)
	}
	return n
}

// bulk decodes the answer of a bulk request, {name: n, "next_cursor": c}.
func (r *response) bulk(t *testing.T, name string) (n int, next *string) {
	t.Helper()
	r.wantStatus(t, http.StatusOK)
	var got map[string]json.RawMessage
	if err := json.Unmarshal(r.body, &got); err != nil || len(got) != 2 {
		t.Fatalf("bulk answer %s: want {%q: n, \"next_cursor\": c}", r.body, name)
	}
	if err := json.Unmarshal(got[name], &n); err != nil {
		t.Fatalf("bulk answer %s: want {%q: n, \"next_cursor\": c}", r.body, name)
	}
	if err := json.Unmarshal(got["next_cursor"], &next); err != nil {
		t.Fatalf("bulk answer %s: want {%q: n, \"next_cursor\": c}", r.body, name)
	}
	return n, next
}

// TestHandler_DeleteTask checks DELETE /apps/{app_id}/tasks/{id} on every
// store: 204 for a task that is not running, which is then gone with its
// attempts; 409 for a running one (R3); 404 for an unknown task or
// another app's.
func TestHandler_DeleteTask(t *testing.T) {
	t.Parallel()
	testEngineStores(t, func(t *testing.T, newStore func(testing.TB) tasks.Store) {
		a, started, release := newBlockingAPI(t, newStore(t))
		done := a.createTask(`{"event_type":"x","data":{}}`)
		waitState(t, a.e, done.ID, tasks.StateCompleted)
		r := a.do("DELETE", "/apps/app_1/tasks/"+done.ID, "")
		r.wantStatus(t, http.StatusNoContent)
		if len(r.body) != 0 {
			t.Errorf("204 with body %s", r.body)
		}
		a.do("GET", "/apps/app_1/tasks/"+done.ID, "").problem(t, http.StatusNotFound, "")
		a.do("GET", "/apps/app_1/tasks/"+done.ID+"/attempts", "").problem(t, http.StatusNotFound, "")
		a.do("DELETE", "/apps/app_1/tasks/"+done.ID, "").problem(t, http.StatusNotFound, "")

		running := a.createTask(`{"event_type":"block","data":{}}`)
		<-started
		a.do("DELETE", "/apps/app_1/tasks/"+running.ID, "").problem(t, http.StatusConflict, "", "running", "cancel")
		close(release)
		waitState(t, a.e, running.ID, tasks.StateCompleted)

		// Another app's task is a 404, for a key that grants both apps too.
		other, err := a.e.Enqueue(context.Background(), tasks.NewTask{AppID: "app_2", EventType: "x", RunAt: time.Now().Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		a.do("DELETE", "/apps/app_1/tasks/"+other.ID, "", withKey(keyAll)).problem(t, http.StatusNotFound, "")
		a.do("DELETE", "/apps/app_2/tasks/"+other.ID, "").problem(t, http.StatusNotFound, "") // keyApp1 lacks app_2
		a.do("DELETE", "/apps/app_1/tasks/no-such-task", "").problem(t, http.StatusNotFound, "")
		a.do("DELETE", "/apps/app_2/tasks/"+other.ID, `{"force":true}`, withKey(keyAll)).problem(t, http.StatusBadRequest, "force")
		a.do("DELETE", "/apps/app_2/tasks/"+other.ID, "", withKey(keyAll)).wantStatus(t, http.StatusNoContent)
	})
}

// TestHandler_BulkReplay checks POST /apps/{app_id}/tasks/replay on every
// store: it replays the failed tasks of its filter, which run again, and
// answers how many; a second request answers 0.
func TestHandler_BulkReplay(t *testing.T) {
	t.Parallel()
	testEngineStores(t, func(t *testing.T, newStore func(testing.TB) tasks.Store) {
		var up atomic.Bool // the receiver, say, is down until it is up
		a := newAPI(t, newStore(t), apiOpts{funcs: map[string]tasks.Func{
			"x": func(context.Context, *tasks.Task) error {
				if !up.Load() {
					return tasks.Permanent(errors.New("down"))
				}
				return nil
			},
		}})
		var ids []string
		for range 3 {
			ids = append(ids, a.createTask(`{"event_type":"x","data":{}}`).ID)
		}
		for _, id := range ids {
			waitState(t, a.e, id, tasks.StateFailed)
		}
		up.Store(true)
		if n := a.do("POST", "/apps/app_1/tasks/replay", bulkBody("other.event")).count(t, "replayed"); n != 0 {
			t.Errorf("replay of another event type: %d, want 0", n)
		}
		if n := a.do("POST", "/apps/app_1/tasks/replay", bulkBody("x")).count(t, "replayed"); n != 3 {
			t.Errorf("replay: %d, want 3", n)
		}
		for _, id := range ids {
			waitState(t, a.e, id, tasks.StateCompleted)
		}
		if n := a.do("POST", "/apps/app_1/tasks/replay", bulkBody("")).count(t, "replayed"); n != 0 {
			t.Errorf("replay again: %d, want 0", n)
		}
	})
}

// TestHandler_BulkCancel checks POST /apps/{app_id}/tasks/cancel on every
// store: it cancels the scheduled tasks of its filter, not the running
// ones, nor another app's.
func TestHandler_BulkCancel(t *testing.T) {
	t.Parallel()
	testEngineStores(t, func(t *testing.T, newStore func(testing.TB) tasks.Store) {
		a, started, release := newBlockingAPI(t, newStore(t))
		running := a.createTask(`{"event_type":"block","data":{}}`)
		<-started
		var later []string
		for range 3 {
			later = append(later, a.createTask(`{"event_type":"x","scheduled_run_time":"`+future(time.Hour)+`","data":{}}`).ID)
		}
		other, err := a.e.Enqueue(context.Background(), tasks.NewTask{AppID: "app_2", EventType: "x", RunAt: time.Now().Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		if n := a.do("POST", "/apps/app_1/tasks/cancel", bulkBody("")).count(t, "canceled"); n != 3 {
			t.Errorf("cancel: %d, want 3", n)
		}
		for _, id := range later {
			if got := a.do("GET", "/apps/app_1/tasks/"+id, "").task(t, http.StatusOK); got.State != tasks.StateCanceled {
				t.Errorf("task %s is %s, want canceled", id, got.State)
			}
		}
		if got := a.do("GET", "/apps/app_1/tasks/"+running.ID, "").task(t, http.StatusOK); got.State != tasks.StateRunning || got.CancelRequested {
			t.Errorf("running task: %s, cancel_requested %v; want running, false", got.State, got.CancelRequested)
		}
		if got, _ := a.e.Get(context.Background(), other.ID); got.State != tasks.StateScheduled {
			t.Errorf("another app's task is %s, want scheduled", got.State)
		}
		if n := a.do("POST", "/apps/app_1/tasks/cancel", bulkBody("")).count(t, "canceled"); n != 0 {
			t.Errorf("cancel again: %d, want 0", n)
		}
		close(release)
		waitState(t, a.e, running.ID, tasks.StateCompleted)
	})
}

// TestHandler_BulkBadInput checks R3 and the strict bodies of the bulk
// routes: a missing bound, a bad time, bounds the wrong way round, an
// unknown field or trailing data are 400s naming the problem; another
// app is a 404; and the bulk routes leave the task routes beside them
// alone.
func TestHandler_BulkBadInput(t *testing.T) {
	t.Parallel()
	a := newAPI(t, tasks.NewMemoryStore(), apiOpts{noStart: true})
	task := a.createTask(`{"event_type":"x","scheduled_run_time":"` + future(time.Hour) + `","data":{}}`)
	since, before := future(-time.Hour), future(time.Hour)
	for _, path := range []string{"/apps/app_1/tasks/replay", "/apps/app_1/tasks/cancel"} {
		for _, tc := range []struct {
			body, field string
			contains    []string
		}{
			{`{"created_before":"` + before + `"}`, "created_since", []string{"required"}},
			{`{"created_since":"` + since + `"}`, "created_before", []string{"required"}},
			{`{}`, "created_since", []string{"required"}},
			{`{"created_since":"` + before + `","created_before":"` + since + `"}`, "created_before", []string{"after"}},
			{`{"created_since":"` + since + `","created_before":"` + since + `"}`, "created_before", []string{"after"}},
			{`{"created_since":"2026-01-01","created_before":"` + before + `"}`, "created_since", []string{"RFC 3339"}},
			{`{"created_since":"2026-01-01T00:00:00","created_before":"` + before + `"}`, "created_since", []string{"offset"}},
			{`{"created_since":"` + since + `","created_before":1700000000}`, "created_before", []string{"string"}},
			{`{"created_since":"` + since + `","created_before":"` + before + `","status":"failed"}`, "status", []string{"unknown field"}},
			{`{"created_since":"` + since + `","created_before":"` + before + `","Event_Type":"x"}`, "Event_Type", []string{"case-sensitive"}},
			{`{"created_since":"` + since + `","created_before":"` + before + `","event_type":"a b"}`, "event_type", nil},
			{`{"created_since":"` + since + `","created_before":"` + before + `"} {}`, "", nil},
			{`[]`, "", nil},
			{`{"created_since":"` + since + `","created_before":"` + before + `","cursor":"not a cursor"}`, "cursor", []string{"malformed"}},
			{`{"created_since":"` + since + `","created_before":"` + before + `","cursor":7}`, "cursor", []string{"string"}},
		} {
			t.Run(path+" "+tc.body, func(t *testing.T) {
				a.do("POST", path, tc.body).problem(t, http.StatusBadRequest, tc.field, tc.contains...)
			})
		}
		a.do("POST", path, "").problem(t, http.StatusUnsupportedMediaType, "")
		// An app the key does not grant is a 404, as a foreign task is.
		a.do("POST", strings.Replace(path, "app_1", "app_2", 1), bulkBody("")).problem(t, http.StatusNotFound, "")
		a.do("POST", path, bulkBody(""), withKey("wrong")).problem(t, http.StatusUnauthorized, "")
	}
	if got, _ := a.e.Get(context.Background(), task.ID); got.State != tasks.StateScheduled {
		t.Errorf("task after refused bulk requests: %s, want scheduled", got.State)
	}
	// GET of the bulk paths is the task route's clean 404, and other
	// methods the task route's 405.
	a.do("GET", "/apps/app_1/tasks/replay", "").problem(t, http.StatusNotFound, "")
	a.do("GET", "/apps/app_1/tasks/cancel", "").problem(t, http.StatusNotFound, "")
	a.do("PUT", "/apps/app_1/tasks/replay", "").problem(t, http.StatusMethodNotAllowed, "")
	a.do("DELETE", "/apps/app_1/tasks/replay", "").problem(t, http.StatusNotFound, "")
}

// TestHandler_BulkTimeout checks that a bulk request stops after the batch
// that passes HandlerConfig.BulkTimeout, answering a next_cursor, and that
// the same filter with that cursor goes on where it stopped, on every
// store: with a timeout that every batch passes, each request does one
// batch of 500, and three requests replay 1,200 failed tasks, each once.
func TestHandler_BulkTimeout(t *testing.T) {
	t.Parallel()
	testEngineStores(t, func(t *testing.T, newStore func(testing.TB) tasks.Store) {
		a := newAPI(t, newStore(t), apiOpts{
			handler: &tasks.HandlerConfig{BulkTimeout: time.Nanosecond},
			funcs:   map[string]tasks.Func{"x": func(context.Context, *tasks.Task) error { return tasks.Permanent(errors.New("no")) }},
		})
		const n = 1200
		ts := make([]tasks.NewTask, n)
		for i := range ts {
			ts[i] = tasks.NewTask{AppID: "app_1", EventType: "x", Data: json.RawMessage(`{}`)}
		}
		created, err := a.e.EnqueueMany(context.Background(), ts)
		if err != nil {
			t.Fatal(err)
		}
		for _, tk := range created {
			waitState(t, a.e, tk.ID, tasks.StateFailed)
		}
		var body map[string]any
		if err := json.Unmarshal([]byte(bulkBody("x")), &body); err != nil {
			t.Fatal(err)
		}
		total, requests := 0, 0
		for {
			b, _ := json.Marshal(body)
			got, next := a.do("POST", "/apps/app_1/tasks/replay", string(b)).bulk(t, "replayed")
			total += got
			requests++
			if next == nil {
				break
			}
			if requests > 3 {
				t.Fatalf("request %d still has a next_cursor", requests)
			}
			body["cursor"] = *next
		}
		if total != n || requests != 3 {
			t.Errorf("replayed %d tasks in %d requests, want %d in 3 (batches of 500)", total, requests, n)
		}
	})
}

// newBlockingAPI serves an engine on store in which "x" succeeds and each
// "block" task sends on started once it runs, then waits for release to be
// closed before it succeeds.
func newBlockingAPI(t *testing.T, store tasks.Store) (a *api, started chan struct{}, release chan struct{}) {
	started, release = make(chan struct{}, 1), make(chan struct{})
	a = newAPI(t, store, apiOpts{funcs: map[string]tasks.Func{
		"x": func(context.Context, *tasks.Task) error { return nil },
		"block": func(ctx context.Context, _ *tasks.Task) error {
			started <- struct{}{}
			<-release
			return nil
		},
	}})
	return a, started, release
}
