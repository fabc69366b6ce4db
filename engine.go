package tasks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskwheel/tasks/observe"
)

// Config configures an [Engine]. A nil *Config, and every zero field, means
// the default.
type Config struct {
	// Workers is how many tasks run at once. Defaults to DefaultWorkers.
	Workers int
	// MaxAttempts is how many attempts a task gets before it fails, unless
	// NewTask.MaxAttempts says otherwise. Defaults to DefaultMaxAttempts.
	MaxAttempts int
	// Timeout bounds each attempt: the task's context is cancelled when it
	// passes. Defaults to DefaultTimeout; a negative value means no timeout.
	Timeout time.Duration
	// Lease is how long a claimed task stays reserved for this engine without
	// a heartbeat. The engine extends the leases of its running tasks every
	// Lease/3, so a task outlives its lease only when its engine died (or its
	// func ignored its context past Timeout); the rescuer then gives it to
	// another engine. Defaults to DefaultLease.
	Lease time.Duration
	// RescueInterval is how often the engine looks for expired leases.
	// Defaults to Lease/2.
	RescueInterval time.Duration
	// PollInterval bounds how long the engine takes to notice a task that
	// another engine, or a transaction (EnqueueTx), stored due now, should
	// its notification be lost, or on PostgreSQL a task that another
	// transaction held locked and left (see the claim floor in the
	// package map): the engine re-reads the store's upcoming tasks this
	// often.
	// Tasks this engine enqueues are seen at once, and a task due later
	// than now is read in time to start when due however long the
	// interval, since the engine reads the tasks due within the next
	// minute at least every 30 seconds. Defaults to DefaultPollInterval.
	PollInterval time.Duration
	// BackoffFunc returns the delay before the attempt after a failed
	// attempt number attempt (1 for the first). Defaults to exponential
	// backoff from one second, doubling each attempt up to one hour, with
	// "equal jitter" (a random delay between half and all of that) so that
	// tasks failing together do not retry together: with
	// DefaultMaxAttempts, a func task's attempts span about two minutes.
	BackoffFunc func(attempt int) time.Duration
	// Logger receives what background work cannot return to a caller.
	// Defaults to slog.Default().
	Logger *slog.Logger
	// Middleware wraps every enqueue and every attempt, the first element
	// outermost; see [Middleware]. Defaults to none.
	Middleware []Middleware
	// TracerProvider makes the spans of enqueues ("send <event type>",
	// kind producer), attempts ("process <event type>", kind consumer,
	// in the trace of the enqueue) and webhook deliveries ("POST", kind
	// client), after the OpenTelemetry messaging semantic conventions.
	// NewEngine reads it, or the global provider, once: set the global
	// provider before. Defaults to otel.GetTracerProvider(); the no-op
	// provider, or a global one that none was set into, turns spans off.
	TracerProvider trace.TracerProvider
	// MeterProvider makes the metrics that README lists under
	// "Observability". NewEngine reads it, or the global provider, once.
	// Defaults to otel.GetMeterProvider(); the no-op provider, or a
	// global one that none was set into, turns metrics off, and with
	// spans off too the engine allocates nothing per task for them.
	MeterProvider metric.MeterProvider
	// Webhooks configures the delivery of tasks to webhook endpoints. nil
	// means the defaults of WebhookConfig.
	Webhooks *WebhookConfig
	// MaxDataBytes bounds the size of a task's Data. Defaults to
	// DefaultMaxDataBytes.
	MaxDataBytes int
	// EncryptionKeys, each EncryptionKeySize (32) random bytes, encrypt
	// endpoints' signing secrets in the store with AES-256-GCM, so that a
	// copy of the database does not give them away. The first key encrypts
	// every secret the engine writes; every key decrypts. To change keys,
	// put the new one first, keep the old ones until
	// [Engine.ReencryptEndpoints] has run, then drop them. Secrets stored in
	// plaintext, before keys were configured, stay readable. A secret
	// encrypted with a key not listed fails to read with an error naming
	// that key's ID, and deliveries to its app fail with it: it never signs
	// with a wrong secret. Defaults to none: secrets are stored in
	// plaintext.
	EncryptionKeys [][]byte
	// RetainCompleted is how long a completed task is kept after it
	// completed; then it is deleted, with its attempts, and its
	// idempotency key is free again. One engine at a time among those
	// sharing the store deletes, in small batches, about once a minute.
	// Forever keeps completed tasks forever. Defaults to
	// DefaultRetainCompleted (24 hours).
	RetainCompleted time.Duration
	// RetainFailed is RetainCompleted for failed tasks. Forever keeps
	// them forever. Defaults to DefaultRetainFailed (14 days).
	RetainFailed time.Duration
	// RetainCanceled is RetainCompleted for canceled tasks. Forever keeps
	// them forever. Defaults to DefaultRetainCanceled (7 days).
	RetainCanceled time.Duration
	// MaxWaiting bounds the tasks waiting to run on a MemoryStore, so that
	// a process whose producers outrun its workers keeps its latency
	// instead of a backlog that grows for as long as they do. While the
	// store holds MaxWaiting or more tasks that were enqueued (or
	// replayed, or rescheduled) to run at once and have not started,
	// Enqueue and EnqueueMany store nothing and return an error matching
	// ErrOverloaded at once: they do not wait, so the caller chooses to
	// retry later, shed or slow down, and the HTTP API answers 503 with
	// Retry-After: 1. Tasks scheduled for later and
	// retries are not counted; a batch is let in whole while the count is
	// below the bound. The count is the store's, shared by the engines on
	// it. The SQL stores, whose backlog is on disk, ignore it. Defaults to
	// 0: no bound.
	MaxWaiting int
}

