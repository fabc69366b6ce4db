package tasks_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/taskwheel/tasks"
)

// TestHandler_EndpointLimits: rate_limit and max_in_flight on create and
// PATCH, shown on GET and in the list.
func TestHandler_EndpointLimits(t *testing.T) {
	t.Parallel()
	testEngineStores(t, func(t *testing.T, newStore func(testing.TB) tasks.Store) {
		a := newAPI(t, newStore(t), apiOpts{})
		decode := func(r *response) map[string]json.RawMessage {
			t.Helper()
			r.wantStatus(t, http.StatusOK)
			var m map[string]json.RawMessage
			if err := json.Unmarshal(r.body, &m); err != nil {
				t.Fatal(err)
			}
			return m
		}
		limits := func(what string, m map[string]json.RawMessage, rate, inFlight string) {
			t.Helper()
			if string(m["rate_limit"]) != rate || string(m["max_in_flight"]) != inFlight {
				t.Errorf("%s: got rate_limit %s, max_in_flight %s; want %s, %s", what, m["rate_limit"], m["max_in_flight"], rate, inFlight)
			}
		}
		r := a.do("POST", "/apps/app_1/endpoints", `{"url":"https://example.com/hook","rate_limit":2.5,"max_in_flight":3}`)
		r.wantStatus(t, http.StatusCreated)
		var created map[string]json.RawMessage
		if err := json.Unmarshal(r.body, &created); err != nil {
			t.Fatal(err)
		}
		limits("create", created, "2.5", "3")
		var id string
		json.Unmarshal(created["id"], &id)
		path := "/apps/app_1/endpoints/" + id
		limits("GET", decode(a.do("GET", path, "")), "2.5", "3")
		limits("PATCH of rate_limit", decode(a.do("PATCH", path, `{"rate_limit":10}`)), "10", "3")
		limits("PATCH of max_in_flight", decode(a.do("PATCH", path, `{"max_in_flight":0}`)), "10", "0")
		limits("PATCH of another field", decode(a.do("PATCH", path, `{"description":"x"}`)), "10", "0")
		limits("PATCH with null", decode(a.do("PATCH", path, `{"rate_limit":null}`)), "0", "0")
		r = a.do("GET", "/apps/app_1/endpoints", "")
		r.wantStatus(t, http.StatusOK)
		if !strings.Contains(string(r.body), `"rate_limit":0,"max_in_flight":0`) {
			t.Errorf("list: got %s, want the limits shown", r.body)
		}
		r = a.do("POST", "/apps/app_1/endpoints", `{"url":"https://example.com/other"}`)
		r.wantStatus(t, http.StatusCreated)
		json.Unmarshal(r.body, &created)
		limits("create without limits", created, "0", "0")
	})
}

// TestHandler_EndpointLimits_BadInput: bad limits get a 4xx problem naming
// the field, and change nothing.
func TestHandler_EndpointLimits_BadInput(t *testing.T) {
	t.Parallel()
	a := newAPI(t, tasks.NewMemoryStore(), apiOpts{})
	r := a.do("POST", "/apps/app_1/endpoints", `{"url":"https://example.com/hook","rate_limit":5,"max_in_flight":2}`)
	r.wantStatus(t, http.StatusCreated)
	var ep tasks.Endpoint
	if err := json.Unmarshal(r.body, &ep); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, body string
		status     int
		field      string
	}{
		{"negative rate", `{"rate_limit":-1}`, 422, "rate_limit"},
		{"rate as a string", `{"rate_limit":"fast"}`, 400, "rate_limit"},
		{"rate as NaN", `{"rate_limit":NaN}`, 400, ""},
		{"rate as a bool", `{"rate_limit":true}`, 400, "rate_limit"},
		{"huge rate", `{"rate_limit":1e300}`, 422, "rate_limit"},
		{"rate over a million", `{"rate_limit":1000001}`, 422, "rate_limit"},
		{"negative max_in_flight", `{"max_in_flight":-1}`, 422, "max_in_flight"},
		{"fractional max_in_flight", `{"max_in_flight":1.5}`, 400, "max_in_flight"},
		{"max_in_flight as a string", `{"max_in_flight":"2"}`, 400, "max_in_flight"},
		{"huge max_in_flight", `{"max_in_flight":99999999999999999999}`, 422, "max_in_flight"},
		{"max_in_flight over a million", `{"max_in_flight":1000001}`, 422, "max_in_flight"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := `{"url":"https://example.com/new",` + tc.body[1:]
			a.do("POST", "/apps/app_1/endpoints", body).problem(t, tc.status, tc.field)
			a.do("PATCH", "/apps/app_1/endpoints/"+ep.ID, tc.body).problem(t, tc.status, tc.field)
		})
	}
	r = a.do("GET", "/apps/app_1/endpoints", "")
	var list struct{ Data []*tasks.Endpoint }
	if err := json.Unmarshal(r.body, &list); err != nil || len(list.Data) != 1 || list.Data[0].RateLimit != 5 || list.Data[0].MaxInFlight != 2 {
		t.Errorf("endpoints after bad input: got %s, want the one, unchanged", r.body)
	}
}
