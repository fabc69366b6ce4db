package tasks

import (
	"context"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

// Revoked dashboard sessions.

// Session queries. Each SQLite query takes the store's clock last.
const (
	purgeSessionsSQLite   = `DELETE FROM taskwheel_revoked_sessions WHERE expires_at <= ?`
	purgeSessionsPostgres = `DELETE FROM taskwheel_revoked_sessions WHERE expires_at <= now()`
	revokeSession         = `INSERT INTO taskwheel_revoked_sessions (id, expires_at) VALUES (?, ?)
ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at`
	sessionRevokedSQLite   = `SELECT count(*) FROM taskwheel_revoked_sessions WHERE id = ? AND expires_at > ?`
	sessionRevokedPostgres = `SELECT count(*) FROM taskwheel_revoked_sessions WHERE id = $1 AND expires_at > now()`
)

// RevokeSession implements [Store]. The purge and the revocation are one
// transaction.
func (s *SQLStore) RevokeSession(ctx context.Context, id string, expires time.Time) error {
	if !s.storable(id) {
		return invalid("id", "session ID %q is not valid text", id)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("tasks: revoke session: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, s.pick(purgeSessionsSQLite, purgeSessionsPostgres), s.args()...); err != nil {
		return fmt.Errorf("tasks: revoke session: purge expired: %w", err)
	}
	if _, err := tx.ExecContext(ctx, s.db.Rebind(revokeSession), id, s.timeArg(expires)); err != nil {
		return fmt.Errorf("tasks: revoke session: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("tasks: revoke session: %w", err)
	}
	return nil
}

// SessionRevoked implements [Store].
func (s *SQLStore) SessionRevoked(ctx context.Context, id string) (bool, error) {
	if !s.storable(id) {
		return false, nil // no session has it
	}
	var n int
	if err := s.read.GetContext(ctx, &n, s.pick(sessionRevokedSQLite, sessionRevokedPostgres), s.args(id)...); err != nil {
		return false, fmt.Errorf("tasks: read session revocation: %w", err)
	}
	return n > 0, nil
}

// Dashboard counts.

// CountTasks queries take the app and the limit. They count in one
// statement, so that the counts are of one moment. The live states are
// counted on the partial indexes that hold every live task, of every app:
// taskwheel_tasks_due (scheduled and retrying) and taskwheel_tasks_lease
// (running), which cost nothing more to keep, checking each task's app in
// the table: the cost is that of the store's live tasks, not of any app's
// history. (An index of the live tasks by app would spare the table, but
// cost every insert and claim an entry more.) SQLite is told the index,
// which its planner, with no statistics, would rather not take over
// taskwheel_tasks_app_list and the app's whole history; PostgreSQL's
// planner, which has them, takes the cheaper of the two. Each terminal
// state is counted up to the limit on taskwheel_tasks_ended (app_id,
// state, completed_at), reading at most limit index entries and not the
// table; the order by completed_at, which the count does not need, keeps
// PostgreSQL from taking, for a state that most rows are in, a sequential
// scan that would start at the table's oldest rows, of other states.
const (
	countTasksSQLite = `SELECT state, count(*) AS n FROM taskwheel_tasks INDEXED BY taskwheel_tasks_due
WHERE state IN ('scheduled', 'retrying') AND app_id = ?1
GROUP BY state
UNION ALL SELECT 'running', count(*) FROM taskwheel_tasks INDEXED BY taskwheel_tasks_lease
	WHERE state = 'running' AND app_id = ?1
UNION ALL SELECT 'completed', count(*) FROM (SELECT 1 FROM taskwheel_tasks
	WHERE app_id = ?1 AND state = 'completed' AND completed_at IS NOT NULL ORDER BY completed_at DESC LIMIT ?2)
UNION ALL SELECT 'failed', count(*) FROM (SELECT 1 FROM taskwheel_tasks
	WHERE app_id = ?1 AND state = 'failed' AND completed_at IS NOT NULL ORDER BY completed_at DESC LIMIT ?2)
UNION ALL SELECT 'canceled', count(*) FROM (SELECT 1 FROM taskwheel_tasks
	WHERE app_id = ?1 AND state = 'canceled' AND completed_at IS NOT NULL ORDER BY completed_at DESC LIMIT ?2)`
	countTasksPostgres = `SELECT state, count(*) AS n FROM taskwheel_tasks
WHERE state IN ('scheduled', 'retrying') AND app_id = $1
GROUP BY state
UNION ALL SELECT 'running', count(*) FROM taskwheel_tasks
	WHERE state = 'running' AND app_id = $1
UNION ALL SELECT 'completed', count(*) FROM (SELECT 1 FROM taskwheel_tasks
	WHERE app_id = $1 AND state = 'completed' AND completed_at IS NOT NULL ORDER BY completed_at DESC LIMIT $2) AS c
UNION ALL SELECT 'failed', count(*) FROM (SELECT 1 FROM taskwheel_tasks
	WHERE app_id = $1 AND state = 'failed' AND completed_at IS NOT NULL ORDER BY completed_at DESC LIMIT $2) AS f
UNION ALL SELECT 'canceled', count(*) FROM (SELECT 1 FROM taskwheel_tasks
	WHERE app_id = $1 AND state = 'canceled' AND completed_at IS NOT NULL ORDER BY completed_at DESC LIMIT $2) AS x`
)

// CountTasks implements [Store].
func (s *SQLStore) CountTasks(ctx context.Context, appID string, limit int) (map[State]int, error) {
	if err := countLimit(limit); err != nil {
		return nil, err
	}
	counts := make(map[State]int)
	if !s.storable(appID) {
		return counts, nil // no task has it
	}
	var rows []struct {
		State State `db:"state"`
		N     int   `db:"n"`
	}
	if err := sqlx.SelectContext(ctx, s.read, &rows, s.pick(countTasksSQLite, countTasksPostgres), appID, limit); err != nil {
		return nil, fmt.Errorf("tasks: count tasks of %s: %w", appID, err)
	}
	for _, r := range rows {
		if r.N > 0 {
			counts[r.State] = r.N
		}
	}
	return counts, nil
}

// TaskHistogram queries take the app, since (as the dialect stores times),
// since in Unix microseconds and the bucket in microseconds, and return the
// index of each bucket, a state and its count. Only terminal tasks have a
// completed_at: the query reads, on the index taskwheel_tasks_ended
// (app_id, state, completed_at), one range from since on for each terminal
// state, and none of the app's older history.
const (
	taskHistogramSQLite = `SELECT (completed_at - ?3) / ?4 AS k, state, count(*) AS n
FROM taskwheel_tasks
WHERE app_id = ?1 AND state IN ('completed', 'failed', 'canceled') AND completed_at IS NOT NULL AND completed_at >= ?2
GROUP BY k, state
ORDER BY k`
	taskHistogramPostgres = `SELECT ((extract(epoch FROM completed_at) * 1000000)::bigint - $3) / $4 AS k, state, count(*) AS n
FROM taskwheel_tasks
WHERE app_id = $1 AND state IN ('completed', 'failed', 'canceled') AND completed_at IS NOT NULL AND completed_at >= $2
GROUP BY k, state
ORDER BY k`
)

// TaskHistogram implements [Store].
func (s *SQLStore) TaskHistogram(ctx context.Context, appID string, since time.Time, bucket time.Duration) ([]Bucket, error) {
	since, bucket, err := histogramParams(since, bucket)
	if err != nil {
		return nil, err
	}
	if !s.storable(appID) {
		return nil, nil // no task has it
	}
	var rows []struct {
		K     int64 `db:"k"`
		State State `db:"state"`
		N     int   `db:"n"`
	}
	err = sqlx.SelectContext(ctx, s.read, &rows, s.pick(taskHistogramSQLite, taskHistogramPostgres),
		appID, s.timeArg(since), since.UnixMicro(), bucket.Microseconds())
	if err != nil {
		return nil, fmt.Errorf("tasks: count ended tasks of %s: %w", appID, err)
	}
	var out []Bucket
	for i, r := range rows { // by k, so a bucket's rows are adjacent
		if i == 0 || r.K != rows[i-1].K {
			out = append(out, Bucket{Start: since.Add(time.Duration(r.K) * bucket)})
		}
		out[len(out)-1].add(r.State, r.N)
	}
	return out, nil
}

// countAttempts takes the endpoint and since.
const countAttempts = `SELECT count(*) AS total, coalesce(sum(CASE WHEN error <> '' THEN 1 ELSE 0 END), 0) AS failed
FROM taskwheel_attempts
WHERE endpoint_id = ? AND endpoint_id <> '' AND started_at >= ?`

// CountAttempts implements [Store]. The index taskwheel_attempts_endpoint
// holds an endpoint's attempts by start.
func (s *SQLStore) CountAttempts(ctx context.Context, endpointID string, since time.Time) (total, failed int, err error) {
	if endpointID == "" || !s.storable(endpointID) {
		return 0, 0, nil // no attempt has it
	}
	var row struct {
		Total  int `db:"total"`
		Failed int `db:"failed"`
	}
	if err := sqlx.GetContext(ctx, s.read, &row, s.read.Rebind(countAttempts), endpointID, s.timeArg(since)); err != nil {
		return 0, 0, fmt.Errorf("tasks: count attempts of endpoint %s: %w", endpointID, err)
	}
	return row.Total, row.Failed, nil
}
