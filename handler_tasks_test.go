package tasks_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/taskwheel/tasks"
)

// TestHandler_HostedHooks sends a request exactly as HostedHooks documents
// it, and reads the answer as a HostedHooks client does.
func TestHandler_HostedHooks(t *testing.T) {
	t.Parallel()
	a := newAPI(t, tasks.NewMemoryStore(), apiOpts{funcs: map[string]tasks.Func{
		"user.created": func(context.Context, *tasks.Task) error { return nil },
	}})
	// curl -X POST https://.../apps/{app_id}/tasks -H 'Authorization: Bearer KEY'
	//   -H 'Content-Type: application/json' -d '{"event_type":...}'
	body := `{"event_type":"user.created","scheduled_run_time":"2026-12-01T10:00:00+05:30","data":{"email":"a@b.c"}}`
	req, err := http.NewRequest("POST", a.srv.URL+prefix+"/apps/app_1/tasks", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+keyApp1)
	req.Header.Set("Content-Type", "application/json")
	r := a.send(req)
	r.wantStatus(t, http.StatusCreated)
	var got map[string]json.RawMessage
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"id", "event_type", "status", "scheduled_run_time", "endpoint_id", "created_at", "data"} {
		if _, ok := got[name]; !ok {
			t.Errorf("answer %s has no %q", r.body, name)
		}
	}
	for name, want := range map[string]string{
		"event_type":         `"user.created"`,
		"status":             `"scheduled"`,
		"scheduled_run_time": `"2026-12-01T04:30:00Z"`,
		"endpoint_id":        `null`,
		"data":               `{"email":"a@b.c"}`,
	} {
		if string(got[name]) != want {
			t.Errorf("%s = %s, want %s", name, got[name], want)
		}
	}
	if loc := r.header.Get("Location"); loc == "" || !strings.HasSuffix(a.srv.URL+prefix+"/apps/app_1/"+loc, "/tasks/"+strings.Trim(string(got["id"]), `"`)) {
		t.Errorf("Location %q", loc)
	}
}

// TestHandler_Tasks walks a task through every task route.
func TestHandler_Tasks(t *testing.T) {
	t.Parallel()
	testEngineStores(t, func(t *testing.T, newStore func(testing.TB) tasks.Store) {
		a := newAPI(t, newStore(t), apiOpts{})

		data := `{ "email": "a@b.c",  "html": "<b>&</b>", "n": 1.50 }`
		created := a.createTask(`{"event_type":"x","data":` + data + `}`)
		done := waitState(t, a.e, created.ID, tasks.StateCompleted)

		// GET answers the data byte for byte.
		r := a.do("GET", "/apps/app_1/tasks/"+created.ID, "")
		got := r.task(t, http.StatusOK)
		if got.ID != created.ID || got.State != tasks.StateCompleted || !got.CreatedAt.Equal(done.CreatedAt) {
			t.Errorf("GET task = %+v", got)
		}
		if !bytes.Contains(r.body, []byte(`"data":`+data+`}`)) {
			t.Errorf("GET task %s: data not byte for byte %s", r.body, data)
		}

		r = a.do("GET", "/apps/app_1/tasks/"+created.ID+"/attempts", "")
		r.wantStatus(t, http.StatusOK)
		var attempts struct {
			Data []map[string]any `json:"data"`
		}
		if err := json.Unmarshal(r.body, &attempts); err != nil || len(attempts.Data) != 1 || attempts.Data[0]["attempt"] != 1.0 {
			t.Errorf("attempts = %s (%v), want one, number 1", r.body, err)
		}

		// Replay a completed task; it runs again.
		replayed := a.do("POST", "/apps/app_1/tasks/"+created.ID+"/replay", "").task(t, http.StatusOK)
		if replayed.State.Terminal() && replayed.Attempts < 2 {
			t.Errorf("replayed task is %s after %d attempts", replayed.State, replayed.Attempts)
		}
		if again := waitAttempts(t, a.e, created.ID, 2); again != 2 {
			t.Errorf("after replay: %d attempts, want 2", again)
		}

		// Reschedule a pending task; a field other than the run time is refused.
		later := a.createTask(`{"event_type":"x","scheduled_run_time":"` + future(time.Hour) + `","data":null}`)
		if string(later.Data) != "null" {
			t.Errorf("data = %s, want null", later.Data)
		}
		runAt := time.Now().Add(2 * time.Hour).UTC().Truncate(time.Second)
		moved := a.do("PATCH", "/apps/app_1/tasks/"+later.ID, `{"scheduled_run_time":"`+runAt.Format(time.RFC3339)+`"}`).task(t, http.StatusOK)
		if moved.ScheduledRunTime == nil || !moved.ScheduledRunTime.Equal(runAt) || moved.State != tasks.StateScheduled {
			t.Errorf("PATCH moved the task to %v (%s), want %v", moved.ScheduledRunTime, moved.State, runAt)
		}
		a.do("PATCH", "/apps/app_1/tasks/"+later.ID, `{"scheduled_run_time":"`+future(time.Hour)+`","data":{}}`).problem(t, http.StatusBadRequest, "data", "unknown field")
		a.do("PATCH", "/apps/app_1/tasks/"+later.ID, `{"scheduled_run_time":null}`).problem(t, http.StatusBadRequest, "scheduled_run_time", "string")
		a.do("PATCH", "/apps/app_1/tasks/"+later.ID, `{}`).problem(t, http.StatusBadRequest, "scheduled_run_time", "required")
		a.do("PATCH", "/apps/app_1/tasks/"+created.ID, `{"scheduled_run_time":"`+future(time.Hour)+`"}`).problem(t, http.StatusConflict, "", "completed")
		a.do("POST", "/apps/app_1/tasks/"+later.ID+"/replay", "").problem(t, http.StatusConflict, "", "scheduled")

		// List: newest first, only app_1's.
		a.do("POST", "/apps/app_2/tasks", `{"event_type":"x","data":1}`, withKey(keyAll)).task(t, http.StatusCreated)
		list := a.list(t, "/apps/app_1/tasks")
		if len(list.Data) != 2 || list.Data[0].ID != later.ID || list.Data[1].ID != created.ID || list.NextCursor != nil {
			t.Errorf("list = %+v, want [%s %s] and no next cursor", list, later.ID, created.ID)
		}
		if !bytes.Contains(list.raw, []byte(`"data":`+data+`}`)) {
			t.Errorf("list %s: data not byte for byte", list.raw)
		}
		if l := a.list(t, "/apps/app_1/tasks?status=completed"); len(l.Data) != 1 || l.Data[0].ID != created.ID {
			t.Errorf("list ?status=completed = %+v", l.Data)
		}

		// HEAD of a GET route.
		if r := a.do("HEAD", "/apps/app_1/tasks/"+created.ID, ""); r.status != http.StatusOK || len(r.body) != 0 {
			t.Errorf("HEAD = %d %q", r.status, r.body)
		}
	})
}

