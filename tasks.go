package tasks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/taskwheel/tasks/internal/web"
)

// State is where a task is in its life. States are stored as text.
//
//	scheduled ─► running ─► completed
//	               │  ▲
//	               ▼  │
//	            retrying ─► failed (attempts used up, or a permanent error)
//
// A task that is scheduled or retrying can be canceled. A running task can have
// its cancellation requested: its context is cancelled and it ends canceled
// unless it completes first. Completed, failed and canceled are terminal;
// [Engine.Replay] makes a terminal task run again.
type State string

// The states of a task.
const (
	StateScheduled State = "scheduled" // waiting for its run time
	StateRunning   State = "running"   // claimed by an engine under a lease
	StateRetrying  State = "retrying"  // an attempt failed; waiting for the next
	StateCompleted State = "completed" // an attempt succeeded (terminal)
	StateFailed    State = "failed"    // attempts used up or permanent error (terminal)
	StateCanceled  State = "canceled"  // canceled before it completed (terminal)
)

// states lists every state in life-cycle order.
var states = []State{StateScheduled, StateRunning, StateRetrying, StateCompleted, StateFailed, StateCanceled}

// Valid reports whether s is one of the defined states.
func (s State) Valid() bool {
	switch s {
	case StateScheduled, StateRunning, StateRetrying, StateCompleted, StateFailed, StateCanceled:
		return true
	}
	return false
}

// Terminal reports whether s is a final state: completed, failed or canceled.
func (s State) Terminal() bool {
	return s == StateCompleted || s == StateFailed || s == StateCanceled
}

// pending reports whether a task in state s waits to be claimed.
func (s State) pending() bool { return s == StateScheduled || s == StateRetrying }

// Task is one unit of background work. Its JSON form uses the field names of
// the HostedHooks Tasks API (id, event_type, status, scheduled_run_time,
// endpoint_id, created_at, data) plus fields of its own.
//
// A Task returned by the engine or a store is a copy; changing it changes
// nothing stored.
type Task struct {
	// ID identifies the task (a UUID). It is stable across retries, so a
	// receiver can use it to deduplicate.
	ID string `json:"id"`
	// AppID is the application the task belongs to.
	AppID string `json:"app_id"`
	// EventType routes the task to the func registered for it.
	EventType string `json:"event_type"`
	// FlowKey is the key whose Limit the task obeys: the NewTask's
	// FlowKey, or its EventType when it had none.
	FlowKey string `json:"flow_key"`
	// State is the task's state, named "status" as HostedHooks does.
	State State `json:"status"`
	// ScheduledRunTime is the run time the caller asked for, or nil when the
	// caller gave none (the task then runs as soon as possible).
	ScheduledRunTime *time.Time `json:"scheduled_run_time"`
	// EndpointID is the webhook endpoint the task was delivered to, or nil.
	EndpointID *string `json:"endpoint_id"`
	// CreatedAt is when the task was stored.
	CreatedAt time.Time `json:"created_at"`
	// UpdatedAt is when the task last changed.
	UpdatedAt time.Time `json:"updated_at"`
	// Data is the caller's JSON payload, byte for byte as given.
	Data json.RawMessage `json:"data"`
	// Attempts counts the attempts started so far, across replays.
	Attempts int `json:"attempts"`
	// ReplayedAfter is the number of attempts the task had started when it
	// was last replayed, or 0 if it never was: the attempts numbered above
	// it make up its current run.
	ReplayedAfter int `json:"replayed_after,omitempty"`
	// MaxAttempts is the number of attempts after which a failing task
	// fails for good.
	MaxAttempts int `json:"max_attempts"`
	// NextAttemptAt is when the task next becomes due while it is scheduled
	// or retrying; nil in every other state.
	NextAttemptAt *time.Time `json:"next_attempt_at"`
	// WaitReason says why a task that is due waits, when its flow key's
	// Limit holds it back (paused, its concurrency or its rate), or an
	// endpoint's limit held back its delivery (naming the endpoint and
	// its rate_limit or max_in_flight); "" when it does not wait.
	WaitReason string `json:"wait_reason,omitempty"`
	// LastError is the error of the latest failed attempt, or "".
	LastError string `json:"last_error,omitempty"`
	// CompletedAt is when the task reached a terminal state, or nil.
	CompletedAt *time.Time `json:"completed_at"`
	// IdempotencyKey is the caller's deduplication key, unique per app, or "".
	IdempotencyKey string `json:"idempotency_key,omitempty"`
	// IdempotencyDigest identifies the request that created the task with
	// its IdempotencyKey, so that the API can tell that request, sent again
	// with the key, from another however the task changed since: a SHA-256
	// digest, in hex, of the event type, run time and data the task was
	// created with, which Enqueue, EnqueueMany and EnqueueTx set for a task
	// with a key. It is "" for a task without a key, and for one stored
	// before stores kept the digest; the API compares a request with such a
	// task's fields as they are. Stores keep it as Insert is given it, and
	// no other method changes it. It is not part of the task's JSON.
	IdempotencyDigest string `json:"-"`
	// Timeout bounds each attempt; 0 means the engine's Config.Timeout.
	Timeout time.Duration `json:"-"`
	// CancelRequested reports whether cancellation was requested while the
	// task was running.
	CancelRequested bool `json:"cancel_requested,omitempty"`
	// LeaseExpiresAt is when a running task's lease ends unless extended;
	// nil in every other state.
	LeaseExpiresAt *time.Time `json:"lease_expires_at,omitempty"`
	// TraceParent is the W3C traceparent of the span that enqueued the
	// task (see Config.TracerProvider), or "" when the enqueuing context
	// carried none: each attempt's span continues that trace, and webhook
	// deliveries send it in their traceparent header. Stores keep it as
	// Insert is given it, and no other method changes it. It is not part
	// of the task's JSON.
	TraceParent string `json:"-"`
	// TraceState is the W3C tracestate that goes with TraceParent, or "":
	// at most 512 bytes, the enqueuing context's cut to that length as W3C
	// Trace Context says (members over 128 bytes first, then the last).
	TraceState string `json:"-"`

	// dueAt is when the attempt of a task that Claim returned was due, on
	// the store's clock; zero in every other task. Lateness is measured
	// from it.
	dueAt time.Time
	// claim is the token of the claim of a running task that an SQLStore
	// read, 0 in any other task (see Lease).
	claim int64
}

