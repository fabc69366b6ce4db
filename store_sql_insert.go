package tasks

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	insertSQLite = `INSERT INTO taskwheel_tasks (id, app_id, event_type, state, data,
	scheduled_run_time, run_at, max_attempts, timeout, idempotency_key, idempotency_digest, trace_parent, trace_state,
	created_at, updated_at, flow_key)
VALUES (?1, ?2, ?3, 'scheduled', ?4, ?5, max(coalesce(?5, ?13), ?13), ?6, ?7, NULLIF(?8, ''), NULLIF(?9, ''),
	NULLIF(?10, ''), NULLIF(?11, ''), ?13, ?13, NULLIF(NULLIF(?12, ''), ?3))
ON CONFLICT DO NOTHING
RETURNING ` + taskColumns
	insertPostgres = `INSERT INTO taskwheel_tasks (id, app_id, event_type, state, data,
	scheduled_run_time, run_at, max_attempts, timeout, idempotency_key, idempotency_digest, trace_parent, trace_state,
	created_at, updated_at, flow_key)
VALUES ($1, $2, $3, 'scheduled', $4, $5, GREATEST($5, now()), $6, $7, NULLIF($8, ''), NULLIF($9, ''),
	NULLIF($10, ''), NULLIF($11, ''), now(), now(), NULLIF(NULLIF($12, ''), $3))
ON CONFLICT DO NOTHING
RETURNING ` + taskColumns
	getByKey = `SELECT ` + taskColumns + ` FROM taskwheel_tasks WHERE app_id = ? AND idempotency_key = ?`
)

// Insert implements [Store].
//
// Should the server end the connection after it committed the insert but
// before its answer came, retryLost runs it again; that second run finds the
// task stored as sent and returns it, as the first would have.
func (s *SQLStore) Insert(ctx context.Context, t *Task) (got *Task, err error) {
	retry := false
	err = s.retryLost(ctx, s.db, func(q dbOrConn) error {
		if retry {
			if got, err = s.storedAsSent(ctx, q, t); !errors.Is(err, ErrNotFound) {
				return err
			}
		}
		retry = true
		got, err = s.insert(ctx, q, t)
		return err
	})
	return got, err
}

// storedAsSent returns the task stored under t's ID if an insert of t
// stored it: the same app, event type, data, scheduled run time, max
// attempts, timeout, idempotency key and digest. Otherwise it returns
// ErrNotFound.
//
// Only a retry of an insert whose answer was lost (see retryLost) asks it:
// a task's ID is a new random UUID, so that a task stored under it as sent
// is the one that first run stored, and not another task's.
func (s *SQLStore) storedAsSent(ctx context.Context, q queryer, t *Task) (*Task, error) {
	got, err := queryTask(ctx, q, s.db.Rebind(getTask), t.ID)
	if err != nil {
		return nil, err
	}
	sameTime := func(a, b *time.Time) bool {
		return a == nil && b == nil || a != nil && b != nil && a.Equal(b.Truncate(time.Microsecond))
	}
	if got.AppID != t.AppID || got.EventType != t.EventType || !bytes.Equal(got.Data, t.Data) ||
		!sameTime(got.ScheduledRunTime, t.ScheduledRunTime) || got.MaxAttempts != t.MaxAttempts ||
		got.Timeout != t.Timeout.Truncate(time.Microsecond) || got.IdempotencyKey != t.IdempotencyKey ||
		got.IdempotencyDigest != t.IdempotencyDigest || got.TraceParent != t.TraceParent || got.TraceState != t.TraceState ||
		got.FlowKey != flowKey(t.FlowKey, t.EventType) {
		return nil, ErrNotFound
	}
	return got, nil
}

// InsertTx implements [Store.InsertTx]: it inserts t inside tx, a transaction on the
// store's database, so that t exists if and only if tx commits. A duplicate
// idempotency key gives the existing task and ErrDuplicate, as Insert does;
// tx remains usable.
func (s *SQLStore) InsertTx(ctx context.Context, tx *sql.Tx, t *Task) (*Task, error) {
	return s.insert(ctx, tx, t)
}