// waitAttempts waits until task id has n attempts and is not running.
func waitAttempts(t *testing.T, e *tasks.Engine, id string, n int) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := e.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if got.Attempts >= n && got.State.Terminal() || time.Now().After(deadline) {
			return got.Attempts
		}
		time.Sleep(time.Millisecond)
	}
}

// TestHandler_RunTime_A11: times without an offset, dates alone and other
// forms get 400; "Z" and "+05:30" are accepted and normalised to UTC.
func TestHandler_RunTime_A11(t *testing.T) {
	t.Parallel()
	a := newAPI(t, tasks.NewMemoryStore(), apiOpts{})
	base := time.Now().Add(24 * time.Hour).UTC().Truncate(time.Second)
	for _, bad := range []string{
		base.Format("2006-01-02T15:04:05"),       // no offset
		base.Format("2006-01-02T15:04:05.000"),   // no offset
		base.Format("2006-01-02"),                // date only
		base.Format("2006-01-02 15:04:05Z07:00"), // space, not T
		base.Format(time.RFC1123),
		base.Format(time.RFC1123Z),
		base.Format("2006-01-02T15:04Z07:00"),        // no seconds
		base.Format("2006-01-02T15:04:05+0700"),      // offset without colon
		base.Format("2006-01-02T15:04:05,000Z07:00"), // comma fraction
		base.Format("20060102T150405Z"),
		"2026-02-30T10:00:00Z", "2026-12-01T24:00:00Z", "2026-12-01T10:00:60Z", "2026-12-01T10:00:00+24:00",
		"now", "", "tomorrow", "1764583200",
	} {
		a.do("POST", "/apps/app_1/tasks", `{"event_type":"x","scheduled_run_time":"`+bad+`","data":{}}`).
			problem(t, http.StatusBadRequest, "scheduled_run_time", "scheduled_run_time")
	}
	ist := time.FixedZone("IST", 5*3600+1800)
	for _, good := range []string{
		base.Format(time.RFC3339),
		base.In(ist).Format(time.RFC3339),
		base.In(ist).Format("2006-01-02T15:04:05.000000Z07:00"),
		strings.ToLower(base.Format(time.RFC3339)), // RFC 3339 allows t and z
	} {
		task := a.createTask(`{"event_type":"x","scheduled_run_time":"` + good + `","data":{}}`)
		if task.ScheduledRunTime == nil || !task.ScheduledRunTime.Equal(base) || task.ScheduledRunTime.Location() != time.UTC {
			t.Errorf("%s: scheduled_run_time %v, want %v", good, task.ScheduledRunTime, base)
		}
	}
	r := a.do("POST", "/apps/app_1/tasks", `{"event_type":"x","scheduled_run_time":"`+base.In(ist).Format(time.RFC3339)+`","data":{}}`)
	if !bytes.Contains(r.body, []byte(`"scheduled_run_time":"`+base.Format(time.RFC3339)+`"`)) {
		t.Errorf("answer %s: scheduled_run_time not in UTC", r.body)
	}
}

