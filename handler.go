package tasks

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/taskwheel/tasks/internal/web"
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
	// hold at once: their data and last errors, and 1 KiB a task for the
	// rest. Before each read of the store, of up to 100 tasks, a listing
	// reserves room for what the rest of its page may take, at most a
	// quarter of MaxListBytes and at least Config.MaxDataBytes plus 16 KiB
	// (one task, which a listing may thus always read); it gives back what
	// the tasks read do not take, and what each takes once it is sent. A
	// listing waits for its reservation until the store's timeout (5
	// seconds), then answers 503, or ends its page early with a
	// next_cursor if it has sent part of it. Defaults to 4 × MaxPageBytes.
	MaxListBytes int64
	// BulkTimeout bounds the time one bulk request (tasks/replay,
	// tasks/cancel) works before it answers: when the batch that passes it
	// ends, the answer says how many tasks the request changed and gives a
	// next_cursor, which the same request with that cursor goes on from.
	// It should be shorter than the server's WriteTimeout. Defaults to 20
	// seconds, which tasksd's 30-second WriteTimeout leaves room for.
	BulkTimeout time.Duration
	// HostedHooksLists, when true, answers GET /apps/{app_id}/endpoints as
	// HostedHooks' API does: a bare JSON array, a page at a time (page,
	// per_page and offset), rather than {"data": [...]}, so that
	// HostedHooks' SDKs, which read an array, work unchanged. Mount such a
	// handler beside the usual one, under its own prefix, as cmd/tasksd
	// does at /hostedhooks/api/v1. The HostedHooks routes (messages,
	// webhook_attempts, webhook_events) answer bare arrays either way.
	// Defaults to false.
	HostedHooksLists bool
	// Logger receives what answers leave out: the errors behind 5xx
	// answers. Defaults to the engine's logger (Config.Logger).
	Logger *slog.Logger
}

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
)