func (c *Config) withDefaults() (Config, error) {
	var cfg Config
	if c != nil {
		cfg = *c
	}
	switch {
	case cfg.Workers < 0:
		return cfg, errors.New("tasks: Config.Workers must not be negative")
	case cfg.MaxAttempts < 0:
		return cfg, errors.New("tasks: Config.MaxAttempts must not be negative")
	case cfg.MaxAttempts > MaxMaxAttempts:
		return cfg, fmt.Errorf("tasks: Config.MaxAttempts must be at most %d", MaxMaxAttempts)
	case cfg.Lease < 0:
		return cfg, errors.New("tasks: Config.Lease must not be negative")
	case cfg.RescueInterval < 0:
		return cfg, errors.New("tasks: Config.RescueInterval must not be negative")
	case cfg.PollInterval < 0:
		return cfg, errors.New("tasks: Config.PollInterval must not be negative")
	case cfg.MaxDataBytes < 0:
		return cfg, errors.New("tasks: Config.MaxDataBytes must not be negative")
	case cfg.MaxWaiting < 0:
		return cfg, errors.New("tasks: Config.MaxWaiting must not be negative")
	}
	if err := cfg.retentionDefaults(); err != nil {
		return cfg, err
	}
	if cfg.MaxDataBytes == 0 {
		cfg.MaxDataBytes = DefaultMaxDataBytes
	}
	if cfg.Workers == 0 {
		cfg.Workers = DefaultWorkers
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Lease == 0 {
		cfg.Lease = DefaultLease
	}
	if cfg.RescueInterval == 0 {
		cfg.RescueInterval = cfg.Lease / 2
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.BackoffFunc == nil {
		cfg.BackoffFunc = defaultBackoff
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	webhooks, err := cfg.Webhooks.withDefaults()
	cfg.Webhooks = &webhooks
	return cfg, err
}

// defaultBackoff is the default Config.BackoffFunc, as documented there.
func defaultBackoff(attempt int) time.Duration {
	d := time.Hour
	if attempt < 13 { // 2^12 s > 1 h
		d = min(time.Second<<max(attempt-1, 0), time.Hour)
	}
	return d/2 + rand.N(d/2+1)
}

// Engine runs tasks: it stores them in a [Store], keeps the upcoming ones in a
// timer wheel, claims each when it is due and runs the [Func] registered for
// its event type on a bounded pool of workers.
//
// Several engines, in one process or many, may share a store; each task then
// runs on one of them at a time. An Engine is safe for concurrent use. Enqueue
// and the other task methods work whether or not it is started, so a process
// may use an engine only to enqueue.
type Engine struct {
	store    Store
	cfg      Config
	log      *slog.Logger
	webhooks *webhookClient // delivers to endpoints
	keys     keyring        // encrypt endpoints' secrets in the store
	id       string         // names the engine where it holds a role (see Store.Elect)
	retain   retention      // how the retention goroutine paces itself
	group    *groupCommit   // for Enqueue on a durable store; nil on others
	epoch    time.Time      // the wheel's time 0, on the monotonic clock

	obs    *instrumentation // OpenTelemetry spans and metrics
	mws    []Middleware     // the instrumentation's, if on, then Config.Middleware
	enqMW  bool             // some of mws wrap enqueues
	execMW bool             // some of mws wrap attempts
	// checkEnq: some of Config.Middleware wrap enqueues, and what they
	// hand on is checked again (checkEnqueued).
	checkEnq bool
	window   observe.Window // the last hour of attempts, for the dashboard

	funcsMu sync.RWMutex
	funcs   map[string]Func
	wrapped map[string]Func // funcs wrapped by the Execute of mws, if any

	endpoints   endpointCache // apps' endpoints, as deliveries read them
	healthCalls healthCalls   // when successes were last recorded, per endpoint

	lifecycle sync.Mutex // serializes Start and Stop
	mu        sync.Mutex // guards run
	run       *run       // the running scheduler, or nil when stopped
}

// NewEngine returns an engine on store. It starts nothing; call Start.
func NewEngine(store Store, cfg *Config) (*Engine, error) {
	if store == nil {
		return nil, errors.New("tasks: NewEngine: nil store")
	}
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	webhooks, err := c.Webhooks.newClient(c.Workers)
	if err != nil {
		return nil, err
	}
	keys, err := newKeyring(c.EncryptionKeys)
	if err != nil {
		return nil, err
	}
	e := &Engine{
		store:    store,
		cfg:      c,
		keys:     keys,
		log:      c.Logger,
		webhooks: webhooks,
		epoch:    time.Now(),
		funcs:    make(map[string]Func),
		wrapped:  make(map[string]Func),
		id:       uuid.NewString(),
		retain:   defaultRetention,
	}
	if store.Durable() {
		e.group = &groupCommit{store: store}
	}
	e.obs = newInstrumentation(&c)
	if e.obs.on() {
		e.mws = append(e.mws, e.obs.middleware())
	}
	e.mws = append(e.mws, c.Middleware...)
	for _, mw := range c.Middleware {
		e.checkEnq = e.checkEnq || mw.Enqueue != nil
	}
	for _, mw := range e.mws {
		e.enqMW = e.enqMW || mw.Enqueue != nil
		e.execMW = e.execMW || mw.Execute != nil
	}
	return e, nil
}

// Register makes fn run the tasks of eventType. It panics if eventType is
// invalid, fn is nil, or eventType already has a func, as http.ServeMux.Handle
// does for a pattern registered twice. A task whose event type has no func
// is delivered to its app's webhook endpoints (see [Engine.CreateEndpoint]);
// with none subscribed, its attempt fails, saying so, and it is retried.
// Every engine sharing a store should register the same funcs.
func (e *Engine) Register(eventType string, fn Func) {
	if err := validateEventType(eventType); err != nil {
		panic(err)
	}
	if fn == nil {
		panic("tasks: Register " + eventType + ": nil func")
	}
	e.funcsMu.Lock()
	defer e.funcsMu.Unlock()
	if _, dup := e.funcs[eventType]; dup {
		panic("tasks: Register " + eventType + ": event type already registered")
	}
	e.funcs[eventType] = fn
	if e.execMW {
		// Wrapped once, not per attempt: each wrapper is a closure.
		e.wrapped[eventType] = wrapExecute(e.mws, fn)
	}
}

func (e *Engine) funcFor(eventType string) Func {
	e.funcsMu.RLock()
	defer e.funcsMu.RUnlock()
	return e.funcs[eventType]
}

// attemptFunc returns what an attempt of a task of eventType runs: its
// func, wrapped by the Execute middleware, if any; nil if it has none.
func (e *Engine) attemptFunc(eventType string) Func {
	e.funcsMu.RLock()
	defer e.funcsMu.RUnlock()
	if e.execMW {
		return e.wrapped[eventType]
	}
	return e.funcs[eventType]
}

// Start starts the engine's scheduler, workers, heartbeats, rescuer and
// retention (see Config.RetainCompleted), and returns; it does not block.
// It first checks that the store answers, and returns that error if it
// does not, and that an [SQLStore]'s tables are at this package's
// version: it refuses tables a newer version migrated ([ErrSchemaTooNew])
// and tables not migrated yet. Starting a started engine does nothing.
// ctx bounds only the check; Stop stops the engine.
func (e *Engine) Start(ctx context.Context) error {
	e.lifecycle.Lock()
	defer e.lifecycle.Unlock()
	if e.current() != nil {
		return nil
	}
	// The call the scheduler makes before each read of the upcoming
	// tasks (the store's clock alone): a store that refuses it would
	// start, and never read them.
	if _, _, err := e.store.Upcoming(ctx, 0, 0); err != nil {
		return wrapf(err, "start: store unusable")
	}
	if c, ok := e.store.(interface{ checkSchema(context.Context) error }); ok {
		// An SQLStore, or a store embedding one: tables of another version
		// of this package would be misread or written wrong.
		if err := c.checkSchema(ctx); err != nil {
			return fmt.Errorf("tasks: start: %w", err)
		}
	}
	r := e.startRun()
	r.unregister = e.obs.registerGauges(r)
	e.mu.Lock()
	e.run = r
	e.mu.Unlock()
	return nil
}

// Stop stops the engine. It stops claiming tasks at once and waits for the
// running ones to finish and their outcomes to be stored, then returns nil.
// Tasks the engine claimed ahead of its workers (under a backlog: as many
// as its workers run in the time a claim takes, at least one, and none for
// tasks that run longer than a hundred claims or a second) run before it
// returns.
// If ctx ends first, it stops storing outcomes, starts no more tasks,
// cancels the running tasks' contexts, hands back to the store, to be
// retried at once, the tasks whose funcs return within moments and those
// not started (an interrupted attempt is never recorded as completed), and
// returns ctx's error. A task func that ignores its context
// is abandoned: its result is dropped when it returns, and its task is left
// to its lease, so that no other engine runs it while it still runs here.
// Every goroutine the engine started has ended when Stop returns, except
// those abandoned task funcs; the keep-alive connections of webhook
// deliveries are closed. Stopping a stopped engine does nothing.
func (e *Engine) Stop(ctx context.Context) error {
	e.lifecycle.Lock()
	defer e.lifecycle.Unlock()
	r := e.current()
	if r == nil {
		return nil
	}
	e.mu.Lock()
	e.run = nil
	e.mu.Unlock()
	err := r.stop(ctx)
	r.unregister()
	e.webhooks.CloseIdleConnections() // and their goroutines
	return err
}

// current returns the running scheduler, or nil.
func (e *Engine) current() *run {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.run
}

// hint tells the running scheduler, if any, that task id is due at runAt on
// the store's clock.
func (e *Engine) hint(id string, runAt *time.Time) {
	if r := e.current(); r != nil && runAt != nil {
		r.hint(Due{ID: id, RunAt: *runAt})
	}
}

// Get returns the task with the given ID, or an error matching ErrNotFound.
func (e *Engine) Get(ctx context.Context, id string) (*Task, error) {
	t, err := e.store.Get(ctx, id)
	if err != nil {
		return nil, wrapf(err, "get task %s", id)
	}
	return t, nil
}

// List returns the tasks that match p, newest first, and the cursor of the
// next page ("" after the last page).
func (e *Engine) List(ctx context.Context, p ListParams) ([]*Task, string, error) {
	ts, next, err := e.store.List(ctx, p)
	if err != nil {
		return nil, "", wrapf(err, "list tasks")
	}
	return ts, next, nil
}

// CountTasks returns how many tasks of the app appID are in each state; a
// state that no task is in is absent from the map. The live states
// (scheduled, running, retrying) are counted exactly; each terminal state
// (completed, failed, canceled) up to limit, so that a terminal count
// equal to limit means "limit or more", as the dashboard shows "10,000+".
// The count costs in proportion to the app's live tasks and limit, not to
// its history; see [Store.CountTasks]. A limit below 1 gives a
// *ValidationError.
func (e *Engine) CountTasks(ctx context.Context, appID string, limit int) (map[State]int, error) {
	counts, err := e.store.CountTasks(ctx, appID, limit)
	if err != nil {
		return nil, wrapf(err, "count tasks of app %s", appID)
	}
	return counts, nil
}

// TaskHistogram counts the tasks of the app appID that ended (completed,
// failed or canceled) from since on, in intervals of length bucket, one
// Bucket for each interval that holds any, in order; see
// [Store.TaskHistogram]. A bucket shorter than a microsecond gives a
// *ValidationError.
func (e *Engine) TaskHistogram(ctx context.Context, appID string, since time.Time, bucket time.Duration) ([]Bucket, error) {
	bs, err := e.store.TaskHistogram(ctx, appID, since, bucket)
	if err != nil {
		return nil, wrapf(err, "histogram of app %s", appID)
	}
	return bs, nil
}

// AttemptStats returns the attempts of the tasks of the app appID that
// ended on this engine in the last hour, by event type: how many, how many
// failed, and the median and 99th percentile of their lateness, measured
// as the lateness metric is (see README, "Observability"), whether or not
// metrics are on. It serves package dashboard.
func (e *Engine) AttemptStats(appID string) []observe.EventStats {
	return e.window.Stats(time.Now(), appID)
}

// RevokeSession records in the store that the dashboard session id was
// logged out, until expires, when it would have ended anyway, so that
// SessionRevoked reports it to every engine on the store. It serves package
// dashboard; see [Store.RevokeSession].
func (e *Engine) RevokeSession(ctx context.Context, id string, expires time.Time) error {
	if err := e.store.RevokeSession(ctx, id, expires); err != nil {
		return wrapf(err, "revoke dashboard session")
	}
	return nil
}

// SessionRevoked reports whether the dashboard session id was revoked by
// RevokeSession, on any engine sharing the store, and its revocation has
// not expired. It serves package dashboard; see [Store.SessionRevoked].
func (e *Engine) SessionRevoked(ctx context.Context, id string) (bool, error) {
	revoked, err := e.store.SessionRevoked(ctx, id)
	if err != nil {
		return false, wrapf(err, "check dashboard session")
	}
	return revoked, nil
}

// Cancel cancels a task. A scheduled or retrying task becomes canceled and
// will not run. A running task has its cancellation requested: its context is
// cancelled (at once on this engine, at the next heartbeat on another) and it
// ends canceled unless it completes first. Canceling a canceled task returns
// it unchanged. A completed or failed task is returned with an error matching
// ErrInvalidState.
func (e *Engine) Cancel(ctx context.Context, id string) (*Task, error) {
	t, err := e.store.Cancel(ctx, id)
	if err != nil {
		return t, wrapf(err, "cancel task %s", id)
	}
	// The attempt running here, if any. A task that the store canceled
	// at once runs here only if the database forgot its claim (see
	// Lease): that run is stale, and stops now rather than at its next
	// lease extension.
	if r := e.current(); r != nil && (t.State == StateRunning || t.State == StateCanceled) {
		r.revoke(Lease{ID: id}, errCancelRequested)
	}
	return t, nil
}

// Reschedule moves a scheduled or retrying task to runAt (as soon as
// possible if runAt is past). Other states give ErrInvalidState.
func (e *Engine) Reschedule(ctx context.Context, id string, runAt time.Time) (*Task, error) {
	t, err := e.store.Reschedule(ctx, id, runAt)
	if err != nil {
		return t, wrapf(err, "reschedule task %s", id)
	}
	e.hint(t.ID, t.NextAttemptAt)
	return t, nil
}

// Replay makes a completed, failed or canceled task run again as soon as
// possible, with Config.MaxAttempts more attempts. It keeps its ID, its
// attempt count and its attempt history, and starts a new run (see
// Task.ReplayedAfter): a task delivered to webhooks is sent again to every
// endpoint subscribed to it, whatever they answered before, and the
// retries of the new run skip only the endpoints that acknowledged in it.
// Other states give ErrInvalidState.
func (e *Engine) Replay(ctx context.Context, id string) (*Task, error) {
	t, err := e.store.Replay(ctx, id, e.cfg.MaxAttempts)
	if err != nil {
		return t, wrapf(err, "replay task %s", id)
	}
	e.hint(t.ID, t.NextAttemptAt)
	return t, nil
}
