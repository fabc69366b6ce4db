package tasks

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"path"
	"reflect"
	"regexp"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// HandlerConfig configures [Engine.Handler]. A zero field means its default;
// a nil *HandlerConfig is a zero one, which Handler refuses because it has
// neither keys nor Unauthenticated.
type HandlerConfig struct {
	// Keys maps each API key to the app IDs it may use; the app ID "*"
	// grants every app. A request presents its key as "Authorization:
	// Bearer <key>". The handler keeps only the SHA-256 digest of each key
	// and compares digests in constant time. App IDs are 1 to MaxIDLength
	// bytes of letters, digits and "._:-". Defaults to none, which is
	// allowed only with Unauthenticated.
	Keys map[string][]string
	// Unauthenticated, when true, serves every app to anyone without a
	// key: only for a trusted network, such as a sidecar on localhost. It
	// cannot be combined with Keys. Defaults to false.
	Unauthenticated bool
	// MaxBodyBytes bounds a request body; a longer one gets 413 Content
	// Too Large. Defaults to Config.MaxDataBytes + 64 KiB.
	MaxBodyBytes int64
	// Horizon is how far ahead a scheduled_run_time may be; a later one
	// gets 422. Defaults to DefaultHorizon (366 days).
	Horizon time.Duration
	// MaxPageBytes bounds the task JSON in one page of a task listing (GET
	// /apps/{app_id}/tasks): a page ends before the task that would take it
	// past MaxPageBytes, and its next_cursor continues from there; a page
	// holds at least one task, however large. Defaults to
	// DefaultMaxPageBytes (4 MiB).
	MaxPageBytes int
	// MaxListBytes bounds the tasks that all of the handler's task listings
	// hold at once: each listing reads the store a few tasks at a time and
	// reserves, before each read, Config.MaxDataBytes plus 16 KiB for each
	// task it may read; a listing waits for its reservation until the
	// store's timeout (5 seconds), then answers 503, or ends its page early
	// with a next_cursor if it has sent part of it. Whatever the value, one
	// listing may read two tasks at a time. Defaults to 4 × MaxPageBytes.
	MaxListBytes int64
	// Logger receives what answers leave out: the errors behind 5xx
	// answers. Defaults to the engine's logger (Config.Logger).
	Logger *slog.Logger
}

// Defaults of HandlerConfig.
const (
	DefaultHorizon      = 366 * 24 * time.Hour
	DefaultMaxPageBytes = 4 << 20
)

const (
	// maxJSONDepth bounds the nesting of a request body, data included.
	maxJSONDepth = 64
	// apiStoreTimeout bounds the store calls of one request, so that a store
	// that hangs gets a quick 503 rather than a hanging client.
	apiStoreTimeout = 5 * time.Second
	// retryAfter is the Retry-After of a 503, in seconds.
	retryAfter = "5"
	// defaultSecretOverlap and maxSecretOverlap bound overlap_seconds of
	// rotate_secret.
	defaultSecretOverlap = 24 * time.Hour
	maxSecretOverlap     = 30 * 24 * time.Hour
	// allApps, as an app ID granted to a key, grants every app.
	allApps = "*"
)

// Handler returns the engine's HTTP API: HostedHooks' "create task" and the
// rest of a task's life, the app's webhook endpoints, and its schedules
// (periodic tasks, see [PeriodicTask]). Mount it under any prefix with
// [http.StripPrefix]:
//
//	POST   /apps/{app_id}/tasks                     create a task (201); Idempotency-Key honoured
//	GET    /apps/{app_id}/tasks                     list: ?status=&event_type=&limit=&cursor=, newest first, in pages of MaxPageBytes at most
//	GET    /apps/{app_id}/tasks/{id}                one task
//	PATCH  /apps/{app_id}/tasks/{id}                {"scheduled_run_time": ...}: reschedule a pending task
//	GET    /apps/{app_id}/tasks/{id}/attempts       its attempt history
//	POST   /apps/{app_id}/tasks/{id}/cancel         cancel (a running task: request it)
//	POST   /apps/{app_id}/tasks/{id}/replay         run a terminal task again
//	GET    /apps/{app_id}/endpoints                 list webhook endpoints
//	POST   /apps/{app_id}/endpoints                 create one (201); the answer shows its secret
//	GET    /apps/{app_id}/endpoints/{id}            one endpoint
//	PATCH  /apps/{app_id}/endpoints/{id}            change url, description, enabled_events, status
//	DELETE /apps/{app_id}/endpoints/{id}            delete it (204)
//	POST   /apps/{app_id}/endpoints/{id}/rotate_secret  new secret; {"overlap_seconds": n}, default 1 day
//	GET    /apps/{app_id}/schedules                 list periodic tasks
//	POST   /apps/{app_id}/schedules                 create one (201): spec, time_zone, event_type, data, status, missed
//	GET    /apps/{app_id}/schedules/{id}            one periodic task, with next_run_at, last_run_at, last_task_id
//	PATCH  /apps/{app_id}/schedules/{id}            change any of spec, time_zone, event_type, data, status, missed
//	DELETE /apps/{app_id}/schedules/{id}            delete it (204); the tasks it enqueued stay
//	POST   /apps/{app_id}/schedules/{id}/pause      set status paused
//	POST   /apps/{app_id}/schedules/{id}/resume     set status active; the next slot is the first from now
//
// Bodies are strict JSON objects (Content-Type application/json): unknown,
// duplicate or wrongly cased fields, trailing data, invalid UTF-8 and
// nesting deeper than 64 levels are refused with 400. Every error answer is
// application/problem+json (RFC 9457) with an "error" member holding the
// message, as HostedHooks clients read it, and "field" when a field is at
// fault. A path that is not clean (with "//", "/./" or "/../") is a 404,
// never a redirect; an application's own ServeMux redirects such paths
// before the handler sees them, unless it routes them here as cmd/tasksd
// does. A task, endpoint or schedule of another app is a 404, like a
// missing one, and so is an app that the key does not grant. A store that
// fails or does not answer within 5 seconds gives 503 with Retry-After; its
// error goes to the log, not to the client.
//
// Creating a task with an Idempotency-Key that a task of the app holds
// creates nothing: the same request again (the same event type, run time and
// data, data compared as a JSON value, white space and member order aside)
// gets that task, 201 with Idempotent-Replayed: true, whatever changed
// since; another request gets 422.
//
// Creating a task refuses with 422 an event type that nothing would run: no
// func registered and no active endpoint of the app subscribed. A schedule's
// event type is not checked so: its first task may be due long after, when
// the endpoint or func exists; a task of a slot that has no route then fails
// with "no route", in the task list.
//
// Handler panics if cfg has no Keys and not Unauthenticated, has both, has
// an empty key, a key with no apps or an invalid app ID, or a negative
// MaxBodyBytes, Horizon, MaxPageBytes or MaxListBytes. The handler is safe for concurrent
// use.
func (e *Engine) Handler(cfg *HandlerConfig) http.Handler {
	var c HandlerConfig
	if cfg != nil {
		c = *cfg
	}
	checkHandlerConfig("Handler", &c)
	h := &handler{
		e:            e,
		mux:          http.NewServeMux(),
		patterns:     make(map[string]bool),
		open:         c.Unauthenticated,
		maxBody:      c.MaxBodyBytes,
		horizon:      c.Horizon,
		maxPage:      cmp.Or(c.MaxPageBytes, DefaultMaxPageBytes),
		lists:        newListBudget(c.MaxListBytes, cmp.Or(c.MaxPageBytes, DefaultMaxPageBytes), e.cfg.MaxDataBytes),
		log:          c.Logger,
		now:          time.Now,
		storeTimeout: apiStoreTimeout,
	}
	if h.maxBody == 0 {
		h.maxBody = int64(e.cfg.MaxDataBytes) + 64<<10
	}
	if h.horizon == 0 {
		h.horizon = DefaultHorizon
	}
	if h.log == nil {
		h.log = e.log
	}
	h.keys = parseKeys("Handler", c.Keys)

	h.route("POST /apps/{app_id}/tasks", h.handleCreateTask)
	h.route("GET /apps/{app_id}/tasks", h.handleListTasks)
	h.route("GET /apps/{app_id}/tasks/{id}", h.handleGetTask)
	h.route("PATCH /apps/{app_id}/tasks/{id}", h.handleUpdateTask)
	h.route("GET /apps/{app_id}/tasks/{id}/attempts", h.handleListAttempts)
	h.route("POST /apps/{app_id}/tasks/{id}/cancel", h.handleCancelTask)
	h.route("POST /apps/{app_id}/tasks/{id}/replay", h.handleReplayTask)
	h.route("GET /apps/{app_id}/endpoints", h.handleListEndpoints)
	h.route("POST /apps/{app_id}/endpoints", h.handleCreateEndpoint)
	h.route("GET /apps/{app_id}/endpoints/{id}", h.handleGetEndpoint)
	h.route("PATCH /apps/{app_id}/endpoints/{id}", h.handleUpdateEndpoint)
	h.route("DELETE /apps/{app_id}/endpoints/{id}", h.handleDeleteEndpoint)
	h.route("POST /apps/{app_id}/endpoints/{id}/rotate_secret", h.handleRotateSecret)
	h.route("GET /apps/{app_id}/schedules", h.handleListSchedules)
	h.route("POST /apps/{app_id}/schedules", h.handleCreateSchedule)
	h.route("GET /apps/{app_id}/schedules/{id}", h.handleGetSchedule)
	h.route("PATCH /apps/{app_id}/schedules/{id}", h.handleUpdateSchedule)
	h.route("DELETE /apps/{app_id}/schedules/{id}", h.handleDeleteSchedule)
	h.route("POST /apps/{app_id}/schedules/{id}/pause", h.handlePauseSchedule)
	h.route("POST /apps/{app_id}/schedules/{id}/resume", h.handleResumeSchedule)
	return h
}

