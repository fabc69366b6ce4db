package tasks_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/sqlite"
)

// Keys of the API in tests: keyApp1 grants app_1, keyAll every app.
const (
	keyApp1 = "k1-3f9a0c2d7e5b4a1f"
	keyAll  = "kall-8b7c6d5e4f3a2b1c"
	prefix  = "/api/v1"
)

// api is the engine's handler, mounted under prefix on a test server.
type api struct {
	t   *testing.T
	e   *tasks.Engine
	srv *httptest.Server
	h   http.Handler // the engine's handler, unmounted
	log *syncBuffer
}

// apiOpts configures newAPI; nil fields are defaults.
type apiOpts struct {
	cfg     *tasks.Config
	handler *tasks.HandlerConfig
	funcs   map[string]tasks.Func
	noStart bool
}

// newAPI starts an engine on store with the funcs, and serves its handler
// under prefix. Unless opts say otherwise, "x" has a func that succeeds.
func newAPI(t *testing.T, store tasks.Store, opts apiOpts) *api {
	t.Helper()
	a := &api{t: t, log: &syncBuffer{}}
	if opts.funcs == nil {
		opts.funcs = map[string]tasks.Func{"x": func(context.Context, *tasks.Task) error { return nil }}
	}
	cfg := &tasks.Config{}
	if opts.cfg != nil {
		cfg = opts.cfg
	}
	cfg.Logger = slog.New(slog.NewTextHandler(a.log, nil))
	if opts.noStart {
		a.e = newEngine(t, store, cfg)
		for et, fn := range opts.funcs {
			a.e.Register(et, fn)
		}
	} else {
		a.e = startEngine(t, store, cfg, opts.funcs)
	}
	hc := opts.handler
	if hc == nil {
		hc = &tasks.HandlerConfig{}
	}
	if hc.Keys == nil && !hc.Unauthenticated {
		hc.Keys = map[string][]string{keyApp1: {"app_1"}, keyAll: {"*"}}
	}
	a.h = a.e.Handler(hc)
	mux := http.NewServeMux()
	mux.Handle(prefix+"/", http.StripPrefix(prefix, a.h))
	a.srv = httptest.NewServer(mux)
	t.Cleanup(a.srv.Close)
	return a
}

// response is an answer of the API.
type response struct {
	status int
	header http.Header
	body   []byte
}

// withKey sets the request's Bearer key.
func withKey(key string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+key) }
}

// header sets a request header; an empty value deletes it.
func header(name, value string) func(*http.Request) {
	return func(r *http.Request) {
		if value == "" {
			r.Header.Del(name)
		} else {
			r.Header.Set(name, value)
		}
	}
}

// do sends a request to prefix+path with keyApp1 and, if body is not "",
// Content-Type application/json; edits change the request before it goes.
func (a *api) do(method, path, body string, edits ...func(*http.Request)) *response {
	a.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, a.srv.URL+prefix+path, rd)
	if err != nil {
		a.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+keyApp1)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for _, edit := range edits {
		edit(req)
	}
	return a.send(req)
}

func (a *api) send(req *http.Request) *response {
	a.t.Helper()
	resp, err := a.srv.Client().Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		a.t.Fatal(err)
	}
	return &response{resp.StatusCode, resp.Header, body}
}

// createTask creates a task in app_1 and returns it, failing the test
// unless the answer is 201.
func (a *api) createTask(body string, edits ...func(*http.Request)) *tasks.Task {
	a.t.Helper()
	r := a.do("POST", "/apps/app_1/tasks", body, edits...)
	return r.task(a.t, http.StatusCreated)
}

// task decodes the answer as a task after checking its status.
func (r *response) task(t *testing.T, status int) *tasks.Task {
	t.Helper()
	r.wantStatus(t, status)
	var task tasks.Task
	if err := json.Unmarshal(r.body, &task); err != nil {
		t.Fatalf("decode task %s: %v", r.body, err)
	}
	return &task
}

