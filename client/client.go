// Package client is a Go client of the HTTP API of a remote tasks engine,
// such as cmd/tasksd serves at /api/v1: tasks (create, get, list, cancel,
// reschedule, replay, delete, bulk replay and cancel, attempts), webhook
// endpoints, schedules (periodic tasks) and flow control limits. The API is described by the
// OpenAPI 3.1 document that the server serves at /openapi.json; this
// package's types mirror its schemas and import nothing of the engine.
//
// Every error answer is an [*Error] holding the server's problem detail;
// errors.Is matches it with [ErrNotFound], [ErrConflict], [ErrUnauthorized],
// [ErrUnavailable] and [ErrInvalid] by its status.
//
// The calls that are safe to send again are retried after a network error
// or a 429, 502, 503 or 504 answer, a bounded number of times with
// exponential backoff and jitter, waiting as long as a Retry-After answer
// header asks (see [Config]): the reads (GetTask, ListTasks, Tasks,
// Attempts, Endpoints, GetEndpoint, Schedules, GetSchedule, GetLimit,
// Limits), CreateTask with an IdempotencyKey, and the calls that the
// server answers the same when sent twice (CancelTask, ReplayTasks,
// CancelTasks, PauseSchedule, ResumeSchedule, SetLimit). The others are
// sent once.
//
// A Client is safe for concurrent use.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"math/rand/v2"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Config configures a Client. A nil *Config is the zero Config.
type Config struct {
	// Key is the API key, sent as "Authorization: Bearer <Key>". Defaults
	// to "", which sends no key: for a server that needs none.
	Key string
	// HTTPClient sends the requests. Defaults to a client of
	// http.DefaultTransport with a 30-second Timeout.
	HTTPClient *http.Client
	// MaxRetries bounds the retries of a call that is safe to send again
	// (see the package doc). Defaults to 3; -1 means none.
	MaxRetries int
	// MinBackoff is the wait before the first retry, doubled before each
	// next one up to MaxBackoff, and drawn at random between half of that
	// and all of it. Defaults to 200 milliseconds.
	MinBackoff time.Duration
	// MaxBackoff bounds the wait before a retry, one that a Retry-After
	// header asks for included: an answer asking for a longer wait is
	// returned as its *Error, not retried. Defaults to 10 seconds.
	MaxBackoff time.Duration
}

// Defaults of Config.
const (
	DefaultMaxRetries = 3
	DefaultMinBackoff = 200 * time.Millisecond
	DefaultMaxBackoff = 10 * time.Second
)

// Client calls the API at one base URL.
type Client struct {
	base       *url.URL
	key        string
	hc         *http.Client
	maxRetries int
	minBackoff time.Duration
	maxBackoff time.Duration
}

// New returns a client of the API at baseURL, such as
// "http://localhost:8080/api/v1" for cmd/tasksd. It refuses a base URL that
// is not an absolute http or https URL, and a negative MinBackoff or
// MaxBackoff, or a MaxRetries below -1.
func New(baseURL string, cfg *Config) (*Client, error) {
	var c Config
	if cfg != nil {
		c = *cfg
	}
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("tasks: client: base URL %q is not an absolute http or https URL", baseURL)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	switch {
	case c.MaxRetries < -1:
		return nil, fmt.Errorf("tasks: client: MaxRetries %d is below -1", c.MaxRetries)
	case c.MinBackoff < 0:
		return nil, fmt.Errorf("tasks: client: MinBackoff %v is negative", c.MinBackoff)
	case c.MaxBackoff < 0:
		return nil, fmt.Errorf("tasks: client: MaxBackoff %v is negative", c.MaxBackoff)
	}
	cl := &Client{base: u, key: c.Key, hc: c.HTTPClient, maxRetries: c.MaxRetries,
		minBackoff: c.MinBackoff, maxBackoff: c.MaxBackoff}
	if cl.hc == nil {
		cl.hc = &http.Client{Timeout: 30 * time.Second}
	}
	switch cl.maxRetries {
	case 0:
		cl.maxRetries = DefaultMaxRetries
	case -1:
		cl.maxRetries = 0
	}
	if cl.minBackoff == 0 {
		cl.minBackoff = DefaultMinBackoff
	}
	if cl.maxBackoff == 0 {
		cl.maxBackoff = DefaultMaxBackoff
	}
	return cl, nil
}

