package tasks

import (
	"context"
	"errors"
	"fmt"
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
// PostgreSQL's deletes a batch and its attempts in one statement: it locks
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
		WHERE state = $1 AND completed_at < now() - $2 * interval '1 microsecond'
		ORDER BY completed_at
		LIMIT $3
		FOR UPDATE SKIP LOCKED))
	RETURNING id),
attempts AS (
	DELETE FROM taskwheel_attempts WHERE task_id IN (SELECT id FROM purged))
SELECT count(*) FROM purged`
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
		err = s.db.QueryRowContext(ctx, purgeTasksPostgres, string(state), olderThan.Microseconds(), limit).Scan(&n)
	} else {
		n, err = s.purgeSQLite(ctx, state, olderThan, limit)
	}
	if err != nil {
		return 0, fmt.Errorf("tasks: purge %s tasks: %w", state, err)
	}
	return n, nil
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