// maxKeyTries bounds the runs of an insert whose idempotency key was freed
// (its task deleted) between the insert, which the key turned away, and
// the read of the task that held it.
const maxKeyTries = 5

func (s *SQLStore) insert(ctx context.Context, q queryer, t *Task) (*Task, error) {
	var runAt any
	if t.ScheduledRunTime != nil {
		runAt = s.timeArg(*t.ScheduledRunTime)
	}
	for try := 1; ; try++ {
		got, err := queryTask(ctx, q, s.pick(insertSQLite, insertPostgres), s.args(t.ID, t.AppID, t.EventType,
			[]byte(t.Data), runAt, t.MaxAttempts, t.Timeout.Microseconds(), t.IdempotencyKey, t.IdempotencyDigest,
			t.TraceParent, t.TraceState, t.FlowKey)...)
		if !errors.Is(err, ErrNotFound) {
			if err != nil {
				return nil, fmt.Errorf("tasks: insert task %s: %w", t.ID, err)
			}
			return got, nil
		}
		// A unique constraint turned the task away: its idempotency key's, or
		// its ID's. Doing nothing on either keeps a caller's transaction usable.
		err = s.keyHolder(ctx, q, t, &got)
		if errors.Is(err, errRaced) && try < maxKeyTries {
			continue // the key is free again: insert once more
		}
		if err != nil && !errors.Is(err, ErrDuplicate) && !isValidation(err) {
			return nil, fmt.Errorf("tasks: insert task %s: %w", t.ID, err)
		}
		return got, err
	}
}

// keyHolder finds out why a unique constraint turned t away, and sets
// *got to the task holding t's idempotency key: ErrDuplicate if one does;
// a *ValidationError if t's ID is taken; errRaced if neither is, because
// a Delete or PurgeTasks removed the task that held the key since the
// insert looked, so that the key is free again.
func (s *SQLStore) keyHolder(ctx context.Context, q queryer, t *Task, got **Task) error {
	if t.IdempotencyKey != "" {
		held, err := queryTask(ctx, q, s.db.Rebind(getByKey), t.AppID, t.IdempotencyKey)
		if err == nil {
			*got = held
			return ErrDuplicate
		}
		if !errors.Is(err, ErrNotFound) {
			return err
		}
		if _, err := queryTask(ctx, q, s.db.Rebind(getTask), t.ID); errors.Is(err, ErrNotFound) {
			return errRaced
		} else if err != nil {
			return err
		}
	}
	return invalid("id", "task %s exists", t.ID)
}

// isValidation reports whether err is a *ValidationError.
func isValidation(err error) bool {
	var ve *ValidationError
	return errors.As(err, &ve)
}

// pgUniqueViolation is PostgreSQL's SQLSTATE for a unique constraint
// violated.
const pgUniqueViolation = "23505"

// insertManySQLite inserts rows, %s, that number their parameters from ?2
// on (?1 is the store's clock), then %s: insertManySQLiteReturning where a
// row may be turned away for its key or ID.
const (
	insertManySQLite = `INSERT INTO taskwheel_tasks (id, app_id, event_type, state, data,
	scheduled_run_time, run_at, max_attempts, timeout, idempotency_key, idempotency_digest, trace_parent, trace_state,
	created_at, updated_at, flow_key)
VALUES %s%s`
	insertManySQLiteReturning = `
ON CONFLICT DO NOTHING
RETURNING id`
	// insertManySQLiteRows bounds the rows of one statement, to stay
	// under SQLite's limit of 32,766 parameters (12 a row at most).
	insertManySQLiteRows = 1000
)

// insertManySQLiteShape is the shape of an insertManySQLite statement: its
// rows, whether it returns the IDs it stored, and which of the optional
// columns its rows bind. A column that no task of the batch sets is written
// as its constant instead: a batch of plain tasks (run now, no key, trace,
// flow key or timeout) binds 5 parameters a task, not 12, which go-sqlite3
// converts and copies one by one and SQLite evaluates row by row.
type insertManySQLiteShape struct {
	rows      int
	returning bool
	optionalColumns
}