// Handler returns the engine's HTTP API: HostedHooks' "create task" and the
// rest of a task's life, the app's webhook endpoints, and its schedules
// (periodic tasks, see [PeriodicTask]). Mount it under any prefix with
// [http.StripPrefix]:
//
//	POST   /apps/{app_id}/tasks                     create a task (201); Idempotency-Key honoured; max_attempts, timeout (seconds)
//	GET    /apps/{app_id}/tasks                     list: ?status=&event_type=&limit=&cursor=, newest first, in pages of MaxPageBytes at most
//	GET    /apps/{app_id}/tasks/{id}                one task
//	PATCH  /apps/{app_id}/tasks/{id}                {"scheduled_run_time": ...}: reschedule a pending task
//	GET    /apps/{app_id}/tasks/{id}/attempts       its attempt history
//	POST   /apps/{app_id}/tasks/{id}/cancel         cancel (a running task: request it)
//	POST   /apps/{app_id}/tasks/{id}/replay         run a terminal task again
//	DELETE /apps/{app_id}/tasks/{id}                delete a task that is not running, with its attempts (204)
//	POST   /apps/{app_id}/tasks/replay              replay the failed tasks of a filter: {"replayed": n, "next_cursor": c}
//	POST   /apps/{app_id}/tasks/cancel              cancel the scheduled and retrying tasks of a filter: {"canceled": n, "next_cursor": c}
//	GET    /apps/{app_id}/endpoints                 list webhook endpoints (see HandlerConfig.HostedHooksLists)
//	POST   /apps/{app_id}/endpoints                 create one (201); the answer shows its secret
//	GET    /apps/{app_id}/endpoints/{id}            one endpoint
//	PATCH  /apps/{app_id}/endpoints/{id}            change url, description, enabled_events, status, version
//	DELETE /apps/{app_id}/endpoints/{id}            delete it (204)
//	POST   /apps/{app_id}/endpoints/{id}/rotate_secret  new secret; {"overlap_seconds": n}, default 1 day
//	POST   /apps/{app_id}/messages                  HostedHooks: send a message now (201): a task due now, for the endpoints
//	GET    /apps/{app_id}/webhook_attempts          HostedHooks: the app's deliveries, newest first: ?page=&per_page=&offset=
//	GET    /apps/{app_id}/webhook_attempts/{id}     HostedHooks: one delivery
//	GET    /apps/{app_id}/webhook_events            HostedHooks: the event types the app's endpoints subscribe to
//	GET    /apps/{app_id}/schedules                 list periodic tasks
//	POST   /apps/{app_id}/schedules                 create one (201): spec, time_zone, event_type, data, status, missed
//	GET    /apps/{app_id}/schedules/{id}            one periodic task, with next_run_at, last_run_at, last_task_id
//	PATCH  /apps/{app_id}/schedules/{id}            change any of spec, time_zone, event_type, data, status, missed
//	DELETE /apps/{app_id}/schedules/{id}            delete it (204); the tasks it enqueued stay
//	POST   /apps/{app_id}/schedules/{id}/pause      set status paused
//	POST   /apps/{app_id}/schedules/{id}/resume     set status active; the next slot is the first from now
//	GET    /openapi.json                            the OpenAPI 3.1 document of all of the above; needs no key
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
// creates nothing: the request that created the task, sent again (the same
// event type, run time and data, data compared as a JSON value, white space
// and member order aside), gets that task as it is now, 201 with
// Idempotent-Replayed: true, whatever changed since (a PATCH included);
// another request gets 422.
//
// The bulk routes, tasks/replay and tasks/cancel, take a filter
// {"event_type": ..., "created_since": ..., "created_before": ...,
// "cursor": ...}: the event type is optional, both times (RFC 3339 with an
// offset) are required, created_since inclusive, created_before exclusive
// and later. They work through the app's tasks created in that range,
// newest first, in batches of 500, each one atomic step of the store (a
// batch the store does not finish in 10 seconds ends the request with a
// 503), and answer {"replayed" or "canceled": n, "next_cursor": c}: n
// counts what this request changed; c is null once the range is done, and
// otherwise (BulkTimeout passed) the "cursor" to send the same filter with
// to go on. A request whose client goes away stops after a whole batch,
// having changed whole batches only; sending it again is safe, and
// finishes the rest. Bulk cancel leaves running tasks alone.
//
// A task's max_attempts (1 to 100) and timeout (whole seconds, 1 to 86400:
// a day) override the engine's Config.MaxAttempts and Config.Timeout for
// it; the task's answer shows its timeout in seconds, when it has one.
//
// The HostedHooks routes answer as HostedHooks' API and its SDK
// (HostedHooks/hostedhooks-node) do. A message ({"event_type", "data",
// "version", "event_id"}) is a task due now, delivered to the app's active
// endpoints subscribed to its event type (or run by the func registered
// for it, as any task); event_id, or the Idempotency-Key header, is its
// idempotency key, as for a task; override_payload true is refused with
// 422. Its answer is HostedHooks' message, with the task's ID and status.
// A webhook attempt is one delivery to one endpoint: its ID is the task's
// ID, the attempt number and the endpoint's ID, joined by dots; its
// status_code is a string, as the SDK types it; payload.version is the
// endpoint's version. The lists answer bare JSON arrays: per_page items
// (1 to 100, default 25) after skipping (page-1)×per_page + offset, at
// most 10000; webhook_events lists the event types the app's endpoints
// name in enabled_events, each with the creation time of the oldest
// endpoint naming it. Endpoints carry version, a string kept for
// HostedHooks clients that deliveries do not depend on, and
// webhook_events, their enabled_events as HostedHooks' webhook events.
//
// Creating a task refuses with 422 an event type that nothing would run: no
// func registered and no active endpoint of the app subscribed. A schedule's
// event type is not checked so: its first task may be due long after, when
// the endpoint or func exists; a task of a slot that has no route then fails
// with "no route", in the task list.
//
// Handler panics if cfg has no Keys and not Unauthenticated, has both, has
// an empty key, a key with no apps or an invalid app ID, or a negative
// MaxBodyBytes, Horizon, MaxPageBytes, MaxListBytes or BulkTimeout. The handler is safe
// for concurrent use.
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
		bulkTimeout:  cmp.Or(c.BulkTimeout, defaultBulkTimeout),

		hostedHooksLists: c.HostedHooksLists,
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
	h.keys = web.ParseKeys("Handler", c.Keys)

	h.route("POST /apps/{app_id}/tasks", h.handleCreateTask)
	h.route("GET /apps/{app_id}/tasks", h.handleListTasks)
	h.route("GET /apps/{app_id}/tasks/{id}", h.handleGetTask)
	h.route("PATCH /apps/{app_id}/tasks/{id}", h.handleUpdateTask)
	h.route("GET /apps/{app_id}/tasks/{id}/attempts", h.handleListAttempts)
	h.route("POST /apps/{app_id}/tasks/{id}/cancel", h.handleCancelTask)
	h.route("POST /apps/{app_id}/tasks/{id}/replay", h.handleReplayTask)
	h.route("DELETE /apps/{app_id}/tasks/{id}", h.handleDeleteTask)
	h.route("POST /apps/{app_id}/tasks/replay", h.handleReplayTasks)
	h.route("POST /apps/{app_id}/tasks/cancel", h.handleCancelTasks)
	h.route("GET /apps/{app_id}/endpoints", h.handleListEndpoints)
	h.route("POST /apps/{app_id}/endpoints", h.handleCreateEndpoint)
	h.route("GET /apps/{app_id}/endpoints/{id}", h.handleGetEndpoint)
	h.route("PATCH /apps/{app_id}/endpoints/{id}", h.handleUpdateEndpoint)
	h.route("DELETE /apps/{app_id}/endpoints/{id}", h.handleDeleteEndpoint)
	h.route("POST /apps/{app_id}/endpoints/{id}/rotate_secret", h.handleRotateSecret)
	h.route("POST /apps/{app_id}/messages", h.handleCreateMessage)
	h.route("GET /apps/{app_id}/webhook_attempts", h.handleListWebhookAttempts)
	h.route("GET /apps/{app_id}/webhook_attempts/{id}", h.handleGetWebhookAttempt)
	h.route("GET /apps/{app_id}/webhook_events", h.handleListWebhookEvents)
	h.route("GET /apps/{app_id}/schedules", h.handleListSchedules)
	h.route("POST /apps/{app_id}/schedules", h.handleCreateSchedule)
	h.route("GET /apps/{app_id}/schedules/{id}", h.handleGetSchedule)
	h.route("PATCH /apps/{app_id}/schedules/{id}", h.handleUpdateSchedule)
	h.route("DELETE /apps/{app_id}/schedules/{id}", h.handleDeleteSchedule)
	h.route("POST /apps/{app_id}/schedules/{id}/pause", h.handlePauseSchedule)
	h.route("POST /apps/{app_id}/schedules/{id}/resume", h.handleResumeSchedule)
	h.route("GET /apps/{app_id}/limits", h.handleListLimits)
	h.route("PUT /apps/{app_id}/limits/{key}", h.handlePutLimit)
	h.route("GET /apps/{app_id}/limits/{key}", h.handleGetLimit)
	h.route("DELETE /apps/{app_id}/limits/{key}", h.handleDeleteLimit)
	h.patterns["GET /openapi.json"] = true // no key: the document holds no app's data
	h.mux.HandleFunc("GET /openapi.json", h.handleOpenAPI)
	return h
}

