package client

import (
	"encoding/json"
	"time"
)

// Status is a task's status: "scheduled", "running", "retrying",
// "completed", "failed" or "canceled".
type Status string

// The statuses of a task. Completed, failed and canceled are terminal.
const (
	StatusScheduled Status = "scheduled"
	StatusRunning   Status = "running"
	StatusRetrying  Status = "retrying"
	StatusCompleted Status = "completed"
	StatusFailed    Status = "failed"
	StatusCanceled  Status = "canceled"
)

// Task is a task as the API answers it (see the Task schema of the
// server's OpenAPI document).
type Task struct {
	ID               string          `json:"id"`
	AppID            string          `json:"app_id"`
	EventType        string          `json:"event_type"`
	Status           Status          `json:"status"`
	ScheduledRunTime *time.Time      `json:"scheduled_run_time"` // nil when none was given
	EndpointID       *string         `json:"endpoint_id"`        // nil until delivered to an endpoint
	CreatedAt        time.Time       `json:"created_at"`
	UpdatedAt        time.Time       `json:"updated_at"`
	Data             json.RawMessage `json:"data"` // byte for byte as given
	Attempts         int             `json:"attempts"`
	ReplayedAfter    int             `json:"replayed_after,omitempty"`
	MaxAttempts      int             `json:"max_attempts"`
	NextAttemptAt    *time.Time      `json:"next_attempt_at"`
	LastError        string          `json:"last_error,omitempty"`
	CompletedAt      *time.Time      `json:"completed_at"`
	IdempotencyKey   string          `json:"idempotency_key,omitempty"`
	CancelRequested  bool            `json:"cancel_requested,omitempty"`
	LeaseExpiresAt   *time.Time      `json:"lease_expires_at,omitempty"`
	// FlowKey is the key of the task's flow control limits: the one it
	// was created with, or its event type.
	FlowKey string `json:"flow_key"`
	// WaitReason says why a scheduled task waits past its time: its flow
	// key's limit, or an endpoint's rate_limit or max_in_flight.
	WaitReason string `json:"wait_reason,omitempty"`
	// TimeoutSeconds is the task's own timeout; 0 when it has none.
	TimeoutSeconds int `json:"timeout,omitempty"`
}

// NewTask is a task to create.
type NewTask struct {
	// EventType routes the task to a func or to webhook endpoints. Required.
	EventType string
	// RunAt is when the task should run; the zero value means as soon as
	// possible.
	RunAt time.Time
	// Data is the payload, any JSON value. Nil means JSON null.
	Data json.RawMessage
	// IdempotencyKey, if not "", is sent as the Idempotency-Key header: the
	// server creates one task per key and app, and answers the same request
	// sent again with that task. It makes CreateTask safe to retry, which
	// the client then does; without a key CreateTask is sent once.
	IdempotencyKey string
	// FlowKey is the key whose limits (see Client.SetLimit) the task
	// obeys; "" means its event type.
	FlowKey string
	// MaxAttempts, when positive, is how many attempts the task gets
	// (the server takes 1 to 100) instead of the server's default.
	MaxAttempts int
	// Timeout, when positive, bounds each attempt instead of the server's
	// default: whole seconds, up to a day; CreateTask refuses another
	// Duration rather than round it.
	Timeout time.Duration
}

// TaskPage is one page of a task listing, newest first.
type TaskPage struct {
	Tasks []*Task
	// NextCursor continues the listing (ListParams.Cursor); "" on the last
	// page.
	NextCursor string
}

// ListParams filter and page a task listing. A nil *ListParams lists all
// tasks in pages of the server's default size.
type ListParams struct {
	// Statuses, if any, keep only the tasks in one of them.
	Statuses []Status
	// EventType, if not "", keeps only the tasks of that event type.
	EventType string
	// Limit bounds the tasks of a page, 1 to 1000; the server's page may
	// hold fewer. Defaults to 0: the server's default, 50.
	Limit int
	// Cursor is TaskPage.NextCursor of the previous page, or "" for the
	// first.
	Cursor string
}

// Attempt is one attempt of a task: one run of its func, or one delivery
// to one endpoint.
type Attempt struct {
	TaskID     string    `json:"task_id"`
	Number     int       `json:"attempt"` // from 1
	EndpointID string    `json:"endpoint_id,omitempty"`
	StartedAt  time.Time `json:"started_at"`
	DurationMS float64   `json:"duration_ms"`
	StatusCode int       `json:"status_code,omitempty"`
	Response   string    `json:"response,omitempty"` // the start of the endpoint's answer
	Error      string    `json:"error,omitempty"`    // "" if it succeeded
}

// BulkFilter selects the tasks of a bulk operation (ReplayTasks,
// CancelTasks): those created in [CreatedSince, CreatedBefore), of
// EventType if it is not "".
type BulkFilter struct {
	EventType     string
	CreatedSince  time.Time // required
	CreatedBefore time.Time // required, after CreatedSince
}

