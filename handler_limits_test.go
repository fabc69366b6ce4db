package tasks_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
)

// TestHandler_Limits: PUT, GET, the list and DELETE of an app's limits,
// and a task's flow_key and wait_reason in the task API.
func TestHandler_Limits(t *testing.T) {
	t.Parallel()
	testEngineStores(t, func(t *testing.T, newStore func(testing.TB) tasks.Store) {
		a := newAPI(t, newStore(t), apiOpts{})
		decode := func(r *response) *tasks.Limit {
			t.Helper()
			r.wantStatus(t, http.StatusOK)
			var l tasks.Limit
			if err := json.Unmarshal(r.body, &l); err != nil {
				t.Fatal(err)
			}
			return &l
		}
		l := decode(a.do("PUT", "/apps/app_1/limits/partner.api", `{"rate":2.5,"concurrency":3}`))
		if l.AppID != "app_1" || l.Key != "partner.api" || l.Rate != 2.5 || l.Burst != 3 || l.Concurrency != 3 || l.Paused {
			t.Errorf("PUT: got %+v, want rate 2.5, burst 3 (the default), concurrency 3", l)
		}
		decode(a.do("PUT", "/apps/app_1/limits/partner.api", `{"paused":true}`))
		task := a.do("POST", "/apps/app_1/tasks", `{"event_type":"x","flow_key":"partner.api","data":{}}`).task(t, http.StatusCreated)
		if task.FlowKey != "partner.api" {
			t.Errorf("created task's flow_key: got %q, want partner.api", task.FlowKey)
		}
		other := a.do("POST", "/apps/app_1/tasks", `{"event_type":"x","data":{}}`).task(t, http.StatusCreated)
		if other.FlowKey != "x" {
			t.Errorf("flow_key of a task without one: got %q, want its event type", other.FlowKey)
		}
		waitFor(t, 10*time.Second, "the task of the paused key to wait, with a reason", func() bool {
			got := a.do("GET", "/apps/app_1/tasks/"+task.ID, "").task(t, http.StatusOK)
			return got.State == tasks.StateScheduled && got.WaitReason != "" && got.Attempts == 0
		})
		l = decode(a.do("GET", "/apps/app_1/limits/partner.api", ""))
		if l.Waiting != 1 {
			t.Errorf("GET: %d waiting, want 1", l.Waiting)
		}
		if !l.Paused || l.Rate != 0 || l.Concurrency != 0 {
			t.Errorf("GET after PUT {paused}: got %+v, want paused and nothing else", l)
		}
		r := a.do("GET", "/apps/app_1/limits", "")
		r.wantStatus(t, http.StatusOK)
		var list struct{ Data []*tasks.Limit }
		if err := json.Unmarshal(r.body, &list); err != nil || len(list.Data) != 1 || list.Data[0].Key != "partner.api" {
			t.Errorf("list: %s", r.body)
		}
		if r := a.do("GET", "/apps/app_2/limits", "", withKey(keyAll)); string(r.body) != `{"data":[]}`+"\n" {
			t.Errorf("app_2's limits: %s", r.body)
		}
		a.do("DELETE", "/apps/app_1/limits/partner.api", "").wantStatus(t, http.StatusNoContent)
		a.do("GET", "/apps/app_1/limits/partner.api", "").problem(t, http.StatusNotFound, "key")
		a.do("DELETE", "/apps/app_1/limits/partner.api", "").problem(t, http.StatusNotFound, "key")
	})
}

// TestHandler_Limits_BadInput_L3: bad limits get a 4xx problem naming the
// field, and change nothing.
func TestHandler_Limits_BadInput_L3(t *testing.T) {
	t.Parallel()
	a := newAPI(t, tasks.NewMemoryStore(), apiOpts{})
	long := strings.Repeat("k", 256)
	for _, tc := range []struct {
		name, path, body string
		status           int
		field            string
	}{
		{"negative rate", "/apps/app_1/limits/k", `{"rate":-1}`, 422, "rate"},
		{"rate as a string", "/apps/app_1/limits/k", `{"rate":"fast"}`, 400, "rate"},
		{"rate as a bool", "/apps/app_1/limits/k", `{"rate":true}`, 400, "rate"},
		{"huge rate", "/apps/app_1/limits/k", `{"rate":1e300}`, 422, "rate"},
		{"burst without rate", "/apps/app_1/limits/k", `{"burst":5}`, 422, "burst"},
		{"negative burst", "/apps/app_1/limits/k", `{"rate":1,"burst":-5}`, 422, "burst"},
		{"fractional burst", "/apps/app_1/limits/k", `{"rate":1,"burst":1.5}`, 400, "burst"},
		{"negative concurrency", "/apps/app_1/limits/k", `{"concurrency":-1}`, 422, "concurrency"},
		{"huge concurrency", "/apps/app_1/limits/k", `{"concurrency":99999999999999999999}`, 422, "concurrency"},
		{"paused as a string", "/apps/app_1/limits/k", `{"paused":"yes"}`, 400, "paused"},
		{"unknown field", "/apps/app_1/limits/k", `{"rps":1}`, 400, "rps"},
		{"key over 255 bytes", "/apps/app_1/limits/" + long, `{"rate":1}`, 422, "key"},
		{"key with a control character", "/apps/app_1/limits/a%01b", `{"rate":1}`, 422, "key"},
		{"another app", "/apps/app_2/limits/k", `{"rate":1}`, 404, "app_id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a.do("PUT", tc.path, tc.body).problem(t, tc.status, tc.field)
		})
	}
	a.do("GET", "/apps/app_1/limits/"+long, "").problem(t, 422, "key")
	if r := a.do("GET", "/apps/app_1/limits", ""); string(r.body) != `{"data":[]}`+"\n" {
		t.Errorf("limits after bad input: %s, want none", r.body)
	}
	a.do("POST", "/apps/app_1/tasks", `{"event_type":"x","data":{},"flow_key":"`+long+`"}`).problem(t, 422, "flow_key")
	a.do("POST", "/apps/app_1/tasks", `{"event_type":"x","data":{},"flow_key":7}`).problem(t, 400, "flow_key")
}
