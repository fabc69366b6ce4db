package tasks

// Limits per endpoint on SQL stores (Store.TakeEndpointCapacity,
// ReleaseEndpointCapacity and Finish's waiting outcomes); see
// endpoint_limits.go for the design and migration 0017 (SQLite), 0019
// (PostgreSQL) for the tables.
//
// Each runs in a transaction that holds the endpoint's row (on
// PostgreSQL, locked FOR NO KEY UPDATE first; SQLite has one writer), so
// that takes count each other's slots and share the token bucket, and so
// that a release that wakes a waiting task and an outcome that makes a
// task wait for a slot cannot miss each other: the outcome sees the slot
// freed, or the release sees the task waiting.

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

const (
	// The endpoint's limits and bucket, with the store's clock (SQLite's
	// is ?2).
	epLimitsSQLite = `SELECT rate_limit, max_in_flight, tokens, tokens_at, queue_at, ?2
FROM taskwheel_endpoints WHERE id = ?1`
	epLimitsPostgres = `SELECT rate_limit, max_in_flight, tokens, tokens_at, queue_at, now()
FROM taskwheel_endpoints WHERE id = $1 FOR NO KEY UPDATE`
	// The app and event type of the attempt, if it is running (the fence).
	epFence = `SELECT app_id, event_type FROM taskwheel_tasks
WHERE id = ? AND attempts = ? AND (CAST(? AS bigint) = 0 OR claim_token = ?) AND state = 'running'`
	// The endpoint's slots held by running attempts, and whether the
	// attempt holds one.
	epInFlight = `SELECT count(*), COALESCE(max(CASE WHEN s.task_id = ? AND s.attempt = ? THEN 1 ELSE 0 END), 0)
FROM taskwheel_endpoint_slots AS s
JOIN taskwheel_tasks AS t ON t.id = s.task_id AND t.attempts = s.attempt AND t.state = 'running'
WHERE s.endpoint_id = ?`
	epTakeSlot = `INSERT INTO taskwheel_endpoint_slots (endpoint_id, task_id, attempt) VALUES (?, ?, ?)
ON CONFLICT DO NOTHING`
	epTokens = `UPDATE taskwheel_endpoints SET tokens = ?, tokens_at = ?, queue_at = ? WHERE id = ?`
	// An attempt queued for a token (see endpointCapacity): a slot row of
	// the attempt's number negated, which never counts as in flight.
	epReserved     = `SELECT count(*) FROM taskwheel_endpoint_slots WHERE endpoint_id = ? AND task_id = ? AND attempt = ?`
	epUnreserve    = `DELETE FROM taskwheel_endpoint_slots WHERE endpoint_id = ? AND task_id = ? AND attempt = ?`
	epUnreserveAll = `DELETE FROM taskwheel_endpoint_slots WHERE endpoint_id = ? AND attempt < 0`
	// A release deletes the attempt's slot and those of attempts that no
	// longer run.
	epReleaseSlot = `DELETE FROM taskwheel_endpoint_slots
WHERE endpoint_id = ? AND (task_id = ? AND attempt = ? OR attempt > 0 AND NOT EXISTS (
	SELECT 1 FROM taskwheel_tasks AS t WHERE t.id = taskwheel_endpoint_slots.task_id
		AND t.attempts = taskwheel_endpoint_slots.attempt AND t.state = 'running'))`
	// The wake: the earliest task waiting for a slot of the endpoint (and
	// not parked by its flow key) becomes due now.
	epWakeSQLite = `UPDATE taskwheel_tasks SET run_at = min(run_at, ?2), wait_endpoint = NULL
WHERE id = (SELECT id FROM taskwheel_tasks
	WHERE wait_endpoint = ?1 AND state IN ('scheduled', 'retrying') AND wait_key IS NULL
	ORDER BY run_at, id LIMIT 1)
RETURNING id, run_at`
	epWakePostgres = `UPDATE taskwheel_tasks SET run_at = LEAST(run_at, now()), wait_endpoint = NULL
WHERE id = (SELECT id FROM taskwheel_tasks
	WHERE wait_endpoint = $1 AND state IN ('scheduled', 'retrying') AND wait_key IS NULL
	ORDER BY run_at, id LIMIT 1 FOR UPDATE SKIP LOCKED)
RETURNING id, run_at`
	// Parking (see parkForEndpoint): the due tasks of an app and event
	// type that would each be refused a token in turn, among the app's
	// oldest due, queued for tokens, one a step after the other from a
	// time, and marked as queued. PostgreSQL: $1 app, $2 how many of its
	// due tasks to look at, $3 event type, $4 endpoint, $5 how many to
	// park, $6 the first one's turn, $7 the step (microseconds), $8 the
	// wait reason. SQLite: the same, and ?9 the clock; then the marks, of
	// the parked tasks as a JSON array of [id, attempts].
	epParkPostgres = `WITH due AS (
	SELECT id FROM taskwheel_tasks
	WHERE app_id = $1 AND state IN ('scheduled', 'retrying') AND run_at <= now()
	ORDER BY run_at, id LIMIT $2
), pick AS (
	SELECT t.id, t.run_at, t.attempts FROM taskwheel_tasks AS t
	WHERE t.id IN (SELECT id FROM due) AND t.event_type = $3
		AND t.state IN ('scheduled', 'retrying') AND t.run_at <= now()
		AND t.attempts = t.replayed_after AND t.endpoint_id IS NULL
		AND t.wait_key IS NULL AND t.wait_endpoint IS NULL
		AND NOT EXISTS (SELECT 1 FROM taskwheel_endpoint_slots AS s
			WHERE s.endpoint_id = $4 AND s.task_id = t.id AND s.attempt = -1 - t.attempts)
	ORDER BY t.run_at, t.id LIMIT $5 FOR UPDATE SKIP LOCKED
), turn AS (
	SELECT id, row_number() OVER (ORDER BY run_at, id) - 1 AS k FROM pick
), parked AS (
	UPDATE taskwheel_tasks AS t SET run_at = $6::timestamptz + u.k * $7 * interval '1 microsecond', wait_reason = $8
	FROM turn AS u WHERE t.id = u.id
	RETURNING t.id, t.run_at, t.attempts
), queued AS (
	INSERT INTO taskwheel_endpoint_slots (endpoint_id, task_id, attempt)
	SELECT $4, id, -1 - attempts FROM parked
	ON CONFLICT DO NOTHING
)
SELECT id, run_at FROM parked ORDER BY run_at, id`
	epParkSQLite = `UPDATE taskwheel_tasks SET run_at = ?6 + u.k * ?7, wait_reason = ?8
FROM (SELECT t.id, row_number() OVER (ORDER BY t.run_at, t.id) - 1 AS k
	FROM (SELECT id FROM taskwheel_tasks
		WHERE app_id = ?1 AND state IN ('scheduled', 'retrying') AND run_at <= ?9
		ORDER BY run_at, id LIMIT ?2) AS d
	JOIN taskwheel_tasks AS t ON t.id = d.id
	WHERE t.event_type = ?3 AND t.attempts = t.replayed_after AND t.endpoint_id IS NULL
		AND t.wait_key IS NULL AND t.wait_endpoint IS NULL
		AND NOT EXISTS (SELECT 1 FROM taskwheel_endpoint_slots AS s
			WHERE s.endpoint_id = ?4 AND s.task_id = t.id AND s.attempt = -1 - t.attempts)
	ORDER BY t.run_at, t.id LIMIT ?5) AS u
WHERE taskwheel_tasks.id = u.id
RETURNING id, run_at, attempts`
	epQueueSQLite = `INSERT INTO taskwheel_endpoint_slots (endpoint_id, task_id, attempt)
SELECT ?1, json_extract(value, '$[0]'), -1 - json_extract(value, '$[1]') FROM json_each(?2) WHERE true
ON CONFLICT DO NOTHING`
	// The sweep of every rescue (see Rescue): the rows of
	// taskwheel_endpoint_slots that no attempt holds any more, whatever
	// the traffic of their endpoints: a slot of an attempt that no longer
	// runs (it ended, was rescued, or its task was deleted, and its
	// release did not happen), and a mark of a queued attempt whose task
	// neither waits to run it nor runs it (canceled, deleted, ended).
	// Such rows count for nothing (see epInFlight); the sweep bounds them
	// in time. On PostgreSQL, in the rescue's statement, whose snapshot
	// does not see the rescue, the rescued attempts' slots are named, and
	// rows that another transaction holds are left for the next sweep, so
	// that it never waits for a take or a release.
	sweepSlotsSQLite = `DELETE FROM taskwheel_endpoint_slots AS s WHERE NOT EXISTS (
	SELECT 1 FROM taskwheel_tasks AS t WHERE t.id = s.task_id AND (
		s.attempt > 0 AND t.state = 'running' AND t.attempts = s.attempt OR
		s.attempt < 0 AND (t.state = 'running' AND t.attempts = -s.attempt OR
			t.state IN ('scheduled', 'retrying') AND t.attempts = -1 - s.attempt)))`
	sweepSlotsPostgres = `DELETE FROM taskwheel_endpoint_slots
WHERE (endpoint_id, task_id, attempt) IN (
	SELECT s.endpoint_id, s.task_id, s.attempt FROM taskwheel_endpoint_slots AS s
	WHERE s.attempt > 0 AND s.task_id IN (SELECT id FROM rescued) OR NOT EXISTS (
		SELECT 1 FROM taskwheel_tasks AS t WHERE t.id = s.task_id AND (
			s.attempt > 0 AND t.state = 'running' AND t.attempts = s.attempt OR
			s.attempt < 0 AND (t.state = 'running' AND t.attempts = -s.attempt OR
				t.state IN ('scheduled', 'retrying') AND t.attempts = -1 - s.attempt)))
	FOR UPDATE OF s SKIP LOCKED)`
	// A waiting outcome: ?1 the clock (SQLite), then delay, wait reason,
	// wait endpoint (NULL when it need not wait for a slot), endpoint ID,
	// task ID, attempt and claim token. A task whose cancellation was
	// requested is canceled instead.
	finishWaitSQLite = `UPDATE taskwheel_tasks SET
	state = CASE WHEN cancel_requested THEN 'canceled' WHEN attempts - 1 <= replayed_after THEN 'scheduled' ELSE 'retrying' END,
	attempts = attempts - 1,
	run_at = CASE WHEN cancel_requested THEN run_at ELSE ?1 + ?2 END,
	completed_at = CASE WHEN cancel_requested THEN ?1 END,
	wait_reason = CASE WHEN cancel_requested THEN NULL ELSE ?3 END,
	wait_endpoint = CASE WHEN cancel_requested THEN NULL ELSE ?4 END,
	endpoint_id = CASE WHEN ?5 = '' THEN endpoint_id ELSE ?5 END,
	lease_expires_at = NULL, claim_token = NULL, updated_at = ?1
WHERE id = ?6 AND attempts = ?7 AND (?8 = 0 OR claim_token = ?8) AND state = 'running'`
	finishWaitPostgres = `UPDATE taskwheel_tasks SET
	state = CASE WHEN cancel_requested THEN 'canceled' WHEN attempts - 1 <= replayed_after THEN 'scheduled' ELSE 'retrying' END,
	attempts = attempts - 1,
	run_at = CASE WHEN cancel_requested THEN run_at ELSE now() + $1 * interval '1 microsecond' END,
	completed_at = CASE WHEN cancel_requested THEN now() END,
	wait_reason = CASE WHEN cancel_requested THEN NULL ELSE $2::text END,
	wait_endpoint = CASE WHEN cancel_requested THEN NULL ELSE $3::text END,
	endpoint_id = CASE WHEN $4::text = '' THEN endpoint_id ELSE $4::text END,
	lease_expires_at = NULL, claim_token = NULL, updated_at = now()
WHERE id = $5 AND attempts = $6::integer AND ($7::bigint = 0 OR claim_token = $7) AND state = 'running'`
)

