package tasks

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Flow control on SQL stores. A due task whose key has no capacity is
// parked: its run_at moves to parkedRunAt, past every due time, so that
// the claims and Upcoming, which read the due range of taskwheel_tasks_due,
// never meet it again, however many wait; wait_key, parked_at (its due
// time) and wait_reason say that it waits, and taskwheel_tasks_waiting
// finds a key's waiting tasks, oldest due first, for the claims that start
// them. Parking is done by the claims as they meet the due tasks, a batch
// at a time, once per task and wait. See migration 0014 (SQLite), 0016
// (PostgreSQL).
//
// Claims that find limits run claimFlow (store_sql_flow_claim.go).

// parkedRunAt is the run_at of a waiting task.
var parkedRunAt = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

// hasLimits tells whether any limit exists, after a fast claim, which
// claims nothing when one does, returned no task.
const hasLimits = `SELECT EXISTS (SELECT 1 FROM taskwheel_limits)`

// flowLimits runs query, which returns the limits and the store's clock.
func (s *SQLStore) flowLimits(ctx context.Context, q queryer, query string, args ...any) ([]*flowState, time.Time, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, time.Time{}, err
	}
	defer rows.Close()
	var (
		out []*flowState
		now sqlTime
	)
	for rows.Next() {
		var (
			l                 flowState
			tokensAt, updated sqlTime
		)
		if err := rows.Scan(&l.AppID, &l.Key, &l.Rate, &l.Burst, &l.Concurrency, &l.Paused,
			&l.tokens, &tokensAt, &updated, &l.waiting, &now); err != nil {
			return nil, time.Time{}, err
		}
		l.tokensAt, l.UpdatedAt = tokensAt.t, updated.t
		out = append(out, &l)
	}
	if err := rows.Err(); err != nil {
		return nil, time.Time{}, err
	}
	if !now.valid {
		now = sqlTime{time.UnixMicro(s.now().UnixMicro()).UTC(), true}
	}
	return out, now.t, nil
}

// flowRunning counts the running tasks by key: on SQLite, of every key,
// through the index of running tasks (without INDEXED BY, SQLite chose to
// read every task in the order of the app's list index);
// on PostgreSQL, of the keys given as two arrays (app, key), each through
// taskwheel_tasks_running (migration 0025), whose plain index scan reads
// the key's running tasks only, where a count of every key's was a bitmap
// scan that read the entries of every task run since the last vacuum.
const (
	flowRunningSQLite = `SELECT app_id, COALESCE(flow_key, event_type), count(*) FROM taskwheel_tasks INDEXED BY taskwheel_tasks_lease
WHERE state = 'running' GROUP BY app_id, COALESCE(flow_key, event_type)`
	flowRunningPostgres = `SELECT k.app_id, k.key, taskwheel_running(k.app_id, k.key)
FROM unnest($1::text[], $2::text[]) AS k(app_id, key)`
)

// countRunning sets the Running count of each limit in byKey.
func (s *SQLStore) countRunning(ctx context.Context, q queryer, byKey map[limitKey]*flowState) error {
	query, args := flowRunningSQLite, []any(nil)
	if s.dialect == Postgres {
		apps, keys := make([]string, 0, len(byKey)), make([]string, 0, len(byKey))
		for k := range byKey {
			apps, keys = append(apps, k.app), append(keys, k.key)
		}
		query, args = flowRunningPostgres, s.planned(apps, keys)
	}
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			k limitKey
			n int
		)
		if err := rows.Scan(&k.app, &k.key, &n); err != nil {
			return err
		}
		if l := byKey[k]; l != nil {
			l.Running = n
		}
	}
	return rows.Err()
}

