package tasks

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/binary"
	"slices"
	"time"

	"github.com/taskwheel/tasks/internal/web"
)

// Store keeps tasks. It is the engine's only source of truth: the engine
// remembers nothing that it could not lose, so several engines, in one process
// or many, may share a store.
//
// The package provides [NewMemoryStore] and [SQLStore] (SQLite and
// PostgreSQL, opened with the library's settings by the packages
// github.com/taskwheel/tasks/sqlite and github.com/taskwheel/tasks/postgres).
// Other implementations must pass the conformance suite in the tasktest
// package, which is this contract in code. In summary:
//
//   - Every method is safe for concurrent use, by many engines at once.
//   - Times are the store's clock: "now" in Claim, Rescue, Extend, Finish,
//     Upcoming and DuePeriodics is the store's own (the database server's clock for a server
//     database), never a time the caller passes, so engines whose clocks
//     disagree still agree on what is due. Times are kept to the microsecond.
//   - Each method is atomic: it applies entirely or not at all.
//   - A task is claimed by at most one caller at a time: Claim moves it to
//     running under a lease and counts the attempt; every later write for that
//     attempt (Finish, Extend) is fenced on the task's ID, its attempt number
//     and its state being running, so a caller whose lease expired and whose
//     task was claimed again cannot overwrite the newer attempt.
//   - Updates of endpoints and periodic tasks are compare and set on
//     UpdatedAt, so that concurrent read-modify-write updates lose none.
//   - Idempotency keys are unique per app, enforced atomically (by a unique
//     constraint on SQL stores), never by checking and then inserting.
//     Periodic tasks rely on them for one task per slot, and on
//     AdvancePeriodic's compare and set for moving past a slot once.
type Store interface {
	// Durable reports whether a task that Insert stored survives the end
	// of the process: true for a database, false for memory. The engine
	// commits concurrent enqueues to a durable store in groups (see
	// InsertMany), and tells callers that a non-durable store loses its
	// tasks on restart. It returns the same answer on every call.
	Durable() bool

	// Insert stores a new task. The caller sets ID, AppID, EventType, Data,
	// ScheduledRunTime, MaxAttempts, Timeout, IdempotencyKey and
	// IdempotencyDigest (opaque text, which no other method changes); the
	// store sets State to scheduled, CreatedAt and UpdatedAt to now, and
	// NextAttemptAt to ScheduledRunTime, or now when it is nil or past. It
	// returns the stored task. If the app already has a task with the same
	// non-empty IdempotencyKey, Insert stores nothing and returns that task
	// with ErrDuplicate.
	Insert(ctx context.Context, t *Task) (*Task, error)

	// InsertMany stores new tasks as Insert stores each, in one atomic
	// step: all of them or, with an error, none. It returns the stored
	// tasks in the order of ts. A task whose non-empty IdempotencyKey its
	// app already used, before or earlier in ts, is not stored: the task
	// that holds the key takes its place in the result, so that the
	// result's ID there differs from the one asked for. That is not an
	// error.
	InsertMany(ctx context.Context, ts []*Task) ([]*Task, error)

	// InsertTx is Insert inside tx, a transaction on the store's own
	// database: the task exists if and only if tx commits, and a duplicate
	// idempotency key leaves tx usable. A store that keeps no database/sql
	// database returns ErrNotSupported and stores nothing.
	InsertTx(ctx context.Context, tx *sql.Tx, t *Task) (*Task, error)

	// Get returns the task with the given ID, or ErrNotFound.
	Get(ctx context.Context, id string) (*Task, error)

	// GetByIdempotencyKey returns the task of the app appID that holds the
	// idempotency key key, or ErrNotFound; no task holds the key "".
	GetByIdempotencyKey(ctx context.Context, appID, key string) (*Task, error)

	// List returns tasks matching p, newest first (by CreatedAt, then ID),
	// as many as p.Limit and p.MaxBytes allow, and a cursor for the next
	// page, "" on the last page.
	List(ctx context.Context, p ListParams) ([]*Task, string, error)

	// Claim moves up to limit due tasks (scheduled or retrying, with
	// NextAttemptAt not after now), earliest first, to running: it increments
	// Attempts, sets LeaseExpiresAt to now plus lease, clears NextAttemptAt
	// and returns them. A task is never returned to two callers for the same
	// attempt. It obeys the limits of the tasks' flow keys (see SetLimit).
	// A store may serve apps in turn rather than strictly earliest first,
	// so that one app's backlog does not delay another's tasks (the SQL
	// stores do, while due tasks outnumber what claims take).
	Claim(ctx context.Context, limit int, lease time.Duration) ([]*Task, error)

	// Finish records the outcomes of claimed attempts. Each outcome applies
	// only if its task is still running at that attempt (fencing); applied[i]
	// reports whether outs[i] did. An outcome of StateRetrying for a task
	// whose cancellation was requested records StateCanceled instead.
	Finish(ctx context.Context, outs []Outcome) (applied []bool, err error)

	// Extend moves the lease of each running attempt in leases to now plus
	// d. It returns the IDs of the leases that are no longer the caller's to
	// run: attempts whose cancellation was requested, and attempts that are
	// no longer running (their lease was lost). A store may leave as it is,
	// until the caller's next Extend, a lease whose task another write holds
	// at that moment (such as the caller's own Finish), rather than wait for
	// it; such a lease is still the caller's.
	Extend(ctx context.Context, leases []Lease, d time.Duration) (revoked []string, err error)

	// Rescue ends up to limit running attempts whose lease expired: a task
	// whose cancellation was requested becomes canceled; one whose attempts
	// are used up becomes failed; any other becomes retrying, due now. Each
	// gets the last error "lease expired". It returns how many it rescued.
	// Rescue is safe to run from several engines at once: each expired
	// attempt is rescued once.
	Rescue(ctx context.Context, limit int) (int, error)

	// PurgeTasks deletes up to limit tasks in the terminal state state
	// whose CompletedAt is before now minus olderThan, oldest CompletedAt
	// first, together with their attempt history, in one short atomic
	// step, and returns how many it deleted. A task in any other state is
	// never deleted, whatever CompletedAt it had before: CompletedAt is
	// set exactly while a task is terminal, and Replay clears it. A
	// deleted task's idempotency key is free again: a later Insert with
	// the key stores a new task. PurgeTasks never waits for tasks that
	// another caller is changing (it leaves them for a later call), nor
	// holds what Claim, Finish or Insert need for longer than the delete
	// of one batch. A state that is not terminal, a limit below 1 or a
	// negative olderThan gives a *ValidationError.
	PurgeTasks(ctx context.Context, state State, olderThan time.Duration, limit int) (int, error)

	// Elect reports whether holder holds the role named role until now
	// plus term: it takes the role if nobody holds it or its holder's term
	// has expired (is not after now), renews it if holder holds it, and
	// otherwise leaves it to its holder and reports false. It is atomic:
	// of callers electing themselves at once for a free role, exactly one
	// wins. Engines use it so that one of them at a time does the work
	// of a role (such as "retention"), across processes. An empty role or
	// holder, or a term that is not positive, gives a *ValidationError.
	Elect(ctx context.Context, role, holder string, term time.Duration) (bool, error)

	// Resign gives up the role named role if holder holds it, so that
	// another caller's Elect takes it at once; otherwise it changes
	// nothing, and returns nil all the same.
	Resign(ctx context.Context, role, holder string) error

	// Upcoming returns the store's current time and up to limit tasks that
	// are due now or within the next within, earliest first. The engine uses
	// it to fill its timer wheel. Tasks waiting for their flow key's
	// capacity are not among them; this package's stores add, after them
	// and within limit, an entry with the ID "~flow" (no task's) at the
	// time such a task may start, so that the engine claims then. With
	// limit 0 it returns the store's time alone: the engine calls it so
	// before each read of upcoming tasks to learn the store's clock, and
	// wakes later by as long as that call takes, so keep it fast.
	Upcoming(ctx context.Context, within time.Duration, limit int) (now time.Time, due []Due, err error)

	// Listen tells the engine at once of tasks that become pending
	// (stored, retried, rescued, rescheduled or replayed) anywhere, even in
	// another process, so that it need not wait for its next poll to see
	// them: it calls listening once it listens, then notify for such
	// tasks, until ctx ends or the connection fails, and returns the
	// reason; the engine listens again after a failure. A Due with an ID
	// is a task; one without, which a store may send where one change
	// made many tasks pending, asks the engine to read Upcoming again,
	// as the change made tasks pending up to its RunAt. Notifications are
	// hints: one may be lost, and the engine's poll (Config.PollInterval)
	// bounds the delay that costs. A store that cannot listen returns
	// ErrNotSupported at once, and the engine only polls.
	Listen(ctx context.Context, listening func(), notify func(Due)) error

	// Cancel cancels a task. A scheduled or retrying task becomes canceled;
	// for a running task, cancellation is requested (CancelRequested) and the
	// task stays running until its attempt ends. Canceling a canceled task
	// changes nothing and succeeds. A completed or failed task is left alone
	// and ErrInvalidState is returned with it.
	Cancel(ctx context.Context, id string) (*Task, error)

	// Reschedule sets the run time of a scheduled or retrying task: it
	// becomes scheduled with ScheduledRunTime and NextAttemptAt at runAt (now
	// if runAt is past). Any other state gives ErrInvalidState.
	Reschedule(ctx context.Context, id string, runAt time.Time) (*Task, error)

	// Replay makes a terminal task scheduled again, due now, with extra more
	// attempts allowed (MaxAttempts becomes Attempts plus extra), as a new
	// run: ReplayedAfter becomes Attempts, so that the attempts of the new
	// run are those numbered above it. Attempts, LastError, the attempt
	// history and the ID are kept; nothing else changes ReplayedAfter, which
	// Insert sets to 0. A task that is not terminal gives ErrInvalidState.
	Replay(ctx context.Context, id string, extra int) (*Task, error)

	// Delete deletes a task that is not running, with its attempt history,
	// in one atomic step, and returns the task as it was. Its idempotency
	// key is free again: a later Insert with the key stores a new task,
	// and an Insert or InsertMany racing the Delete (or a PurgeTasks)
	// either finds the task, as a duplicate, or stores a new one. A
	// running task is left alone and returned with ErrInvalidState; an
	// unknown one gives ErrNotFound. A Delete racing a Claim of the task
	// either deletes it before the claim, which then does not return it,
	// or fails with ErrInvalidState: a running task is never deleted.
	Delete(ctx context.Context, id string) (*Task, error)

	// ReplayMany replays, as Replay does each (with extra more attempts),
	// failed tasks of one app created in a time range, a batch at a time.
	// p selects them: AppID, CreatedSince and CreatedBefore are required
	// (their absence, or a CreatedSince not before CreatedBefore, gives a
	// *ValidationError naming app_id, created_since or created_before);
	// EventType, if not "", narrows to one event type; States must be nil
	// or [StateFailed]; MaxBytes is ignored. A batch looks at the next
	// p.Limit tasks of the app created in the range (whatever their state
	// and event type), in List order after p.Cursor, and replays those of
	// them that are failed and of the event type, in one atomic step. It
	// returns how many it replayed, and the cursor after the last task it
	// looked at, "" when no task of the range is left: a caller that pages
	// through the range with it visits each task once, however the tasks
	// it replayed fare meanwhile (a replayed task that fails again is not
	// replayed again by the same pass). Each batch reads at most p.Limit
	// tasks, on the app's listing order, whatever the size of the store.
	ReplayMany(ctx context.Context, p ListParams, extra int) (n int, next string, err error)

	// CancelMany cancels, as Cancel does a scheduled or retrying task,
	// the scheduled and retrying tasks of one app created in a time range,
	// a batch at a time, selected and paged as ReplayMany does, but for
	// States: nil selects both scheduled and retrying tasks, or it may
	// name either. Running tasks are not touched, not even to request
	// their cancellation: cancel those one by one.
	CancelMany(ctx context.Context, p ListParams) (n int, next string, err error)

	// Flow control. A task's flow key is its FlowKey (Insert sets it to
	// the EventType when it is ""); an app's key may have a Limit, which
	// Claim enforces across every caller sharing the store:
	//
	//   - Claim starts no task of a Paused key;
	//   - at most Concurrency tasks of a key are running at once;
	//   - at most Burst tasks of a key start at once, and Rate per second
	//     on average: a token bucket whose tokens the store keeps, so that
	//     callers in several processes share it;
	//   - a due task that its key's limit holds back stays scheduled (or
	//     retrying), its attempts unchanged, with WaitReason saying why,
	//     and is not returned by Upcoming; it is started, oldest due first,
	//     by a later Claim once its key has capacity, or made due again,
	//     its WaitReason cleared, when its limit is deleted, or by
	//     Reschedule. The cost of waiting tasks to Claim does not grow
	//     with their number.
	//
	// A key without a limit costs Claim nothing more than it did.

	// SetLimit stores l (AppID, Key, Rate, Burst, Concurrency, Paused, as
	// normalized by the engine), replacing the key's limit, and returns
	// it with UpdatedAt set to now and its Running and Waiting counts. A
	// new limit's token bucket starts full; a changed one keeps its
	// tokens, up to the new Burst. The key's waiting tasks take the
	// reason the new limit holds them back for (paused, else its
	// concurrency, else its rate), and are made due again, as DeleteLimit
	// does, by a limit of nothing.
	SetLimit(ctx context.Context, l *Limit) (*Limit, error)
	// PauseLimit sets only the Paused of the limit of an app's key, in
	// one atomic change that keeps whatever else a SetLimit stored
	// meanwhile, updates its waiting tasks' reason as SetLimit does, and
	// returns the limit as SetLimit does; ErrNotFound if it has none.
	PauseLimit(ctx context.Context, appID, key string, paused bool) (*Limit, error)
	// GetLimit returns the limit of an app's key with its Running and
	// Waiting counts, or ErrNotFound.
	GetLimit(ctx context.Context, appID, key string) (*Limit, error)
	// ListLimits returns an app's limits, by key, with their counts.
	ListLimits(ctx context.Context, appID string) ([]*Limit, error)
	// DeleteLimit deletes the limit of an app's key, and makes the key's
	// waiting tasks due again as they were; ErrNotFound if it has none.
	DeleteLimit(ctx context.Context, appID, key string) error

	// Limits per endpoint (Endpoint.RateLimit and MaxInFlight), global
	// across every caller sharing the store.
	//
	// TakeEndpointCapacity takes, for the running attempt l, the capacity
	// of one delivery to the endpoint endpointID, atomically: a token of
	// its rate limit's bucket (kept by the store, full when the endpoint
	// is new or its RateLimit changed; bursts of up to a tenth of a
	// second's tokens, at least one) and a slot of its MaxInFlight. It
	// reports ok when it took both (or the endpoint has no limit, or is
	// unknown, or l holds a slot of it already); otherwise it takes
	// nothing and returns how long until a token is due, or 0 when the
	// endpoint waits for a slot. A slot is held by l until
	// ReleaseEndpointCapacity, or until l's task is no longer running at
	// l's attempt (it ended, or its lease was rescued), whichever comes
	// first. An attempt that is not running gives ErrInvalidState.
	//
	// A refused token queues l for one (l comes back at its turn, when it
	// takes a token before any delivery that is not queued). When it
	// refuses l a token, and park is more than 0, it also queues, in the
	// same step, up to park other tasks that would each have been refused
	// in turn after l: due tasks (scheduled or retrying, waiting for
	// neither a flow key's limit nor a slot) of l's app and event type, on
	// their run's first attempt (Attempts equal to ReplayedAfter) with no
	// EndpointID, not queued already, oldest due first, looked for among
	// the app's oldest due tasks only (a store may park fewer). Each stays
	// scheduled or retrying, its attempts unchanged, with the WaitReason
	// reason, due at its turn, and its next attempt is queued as l is. It
	// returns them as Upcoming would. A caller asks for this only when
	// endpointID is the only endpoint that l's task is delivered to, so
	// that every such task would need its token.
	TakeEndpointCapacity(ctx context.Context, endpointID string, l Lease, park int, reason string) (ok bool, wait time.Duration, parked []Due, err error)
	// ReleaseEndpointCapacity gives back the slot of endpointID that l
	// holds, if any, and makes the task waiting for a slot of it (see
	// Outcome.WaitEndpoint) with the earliest due time due now. It returns
	// that task, if any, as Upcoming would.
	ReleaseEndpointCapacity(ctx context.Context, endpointID string, l Lease) ([]Due, error)

	// Attempts returns the attempt history of a task, in the order the
	// attempts were stored: those of applied outcomes (see Finish), and
	// one per attempt that Rescue ended. An unknown task has none.
	Attempts(ctx context.Context, taskID string) ([]Attempt, error)

	// ListDeliveryAttempts returns the delivery attempts of the app
	// appID: the attempts of its tasks that delivered to an endpoint
	// (EndpointID not ""), newest first: by StartedAt, then TaskID, Number
	// and EndpointID, each descending. It skips the first offset of them
	// and returns up to limit. The attempts of a deleted task are gone
	// with it; those of a deleted endpoint stay. A negative offset, or a
	// limit below 1 or above MaxListLimit, gives a *ValidationError. Its
	// cost grows with offset plus limit, and with the other apps'
	// deliveries interleaved with the app's.
	ListDeliveryAttempts(ctx context.Context, appID string, offset, limit int) ([]Attempt, error)

	// InsertEndpoint stores a new webhook endpoint; the store sets its
	// CreatedAt and UpdatedAt to now, its FailingSince, LastSuccessAt and
	// DisabledAt to nil and its DisabledReason to "", and returns it.
	InsertEndpoint(ctx context.Context, ep *Endpoint) (*Endpoint, error)
	// GetEndpoint returns the endpoint with the given ID, or ErrNotFound.
	GetEndpoint(ctx context.Context, id string) (*Endpoint, error)
	// ListEndpoints returns an app's endpoints, oldest first; with appID
	// "", every app's.
	ListEndpoints(ctx context.Context, appID string) ([]*Endpoint, error)
	// UpdateEndpoint replaces the URL, Description, EnabledEvents, Status,
	// Version and secrets of the endpoint with ep's ID, sets its UpdatedAt to now
	// and returns it; ErrNotFound if there is none. An update that makes
	// an inactive endpoint active clears its FailingSince, DisabledAt and
	// DisabledReason, and one that changes the URL, which names another
	// receiver, clears its FailingSince and LastSuccessAt; otherwise it
	// leaves them as they are (only RecordEndpointHealth sets them). It is
	// a compare and set on UpdatedAt: it applies only if the stored
	// UpdatedAt is still ep.UpdatedAt, as read, and otherwise changes
	// nothing and returns ErrConflict, so that of concurrent
	// read-modify-write updates none is lost. To make UpdatedAt a version,
	// each update sets it later than before: to now, or a microsecond
	// after the previous UpdatedAt when now is not later.
	UpdateEndpoint(ctx context.Context, ep *Endpoint) (*Endpoint, error)
	// DeleteEndpoint deletes an endpoint, or returns ErrNotFound. Its
	// attempts stay in the history.
	DeleteEndpoint(ctx context.Context, id string) error
	// RecordEndpointHealth records the outcome of a delivery attempt to
	// the endpoint id, atomically, and disables the endpoint when its
	// deliveries keep failing. ok reports that the attempt acknowledged
	// its task; gone that the endpoint answered, in full, with 410 Gone.
	// On an active endpoint:
	//
	//   - ok clears FailingSince and sets LastSuccessAt to now (or leaves
	//     it if it is later), if FailingSince is set, or LastSuccessAt is
	//     nil or not after now minus resolution; otherwise it changes
	//     nothing;
	//   - a failure (not ok) sets FailingSince to now if it is nil;
	//   - a failure when FailingSince was already set and is not after
	//     now minus disableAfter, and LastSuccessAt is nil or not after
	//     now minus disableAfter minus twice resolution, or gone, disables
	//     the endpoint: Status becomes inactive, DisabledAt now,
	//     DisabledReason "every delivery failed since <FailingSince, RFC
	//     3339 UTC to the second>" or "answered 410 Gone".
	//
	// An unknown endpoint is left as it is, and so is an inactive one but
	// for LastSuccessAt, which ok sets as on an active one: engines may
	// deliver to an endpoint for a moment after it was made inactive.
	// A disableAfter of Forever disables no endpoint for failing (gone
	// still does); a negative disableAfter or resolution gives a
	// *ValidationError.
	//
	// resolution lets a caller skip recording most successes. A caller
	// that records each success with ok unless its previous call with ok
	// for the endpoint began, and returned without error, less than
	// resolution before (on a clock that keeps pace with the store's)
	// keeps LastSuccessAt less than twice resolution older than each
	// success it saw. An endpoint is then never disabled by a failure less
	// than disableAfter after a success, even one that did not end the
	// run of failures (as when the caller read the endpoint healthy before
	// the run began), and is disabled up to twice resolution later than
	// disableAfter into a run. A resolution of 0 records every success.
	//
	// It returns the endpoint as the call left it if the call changed it,
	// and nil otherwise, so that of concurrent calls that would disable
	// an endpoint exactly one returns it inactive. Disabling changes
	// UpdatedAt, as UpdateEndpoint does, so that an update read before it
	// conflicts (ErrConflict) and cannot re-enable the endpoint by
	// writing back the status it read; setting or clearing FailingSince
	// and setting LastSuccessAt leave UpdatedAt alone, so that they never
	// make an update conflict. A call that would change nothing writes
	// nothing, and on PostgreSQL locks no row: on a healthy endpoint, ok
	// within resolution of the last recorded success costs one statement
	// that matches no row.
	RecordEndpointHealth(ctx context.Context, id string, ok, gone bool, disableAfter, resolution time.Duration) (*Endpoint, error)

	// InsertPeriodic stores a new periodic task. The caller sets ID, AppID,
	// Spec, TimeZone, EventType, Data, Status, Missed and NextRunAt; the
	// store sets CreatedAt and UpdatedAt to now, and LastRunAt and
	// LastTaskID to nil. It returns the stored periodic task.
	InsertPeriodic(ctx context.Context, p *PeriodicTask) (*PeriodicTask, error)
	// GetPeriodic returns the periodic task with the given ID, or
	// ErrNotFound.
	GetPeriodic(ctx context.Context, id string) (*PeriodicTask, error)
	// ListPeriodics returns an app's periodic tasks, oldest first.
	ListPeriodics(ctx context.Context, appID string) ([]*PeriodicTask, error)
	// UpdatePeriodic replaces the Spec, TimeZone, EventType, Data, Status,
	// Missed and NextRunAt of the periodic task with p's ID, sets its
	// UpdatedAt to now and returns it; ErrNotFound if there is none.
	// LastRunAt and LastTaskID are left alone: only AdvancePeriodic sets
	// them. Like UpdateEndpoint, it is a compare and set on UpdatedAt
	// (ErrConflict when p.UpdatedAt is not the stored one), and sets
	// UpdatedAt later than before.
	UpdatePeriodic(ctx context.Context, p *PeriodicTask) (*PeriodicTask, error)
	// DeletePeriodic deletes a periodic task, or returns ErrNotFound.
	DeletePeriodic(ctx context.Context, id string) error
	// DuePeriodics returns the store's current time and up to limit active
	// periodic tasks whose NextRunAt is not after now plus within, earliest
	// NextRunAt first, then by ID.
	DuePeriodics(ctx context.Context, within time.Duration, limit int) (now time.Time, due []*PeriodicTask, err error)
	// AdvancePeriodic moves the NextRunAt of periodic task id from from to
	// to, if it still is from (compare and set), and reports whether it
	// did. If lastTaskID is not "", it also sets LastRunAt to lastRunAt
	// (the slot the task is due at: from, or for missed slots run once the
	// latest of them) and LastTaskID to lastTaskID. UpdatedAt does not
	// change. It reports false,
	// with a nil error, when there is no such task or its NextRunAt is not
	// from (another engine advanced it first, or it was changed or paused),
	// so that of engines advancing a task from the same slot at once,
	// exactly one succeeds.
	AdvancePeriodic(ctx context.Context, id string, from, to, lastRunAt time.Time, lastTaskID string) (bool, error)

	// RevokeSession records that the dashboard session id was logged out,
	// until expires, when the session would have ended anyway; from then
	// on SessionRevoked reports it to every engine sharing the store, in
	// this process or another, before a restart and after. Revoking a
	// revoked session succeeds. It also deletes the revocations whose
	// expiry passed.
	RevokeSession(ctx context.Context, id string, expires time.Time) error
	// SessionRevoked reports whether the dashboard session id was revoked
	// and its revocation has not expired.
	SessionRevoked(ctx context.Context, id string) (bool, error)

	// CountTasks returns how many tasks of the app appID are in each state,
	// at a cost that grows with the app's live tasks, not with its history:
	// the live states (scheduled, running, retrying) are counted exactly; a
	// terminal state (completed, failed, canceled) is counted up to limit,
	// so that its count is exact below limit, and is limit when the app has
	// limit or more tasks in that state: a terminal count equal to limit
	// means "limit or more". A SQL store reads at most limit index entries
	// per terminal state. A state that no task is in is absent from the
	// map. The counts are of one moment: they agree with a List of the app
	// made at that moment, terminal counts capped at limit. A limit below 1
	// gives a *ValidationError.
	CountTasks(ctx context.Context, appID string, limit int) (map[State]int, error)
	// TaskHistogram counts the tasks of the app appID that are in a
	// terminal state by when they reached it (CompletedAt), from since on,
	// in intervals of length bucket: it returns one Bucket for each
	// interval [since + k*bucket, since + (k+1)*bucket), k ≥ 0, that holds
	// at least one such task, in order of Start. Since is taken to the
	// microsecond, and so is bucket. A task counts where its CompletedAt
	// is: a replayed task counts again only once it ends again. A bucket
	// shorter than a microsecond gives a *ValidationError.
	TaskHistogram(ctx context.Context, appID string, since time.Time, bucket time.Duration) ([]Bucket, error)
	// CountAttempts returns how many attempts delivered to the endpoint
	// endpointID (Attempt.EndpointID) started at or after since, and how
	// many of those failed: have an Error. It counts attempts of deleted
	// endpoints too; the endpoint ID "" (no endpoint) has none.
	CountAttempts(ctx context.Context, endpointID string, since time.Time) (total, failed int, err error)
}