// epLimits is an endpoint's limits as a take reads them.
type epLimits struct {
	found       bool
	rate        float64
	maxInFlight int
	tokens      sql.NullFloat64
	tokensAt    sqlTime
	queueAt     sqlTime
	now         time.Time
}

// endpointLimits reads, in tx, the limits of endpoint id, locking its row
// on PostgreSQL.
func (s *SQLStore) endpointLimits(ctx context.Context, tx *sql.Tx, id string) (epLimits, error) {
	var (
		l   epLimits
		now sqlTime
	)
	err := tx.QueryRowContext(ctx, s.pick(epLimitsSQLite, epLimitsPostgres), s.args(id)...).
		Scan(&l.rate, &l.maxInFlight, &l.tokens, &l.tokensAt, &l.queueAt, &now)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return l, nil
	case err != nil:
		return l, err
	}
	l.found, l.now = true, now.t
	return l, nil
}

// inFlight returns how many slots of endpoint id running attempts hold,
// and whether l holds one.
func (s *SQLStore) inFlight(ctx context.Context, tx *sql.Tx, id string, l Lease) (n int, mine bool, err error) {
	err = tx.QueryRowContext(ctx, s.db.Rebind(epInFlight), l.ID, l.Attempt, id).Scan(&n, &mine)
	return n, mine, err
}