// queryStrings runs query, which returns one text column.
func queryStrings(ctx context.Context, q queryer, query string, args ...any) ([]string, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// SetLimit queries: the upsert takes app, key, rate, burst, concurrency,
// paused and (SQLite) the clock; a changed limit keeps the tokens its
// bucket holds now, up to the new burst, and a new one (or one that had
// no rate) starts full. setWaitReason then gives the key's waiting tasks
// the reason the new limit holds them back for (releaseWaiting, of
// DeleteLimit, releases them when it holds back none). flowNotify wakes the engines of every process on
// PostgreSQL, as the notify trigger does for a task due now.
const (
	setLimitSQLite = `INSERT INTO taskwheel_limits
	(app_id, flow_key, rate, burst, concurrency, paused, tokens, tokens_at, updated_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?4, ?7, ?7)
ON CONFLICT (app_id, flow_key) DO UPDATE SET
	rate = excluded.rate, burst = excluded.burst, concurrency = excluded.concurrency, paused = excluded.paused,
	tokens = min(excluded.burst, CASE WHEN taskwheel_limits.rate > 0
		THEN taskwheel_limits.tokens + taskwheel_limits.rate * max(0, ?7 - taskwheel_limits.tokens_at) / 1e6
		ELSE excluded.burst END),
	tokens_at = ?7, updated_at = ?7`
	setLimitPostgres = `INSERT INTO taskwheel_limits AS l
	(app_id, flow_key, rate, burst, concurrency, paused, tokens, tokens_at, updated_at)
VALUES ($1, $2, $3, $4::integer, $5, $6, $4::integer, now(), now())
ON CONFLICT (app_id, flow_key) DO UPDATE SET
	rate = excluded.rate, burst = excluded.burst, concurrency = excluded.concurrency, paused = excluded.paused,
	tokens = LEAST(excluded.burst, CASE WHEN l.rate > 0
		THEN l.tokens + l.rate * GREATEST(0, extract(epoch FROM now() - l.tokens_at))
		ELSE excluded.burst END),
	tokens_at = now(), updated_at = now()`
	setWaitReason = `UPDATE taskwheel_tasks SET wait_reason = ?
WHERE app_id = ? AND wait_key = ? AND wait_reason <> ?`
	flowNotify = `SELECT pg_notify('taskwheel_' || left(md5(current_schema()), 16),
	(extract(epoch FROM now()) * 1000000)::bigint || ' ` + flowWakeID + `')`
)

// SetLimit implements [Store].
func (s *SQLStore) SetLimit(ctx context.Context, l *Limit) (*Limit, error) {
	err := s.flowTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.pick(setLimitSQLite, setLimitPostgres),
			s.args(l.AppID, l.Key, l.Rate, l.Burst, l.Concurrency, l.Paused)...)
		if err != nil {
			return err
		}
		return s.waitFor(ctx, tx, l)
	})
	if err != nil {
		return nil, fmt.Errorf("tasks: set limit %s/%s: %w", l.AppID, l.Key, err)
	}
	return s.GetLimit(ctx, l.AppID, l.Key)
}

// flowTx runs change in a transaction that, on PostgreSQL, wakes every
// engine when it commits.
//
// On PostgreSQL a change of a limit can meet a claim in a lock cycle: the
// change holds the key's limit and waits for the key's waiting tasks, to
// give them their new reason or make them due, while a claim holds one of
// those tasks and waits for the limit. A claim locks the due tasks it reads
// (FOR UPDATE SKIP LOCKED), then their keys' limits; a task that another
// claim parked after the claim's statement began is locked all the same,
// the newest version of its row, before PostgreSQL finds it no longer due
// and leaves it out, and stays locked until the claim ends. PostgreSQL
// would find the cycle only after its deadlock_timeout (a second by
// default), a second in which the change, a pause say, does not take
// effect and the claim starts nothing. So each wait of the change for a
// lock lasts at most flowLockTimeout (lock_timeout, set for the change's
// transaction alone, in place of any the connection has): the change then
// rolls back, which lets the claim have the limit and end, and runs again;
// from its flowLockTries-th try on, for a lock held longer than a claim
// holds one (an application's own transaction, say), each wait lasts at
// most flowLockTimeoutLong, and the change runs again until it succeeds or
// ctx ends. No try waits without a bound: one that did could meet the
// cycle all the same and stay in it until deadlock_timeout
// (TestFlow_LimitChangeGivesWayToAClaim). A change or a claim that
// PostgreSQL ended to break a deadlock all the same runs again
// (retryDeadlock).
func (s *SQLStore) flowTx(ctx context.Context, change func(tx *sql.Tx) error) error {
	for try := 1; ; try++ {
		bound := ""
		if s.dialect == Postgres {
			bound = flowLockTimeout
			if try >= flowLockTries {
				bound = flowLockTimeoutLong
			}
		}
		err := retryDeadlock(ctx, func() error { return s.flowTxOnce(ctx, change, bound) })
		if bound == "" || sqlState(err) != lockNotAvailable || ctx.Err() != nil {
			return err
		}
	}
}

// flowLockTimeout bounds, on PostgreSQL, each wait for a lock of a change
// of a limit's first tries (see flowTx): longer than a claim holds a
// limit, and short beside the 100 ms in which a pause stops new starts
// (TestFlow_PauseAndResume).
const flowLockTimeout = `SELECT set_config('lock_timeout', '20ms', true)`

// flowLockTimeoutLong bounds the wait of the tries from the
// flowLockTries-th on: still well below PostgreSQL's default
// deadlock_timeout (1 s).
const flowLockTimeoutLong = `SELECT set_config('lock_timeout', '100ms', true)`

// flowLockTries is the try of a change from which on flowTx bounds its
// waits for locks by flowLockTimeoutLong instead of flowLockTimeout.
const flowLockTries = 10

