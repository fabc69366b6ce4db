package tasks

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/jmoiron/sqlx"
	"github.com/taskwheel/tasks/internal/sqlstore"
)

// Dialect is the SQL dialect of an [SQLStore]'s database.
type Dialect int

// The dialects an SQLStore speaks.
const (
	// SQLite is SQLite 3.37 or later, through any database/sql driver;
	// package github.com/taskwheel/tasks/sqlite opens it with the library's
	// settings.
	SQLite Dialect = iota + 1
	// Postgres is PostgreSQL, through the driver
	// github.com/jackc/pgx/v5/stdlib; package
	// github.com/taskwheel/tasks/postgres opens it and adds LISTEN/NOTIFY.
	Postgres
)

// SQLStore is a [Store] in an SQL database: an SQLite file, the default, or
// PostgreSQL, which engines in several processes can share. Its tables are
// named taskwheel_* so that they can live beside the application's own;
// [SQLStore.Migrate] creates them. It runs over database/sql and imports no
// driver: the packages github.com/taskwheel/tasks/sqlite and
// github.com/taskwheel/tasks/postgres open a database with the library's
// settings and return a store that embeds an SQLStore.
//
// Its clock is the database's: PostgreSQL's now(), and for SQLite, an
// in-process database, this process's clock. Times are stored in UTC to the
// microsecond: as Unix microseconds in SQLite, as timestamptz in PostgreSQL.
// A task's Data is stored byte for byte (BLOB, bytea). PostgreSQL text holds
// neither NUL bytes nor invalid UTF-8, so there free text containing them (a
// LastError, an attempt's Response and Error, an endpoint's URL,
// Description, EnabledEvents and secrets) is stored with each replaced by
// U+FFFD. An endpoint's EnabledEvents are kept as a JSON array (jsonb in
// PostgreSQL), in order; attempts in a table of their own, in the order
// stored, without foreign keys, so that they outlive deleted endpoints.
//
// An SQLStore is safe for concurrent use, also by engines in several
// processes sharing its database. Its zero value is not usable; call
// [NewSQLStore].
type SQLStore struct {
	db       *sqlx.DB // for writes
	read     *sqlx.DB // for reads: db, or a read-only pool (see sqlstore.SetReadDB)
	dialect  Dialect
	now      func() time.Time // SQLite's clock; PostgreSQL's is the server's
	purge    purgeCursors     // where PurgeTasks resumes on PostgreSQL
	fair     fairness         // see claimFair
	limited  atomic.Bool      // the last claim found limits: claim with claimFlow
	flowSlow atomic.Bool      // the last claimFlow was held back: skip claimFlowFast
	wakes    *wakeSender      // sends InsertMany's wake-ups; nil: the trigger does
	planEach any              // see planned; set by package postgres
}

// init lets package sqlite give an SQLStore its pool of read-only
// connections, and package postgres the option for its statements that
// find rows by arrays, which the exported API does not offer.
func init() {
	sqlstore.SetReadDB = func(store any, read *sql.DB) {
		s := store.(*SQLStore)
		s.read = sqlx.NewDb(read, s.db.DriverName())
	}
	sqlstore.PlanEachCall = func(store any, option any) { store.(*SQLStore).planEach = option }
}

// NewSQLStore returns an SQLStore on db, a database of dialect d that the
// caller opened and keeps: Close does not close it. Open PostgreSQL with the
// driver github.com/jackc/pgx/v5/stdlib, or better, with package
// github.com/taskwheel/tasks/postgres, whose store also hears of other
// engines' tasks at once. Open SQLite in WAL mode with a busy timeout,
// _txlock=immediate (or its driver's way to begin transactions IMMEDIATE)
// and one open connection, or use package github.com/taskwheel/tasks/sqlite,
// which does so. NewSQLStore does no I/O; call [SQLStore.Migrate] before
// using the store.
func NewSQLStore(db *sql.DB, d Dialect) (*SQLStore, error) {
	var driver string // as sqlx knows it, to rebind placeholders
	switch d {
	case SQLite:
		driver = "sqlite3"
	case Postgres:
		driver = "pgx"
	default:
		return nil, fmt.Errorf("tasks: new SQL store: unknown dialect %d", d)
	}
	if db == nil {
		return nil, errors.New("tasks: new SQL store: nil db")
	}
	x := sqlx.NewDb(db, driver)
	return &SQLStore{db: x, read: x, dialect: d, now: time.Now}, nil
}