// TestHandler_RunTime_A12: a past or absent run time is accepted and the
// task runs as soon as possible.
func TestHandler_RunTime_A12(t *testing.T) {
	t.Parallel()
	testEngineStores(t, func(t *testing.T, newStore func(testing.TB) tasks.Store) {
		a := newAPI(t, newStore(t), apiOpts{})
		past := a.createTask(`{"event_type":"x","scheduled_run_time":"2020-01-01T00:00:00+01:00","data":{}}`)
		if past.ScheduledRunTime == nil || !past.ScheduledRunTime.Equal(time.Date(2019, 12, 31, 23, 0, 0, 0, time.UTC)) {
			t.Errorf("scheduled_run_time %v, want as given", past.ScheduledRunTime)
		}
		ancient := a.createTask(`{"event_type":"x","scheduled_run_time":"0001-01-01T00:00:01Z","data":{}}`)
		absent := a.createTask(`{"event_type":"x","data":{}}`)
		null := a.createTask(`{"event_type":"x","scheduled_run_time":null,"data":{}}`)
		if absent.ScheduledRunTime != nil || null.ScheduledRunTime != nil {
			t.Errorf("scheduled_run_time %v, %v; want null", absent.ScheduledRunTime, null.ScheduledRunTime)
		}
		for _, task := range []*tasks.Task{past, ancient, absent, null} {
			waitState(t, a.e, task.ID, tasks.StateCompleted)
		}
		a.do("GET", "/apps/app_1/tasks/"+ancient.ID, "").task(t, http.StatusOK)
		for _, out := range []string{"0001-01-01T00:00:00+01:00", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59-01:00"} {
			a.do("POST", "/apps/app_1/tasks", `{"event_type":"x","scheduled_run_time":"`+out+`","data":{}}`).
				problem(t, http.StatusBadRequest, "scheduled_run_time", "range")
		}
	})
}

// TestHandler_RunTime_A13: a run time beyond the horizon gets 422.
func TestHandler_RunTime_A13(t *testing.T) {
	t.Parallel()
	a := newAPI(t, tasks.NewMemoryStore(), apiOpts{})
	a.createTask(`{"event_type":"x","scheduled_run_time":"` + future(365*24*time.Hour) + `","data":{}}`)
	for _, far := range []string{future(367 * 24 * time.Hour), "9999-12-31T23:59:59Z"} {
		a.do("POST", "/apps/app_1/tasks", `{"event_type":"x","scheduled_run_time":"`+far+`","data":{}}`).
			problem(t, http.StatusUnprocessableEntity, "scheduled_run_time", "ahead")
	}
	short := newAPI(t, tasks.NewMemoryStore(), apiOpts{handler: &tasks.HandlerConfig{Horizon: time.Hour}})
	short.createTask(`{"event_type":"x","scheduled_run_time":"` + future(59*time.Minute) + `","data":{}}`)
	short.do("POST", "/apps/app_1/tasks", `{"event_type":"x","scheduled_run_time":"`+future(61*time.Minute)+`","data":{}}`).
		problem(t, http.StatusUnprocessableEntity, "scheduled_run_time", "ahead")
	// Rescheduling too.
	task := short.createTask(`{"event_type":"x","scheduled_run_time":"` + future(30*time.Minute) + `","data":{}}`)
	short.do("PATCH", "/apps/app_1/tasks/"+task.ID, `{"scheduled_run_time":"`+future(2*time.Hour)+`"}`).
		problem(t, http.StatusUnprocessableEntity, "scheduled_run_time", "ahead")
}