// handler serves the API of one engine.
type handler struct {
	e            *Engine
	mux          *http.ServeMux
	patterns     map[string]bool // the patterns registered with mux
	keys         []apiKey
	open         bool // Unauthenticated
	maxBody      int64
	horizon      time.Duration
	maxPage      int // bytes of task JSON in a page of a listing
	lists        *listBudget
	log          *slog.Logger
	now          func() time.Time
	storeTimeout time.Duration
}

// routeFunc serves a request for the app it is authorized for. An error it
// returns becomes the answer.
type routeFunc func(w http.ResponseWriter, r *http.Request, app string) error

// route registers fn for pattern behind authentication and authorization.
func (h *handler) route(pattern string, fn routeFunc) {
	h.patterns[pattern] = true
	h.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		app, err := h.authorize(w, r)
		if err == nil {
			err = fn(w, r, app)
		}
		if err != nil {
			h.writeError(w, r, err)
		}
	})
}

// ServeHTTP answers every request that no route takes itself, and every
// panic, with problem+json.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			h.log.ErrorContext(r.Context(), "tasks: API handler panicked",
				"method", r.Method, "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
			h.writeError(w, r, errInternal)
		}
	}()
	// ServeMux would redirect an unclean path (a//b, a/./b) to its clean
	// form, which under StripPrefix loses the prefix: refuse it instead.
	if p := r.URL.EscapedPath(); p != cleanPath(p) {
		h.writeError(w, r, errUnknownPath)
		return
	}
	if _, pattern := h.mux.Handler(r); !h.patterns[pattern] {
		// Not found, or the wrong method: let the mux tell which, and
		// answer in problem+json rather than its text/plain.
		c := &capture{header: make(http.Header)}
		h.mux.ServeHTTP(c, r)
		if c.status == http.StatusMethodNotAllowed {
			allow := c.header.Get("Allow")
			w.Header().Set("Allow", allow)
			h.writeError(w, r, apiErrorf(http.StatusMethodNotAllowed, "", "method %s is not allowed here; allowed: %s", r.Method, allow))
			return
		}
		h.writeError(w, r, errUnknownPath)
		return
	}
	h.mux.ServeHTTP(w, r)
}

// cleanPath is how ServeMux cleans a path: path.Clean, keeping a trailing
// slash.
func cleanPath(p string) string {
	if p == "" || p[0] != '/' {
		p = "/" + p
	}
	np := path.Clean(p)
	if p[len(p)-1] == '/' && np != "/" {
		np += "/"
	}
	return np
}

// capture records what ServeMux answers to a request it has no route for.
type capture struct {
	header http.Header
	status int
}

func (c *capture) Header() http.Header { return c.header }
func (c *capture) WriteHeader(status int) {
	if c.status == 0 {
		c.status = status
	}
}
func (c *capture) Write(b []byte) (int, error) {
	c.WriteHeader(http.StatusOK)
	return len(b), nil
}

// authorize authenticates the request's key and checks that it grants the
// app in the path, which it returns.
func (h *handler) authorize(w http.ResponseWriter, r *http.Request) (string, error) {
	var key *apiKey
	if !h.open {
		var err error
		if key, err = h.authenticate(r); err != nil {
			challenge := `Bearer realm="tasks"`
			if err != errMissingKey {
				challenge += `, error="invalid_token"`
			}
			w.Header().Set("WWW-Authenticate", challenge)
			return "", err
		}
	}
	app := r.PathValue("app_id")
	if !validName(app) {
		return "", apiErrorf(http.StatusBadRequest, "app_id", "invalid app ID: use 1 to %d letters, digits and . _ : -", MaxIDLength)
	}
	if key != nil && !key.grants(app) {
		return "", errAppNotFound
	}
	return app, nil
}

// authenticate finds the key of a request's "Authorization: Bearer" header
// with findKey, in constant time.
func (h *handler) authenticate(r *http.Request) (*apiKey, error) {
	values := r.Header.Values("Authorization")
	if len(values) == 0 {
		return nil, errMissingKey
	}
	scheme, token, ok := strings.Cut(values[0], " ")
	token = strings.TrimLeft(token, " ")
	if len(values) != 1 || !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return nil, errInvalidKey
	}
	match := findKey(h.keys, token)
	if match < 0 {
		return nil, errInvalidKey
	}
	return &h.keys[match], nil
}

// validName reports whether s is a usable app, task or endpoint ID: 1 to
// MaxIDLength bytes of letters, digits and "._:-", not "." or "..". Task and
// endpoint IDs are UUIDs.
func validName(s string) bool {
	if s == "" || len(s) > MaxIDLength || s == "." || s == ".." {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

// storeCtx bounds the store calls of a request.
func (h *handler) storeCtx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), h.storeTimeout)
}

