package tasks_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
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
	mux.Handle(prefix+"/", openAPICheck(t, http.StripPrefix(prefix, a.h), hc.Unauthenticated))
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
		{"PUT", "/apps/app_1/tasks/0190a0a0-0000-7000-8000-000000000000", "DELETE, GET, HEAD, PATCH"},
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
		openAPICheck(t, a.h, false).ServeHTTP(w, req)
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