// call is one API call.
type call struct {
	method string
	path   string // escaped, from the base URL: /apps/…
	query  url.Values
	body   any // JSON-encoded, unless nil
	header http.Header
	retry  bool // safe to send again
	out    any  // the 2xx answer decodes into it, unless nil
}

// encoded is a request body ready to send.
type encoded []byte

// withData encodes head, a struct without its data, as a JSON object, and
// adds to it a "data" member holding data byte for byte (encoding/json
// would compact it); nil data is null. It refuses data that is not valid
// JSON.
func withData(head any, data json.RawMessage) (encoded, error) {
	if data == nil {
		data = json.RawMessage("null")
	}
	if !json.Valid(data) {
		return nil, fmt.Errorf("tasks: client: data is not valid JSON")
	}
	b, err := json.Marshal(head)
	if err != nil {
		return nil, fmt.Errorf("tasks: client: %w", err)
	}
	if string(b) != "{}" {
		b = append(b[:len(b)-1], ',')
	} else {
		b = b[:1]
	}
	b = append(b, `"data":`...)
	b = append(b, data...)
	return append(b, '}'), nil
}

// appPath returns the escaped path of app and the segments after it.
func appPath(app string, segments ...string) string {
	p := "/apps/" + url.PathEscape(app)
	for _, s := range segments {
		p += "/" + url.PathEscape(s)
	}
	return p
}