// ---- tasks

// handleCreateTask creates a task: HostedHooks' POST /apps/{app_id}/tasks.
func (h *handler) handleCreateTask(w http.ResponseWriter, r *http.Request, app string) error {
	key, err := idempotencyKey(r)
	if err != nil {
		return err
	}
	m, err := h.readObject(w, r, false)
	if err != nil {
		return err
	}
	if err := onlyFields(m, "event_type", "scheduled_run_time", "data"); err != nil {
		return err
	}
	eventType, err := stringField(m, "event_type", true)
	if err != nil {
		return err
	}
	runAt, err := runTimeField(m, "scheduled_run_time", false)
	if err != nil {
		return err
	}
	data, err := h.dataField(m, true)
	if err != nil {
		return err
	}
	if err := ValidateEventType(eventType); err != nil {
		return err
	}

	ctx, cancel := h.storeCtx(r)
	defer cancel()
	// A key that holds a task is answered from it before the checks below,
	// so that a replay gets the original answer whatever changed since: a
	// deleted endpoint, a shorter horizon.
	if key != "" {
		t, err := h.e.store.GetByIdempotencyKey(ctx, app, key)
		if err == nil {
			return h.replay(w, r, t, key, eventType, runAt, data)
		}
		if !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	if err := h.checkHorizon("scheduled_run_time", runAt); err != nil {
		return err
	}
	if err := h.checkRoute(ctx, app, eventType); err != nil {
		return err
	}
	t, err := h.e.Enqueue(ctx, NewTask{AppID: app, EventType: eventType, Data: data, RunAt: runAt, IdempotencyKey: key})
	if errors.Is(err, ErrDuplicate) && t != nil {
		return h.replay(w, r, t, key, eventType, runAt, data) // a request with the key came in between
	}
	if err != nil {
		return err
	}
	return h.writeCreated(w, r, t)
}

// replay answers a request whose Idempotency-Key the task t holds. Stripe's
// semantics: the same request again gets the original answer; another
// request with the key is an error.
func (h *handler) replay(w http.ResponseWriter, r *http.Request, t *Task, key, eventType string, runAt time.Time, data []byte) error {
	if !sameRequest(t, eventType, runAt, data) {
		return apiErrorf(http.StatusUnprocessableEntity, "Idempotency-Key",
			"Idempotency-Key %q was used for task %s, created from another request; use a new key for a new task", key, t.ID)
	}
	w.Header().Set("Idempotent-Replayed", "true")
	return h.writeCreated(w, r, t)
}

// writeCreated answers 201 with the task t.
func (h *handler) writeCreated(w http.ResponseWriter, r *http.Request, t *Task) error {
	w.Header().Set("Location", "tasks/"+t.ID)
	return h.writeJSON(w, r, http.StatusCreated, taskJSON(t))
}

// idempotencyKey returns the request's Idempotency-Key, or "".
func idempotencyKey(r *http.Request) (string, error) {
	values := r.Header.Values("Idempotency-Key")
	switch {
	case len(values) == 0:
		return "", nil
	case len(values) > 1:
		return "", apiErrorf(http.StatusBadRequest, "Idempotency-Key", "more than one Idempotency-Key header")
	case values[0] == "":
		return "", apiErrorf(http.StatusBadRequest, "Idempotency-Key", "Idempotency-Key must not be empty")
	}
	if err := validateText("Idempotency-Key", values[0], MaxIdempotencyKeyLength); err != nil {
		return "", apiErrorf(http.StatusBadRequest, "Idempotency-Key", "invalid Idempotency-Key: %s", err.(*ValidationError).Message)
	}
	return values[0], nil
}

// sameRequest reports whether the task t was created from a request with
// these event type, run time and data; data is compared as a JSON value
// (see sameJSON).
func sameRequest(t *Task, eventType string, runAt time.Time, data []byte) bool {
	if t.EventType != eventType || !sameJSON(t.Data, data) {
		return false
	}
	if runAt.IsZero() || t.ScheduledRunTime == nil {
		return runAt.IsZero() && t.ScheduledRunTime == nil
	}
	return t.ScheduledRunTime.Equal(runAt.UTC().Truncate(time.Microsecond))
}

// sameJSON reports whether the JSON texts a and b hold the same value,
// whatever their white space, member order and string escapes. Numbers are
// compared as written, digit for digit (json.Number), never as float64,
// which would equate 12345678901234567890 and 12345678901234567891: so 1 and
// 1.0 differ. Member names are unique (checkJSON refuses duplicates).
func sameJSON(a, b []byte) bool {
	if bytes.Equal(a, b) {
		return true
	}
	va, errA := decodeJSON(a)
	vb, errB := decodeJSON(b)
	return errA == nil && errB == nil && reflect.DeepEqual(va, vb)
}

// decodeJSON decodes the JSON text b into maps, slices, strings, booleans,
// nil and json.Numbers.
func decodeJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	err := dec.Decode(&v)
	return v, err
}

// checkRoute refuses an event type that no task of app could be run for:
// with no func registered and no active endpoint of app subscribed to it.
func (h *handler) checkRoute(ctx context.Context, app, eventType string) error {
	if h.e.funcFor(eventType) != nil {
		return nil
	}
	eps, err := h.e.Endpoints(ctx, app)
	if err != nil {
		return err
	}
	for _, ep := range eps {
		if ep.Status == EndpointActive && ep.Subscribed(eventType) {
			return nil
		}
	}
	return apiErrorf(http.StatusUnprocessableEntity, "event_type",
		"no route for event type %q: no func is registered for it and no active endpoint of app %q subscribes to it", eventType, app)
}

// checkHorizon refuses a run time further ahead than the horizon.
func (h *handler) checkHorizon(field string, runAt time.Time) error {
	if limit := h.now().Add(h.horizon); runAt.After(limit) {
		ahead := h.horizon.String()
		if h.horizon%(24*time.Hour) == 0 {
			ahead = fmt.Sprintf("%d days", h.horizon/(24*time.Hour))
		}
		return apiErrorf(http.StatusUnprocessableEntity, field, "%s is more than %s ahead; the latest allowed now is %s",
			field, ahead, limit.UTC().Truncate(time.Second).Format(time.RFC3339))
	}
	return nil
}