// TestHandler_Idempotency_A14: the same key and body get the original
// answer and no second task; the same key with another body gets 422; a
// key too long gets 400; keys are scoped per app. Concurrent requests with
// one key make one task (F23).
func TestHandler_Idempotency_A14(t *testing.T) {
	t.Parallel()
	testEngineStores(t, func(t *testing.T, newStore func(testing.TB) tasks.Store) {
		a := newAPI(t, newStore(t), apiOpts{funcs: map[string]tasks.Func{
			"x": func(context.Context, *tasks.Task) error { return nil },
			"y": func(context.Context, *tasks.Task) error { return nil },
		}})
		at := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
		body := `{"event_type":"x","scheduled_run_time":"` + at.Format(time.RFC3339) + `","data":{"a": 1}}`
		key := header("Idempotency-Key", "order-42")

		first := a.do("POST", "/apps/app_1/tasks", body, key)
		task := first.task(t, http.StatusCreated)
		again := a.do("POST", "/apps/app_1/tasks", body, key)
		again.wantStatus(t, http.StatusCreated)
		if !bytes.Equal(again.body, first.body) || again.header.Get("Idempotent-Replayed") != "true" {
			t.Errorf("replay answered %s (replayed %q), want %s", again.body, again.header.Get("Idempotent-Replayed"), first.body)
		}
		// The same time in another offset is the same request.
		ist := `{"event_type":"x","scheduled_run_time":"` + at.In(time.FixedZone("", 19800)).Format(time.RFC3339) + `","data":{"a": 1}}`
		if got := a.do("POST", "/apps/app_1/tasks", ist, key).task(t, http.StatusCreated); got.ID != task.ID {
			t.Errorf("same request in +05:30 created %s, want %s", got.ID, task.ID)
		}
		for _, other := range []string{
			`{"event_type":"x","scheduled_run_time":"` + at.Format(time.RFC3339) + `","data":{"a": 2}}`,
			`{"event_type":"x","scheduled_run_time":"` + at.Add(time.Second).Format(time.RFC3339) + `","data":{"a": 1}}`,
			`{"event_type":"x","data":{"a": 1}}`,
			`{"event_type":"y","scheduled_run_time":"` + at.Format(time.RFC3339) + `","data":{"a": 1}}`,
		} {
			a.do("POST", "/apps/app_1/tasks", other, key).problem(t, http.StatusUnprocessableEntity, "Idempotency-Key", "another request")
		}
		// Scoped per app.
		inApp2 := a.do("POST", "/apps/app_2/tasks", body, key, withKey(keyAll)).task(t, http.StatusCreated)
		if inApp2.ID == task.ID {
			t.Error("the key of app_1 deduplicated a task of app_2")
		}
		// Length.
		a.do("POST", "/apps/app_1/tasks", body, header("Idempotency-Key", strings.Repeat("k", tasks.MaxIdempotencyKeyLength+1))).
			problem(t, http.StatusBadRequest, "Idempotency-Key", "longer")
		a.do("POST", "/apps/app_1/tasks", body, header("Idempotency-Key", strings.Repeat("k", tasks.MaxIdempotencyKeyLength))).
			task(t, http.StatusCreated)
		a.do("POST", "/apps/app_1/tasks", body, func(r *http.Request) { r.Header["Idempotency-Key"] = []string{"a", "b"} }).
			problem(t, http.StatusBadRequest, "Idempotency-Key", "more than one")
		a.do("POST", "/apps/app_1/tasks", body, header("Idempotency-Key", "order\t42")).
			problem(t, http.StatusBadRequest, "Idempotency-Key", "invalid Idempotency-Key: contains a control character")

		// F23: concurrent requests with one key make one task.
		var wg sync.WaitGroup
		ids := make([]string, 8)
		codes := make([]int, 8)
		for i := range ids {
			wg.Go(func() {
				req, _ := http.NewRequest("POST", a.srv.URL+prefix+"/apps/app_1/tasks", strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+keyApp1)
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Idempotency-Key", "race")
				resp, err := a.srv.Client().Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				defer resp.Body.Close()
				var got tasks.Task
				json.NewDecoder(resp.Body).Decode(&got)
				ids[i], codes[i] = got.ID, resp.StatusCode
			})
		}
		wg.Wait()
		for i := range ids {
			if codes[i] != http.StatusCreated || ids[i] != ids[0] {
				t.Errorf("concurrent request %d: %d %s, want 201 %s", i, codes[i], ids[i], ids[0])
			}
		}
		if n := len(a.list(t, "/apps/app_1/tasks").Data); n != 3 {
			t.Errorf("app_1 has %d tasks, want 3 (order-42, the 255-byte key, race)", n)
		}
	})
}