// optionalColumns says which of the optional columns some task of a batch
// sets; a batch insert writes the others as their constants.
type optionalColumns struct {
	runAt, timeout, keys, trace, flow bool
}

// optionalColumnsOf returns which optional columns some task of ts sets.
func optionalColumnsOf(ts []*Task) optionalColumns {
	var c optionalColumns
	for _, t := range ts {
		c.runAt = c.runAt || t.ScheduledRunTime != nil
		c.timeout = c.timeout || t.Timeout != 0
		c.keys = c.keys || t.IdempotencyKey != "" || t.IdempotencyDigest != ""
		c.trace = c.trace || t.TraceParent != "" || t.TraceState != ""
		c.flow = c.flow || t.FlowKey != "" && t.FlowKey != t.EventType
	}
	return c
}

// sqliteShape returns the shape of the statement that inserts ts.
func sqliteShape(ts []*Task, returning bool) insertManySQLiteShape {
	return insertManySQLiteShape{rows: len(ts), returning: returning, optionalColumns: optionalColumnsOf(ts)}
}

// params returns the parameters of a row of shape sh.
func (sh insertManySQLiteShape) params() int {
	n := 5 // id, app_id, event_type, data, max_attempts
	for _, on := range []bool{sh.runAt, sh.timeout, sh.keys, sh.keys, sh.trace, sh.trace, sh.flow} {
		if on {
			n++
		}
	}
	return n
}

// appendArgs appends t's parameters, for a row of shape sh, to args.
func (sh insertManySQLiteShape) appendArgs(args []any, t *Task, s *SQLStore) []any {
	args = append(args, t.ID, t.AppID, t.EventType, []byte(t.Data))
	if sh.runAt {
		var runAt any
		if t.ScheduledRunTime != nil {
			runAt = s.timeArg(*t.ScheduledRunTime)
		}
		args = append(args, runAt)
	}
	args = append(args, int64(t.MaxAttempts))
	if sh.timeout {
		args = append(args, t.Timeout.Microseconds())
	}
	if sh.keys {
		args = append(args, t.IdempotencyKey, t.IdempotencyDigest)
	}
	if sh.trace {
		args = append(args, t.TraceParent, t.TraceState)
	}
	if sh.flow {
		args = append(args, t.FlowKey)
	}
	return args
}

// row writes a row of shape sh whose parameters start at ?first.
func (sh insertManySQLiteShape) row(b *strings.Builder, first int) {
	n := first
	p := func() string {
		n++
		return "?" + strconv.Itoa(n-1)
	}
	id, app, event, data := p(), p(), p(), p()
	scheduled, runAt := "NULL", "?1"
	if sh.runAt {
		scheduled = p()
		runAt = "max(coalesce(" + scheduled + ", ?1), ?1)"
	}
	maxAttempts, timeout := p(), "0"
	if sh.timeout {
		timeout = p()
	}
	key, digest, parent, state, flow := "NULL", "NULL", "NULL", "NULL", "NULL"
	if sh.keys {
		key, digest = "NULLIF("+p()+", '')", "NULLIF("+p()+", '')"
	}
	if sh.trace {
		parent, state = "NULLIF("+p()+", '')", "NULLIF("+p()+", '')"
	}
	if sh.flow {
		flow = "NULLIF(NULLIF(" + p() + ", ''), " + event + ")"
	}
	fmt.Fprintf(b, "(%s, %s, %s, 'scheduled', %s, %s, %s, %s, %s, %s, %s, %s, %s, ?1, ?1, %s)",
		id, app, event, data, scheduled, runAt, maxAttempts, timeout, key, digest, parent, state, flow)
}

// insertManySQLiteQueries holds the insertManySQLite statements of
// insertManySQLiteRows rows, by shape.
var insertManySQLiteQueries sync.Map // insertManySQLiteShape → string