// lease returns the lease of t's attempt, claimed.
func (t *Task) lease() Lease { return Lease{ID: t.ID, Attempt: t.Attempts, claim: t.claim} }

// Attempt records one attempt of a task: one run of its func, or one
// delivery to one webhook endpoint (an attempt that delivers to several
// endpoints has a record for each).
type Attempt struct {
	TaskID string `json:"task_id"`
	// Number is the task's attempt number, from 1.
	Number int `json:"attempt"`
	// EndpointID is the endpoint delivered to, or "" for a func.
	EndpointID string `json:"endpoint_id,omitempty"`
	// StartedAt is when the attempt started.
	StartedAt time.Time `json:"started_at"`
	// Duration is how long it took.
	Duration time.Duration `json:"-"`
	// StatusCode is the endpoint's HTTP status code, or 0.
	StatusCode int `json:"status_code,omitempty"`
	// Response is the start of the endpoint's response body.
	Response string `json:"response,omitempty"`
	// Error is why the attempt failed, or "" if it succeeded.
	Error string `json:"error,omitempty"`
}

// MarshalJSON adds duration_ms, the Duration in milliseconds.
func (a Attempt) MarshalJSON() ([]byte, error) {
	type attempt Attempt // without this method
	return json.Marshal(struct {
		attempt
		DurationMS float64 `json:"duration_ms"`
	}{attempt(a), float64(a.Duration) / float64(time.Millisecond)})
}

