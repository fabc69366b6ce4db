package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/taskwheel/tasks/internal/testdb"
)

// HostedHooks' Node SDK (HostedHooks/hostedhooks-node, src/index.ts),
// request for request: sdk sends what its get, post and patch send, and
// the tests read the fields its types declare. One test per method that
// tasksd supports; the README's "HostedHooks SDK" table lists the others.

// sdk is HostedHooks' SDK pointed at a tasksd: baseUrl is
// <tasksd>/hostedhooks/api/v1.
type sdk struct {
	t       *testing.T
	baseURL string
	apiKey  string
}

// sdkError is what the SDK throws for a status of 400 or more: the body's
// "error" member and the status.
type sdkError struct {
	Error any
	Code  int
}

// serializeQuery is the SDK's: each member as name=value, in order.
func serializeQuery(query [][2]string) string {
	var parts []string
	for _, kv := range query {
		parts = append(parts, url.QueryEscape(kv[0])+"="+url.QueryEscape(kv[1]))
	}
	return "?" + strings.Join(parts, "&")
}

// get is the SDK's get: GET with only the Authorization header, and a
// query when one is given.
func (c *sdk) get(path string, query [][2]string, out any) *sdkError {
	c.t.Helper()
	q := ""
	if query != nil {
		q = serializeQuery(query)
	}
	req, err := http.NewRequestWithContext(c.t.Context(), "GET", c.baseURL+path+q, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.apiKey)
	return c.do(req, out)
}

// post is the SDK's post: JSON.stringify(params), with Content-Type
// application/json and the Authorization header.
func (c *sdk) post(path string, params any, out any) *sdkError {
	c.t.Helper()
	body, err := json.Marshal(params)
	if err != nil {
		c.t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(c.t.Context(), "POST", c.baseURL+path, bytes.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.apiKey)
	return c.do(req, out)
}

// do sends req and, as the SDK does, parses the answer as JSON: for a
// status of 400 or more it returns the SDK's thrown {error, code}, and
// otherwise decodes the answer into out.
func (c *sdk) do(req *http.Request, out any) *sdkError {
	c.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	if resp.StatusCode >= 400 {
		var j struct{ Error any }
		if err := json.Unmarshal(body, &j); err != nil {
			c.t.Fatalf("%s %s: %d answer %s is not JSON, which response.json() would throw on: %v", req.Method, req.URL, resp.StatusCode, body, err)
		}
		return &sdkError{j.Error, resp.StatusCode}
	}
	if err := json.Unmarshal(body, out); err != nil {
		c.t.Fatalf("%s %s: answer %s does not decode as the SDK's type %T: %v", req.Method, req.URL, body, out, err)
	}
	return nil
}

// mustOK fails the test when the SDK would have thrown.
func mustOK(t *testing.T, method string, err *sdkError) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s threw {error: %v, code: %d}", method, err.Error, err.Code)
	}
}

// The SDK's types, as declared in src/index.ts.
type (
	hhWebhookEvent struct {
		ID        string `json:"id"`
		EventType string `json:"event_type"`
		CreatedAt string `json:"created_at"`
	}
	hhEndpoint struct {
		ID            string           `json:"id"`
		URL           string           `json:"url"`
		Description   string           `json:"description"`
		Version       string           `json:"version"`
		Status        string           `json:"status"` // "active" | "inactive"
		CreatedAt     string           `json:"created_at"`
		WebhookEvents []hhWebhookEvent `json:"webhook_events"`
	}
	hhMessage struct {
		ID              string          `json:"id"`
		Data            json.RawMessage `json:"data"`
		EventType       string          `json:"event_type"`
		Version         string          `json:"version"`
		EventID         string          `json:"event_id"`
		OverridePayload bool            `json:"override_payload"`
		CreatedAt       string          `json:"created_at"`
	}
	hhWebhookAttempt struct {
		ID            string `json:"id"`
		StatusCode    string `json:"status_code"`
		RetryStatus   string `json:"retry_status"`   // "scheduled" | "failed"
		StatusMessage string `json:"status_message"` // "success" | "failed"
		Payload       struct {
			Type    string          `json:"type"`
			Version string          `json:"version"`
			Created string          `json:"created"`
			Data    json.RawMessage `json:"data"`
		} `json:"payload"`
		Response     string `json:"response"`
		ErrorMessage string `json:"error_message"`
		AppID        string `json:"app_id"`
		EndpointID   string `json:"endpoint_id"`
		MessageID    string `json:"message_id"`
		CreatedAt    string `json:"created_at"`
	}
)