// lockNotAvailable is PostgreSQL's SQLSTATE for a statement that waited
// longer than its lock_timeout.
const lockNotAvailable = "55P03"

// flowTxOnce runs change in one transaction, after bound (flowLockTimeout
// or flowLockTimeoutLong) unless it is "".
func (s *SQLStore) flowTxOnce(ctx context.Context, change func(tx *sql.Tx) error, bound string) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if bound != "" {
		if _, err := tx.ExecContext(ctx, bound); err != nil {
			return err
		}
	}
	if err := change(tx); err != nil {
		return err
	}
	if s.dialect == Postgres {
		if _, err := tx.ExecContext(ctx, flowNotify); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// Limit reads: one limit, an app's, and their counts.
const (
	getLimit = `SELECT app_id, flow_key, rate, burst, concurrency, paused, tokens, tokens_at, updated_at, waiting, NULL
FROM taskwheel_limits WHERE app_id = ? AND flow_key = ?`
	listLimits = `SELECT app_id, flow_key, rate, burst, concurrency, paused, tokens, tokens_at, updated_at, waiting, NULL
FROM taskwheel_limits WHERE app_id = ? ORDER BY flow_key`
	limitRunning = `SELECT count(*) FROM taskwheel_tasks
WHERE state = 'running' AND app_id = ? AND COALESCE(flow_key, event_type) = ?`
	limitWaiting = `SELECT count(*) FROM taskwheel_tasks WHERE app_id = ? AND wait_key = ?`
)

// GetLimit implements [Store].
func (s *SQLStore) GetLimit(ctx context.Context, appID, key string) (*Limit, error) {
	ls, err := s.readLimits(ctx, getLimit, appID, key)
	if err != nil {
		return nil, fmt.Errorf("tasks: get limit %s/%s: %w", appID, key, err)
	}
	if len(ls) == 0 {
		return nil, ErrNotFound
	}
	return ls[0], nil
}

// ListLimits implements [Store].
func (s *SQLStore) ListLimits(ctx context.Context, appID string) ([]*Limit, error) {
	ls, err := s.readLimits(ctx, listLimits, appID)
	if err != nil {
		return nil, fmt.Errorf("tasks: list limits of %s: %w", appID, err)
	}
	return ls, nil
}

// readLimits runs query, which returns limits, and counts their tasks.
func (s *SQLStore) readLimits(ctx context.Context, query string, args ...any) ([]*Limit, error) {
	fs, _, err := s.flowLimits(ctx, s.read, s.read.Rebind(query), args...)
	if err != nil {
		return nil, err
	}
	out := make([]*Limit, len(fs))
	for i, f := range fs {
		l := f.Limit
		for q, n := range map[string]*int{limitRunning: &l.Running, limitWaiting: &l.Waiting} {
			if err := s.read.QueryRowContext(ctx, s.read.Rebind(q), l.AppID, l.Key).Scan(n); err != nil {
				return nil, err
			}
		}
		out[i] = &l
	}
	return out, nil
}

// DeleteLimit queries: the limit, then its waiting tasks, due again as
// they were.
const (
	deleteLimit    = `DELETE FROM taskwheel_limits WHERE app_id = ? AND flow_key = ?`
	releaseWaiting = `UPDATE taskwheel_tasks
SET run_at = parked_at, wait_key = NULL, parked_at = NULL, wait_reason = NULL
WHERE app_id = ? AND wait_key = ?`
)

// DeleteLimit implements [Store].
func (s *SQLStore) DeleteLimit(ctx context.Context, appID, key string) error {
	err := s.flowTx(ctx, func(tx *sql.Tx) error {
		n, err := exec(ctx, tx, s.db.Rebind(deleteLimit), appID, key)
		if err != nil {
			return err
		}
		if n == 0 {
			return ErrNotFound
		}
		_, err = tx.ExecContext(ctx, s.db.Rebind(releaseWaiting), appID, key)
		return err
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("tasks: delete limit %s/%s: %w", appID, key, err)
	}
	return err
}

// hasWaiting tells Upcoming whether any task may wait for its key's
// capacity: a limit's waiting column is true whenever one does (the claim
// that parks it sets it). It reads the limits, not the tasks: on
// PostgreSQL, `EXISTS (… taskwheel_tasks WHERE wait_key IS NOT NULL)` was
// a sequential scan of every task while the table had no statistics (a
// table never analyzed, or just filled), and Upcoming runs each poll. A
// limit whose column is true with no task waiting costs a claim that
// finds none and clears it.
const hasWaiting = `SELECT EXISTS (SELECT 1 FROM taskwheel_limits WHERE waiting)`