// Bucket counts the tasks that reached each terminal state in one interval
// of time; see [Store.TaskHistogram].
type Bucket struct {
	Start     time.Time // the interval's start, in UTC
	Completed int
	Failed    int
	Canceled  int
}

// add counts n tasks that reached state s.
func (b *Bucket) add(s State, n int) {
	switch s {
	case StateCompleted:
		b.Completed += n
	case StateFailed:
		b.Failed += n
	case StateCanceled:
		b.Canceled += n
	}
}

// countLimit validates the limit of CountTasks.
func countLimit(limit int) error {
	if limit < 1 {
		return invalid("limit", "must be at least 1, not %d", limit)
	}
	return nil
}

// histogramParams validates and normalizes the arguments of
// TaskHistogram: times and durations are kept to the microsecond.
func histogramParams(since time.Time, bucket time.Duration) (time.Time, time.Duration, error) {
	if bucket < time.Microsecond {
		return since, bucket, invalid("bucket", "must be at least a microsecond, not %v", bucket)
	}
	return since.UTC().Truncate(time.Microsecond), bucket.Truncate(time.Microsecond), nil
}

// Outcome is the result of one claimed attempt, given to [Store.Finish].
type Outcome struct {
	ID      string // the task
	Attempt int    // the attempt number it was claimed at (the fence)
	claim   int64  // the claim's token (see Lease); 0: none
	// State is StateCompleted, StateRetrying, StateFailed or StateCanceled.
	State State
	// Delay is, for StateRetrying, how long after now the next attempt is due.
	Delay time.Duration
	// Error is the attempt's error message; "" for a completed attempt.
	Error string
	// EndpointID, if not "", becomes the task's EndpointID.
	EndpointID string
	// Attempts are stored in the task's history if, and only if, the
	// outcome applies.
	Attempts []Attempt
	// WaitReason, if not "", says that the attempt did not happen for
	// want of an endpoint's capacity (State is then StateRetrying): it is
	// not counted. The task goes back to waiting, its Attempts one less,
	// scheduled if that leaves no attempt in its run (Attempts equal to
	// ReplayedAfter), else retrying, with this WaitReason until it is
	// next claimed, due after Delay; its LastError is left alone.
	WaitReason string
	// WaitEndpoint, with WaitReason, names the endpoint whose MaxInFlight
	// the task waits for: a later ReleaseEndpointCapacity of it makes the
	// task due at once, and so does Finish if the endpoint has a free
	// slot when the outcome is stored.
	WaitEndpoint string
}