// wantStatus fails the test unless the answer has status; a JSON answer
// must be application/json.
func (r *response) wantStatus(t *testing.T, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	if status < 300 && status != http.StatusNoContent {
		if ct := r.header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type %q, want application/json", ct)
		}
	}
}

// problemBody is an RFC 9457 problem with the HostedHooks "error" member.
type problemBody struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Error  string `json:"error"`
	Field  string `json:"field"`
}

// leaks are what an answer must never hold: SQL, table names, stacks.
var leaks = []string{"SELECT", "taskwheel_", "goroutine ", "panic", ".go:", "pq:", "sqlite", "SQLSTATE"}

// problem checks that the answer is a problem+json with status, naming
// field (if not "") and with a detail holding each of contains (ignoring
// case). Every problem is checked for leaks (A16).
func (r *response) problem(t *testing.T, status int, field string, contains ...string) problemBody {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type %q, want application/problem+json (A16)", ct)
	}
	var p problemBody
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("decode problem %s: %v", r.body, err)
	}
	if p.Type != "about:blank" || p.Status != status || p.Title != http.StatusText(status) || p.Detail == "" || p.Error != p.Detail {
		t.Errorf("problem %+v: want type about:blank, status %d, title %q, detail = error", p, status, http.StatusText(status))
	}
	if field != "" && p.Field != field {
		t.Errorf("problem field %q, want %q; detail %q", p.Field, field, p.Detail)
	}
	for _, c := range contains {
		if !strings.Contains(strings.ToLower(p.Detail), strings.ToLower(c)) {
			t.Errorf("problem detail %q does not mention %q", p.Detail, c)
		}
	}
	for _, leak := range leaks {
		if strings.Contains(string(r.body), leak) {
			t.Errorf("problem %s holds %q (A16)", r.body, leak)
		}
	}
	return p
}

// future is a run time d from now, as RFC 3339 in UTC.
func future(d time.Duration) string {
	return time.Now().Add(d).UTC().Format(time.RFC3339Nano)
}

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

// page is a page of a task listing.
type page struct {
	Data       []*tasks.Task `json:"data"`
	NextCursor *string       `json:"next_cursor"`
	raw        []byte
}

func (a *api) list(t *testing.T, path string, edits ...func(*http.Request)) page {
	t.Helper()
	r := a.do("GET", path, "", edits...)
	r.wantStatus(t, http.StatusOK)
	p := page{raw: r.body}
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("decode page %s: %v", r.body, err)
	}
	if p.Data == nil {
		t.Errorf("page %s: data is not a list", r.body)
	}
	return p
}

// TestHandler_Auth_A1: no, malformed or unknown key → 401 with
// WWW-Authenticate; unknown and wrong keys get the same answer. A key
// without the path's app gets 404, like a missing app (no existence leak).
func TestHandler_Auth_A1(t *testing.T) {
	t.Parallel()
	a := newAPI(t, tasks.NewMemoryStore(), apiOpts{})
	body := `{"event_type":"x","data":{}}`
	var invalid []byte
	for _, tt := range []struct {
		name string
		auth string // "" sends none
	}{
		{"none", ""},
		{"unknown key", "Bearer nope"},
		{"wrong scheme", "Basic " + base64.StdEncoding.EncodeToString([]byte("u:"+keyApp1))},
		{"no scheme", keyApp1},
		{"empty token", "Bearer "},
		{"key in the wrong case", "Bearer " + strings.ToUpper(keyApp1)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := a.do("POST", "/apps/app_1/tasks", body, header("Authorization", tt.auth))
			r.problem(t, http.StatusUnauthorized, "")
			if ch := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(ch, "Bearer") {
				t.Errorf("WWW-Authenticate %q, want Bearer", ch)
			}
			if tt.auth != "" {
				if invalid == nil {
					invalid = r.body
				} else if !bytes.Equal(r.body, invalid) {
					t.Errorf("answer %s differs from %s: unknown and wrong keys must look alike", r.body, invalid)
				}
			}
		})
	}
	t.Run("scheme is case-insensitive", func(t *testing.T) {
		a.do("GET", "/apps/app_1/tasks", "", header("Authorization", "bearer "+keyApp1)).wantStatus(t, http.StatusOK)
	})
	t.Run("a key without the app gets 404", func(t *testing.T) {
		missing := a.do("GET", "/apps/app_2/tasks", "").problem(t, http.StatusNotFound, "")
		other := a.do("POST", "/apps/app_2/tasks", body).problem(t, http.StatusNotFound, "")
		if missing != other {
			t.Errorf("answers differ: %+v, %+v", missing, other)
		}
		a.do("GET", "/apps/app_2/tasks", "", withKey(keyAll)).wantStatus(t, http.StatusOK)
	})
	t.Run("unauthenticated handler", func(t *testing.T) {
		open := newAPI(t, tasks.NewMemoryStore(), apiOpts{handler: &tasks.HandlerConfig{Unauthenticated: true}})
		open.do("POST", "/apps/any/tasks", body, header("Authorization", "")).task(t, http.StatusCreated)
	})
}

