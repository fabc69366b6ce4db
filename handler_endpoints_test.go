package tasks_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/webhook"
)

// TestHandler_Endpoints: the endpoint routes; the secret is shown only by
// create and rotate_secret.
func TestHandler_Endpoints(t *testing.T) {
	t.Parallel()
	testEngineStores(t, func(t *testing.T, newStore func(testing.TB) tasks.Store) {
		a := newAPI(t, newStore(t), apiOpts{})
		decode := func(r *response, status int) (*tasks.Endpoint, map[string]json.RawMessage) {
			t.Helper()
			r.wantStatus(t, status)
			var ep tasks.Endpoint
			var raw map[string]json.RawMessage
			if err := json.Unmarshal(r.body, &ep); err != nil {
				t.Fatal(err)
			}
			json.Unmarshal(r.body, &raw)
			return &ep, raw
		}
		created, raw := decode(a.do("POST", "/apps/app_1/endpoints", `{"url":"https://example.com/hook","description":"orders","enabled_events":["order.paid","order.refunded"]}`), http.StatusCreated)
		if err := webhook.ValidateSecret(created.Secret); err != nil {
			t.Errorf("created endpoint's secret %q: %v", created.Secret, err)
		}
		if created.URL != "https://example.com/hook" || created.Description != "orders" || created.Status != tasks.EndpointActive ||
			!slices.Equal(created.EnabledEvents, []string{"order.paid", "order.refunded"}) || created.AppID != "app_1" {
			t.Errorf("created %+v", created)
		}
		for _, name := range []string{"id", "url", "description", "enabled_events", "status", "secret", "created_at"} {
			if _, ok := raw[name]; !ok {
				t.Errorf("create answer %v has no %s", raw, name)
			}
		}
		noSecret := func(r *response) {
			t.Helper()
			if bytes.Contains(r.body, []byte("secret")) || bytes.Contains(r.body, []byte("whsec_")) {
				t.Errorf("answer %s shows the secret", r.body)
			}
		}
		path := "/apps/app_1/endpoints/" + created.ID

		r := a.do("GET", path, "")
		got, _ := decode(r, http.StatusOK)
		noSecret(r)
		if got.ID != created.ID || got.URL != created.URL {
			t.Errorf("GET = %+v", got)
		}
		r = a.do("GET", "/apps/app_1/endpoints", "")
		r.wantStatus(t, http.StatusOK)
		noSecret(r)
		var list struct {
			Data []*tasks.Endpoint `json:"data"`
		}
		if err := json.Unmarshal(r.body, &list); err != nil || len(list.Data) != 1 || list.Data[0].ID != created.ID {
			t.Errorf("list = %s", r.body)
		}
		if r := a.do("GET", "/apps/app_2/endpoints", "", withKey(keyAll)); !bytes.Equal(r.body, []byte(`{"data":[]}`+"\n")) {
			t.Errorf("app_2's endpoints: %s", r.body)
		}

		r = a.do("PATCH", path, `{"enabled_events":"*","status":"inactive","description":""}`)
		patched, _ := decode(r, http.StatusOK)
		noSecret(r)
		if !slices.Equal(patched.EnabledEvents, []string{"*"}) || patched.Status != tasks.EndpointInactive || patched.Description != "" || patched.URL != created.URL {
			t.Errorf("PATCH = %+v", patched)
		}

		rotated, _ := decode(a.do("POST", path+"/rotate_secret", ""), http.StatusOK)
		if rotated.Secret == "" || rotated.Secret == created.Secret || webhook.ValidateSecret(rotated.Secret) != nil {
			t.Errorf("rotated secret %q (was %q)", rotated.Secret, created.Secret)
		}
		again, _ := decode(a.do("POST", path+"/rotate_secret", `{"overlap_seconds":0}`), http.StatusOK)
		if again.Secret == rotated.Secret {
			t.Error("second rotation kept the secret")
		}
		noSecret(a.do("GET", path, ""))

		// Validation: the URL (W1, W7) and the other fields, named.
		for _, tt := range []struct{ body, field string }{
			{`{"url":"http://127.0.0.1/hook"}`, "url"},
			{`{"url":"http://169.254.169.254/latest/meta-data"}`, "url"},
			{`{"url":"http://[::ffff:10.0.0.1]/"}`, "url"},
			{`{"url":"http://0x7f000001/"}`, "url"},
			{`{"url":"ftp://example.com/"}`, "url"},
			{`{"url":"https://user:pass@example.com/"}`, "url"},
			{`{"url":"https://example.com/\u0000"}`, "url"},
			{`{"url":"https://example.com/` + strings.Repeat("a", 5000) + `"}`, "url"},
			{`{"url":"https://example.com/","status":"paused"}`, "status"},
			{`{"url":"https://example.com/","enabled_events":[]}`, "enabled_events"},
			{`{"url":"https://example.com/","enabled_events":["a b"]}`, "enabled_events"},
			{`{"url":"https://example.com/","description":"` + strings.Repeat("d", tasks.MaxDescriptionLength+1) + `"}`, "description"},
		} {
			a.do("POST", "/apps/app_1/endpoints", tt.body).problem(t, http.StatusUnprocessableEntity, tt.field)
		}
		for _, tt := range []struct{ body, field string }{
			{`{}`, "url"},
			{`{"url":null}`, "url"},
			{`{"url":"https://example.com/","enabled_events":"order.paid"}`, "enabled_events"},
			{`{"url":"https://example.com/","enabled_events":[1]}`, "enabled_events"},
			{`{"url":"https://example.com/","enabled_events":{}}`, "enabled_events"},
			{`{"url":"https://example.com/","secret":"whsec_x"}`, "secret"},
			{`{"URL":"https://example.com/"}`, "URL"},
		} {
			a.do("POST", "/apps/app_1/endpoints", tt.body).problem(t, http.StatusBadRequest, tt.field)
		}
		a.do("PATCH", path, `{"url":"http://10.0.0.1/"}`).problem(t, http.StatusUnprocessableEntity, "url")
		a.do("PATCH", path, `{"url":null}`).problem(t, http.StatusBadRequest, "url")
		a.do("PATCH", path, `{"secret":"whsec_x"}`).problem(t, http.StatusBadRequest, "secret")

		// Another app's endpoint is a 404.
		all := withKey(keyAll)
		for _, req := range []struct{ method, path, body string }{
			{"GET", "/apps/app_2/endpoints/" + created.ID, ""},
			{"PATCH", "/apps/app_2/endpoints/" + created.ID, `{"description":"x"}`},
			{"POST", "/apps/app_2/endpoints/" + created.ID + "/rotate_secret", ""},
			{"DELETE", "/apps/app_2/endpoints/" + created.ID, ""},
		} {
			a.do(req.method, req.path, req.body, all).problem(t, http.StatusNotFound, "")
		}

		if r := a.do("DELETE", path, ""); r.status != http.StatusNoContent || len(r.body) != 0 {
			t.Errorf("DELETE = %d %s", r.status, r.body)
		}
		a.do("GET", path, "").problem(t, http.StatusNotFound, "")
		a.do("DELETE", path, "").problem(t, http.StatusNotFound, "")
	})
}