// lease returns the lease of o's attempt.
func (o *Outcome) lease() Lease { return Lease{ID: o.ID, Attempt: o.Attempt, claim: o.claim} }

// Lease names one claimed attempt.
//
// A claim of an [SQLStore] also gives its attempt a random token, which the
// engine's leases and outcomes carry unexported and the store's fences
// compare, besides the attempt number: a claim that PostgreSQL forgot in a
// crash (claims commit without waiting for the disk; see the README) and
// the claim of the same attempt after it are two runs, and only the second
// one's writes apply. A Lease or an Outcome made by hand carries no token,
// and is fenced on its attempt number alone.
type Lease struct {
	ID      string
	Attempt int
	claim   int64 // the claim's token; 0: none
}

// Due is a task that will be due soon, as reported by [Store.Upcoming].
type Due struct {
	ID    string
	RunAt time.Time
}

// ListParams filters [Store.List] and [Engine.List].
type ListParams struct {
	// AppID selects one app's tasks; "" selects every app's.
	AppID string
	// States selects tasks in any of these states; nil selects all. An
	// app's page of one state costs a SQL store about a page, however many
	// tasks the app has in other states (for a live state, the store's
	// live tasks are read); a page of several states is read from the
	// app's tasks newest first, passing those of other states.
	States []State
	// EventType selects one event type; "" selects all.
	EventType string
	// Limit is the page size, 1 to MaxListLimit. Defaults to DefaultListLimit.
	Limit int
	// Cursor continues a listing from where a previous page ended; "" starts
	// at the newest task.
	Cursor string
	// CreatedSince selects tasks created at or after it, taken to the
	// microsecond; the zero time selects all.
	CreatedSince time.Time
	// CreatedBefore selects tasks created before it, taken to the
	// microsecond; the zero time selects all.
	CreatedBefore time.Time
	// MaxBytes bounds the tasks of a page by size, a task's size being the
	// bytes of its Data and its LastError: the page ends before the task
	// that would take the sum of its tasks' sizes past MaxBytes, and its
	// cursor continues from there. A page holds at least one task, however
	// large. 0 bounds nothing.
	MaxBytes int64
}

