package tasks

import (
	"context"
	"database/sql"
	"encoding/json"
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
// Claims that find limits run in a transaction that first locks every
// limit row (on PostgreSQL; SQLite has one writer), so that concurrent
// claims count each other's running tasks and share the token buckets.

// parkedRunAt is the run_at of a waiting task.
var parkedRunAt = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

// hasLimits tells whether any limit exists, after a fast claim, which
// claims nothing when one does, returned no task.
const hasLimits = `SELECT EXISTS (SELECT 1 FROM taskwheel_limits)`

// Limit queries of claimFlow: the limits (locked on PostgreSQL), with the
// store's clock; the running tasks by key; a key's waiting tasks, oldest
// due first; the due tasks with their keys; parking (one key's batch,
// reason and ids as a JSON array on SQLite, an array on PostgreSQL);
// claiming by ID; and the token buckets' update.
const (
	flowLimitsSQLite = `SELECT app_id, flow_key, rate, burst, concurrency, paused, tokens, tokens_at, updated_at, ?1
FROM taskwheel_limits ORDER BY app_id, flow_key`
	flowLimitsPostgres = `SELECT app_id, flow_key, rate, burst, concurrency, paused, tokens, tokens_at, updated_at, now()
FROM taskwheel_limits ORDER BY app_id, flow_key FOR UPDATE`
	flowRunning = `SELECT app_id, COALESCE(flow_key, event_type), count(*) FROM taskwheel_tasks
WHERE state = 'running' GROUP BY app_id, COALESCE(flow_key, event_type)`
	flowWaitingSQLite = `SELECT id FROM taskwheel_tasks
WHERE app_id = ?1 AND wait_key = ?2 ORDER BY parked_at, id LIMIT ?3`
	flowWaitingPostgres = `SELECT id FROM taskwheel_tasks
WHERE app_id = $1 AND wait_key = $2 ORDER BY parked_at, id LIMIT $3 FOR UPDATE SKIP LOCKED`
	flowDueSQLite = `SELECT id, app_id, COALESCE(flow_key, event_type) FROM taskwheel_tasks
WHERE state IN ('scheduled', 'retrying') AND run_at <= ?2
ORDER BY run_at, id LIMIT ?1`
	flowDuePostgres = `SELECT id, app_id, COALESCE(flow_key, event_type) FROM taskwheel_tasks
WHERE state IN ('scheduled', 'retrying') AND run_at <= now()
ORDER BY run_at, id LIMIT $1 FOR UPDATE SKIP LOCKED`
	flowParkSQLite = `UPDATE taskwheel_tasks
SET wait_key = ?1, wait_reason = ?2, parked_at = run_at, run_at = ?3
WHERE id IN (SELECT value FROM json_each(?4))`
	flowParkPostgres = `UPDATE taskwheel_tasks
SET wait_key = $1, wait_reason = $2, parked_at = run_at, run_at = $3
WHERE id = ANY($4::text[])`
	flowClaimSQLite = `UPDATE taskwheel_tasks
SET state = 'running', attempts = attempts + 1, lease_expires_at = ?3 + ?2, updated_at = ?3,
	run_at = COALESCE(parked_at, run_at), wait_key = NULL, parked_at = NULL, wait_reason = NULL, wait_endpoint = NULL
WHERE id IN (SELECT value FROM json_each(?1)) AND state IN ('scheduled', 'retrying')
RETURNING ` + taskColumns
	flowClaimPostgres = `UPDATE taskwheel_tasks
SET state = 'running', attempts = attempts + 1,
	lease_expires_at = now() + $2 * interval '1 microsecond', updated_at = now(),
	run_at = COALESCE(parked_at, run_at), wait_key = NULL, parked_at = NULL, wait_reason = NULL, wait_endpoint = NULL
WHERE id = ANY($1::text[]) AND state IN ('scheduled', 'retrying')
RETURNING ` + taskColumns
	flowTokens = `UPDATE taskwheel_limits SET tokens = ?, tokens_at = ? WHERE app_id = ? AND flow_key = ?`
)

// flowScan bounds the due tasks that one claim reads, in rounds of
// flowBatch or the claim's limit: a claim that meets a backlog of tasks
// falling due on a key with no capacity parks this many at most, and the
// next claim goes on.
const (
	flowBatch  = 256
	flowRounds = 8
)

// claimDB is what a claim runs on: the store's *sqlx.DB, or the *sql.Conn
// of SQLite's writer.
type claimDB interface {
	queryer
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	BeginTx(ctx context.Context, opts *sql.TxOptions) (*sql.Tx, error)
}

// idList returns ids as claimFlow's queries take a list: a JSON array on
// SQLite, an array on PostgreSQL.
func (s *SQLStore) idList(ids []string) any {
	if s.dialect == Postgres {
		return ids
	}
	b, _ := json.Marshal(ids) // strings always encode
	return string(b)
}

// claimFlow is Claim when limits exist. q is the store's database, or on
// SQLite the connection the claim holds.
func (s *SQLStore) claimFlow(ctx context.Context, q claimDB, limit int, lease time.Duration) ([]*Task, error) {
	fc := flowClaimOf(ctx)
	tx, err := q.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	limits, now, err := s.flowLimits(ctx, tx, s.pick(flowLimitsSQLite, flowLimitsPostgres), s.args()...)
	s.limited.Store(len(limits) > 0)
	if err != nil || len(limits) == 0 {
		return nil, err // none: the caller claims again, fast
	}
	byKey := make(map[limitKey]*flowState, len(limits))
	for _, l := range limits {
		byKey[limitKey{l.AppID, l.Key}] = l
		l.refill(now)
	}
	if err := s.countRunning(ctx, tx, byKey); err != nil {
		return nil, err
	}
	var (
		claim []string
		held  []heldBy
	)
	took := func(id string, l *flowState) {
		claim = append(claim, id)
		l.take(1)
		if l.Concurrency > 0 {
			held = append(held, heldBy{id, l})
		}
	}
	// The waiting tasks first: they were due before any due now.
	for _, l := range limits {
		n, _ := l.capacity(limit - len(claim))
		if n <= 0 {
			continue
		}
		ids, err := queryStrings(ctx, tx, s.pick(flowWaitingSQLite, flowWaitingPostgres), l.AppID, l.Key, n)
		if err != nil {
			return nil, err
		}
		for _, id := range ids {
			took(id, l)
		}
	}
	nowArg := s.timeArg(now)
	for round := 0; round < flowRounds && len(claim) < limit; round++ {
		// The first round reads what the claim may take; the next ones,
		// after a round that parked tasks, read more to park them faster.
		batch := limit
		if round > 0 {
			batch = max(limit, flowBatch)
		}
		rows, err := tx.QueryContext(ctx, s.pick(flowDueSQLite, flowDuePostgres), s.pick2(batch, nowArg)...)
		if err != nil {
			return nil, err
		}
		type parkKey struct {
			l   *flowState
			why string
		}
		park := map[parkKey][]string{}
		n := 0
		for rows.Next() {
			var id, app, key string
			if err := rows.Scan(&id, &app, &key); err != nil {
				rows.Close()
				return nil, err
			}
			n++
			l := byKey[limitKey{app, key}]
			switch {
			case len(claim) == limit:
				// Claim no more; the limited ones may still be parked.
				if l != nil {
					if c, why := l.capacity(1); c == 0 {
						park[parkKey{l, why}] = append(park[parkKey{l, why}], id)
					}
				}
			case l == nil:
				claim = append(claim, id)
			default:
				if c, why := l.capacity(1); c == 0 {
					park[parkKey{l, why}] = append(park[parkKey{l, why}], id)
				} else {
					took(id, l)
				}
			}
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return nil, err
		}
		for k, ids := range park {
			if _, err := tx.ExecContext(ctx, s.pick(flowParkSQLite, flowParkPostgres),
				k.l.Key, k.why, s.timeArg(parkedRunAt), s.idList(ids)); err != nil {
				return nil, err
			}
		}
		if n < batch || len(park) == 0 {
			break // nothing more is due, or what was due is claimed
		}
	}
	for _, l := range limits {
		if l.Rate > 0 {
			if _, err := tx.ExecContext(ctx, s.db.Rebind(flowTokens), l.tokens, s.timeArg(l.tokensAt), l.AppID, l.Key); err != nil {
				return nil, err
			}
		}
		if !l.Paused && (l.Concurrency == 0 || l.Running < l.Concurrency) {
			fc.wake(l.nextToken())
		}
	}
	fc.hold(held)
	var rs []taskRow
	if len(claim) > 0 {
		rs, err = queryRows(ctx, tx, s.pick(flowClaimSQLite, flowClaimPostgres), s.args(s.idList(claim), lease.Microseconds())...)
		if err != nil {
			return nil, err
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	return claimed(rs), nil
}

// pick2 returns flowDue's arguments: SQLite's take the clock, PostgreSQL's
// read it.
func (s *SQLStore) pick2(batch int, now any) []any {
	if s.dialect == Postgres {
		return []any{batch}
	}
	return []any{batch, now}
}

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
			&l.tokens, &tokensAt, &updated, &now); err != nil {
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

// countRunning sets the Running count of each limit in byKey.
func (s *SQLStore) countRunning(ctx context.Context, q queryer, byKey map[limitKey]*flowState) error {
	rows, err := q.QueryContext(ctx, flowRunning)
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
func (s *SQLStore) flowTx(ctx context.Context, change func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
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
	getLimit = `SELECT app_id, flow_key, rate, burst, concurrency, paused, tokens, tokens_at, updated_at, NULL
FROM taskwheel_limits WHERE app_id = ? AND flow_key = ?`
	listLimits = `SELECT app_id, flow_key, rate, burst, concurrency, paused, tokens, tokens_at, updated_at, NULL
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

// hasWaiting tells Upcoming whether any task waits for its key's
// capacity.
const hasWaiting = `SELECT EXISTS (SELECT 1 FROM taskwheel_tasks WHERE wait_key IS NOT NULL)`