// listParams reads the query of a task listing: status (repeated or
// comma-separated), event_type, limit and cursor; anything else is a 400.
func listParams(r *http.Request) (ListParams, error) {
	var p ListParams
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return p, apiErrorf(http.StatusBadRequest, "", "malformed query string: %v", err)
	}
	for _, name := range slices.Sorted(maps.Keys(q)) {
		vs := q[name]
		if name != "status" && len(vs) > 1 {
			return p, apiErrorf(http.StatusBadRequest, name, "%s given %d times", name, len(vs))
		}
		switch name {
		case "status":
			for _, v := range vs {
				for s := range strings.SplitSeq(v, ",") {
					st := State(s)
					if !st.Valid() {
						return p, apiErrorf(http.StatusBadRequest, "status", "unknown status %s; the statuses are %s", quote(s), stateNames())
					}
					if !slices.Contains(p.States, st) {
						p.States = append(p.States, st)
					}
				}
			}
		case "event_type":
			if err := ValidateEventType(vs[0]); err != nil {
				return p, badRequest(err)
			}
			p.EventType = vs[0]
		case "limit":
			n, ok := parseUint(vs[0], MaxListLimit)
			if !ok || n < 1 {
				return p, apiErrorf(http.StatusBadRequest, "limit", "limit must be a whole number from 1 to %d", MaxListLimit)
			}
			p.Limit = int(n)
		case "cursor":
			if _, id, err := decodeCursor(vs[0]); err != nil || !validName(id) {
				return p, apiErrorf(http.StatusBadRequest, "cursor", "malformed cursor; pass next_cursor of the previous page as it is")
			}
			p.Cursor = vs[0]
		default:
			return p, apiErrorf(http.StatusBadRequest, fieldName(name), "unknown query parameter %s; the parameters are status, event_type, limit and cursor", quote(name))
		}
	}
	if err := p.normalize(); err != nil {
		return p, badRequest(err)
	}
	return p, nil
}

// stateNames lists the states for messages.
func stateNames() string {
	names := make([]string, len(States))
	for i, s := range States {
		names[i] = string(s)
	}
	return strings.Join(names, ", ")
}

// parseUint parses a decimal number from 0 to max written with digits only.
func parseUint(s string, max uint64) (uint64, bool) {
	if s == "" || len(s) > 20 || strings.Trim(s, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil && n <= max
}

// inApp returns the object of the path's id, read by get, if it belongs to
// app: appOf gives its app. An invalid ID, a missing object and another
// app's object are all notFound, so that the answer does not tell whether
// the object exists.
func inApp[T any](ctx context.Context, r *http.Request, app string, notFound error,
	get func(context.Context, string) (T, error), appOf func(T) string) (T, error) {
	var none T
	id := r.PathValue("id")
	if !validName(id) {
		return none, notFound
	}
	v, err := get(ctx, id)
	if errors.Is(err, ErrNotFound) || err == nil && appOf(v) != app {
		return none, notFound
	}
	return v, err
}

// appTask returns the task id of app; another app's is not found.
func (h *handler) appTask(ctx context.Context, r *http.Request, app string) (*Task, error) {
	return inApp(ctx, r, app, errTaskNotFound, h.e.Get, func(t *Task) string { return t.AppID })
}

// handleGetTask answers one task.
func (h *handler) handleGetTask(w http.ResponseWriter, r *http.Request, app string) error {
	ctx, cancel := h.storeCtx(r)
	defer cancel()
	t, err := h.appTask(ctx, r, app)
	if err != nil {
		return err
	}
	return h.writeJSON(w, r, http.StatusOK, taskJSON(t))
}

// handleUpdateTask reschedules a pending task.
func (h *handler) handleUpdateTask(w http.ResponseWriter, r *http.Request, app string) error {
	m, err := h.readObject(w, r, false)
	if err != nil {
		return err
	}
	if err := onlyFields(m, "scheduled_run_time"); err != nil {
		return err
	}
	runAt, err := runTimeField(m, "scheduled_run_time", true)
	if err != nil {
		return err
	}
	if err := h.checkHorizon("scheduled_run_time", runAt); err != nil {
		return err
	}
	ctx, cancel := h.storeCtx(r)
	defer cancel()
	t, err := h.appTask(ctx, r, app)
	if err != nil {
		return err
	}
	t, err = h.e.Reschedule(ctx, t.ID, runAt)
	if errors.Is(err, ErrInvalidState) {
		return stateConflict(t, "only a scheduled or retrying task can be rescheduled")
	}
	if err != nil {
		return err
	}
	return h.writeJSON(w, r, http.StatusOK, taskJSON(t))
}

// handleListAttempts answers a task's attempt history.
func (h *handler) handleListAttempts(w http.ResponseWriter, r *http.Request, app string) error {
	ctx, cancel := h.storeCtx(r)
	defer cancel()
	t, err := h.appTask(ctx, r, app)
	if err != nil {
		return err
	}
	as, err := h.e.Attempts(ctx, t.ID)
	if err != nil {
		return err
	}
	if as == nil {
		as = []Attempt{}
	}
	return h.writeJSON(w, r, http.StatusOK, struct {
		Data []Attempt `json:"data"`
	}{as})
}

// handleCancelTask cancels a task, or requests the cancellation of a
// running one. Canceling a canceled task answers it again.
func (h *handler) handleCancelTask(w http.ResponseWriter, r *http.Request, app string) error {
	return h.taskAction(w, r, app, h.e.Cancel, "a completed or failed task cannot be canceled")
}

// handleReplayTask makes a terminal task run again.
func (h *handler) handleReplayTask(w http.ResponseWriter, r *http.Request, app string) error {
	return h.taskAction(w, r, app, h.e.Replay, "only a completed, failed or canceled task can be replayed")
}

// taskAction applies action, which takes no body, to the app's task in the
// path, and answers the task; refused is the 409's reason when the task's
// state does not allow it.
func (h *handler) taskAction(w http.ResponseWriter, r *http.Request, app string,
	action func(ctx context.Context, id string) (*Task, error), refused string) error {
	if err := h.readEmpty(w, r); err != nil {
		return err
	}
	ctx, cancel := h.storeCtx(r)
	defer cancel()
	t, err := h.appTask(ctx, r, app)
	if err != nil {
		return err
	}
	t, err = action(ctx, t.ID)
	if errors.Is(err, ErrInvalidState) {
		return stateConflict(t, refused)
	}
	if err != nil {
		return err
	}
	return h.writeJSON(w, r, http.StatusOK, taskJSON(t))
}

// stateConflict is the 409 of an operation that t's state does not allow.
func stateConflict(t *Task, msg string) error {
	if t != nil {
		return apiErrorf(http.StatusConflict, "", "the task is %s; %s", t.State, msg)
	}
	return apiErrorf(http.StatusConflict, "", "%s", msg)
}

// taskJSON encodes t with its data byte for byte as given (see withData).
func taskJSON(t *Task) encoded {
	return withData(taskHead(t), t.Data)
}

// withData ends the encoded JSON object head, which has no "data" member,
// with a "data" member holding data byte for byte as given (encoding/json
// would compact it and escape HTML characters in it); empty data is null.
func withData(head []byte, data json.RawMessage) encoded {
	if len(data) == 0 {
		data = json.RawMessage("null")
	}
	b := append(head[:len(head)-1], `,"data":`...)
	b = append(b, data...)
	return append(b, '}')
}

// jsonArray encodes items as a JSON array of their encodings by enc.
func jsonArray[T any](items []T, enc func(T) encoded) []byte {
	b := []byte{'['}
	for i, item := range items {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, enc(item)...)
	}
	return append(b, ']')
}

// ---- endpoints

// appEndpoint returns the endpoint id of app; another app's is not found.
func (h *handler) appEndpoint(ctx context.Context, r *http.Request, app string) (*Endpoint, error) {
	return inApp(ctx, r, app, errEndpointNotFound, h.e.Endpoint, func(ep *Endpoint) string { return ep.AppID })
}

// endpointJSON is ep as answered: with its secret only when withSecret.
func endpointJSON(ep *Endpoint, withSecret bool) *Endpoint {
	c := ep.clone()
	if !withSecret {
		c.Secret = ""
	}
	c.PreviousSecret = ""
	return c
}