// query returns the insertManySQLite statement of shape sh.
func (sh insertManySQLiteShape) query() string {
	if q, ok := insertManySQLiteQueries.Load(sh); ok {
		return q.(string)
	}
	var rows strings.Builder
	for i := range sh.rows {
		if i > 0 {
			rows.WriteString(",\n")
		}
		sh.row(&rows, 2+sh.params()*i)
	}
	end := ""
	if sh.returning {
		end = insertManySQLiteReturning
	}
	q := fmt.Sprintf(insertManySQLite, rows.String(), end)
	if sh.rows == insertManySQLiteRows {
		// Only full statements are kept: the others come in every size,
		// and a thousand of them would hold a hundred megabytes.
		insertManySQLiteQueries.Store(sh, q)
	}
	return q
}

// InsertMany implements [Store]. It inserts the tasks in one transaction:
// on PostgreSQL with one statement, on SQLite with one per thousand tasks.
// As with Insert, a retry after the server ended the connection returns the
// tasks that the first run committed, when it finds them all stored as sent.
func (s *SQLStore) InsertMany(ctx context.Context, ts []*Task) (got []*Task, err error) {
	// Decided once, so that the wake-up is sent by one of the trigger and
	// s.wakes, whichever Close left it to.
	deferred := s.wakes.deferring()
	retry := false
	err = s.retryLost(ctx, s.db, func(q dbOrConn) error {
		if retry {
			if got, err = s.allStoredAsSent(ctx, q, ts); !errors.Is(err, ErrNotFound) {
				return err
			}
		}
		retry = true
		got, err = s.insertMany(ctx, q, ts, deferred)
		return err
	})
	if err == nil && deferred {
		if w, ok := wakeFor(got); ok {
			s.wakes.add(w)
		}
	}
	return got, err
}

// allStoredAsSent is storedAsSent of each of ts; ErrNotFound if one is not.
func (s *SQLStore) allStoredAsSent(ctx context.Context, q queryer, ts []*Task) ([]*Task, error) {
	got := make([]*Task, len(ts))
	for i, t := range ts {
		var err error
		if got[i], err = s.storedAsSent(ctx, q, t); err != nil {
			return nil, err
		}
	}
	return got, nil
}

// insertMany inserts ts with q; on PostgreSQL, deferred tells the trigger
// that the caller sends the tasks' wake-up (see wakeDeferredCTE).
func (s *SQLStore) insertMany(ctx context.Context, q dbOrConn, ts []*Task, deferred bool) ([]*Task, error) {
	if s.dialect == Postgres && !slices.ContainsFunc(ts, hasKey) {
		// Only a taken ID can turn a row away, and then the statement
		// stores nothing: one statement is atomic, with no transaction
		// to begin and commit around it. The transaction below finds
		// which ID was taken.
		stored, err := s.insertManyPostgres(ctx, q, ts, false, deferred)
		if err == nil {
			return s.holders(ctx, q, ts, stored)
		}
		if sqlState(err) != pgUniqueViolation {
			return nil, fmt.Errorf("tasks: insert tasks: %w", err)
		}
	}
	for try := 1; ; try++ {
		got, err := s.insertManyTx(ctx, q, ts, deferred)
		if errors.Is(err, errRaced) && try < maxKeyTries {
			continue // a key was freed meanwhile: insert its task after all
		}
		if err != nil {
			return nil, fmt.Errorf("tasks: insert tasks: %w", err)
		}
		return got, nil
	}
}

// insertManyTx inserts ts in one transaction, skipping those whose key is
// taken, and returns the task stored for each (see holders).
func (s *SQLStore) insertManyTx(ctx context.Context, q dbOrConn, ts []*Task, deferred bool) ([]*Task, error) {
	tx, err := q.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	var stored, got []*Task
	if s.dialect == Postgres {
		stored, err = s.insertManyPostgres(ctx, tx, ts, true, deferred)
	} else {
		stored, err = s.insertManySQLite(ctx, tx, ts)
	}
	if err == nil {
		got, err = s.holders(ctx, tx, ts, stored)
	}
	if err == nil {
		err = tx.Commit()
	}
	return got, err
}