// TestHandler_Auth_A2: keys that share a prefix with a real key, or are
// one byte longer or shorter, are refused (keys are compared as SHA-256
// digests in constant time; see also TestHandler_KeyDigests).
func TestHandler_Auth_A2(t *testing.T) {
	t.Parallel()
	a := newAPI(t, tasks.NewMemoryStore(), apiOpts{})
	for _, key := range []string{
		keyApp1[:len(keyApp1)-1], keyApp1 + "0", keyApp1[:1], keyApp1 + keyApp1,
		strings.Repeat("k", 4096), keyAll[:len(keyApp1)],
	} {
		a.do("GET", "/apps/app_1/tasks", "", withKey(key)).problem(t, http.StatusUnauthorized, "")
	}
	a.do("GET", "/apps/app_1/tasks", "", withKey(keyApp1)).wantStatus(t, http.StatusOK)
	a.do("GET", "/apps/app_1/tasks", "", withKey(keyAll)).wantStatus(t, http.StatusOK)
}

// TestHandler_BodyLimit_A3: a body over the limit gets 413, with or without
// Content-Length.
func TestHandler_BodyLimit_A3(t *testing.T) {
	t.Parallel()
	a := newAPI(t, tasks.NewMemoryStore(), apiOpts{handler: &tasks.HandlerConfig{MaxBodyBytes: 1024}})
	fits := `{"event_type":"x","data":"` + strings.Repeat("a", 1024-len(`{"event_type":"x","data":""}`)) + `"}`
	big := `{"event_type":"x","data":"` + strings.Repeat("a", 2000) + `"}`
	a.createTask(fits)
	a.do("POST", "/apps/app_1/tasks", big).problem(t, http.StatusRequestEntityTooLarge, "", "1024")

	chunked := func(r *http.Request) { // no length known: sent chunked
		r.Body = io.NopCloser(io.MultiReader(r.Body))
		r.ContentLength = -1
	}
	a.do("POST", "/apps/app_1/tasks", big, chunked).problem(t, http.StatusRequestEntityTooLarge, "")
	// The endpoint routes have the same limit.
	a.do("POST", "/apps/app_1/endpoints", `{"url":"https://example.com/`+strings.Repeat("a", 2000)+`"}`, chunked).problem(t, http.StatusRequestEntityTooLarge, "")
	if n := len(a.list(t, "/apps/app_1/tasks").Data); n != 1 {
		t.Errorf("%d tasks stored, want 1", n)
	}
}