// Close does nothing and returns nil: the caller keeps the database it gave
// [NewSQLStore]. The stores of the driver packages close what they opened.
func (s *SQLStore) Close() error { return nil }

// Durable reports true: a task stored in an SQLStore is in its database.
func (s *SQLStore) Durable() bool { return true }

// Listen returns ErrNotSupported: listening takes a driver's own
// connection, which this package, importing no driver, does not have. The
// store of package github.com/taskwheel/tasks/postgres listens with
// LISTEN/NOTIFY; engines on one SQLite file see each other's tasks at their
// next poll.
func (s *SQLStore) Listen(context.Context, func(), func(Due)) error { return ErrNotSupported }

// DB returns the database the store writes to, for transactions that insert
// tasks with [Engine.EnqueueTx].
func (s *SQLStore) DB() *sql.DB { return s.db.DB }

// Queries.
//
// A query used by both dialects is written with ? placeholders, rebound for
// PostgreSQL. Where the dialects differ, each has its own: PostgreSQL's reads
// the server's clock with now(); SQLite's takes the store's clock as its last
// parameter (see args) and numbers its parameters as PostgreSQL does.

// taskColumns are the columns of a taskRow.
const taskColumns = `id, app_id, event_type, state, data, scheduled_run_time, run_at,
	attempts, replayed_after, max_attempts, timeout, lease_expires_at, cancel_requested, last_error,
	endpoint_id, idempotency_key, idempotency_digest, created_at, updated_at, completed_at,
	trace_parent, trace_state, flow_key, wait_reason, parked_at, claim_token`

// taskRow is a row of taskwheel_tasks.
type taskRow struct {
	ID                string
	AppID             string
	EventType         string
	State             State
	Data              []byte
	ScheduledRunTime  sqlTime
	RunAt             sqlTime
	Attempts          int
	ReplayedAfter     int
	MaxAttempts       int
	Timeout           int64 // microseconds
	LeaseExpiresAt    sqlTime
	CancelRequested   bool
	LastError         string
	EndpointID        *string
	IdempotencyKey    sql.NullString
	IdempotencyDigest sql.NullString
	CreatedAt         sqlTime
	UpdatedAt         sqlTime
	CompletedAt       sqlTime
	TraceParent       sql.NullString
	TraceState        sql.NullString
	FlowKey           sql.NullString // NULL: the event type
	WaitReason        sql.NullString
	ParkedAt          sqlTime // when a waiting task fell due
	ClaimToken        sql.NullInt64
}

// dest returns the fields of r in the order of taskColumns, to scan into.
// (Scanning by hand, not by reflection as sqlx does, is a fifth of the cost
// of a claim.)
func (r *taskRow) dest() []any {
	return []any{&r.ID, &r.AppID, &r.EventType, &r.State, &r.Data, &r.ScheduledRunTime, &r.RunAt,
		&r.Attempts, &r.ReplayedAfter, &r.MaxAttempts, &r.Timeout, &r.LeaseExpiresAt, &r.CancelRequested, &r.LastError,
		&r.EndpointID, &r.IdempotencyKey, &r.IdempotencyDigest, &r.CreatedAt, &r.UpdatedAt, &r.CompletedAt,
		&r.TraceParent, &r.TraceState, &r.FlowKey, &r.WaitReason, &r.ParkedAt, &r.ClaimToken}
}