// handleListEndpoints answers an app's endpoints, oldest first.
func (h *handler) handleListEndpoints(w http.ResponseWriter, r *http.Request, app string) error {
	ctx, cancel := h.storeCtx(r)
	defer cancel()
	eps, err := h.e.Endpoints(ctx, app)
	if err != nil {
		return err
	}
	out := make([]*Endpoint, len(eps))
	for i, ep := range eps {
		out[i] = endpointJSON(ep, false)
	}
	return h.writeJSON(w, r, http.StatusOK, struct {
		Data []*Endpoint `json:"data"`
	}{out})
}

// endpointFields are the fields of an endpoint that a request may set.
var endpointFields = []string{"url", "description", "enabled_events", "status"}

// handleCreateEndpoint creates an endpoint; the answer holds its secret.
func (h *handler) handleCreateEndpoint(w http.ResponseWriter, r *http.Request, app string) error {
	m, err := h.readObject(w, r, false)
	if err != nil {
		return err
	}
	if err := onlyFields(m, endpointFields...); err != nil {
		return err
	}
	ne := NewEndpoint{AppID: app}
	if ne.URL, err = stringField(m, "url", true); err != nil {
		return err
	}
	if ne.Description, err = stringField(m, "description", false); err != nil {
		return err
	}
	if ne.EnabledEvents, err = enabledEventsField(m); err != nil {
		return err
	}
	status, err := stringField(m, "status", false)
	if err != nil {
		return err
	}
	ne.Status = EndpointStatus(status)
	ctx, cancel := h.storeCtx(r)
	defer cancel()
	ep, err := h.e.CreateEndpoint(ctx, ne)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "endpoints/"+ep.ID)
	return h.writeJSON(w, r, http.StatusCreated, endpointJSON(ep, true))
}

// handleGetEndpoint answers one endpoint, without its secret.
func (h *handler) handleGetEndpoint(w http.ResponseWriter, r *http.Request, app string) error {
	ctx, cancel := h.storeCtx(r)
	defer cancel()
	ep, err := h.appEndpoint(ctx, r, app)
	if err != nil {
		return err
	}
	return h.writeJSON(w, r, http.StatusOK, endpointJSON(ep, false))
}

// handleUpdateEndpoint changes the fields given, and answers the endpoint
// without its secret.
func (h *handler) handleUpdateEndpoint(w http.ResponseWriter, r *http.Request, app string) error {
	m, err := h.readObject(w, r, false)
	if err != nil {
		return err
	}
	if err := onlyFields(m, endpointFields...); err != nil {
		return err
	}
	var u EndpointUpdate
	if u.URL, err = optionalString(m, "url"); err != nil {
		return err
	}
	if u.Description, err = optionalString(m, "description"); err != nil {
		return err
	}
	if u.EnabledEvents, err = enabledEventsField(m); err != nil {
		return err
	}
	status, err := optionalString(m, "status")
	if err != nil {
		return err
	}
	if status != nil {
		u.Status = new(EndpointStatus(*status))
	}
	ctx, cancel := h.storeCtx(r)
	defer cancel()
	ep, err := h.appEndpoint(ctx, r, app)
	if err != nil {
		return err
	}
	if ep, err = h.e.UpdateEndpoint(ctx, ep.ID, u); err != nil {
		return err
	}
	return h.writeJSON(w, r, http.StatusOK, endpointJSON(ep, false))
}

// handleDeleteEndpoint deletes an endpoint: 204.
func (h *handler) handleDeleteEndpoint(w http.ResponseWriter, r *http.Request, app string) error {
	ctx, cancel := h.storeCtx(r)
	defer cancel()
	ep, err := h.appEndpoint(ctx, r, app)
	if err != nil {
		return err
	}
	if err := h.e.DeleteEndpoint(ctx, ep.ID); err != nil {
		return notFoundAs(err, errEndpointNotFound) // deleted meanwhile
	}
	return noContent(w)
}

// noContent answers 204 No Content.
func noContent(w http.ResponseWriter) error {
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// notFoundAs returns notFound for an error matching ErrNotFound, such as
// that of an object deleted since the request read it, and err otherwise.
func notFoundAs(err, notFound error) error {
	if errors.Is(err, ErrNotFound) {
		return notFound
	}
	return err
}

// handleRotateSecret gives an endpoint a new secret, which the answer
// shows; the old one keeps signing for overlap_seconds (default one day).
func (h *handler) handleRotateSecret(w http.ResponseWriter, r *http.Request, app string) error {
	m, err := h.readObject(w, r, true)
	if err != nil {
		return err
	}
	if err := onlyFields(m, "overlap_seconds"); err != nil {
		return err
	}
	overlap := defaultSecretOverlap
	if raw, ok := m["overlap_seconds"]; ok {
		n, ok := parseUint(string(raw), uint64(maxSecretOverlap/time.Second))
		if !ok {
			return apiErrorf(http.StatusBadRequest, "overlap_seconds", "overlap_seconds must be a whole number from 0 to %d, not %s",
				int64(maxSecretOverlap/time.Second), excerpt(raw))
		}
		overlap = time.Duration(n) * time.Second
	}
	ctx, cancel := h.storeCtx(r)
	defer cancel()
	ep, err := h.appEndpoint(ctx, r, app)
	if err != nil {
		return err
	}
	if ep, err = h.e.RotateEndpointSecret(ctx, ep.ID, overlap); err != nil {
		return err
	}
	return h.writeJSON(w, r, http.StatusOK, endpointJSON(ep, true))
}

// enabledEventsField reads enabled_events: a list of event types, or the
// string "*" for all. Absent gives nil.
func enabledEventsField(m map[string]json.RawMessage) ([]string, error) {
	raw, ok := m["enabled_events"]
	if !ok {
		return nil, nil
	}
	const want = `enabled_events must be a list of event types, or "*" for all`
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil || s != AllEvents {
			return nil, apiErrorf(http.StatusBadRequest, "enabled_events", "%s, not %s", want, excerpt(raw))
		}
		return []string{AllEvents}, nil
	case '[':
		var items []json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil {
			return nil, apiErrorf(http.StatusBadRequest, "enabled_events", "%s", want)
		}
		events := make([]string, len(items))
		for i, item := range items {
			if item[0] != '"' || json.Unmarshal(item, &events[i]) != nil {
				return nil, apiErrorf(http.StatusBadRequest, "enabled_events", "enabled_events[%d] must be a string, not %s", i, kind(item))
			}
		}
		return events, nil
	}
	return nil, apiErrorf(http.StatusBadRequest, "enabled_events", "%s, not %s", want, kind(raw))
}

// ---- schedules (periodic tasks)

// appPeriodic returns the periodic task id of app; another app's is not
// found.
func (h *handler) appPeriodic(ctx context.Context, r *http.Request, app string) (*PeriodicTask, error) {
	return inApp(ctx, r, app, errScheduleNotFound, h.e.Periodic, func(p *PeriodicTask) string { return p.AppID })
}