// NewTask describes a task to enqueue.
type NewTask struct {
	// AppID is the application the task belongs to. Required.
	AppID string
	// EventType routes the task to the func registered for it, or to the
	// webhook endpoints subscribed to it: 1 to MaxEventTypeLength bytes of
	// letters, digits and "._-:", not starting or ending with a dot and
	// without empty segments such as "a..b". Required.
	EventType string
	// Data is the payload, I-JSON (see Validate). Nil means JSON null.
	Data json.RawMessage
	// FlowKey is the key whose Limit the task obeys, at most MaxIDLength
	// bytes of UTF-8 without control characters. Defaults to EventType.
	FlowKey string
	// RunAt is when the task should run. The zero value, or any time not
	// after now, means as soon as possible.
	RunAt time.Time
	// MaxAttempts overrides Config.MaxAttempts for this task when positive.
	MaxAttempts int
	// Timeout overrides Config.Timeout for this task when positive.
	Timeout time.Duration
	// IdempotencyKey, when not empty, makes the task unique per AppID: a second
	// task with the same key is not created; Enqueue returns the first one
	// together with ErrDuplicate.
	IdempotencyKey string
}

// Defaults, the value each zero field of Config, WebhookConfig,
// HandlerConfig and ListParams takes; then limits and fixed values.
const (
	DefaultWorkers       = 16                   // Config.Workers
	DefaultMaxAttempts   = 8                    // Config.MaxAttempts; see WebhookConfig.RetrySchedule
	DefaultTimeout       = time.Minute          // Config.Timeout
	DefaultLease         = 15 * time.Second     // Config.Lease
	DefaultPollInterval  = time.Second          // Config.PollInterval
	DefaultMaxDataBytes  = 1 << 20              // Config.MaxDataBytes
	DefaultMaxRetryAfter = time.Hour            // WebhookConfig.MaxRetryAfter
	DefaultHorizon       = 366 * 24 * time.Hour // HandlerConfig.Horizon
	DefaultMaxPageBytes  = 4 << 20              // HandlerConfig.MaxPageBytes
	DefaultListLimit     = 50                   // ListParams.Limit

	// Retention of finished tasks (Config.RetainCompleted, RetainFailed,
	// RetainCanceled). A completed task needs nothing more, and a day is
	// the window in which an idempotency key is remembered (as at Stripe);
	// a failed one waits for someone to look, replay or give up, so it
	// stays for two weeks, across a holiday; a canceled one was somebody's
	// decision, kept a week in case it was a mistake.
	DefaultRetainCompleted = 24 * time.Hour
	DefaultRetainFailed    = 14 * 24 * time.Hour
	DefaultRetainCanceled  = 7 * 24 * time.Hour
	// DefaultDisableAfter is WebhookConfig.DisableAfter: five days of
	// nothing but failures disable an endpoint, as at Svix.
	DefaultDisableAfter = 5 * 24 * time.Hour

	// Limits and fixed values.
	MaxIDLength             = 255           // bytes of an app ID
	MaxEventTypeLength      = 255           // bytes of an event type
	MaxIdempotencyKeyLength = 255           // bytes of an idempotency key
	MaxMaxAttempts          = math.MaxInt32 // what the SQL stores' integer column holds
	MaxListLimit            = 1000          // ListParams.Limit
	MaxDescriptionLength    = 1024          // bytes of Endpoint.Description
	MaxEnabledEvents        = 256           // entries of Endpoint.EnabledEvents

	// Forever, as a retention or a time before something happens, means
	// never: a task kept Forever is never deleted.
	Forever time.Duration = math.MaxInt64

	// AllEvents, as an endpoint's only enabled event, subscribes it to
	// every event type.
	AllEvents = "*"
	// EncryptionKeySize is the size in bytes of each of Config.EncryptionKeys.
	EncryptionKeySize = 32
	// ResponseExcerptBytes bounds the excerpt of a response kept in an
	// Attempt.
	ResponseExcerptBytes = 1024
	// Version is this library's version, sent in the User-Agent of
	// deliveries.
	Version = "0.1.0"
)