func (r *taskRow) task() *Task {
	t := &Task{
		ID:                r.ID,
		AppID:             r.AppID,
		EventType:         r.EventType,
		State:             r.State,
		ScheduledRunTime:  r.ScheduledRunTime.ptr(),
		EndpointID:        r.EndpointID,
		CreatedAt:         r.CreatedAt.t,
		UpdatedAt:         r.UpdatedAt.t,
		Data:              r.Data,
		Attempts:          r.Attempts,
		ReplayedAfter:     r.ReplayedAfter,
		MaxAttempts:       r.MaxAttempts,
		LastError:         r.LastError,
		CompletedAt:       r.CompletedAt.ptr(),
		IdempotencyKey:    r.IdempotencyKey.String,
		IdempotencyDigest: r.IdempotencyDigest.String,
		Timeout:           time.Duration(r.Timeout) * time.Microsecond,
		CancelRequested:   r.CancelRequested,
		LeaseExpiresAt:    r.LeaseExpiresAt.ptr(),
		TraceParent:       r.TraceParent.String,
		TraceState:        r.TraceState.String,
		dueAt:             r.RunAt.t,
		claim:             r.ClaimToken.Int64,
	}
	t.FlowKey = flowKey(r.FlowKey.String, r.EventType)
	if r.State.pending() {
		t.NextAttemptAt = r.RunAt.ptr()
		if r.ParkedAt.valid {
			t.NextAttemptAt = r.ParkedAt.ptr()
		}
		t.WaitReason = r.WaitReason.String // its key's, or an endpoint's
	}
	return t
}

// sqlTime scans a time as either dialect stores it: SQLite as Unix
// microseconds, PostgreSQL as timestamptz.
type sqlTime struct {
	t     time.Time
	valid bool // not NULL
}

func (st *sqlTime) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*st = sqlTime{}
	case int64:
		*st = sqlTime{time.UnixMicro(v).UTC(), true}
	case time.Time:
		*st = sqlTime{v.UTC().Truncate(time.Microsecond), true}
	default:
		return fmt.Errorf("scan %T as a time", src)
	}
	return nil
}

func (st sqlTime) ptr() *time.Time {
	if !st.valid {
		return nil
	}
	return &st.t
}

// pick returns the query for the store's dialect.
func (s *SQLStore) pick(sqlite, postgres string) string {
	if s.dialect == Postgres {
		return postgres
	}
	return sqlite
}

// args returns args followed, for SQLite, by the store's clock.
func (s *SQLStore) args(args ...any) []any {
	if s.dialect == SQLite {
		return append(args, s.now().UnixMicro())
	}
	return args
}

// planned returns args, the arguments of a PostgreSQL statement that finds
// rows by the arrays it is given, with the option that package postgres
// gave (see sqlstore.PlanEachCall) before them, to have PostgreSQL plan the
// statement for them each time. Its best plan depends on how many elements the arrays
// hold and on how large the tables are now, and a generic plan, which
// PostgreSQL otherwise makes once per connection and keeps, knows neither:
// made while the table was new and empty, it scanned the whole table long
// after the table had grown. Finish then took up to 320 ms among 200,000
// tasks, and W4's p99 wait rose from 15 ms to 500 ms (tasksbench). Planning
// each time costs about 0.3 ms a statement, for a batch of tasks.
//
// It is not enough on a table that was never analyzed: planned for
// hundreds of IDs, a statement may still read and hash the whole table
// (the planner estimates its rows from its size). Finish, the statement of
// every task, no longer relies on it: it runs in a function that disables
// sequential scans (taskwheel_finish, migration 0028). The parking of
// claims under limits (flowParkPostgres) still does.
func (s *SQLStore) planned(args ...any) []any {
	if s.planEach == nil {
		return args
	}
	return append([]any{s.planEach}, args...)
}

// timeArg returns t as the store's dialect stores it.
func (s *SQLStore) timeArg(t time.Time) any {
	if s.dialect == SQLite {
		return t.UnixMicro()
	}
	return t.UTC().Truncate(time.Microsecond)
}

// storable reports whether the database can take s as text: PostgreSQL's
// text takes neither NUL bytes nor invalid UTF-8.
func (s *SQLStore) storable(str string) bool {
	return s.dialect != Postgres || utf8.ValidString(str) && !strings.Contains(str, "\x00")
}

// text returns str as the database can store it (see storable).
func (s *SQLStore) text(str string) string {
	if s.storable(str) {
		return str
	}
	return strings.ToValidUTF8(strings.ReplaceAll(str, "\x00", "\uFFFD"), "\uFFFD")
}