// TestHandler_IdempotentReplay_A14: a request is the same as the one that
// used its Idempotency-Key if its data is the same JSON value, whatever its
// white space, member order and string escapes; numbers compare exactly.
// The key is looked up first, so a true replay gets the original task even
// after its route was deleted or the horizon shortened.
func TestHandler_IdempotentReplay_A14(t *testing.T) {
	t.Parallel()
	testEngineStores(t, func(t *testing.T, newStore func(testing.TB) tasks.Store) {
		store := newStore(t)
		a := newAPI(t, store, apiOpts{})
		at := future(time.Hour)
		body := func(eventType, data string) string {
			return `{"event_type":"` + eventType + `","scheduled_run_time":"` + at + `","data":` + data + `}`
		}
		create := func(key, body string) *response {
			return a.do("POST", "/apps/app_1/tasks", body, header("Idempotency-Key", key))
		}
		replayed := func(t *testing.T, r *response, want *tasks.Task) {
			t.Helper()
			if got := r.task(t, http.StatusCreated); got.ID != want.ID || r.header.Get("Idempotent-Replayed") != "true" {
				t.Errorf("replay answered task %s (Idempotent-Replayed %q), want %s again", got.ID, r.header.Get("Idempotent-Replayed"), want.ID)
			}
		}

		t.Run("data compared as JSON values", func(t *testing.T) {
			data := `{"a": 1, "b": [true, null, "\u00e9"], "n": 12345678901234567890, "o": {"x": "y", "z": 0.5}}`
			task := create("semantic", body("x", data)).task(t, http.StatusCreated)
			for _, same := range []string{
				`{"a":1,"b":[true,null,"\u00e9"],"n":12345678901234567890,"o":{"x":"y","z":0.5}}`,
				"{\n\t\"o\": {\"z\": 0.5, \"x\": \"y\"},\n\t\"n\": 12345678901234567890,\n\t\"b\": [true, null, \"é\"],\n\t\"a\": 1\n}",
			} {
				replayed(t, create("semantic", body("x", same)), task)
			}
			for _, other := range []string{
				`{"a": 1, "b": [true, null, "é"], "n": 12345678901234567891, "o": {"x": "y", "z": 0.5}}`, // equal as float64
				`{"a": 1, "b": [null, true, "é"], "n": 12345678901234567890, "o": {"x": "y", "z": 0.5}}`,
				`{"a": 1, "b": [true, null, "é"], "n": 12345678901234567890, "o": {"x": "y"}}`,
				`{"a": 1, "b": [true, null, "é"], "n": 12345678901234567890, "o": {"x": "y", "z": 0.5}, "c": null}`,
				`{"a": "1", "b": [true, null, "é"], "n": 12345678901234567890, "o": {"x": "y", "z": 0.5}}`,
				`[{"a": 1}]`,
			} {
				create("semantic", body("x", other)).problem(t, http.StatusUnprocessableEntity, "Idempotency-Key", "another request")
			}
		})
		t.Run("after the route was deleted", func(t *testing.T) {
			ep := a.do("POST", "/apps/app_1/endpoints", `{"url":"https://example.com/hook","enabled_events":["hook.only"]}`)
			var endpoint tasks.Endpoint
			if err := json.Unmarshal(ep.body, &endpoint); err != nil || ep.status != http.StatusCreated {
				t.Fatalf("create endpoint: %d %s", ep.status, ep.body)
			}
			task := create("routed", body("hook.only", `{}`)).task(t, http.StatusCreated)
			a.do("DELETE", "/apps/app_1/endpoints/"+endpoint.ID, "").wantStatus(t, http.StatusNoContent)

			create("new", body("hook.only", `{}`)).problem(t, http.StatusUnprocessableEntity, "event_type", "no route")
			replayed(t, create("routed", body("hook.only", `{}`)), task)
			create("routed", body("hook.only", `{"other":1}`)).problem(t, http.StatusUnprocessableEntity, "Idempotency-Key", "another request")
		})
		t.Run("after the task was rescheduled", func(t *testing.T) {
			const data = `{"email": "a@b.c", "n": 1}`
			task := create("moved", body("x", data)).task(t, http.StatusCreated)
			later := time.Now().Add(2 * time.Hour).UTC().Truncate(time.Second)
			patch := `{"scheduled_run_time":"` + later.Format(time.RFC3339) + `"}`
			moved := a.do("PATCH", "/apps/app_1/tasks/"+task.ID, patch).task(t, http.StatusOK)

			// The creating request, also in other white space and member
			// order, gets the task as it is now.
			for _, same := range []string{body("x", data), body("x", `{ "n":1,"email":"a@b.c" }`)} {
				r := create("moved", same)
				replayed(t, r, task)
				if got := r.task(t, http.StatusCreated); !got.ScheduledRunTime.Equal(later) || !got.UpdatedAt.Equal(moved.UpdatedAt) {
					t.Errorf("replay answered scheduled_run_time %v, updated_at %v; want the task as PATCH left it: %v, %v",
						got.ScheduledRunTime, got.UpdatedAt, later, moved.UpdatedAt)
				}
			}
			// Any other request is another, the task as it is now included.
			nowBody := `{"event_type":"x","scheduled_run_time":"` + later.Format(time.RFC3339) + `","data":` + data + `}`
			for _, other := range []string{nowBody, body("x", `{"email": "a@b.c", "n": 2}`), body("y", data)} {
				create("moved", other).problem(t, http.StatusUnprocessableEntity, "Idempotency-Key", "another request")
			}
		})
		t.Run("enqueued in Go", func(t *testing.T) {
			runAt, err := time.Parse(time.RFC3339, at)
			if err != nil {
				t.Fatal(err)
			}
			task, err := a.e.Enqueue(t.Context(), tasks.NewTask{AppID: "app_1", EventType: "x",
				Data: json.RawMessage(`{"b":[1,2],"a":"z"}`), RunAt: runAt.In(time.FixedZone("", 3600)), IdempotencyKey: "go"})
			if err != nil {
				t.Fatal(err)
			}
			a.do("PATCH", "/apps/app_1/tasks/"+task.ID, `{"scheduled_run_time":"`+future(3*time.Hour)+`"}`).wantStatus(t, http.StatusOK)
			replayed(t, create("go", body("x", `{"a": "z", "b": [1, 2]}`)), task)
			create("go", body("x", `{"a": "z", "b": [2, 1]}`)).problem(t, http.StatusUnprocessableEntity, "Idempotency-Key", "another request")
		})
		t.Run("stored without the digest of its request", func(t *testing.T) {
			// A task stored before the digest was kept (or by a store
			// that drops it) is compared with its fields as they are.
			runAt, err := time.Parse(time.RFC3339, at)
			if err != nil {
				t.Fatal(err)
			}
			task, err := store.Insert(t.Context(), &tasks.Task{ID: uuid.NewString(), AppID: "app_1", EventType: "x",
				Data: json.RawMessage(`{"a":1}`), ScheduledRunTime: &runAt, MaxAttempts: 3, IdempotencyKey: "old"})
			if err != nil {
				t.Fatal(err)
			}
			replayed(t, create("old", body("x", `{ "a": 1 }`)), task)
			create("old", body("x", `{"a": 2}`)).problem(t, http.StatusUnprocessableEntity, "Idempotency-Key", "another request")
		})
		t.Run("after the horizon was shortened", func(t *testing.T) {
			task := create("far", body("x", `{}`)).task(t, http.StatusCreated)
			short := openAPICheck(t, a.e.Handler(&tasks.HandlerConfig{Unauthenticated: true, Horizon: time.Minute}), true)
			send := func(key string) *response {
				req := httptest.NewRequest("POST", "/apps/app_1/tasks", strings.NewReader(body("x", `{}`)))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Idempotency-Key", key)
				w := httptest.NewRecorder()
				short.ServeHTTP(w, req)
				return &response{w.Code, w.Header(), w.Body.Bytes()}
			}
			send("not-far").problem(t, http.StatusUnprocessableEntity, "scheduled_run_time", "ahead")
			replayed(t, send("far"), task)
		})
	})
}