// handler serves the API of one engine.
type handler struct {
	e            *Engine
	mux          *http.ServeMux
	patterns     map[string]bool // the patterns registered with mux
	keys         []web.Key
	open         bool // Unauthenticated
	maxBody      int64
	horizon      time.Duration
	maxPage      int // bytes of task JSON in a page of a listing
	lists        *listBudget
	log          *slog.Logger
	now          func() time.Time
	storeTimeout time.Duration
	bulkTimeout  time.Duration

	hostedHooksLists bool // HandlerConfig.HostedHooksLists
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
	if p := r.URL.EscapedPath(); p != web.CleanPath(p) {
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
	var key *web.Key
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
	if !web.ValidName(app) {
		return "", apiErrorf(http.StatusBadRequest, "app_id", "invalid app ID: use 1 to %d letters, digits and . _ : -", MaxIDLength)
	}
	if key != nil && !key.Grants(app) {
		return "", errAppNotFound
	}
	return app, nil
}

// authenticate finds the key of a request's "Authorization: Bearer" header
// with web.FindKey, in constant time.
func (h *handler) authenticate(r *http.Request) (*web.Key, error) {
	values := r.Header.Values("Authorization")
	if len(values) == 0 {
		return nil, errMissingKey
	}
	scheme, token, ok := strings.Cut(values[0], " ")
	token = strings.TrimLeft(token, " ")
	if len(values) != 1 || !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return nil, errInvalidKey
	}
	match := web.FindKey(h.keys, token)
	if match < 0 {
		return nil, errInvalidKey
	}
	return &h.keys[match], nil
}

// storeCtx bounds the store calls of a request.
func (h *handler) storeCtx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), h.storeTimeout)
}

// ---- answers

// encoded is JSON ready to send.
type encoded []byte

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

// notFoundAs returns notFound for an error matching ErrNotFound, such as
// that of an object deleted since the request read it, and err otherwise.
func notFoundAs(err, notFound error) error {
	if errors.Is(err, ErrNotFound) {
		return notFound
	}
	return err
}

// Errors answered as they are.
var (
	errMissingKey       = apiErrorf(http.StatusUnauthorized, "", "missing API key; send Authorization: Bearer <key>")
	errInvalidKey       = apiErrorf(http.StatusUnauthorized, "", "invalid API key")
	errAppNotFound      = apiErrorf(http.StatusNotFound, "app_id", "no such app for this API key")
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

// noContent answers 204 No Content.
func noContent(w http.ResponseWriter) error {
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
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
	case errors.Is(err, ErrOverloaded):
		// Config.MaxWaiting: a backlog that clears in moments, not an
		// outage.
		w.Header().Set("Retry-After", "1")
		ae = apiErrorf(http.StatusServiceUnavailable, "", "too many tasks waiting to run; try again shortly")
	default:
		ae = errUnavailable
		web.LogFailed(h.log, r, "API", err)
	}
	if ae.status == http.StatusServiceUnavailable && w.Header().Get("Retry-After") == "" {
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