// normalize validates p and applies defaults.
func (p *ListParams) normalize() error {
	switch {
	case p.Limit == 0:
		p.Limit = DefaultListLimit
	case p.Limit < 0 || p.Limit > MaxListLimit:
		return invalid("limit", "must be between 1 and %d", MaxListLimit)
	}
	if p.MaxBytes < 0 {
		return invalid("max_bytes", "must not be negative")
	}
	for _, s := range p.States {
		if !s.Valid() {
			return invalid("status", "unknown state %q", s)
		}
	}
	if p.Cursor != "" {
		if _, _, err := decodeCursor(p.Cursor); err != nil {
			return err
		}
	}
	// Stores keep times to the microsecond, from year 1 to 9999: a bound
	// outside that range bounds nothing.
	p.CreatedSince = p.CreatedSince.UTC().Truncate(time.Microsecond)
	p.CreatedBefore = p.CreatedBefore.UTC().Truncate(time.Microsecond)
	if p.CreatedSince.Before(time.Time{}) {
		p.CreatedSince = time.Time{}
	}
	if p.CreatedBefore.After(endOfTime) {
		p.CreatedBefore = time.Time{}
	}
	return nil
}

// listSize is the size of t that ListParams.MaxBytes bounds.
func listSize(t *Task) int64 { return int64(len(t.Data) + len(t.LastError)) }