// Errors returned by the engine and stores. Compare with [errors.Is].
var (
	// ErrNotFound means no task, endpoint or periodic task has the given
	// ID.
	ErrNotFound = errors.New("tasks: not found")
	// ErrDuplicate means a task with the same idempotency key exists; the
	// existing task is returned alongside it.
	ErrDuplicate = errors.New("tasks: duplicate idempotency key")
	// ErrInvalidState means the task's state does not allow the operation,
	// for example canceling a completed task.
	ErrInvalidState = errors.New("tasks: operation not allowed in the task's state")
	// ErrConflict means an endpoint or periodic task changed between the
	// read and the write of an update (see [Store.UpdateEndpoint]); the
	// engine reads it again and retries, and returns ErrConflict only when
	// other writers kept winning.
	ErrConflict = errors.New("tasks: concurrent update")
	// ErrNotSupported means the store does not support the operation, for
	// example EnqueueTx on the memory store.
	ErrNotSupported = errors.New("tasks: not supported by this store")
	// ErrBlockedDestination means a delivery was refused because the
	// address it would connect to is loopback, private, link-local, CGNAT,
	// multicast, reserved, documentation or another special-purpose
	// address, and not allowed by WebhookConfig.AllowNetworks or
	// AllowHosts. The error wrapping it names the address refused.
	ErrBlockedDestination = errors.New("tasks: blocked destination")
	// ErrSchemaTooNew means the database's tables were migrated by a newer
	// version of this package than the running one, which refuses to use
	// them ([SQLStore.Migrate], [Engine.Start]); the error wrapping it
	// names both versions.
	ErrSchemaTooNew = errors.New("tasks: database schema newer than this binary")
	// ErrOverloaded means a task was not stored because the store holds
	// Config.MaxWaiting tasks waiting to run; the error wrapping it says
	// how many. Nothing was stored: try again later.
	ErrOverloaded = errors.New("tasks: overloaded")
)

// wrapf returns err, a store's error, with "tasks: " and what failed in
// front: once per layer, never twice. A bare sentinel such as ErrNotFound
// loses its own "tasks: " inside the message ("tasks: get task X: not
// found") and still matches with errors.Is; an error that already starts
// with "tasks: " otherwise is a store's, which said what failed itself,
// and is returned as it is.
func wrapf(err error, format string, args ...any) error {
	msg := err.Error()
	rest, prefixed := strings.CutPrefix(msg, "tasks: ")
	switch {
	case !prefixed:
		rest = msg
	case !isSentinel(err):
		return err
	}
	return &wrapError{msg: "tasks: " + fmt.Sprintf(format, args...) + ": " + rest, err: err}
}

// isSentinel reports whether err is one of the package's sentinel errors,
// unwrapped.
func isSentinel(err error) bool {
	switch err {
	case ErrNotFound, ErrDuplicate, ErrInvalidState, ErrConflict, ErrNotSupported, ErrBlockedDestination:
		return true
	}
	return false
}

// wrapError is an error of wrapf.
type wrapError struct {
	msg string
	err error
}

func (e *wrapError) Error() string { return e.msg }
func (e *wrapError) Unwrap() error { return e.err }

// ValidationError reports a task field that is missing or malformed.
type ValidationError struct {
	Field   string // the field's JSON name, e.g. "event_type"
	Message string // what is wrong with it
}

func (e *ValidationError) Error() string {
	return fmt.Sprintf("tasks: invalid %s: %s", e.Field, e.Message)
}