// queryer is a *sql.DB, *sql.Tx or *sql.Conn.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// execer is a *sql.DB, *sql.Tx or *sql.Conn.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// queryRows runs query, which returns taskColumns.
func queryRows(ctx context.Context, q queryer, query string, args ...any) ([]taskRow, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var rs []taskRow
	for rows.Next() {
		rs = append(rs, taskRow{})
		if err := rows.Scan(rs[len(rs)-1].dest()...); err != nil {
			return nil, err
		}
	}
	return rs, rows.Err()
}

// queryTasks runs query, which returns taskColumns.
func queryTasks(ctx context.Context, q queryer, query string, args ...any) ([]*Task, error) {
	rs, err := queryRows(ctx, q, query, args...)
	if err != nil {
		return nil, err
	}
	ts := make([]*Task, len(rs))
	for i := range rs {
		ts[i] = rs[i].task()
	}
	return ts, nil
}

// queryTask runs query, which returns taskColumns of at most one task, and
// returns ErrNotFound when it returns none.
func queryTask(ctx context.Context, q queryer, query string, args ...any) (*Task, error) {
	ts, err := queryTasks(ctx, q, query, args...)
	switch {
	case err != nil:
		return nil, err
	case len(ts) == 0:
		return nil, ErrNotFound
	}
	return ts[0], nil
}

const getTask = `SELECT ` + taskColumns + ` FROM taskwheel_tasks WHERE id = ?`

// Get implements [Store].
func (s *SQLStore) Get(ctx context.Context, id string) (*Task, error) {
	if !s.storable(id) {
		return nil, ErrNotFound
	}
	var t *Task
	err := s.retryLost(ctx, s.read, func(q dbOrConn) (err error) {
		t, err = queryTask(ctx, q, s.read.Rebind(getTask), id)
		return err
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("tasks: get task %s: %w", id, err)
	}
	return t, err
}

// GetByIdempotencyKey implements [Store].
func (s *SQLStore) GetByIdempotencyKey(ctx context.Context, appID, key string) (*Task, error) {
	if key == "" || !s.storable(appID) || !s.storable(key) {
		return nil, ErrNotFound
	}
	t, err := queryTask(ctx, s.read, s.read.Rebind(getByKey), appID, key)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("tasks: get task by idempotency key %q: %w", key, err)
	}
	return t, err
}

// change applies query, an UPDATE of task id that matches only while the
// task's state allows the change, and returns the changed task. When query
// matches nothing, change reads the task and returns it with the error that
// refused gives for its state. If that is errRaced, the task moved in
// between to a state that allows the change, and change tries again.
func (s *SQLStore) change(ctx context.Context, id, query string, args []any, refused func(*Task) error) (*Task, error) {
	if !s.storable(id) {
		return nil, ErrNotFound
	}
	for {
		t, err := queryTask(ctx, s.db, query, s.args(args...)...)
		if !errors.Is(err, ErrNotFound) {
			return t, err
		}
		t, err = queryTask(ctx, s.db, s.db.Rebind(getTask), id)
		if err != nil {
			return nil, err
		}
		if err := refused(t); !errors.Is(err, errRaced) {
			return t, err
		}
	}
}

// errRaced means the task changed state during [SQLStore.change].
var errRaced = errors.New("task changed")

// Cancel queries take the task's ID. Their changes, cancelSet*, are those
// of CancelMany too: SQLite's takes the store's clock as the second
// parameter.
const (
	cancelSetSQLite = `
	state = CASE WHEN state = 'running' THEN 'running' ELSE 'canceled' END,
	cancel_requested = (state = 'running'),
	completed_at = CASE WHEN state = 'running' THEN NULL ELSE ?2 END,
	wait_key = NULL, parked_at = NULL, wait_reason = NULL,
	updated_at = ?2`
	cancelSetPostgres = `
	state = CASE WHEN state = 'running' THEN 'running' ELSE 'canceled' END,
	cancel_requested = (state = 'running'),
	completed_at = CASE WHEN state = 'running' THEN NULL ELSE now() END,
	wait_key = NULL, parked_at = NULL, wait_reason = NULL,
	updated_at = now()`
	cancelWhere = ` AND (state IN ('scheduled', 'retrying') OR state = 'running' AND NOT cancel_requested)
RETURNING ` + taskColumns
	cancelSQLite   = `UPDATE taskwheel_tasks SET` + cancelSetSQLite + "\nWHERE id = ?1" + cancelWhere
	cancelPostgres = `UPDATE taskwheel_tasks SET` + cancelSetPostgres + "\nWHERE id = $1" + cancelWhere
)