// periodicJSON encodes p with its data byte for byte as given (see
// withData).
func periodicJSON(p *PeriodicTask) encoded {
	type periodic PeriodicTask // without its Data
	head, err := json.Marshal(struct {
		*periodic
		Data *struct{} `json:"data,omitempty"` // hides periodic.Data
	}{periodic: (*periodic)(p)})
	if err != nil { // a PeriodicTask always encodes: its times are years 1 to 9999
		panic(err)
	}
	return withData(head, p.Data)
}

// handleListSchedules answers an app's periodic tasks, oldest first.
func (h *handler) handleListSchedules(w http.ResponseWriter, r *http.Request, app string) error {
	ctx, cancel := h.storeCtx(r)
	defer cancel()
	ps, err := h.e.Periodics(ctx, app)
	if err != nil {
		return err
	}
	b := append([]byte(`{"data":`), jsonArray(ps, periodicJSON)...)
	return h.writeJSON(w, r, http.StatusOK, encoded(append(b, '}')))
}

// scheduleFields are the fields of a periodic task that a request may set.
var scheduleFields = []string{"spec", "time_zone", "event_type", "data", "status", "missed"}

// handleCreateSchedule creates a periodic task: spec, event_type and data
// (any JSON value, null included) are required; time_zone defaults to UTC,
// status to active and missed to run_once. An invalid spec or time zone is
// a 422 naming the field. The event type is not checked for a route, unlike
// at task creation: the endpoint or func may be added before the first
// slot, and a task of a slot that has none fails with "no route", visibly
// in the task list.
func (h *handler) handleCreateSchedule(w http.ResponseWriter, r *http.Request, app string) error {
	m, err := h.readObject(w, r, false)
	if err != nil {
		return err
	}
	if err := onlyFields(m, scheduleFields...); err != nil {
		return err
	}
	np := NewPeriodic{AppID: app}
	if np.Spec, err = stringField(m, "spec", true); err != nil {
		return err
	}
	if np.TimeZone, err = stringField(m, "time_zone", false); err != nil {
		return err
	}
	if np.EventType, err = stringField(m, "event_type", true); err != nil {
		return err
	}
	if np.Data, err = h.dataField(m, true); err != nil {
		return err
	}
	status, err := stringField(m, "status", false)
	if err != nil {
		return err
	}
	np.Status = PeriodicStatus(status)
	missed, err := stringField(m, "missed", false)
	if err != nil {
		return err
	}
	np.Missed = MissedPolicy(missed)
	ctx, cancel := h.storeCtx(r)
	defer cancel()
	p, err := h.e.CreatePeriodic(ctx, np)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "schedules/"+p.ID)
	return h.writeJSON(w, r, http.StatusCreated, periodicJSON(p))
}

// handleGetSchedule answers one periodic task.
func (h *handler) handleGetSchedule(w http.ResponseWriter, r *http.Request, app string) error {
	ctx, cancel := h.storeCtx(r)
	defer cancel()
	p, err := h.appPeriodic(ctx, r, app)
	if err != nil {
		return err
	}
	return h.writeJSON(w, r, http.StatusOK, periodicJSON(p))
}

// handleUpdateSchedule changes the fields given (see
// [Engine.UpdatePeriodic]); as at creation, the event type is not checked
// for a route.
func (h *handler) handleUpdateSchedule(w http.ResponseWriter, r *http.Request, app string) error {
	m, err := h.readObject(w, r, false)
	if err != nil {
		return err
	}
	if err := onlyFields(m, scheduleFields...); err != nil {
		return err
	}
	var u PeriodicUpdate
	if u.Spec, err = optionalString(m, "spec"); err != nil {
		return err
	}
	if u.TimeZone, err = optionalString(m, "time_zone"); err != nil {
		return err
	}
	if u.EventType, err = optionalString(m, "event_type"); err != nil {
		return err
	}
	if u.Data, err = h.dataField(m, false); err != nil {
		return err
	}
	status, err := optionalString(m, "status")
	if err != nil {
		return err
	}
	if status != nil {
		u.Status = new(PeriodicStatus(*status))
	}
	missed, err := optionalString(m, "missed")
	if err != nil {
		return err
	}
	if missed != nil {
		u.Missed = new(MissedPolicy(*missed))
	}
	ctx, cancel := h.storeCtx(r)
	defer cancel()
	p, err := h.appPeriodic(ctx, r, app)
	if err != nil {
		return err
	}
	if p, err = h.e.UpdatePeriodic(ctx, p.ID, u); err != nil {
		return notFoundAs(err, errScheduleNotFound)
	}
	return h.writeJSON(w, r, http.StatusOK, periodicJSON(p))
}

// handleDeleteSchedule deletes a periodic task: 204. The tasks it enqueued
// stay.
func (h *handler) handleDeleteSchedule(w http.ResponseWriter, r *http.Request, app string) error {
	ctx, cancel := h.storeCtx(r)
	defer cancel()
	p, err := h.appPeriodic(ctx, r, app)
	if err != nil {
		return err
	}
	if err := h.e.DeletePeriodic(ctx, p.ID); err != nil {
		return notFoundAs(err, errScheduleNotFound)
	}
	return noContent(w)
}

// handlePauseSchedule sets a periodic task's status to paused.
func (h *handler) handlePauseSchedule(w http.ResponseWriter, r *http.Request, app string) error {
	return h.setScheduleStatus(w, r, app, PeriodicPaused)
}

// handleResumeSchedule sets a periodic task's status to active; its next
// slot is the first from now, the slots that passed while it was paused
// are not caught up on.
func (h *handler) handleResumeSchedule(w http.ResponseWriter, r *http.Request, app string) error {
	return h.setScheduleStatus(w, r, app, PeriodicActive)
}

// setScheduleStatus sets a periodic task's status and answers it. It takes
// no body, or {}. A task that has the status already is answered as it is,
// unchanged, so that pausing or resuming twice gives the same answer.
func (h *handler) setScheduleStatus(w http.ResponseWriter, r *http.Request, app string, status PeriodicStatus) error {
	if err := h.readEmpty(w, r); err != nil {
		return err
	}
	ctx, cancel := h.storeCtx(r)
	defer cancel()
	p, err := h.appPeriodic(ctx, r, app)
	if err != nil {
		return err
	}
	if p.Status != status {
		if p, err = h.e.UpdatePeriodic(ctx, p.ID, PeriodicUpdate{Status: &status}); err != nil {
			return notFoundAs(err, errScheduleNotFound)
		}
	}
	return h.writeJSON(w, r, http.StatusOK, periodicJSON(p))
}

// ---- request bodies

// readObject reads a request body that must be one strict JSON object and
// returns its members, their values byte for byte. An optional body may be
// empty, which gives no members.
func (h *handler) readObject(w http.ResponseWriter, r *http.Request, optional bool) (map[string]json.RawMessage, error) {
	if optional && r.ContentLength == 0 {
		return map[string]json.RawMessage{}, nil
	}
	if !optional {
		if err := checkContentType(r); err != nil {
			return nil, err
		}
	}
	if r.ContentLength > h.maxBody {
		return nil, &http.MaxBytesError{Limit: h.maxBody}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.maxBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, err
		}
		return nil, apiErrorf(http.StatusBadRequest, "", "reading the body: %v", err)
	}
	if len(body) == 0 {
		if optional {
			return map[string]json.RawMessage{}, nil
		}
		return nil, apiErrorf(http.StatusBadRequest, "", "the body is empty; send a JSON object")
	}
	if optional {
		if err := checkContentType(r); err != nil {
			return nil, err
		}
	}
	if err := checkJSON(body); err != nil {
		return nil, err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil { // checkJSON let through only an object
		return nil, apiErrorf(http.StatusBadRequest, "", "the body is not a JSON object: %v", err)
	}
	return m, nil
}