func invalid(field, format string, args ...any) error {
	return &ValidationError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// validateEventType reports whether s is an acceptable event type: 1 to
// MaxEventTypeLength bytes of letters, digits and "._-:", not starting or
// ending with a dot and without empty segments such as "a..b".
func validateEventType(s string) error {
	if problem := web.EventTypeProblem(s); problem != "" {
		return invalid("event_type", "%s", problem)
	}
	return nil
}

// Validate reports the first field of nt that Enqueue would refuse, as a
// *ValidationError: an AppID or IdempotencyKey that is empty (AppID only),
// too long, not UTF-8 or holds control characters; an invalid EventType (see
// NewTask.EventType); Data that is not I-JSON (RFC 7493): not JSON, not
// UTF-8, with a lone UTF-16 surrogate escape such as "\ud800", with an
// object that has two members of the same name, or nested deeper than the
// API accepts; a MaxAttempts that is negative or past MaxMaxAttempts; a
// negative Timeout.
func (nt *NewTask) Validate() error {
	if err := validateText("app_id", nt.AppID, MaxIDLength); err != nil {
		return err
	}
	if nt.AppID == "" {
		return invalid("app_id", "must not be empty")
	}
	if err := validateEventType(nt.EventType); err != nil {
		return err
	}
	if nt.Data != nil {
		if err := validateData(nt.Data); err != nil {
			return err
		}
	}
	if err := validateText("flow_key", nt.FlowKey, MaxIDLength); err != nil {
		return err
	}
	if err := validateText("idempotency_key", nt.IdempotencyKey, MaxIdempotencyKeyLength); err != nil {
		return err
	}
	switch {
	case nt.MaxAttempts < 0:
		return invalid("max_attempts", "must not be negative")
	case nt.MaxAttempts > MaxMaxAttempts:
		return invalid("max_attempts", "more than %d", MaxMaxAttempts)
	case nt.Timeout < 0:
		return invalid("timeout", "must not be negative")
	}
	return nil
}

// validateData checks that data is I-JSON (RFC 7493), which strict parsers
// such as jq accept and which the API answers byte for byte: valid JSON,
// valid UTF-8, no lone UTF-16 surrogate among its \u escapes, and no object
// with two members of the same name. An escaped NUL (\u0000) is valid
// I-JSON. The API refuses the same data, as part of a request body that
// checkJSON checks, so that Enqueue and the API agree.
func validateData(data []byte) error {
	switch {
	case !json.Valid(data):
		return invalid("data", "not valid JSON")
	case !utf8.Valid(data):
		return invalid("data", "not valid UTF-8")
	}
	if err := checkSurrogates(data); err != nil {
		return err
	}
	return checkStructure(data)
}

// maxDataDepth bounds the nesting of data: in a request body, data is one
// level below the body, whose nesting the API bounds at maxJSONDepth.
const maxDataDepth = maxJSONDepth - 1

// checkSurrogates refuses a lone UTF-16 surrogate escape in the valid JSON
// data.
func checkSurrogates(data []byte) error {
	// In valid JSON a backslash appears only in a string, where it starts
	// an escape: \uXXXX, or a backslash and one other character.
	for i := 0; ; {
		j := bytes.IndexByte(data[i:], '\\')
		if j < 0 {
			return nil
		}
		i += j
		if data[i+1] != 'u' {
			i += 2
			continue
		}
		if r := escapedRune(data[i:]); !utf16.IsSurrogate(r) {
			i += 6
			continue
		} else if r < 0xdc00 && len(data) >= i+12 && data[i+6] == '\\' && data[i+7] == 'u' {
			if low := escapedRune(data[i+6:]); low >= 0xdc00 && low <= 0xdfff {
				i += 12 // a high surrogate, then a low one: a pair
				continue
			}
		}
		return invalid("data", "%s at byte %d is a lone UTF-16 surrogate, which is not valid I-JSON (RFC 7493); "+
			"escape a character beyond U+FFFF as a pair, such as \\ud83d\\ude00, or send it as UTF-8", data[i:i+6], i)
	}
}

// checkStructure refuses, in the valid JSON data, an object with two
// members of the same name (once unescaped: "\u0061" is "a"), which
// receivers would read differently (most decoders keep the last, some the
// first, and strict ones refuse it), and nesting deeper than maxDataDepth,
// which the API refuses too.
//
// Every Enqueue runs it, so it is one pass over the bytes that allocates
// only for a name with escapes or an object of more than smallObject
// members: since data is valid JSON, a quote outside a string starts one,
// and a string right after "{" or "," inside an object is a name.
func checkStructure(data []byte) error {
	if bytes.IndexAny(data, "{[") < 0 {
		return nil // a scalar
	}
	type container struct {
		object bool
		first  int                 // its first name in names
		seen   map[string]struct{} // its names, once it has more than smallObject
	}
	var (
		stackBuf [16]container
		namesBuf [32][]byte
		stack    = stackBuf[:0]
		names    = namesBuf[:0] // the names of the objects open, innermost last
		wantName bool           // the next string is a member name
	)
	for i := 0; i < len(data); i++ {
		switch data[i] {
		case '{', '[':
			if len(stack) == maxDataDepth {
				return invalid("data", "nested deeper than %d levels", maxDataDepth)
			}
			stack = append(stack, container{object: data[i] == '{', first: len(names)})
			wantName = data[i] == '{'
		case '}', ']':
			names = names[:stack[len(stack)-1].first]
			stack = stack[:len(stack)-1]
			wantName = false
		case ',':
			wantName = stack[len(stack)-1].object
		case '"':
			end, escaped := stringEnd(data, i)
			if wantName {
				name := data[i+1 : end]
				if escaped {
					var s string
					if err := json.Unmarshal(data[i:end+1], &s); err != nil {
						return invalid("data", "not valid JSON")
					}
					name = []byte(s)
				}
				top := &stack[len(stack)-1]
				if duplicateName(top.first, &top.seen, names, name) {
					return invalid("data", "member %q appears twice in an object (before byte %d), which is not valid I-JSON (RFC 7493)", name, end+1)
				}
				names = append(names, name)
				wantName = false
			}
			i = end
		}
	}
	return nil
}

// smallObject is the most members an object's names are compared one by
// one; a larger object's are kept in a map, so that checking an object of
// n members costs O(n), not O(n²).
const smallObject = 16

// duplicateName reports whether name is among the names of an object,
// names[first:], and keeps them in *seen once there are more than
// smallObject.
func duplicateName(first int, seen *map[string]struct{}, names [][]byte, name []byte) bool {
	mine := names[first:]
	if *seen == nil && len(mine) < smallObject {
		for _, n := range mine {
			if bytes.Equal(n, name) {
				return true
			}
		}
		return false
	}
	if *seen == nil {
		*seen = make(map[string]struct{}, 2*len(mine))
		for _, n := range mine {
			(*seen)[string(n)] = struct{}{}
		}
	}
	if _, ok := (*seen)[string(name)]; ok {
		return true
	}
	(*seen)[string(name)] = struct{}{}
	return false
}

// stringEnd returns the index of the quote that ends the string starting
// at data[start], in valid JSON, and whether the string has escapes.
func stringEnd(data []byte, start int) (end int, escaped bool) {
	for i := start + 1; ; {
		j := bytes.IndexAny(data[i:], `"\`)
		i += j
		if data[i] == '"' {
			return i, escaped
		}
		escaped = true
		i += 2 // the backslash and the character it escapes
	}
}

// escapedRune decodes the \uXXXX escape that esc starts with, in valid
// JSON.
func escapedRune(esc []byte) rune {
	n, _ := strconv.ParseUint(string(esc[2:6]), 16, 16)
	return rune(n)
}

// validateText checks an identifier-like field: at most max bytes of UTF-8
// with no control characters.
func validateText(field, s string, max int) error {
	switch {
	case len(s) > max:
		return invalid(field, "longer than %d bytes", max)
	case !utf8.ValidString(s):
		return invalid(field, "not valid UTF-8")
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		return invalid(field, "contains a control character")
	}
	return nil
}

// Func runs a task. It returns nil when the task is done, an error to have it
// retried with backoff, [Permanent] to fail it without retrying, or
// [RetryAfter] to set the delay before the next attempt. ctx is cancelled when
// the attempt's timeout passes, when the task's cancellation is requested, or
// when Stop's deadline passes; a Func should return promptly then.
type Func func(ctx context.Context, t *Task) error

// Permanent wraps err so that the task fails now, without further attempts.
func Permanent(err error) error {
	if err == nil {
		err = errors.New("permanent failure")
	}
	return &permanentError{err}
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// RetryAfter wraps err so that the next attempt starts no earlier than d from
// now, instead of after the backoff delay. The attempt still counts: a task
// whose attempts are used up fails.
func RetryAfter(d time.Duration, err error) error {
	if err == nil {
		err = errors.New("retry requested")
	}
	return &retryAfterError{d, err}
}

type retryAfterError struct {
	d   time.Duration
	err error
}

func (e *retryAfterError) Error() string { return e.err.Error() }
func (e *retryAfterError) Unwrap() error { return e.err }
