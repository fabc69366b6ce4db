package tasks_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/taskwheel/tasks"
)

// TestHandler_Messages checks the HostedHooks routes' input; their
// requests as HostedHooks' SDK sends them are in cmd/tasksd's
// TestHostedHooksSDK.
func TestHandler_Messages(t *testing.T) {
	t.Parallel()
	a := newAPI(t, tasks.NewMemoryStore(), apiOpts{noStart: true})

	t.Run("EventIDAndIdempotencyKey", func(t *testing.T) {
		body := `{"event_type":"x","data":{"a":1},"version":"1.0","event_id":"e-1"}`
		r := a.do("POST", "/apps/app_1/messages", body)
		r.wantStatus(t, http.StatusCreated)
		var m struct {
			ID      string  `json:"id"`
			EventID *string `json:"event_id"`
			Status  string  `json:"status"`
		}
		if err := json.Unmarshal(r.body, &m); err != nil {
			t.Fatal(err)
		}
		if m.EventID == nil || *m.EventID != "e-1" || m.Status != "scheduled" {
			t.Errorf("message %s: want event_id e-1, status scheduled", r.body)
		}
		// The task holds event_id as its idempotency key.
		task := a.do("GET", "/apps/app_1/tasks/"+m.ID, "").task(t, http.StatusOK)
		if task.IdempotencyKey != "e-1" || task.ScheduledRunTime != nil {
			t.Errorf("the message's task %+v: want idempotency key e-1 and no run time", task)
		}
		// A task created with the key as Idempotency-Key is that message.
		r = a.do("POST", "/apps/app_1/messages", `{"event_type":"x","data":{"a":1}}`, header("Idempotency-Key", "e-1"))
		r.wantStatus(t, http.StatusCreated)
		if r.header.Get("Idempotent-Replayed") != "true" {
			t.Errorf("the same message by Idempotency-Key: no Idempotent-Replayed")
		}
		a.do("POST", "/apps/app_1/messages", `{"event_type":"x","data":1,"event_id":"e-2"}`, header("Idempotency-Key", "e-3")).
			problem(t, http.StatusBadRequest, "event_id", "differ")
	})

	t.Run("BadInput", func(t *testing.T) {
		for _, tc := range []struct {
			body   string
			status int
			field  string
		}{
			{`{"data":1}`, 400, "event_type"},
			{`{"event_type":"x"}`, 400, "data"},
			{`{"event_type":"x","data":1,"version":1}`, 400, "version"},
			{`{"event_type":"x","data":1,"event_id":""}`, 400, "event_id"},
			{`{"event_type":"x","data":1,"event_id":7}`, 400, "event_id"},
			{`{"event_type":"x","data":1,"override_payload":"yes"}`, 400, "override_payload"},
			{`{"event_type":"x","data":1,"override_payload":true}`, 422, "override_payload"},
			{`{"event_type":"x","data":1,"scheduled_run_time":null}`, 400, "scheduled_run_time"},
			{`{"event_type":"no.route","data":1}`, 422, "event_type"},
			{`{"event_type":"..","data":1}`, 422, "event_type"},
		} {
			a.do("POST", "/apps/app_1/messages", tc.body).problem(t, tc.status, tc.field)
		}
		a.do("POST", "/apps/app_1/messages", `{"event_type":"x","data":1,"override_payload":false}`).wantStatus(t, http.StatusCreated)
	})

	t.Run("Paging", func(t *testing.T) {
		for _, tc := range []struct{ query, field string }{
			{"page=0", "page"}, {"page=x", "page"}, {"per_page=101", "per_page"}, {"per_page=0", "per_page"},
			{"offset=-1", "offset"}, {"offset=10001", "offset"}, {"page=2&per_page=100&offset=9901", "page"},
			{"limit=5", "limit"}, {"page=1&page=2", "page"},
		} {
			for _, path := range []string{"/apps/app_1/webhook_attempts?", "/apps/app_1/webhook_events?"} {
				a.do("GET", path+tc.query, "").problem(t, http.StatusBadRequest, tc.field)
			}
		}
		for _, path := range []string{"/apps/app_1/webhook_attempts", "/apps/app_1/webhook_events"} {
			r := a.do("GET", path+"?page=2&per_page=100&offset=9900", "")
			r.wantStatus(t, http.StatusOK)
			if string(r.body) != "[]\n" {
				t.Errorf("GET %s past the end: %s, want []", path, r.body)
			}
		}
	})

	t.Run("OtherApps", func(t *testing.T) {
		for _, path := range []string{"/apps/app_2/webhook_attempts", "/apps/app_2/webhook_events", "/apps/app_2/webhook_attempts/a.1.b"} {
			a.do("GET", path, "").problem(t, http.StatusNotFound, "")
		}
		a.do("POST", "/apps/app_2/messages", `{"event_type":"x","data":1}`).problem(t, http.StatusNotFound, "")
	})

	t.Run("EndpointVersionAndEvents", func(t *testing.T) {
		r := a.do("POST", "/apps/app_1/endpoints", `{"url":"https://example.com/h","enabled_events":["a.b","*"],"version":"2024-06"}`)
		r.wantStatus(t, http.StatusCreated)
		var ep struct {
			ID            string `json:"id"`
			Version       string `json:"version"`
			WebhookEvents []struct {
				ID        string `json:"id"`
				EventType string `json:"event_type"`
			} `json:"webhook_events"`
		}
		if err := json.Unmarshal(r.body, &ep); err != nil {
			t.Fatal(err)
		}
		if ep.Version != "2024-06" || len(ep.WebhookEvents) != 2 || ep.WebhookEvents[0].EventType != "a.b" || ep.WebhookEvents[1].ID != "*" {
			t.Errorf("endpoint %s: want version 2024-06 and webhook_events a.b and *", r.body)
		}
		a.do("PATCH", "/apps/app_1/endpoints/"+ep.ID, `{"version":"2025-01"}`).wantStatus(t, http.StatusOK)
		r = a.do("GET", "/apps/app_1/endpoints", "")
		r.wantStatus(t, http.StatusOK)
		var list struct {
			Data []struct {
				Version string `json:"version"`
			} `json:"data"`
		}
		if err := json.Unmarshal(r.body, &list); err != nil || len(list.Data) != 1 || list.Data[0].Version != "2025-01" {
			t.Errorf("GET endpoints %s: want data with the endpoint at version 2025-01 (%v)", r.body, err)
		}
		long := `"0123456789012345678901234567890123456789012345678901234567890123456789"`
		a.do("PATCH", "/apps/app_1/endpoints/"+ep.ID, `{"version":`+long+`}`).problem(t, http.StatusUnprocessableEntity, "version")
	})
}

// TestHandler_MessageKeyConflict_A14: a message whose idempotency key held
// another message's request is a 422 naming where the key came from: the
// event_id member, or the Idempotency-Key header.
func TestHandler_MessageKeyConflict_A14(t *testing.T) {
	t.Parallel()
	a := newAPI(t, tasks.NewMemoryStore(), apiOpts{noStart: true})
	a.do("POST", "/apps/app_1/messages", `{"event_type":"x","data":1,"event_id":"m-1"}`).wantStatus(t, http.StatusCreated)
	a.do("POST", "/apps/app_1/messages", `{"event_type":"x","data":2,"event_id":"m-1"}`).
		problem(t, http.StatusUnprocessableEntity, "event_id", "event_id")
	key := header("Idempotency-Key", "m-2")
	a.do("POST", "/apps/app_1/messages", `{"event_type":"x","data":1}`, key).wantStatus(t, http.StatusCreated)
	p := a.do("POST", "/apps/app_1/messages", `{"event_type":"x","data":2}`, key).
		problem(t, http.StatusUnprocessableEntity, "Idempotency-Key", "Idempotency-Key")
	if strings.Contains(p.Detail, "event_id") {
		t.Errorf("detail %q names event_id, which the request did not send", p.Detail)
	}
}