// TestHandler_EndpointIDN_W7: an endpoint URL whose host is an
// internationalized name is stored with the name in its ASCII (xn--) form;
// an invalid one gets a 422 that says so; control characters still get 422.
func TestHandler_EndpointIDN_W7(t *testing.T) {
	t.Parallel()
	testEngineStores(t, func(t *testing.T, newStore func(testing.TB) tasks.Store) {
		a := newAPI(t, newStore(t), apiOpts{})
		var ep tasks.Endpoint
		r := a.do("POST", "/apps/app_1/endpoints", `{"url":"https://B\u00fccher.example:8443/hook?q=1"}`)
		r.wantStatus(t, http.StatusCreated)
		if err := json.Unmarshal(r.body, &ep); err != nil {
			t.Fatal(err)
		}
		const stored = "https://xn--bcher-kva.example:8443/hook?q=1"
		if ep.URL != stored {
			t.Errorf("created endpoint's url %q, want %q", ep.URL, stored)
		}
		if got, err := a.e.Endpoint(context.Background(), ep.ID); err != nil || got.URL != stored {
			t.Errorf("stored endpoint: %v, %v; want url %q", got, err, stored)
		}
		r = a.do("PATCH", "/apps/app_1/endpoints/"+ep.ID, `{"url":"https://\u043f\u0440\u0438\u043c\u0435\u0440.\u0440\u0444/hook"}`)
		r.wantStatus(t, http.StatusOK)
		if err := json.Unmarshal(r.body, &ep); err != nil || ep.URL != "https://xn--e1afmkfd.xn--p1ai/hook" {
			t.Errorf("updated endpoint's url %q (%v), want https://xn--e1afmkfd.xn--p1ai/hook", ep.URL, err)
		}

		for _, tt := range []struct{ url, mention string }{
			{`https://b\u00fccher-.example/`, `host "bücher-.example" is not a valid internationalized domain name`},
			{`https://\uff11\uff12\uff17.0.0.1/`, "127.0.0.1 is not allowed"},
			{`https://b\u00fccher.example/\u0007`, `contains '\a'`},
			{`https://b\u00fccher\u0000.example/`, `contains '\x00'`},
		} {
			a.do("POST", "/apps/app_1/endpoints", `{"url":"`+tt.url+`"}`).problem(t, http.StatusUnprocessableEntity, "url", tt.mention)
		}
	})
}