// TestHandler_Paging_A18: pages follow each other newest first; bad paging
// gets 400; another app's task is a 404 identical to a missing one's.
func TestHandler_Paging_A18(t *testing.T) {
	t.Parallel()
	testEngineStores(t, func(t *testing.T, newStore func(testing.TB) tasks.Store) {
		a := newAPI(t, newStore(t), apiOpts{funcs: map[string]tasks.Func{
			"x": func(context.Context, *tasks.Task) error { return nil },
			"y": func(context.Context, *tasks.Task) error { return nil },
		}})
		var ids []string
		for i := range 5 {
			et := []string{"x", "y"}[i%2]
			ids = append(ids, a.createTask(`{"event_type":"`+et+`","scheduled_run_time":"`+future(time.Hour)+`","data":`+fmt.Sprint(i)+`}`).ID)
		}
		foreign := a.do("POST", "/apps/app_2/tasks", `{"event_type":"x","scheduled_run_time":"`+future(time.Hour)+`","data":{}}`, withKey(keyAll)).task(t, http.StatusCreated)
		slices.Reverse(ids)

		var got []string
		path := "/apps/app_1/tasks?limit=2"
		for pages := 0; ; pages++ {
			p := a.list(t, path)
			for _, task := range p.Data {
				got = append(got, task.ID)
			}
			if p.NextCursor == nil {
				break
			}
			if pages > 5 {
				t.Fatal("paging does not end")
			}
			path = "/apps/app_1/tasks?limit=2&cursor=" + *p.NextCursor
		}
		if !slices.Equal(got, ids) {
			t.Errorf("paged %v, want %v", got, ids)
		}
		if p := a.list(t, "/apps/app_1/tasks?event_type=y&status=scheduled,running&status=retrying"); len(p.Data) != 2 {
			t.Errorf("?event_type=y: %d tasks, want 2", len(p.Data))
		}
		if p := a.list(t, "/apps/app_1/tasks?status=completed"); len(p.Data) != 0 {
			t.Errorf("?status=completed: %d tasks, want 0", len(p.Data))
		}

		bad := base64.RawURLEncoding.EncodeToString(append(make([]byte, 8), "x' OR '1'='1"...))
		for _, q := range []string{"limit=0", "limit=-1", "limit=1001", "limit=abc", "limit=1e3", "limit=+5", "limit=%205",
			"limit=99999999999999999999999", "limit=1&limit=2", "cursor=garbage!", "cursor=" + bad, "cursor=",
			"cursor=AAAA", "status=bogus", "status=", "status=scheduled,,running", "event_type=a%20b", "event_type=%ff",
			"sort=asc", "Limit=5", "limit=%zz", "limit=1;cursor=x"} {
			r := a.do("GET", "/apps/app_1/tasks?"+q, "")
			r.problem(t, http.StatusBadRequest, "")
		}

		missing := a.do("GET", "/apps/app_1/tasks/0190a0a0-0000-7000-8000-000000000000", "").problem(t, http.StatusNotFound, "")
		for _, path := range []string{"", "/attempts"} {
			if p := a.do("GET", "/apps/app_1/tasks/"+foreign.ID+path, "", withKey(keyAll)).problem(t, http.StatusNotFound, ""); p != missing {
				t.Errorf("another app's task: %+v, missing task: %+v", p, missing)
			}
		}
		for _, op := range []string{"/cancel", "/replay"} {
			a.do("POST", "/apps/app_1/tasks/"+foreign.ID+op, "", withKey(keyAll)).problem(t, http.StatusNotFound, "")
		}
		a.do("PATCH", "/apps/app_1/tasks/"+foreign.ID, `{"scheduled_run_time":"`+future(time.Minute)+`"}`, withKey(keyAll)).problem(t, http.StatusNotFound, "")
		if got, _ := a.e.Get(context.Background(), foreign.ID); got.State != tasks.StateScheduled {
			t.Errorf("another app's task is %s, want untouched", got.State)
		}
	})
}