// do makes the call, retrying it if it is safe to.
func (c *Client) do(ctx context.Context, cl call) error {
	var body []byte
	switch b := cl.body.(type) {
	case nil:
	case encoded:
		body = b
	default:
		var err error
		if body, err = json.Marshal(cl.body); err != nil {
			return fmt.Errorf("tasks: %s %s: encode request: %w", cl.method, cl.path, err)
		}
	}
	for attempt := 0; ; attempt++ {
		wait, err := c.send(ctx, cl, body)
		if err == nil || !cl.retry || attempt >= c.maxRetries || wait < 0 {
			return err
		}
		if wait == 0 {
			d := min(c.minBackoff<<attempt, c.maxBackoff)
			wait = d/2 + rand.N(d/2+1)
		}
		if wait > c.maxBackoff {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// send sends the call once. Its wait, with an error, is negative when the
// error is not worth a retry, else the wait that the answer's Retry-After
// asks for, or 0.
func (c *Client) send(ctx context.Context, cl call, body []byte) (wait time.Duration, err error) {
	u := *c.base
	escaped := c.base.EscapedPath() + cl.path
	if u.Path, err = url.PathUnescape(escaped); err != nil {
		return -1, fmt.Errorf("tasks: %s %s: %w", cl.method, cl.path, err)
	}
	u.RawPath = escaped
	if len(cl.query) > 0 {
		u.RawQuery = cl.query.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, cl.method, u.String(), rd)
	if err != nil {
		return -1, fmt.Errorf("tasks: %s %s: %w", cl.method, cl.path, err)
	}
	for k, vs := range cl.header {
		req.Header[k] = vs
	}
	req.Header.Set("Accept", "application/json, application/problem+json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			wait = -1
		}
		return wait, fmt.Errorf("tasks: %s %s: %w", cl.method, cl.path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if cl.out != nil && resp.StatusCode != http.StatusNoContent {
			if err := json.NewDecoder(resp.Body).Decode(cl.out); err != nil {
				return 0, fmt.Errorf("tasks: %s %s: decode answer: %w", cl.method, cl.path, err)
			}
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10)) // reuse the connection
		return 0, nil
	}
	e := &Error{Method: cl.method, Path: cl.path, Status: resp.StatusCode, RetryAfter: retryAfter(resp.Header.Get("Retry-After"))}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt == "application/problem+json" || mt == "application/json" {
		var p struct {
			Type, Title, Detail, Error, Field string
		}
		if json.Unmarshal(b, &p) == nil {
			e.Type, e.Title, e.Detail, e.Message, e.Field = p.Type, p.Title, p.Detail, p.Error, p.Field
		}
	}
	switch resp.StatusCode {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return e.RetryAfter, e
	}
	return -1, e
}

// retryAfter reads a Retry-After header: seconds, or an HTTP date; 0 if
// there is none or it is malformed.
func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseUint(v, 10, 32); err == nil {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}

// ---- tasks

// CreateTask creates a task of app. With an IdempotencyKey it is retried
// like a read; the server answers a request that it has seen with the
// task that request created, as the task is now.
func (c *Client) CreateTask(ctx context.Context, app string, t NewTask) (*Task, error) {
	if t.Timeout < 0 || t.Timeout%time.Second != 0 {
		return nil, fmt.Errorf("tasks: client: NewTask.Timeout is %v: want whole seconds", t.Timeout)
	}
	head := struct {
		EventType        string     `json:"event_type"`
		ScheduledRunTime *time.Time `json:"scheduled_run_time,omitempty"`
		FlowKey          string     `json:"flow_key,omitempty"`
		MaxAttempts      int        `json:"max_attempts,omitempty"`
		Timeout          int64      `json:"timeout,omitempty"`
	}{EventType: t.EventType, FlowKey: t.FlowKey, MaxAttempts: t.MaxAttempts, Timeout: int64(t.Timeout / time.Second)}
	if !t.RunAt.IsZero() {
		runAt := t.RunAt.UTC()
		head.ScheduledRunTime = &runAt
	}
	body, err := withData(head, t.Data)
	if err != nil {
		return nil, err
	}
	cl := call{method: http.MethodPost, path: appPath(app, "tasks"), body: body, out: new(Task)}
	if t.IdempotencyKey != "" {
		cl.header = http.Header{"Idempotency-Key": {t.IdempotencyKey}}
		cl.retry = true
	}
	if err := c.do(ctx, cl); err != nil {
		return nil, err
	}
	return cl.out.(*Task), nil
}

// GetTask returns the task id of app.
func (c *Client) GetTask(ctx context.Context, app, id string) (*Task, error) {
	return c.task(ctx, call{method: http.MethodGet, path: appPath(app, "tasks", id), retry: true})
}

// task makes a call that answers a task.
func (c *Client) task(ctx context.Context, cl call) (*Task, error) {
	t := new(Task)
	cl.out = t
	if err := c.do(ctx, cl); err != nil {
		return nil, err
	}
	return t, nil
}

// ListTasks returns a page of the tasks of app, newest first.
func (c *Client) ListTasks(ctx context.Context, app string, p *ListParams) (*TaskPage, error) {
	q := url.Values{}
	if p != nil {
		for _, s := range p.Statuses {
			q.Add("status", string(s))
		}
		if p.EventType != "" {
			q.Set("event_type", p.EventType)
		}
		if p.Limit != 0 {
			q.Set("limit", strconv.Itoa(p.Limit))
		}
		if p.Cursor != "" {
			q.Set("cursor", p.Cursor)
		}
	}
	var page struct {
		Data       []*Task `json:"data"`
		NextCursor *string `json:"next_cursor"`
	}
	if err := c.do(ctx, call{method: http.MethodGet, path: appPath(app, "tasks"), query: q, retry: true, out: &page}); err != nil {
		return nil, err
	}
	tp := &TaskPage{Tasks: page.Data}
	if page.NextCursor != nil {
		tp.NextCursor = *page.NextCursor
	}
	return tp, nil
}

// Tasks iterates over the tasks of app that p selects, newest first, from
// p.Cursor on, reading a page at a time; p.Limit sizes the pages. An error
// ends the iteration, as its last pair.
func (c *Client) Tasks(ctx context.Context, app string, p *ListParams) iter.Seq2[*Task, error] {
	return func(yield func(*Task, error) bool) {
		var params ListParams
		if p != nil {
			params = *p
		}
		for {
			page, err := c.ListTasks(ctx, app, &params)
			if err != nil {
				yield(nil, err)
				return
			}
			for _, t := range page.Tasks {
				if !yield(t, nil) {
					return
				}
			}
			if page.NextCursor == "" {
				return
			}
			params.Cursor = page.NextCursor
		}
	}
}

// RescheduleTask sets the run time of a scheduled or retrying task of app;
// a task in another state is an ErrConflict.
func (c *Client) RescheduleTask(ctx context.Context, app, id string, runAt time.Time) (*Task, error) {
	body := map[string]time.Time{"scheduled_run_time": runAt.UTC()}
	return c.task(ctx, call{method: http.MethodPatch, path: appPath(app, "tasks", id), body: body})
}

// CancelTask cancels a scheduled or retrying task of app, or requests the
// cancellation of a running one (its CancelRequested is then true); a
// canceled task is answered as it is, a completed or failed one is an
// ErrConflict.
func (c *Client) CancelTask(ctx context.Context, app, id string) (*Task, error) {
	return c.task(ctx, call{method: http.MethodPost, path: appPath(app, "tasks", id, "cancel"), retry: true})
}

// ReplayTask makes a completed, failed or canceled task of app run again;
// a task in another state is an ErrConflict.
func (c *Client) ReplayTask(ctx context.Context, app, id string) (*Task, error) {
	return c.task(ctx, call{method: http.MethodPost, path: appPath(app, "tasks", id, "replay")})
}

// DeleteTask deletes a task of app that is not running, with its attempts;
// a running task is an ErrConflict.
func (c *Client) DeleteTask(ctx context.Context, app, id string) error {
	err := c.do(ctx, call{method: http.MethodDelete, path: appPath(app, "tasks", id)})
	return err
}

// Attempts returns the attempts of a task of app, oldest first.
func (c *Client) Attempts(ctx context.Context, app, id string) ([]Attempt, error) {
	var out struct {
		Data []Attempt `json:"data"`
	}
	if err := c.do(ctx, call{method: http.MethodGet, path: appPath(app, "tasks", id, "attempts"), retry: true, out: &out}); err != nil {
		return nil, err
	}
	return out.Data, nil
}

// ReplayTasks replays the failed tasks of app that f selects, and returns
// how many it replayed. The server works through a long range in several
// requests, each answering where to go on; ReplayTasks makes them all.
func (c *Client) ReplayTasks(ctx context.Context, app string, f BulkFilter) (int, error) {
	return c.bulk(ctx, app, "replay", "replayed", f)
}

// CancelTasks cancels the scheduled and retrying tasks of app that f
// selects (running tasks are left alone), and returns how many it
// canceled, as ReplayTasks does.
func (c *Client) CancelTasks(ctx context.Context, app string, f BulkFilter) (int, error) {
	return c.bulk(ctx, app, "cancel", "canceled", f)
}

// bulk makes the requests of a bulk operation until its range is done.
func (c *Client) bulk(ctx context.Context, app, op, counted string, f BulkFilter) (int, error) {
	body := map[string]any{"created_since": f.CreatedSince.UTC(), "created_before": f.CreatedBefore.UTC()}
	if f.EventType != "" {
		body["event_type"] = f.EventType
	}
	total := 0
	for {
		var out map[string]json.RawMessage
		if err := c.do(ctx, call{method: http.MethodPost, path: appPath(app, "tasks", op), body: body, retry: true, out: &out}); err != nil {
			return total, err
		}
		var n int
		var next *string
		if err := json.Unmarshal(out[counted], &n); err != nil {
			return total, fmt.Errorf("tasks: POST %s: decode answer: %s: %w", appPath(app, "tasks", op), counted, err)
		}
		if err := json.Unmarshal(out["next_cursor"], &next); err != nil {
			return total, fmt.Errorf("tasks: POST %s: decode answer: next_cursor: %w", appPath(app, "tasks", op), err)
		}
		total += n
		if next == nil {
			return total, nil
		}
		body["cursor"] = *next
	}
}