// TestHandler_EndpointHealth: an endpoint the engine disabled shows why and
// since when; PATCH {"status":"active"} re-enables it, deliveries resume,
// and last_success_at shows that one was acknowledged.
func TestHandler_EndpointHealth(t *testing.T) {
	t.Parallel()
	testEngineStores(t, func(t *testing.T, newStore func(testing.TB) tasks.Store) {
		rc := newSwitchReceiver(t, http.StatusGone)
		a := newAPI(t, newStore(t), apiOpts{cfg: webhookConfig(10 * time.Millisecond)})
		fields := func(r *response, status int) map[string]json.RawMessage {
			t.Helper()
			r.wantStatus(t, status)
			var raw map[string]json.RawMessage
			if err := json.Unmarshal(r.body, &raw); err != nil {
				t.Fatal(err)
			}
			return raw
		}
		created := fields(a.do("POST", "/apps/app_1/endpoints", `{"url":"`+rc.URL+`","enabled_events":["hook"]}`), http.StatusCreated)
		for name, want := range map[string]string{"failing_since": "null", "last_success_at": "null", "disabled_at": "null", "disabled_reason": `""`} {
			if got := string(created[name]); got != want {
				t.Errorf("created endpoint's %s: got %s, want %s", name, got, want)
			}
		}
		var id string
		json.Unmarshal(created["id"], &id)
		path := "/apps/app_1/endpoints/" + id

		task := a.createTask(`{"event_type":"hook","data":{}}`)
		waitState(t, a.e, task.ID, tasks.StateFailed)
		for _, r := range []*response{a.do("GET", path, ""), a.do("GET", "/apps/app_1/endpoints", "")} {
			r.wantStatus(t, http.StatusOK)
			for _, want := range []string{`"status":"inactive"`, `"disabled_reason":"answered 410 Gone"`, `"failing_since":"20`, `"disabled_at":"20`} {
				if !bytes.Contains(r.body, []byte(want)) {
					t.Errorf("answer %s: want %s in it", r.body, want)
				}
			}
		}

		rc.code.Store(http.StatusNoContent)
		enabled := fields(a.do("PATCH", path, `{"status":"active"}`), http.StatusOK)
		for name, want := range map[string]string{"status": `"active"`, "failing_since": "null", "disabled_at": "null", "disabled_reason": `""`} {
			if got := string(enabled[name]); got != want {
				t.Errorf("re-enabled endpoint's %s: got %s, want %s", name, got, want)
			}
		}
		before := rc.received.Load()
		task = a.createTask(`{"event_type":"hook","data":{}}`)
		waitState(t, a.e, task.ID, tasks.StateCompleted)
		if n := rc.received.Load() - before; n != 1 {
			t.Errorf("the re-enabled endpoint received %d deliveries, want 1", n)
		}
		if r := a.do("GET", path, ""); !bytes.Contains(r.body, []byte(`"last_success_at":"20`)) {
			t.Errorf("answer %s after an acknowledged delivery: want last_success_at set in it", r.body)
		}
	})
}