// readEmpty reads the body of a request that takes none: it may be empty,
// or the empty object.
func (h *handler) readEmpty(w http.ResponseWriter, r *http.Request) error {
	m, err := h.readObject(w, r, true)
	if err != nil {
		return err
	}
	return onlyFields(m)
}

// checkContentType refuses a body that is not declared application/json.
func checkContentType(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return apiErrorf(http.StatusUnsupportedMediaType, "", "missing Content-Type; send application/json")
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return apiErrorf(http.StatusUnsupportedMediaType, "", "Content-Type %s is not supported; send application/json", quote(ct))
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return apiErrorf(http.StatusUnsupportedMediaType, "", "charset %s is not supported; send UTF-8", quote(cs))
	}
	return nil
}

// checkJSON checks that body is one JSON object, valid UTF-8, with no
// duplicate member names at any level, nested at most maxJSONDepth deep,
// and nothing after it but white space.
func checkJSON(body []byte) error {
	if !utf8.Valid(body) {
		i := 0
		for i < len(body) {
			r, n := utf8.DecodeRune(body[i:])
			if r == utf8.RuneError && n <= 1 {
				break
			}
			i += n
		}
		return apiErrorf(http.StatusBadRequest, "", "the body is not valid UTF-8 (at byte %d)", i)
	}
	type frame struct {
		object  bool
		wantKey bool // an object's next token is a member name or its end
		names   map[string]bool
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber() // numbers stay text: none is too large to check
	var stack []*frame
	syntax := func(err error) error {
		return apiErrorf(http.StatusBadRequest, "", "the body is not valid JSON: %v (at byte %d)", err, dec.InputOffset())
	}
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return apiErrorf(http.StatusBadRequest, "", "the body is not valid JSON: unexpected end")
		}
		if err != nil {
			return syntax(err)
		}
		if len(stack) == 0 && tok != json.Delim('{') {
			return apiErrorf(http.StatusBadRequest, "", "the body must be a JSON object, not %s", tokenKind(tok))
		}
		if n := len(stack); n > 0 && stack[n-1].wantKey {
			if name, ok := tok.(string); ok {
				top := stack[n-1]
				if top.names[name] {
					return apiErrorf(http.StatusBadRequest, fieldName(name), "duplicate member %s in a JSON object (at byte %d)", quote(name), dec.InputOffset())
				}
				top.names[name] = true
				top.wantKey = false
				continue
			}
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			if len(stack) == maxJSONDepth {
				return apiErrorf(http.StatusBadRequest, "", "the body is nested more than %d levels deep", maxJSONDepth)
			}
			f := &frame{object: tok == json.Delim('{')}
			if f.object {
				f.wantKey, f.names = true, make(map[string]bool)
			}
			stack = append(stack, f)
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		// A value ended.
		if len(stack) == 0 {
			break
		}
		if top := stack[len(stack)-1]; top.object {
			top.wantKey = true
		}
	}
	if _, err := dec.Token(); err != io.EOF {
		return apiErrorf(http.StatusBadRequest, "", "trailing data after the JSON object (at byte %d)", dec.InputOffset())
	}
	return nil
}

// onlyFields refuses members of m not named in names, with a hint for a
// name that differs only in case (names are case-sensitive).
func onlyFields(m map[string]json.RawMessage, names ...string) error {
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if slices.Contains(names, k) {
			continue
		}
		for _, n := range names {
			if strings.EqualFold(k, n) {
				return apiErrorf(http.StatusBadRequest, fieldName(k), "unknown field %s: field names are case-sensitive; did you mean %q?", quote(k), n)
			}
		}
		if len(names) == 0 {
			return apiErrorf(http.StatusBadRequest, fieldName(k), "unknown field %s: this request takes no fields", quote(k))
		}
		return apiErrorf(http.StatusBadRequest, fieldName(k), "unknown field %s; the fields are %s", quote(k), strings.Join(names, ", "))
	}
	return nil
}

// stringField reads member name of m, which must be a JSON string when
// present; required says whether it must be present.
func stringField(m map[string]json.RawMessage, name string, required bool) (string, error) {
	raw, ok := m[name]
	if !ok {
		if required {
			return "", apiErrorf(http.StatusBadRequest, name, "%s is required", name)
		}
		return "", nil
	}
	var s string
	if raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return "", apiErrorf(http.StatusBadRequest, name, "%s must be a string, not %s", name, kind(raw))
	}
	return s, nil
}

// dataField reads data: any JSON value, null included, kept byte for byte,
// of at most Config.MaxDataBytes (413 beyond). Absent gives nil, or a 400
// when required. A lone UTF-16 surrogate escape ("\ud800") gets a 400: the
// answers, which hold data as given, must be I-JSON (see validateData).
func (h *handler) dataField(m map[string]json.RawMessage, required bool) (json.RawMessage, error) {
	data, ok := m["data"]
	if !ok {
		if required {
			return nil, apiErrorf(http.StatusBadRequest, "data", "data is required (any JSON value, null included)")
		}
		return nil, nil
	}
	if len(data) > h.e.cfg.MaxDataBytes {
		return nil, apiErrorf(http.StatusRequestEntityTooLarge, "data", "data is %d bytes, more than the limit of %d", len(data), h.e.cfg.MaxDataBytes)
	}
	if err := validateData(data); err != nil {
		return nil, badRequest(err)
	}
	return data, nil
}

// optionalString reads member name of m, which must be a JSON string when
// present; absent gives nil.
func optionalString(m map[string]json.RawMessage, name string) (*string, error) {
	if _, ok := m[name]; !ok {
		return nil, nil
	}
	s, err := stringField(m, name, true)
	if err != nil {
		return nil, err
	}
	return &s, nil
}

// runTimeField reads a run time: an RFC 3339 string with an offset. Absent
// or null gives the zero time, unless required.
func runTimeField(m map[string]json.RawMessage, name string, required bool) (time.Time, error) {
	raw, ok := m[name]
	if !required && (!ok || string(raw) == "null") {
		return time.Time{}, nil
	}
	s, err := stringField(m, name, true)
	if err != nil {
		return time.Time{}, err
	}
	t, err := parseRunTime(s)
	if err != nil {
		return time.Time{}, apiErrorf(http.StatusBadRequest, name, "%s %v", name, err)
	}
	return t, nil
}

var (
	rfc3339         = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})$`)
	rfc3339NoOffset = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?$`)
)