// TestHandler_Cancel_A19: a scheduled task becomes canceled and never
// runs; a running one has its context cancelled; a completed one is
// unchanged with 409; canceling twice gives the same answer.
func TestHandler_Cancel_A19(t *testing.T) {
	t.Parallel()
	testEngineStores(t, func(t *testing.T, newStore func(testing.TB) tasks.Store) {
		ran := make(chan string, 10)
		started := make(chan string, 1)
		a := newAPI(t, newStore(t), apiOpts{funcs: map[string]tasks.Func{
			"x": func(_ context.Context, task *tasks.Task) error { ran <- task.ID; return nil },
			"block": func(ctx context.Context, task *tasks.Task) error {
				started <- task.ID
				<-ctx.Done()
				return ctx.Err()
			},
		}})

		t.Run("scheduled", func(t *testing.T) {
			soon := a.createTask(`{"event_type":"x","scheduled_run_time":"` + future(300*time.Millisecond) + `","data":{}}`)
			first := a.do("POST", "/apps/app_1/tasks/"+soon.ID+"/cancel", "")
			if got := first.task(t, http.StatusOK); got.State != tasks.StateCanceled {
				t.Errorf("canceled task is %s", got.State)
			}
			second := a.do("POST", "/apps/app_1/tasks/"+soon.ID+"/cancel", "")
			second.wantStatus(t, http.StatusOK)
			if !bytes.Equal(first.body, second.body) {
				t.Errorf("second cancel answered %s, want %s", second.body, first.body)
			}
			// A task due after it runs; by then the canceled one would have.
			marker := a.createTask(`{"event_type":"x","scheduled_run_time":"` + future(400*time.Millisecond) + `","data":{}}`)
			if id := <-ran; id != marker.ID {
				t.Errorf("task %s ran, want only %s", id, marker.ID)
			}
			waitState(t, a.e, soon.ID, tasks.StateCanceled)
		})
		t.Run("running", func(t *testing.T) {
			task := a.createTask(`{"event_type":"block","data":{}}`)
			<-started
			got := a.do("POST", "/apps/app_1/tasks/"+task.ID+"/cancel", "").task(t, http.StatusOK)
			if got.State != tasks.StateRunning || !got.CancelRequested {
				t.Errorf("cancel of a running task answered %s, cancel_requested %v", got.State, got.CancelRequested)
			}
			waitState(t, a.e, task.ID, tasks.StateCanceled)
			a.do("POST", "/apps/app_1/tasks/"+task.ID+"/cancel", "").task(t, http.StatusOK)
		})
		t.Run("completed", func(t *testing.T) {
			task := a.createTask(`{"event_type":"x","data":{}}`)
			<-ran
			waitState(t, a.e, task.ID, tasks.StateCompleted)
			a.do("POST", "/apps/app_1/tasks/"+task.ID+"/cancel", "").problem(t, http.StatusConflict, "", "completed")
			if got := a.do("GET", "/apps/app_1/tasks/"+task.ID, "").task(t, http.StatusOK); got.State != tasks.StateCompleted {
				t.Errorf("after a refused cancel the task is %s", got.State)
			}
		})
		t.Run("body", func(t *testing.T) {
			task := a.createTask(`{"event_type":"x","scheduled_run_time":"` + future(time.Hour) + `","data":{}}`)
			a.do("POST", "/apps/app_1/tasks/"+task.ID+"/cancel", `{"reason":"x"}`).problem(t, http.StatusBadRequest, "reason", "no fields")
			a.do("POST", "/apps/app_1/tasks/"+task.ID+"/cancel", `{}`).task(t, http.StatusOK)
		})
	})
}

// TestHandler_EventType_A22: an event type that is empty, has spaces, is
// too long or has leading or trailing dots gets 422.
func TestHandler_EventType_A22(t *testing.T) {
	t.Parallel()
	a := newAPI(t, tasks.NewMemoryStore(), apiOpts{})
	for _, et := range []string{"", " ", "a b", " x", "x ", strings.Repeat("a", tasks.MaxEventTypeLength+1), ".a", "a.", "a..b",
		"a\\tb", "a/b", "é", "a\\u0000"} {
		a.do("POST", "/apps/app_1/tasks", `{"event_type":"`+et+`","data":{}}`).problem(t, http.StatusUnprocessableEntity, "event_type")
	}
}

// TestHandler_NoRoute: an event type with neither a func nor an active
// subscribed endpoint of the app gets 422; an endpoint makes it routable.
func TestHandler_NoRoute(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t)
	a := newAPI(t, tasks.NewMemoryStore(), apiOpts{cfg: webhookConfig()})
	body := `{"event_type":"user.created","data":{"email":"a@b.c"}}`
	a.do("POST", "/apps/app_1/tasks", body).problem(t, http.StatusUnprocessableEntity, "event_type", "no route")
	ep := a.do("POST", "/apps/app_1/endpoints", `{"url":"`+rc.URL+`","enabled_events":["user.created"],"status":"inactive"}`)
	ep.wantStatus(t, http.StatusCreated)
	var e tasks.Endpoint
	json.Unmarshal(ep.body, &e)
	a.do("POST", "/apps/app_1/tasks", body).problem(t, http.StatusUnprocessableEntity, "event_type", "no route")
	a.do("PATCH", "/apps/app_1/endpoints/"+e.ID, `{"status":"active"}`).wantStatus(t, http.StatusOK)
	a.do("POST", "/apps/app_1/tasks", `{"event_type":"user.deleted","data":{}}`).problem(t, http.StatusUnprocessableEntity, "event_type", "no route")
	task := a.createTask(body)
	got := <-rc.got
	if !bytes.Contains(got.body, []byte(`"data":{"email":"a@b.c"}`)) || got.header.Get("webhook-id") != task.ID {
		t.Errorf("delivered %s with webhook-id %q", got.body, got.header.Get("webhook-id"))
	}
	done := waitState(t, a.e, task.ID, tasks.StateCompleted)
	if done.EndpointID == nil || *done.EndpointID != e.ID {
		t.Errorf("endpoint_id %v, want %s", done.EndpointID, e.ID)
	}
	// Another app's endpoint routes nothing for app_1.
	a.do("POST", "/apps/app_2/tasks", body, withKey(keyAll)).problem(t, http.StatusUnprocessableEntity, "event_type", "no route")
}