// hhFixture is a tasksd with an app whose endpoints receive HostedHooks
// messages: one that acknowledges user.created and one that refuses
// every delivery of order.paid.
type hhFixture struct {
	s      *server
	sdk    *sdk
	good   hhEndpoint // at ok, version "1.0"
	failed hhEndpoint // at fail, version "2.0"
	got    chan []byte
}

// newHHFixture starts tasksd on SQLite, or on PostgreSQL when postgres,
// with the endpoints of hhFixture, created through tasksd's own API: the
// SDK creates endpoints only through subscriptions, which tasksd has not.
func newHHFixture(t *testing.T, postgres bool) *hhFixture {
	f := &hhFixture{got: make(chan []byte, 10)}
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/fail" {
			http.Error(w, "nope", http.StatusGone) // 410: fails the task at once, and disables the endpoint
			return
		}
		f.got <- body
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(recv.Close)
	if postgres {
		_, dsn := testdb.PostgresDSN(t)
		const key = "tw_hostedhooks_sdk_test_key"
		f.s = startServer(t, []string{"-addr", "127.0.0.1:0", "-postgres", dsn, "-allow-private-endpoints"},
			map[string]string{"TASKS_API_KEY": key})
		f.s.key = key
	} else {
		db := filepath.Join(t.TempDir(), "tasks.db")
		f.s = startServer(t, []string{"-addr", "127.0.0.1:0", "-db", db, "-allow-private-endpoints"}, nil)
	}
	root := strings.TrimSuffix(f.s.api, apiPrefix)
	f.sdk = &sdk{t: t, baseURL: root + hostedHooksPrefix, apiKey: f.s.key}
	f.s.call(t, "POST", "/apps/app_1/endpoints", f.s.key, map[string]any{
		"url": recv.URL + "/ok", "description": "acknowledges", "version": "1.0",
		"enabled_events": []string{"user.created", "user.deleted"},
	}, http.StatusCreated, &f.good)
	f.s.call(t, "POST", "/apps/app_1/endpoints", f.s.key, map[string]any{
		"url": recv.URL + "/fail", "description": "refuses", "version": "2.0",
		"enabled_events": []string{"order.paid"},
	}, http.StatusCreated, &f.failed)
	return f
}

// message sends a message with create_app_message and waits until its
// task is finished.
func (f *hhFixture) message(t *testing.T, params map[string]any) hhMessage {
	t.Helper()
	var m hhMessage
	mustOK(t, "create_app_message", f.sdk.post("/apps/app_1/messages", params, &m))
	deadline := time.Now().Add(15 * time.Second)
	for {
		var task struct{ Status string }
		f.s.call(t, "GET", "/apps/app_1/tasks/"+m.ID, f.s.key, nil, http.StatusOK, &task)
		if task.Status == "completed" || task.Status == "failed" {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("message %s still %s after 15s; logs:\n%s", m.ID, task.Status, f.s.logs.String())
		}
		time.Sleep(20 * time.Millisecond) // polling an API that has no wait
	}
}

func TestHostedHooksSDK(t *testing.T) {
	t.Parallel()
	t.Run("SQLite", func(t *testing.T) {
		t.Parallel()
		testHostedHooksSDK(t, newHHFixture(t, false))
	})
	t.Run("Postgres", func(t *testing.T) {
		t.Parallel()
		testHostedHooksSDK(t, newHHFixture(t, true))
	})
}