// Cancel implements [Store].
func (s *SQLStore) Cancel(ctx context.Context, id string) (*Task, error) {
	t, err := s.change(ctx, id, s.pick(cancelSQLite, cancelPostgres), []any{id}, func(t *Task) error {
		switch {
		case t.State == StateCanceled, t.State == StateRunning && t.CancelRequested:
			return nil // nothing to do
		case t.State.Terminal():
			return ErrInvalidState
		}
		return errRaced
	})
	if err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrInvalidState) {
		return nil, fmt.Errorf("tasks: cancel task %s: %w", id, err)
	}
	return t, err
}

// Reschedule queries take the task's ID and the run time.
const (
	rescheduleSQLite = `UPDATE taskwheel_tasks
SET state = 'scheduled', scheduled_run_time = ?2, run_at = max(?2, ?3), updated_at = ?3,
	wait_key = NULL, parked_at = NULL, wait_reason = NULL
WHERE id = ?1 AND state IN ('scheduled', 'retrying')
RETURNING ` + taskColumns
	reschedulePostgres = `UPDATE taskwheel_tasks
SET state = 'scheduled', scheduled_run_time = $2, run_at = GREATEST($2, now()), updated_at = now(),
	wait_key = NULL, parked_at = NULL, wait_reason = NULL
WHERE id = $1 AND state IN ('scheduled', 'retrying')
RETURNING ` + taskColumns
)

// Reschedule implements [Store].
func (s *SQLStore) Reschedule(ctx context.Context, id string, runAt time.Time) (*Task, error) {
	query := s.pick(rescheduleSQLite, reschedulePostgres)
	t, err := s.change(ctx, id, query, []any{id, s.timeArg(runAt)}, func(t *Task) error {
		if t.State.pending() {
			return errRaced
		}
		return ErrInvalidState
	})
	if err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrInvalidState) {
		return nil, fmt.Errorf("tasks: reschedule task %s: %w", id, err)
	}
	return t, err
}

// Replay queries take the task's ID and the number of attempts to add.
// Their changes, replaySet*, are those of ReplayMany too: the number of
// attempts to add is the second parameter, and SQLite's takes the store's
// clock as the third.
const (
	replaySetSQLite = `
	state = 'scheduled', max_attempts = attempts + ?2, replayed_after = attempts, cancel_requested = FALSE,
	completed_at = NULL, run_at = ?3, updated_at = ?3`
	replaySetPostgres = `
	state = 'scheduled', max_attempts = attempts + $2, replayed_after = attempts, cancel_requested = FALSE,
	completed_at = NULL, run_at = now(), updated_at = now()`
	replayWhere = ` AND state IN ('completed', 'failed', 'canceled')
RETURNING ` + taskColumns
	replaySQLite   = `UPDATE taskwheel_tasks SET` + replaySetSQLite + "\nWHERE id = ?1" + replayWhere
	replayPostgres = `UPDATE taskwheel_tasks SET` + replaySetPostgres + "\nWHERE id = $1" + replayWhere
)

// Replay implements [Store].
func (s *SQLStore) Replay(ctx context.Context, id string, extra int) (*Task, error) {
	t, err := s.change(ctx, id, s.pick(replaySQLite, replayPostgres), []any{id, extra}, func(t *Task) error {
		if t.State.Terminal() {
			return errRaced
		}
		return ErrInvalidState
	})
	if err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrInvalidState) {
		return nil, fmt.Errorf("tasks: replay task %s: %w", id, err)
	}
	return t, err
}