// parseRunTime parses an RFC 3339 date-time with a UTC offset, "Z" or
// "±hh:mm" (such as 2026-12-01T10:00:00+05:30), with at most nanosecond
// precision, and returns it in UTC. A time without an offset is refused:
// its meaning would depend on the server's zone. So are dates alone and
// times outside the years 0001 to 9999 in UTC, and 0001-01-01T00:00:00Z,
// which is Go's zero time: "no run time".
func parseRunTime(s string) (time.Time, error) {
	if !rfc3339.MatchString(s) {
		if rfc3339NoOffset.MatchString(s) {
			return time.Time{}, fmt.Errorf("%s has no UTC offset; end it with Z or ±hh:mm, as in 2026-12-01T10:00:00Z", quote(s))
		}
		return time.Time{}, fmt.Errorf("%s is not an RFC 3339 date-time with an offset, such as 2026-12-01T10:00:00Z or 2026-12-01T10:00:00+05:30", quote(s))
	}
	if off := s[len(s)-6:]; off[0] == '+' || off[0] == '-' {
		if off[1:3] > "23" || off[4:6] > "59" { // time.Parse allows up to 24:59
			return time.Time{}, fmt.Errorf("%s has an offset out of range; RFC 3339 allows -23:59 to +23:59", quote(s))
		}
	}
	t, err := time.Parse(time.RFC3339Nano, strings.ToUpper(s))
	if err != nil {
		var pe *time.ParseError
		if errors.As(err, &pe) && pe.Message != "" {
			return time.Time{}, fmt.Errorf("%s is not a valid time%s", quote(s), pe.Message)
		}
		return time.Time{}, fmt.Errorf("%s is not a valid time", quote(s))
	}
	t = t.UTC()
	if y := t.Year(); y < 1 || y > 9999 || t.IsZero() {
		return time.Time{}, fmt.Errorf("%s is out of range: after 0001-01-01T00:00:00Z and before 10000-01-01T00:00:00Z", quote(s))
	}
	return t, nil
}

// kind names the JSON type of a value, for messages.
func kind(raw json.RawMessage) string {
	switch raw[0] {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// tokenKind names the JSON type of a token, for messages.
func tokenKind(tok json.Token) string {
	switch tok.(type) {
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	if tok == json.Delim('[') {
		return "an array"
	}
	return "an object"
}

// quote quotes s for a message, cut to 64 bytes.
func quote(s string) string {
	if len(s) > 64 {
		return strconv.Quote(strings.ToValidUTF8(s[:64], "")) + "…"
	}
	return strconv.Quote(s)
}

// fieldName is a member name for the field of a problem, cut to 64 bytes.
func fieldName(s string) string {
	if len(s) > 64 {
		s = s[:64]
	}
	return strings.ToValidUTF8(s, "")
}

// excerpt is the start of a JSON value, for messages.
func excerpt(raw json.RawMessage) string {
	if len(raw) > 64 {
		return string(raw[:64]) + "…"
	}
	return string(raw)
}

// ---- answers

// encoded is JSON ready to send.
type encoded []byte

// apiError is an error answer: its status, the field at fault if any, and
// the message.
type apiError struct {
	status int
	field  string
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func apiErrorf(status int, field, format string, args ...any) *apiError {
	return &apiError{status, field, fmt.Sprintf(format, args...)}
}

// badRequest turns a *ValidationError of the request's syntax into a 400.
func badRequest(err error) error {
	var ve *ValidationError
	if errors.As(err, &ve) {
		return apiErrorf(http.StatusBadRequest, ve.Field, "invalid %s: %s", ve.Field, ve.Message)
	}
	return err
}

// Errors answered as they are.
var (
	errMissingKey       = apiErrorf(http.StatusUnauthorized, "", "missing API key; send Authorization: Bearer <key>")
	errInvalidKey       = apiErrorf(http.StatusUnauthorized, "", "invalid API key")
	errAppNotFound      = apiErrorf(http.StatusNotFound, "", "no such app for this API key")
	errTaskNotFound     = apiErrorf(http.StatusNotFound, "", "no task with this ID in this app")
	errEndpointNotFound = apiErrorf(http.StatusNotFound, "", "no endpoint with this ID in this app")
	errScheduleNotFound = apiErrorf(http.StatusNotFound, "", "no schedule with this ID in this app")
	errUnknownPath      = apiErrorf(http.StatusNotFound, "", "no API route matches this path")
	errInternal         = apiErrorf(http.StatusInternalServerError, "", "internal error")
	errUnavailable      = apiErrorf(http.StatusServiceUnavailable, "", "the task store is unavailable; try again later")
)

// problem is an RFC 9457 problem detail, with the message also in "error"
// for HostedHooks clients.
type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Error  string `json:"error"`
	Field  string `json:"field,omitempty"`
}

// writeJSON answers status with v, JSON-encoded unless it is encoded
// already; a *problem goes as application/problem+json. It returns nil, so
// that a handler can end with it.
func (h *handler) writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) error {
	ct := "application/json"
	if _, ok := v.(*problem); ok {
		ct = "application/problem+json"
	}
	b, ok := v.(encoded)
	if !ok {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false) // not HTML: keep <key> readable
		if err := enc.Encode(v); err == nil {
			b = bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
		} else {
			h.log.ErrorContext(r.Context(), "tasks: API answer not encodable", "method", r.Method, "path", r.URL.Path, "err", err)
			status, ct = http.StatusInternalServerError, "application/problem+json"
			b = []byte(`{"type":"about:blank","title":"Internal Server Error","status":500,"detail":"internal error","error":"internal error"}`)
		}
	}
	setHeaders(w.Header(), ct)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
	return nil
}

// setHeaders sets the headers of every JSON answer of content type ct.
func setHeaders(hdr http.Header, ct string) {
	hdr.Set("Content-Type", ct)
	hdr.Set("Cache-Control", "no-store") // answers may hold secrets
	hdr.Set("X-Content-Type-Options", "nosniff")
}

// writeError answers err as a problem. Errors of the request become 4xx;
// an unexpected error, which is the store's, becomes a 503 with
// Retry-After, and is logged: it may hold SQL text, which the client never
// sees.
func (h *handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var (
		ae       *apiError
		ve       *ValidationError
		tooLarge *http.MaxBytesError
	)
	switch {
	case errors.As(err, &ae):
	case errors.As(err, &tooLarge):
		ae = apiErrorf(http.StatusRequestEntityTooLarge, "", "the body is larger than %d bytes", tooLarge.Limit)
	case errors.As(err, &ve):
		ae = apiErrorf(http.StatusUnprocessableEntity, ve.Field, "invalid %s: %s", ve.Field, ve.Message)
	case errors.Is(err, ErrNotFound):
		ae = apiErrorf(http.StatusNotFound, "", "not found")
	case errors.Is(err, ErrInvalidState):
		ae = apiErrorf(http.StatusConflict, "", "the task's state does not allow this")
	case errors.Is(err, ErrDuplicate):
		ae = apiErrorf(http.StatusConflict, "Idempotency-Key", "a task with this Idempotency-Key exists")
	case errors.Is(err, ErrConflict):
		ae = apiErrorf(http.StatusConflict, "", "changed concurrently by other requests; try again")
	default:
		ae = errUnavailable
		level := slog.LevelError
		if r.Context().Err() != nil {
			level = slog.LevelInfo // the client went away
		}
		h.log.Log(r.Context(), level, "tasks: API request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	if ae.status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", retryAfter)
	}
	h.writeJSON(w, r, ae.status, &problem{
		Type:   "about:blank",
		Title:  http.StatusText(ae.status),
		Status: ae.status,
		Detail: ae.msg,
		Error:  ae.msg,
		Field:  ae.field,
	})
}
