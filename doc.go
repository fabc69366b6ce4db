/*
Package tasks runs background tasks inside your Go process, each at its time.

An application builds an [Engine] on a [Store], registers a [Func] per event
type, and enqueues tasks: a task is an event type, a JSON payload and an
optional run time, modelled on the HostedHooks Tasks API. The engine keeps the
upcoming tasks in a hierarchical timer wheel, wakes when the next one is due
(it does not poll for its own work), claims due tasks under a lease, runs them
on a bounded pool of workers, retries failures with backoff, and records every
outcome. A task is never lost once Enqueue returned on a durable store, and it
runs at least once; its ID is stable across attempts so that receivers can
deduplicate.

Stores: [NewMemoryStore] for tests and work that may be lost; an SQLite file
for one process (or several on one machine), opened by package
github.com/taskwheel/tasks/sqlite; PostgreSQL for many processes sharing the
work, opened by package github.com/taskwheel/tasks/postgres. Both are an
[SQLStore], which imports no driver: this package builds without cgo.

# A task func

A Func returns nil when the task is done, an error to retry it with backoff,
[Permanent] to fail it at once, or [RetryAfter] to choose the delay. Its
context ends at the attempt's timeout, on cancellation and at shutdown:

	func sendWelcome(ctx context.Context, t *tasks.Task) error {
		var in struct{ Email string }
		if err := json.Unmarshal(t.Data, &in); err != nil {
			return tasks.Permanent(err) // retrying will not help
		}
		return mailer.Send(ctx, in.Email, "Welcome!")
	}

# Registering and running

	store, err := sqlite.Open("tasks.db", nil)
	eng, err := tasks.NewEngine(store, &tasks.Config{Workers: 16})
	eng.Register("user.welcome", sendWelcome)
	err = eng.Start(ctx) // returns at once
	defer eng.Stop(ctx)  // waits for running tasks; cancels them when ctx ends

# Enqueueing

	t, err := eng.Enqueue(ctx, tasks.NewTask{
		AppID:     "app_1",
		EventType: "user.welcome",
		Data:      json.RawMessage(`{"email":"a@example.com"}`),
		RunAt:     time.Now().Add(time.Hour), // zero: as soon as possible
	})

On a SQL store, [Engine.EnqueueTx] enqueues inside the caller's *sql.Tx: the
task exists if and only if the transaction commits. [Engine.EnqueueMany]
stores many tasks in one transaction, all or none. Concurrent Enqueue calls
on a durable store share their commits (group commit), so many goroutines
enqueueing at once cost about one transaction per round, not one each. An
IdempotencyKey makes a task unique per app; a second Enqueue with the key
returns the first task with [ErrDuplicate].

Tasks can be listed, canceled, rescheduled, replayed and deleted through
the engine ([Engine.List], [Engine.Cancel], [Engine.Reschedule],
[Engine.Replay], [Engine.Delete]); [Engine.ReplayFailed] and
[Engine.CancelScheduled] replay or cancel, in bounded batches, all the
failed or waiting tasks of an app created in a time range. A bulk
operation stopped half-way has changed whole batches only, and running it
again finishes the rest.

Finished tasks are deleted, with their attempts, once their state's
retention has passed ([Config].RetainCompleted, RetainFailed,
RetainCanceled; a day, two weeks and a week by default), by one engine at a
time; a deleted task's idempotency key is free again.

# Flow control

Every task has a flow key, its NewTask.FlowKey or else its event type. A
[Limit] on an app's key, set with [Engine.SetLimit] and kept in the store,
bounds how fast ([Limit].Rate, a token bucket of Burst) and how many at
once ([Limit].Concurrency) of its tasks start, across every engine sharing
the store, or pauses them. Limits are enforced when claiming: a task that
waits for its key's capacity holds no worker, uses no attempt and says why
in Task.WaitReason. On SQL stores, claims under a backlog serve the apps
that have due tasks in turn.

# Periodic tasks

A periodic task enqueues a task at each run time ("slot") of a cron schedule
in a time zone ([NewPeriodic].Spec: five fields or an optional sixth for
seconds, descriptors such as @daily and @every 90s, IANA zones with their
daylight saving rules):

	p, err := eng.CreatePeriodic(ctx, tasks.NewPeriodic{
		AppID:     "app_1",
		Spec:      "30 9 * * MON-FRI", // 9:30 on weekdays
		TimeZone:  "Europe/Berlin",
		EventType: "report.daily",
		Data:      json.RawMessage(`{"report":"sales"}`),
	})

Each slot gets one task however many engines share the store: the slot is
the task's idempotency key. The engines enqueue it shortly before its slot,
so it starts on time. Slots that pass while no engine runs are run once or
skipped, as the periodic task's [MissedPolicy] says. Periodic tasks can be
paused, changed and deleted ([Engine.UpdatePeriodic], [Engine.DeletePeriodic]).

# Webhooks

A task whose event type has no func is delivered to its app's webhook
endpoints that subscribe to it ([Engine.CreateEndpoint]): a signed POST
(Standard Webhooks headers, and HostedHooks-Signature), retried on a
Svix-like schedule to the endpoints that have not acknowledged it with a
2xx. Every attempt is recorded ([Engine.Attempts]). Receivers check a
delivery with [webhook.Verify], from the small package
github.com/taskwheel/tasks/webhook, without importing the engine. The delivery client refuses private and other
special addresses on the address it dials unless [WebhookConfig] allows them.
An endpoint whose deliveries all fail for WebhookConfig.DisableAfter (five
days by default), or that answers 410 Gone, is disabled, with the reason
and time on it ([Endpoint].DisabledReason); setting its status to active
again ([Engine.UpdateEndpoint]) re-enables it. An endpoint's
[Endpoint].RateLimit and MaxInFlight bound its deliveries across every
engine; a task held back waits, with no worker and no attempt used.

# Middleware and observability

A [Middleware] wraps every enqueue and every attempt, with the task and
the attempt's number in reach ([Config].Middleware, the first outermost).
The engine traces and measures itself with the OpenTelemetry API, through
a Middleware of its own: a span per enqueue and per attempt (and per
webhook delivery), the attempt's span in the trace of the enqueue, whose
context the task keeps ([Task].TraceParent), and the metrics that README
lists, from [Config].TracerProvider and MeterProvider or the global
providers. With both no-op, it adds nothing to a task's path. Package
observe holds the last hour of attempts that the dashboard shows.

# HTTP API and dashboard

[Engine.Handler] serves the HostedHooks Tasks API (tasks, attempts,
endpoints, schedules, and HostedHooks' messages, webhook attempts and
webhook events), and package dashboard a web dashboard of the same
apps, behind the same keys; mount both under prefixes:

	keys := map[string][]string{apiKey: {"app_1"}}
	mux.Handle("/api/v1/", http.StripPrefix("/api/v1", eng.Handler(&tasks.HandlerConfig{Keys: keys})))
	mux.Handle("/ui/", http.StripPrefix("/ui", dashboard.New(eng, &dashboard.Config{Keys: keys})))

# Guarantees

  - At least once: a task may run twice (its process died after the func
    returned, before the outcome was stored; or the PostgreSQL server
    crashed within moments of its claim, as claims commit without waiting
    for the disk), never zero times.
  - A claim is atomic and leased; each later write is fenced on the task's ID,
    its attempt number, its running state and, on the SQL stores, the
    claim's random token, so a worker whose lease expired, or whose claim the
    database forgot, cannot overwrite a newer attempt. Leases are extended while a task runs;
    the rescuer returns the tasks of dead engines to be retried.
  - Due times and leases follow the store's clock; in-process timers use the
    monotonic clock, so a wall clock jump neither fires nor loses a task.
  - Stop stops claiming, waits for running tasks, cancels their contexts when
    its context ends, never records an interrupted attempt as completed, and
    joins every goroutine the engine started but those of task funcs that
    ignore their context.

# Files

The packages, in the order data flows through them:

  - webhook: signing and verifying deliveries (Standard Webhooks and
    HostedHooks), standard library only, so that a receiver imports it
    alone.
  - tasks (this package, pure Go): the engine and its contract.
  - sqlite: an SQLStore on a file through mattn/go-sqlite3 (cgo): 0600
    files, WAL, one writer beside a pool of readers, the checkpointer.
  - postgres: an SQLStore through pgx: a sized pool, and LISTEN/NOTIFY.
  - dashboard: the web dashboard (html/template, no script), mounted beside
    the API.
  - observe: the last hour of attempts by event type (the dashboard's
    lateness and failure rate), and the metrics' histogram bounds.
  - tasktest: the Store conformance suite, and helpers for users' tests.
  - internal/web: the API keys and path and event type checks that the API
    and the dashboard share; internal/sqlstore: what the SQLStore shares
    with sqlite and postgres beyond its exported API; internal/testhook:
    what tasktest shares with this package beyond its exported API;
    internal/testkit and internal/testdb: the helpers and databases of
    this module's own tests.
  - cmd/tasksd and cmd/tasksbench: the server and the benchmarks.

This package is laid out one concept to a file:

  - tasks.go: the task model, errors, and every default and limit in two
    constant blocks.
  - engine.go: the Engine and its Config.
  - enqueue.go: enqueueing, and the group commit of concurrent enqueues.
  - scheduler_loop.go: the scheduler goroutine: its loop's state and
    decisions as a type; wheel.go: the timer wheel it keeps;
    claim_floor.go: the claim floor, where an engine's claims on
    PostgreSQL start reading the due tasks, past those that left.
  - scheduler.go: a run: the worker pool, outcomes, heartbeats and the
    rescuer; scheduler_ready.go: the queue of claimed tasks, which serves
    apps in turn; retention.go: the retention goroutine, which deletes finished
    tasks past their retention while its engine holds the role.
  - store.go: the Store contract, one interface.
  - bulk.go: deleting tasks, and replaying or canceling many, batch by
    batch.
  - store_memory.go, store_memory_counts.go and store_memory_tables.go:
    the store in memory: its tasks; its counts of tasks by app and state,
    kept as tasks change; its endpoints, periodic tasks and sessions;
    store_memory_bulk.go: its deletes and bulk changes;
    store_memory_due.go: its pending tasks, a heap per app in a heap of
    apps, and claims that serve apps in turn.
  - store_sql.go: the SQL store: its type, dialects, and tasks' rows, reads
    and changes; store_sql_migrate.go: its embedded, versioned migrations;
    store_sql_insert.go: inserting tasks, one or many (a batch on SQLite
    as statements of a thousand rows); store_sql_insert_postgres.go: a
    batch on PostgreSQL, as one statement over arrays; store_sql_list.go:
    listing them in pages bounded in bytes; store_sql_claims.go:
    claims, outcomes, leases, the rescuer and upcoming tasks;
    store_sql_bulk.go: deleting a task, and the batches of bulk changes;
    store_sql_webhooks.go, store_sql_periodic.go and store_sql_dashboard.go:
    endpoints and attempts, periodic tasks, sessions and counts;
    store_sql_retention.go (and store_memory_retention.go in memory):
    deleting finished tasks in batches, and the roles of Elect;
    store_sql_conn.go: retrying on a PostgreSQL connection the server
    ended, and telling drivers' errors apart without importing a driver;
    store_memory_messages.go and store_sql_messages.go: an app's
    delivery attempts, newest first, for HostedHooks' webhook attempts.
  - endpoint.go: webhook endpoints; secret_crypt.go: their secrets,
    encrypted in the store; endpoint_health.go: disabling those whose
    deliveries keep failing, store_memory_health.go and
    store_sql_health.go: the stores' record of it; endpoint_limits.go:
    limits per endpoint (rate_limit, max_in_flight), taken before each
    delivery, store_memory_endpoint_limits.go and
    store_sql_endpoint_limits.go: the stores' buckets and slots.
  - delivery.go: webhook delivery; webhook_client.go: its SSRF-safe client.
  - middleware.go: Middleware, and wrapping enqueues and attempts in it;
    observe.go: the OpenTelemetry instrumentation, itself a Middleware;
    observe_counts.go: the counts per event type behind its observable
    counters; store_memory_observe.go and store_sql_observe.go: the counts of live
    tasks behind its gauge.
  - periodic.go: periodic tasks: cron schedules and their firing.
  - store_sql_goose.go: the migrations in goose's format, which packages
    sqlite and postgres export for tools that apply them.
  - testhooks.go: what package tasktest reaches beyond this package's
    API (through internal/testhook): running tasks in the caller's
    goroutine, and reading tasks through the caller's transaction.
  - flow.go: flow keys and limits, and the Engine's methods for them;
    store_memory_flow.go and store_sql_flow.go: the stores' limits, and
    claims that enforce them; store_sql_flow_claim.go: the SQL stores'
    claims under limits, which lock only the limits of keys they meet;
    store_sql_flow_fast.go: the claim under limits that hold nothing
    back, as a claim without limits does (one statement on PostgreSQL;
    on SQLite, the claim, then the check);
    store_sql_fair.go: claims that serve the apps with due tasks in turn;
    store_sql_pause.go: pause and resume.
  - idempotency.go: the digest of the request that created a task with an
    idempotency key, which tells that request, sent again, from another.
  - handler.go: the HTTP API: its routes, keys, answers and error mapping;
    handler_body.go: strict JSON request bodies; handler_tasks.go,
    handler_list.go, handler_bulk.go, handler_endpoints.go and
    handler_periodic.go: the routes of tasks, their streamed lists, their
    deletion and bulk changes, endpoints and schedules; handler_limits.go:
    the routes of limits;
    handler_task_options.go: a task's max_attempts and timeout over HTTP;
    handler_messages.go: HostedHooks' messages, webhook attempts and
    webhook events, and its bare-array lists; auth.go: the checks of a
    HandlerConfig; handler_openapi.go: GET /openapi.json, which serves
    openapi.json, the API's OpenAPI 3.1 document, that the tests hold to
    the routes and to every request and answer of theirs.

# Testing

Package tasktest holds the conformance suite every Store must pass and
helpers for testing task funcs. Use [NewMemoryStore] in unit tests; it runs in
fake time under testing/synctest.
*/
package tasks