// TestHandler_DataLimit_W19: data larger than Config.MaxDataBytes gets 413.
func TestHandler_DataLimit_W19(t *testing.T) {
	t.Parallel()
	a := newAPI(t, tasks.NewMemoryStore(), apiOpts{cfg: &tasks.Config{MaxDataBytes: 100}})
	fits := `"` + strings.Repeat("a", 98) + `"`
	a.createTask(`{"event_type":"x","data":` + fits + `}`)
	a.do("POST", "/apps/app_1/tasks", `{"event_type":"x","data":"`+strings.Repeat("a", 99)+`"}`).
		problem(t, http.StatusRequestEntityTooLarge, "data", "100")
	a.do("POST", "/apps/app_1/tasks", `{"event_type":"x","data":"`+strings.Repeat("a", 64<<10)+`"}`).
		problem(t, http.StatusRequestEntityTooLarge, "")
}

// FuzzCreateTaskRequest sends random bodies to create: never a 5xx, never
// a panic, a problem+json for every error, and a 201 only for a body that
// decodes to a valid request.
func FuzzCreateTaskRequest(f *testing.F) {
	for _, seed := range []string{
		`{"event_type":"x","data":{}}`,
		`{"event_type":"x","scheduled_run_time":"2026-12-01T10:00:00+05:30","data":{"email":"a@b.c"}}`,
		`{"event_type":"x","scheduled_run_time":null,"data":null}`,
		`{"event_type":"x","data":[1,2,{"a":"\u00e9"}]}`,
		`{"event_type":"x","data":{"a":1,"a":2}}`,
		`{"Event_Type":"x","data":{}}`,
		`{"event_type":"x","data":{}} {}`,
		`{"event_type":1e999,"data":{}}`,
		`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[`,
		"{\"event_type\":\"x\xff\",\"data\":{}}",
		`{"event_type":"x","scheduled_run_time":"2026-12-01T10:00:00","data":{}}`,
		`{"event_type":"x","scheduled_run_time":"9999-12-31T23:59:59Z","data":{}}`,
		``, `null`, `{}`, `{"":""}`,
		`{"event_type":"x","data":{"s":"\ud800"}}`, `{"event_type":"x","data":"\ud83d\ude00\u0000\\ud800"}`,
	} {
		f.Add([]byte(seed))
	}
	e, err := tasks.NewEngine(tasks.NewMemoryStore(), &tasks.Config{
		Logger:       slog.New(slog.DiscardHandler),
		MaxDataBytes: 4096,
	})
	if err != nil {
		f.Fatal(err)
	}
	e.Register("x", func(context.Context, *tasks.Task) error { return nil })
	h := e.Handler(&tasks.HandlerConfig{Unauthenticated: true})
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest("POST", "/apps/app_1/tasks", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		switch {
		case w.Code >= 500 || w.Code < 200:
			t.Fatalf("body %q: status %d %s", body, w.Code, w.Body)
		case w.Code != http.StatusCreated:
			if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
				t.Fatalf("body %q: status %d with Content-Type %q", body, w.Code, ct)
			}
			return
		}
		// A 201: the body must be a valid request, by an independent reading.
		var in struct {
			EventType        *string         `json:"event_type"`
			ScheduledRunTime *string         `json:"scheduled_run_time"`
			Data             json.RawMessage `json:"data"`
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&in); err != nil || dec.More() {
			t.Fatalf("201 for %q, which does not decode: %v", body, err)
		}
		if in.EventType == nil || tasks.ValidateEventType(*in.EventType) != nil || in.Data == nil {
			t.Fatalf("201 for %q: no valid event_type or no data", body)
		}
		var out tasks.Task
		if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
			t.Fatalf("201 answer %s: %v", w.Body, err)
		}
		if out.EventType != *in.EventType || !bytes.Equal(out.Data, in.Data) {
			t.Fatalf("201 for %q answered %s", body, w.Body)
		}
		if s := loneSurrogate(w.Body.Bytes()); s != "" {
			t.Fatalf("201 for %q answered %s, whose %s is not I-JSON", body, w.Body, s)
		}
		if in.ScheduledRunTime != nil {
			at, err := time.Parse(time.RFC3339Nano, strings.ToUpper(*in.ScheduledRunTime))
			if err != nil || out.ScheduledRunTime == nil || !out.ScheduledRunTime.Equal(at.Truncate(time.Microsecond)) {
				t.Fatalf("201 for %q: scheduled_run_time %v", body, out.ScheduledRunTime)
			}
		}
	})
}

// jsonEscape matches a JSON string escape: \uXXXX, or a backslash and one
// other character.
var jsonEscape = regexp.MustCompile(`\\(u[0-9a-fA-F]{4}|.)`)

// loneSurrogate returns the first \u escape of a UTF-16 surrogate in the
// valid JSON text b that is not half of a pair (high, then low), or "".
func loneSurrogate(b []byte) string {
	var high string // a high surrogate's escape, waiting for its low half
	end := -1       // where the escape of high ended
	for _, m := range jsonEscape.FindAllSubmatchIndex(b, -1) {
		esc := string(b[m[0]:m[1]])
		var r uint64
		if len(esc) == 6 {
			r, _ = strconv.ParseUint(esc[2:], 16, 32)
		}
		isLow := 0xdc00 <= r && r <= 0xdfff
		switch {
		case high != "" && (m[0] != end || !isLow):
			return high
		case high != "":
			high = ""
		case 0xd800 <= r && r <= 0xdbff:
			high, end = esc, m[1]
		case isLow:
			return esc
		}
	}
	return high
}