// listed reports whether t is within p's filters, its cursor aside.
func (p *ListParams) listed(t *Task) bool {
	return (p.AppID == "" || t.AppID == p.AppID) &&
		(p.EventType == "" || t.EventType == p.EventType) &&
		(p.States == nil || slices.Contains(p.States, t.State)) &&
		!t.CreatedAt.Before(p.CreatedSince) &&
		(p.CreatedBefore.IsZero() || t.CreatedAt.Before(p.CreatedBefore))
}

// A cursor is the position after the last task of a page: its CreatedAt (Unix
// microseconds) and ID, base64url encoded. Every store encodes it the same way.
func encodeCursor(t *Task) string {
	b := binary.BigEndian.AppendUint64(nil, uint64(t.CreatedAt.UnixMicro()))
	return base64.RawURLEncoding.EncodeToString(append(b, t.ID...))
}

func decodeCursor(s string) (createdAt time.Time, id string, err error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) < 9 || len(b) > 8+MaxIDLength || !web.ValidName(string(b[8:])) {
		return time.Time{}, "", invalid("cursor", "malformed")
	}
	return time.UnixMicro(int64(binary.BigEndian.Uint64(b))).UTC(), string(b[8:]), nil
}

// listBefore reports whether a comes before b in List order (newest first).
func listBefore(a, b *Task) bool {
	if !a.CreatedAt.Equal(b.CreatedAt) {
		return a.CreatedAt.After(b.CreatedAt)
	}
	return a.ID > b.ID
}