// Endpoint is a webhook endpoint of an app.
type Endpoint struct {
	ID          string `json:"id"`
	AppID       string `json:"app_id"`
	URL         string `json:"url"`
	Description string `json:"description"`
	// EnabledEvents lists the event types delivered, or is ["*"] for all.
	EnabledEvents  []string   `json:"enabled_events"`
	Status         string     `json:"status"` // "active" or "inactive"
	FailingSince   *time.Time `json:"failing_since"`
	LastSuccessAt  *time.Time `json:"last_success_at"`
	DisabledAt     *time.Time `json:"disabled_at"`
	DisabledReason string     `json:"disabled_reason"`
	// RateLimit is how many deliveries per second the endpoint receives
	// at most, and MaxInFlight how many at once; 0 means no limit. A task
	// held back waits, scheduled or retrying, with a WaitReason naming
	// the endpoint, and uses no attempt.
	RateLimit   float64 `json:"rate_limit"`
	MaxInFlight int     `json:"max_in_flight"`
	// Secret signs the deliveries ("whsec_…"); the server shows it only in
	// the answers of CreateEndpoint and RotateEndpointSecret.
	Secret    string    `json:"secret,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// NewEndpoint is a webhook endpoint to create.
type NewEndpoint struct {
	URL         string `json:"url"` // required
	Description string `json:"description,omitempty"`
	// EnabledEvents lists the event types to deliver; nil or ["*"] means
	// all.
	EnabledEvents []string `json:"enabled_events,omitempty"`
	// Status is "active" or "inactive"; "" means active.
	Status string `json:"status,omitempty"`
	// RateLimit and MaxInFlight limit the deliveries (see Endpoint); 0
	// means no limit.
	RateLimit   float64 `json:"rate_limit,omitempty"`
	MaxInFlight int     `json:"max_in_flight,omitempty"`
}

// EndpointUpdate changes the fields of an endpoint that are not nil.
type EndpointUpdate struct {
	URL           *string  `json:"url,omitempty"`
	Description   *string  `json:"description,omitempty"`
	EnabledEvents []string `json:"enabled_events,omitempty"` // nil: unchanged
	Status        *string  `json:"status,omitempty"`
	// RateLimit and MaxInFlight, when not nil, set the limits (see
	// Endpoint); 0 removes one.
	RateLimit   *float64 `json:"rate_limit,omitempty"`
	MaxInFlight *int     `json:"max_in_flight,omitempty"`
}

// Schedule is a periodic task: it enqueues a task of its event type and
// data at each slot of its cron spec.
type Schedule struct {
	ID         string          `json:"id"`
	AppID      string          `json:"app_id"`
	Spec       string          `json:"spec"`
	TimeZone   string          `json:"time_zone"`
	EventType  string          `json:"event_type"`
	Data       json.RawMessage `json:"data"`
	Status     string          `json:"status"` // "active" or "paused"
	Missed     string          `json:"missed"` // "run_once" or "skip"
	NextRunAt  *time.Time      `json:"next_run_at"`
	LastRunAt  *time.Time      `json:"last_run_at"`
	LastTaskID *string         `json:"last_task_id"`
	CreatedAt  time.Time       `json:"created_at"`
	UpdatedAt  time.Time       `json:"updated_at"`
}

// NewSchedule is a periodic task to create.
type NewSchedule struct {
	Spec      string          `json:"spec"`                // required: a cron spec, such as "0 9 * * MON-FRI" or "@every 1h"
	TimeZone  string          `json:"time_zone,omitempty"` // an IANA name; "" means UTC
	EventType string          `json:"event_type"`          // required
	Data      json.RawMessage `json:"-"`                   // nil means JSON null; sent byte for byte
	Status    string          `json:"status,omitempty"`    // "active" (the default) or "paused"
	Missed    string          `json:"missed,omitempty"`    // "run_once" (the default) or "skip"
}

// ScheduleUpdate changes the fields of a periodic task that are not nil.
type ScheduleUpdate struct {
	Spec      *string         `json:"spec,omitempty"`
	TimeZone  *string         `json:"time_zone,omitempty"`
	EventType *string         `json:"event_type,omitempty"`
	Data      json.RawMessage `json:"-"` // nil: unchanged; sent byte for byte
	Status    *string         `json:"status,omitempty"`
	Missed    *string         `json:"missed,omitempty"`
}

// Limit is the flow control limit of an app's flow key, as the API
// answers it.
type Limit struct {
	AppID       string    `json:"app_id"`
	Key         string    `json:"key"`
	Rate        float64   `json:"rate"`        // starts per second; 0, none
	Burst       int       `json:"burst"`       // starts at once after an idle spell
	Concurrency int       `json:"concurrency"` // running at once; 0, no limit
	Paused      bool      `json:"paused"`      // starts nothing new
	UpdatedAt   time.Time `json:"updated_at"`
	Running     int       `json:"running"` // the key's tasks running when read
	Waiting     int       `json:"waiting"` // and waiting for its capacity
}

// LimitParams set the limit of a flow key. Each zero field means no limit
// of its kind; a SetLimit replaces the key's limit as a whole.
type LimitParams struct {
	Rate        float64 `json:"rate,omitempty"`
	Burst       int     `json:"burst,omitempty"` // needs a Rate; defaults to Rate rounded up
	Concurrency int     `json:"concurrency,omitempty"`
	Paused      bool    `json:"paused,omitempty"`
}