// TestHandler_ContentType_A4: a body not declared as JSON gets 415.
func TestHandler_ContentType_A4(t *testing.T) {
	t.Parallel()
	a := newAPI(t, tasks.NewMemoryStore(), apiOpts{})
	body := `{"event_type":"x","data":{}}`
	for _, ct := range []string{"", "text/plain", "application/x-www-form-urlencoded", "application/jsonx",
		"application/json; charset=latin1", "multipart/form-data; boundary=x", "application/json;;", "json"} {
		a.do("POST", "/apps/app_1/tasks", body, header("Content-Type", ct)).problem(t, http.StatusUnsupportedMediaType, "")
	}
	for _, ct := range []string{"application/json", "application/json; charset=utf-8", "Application/JSON; Charset=UTF-8"} {
		a.do("POST", "/apps/app_1/tasks", body, header("Content-Type", ct)).wantStatus(t, http.StatusCreated)
	}
	// Also on the other routes with a body.
	a.do("POST", "/apps/app_1/endpoints", `{"url":"https://example.com/"}`, header("Content-Type", "text/plain")).problem(t, http.StatusUnsupportedMediaType, "")
}

// TestHandler_StrictJSON_A5toA10: unknown fields (A5), trailing data (A6),
// duplicate keys and wrong-case keys (A7), nulls and wrong types for
// required fields (A8), absurd numbers and deep nesting (A9), invalid
// UTF-8 (A10): each a 400 naming the problem.
func TestHandler_StrictJSON_A5toA10(t *testing.T) {
	t.Parallel()
	a := newAPI(t, tasks.NewMemoryStore(), apiOpts{})
	deep := strings.Repeat(`[`, 100) + strings.Repeat(`]`, 100)
	for _, tt := range []struct {
		id, name, body, field, mention string
	}{
		{"A5", "unknown field", `{"event_type":"x","data":{},"priority":1}`, "priority", "unknown field"},
		{"A5", "HostedHooks-looking extra", `{"event_type":"x","data":{},"app_id":"app_2"}`, "app_id", "unknown field"},
		{"A6", "trailing object", `{"event_type":"x","data":{}} {}`, "", "trailing"},
		{"A6", "trailing garbage", `{"event_type":"x","data":{}}x`, "", "trailing"},
		{"A6", "two bodies", `{"event_type":"x","data":{}}{"event_type":"x","data":{}}`, "", "trailing"},
		{"A7", "duplicate key", `{"event_type":"x","event_type":"y","data":{}}`, "event_type", "duplicate"},
		{"A7", "duplicate key by escape", `{"event_type":"x","\u0065vent_type":"y","data":{}}`, "event_type", "duplicate"},
		{"A7", "duplicate key in data", `{"event_type":"x","data":{"a":1,"a":2}}`, "a", "duplicate"},
		{"A7", "wrong-case key", `{"Event_Type":"x","data":{}}`, "Event_Type", "case-sensitive"},
		{"A7", "upper-case key", `{"event_type":"x","DATA":{}}`, "DATA", "case-sensitive"},
		{"A8", "null event_type", `{"event_type":null,"data":{}}`, "event_type", "null"},
		{"A8", "number event_type", `{"event_type":7,"data":{}}`, "event_type", "string"},
		{"A8", "object event_type", `{"event_type":{"a":1},"data":{}}`, "event_type", "string"},
		{"A8", "missing event_type", `{"data":{}}`, "event_type", "required"},
		{"A8", "missing data", `{"event_type":"x"}`, "data", "required"},
		{"A8", "number scheduled_run_time", `{"event_type":"x","scheduled_run_time":1764583200,"data":{}}`, "scheduled_run_time", "string"},
		{"A8", "array body", `[{"event_type":"x","data":{}}]`, "", "object"},
		{"A8", "null body", `null`, "", "object"},
		{"A8", "string body", `"x"`, "", "object"},
		{"A8", "not JSON", `event_type=x&data=1`, "", "not valid JSON"},
		{"A8", "truncated", `{"event_type":"x","data":{`, "", "not valid JSON"},
		{"A8", "single quotes", `{'event_type':'x','data':{}}`, "", "not valid JSON"},
		{"A8", "empty body", ` `, "", "not valid JSON"},
		{"A9", "absurd number as event_type", `{"event_type":1e999999999,"data":{}}`, "event_type", "string"},
		{"A9", "absurd number as run time", `{"event_type":"x","scheduled_run_time":-1e400,"data":{}}`, "scheduled_run_time", "string"},
		{"A9", "deep nesting", `{"event_type":"x","data":` + deep + `}`, "", "nested"},
		{"A10", "invalid UTF-8 in event_type", "{\"event_type\":\"x\xff\",\"data\":{}}", "", "UTF-8"},
		{"A10", "invalid UTF-8 in data", "{\"event_type\":\"x\",\"data\":\"\xc3\x28\"}", "", "UTF-8"},
		{"A10", "invalid UTF-8 in a key", "{\"event_type\":\"x\",\"data\":{\"\xed\xa0\x80\":1}}", "", "UTF-8"},
		{"A10", "byte order mark", "\xef\xbb\xbf{\"event_type\":\"x\",\"data\":{}}", "", "not valid JSON"},
		{"A10", "lone high surrogate in data", `{"event_type":"x","data":{"s":"\ud800"}}`, "data", `\ud800 at byte 6 is a lone UTF-16 surrogate`},
		{"A10", "lone low surrogate in data", `{"event_type":"x","data":"a\uDC00b"}`, "data", `\uDC00`},
		{"A10", "high surrogate then a letter", `{"event_type":"x","data":"\ud83d\u0041"}`, "data", "surrogate"},
		{"A10", "high surrogate ending the string", `{"event_type":"x","data":["\ud83d"]}`, "data", "surrogate"},
		{"A10", "surrogate pair reversed", `{"event_type":"x","data":"\ude00\ud83d"}`, "data", "surrogate"},
		{"A10", "lone surrogate in a key of data", `{"event_type":"x","data":{"\udfff":1}}`, "data", "surrogate"},
	} {
		t.Run(tt.id+" "+tt.name, func(t *testing.T) {
			a.do("POST", "/apps/app_1/tasks", tt.body).problem(t, http.StatusBadRequest, tt.field, tt.mention)
		})
	}
	t.Run("A9 absurd overlap_seconds", func(t *testing.T) {
		ep := a.do("POST", "/apps/app_1/endpoints", `{"url":"https://example.com/hook"}`)
		ep.wantStatus(t, http.StatusCreated)
		var e tasks.Endpoint
		json.Unmarshal(ep.body, &e)
		for _, n := range []string{"1e400", "99999999999999999999999999", "-1", "1.5", `"60"`, "null", "2592001"} {
			a.do("POST", "/apps/app_1/endpoints/"+e.ID+"/rotate_secret", `{"overlap_seconds":`+n+`}`).problem(t, http.StatusBadRequest, "overlap_seconds", "whole number")
		}
	})
	t.Run("A10 escapes that are valid I-JSON are kept", func(t *testing.T) {
		for _, data := range []string{`"\u0000"`, `"\ud83d\ude00"`, `"\uD83D\uDE00"`, `"\\ud800"`, `{"\u00e9":"\\\ud83d\ude00"}`} {
			if got := a.createTask(`{"event_type":"x","data":` + data + `}`); string(got.Data) != data {
				t.Errorf("data %s answered as %s", data, got.Data)
			}
		}
	})
	t.Run("63 levels in data are fine", func(t *testing.T) {
		a.createTask(`{"event_type":"x","data":` + strings.Repeat(`[`, 63) + strings.Repeat(`]`, 63) + `}`)
	})
	t.Run("nothing was stored", func(t *testing.T) {
		if n := len(a.list(t, "/apps/app_1/tasks").Data); n != 6 {
			t.Errorf("%d tasks, want 6", n)
		}
	})
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
		a := newAPI(t, newStore(t), apiOpts{})
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
		t.Run("after the horizon was shortened", func(t *testing.T) {
			task := create("far", body("x", `{}`)).task(t, http.StatusCreated)
			short := a.e.Handler(&tasks.HandlerConfig{Unauthenticated: true, Horizon: time.Minute})
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

// TestHandler_Errors_A16: store errors become a 503 with Retry-After and a
// generic message; the SQL text and stack are only in the log.
func TestHandler_Errors_A16(t *testing.T) {
	t.Parallel()
	store := &failingStore{Store: tasks.NewMemoryStore()}
	a := newAPI(t, store, apiOpts{noStart: true})
	task := a.createTask(`{"event_type":"x","data":{}}`)
	store.fail.Store(true)
	for _, req := range []struct{ method, path, body string }{
		{"POST", "/apps/app_1/tasks", `{"event_type":"x","data":{}}`},
		{"POST", "/apps/app_1/tasks", `{"event_type":"routed.by.endpoint","data":{}}`},
		{"GET", "/apps/app_1/tasks", ""},
		{"GET", "/apps/app_1/tasks/" + task.ID, ""},
		{"POST", "/apps/app_1/tasks/" + task.ID + "/cancel", ""},
		{"GET", "/apps/app_1/endpoints", ""},
	} {
		r := a.do(req.method, req.path, req.body)
		r.problem(t, http.StatusServiceUnavailable, "", "unavailable")
		if r.header.Get("Retry-After") == "" {
			t.Errorf("%s %s: no Retry-After", req.method, req.path)
		}
	}
	if log := a.log.String(); !strings.Contains(log, "FROM taskwheel_tasks") {
		t.Errorf("log %q does not hold the store's error", log)
	}
}

// failingStore fails, once fail is set, with an error that holds SQL text
// and what looks like a stack.
type failingStore struct {
	tasks.Store
	fail atomic.Bool
}

var errSQL = errors.New(`ERROR: relation "x" does not exist (SQLSTATE 42P01): SELECT id, app_id FROM taskwheel_tasks WHERE id = $1
goroutine 7 [running]:
panic: boom
	/src/store_sql.go:512 +0x1d`)

func (s *failingStore) err() error {
	if s.fail.Load() {
		return errSQL
	}
	return nil
}

func (s *failingStore) Insert(ctx context.Context, t *tasks.Task) (*tasks.Task, error) {
	if err := s.err(); err != nil {
		return nil, err
	}
	return s.Store.Insert(ctx, t)
}

func (s *failingStore) Get(ctx context.Context, id string) (*tasks.Task, error) {
	if err := s.err(); err != nil {
		return nil, err
	}
	return s.Store.Get(ctx, id)
}

func (s *failingStore) List(ctx context.Context, p tasks.ListParams) ([]*tasks.Task, string, error) {
	if err := s.err(); err != nil {
		return nil, "", err
	}
	return s.Store.List(ctx, p)
}

func (s *failingStore) ListEndpoints(ctx context.Context, app string) ([]*tasks.Endpoint, error) {
	if err := s.err(); err != nil {
		return nil, err
	}
	return s.Store.ListEndpoints(ctx, app)
}

// TestHandler_Routes_A17: a wrong method gets 405 with Allow, an unknown
// path 404, both problem+json.
func TestHandler_Routes_A17(t *testing.T) {
	t.Parallel()
	a := newAPI(t, tasks.NewMemoryStore(), apiOpts{})
	for _, tt := range []struct{ method, path, allow string }{
		{"DELETE", "/apps/app_1/tasks", "GET, HEAD, POST"},
		{"PUT", "/apps/app_1/tasks/0190a0a0-0000-7000-8000-000000000000", "GET, HEAD, PATCH"},
		{"GET", "/apps/app_1/tasks/0190a0a0-0000-7000-8000-000000000000/cancel", "POST"},
		{"POST", "/apps/app_1/endpoints/e1", "DELETE, GET, HEAD, PATCH"},
	} {
		r := a.do(tt.method, tt.path, "")
		r.problem(t, http.StatusMethodNotAllowed, "", tt.method)
		if got := r.header.Get("Allow"); got != tt.allow {
			t.Errorf("%s %s: Allow %q, want %q", tt.method, tt.path, got, tt.allow)
		}
	}
	for _, path := range []string{"/", "/nope", "/apps", "/apps/app_1", "/apps/app_1/tasks/",
		"/apps/app_1/tasks/x/y/z", "/APPS/app_1/tasks"} {
		a.do("GET", path, "").problem(t, http.StatusNotFound, "")
	}
	// ServeMux would redirect an unclean path to its clean form, without
	// the mount's prefix; the handler answers 404 instead. (The test
	// server's own mux cleans paths first, so call the handler directly.)
	for _, path := range []string{"/apps/app_1//tasks", "/apps/app_1/./tasks", "/apps/app_1/tasks/../endpoints", "//apps/app_1/tasks", ""} {
		req := httptest.NewRequest("GET", "/", nil)
		req.URL.Path = path
		req.Header.Set("Authorization", "Bearer "+keyApp1)
		w := httptest.NewRecorder()
		a.h.ServeHTTP(w, req)
		(&response{w.Code, w.Header(), w.Body.Bytes()}).problem(t, http.StatusNotFound, "")
	}
	// Outside the prefix, the application's own mux answers.
	if r := a.send(mustRequest(t, "GET", a.srv.URL+"/apps/app_1/tasks")); r.status != http.StatusNotFound {
		t.Errorf("outside the mount: %d", r.status)
	}
}

func mustRequest(t *testing.T, method, url string) *http.Request {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
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

// TestHandler_PathParams_A21: injection-shaped and huge path parameters
// get 400 or 404, and the store is unharmed.
func TestHandler_PathParams_A21(t *testing.T) {
	t.Parallel()
	testEngineStores(t, func(t *testing.T, newStore func(testing.TB) tasks.Store) {
		a := newAPI(t, newStore(t), apiOpts{})
		task := a.createTask(`{"event_type":"x","scheduled_run_time":"` + future(time.Hour) + `","data":{}}`)
		all := withKey(keyAll)
		for _, path := range []string{
			"/apps/a'%20OR%20'1'%3D'1/tasks",
			"/apps/app_1%3B%20DROP%20TABLE%20taskwheel_tasks/tasks",
			"/apps/" + strings.Repeat("a", 300) + "/tasks",
			"/apps/%00/tasks",
			"/apps/%ff/tasks",
			"/apps/a%2Fb/tasks",
			"/apps/%E2%80%AE/tasks",
		} {
			a.do("GET", path, "", all).problem(t, http.StatusBadRequest, "app_id")
		}
		for _, id := range []string{"1'%20OR%20'1'%3D'1", "'%3B%20DROP%20TABLE%20taskwheel_tasks%3B--", strings.Repeat("a", 10000),
			"%00", "%ff%fe", task.ID + "%00", "%25", "*", "..%2F..%2Fetc"} {
			a.do("GET", "/apps/app_1/tasks/"+id, "").problem(t, http.StatusNotFound, "")
			a.do("POST", "/apps/app_1/tasks/"+id+"/cancel", "").problem(t, http.StatusNotFound, "")
			a.do("GET", "/apps/app_1/endpoints/"+id, "").problem(t, http.StatusNotFound, "")
		}
		if p := a.list(t, "/apps/app_1/tasks"); len(p.Data) != 1 || p.Data[0].ID != task.ID || p.Data[0].State != tasks.StateScheduled {
			t.Errorf("after the attempts the app has %+v, want the task untouched", p.Data)
		}
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
		if err := tasks.ValidateWebhookSecret(created.Secret); err != nil {
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
		if rotated.Secret == "" || rotated.Secret == created.Secret || tasks.ValidateWebhookSecret(rotated.Secret) != nil {
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

// TestHandler_StoreWriteFails_F20: when the store cannot write, create
// answers 5xx and hands out no task ID.
func TestHandler_StoreWriteFails_F20(t *testing.T) {
	t.Parallel()
	t.Run("failing insert", func(t *testing.T) {
		t.Parallel()
		store := &failingStore{Store: tasks.NewMemoryStore()}
		a := newAPI(t, store, apiOpts{noStart: true})
		store.fail.Store(true)
		r := a.do("POST", "/apps/app_1/tasks", `{"event_type":"x","data":{}}`, header("Idempotency-Key", "k"))
		r.problem(t, http.StatusServiceUnavailable, "")
		if bytes.Contains(r.body, []byte(`"id"`)) {
			t.Errorf("answer %s holds an id", r.body)
		}
		store.fail.Store(false)
		if n := len(a.list(t, "/apps/app_1/tasks").Data); n != 0 {
			t.Errorf("%d tasks stored, want 0", n)
		}
		a.createTask(`{"event_type":"x","data":{}}`, header("Idempotency-Key", "k")) // the retry succeeds
	})
	t.Run("closed SQLite store", func(t *testing.T) {
		t.Parallel()
		store := testStores[1].open(t).(*sqlite.Store)
		a := newAPI(t, store, apiOpts{noStart: true})
		store.Close()
		r := a.do("POST", "/apps/app_1/tasks", `{"event_type":"x","data":{}}`)
		r.problem(t, http.StatusServiceUnavailable, "")
		if r.header.Get("Retry-After") == "" || bytes.Contains(r.body, []byte(`"id"`)) {
			t.Errorf("answer %v %s: want Retry-After and no id", r.header, r.body)
		}
	})
}

// TestHandler_StoreDown_F9: with the database unreachable the API answers
// 503 with Retry-After, quickly.
func TestHandler_StoreDown_F9(t *testing.T) {
	t.Parallel()
	db, err := sql.Open("pgx", "postgres://postgres@127.0.0.1:1/none?sslmode=disable&connect_timeout=2")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	store, err := tasks.NewSQLStore(db, tasks.Postgres)
	if err != nil {
		t.Fatal(err)
	}
	a := newAPI(t, store, apiOpts{noStart: true})
	for _, req := range []struct{ method, path, body string }{
		{"POST", "/apps/app_1/tasks", `{"event_type":"x","data":{}}`},
		{"GET", "/apps/app_1/tasks", ""},
		{"GET", "/apps/app_1/tasks/0190a0a0-0000-7000-8000-000000000000", ""},
		{"POST", "/apps/app_1/endpoints", `{"url":"https://example.com/"}`},
	} {
		start := time.Now()
		r := a.do(req.method, req.path, req.body)
		r.problem(t, http.StatusServiceUnavailable, "", "unavailable")
		if took := time.Since(start); took > 3*time.Second {
			t.Errorf("%s %s took %v", req.method, req.path, took)
		}
		if r.header.Get("Retry-After") == "" {
			t.Errorf("%s %s: no Retry-After", req.method, req.path)
		}
	}
}

// TestHandler_Panics: misuse at setup panics.
func TestHandler_Panics(t *testing.T) {
	t.Parallel()
	e := newEngine(t, tasks.NewMemoryStore(), nil)
	for name, cfg := range map[string]*tasks.HandlerConfig{
		"nil config":           nil,
		"no keys":              {},
		"keys and open":        {Keys: map[string][]string{"k": {"a"}}, Unauthenticated: true},
		"empty key":            {Keys: map[string][]string{"": {"a"}}},
		"no apps":              {Keys: map[string][]string{"k": {}}},
		"empty app":            {Keys: map[string][]string{"k": {""}}},
		"invalid app":          {Keys: map[string][]string{"k": {"a b"}}},
		"negative body limit":  {Unauthenticated: true, MaxBodyBytes: -1},
		"negative the horizon": {Unauthenticated: true, Horizon: -1},
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("Handler did not panic")
				}
			}()
			e.Handler(cfg)
		})
	}
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