// insertManySQLite inserts ts in tx and returns the tasks it stored, in
// the order of ts. It reads back at most their IDs, and none when no task
// has an idempotency key: the rest is what it wrote (reading whole rows
// back was a fifth of the cost).
func (s *SQLStore) insertManySQLite(ctx context.Context, tx *sql.Tx, ts []*Task) ([]*Task, error) {
	now := s.now().UnixMicro()
	at := time.UnixMicro(now).UTC()
	stored := make([]*Task, 0, len(ts))
	for chunk := range slices.Chunk(ts, insertManySQLiteRows) {
		sh := sqliteShape(chunk, false)
		args := make([]any, 1, 1+sh.params()*len(chunk))
		args[0] = now
		for _, t := range chunk {
			args = sh.appendArgs(args, t, s)
		}
		if !slices.ContainsFunc(chunk, hasKey) {
			// Only a taken ID can turn a row away: all are stored, or
			// SQLite undoes the statement and the returning one below
			// finds which ID it was.
			err := execFused(ctx, tx, sh.query(), args...)
			if err == nil {
				for _, t := range chunk {
					stored = append(stored, newStoredTask(t, at))
				}
				continue
			}
			if !sqliteConstraint(err) {
				return nil, err
			}
		}
		sh.returning = true
		rs, err := tx.QueryContext(ctx, sh.query(), args...)
		if err != nil {
			return nil, err
		}
		inserted := make(map[string]bool, len(chunk))
		for rs.Next() {
			var id string
			if err := rs.Scan(&id); err != nil {
				rs.Close()
				return nil, err
			}
			inserted[id] = true
		}
		if err := errors.Join(rs.Err(), rs.Close()); err != nil {
			return nil, err
		}
		for _, t := range chunk {
			if inserted[t.ID] {
				stored = append(stored, newStoredTask(t, at))
			}
		}
	}
	return stored, nil
}

// execFused runs query, a SQLite statement that returns no rows, as a
// query: go-sqlite3 binds a query's parameters in one call into C, from a
// buffer it copies them to, and an Exec's with one call each, SQLite
// copying each text and blob again. A batch of 1,000 tasks has 12,001
// parameters.
func execFused(ctx context.Context, tx *sql.Tx, query string, args ...any) error {
	rs, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	for rs.Next() {
	}
	return errors.Join(rs.Err(), rs.Close())
}

// hasKey reports whether t has an idempotency key.
func hasKey(t *Task) bool { return t.IdempotencyKey != "" }

// newStoredTask returns t as a SQL store stores it when inserted at now:
// what reading its row back would return.
func newStoredTask(t *Task, now time.Time) *Task {
	st := &Task{
		ID:                t.ID,
		AppID:             t.AppID,
		EventType:         t.EventType,
		FlowKey:           flowKey(t.FlowKey, t.EventType),
		State:             StateScheduled,
		Data:              slices.Clone(t.Data),
		MaxAttempts:       t.MaxAttempts,
		Timeout:           t.Timeout.Truncate(time.Microsecond),
		IdempotencyKey:    t.IdempotencyKey,
		IdempotencyDigest: t.IdempotencyDigest,
		TraceParent:       t.TraceParent,
		TraceState:        t.TraceState,
		CreatedAt:         now,
		UpdatedAt:         now,
		NextAttemptAt:     &now,
	}
	if t.ScheduledRunTime != nil {
		at := time.UnixMicro(t.ScheduledRunTime.UnixMicro()).UTC()
		st.ScheduledRunTime = &at
		if at.After(now) {
			st.NextAttemptAt = &at
		}
	}
	return st
}

// holders returns, for each task of ts, the task stored for it: itself if
// it is among stored, else the one that holds its idempotency key. A task
// with neither was turned away by its ID: an error; or its key's holder
// was deleted since the insert looked: errRaced (see keyHolder).
func (s *SQLStore) holders(ctx context.Context, q queryer, ts, stored []*Task) ([]*Task, error) {
	if len(stored) == len(ts) {
		return stored, nil // every task stored: stored holds them in the order of ts
	}
	byID := make(map[string]*Task, len(stored))
	for _, t := range stored {
		byID[t.ID] = t
	}
	got := make([]*Task, len(ts))
	for i, t := range ts {
		if got[i] = byID[t.ID]; got[i] != nil {
			continue
		}
		if err := s.keyHolder(ctx, q, t, &got[i]); !errors.Is(err, ErrDuplicate) {
			return nil, err
		}
	}
	return got, nil
}