// parkScan bounds the due tasks of an app that a take looks at to park
// some: the parking costs the same however many tasks are due.
const parkScan = 1024

// parkForEndpoint parks, in tx, up to n due tasks of app and eventType for
// the rate limit of endpoint id (see Store.TakeEndpointCapacity), queued
// one step after the other from *queue, which it moves past the last; now
// is the store's clock.
func (s *SQLStore) parkForEndpoint(ctx context.Context, tx *sql.Tx, id, app, eventType string, n int, reason string, queue *time.Time, step time.Duration, now time.Time) ([]Due, error) {
	var args []any
	if s.dialect == Postgres {
		args = []any{app, parkScan, eventType, id, n, s.timeArg(*queue), step.Microseconds(), s.text(reason)}
	} else {
		args = []any{app, parkScan, eventType, id, n, s.timeArg(*queue), step.Microseconds(), reason, s.timeArg(now)}
	}
	rows, err := tx.QueryContext(ctx, s.pick(epParkSQLite, epParkPostgres), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var (
		parked []Due
		marks  [][2]any
	)
	for rows.Next() {
		var (
			d  Due
			at sqlTime
			n  int
		)
		dest := []any{&d.ID, &at}
		if s.dialect == SQLite {
			dest = append(dest, &n)
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		d.RunAt = at.t
		parked = append(parked, d)
		marks = append(marks, [2]any{d.ID, n})
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, err
	}
	if len(parked) == 0 {
		return nil, nil
	}
	slices.SortFunc(parked, func(a, b Due) int {
		if c := a.RunAt.Compare(b.RunAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	*queue = parked[len(parked)-1].RunAt.Add(step)
	if s.dialect == SQLite {
		b, err := json.Marshal(marks)
		if err != nil {
			return nil, err
		}
		if _, err := tx.ExecContext(ctx, epQueueSQLite, id, string(b)); err != nil {
			return nil, err
		}
	}
	return parked, nil
}

// TakeEndpointCapacity implements [Store].
func (s *SQLStore) TakeEndpointCapacity(ctx context.Context, endpointID string, l Lease, park int, reason string) (ok bool, wait time.Duration, parked []Due, err error) {
	if !s.storable(endpointID) || !s.storable(l.ID) {
		return false, 0, nil, ErrInvalidState
	}
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		parked = nil
		lim, err := s.endpointLimits(ctx, tx, endpointID)
		if err != nil {
			return err
		}
		var app, eventType string
		switch err := tx.QueryRowContext(ctx, s.db.Rebind(epFence), l.ID, l.Attempt, l.claim, l.claim).Scan(&app, &eventType); {
		case errors.Is(err, sql.ErrNoRows):
			return ErrInvalidState
		case err != nil:
			return err
		}
		if !lim.found || lim.rate <= 0 && lim.maxInFlight <= 0 {
			ok = true
			return nil
		}
		n := 0
		if lim.maxInFlight > 0 {
			var mine bool
			if n, mine, err = s.inFlight(ctx, tx, endpointID, l); err != nil || mine {
				ok = mine
				return err
			}
		}
		var (
			bucket   *flowState
			queue    time.Time
			reserved bool
			reserve  bool
		)
		if lim.rate > 0 {
			var at time.Time
			switch {
			case lim.tokens.Valid && lim.tokensAt.valid && lim.queueAt.valid && !lim.queueAt.t.After(lim.now):
				// The queue drained: every delivery marked came back, or
				// never will (its task was canceled or deleted); the marks
				// would order nothing, and are deleted rather than left.
				at = lim.tokensAt.t
				if _, err := tx.ExecContext(ctx, s.db.Rebind(epUnreserveAll), endpointID); err != nil {
					return err
				}
			case lim.tokens.Valid && lim.tokensAt.valid:
				at, queue = lim.tokensAt.t, lim.queueAt.t
				var n int
				if err := tx.QueryRowContext(ctx, s.db.Rebind(epReserved), endpointID, l.ID, -l.Attempt).Scan(&n); err != nil {
					return err
				}
				reserved = n > 0
			default:
				if _, err := tx.ExecContext(ctx, s.db.Rebind(epUnreserveAll), endpointID); err != nil {
					return err // a new bucket: the old one's reservations are void
				}
			}
			bucket = endpointBucket(lim.rate, lim.tokens.Float64, at, lim.now)
		}
		ok, wait, reserve = endpointCapacity(lim.maxInFlight, n, bucket, &queue, reserved, lim.now)
		switch {
		case reserve && !reserved:
			_, err = tx.ExecContext(ctx, s.db.Rebind(epTakeSlot), endpointID, l.ID, -l.Attempt)
		case !reserve && reserved:
			_, err = tx.ExecContext(ctx, s.db.Rebind(epUnreserve), endpointID, l.ID, -l.Attempt)
		}
		if err != nil {
			return err
		}
		if !ok && wait > 0 && park > 0 {
			if parked, err = s.parkForEndpoint(ctx, tx, endpointID, app, eventType, park, reason, &queue, endpointStep(lim.rate), lim.now); err != nil {
				return err
			}
		}
		if ok && lim.maxInFlight > 0 {
			if _, err := tx.ExecContext(ctx, s.db.Rebind(epTakeSlot), endpointID, l.ID, l.Attempt); err != nil {
				return err
			}
		}
		if bucket != nil && (ok || wait > 0) {
			var q any
			if !queue.IsZero() {
				q = s.timeArg(queue)
			}
			_, err = tx.ExecContext(ctx, s.db.Rebind(epTokens), bucket.tokens, s.timeArg(bucket.tokensAt), q, endpointID)
		}
		return err
	})
	if err != nil {
		if !errors.Is(err, ErrInvalidState) {
			err = fmt.Errorf("tasks: take capacity of endpoint %s: %w", endpointID, err)
		}
		return false, 0, nil, err
	}
	return ok, wait, parked, nil
}

// ReleaseEndpointCapacity implements [Store].
func (s *SQLStore) ReleaseEndpointCapacity(ctx context.Context, endpointID string, l Lease) ([]Due, error) {
	if !s.storable(endpointID) || !s.storable(l.ID) {
		return nil, nil
	}
	var woke []Due
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		woke = nil
		if _, err := s.endpointLimits(ctx, tx, endpointID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, s.db.Rebind(epReleaseSlot), endpointID, l.ID, l.Attempt); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, s.pick(epWakeSQLite, epWakePostgres), s.args(endpointID)...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				d  Due
				at sqlTime
			)
			if err := rows.Scan(&d.ID, &at); err != nil {
				return err
			}
			d.RunAt = at.t
			woke = append(woke, d)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("tasks: release capacity of endpoint %s: %w", endpointID, err)
	}
	return woke, nil
}

// finishWaiting records the waiting outcome o (see Outcome.WaitReason) and
// its attempts, and reports whether it applied.
func (s *SQLStore) finishWaiting(ctx context.Context, o *Outcome) (applied bool, err error) {
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		var waitOn any // NULL: due after the delay, or now if a slot is free
		delay := o.Delay
		if o.WaitEndpoint != "" && s.storable(o.WaitEndpoint) {
			lim, err := s.endpointLimits(ctx, tx, o.WaitEndpoint)
			if err != nil {
				return err
			}
			n, _, err := s.inFlight(ctx, tx, o.WaitEndpoint, Lease{})
			if err != nil {
				return err
			}
			if lim.found && lim.maxInFlight > 0 && n >= lim.maxInFlight {
				waitOn = o.WaitEndpoint
			} else {
				delay = 0 // a slot freed since the take
			}
		}
		args := []any{delay.Microseconds(), s.text(o.WaitReason), waitOn, s.text(o.EndpointID), o.ID, o.Attempt, o.claim}
		if s.dialect == SQLite {
			args = append([]any{s.now().UnixMicro()}, args...)
		}
		n, err := exec(ctx, tx, s.pick(finishWaitSQLite, finishWaitPostgres), args...)
		if err != nil || n == 0 {
			return err
		}
		applied = true
		as := make([]Attempt, len(o.Attempts))
		for i, a := range o.Attempts {
			a.TaskID = o.ID
			as[i] = a
		}
		return s.insertAttempts(ctx, tx, as)
	})
	return applied, err
}

// inTx runs f in a transaction of the store's writer.
func (s *SQLStore) inTx(ctx context.Context, f func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := f(tx); err != nil {
		return err
	}
	return tx.Commit()
}