func testHostedHooksSDK(t *testing.T, f *hhFixture) {
	c := f.sdk
	var sent, refused hhMessage // set by create_app_message

	t.Run("create_app_message", func(t *testing.T) {
		// As HostedHooks documents a message.
		sent = f.message(t, map[string]any{
			"version": "1.0", "event_type": "user.created", "event_id": "12323124151",
			"data": map[string]any{"foo": "bar"},
		})
		if sent.ID == "" || sent.EventType != "user.created" || sent.Version != "1.0" || sent.EventID != "12323124151" ||
			sent.OverridePayload || sent.CreatedAt == "" {
			t.Errorf("message %+v, want user.created, version 1.0, event_id 12323124151, override_payload false, an id and created_at", sent)
		}
		assertJSONEqual(t, "message data", sent.Data, `{"foo":"bar"}`)
		select {
		case body := <-f.got:
			var task struct {
				ID   string          `json:"id"`
				Data json.RawMessage `json:"data"`
			}
			if err := json.Unmarshal(body, &task); err != nil || task.ID != sent.ID {
				t.Errorf("delivery %s: want the message's task %s (%v)", body, sent.ID, err)
			}
			assertJSONEqual(t, "delivered data", task.Data, `{"foo":"bar"}`)
		default:
			t.Errorf("the message's task completed without a delivery to the receiver")
		}

		// The same event_id again: the same message, no second delivery.
		var again hhMessage
		mustOK(t, "create_app_message", c.post("/apps/app_1/messages", map[string]any{
			"version": "1.0", "event_type": "user.created", "event_id": "12323124151",
			"data": map[string]any{"foo": "bar"},
		}, &again))
		if again.ID != sent.ID {
			t.Errorf("the same event_id again: message %s, want %s", again.ID, sent.ID)
		}
		// Another body with it: the SDK's error, with the error member.
		err := c.post("/apps/app_1/messages", map[string]any{
			"version": "1.0", "event_type": "user.created", "event_id": "12323124151", "data": map[string]any{"foo": "baz"},
		}, &again)
		if err == nil || err.Code != http.StatusUnprocessableEntity || !strings.Contains(fmt.Sprint(err.Error), "event_id") {
			t.Errorf("another message with the same event_id: got %+v, want a 422 whose error names event_id", err)
		}

		// Without event_id, optional in the SDK; to the endpoint that
		// refuses.
		refused = f.message(t, map[string]any{"version": "2.0", "event_type": "order.paid", "data": map[string]any{"n": 1}})
		if refused.EventID != "" {
			t.Errorf("message without event_id: event_id %q, want none", refused.EventID)
		}

		// Errors carry the error member the SDK throws.
		for _, tc := range []struct {
			params map[string]any
			code   int
			says   string
		}{
			{map[string]any{"version": "1.0", "event_type": "nobody.listens", "data": map[string]any{}}, 422, "no route"},
			{map[string]any{"version": "1.0", "data": map[string]any{}}, 400, "event_type is required"},
			{map[string]any{"version": "1.0", "event_type": "user.created", "data": 1, "override_payload": true}, 422, "override_payload"},
		} {
			var m hhMessage
			err := c.post("/apps/app_1/messages", tc.params, &m)
			if err == nil || err.Code != tc.code || !strings.Contains(fmt.Sprint(err.Error), tc.says) {
				t.Errorf("create_app_message(%v): threw %+v, want code %d and an error saying %q", tc.params, err, tc.code, tc.says)
			}
		}
	})

	var attempts []hhWebhookAttempt
	t.Run("list_webhook_attempts", func(t *testing.T) {
		mustOK(t, "list_webhook_attempts", c.get("/apps/app_1/webhook_attempts", nil, &attempts))
		if len(attempts) != 2 {
			t.Fatalf("webhook attempts %+v, want two: the refused one, then the acknowledged one", attempts)
		}
		bad, good := attempts[0], attempts[1]
		if good.ID == "" || good.StatusCode != "204" || good.StatusMessage != "success" || good.RetryStatus != "" ||
			good.AppID != "app_1" || good.EndpointID != f.good.ID || good.MessageID != sent.ID || good.CreatedAt == "" ||
			good.Payload.Type != "user.created" || good.Payload.Version != "1.0" || good.Payload.Created == "" || good.ErrorMessage != "" {
			t.Errorf("acknowledged attempt %+v", good)
		}
		assertJSONEqual(t, "acknowledged attempt's payload data", good.Payload.Data, `{"foo":"bar"}`)
		if bad.StatusCode != "410" || bad.StatusMessage != "failed" || bad.RetryStatus != "failed" ||
			bad.EndpointID != f.failed.ID || bad.MessageID != refused.ID || bad.Payload.Version != "2.0" ||
			bad.ErrorMessage == "" || !strings.Contains(bad.Response, "nope") {
			t.Errorf("refused attempt %+v", bad)
		}

		// Paging as the SDK's PaginationQuery sends it.
		for _, tc := range []struct {
			query [][2]string
			want  []string
		}{
			{[][2]string{{"page", "1"}, {"per_page", "1"}}, []string{bad.ID}},
			{[][2]string{{"page", "2"}, {"per_page", "1"}}, []string{good.ID}},
			{[][2]string{{"page", "3"}, {"per_page", "1"}}, nil},
			{[][2]string{{"offset", "1"}}, []string{good.ID}},
			{[][2]string{{"page", "1"}, {"per_page", "1"}, {"offset", "1"}}, []string{good.ID}},
		} {
			var page []hhWebhookAttempt
			mustOK(t, "list_webhook_attempts", c.get("/apps/app_1/webhook_attempts", tc.query, &page))
			var ids []string
			for _, a := range page {
				ids = append(ids, a.ID)
			}
			if !slices.Equal(ids, tc.want) {
				t.Errorf("list_webhook_attempts(%v): got %v, want %v", tc.query, ids, tc.want)
			}
		}
		var none []hhWebhookAttempt
		if err := c.get("/apps/app_1/webhook_attempts", [][2]string{{"per_page", "0"}}, &none); err == nil ||
			err.Code != http.StatusBadRequest || !strings.Contains(fmt.Sprint(err.Error), "per_page") {
			t.Errorf("per_page 0: threw %+v, want a 400 whose error names per_page", err)
		}
	})

	t.Run("get_webhook_attempt", func(t *testing.T) {
		if len(attempts) != 2 {
			t.Skip("list_webhook_attempts failed")
		}
		for _, want := range attempts {
			var got hhWebhookAttempt
			mustOK(t, "get_webhook_attempt", c.get("/apps/app_1/webhook_attempts/"+want.ID, nil, &got))
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("get_webhook_attempt(%s):\n got %+v\nwant %+v", want.ID, got, want)
			}
		}
		var got hhWebhookAttempt
		for _, path := range []string{
			"/apps/app_1/webhook_attempts/" + sent.ID + ".9." + f.good.ID, // no such attempt number
			"/apps/app_1/webhook_attempts/nonsense",
			"/apps/app_2/webhook_attempts/" + attempts[1].ID, // another app's
		} {
			if err := c.get(path, nil, &got); err == nil || err.Code != http.StatusNotFound || err.Error == nil {
				t.Errorf("GET %s: threw %+v, want a 404 with an error", path, err)
			}
		}
	})

	t.Run("list_webhook_events", func(t *testing.T) {
		var events []hhWebhookEvent
		mustOK(t, "list_webhook_events", c.get("/apps/app_1/webhook_events", nil, &events))
		var types []string
		for _, e := range events {
			if e.ID == "" || e.CreatedAt == "" {
				t.Errorf("webhook event %+v: want an id and created_at", e)
			}
			types = append(types, e.EventType)
		}
		if want := []string{"user.created", "user.deleted", "order.paid"}; !slices.Equal(types, want) {
			t.Errorf("webhook events %v, want %v: by the creation of the oldest endpoint naming each", types, want)
		}
		mustOK(t, "list_webhook_events", c.get("/apps/app_1/webhook_events", [][2]string{{"page", "2"}, {"per_page", "2"}}, &events))
		if len(events) != 1 || events[0].EventType != "order.paid" {
			t.Errorf("webhook events, page 2 of 2 a page: %+v, want order.paid", events)
		}
	})

	t.Run("list_endpoints", func(t *testing.T) {
		var eps []hhEndpoint
		mustOK(t, "list_endpoints", c.get("/apps/app_1/endpoints", nil, &eps))
		if len(eps) != 2 {
			t.Fatalf("endpoints %+v, want two", eps)
		}
		good, failed := eps[0], eps[1]
		if good.ID != f.good.ID || good.URL != f.good.URL || good.Description != "acknowledges" || good.Version != "1.0" ||
			good.Status != "active" || good.CreatedAt == "" || len(good.WebhookEvents) != 2 ||
			good.WebhookEvents[0].EventType != "user.created" || good.WebhookEvents[1].EventType != "user.deleted" {
			t.Errorf("endpoint %+v", good)
		}
		if failed.ID != f.failed.ID || failed.Version != "2.0" || failed.Status != "inactive" { // 410 Gone disabled it
			t.Errorf("endpoint %+v, want the refusing one, version 2.0, inactive", failed)
		}
		mustOK(t, "list_endpoints", c.get("/apps/app_1/endpoints", [][2]string{{"page", "2"}, {"per_page", "1"}}, &eps))
		if len(eps) != 1 || eps[0].ID != f.failed.ID {
			t.Errorf("endpoints, page 2 of 1 a page: %+v, want the second endpoint", eps)
		}
		// tasksd's own API keeps its {"data": [...]}.
		var ours struct{ Data []hhEndpoint }
		f.s.call(t, "GET", "/apps/app_1/endpoints", f.s.key, nil, http.StatusOK, &ours)
		if len(ours.Data) != 2 {
			t.Errorf("GET /api/v1/apps/app_1/endpoints: %+v, want two endpoints in data", ours)
		}
	})

	t.Run("get_endpoint", func(t *testing.T) {
		var ep hhEndpoint
		mustOK(t, "get_endpoint", c.get("/apps/app_1/endpoints/"+f.good.ID, nil, &ep))
		if ep.ID != f.good.ID || ep.Version != "1.0" || ep.Status != "active" || len(ep.WebhookEvents) != 2 || ep.WebhookEvents[0].ID == "" {
			t.Errorf("endpoint %+v", ep)
		}
		if err := c.get("/apps/app_1/endpoints/nope", nil, &ep); err == nil || err.Code != http.StatusNotFound || err.Error == nil {
			t.Errorf("get_endpoint of an unknown endpoint: threw %+v, want a 404 with an error", err)
		}
	})

	// The SDK's other methods get a 404 whose error the SDK throws.
	t.Run("unsupported", func(t *testing.T) {
		var out any
		for _, call := range []func() *sdkError{
			func() *sdkError { return c.get("/apps", nil, &out) },                                              // list_apps
			func() *sdkError { return c.get("/apps/app_1/subscriptions", nil, &out) },                          // list_subscriptions
			func() *sdkError { return c.post("/apps/app_1/subscriptions", map[string]any{"name": "x"}, &out) }, // create_subscription
			func() *sdkError {
				return c.post("/subscriptions/s_1/endpoints", map[string]any{"url": "https://example.com"}, &out)
			}, // create_endpoint
			func() *sdkError { return c.post("/subscriptions/s_1/messages", map[string]any{}, &out) }, // create_subscription_message
		} {
			if err := call(); err == nil || err.Code != http.StatusNotFound || err.Error == nil {
				t.Errorf("threw %+v, want a 404 with an error", err)
			}
		}
	})
}
