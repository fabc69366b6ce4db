package tasks

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Retention: deleting finished tasks in batches, and the roles that let one
// engine at a time do it.

// PurgeTasks queries. SQLite's take the state, the cutoff (Unix
// microseconds) and the limit, and run in one write transaction: the first
// deletes the attempts of the batch, the second the batch's tasks, which
// are the same tasks, since the order (completed_at, rowid) is total and
// nothing else writes meanwhile. Both read the batch from the index
// taskwheel_tasks_retention, in its order, without sorting.
//
// PostgreSQL's deletes a batch and its attempts in one statement, from the
// state's purge cursor on (see purgeCursors), and returns how many it
// deleted and the last CompletedAt among them: it locks
// only terminal rows (those the subquery selects), and skips those another
// transaction holds (a Replay, say), so it never waits on a row and never
// touches a pending or running one; a row replayed before it is locked no
// longer matches when FOR UPDATE reads it again. The IDs are an array, not
// an IN (subquery): with IN, PostgreSQL plans a hash join over a
// sequential scan of the whole table (measured: 110 ms a batch at 200,000
// rows); with the array, one index lookup per ID.
const (
	purgeAttemptsSQLite = `DELETE FROM taskwheel_attempts WHERE task_id IN (
	SELECT id FROM taskwheel_tasks
	WHERE state = ?1 AND completed_at < ?2
	ORDER BY completed_at, rowid
	LIMIT ?3)`
	purgeTasksSQLite = `DELETE FROM taskwheel_tasks WHERE rowid IN (
	SELECT rowid FROM taskwheel_tasks
	WHERE state = ?1 AND completed_at < ?2
	ORDER BY completed_at, rowid
	LIMIT ?3)`
	purgeTasksPostgres = `WITH purged AS (
	DELETE FROM taskwheel_tasks WHERE id = ANY(ARRAY(
		SELECT id FROM taskwheel_tasks
		WHERE state = $1 AND completed_at < now() - $2 * interval '1 microsecond' AND completed_at >= $4
		ORDER BY completed_at
		LIMIT $3
		FOR UPDATE SKIP LOCKED))
	RETURNING id, completed_at),
attempts AS (
	DELETE FROM taskwheel_attempts WHERE task_id IN (SELECT id FROM purged))
SELECT count(*), max(completed_at) FROM purged`
)

// PurgeTasks implements [Store]. On SQLite each call is one write
// transaction, which holds the database's write lock while it deletes one
// batch: keep batches small (the engine deletes 1,000 tasks at a time) so
// that claims and inserts wait little for it.
func (s *SQLStore) PurgeTasks(ctx context.Context, state State, olderThan time.Duration, limit int) (int, error) {
	if err := purgeParams(state, olderThan, limit); err != nil {
		return 0, err
	}
	var n int
	var err error
	if s.dialect == Postgres {
		var last sql.NullTime
		from := s.purge.from(state)
		err = s.db.QueryRowContext(ctx, purgeTasksPostgres, string(state), olderThan.Microseconds(), limit, from).Scan(&n, &last)
		s.purge.moved(state, from, last.Time, err == nil && n == limit)
	} else {
		n, err = s.purgeSQLite(ctx, state, olderThan, limit)
	}
	if err != nil {
		return 0, fmt.Errorf("tasks: purge %s tasks: %w", state, err)
	}
	return n, nil
}

// purgeCursors hold, per terminal state, the CompletedAt that the next
// PurgeTasks of that state starts from on PostgreSQL: the last one that
// the previous call deleted, as long as the calls come back full; a
// short call (the end of a pass), or a failed one, sets it back to the
// start. PostgreSQL leaves a deleted row's index entries in place until
// vacuum, so that a batch that read the retention index from its start
// would walk past every row that the pass deleted before it: measured, on
// ten million tasks, 356 ms and 23,000 pages a batch once four million
// were deleted, and a pass slowing to 1,100 tasks a second. From the
// cursor on, each batch reads about what it deletes. A row that the
// cursor has passed, one that a batch skipped as locked, say, is left to
// the next pass, which starts from the start. SQLite deletes index
// entries at once, and starts from the start every time.
type purgeCursors struct {
	mu   sync.Mutex
	last map[State]time.Time
}

// purgeStart is before any CompletedAt: where a pass starts.
var purgeStart = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)

// from returns where the next batch of state starts.
func (c *purgeCursors) from(state State) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t, ok := c.last[state]; ok {
		return t
	}
	return purgeStart
}

// moved records the batch of state that started from from: if it was
// full, the next starts from last, its last CompletedAt, unless another
// call moved the cursor meanwhile; otherwise the next starts from the
// start.
func (c *purgeCursors) moved(state State, from, last time.Time, full bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cur, ok := c.last[state]; ok && !cur.Equal(from) {
		return // another call's batch came first
	}
	if !full {
		delete(c.last, state)
		return
	}
	if c.last == nil {
		c.last = make(map[State]time.Time)
	}
	c.last[state] = last
}

func (s *SQLStore) purgeSQLite(ctx context.Context, state State, olderThan time.Duration, limit int) (int, error) {
	cutoff := s.now().UnixMicro() - olderThan.Microseconds() // no overflow: |olderThan| < 2^63 ns
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, purgeAttemptsSQLite, string(state), cutoff, limit); err != nil {
		return 0, err
	}
	n, err := exec(ctx, tx, purgeTasksSQLite, string(state), cutoff, limit)
	if err != nil {
		return 0, err
	}
	return int(n), tx.Commit()
}

// Elect queries take the role, the holder and the term (microseconds): an
// upsert whose update applies only when the row is the holder's or its
// term has expired, and which returns a row only when it wrote one. The
// database's unique key on role makes concurrent elections atomic.
const (
	electSQLite = `INSERT INTO taskwheel_roles (role, holder, expires_at) VALUES (?1, ?2, ?4 + ?3)
ON CONFLICT (role) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
WHERE taskwheel_roles.holder = excluded.holder OR taskwheel_roles.expires_at <= ?4
RETURNING holder`
	electPostgres = `INSERT INTO taskwheel_roles (role, holder, expires_at)
VALUES ($1, $2, now() + $3 * interval '1 microsecond')
ON CONFLICT (role) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
WHERE taskwheel_roles.holder = EXCLUDED.holder OR taskwheel_roles.expires_at <= now()
RETURNING holder`
)

// Elect implements [Store].
func (s *SQLStore) Elect(ctx context.Context, role, holder string, term time.Duration) (bool, error) {
	if err := electParams(role, holder, term); err != nil {
		return false, err
	}
	if !s.storable(role) || !s.storable(holder) {
		return false, invalid("role", "role %q or holder %q is not valid text", role, holder)
	}
	rows, err := s.db.QueryContext(ctx, s.pick(electSQLite, electPostgres), s.args(role, holder, term.Microseconds())...)
	if err != nil {
		return false, fmt.Errorf("tasks: elect %s for role %s: %w", holder, role, err)
	}
	won := rows.Next()
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return false, fmt.Errorf("tasks: elect %s for role %s: %w", holder, role, err)
	}
	return won, nil
}

const resign = `DELETE FROM taskwheel_roles WHERE role = ? AND holder = ?`

// Resign implements [Store].
func (s *SQLStore) Resign(ctx context.Context, role, holder string) error {
	if !s.storable(role) || !s.storable(holder) {
		return nil // such a holder holds nothing
	}
	if _, err := s.db.ExecContext(ctx, s.db.Rebind(resign), role, holder); err != nil {
		return fmt.Errorf("tasks: resign %s from role %s: %w", holder, role, err)
	}
	return nil
}
