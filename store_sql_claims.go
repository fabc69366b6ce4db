package tasks

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
)

// Every claim gives each task it claims a random token, not 0, which the
// fences of Finish, Extend and TakeEndpointCapacity compare besides the
// attempt number (see Lease). It is cleared when the attempt ends. Random
// rather than taken from a sequence: a crash can hand out again the values
// of a sequence that only transactions lost in the crash had used, which
// are precisely the forgotten claims the token is to tell apart. On
// PostgreSQL, random() alone would not do either: a session's setseed()
// makes its values repeat, so each row's random() is mixed with a value
// that the claim statement draws once from the server's strong random
// source (gen_random_uuid), which no session can seed; drawing that for
// every row would cost a claim of 100 tasks a quarter of a millisecond.
// SQLite's random() cannot be seeded from SQL.
const (
	claimTokenSQLite   = `claim_token = random() | 1`
	claimTokenPostgres = `claim_token = ((random() * 9007199254740992)::bigint
		# (SELECT ('x' || left(replace(gen_random_uuid()::text, '-', ''), 16))::bit(64)::bigint)) | 1`
)

// claimCommitsAsync is a condition of every claim on PostgreSQL that holds
// and sets synchronous_commit off for the claim's transaction, unless the
// setting taskwheel.synchronous_claims is true as PostgreSQL reads a
// boolean (on, true, yes, 1, a prefix of true or yes, in any case, with
// spaces around; any other value, like none, is false, and postgres.Open
// refuses it): a claim then
// commits without waiting for the server to flush its WAL to disk. A
// claim's commit that waits queues behind every other commit's flush, of
// outcomes, inserts, a retention pass's deletes: a task due during a
// retention pass started up to 87 ms late (p99; tasksbench W9 with
// 10,000,000 finished tasks), 8.9 ms with claims that do not wait. What a crash of the server can
// lose is the claims of its last moments (at most three times
// wal_writer_delay; any later commit that waited flushed them): their
// tasks are due again and run again, at the same attempt number, and the
// claim's token fences off the forgotten run's writes. Set
// taskwheel.synchronous_claims to on (ALTER DATABASE ... SET, or the
// connection's options) to have claims wait as every other commit does.
const claimCommitsAsync = `(SELECT set_config('synchronous_commit',
	CASE WHEN lower(btrim(current_setting('taskwheel.synchronous_claims', true), E' \t\n\r\f\013'))
		IN ('on', 't', 'tr', 'tru', 'true', 'y', 'ye', 'yes', '1')
		THEN current_setting('synchronous_commit') ELSE 'off' END,
	true)) IS NOT NULL`

const (
	// claimSQLite claims the due tasks if no limit exists;
	// flowFastClaimSQLite, whatever limits exist (store_sql_flow_fast.go).
	claimSQLite         = claimDueSQLite + ` AND NOT EXISTS (SELECT 1 FROM taskwheel_limits)` + claimDueSQLiteEnd
	flowFastClaimSQLite = claimDueSQLite + claimDueSQLiteEnd
	claimDueSQLite      = `UPDATE taskwheel_tasks
SET state = 'running', attempts = attempts + 1, lease_expires_at = ?3 + ?2, updated_at = ?3,
	wait_reason = NULL, wait_endpoint = NULL, ` + claimTokenSQLite + `
WHERE id IN (
	SELECT id FROM taskwheel_tasks
	WHERE state IN ('scheduled', 'retrying') AND run_at <= ?3`
	claimDueSQLiteEnd = `
	ORDER BY run_at, id
	LIMIT ?1)
RETURNING ` + taskColumns
	// claimPostgres scans from ($3, $4) (see taskwheel_due, migration
	// 0026) and returns, with each task, how many of the tasks it took
	// its snapshot saw as they were locked (see queryClaim).
	claimPostgres = `WITH due AS MATERIALIZED (
	SELECT id, tid FROM taskwheel_due($1, $3, $4) WHERE NOT EXISTS (SELECT 1 FROM taskwheel_limits)
)
UPDATE taskwheel_tasks
SET state = 'running', attempts = attempts + 1,
	lease_expires_at = now() + $2 * interval '1 microsecond', updated_at = now(),
	wait_reason = NULL, wait_endpoint = NULL, ` + claimTokenPostgres + `
WHERE id IN (SELECT id FROM due) AND ` + claimCommitsAsync + `
RETURNING ` + taskColumns + `, ` + seenColumn
)

// Claim implements [Store]. On PostgreSQL, concurrent claims skip each
// other's tasks instead of waiting for them.
//
// The claim queries claim nothing while a limit exists (a one-time check
// of taskwheel_limits, an empty table then); only a claim that returned no
// task asks whether one does, and if so claims again with claimFlow. So
// without limits a claim costs what it did before flow control, but for
// the idle claim's second small query.
//
// A claim that PostgreSQL ended to break a deadlock with a change of a
// limit (see flowTx) claimed nothing, and runs again.
func (s *SQLStore) Claim(ctx context.Context, limit int, lease time.Duration) (ts []*Task, err error) {
	err = retryDeadlock(ctx, func() error {
		ts, err = s.claim(ctx, limit, lease)
		return err
	})
	return ts, err
}

func (s *SQLStore) claim(ctx context.Context, limit int, lease time.Duration) ([]*Task, error) {
	if limit <= 0 {
		return nil, nil
	}
	var q claimDB = s.db
	if s.dialect == SQLite {
		// Take the writer first, then read the clock (in args): a clock
		// read before waiting for the writer would be stale by the wait,
		// and miss the tasks that fell due meanwhile.
		conn, err := s.db.Conn(ctx)
		if err != nil {
			return nil, fmt.Errorf("tasks: claim tasks: %w", err)
		}
		defer conn.Close()
		q = conn
	}
	if s.limited.Load() {
		// Limits existed at the last claim: spare the claim that would
		// find them again. (claimFlow notes when none are left.)
		ts, err := s.claimFlow(ctx, q, limit, lease)
		if err != nil {
			return nil, fmt.Errorf("tasks: claim tasks: %w", err)
		}
		if s.limited.Load() {
			return ts, nil
		}
	}
	var (
		rs   []taskRow
		fair bool
		err  error
	)
	if s.fair.backlog.Load() {
		rs, fair, err = s.claimFair(ctx, q, limit, lease)
	}
	if !fair && err == nil {
		if s.dialect == Postgres {
			rs, err = queryClaim(ctx, q, claimPostgres, limit, lease)
		} else {
			rs, err = queryRows(ctx, q, claimSQLite, s.args(limit, lease.Microseconds())...)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("tasks: claim tasks: %w", err)
	}
	s.fair.backlog.Store(len(rs) == limit)
	if len(rs) == 0 {
		var limited bool
		if err := q.QueryRowContext(ctx, hasLimits).Scan(&limited); err != nil {
			return nil, fmt.Errorf("tasks: claim tasks: %w", err)
		}
		if limited {
			ts, err := s.claimFlow(ctx, q, limit, lease)
			if err != nil {
				return nil, fmt.Errorf("tasks: claim tasks: %w", err)
			}
			return ts, nil
		}
	}
	return claimed(rs), nil
}

// claimed returns the tasks of rows that a claim's RETURNING gave, in
// the order they were due: RETURNING has no order, and run_at still holds
// when each task was due.
func claimed(rs []taskRow) []*Task {
	slices.SortFunc(rs, func(a, b taskRow) int {
		if c := a.RunAt.t.Compare(b.RunAt.t); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	ts := make([]*Task, len(rs))
	for i := range rs {
		ts[i] = rs[i].task()
	}
	return ts
}

// The fences of Finish and Extend compare a task's state with a value of
// the outcome's or lease's row ("running" for every row) rather than with a
// constant, so that no planner can prove the predicate of the partial index
// taskwheel_tasks_lease (state = 'running') and scan it, hash-joining every
// running task, and every entry of one since the last vacuum, with the
// outcomes: with a long history, whose statistics say that almost no task
// runs, PostgreSQL does, and each Finish read the whole index, which made
// the drain three times slower with 10,000,000 finished tasks in the table
// (tasksbench W9). The tasks are found by primary key, a few at a time.

// Finish queries. SQLite's takes the store's clock as ?1, then each outcome
// as (id, attempt, state, delay, error, endpoint); PostgreSQL's takes one
// array per column of the outcomes, then one per column of their attempts,
// each attempt naming its outcome by its 1-based place, and records both in
// one statement. An outcome of retrying for a task whose cancellation was
// requested records canceled.
const (
	finishSQLite = `UPDATE taskwheel_tasks AS t SET
	state = CASE WHEN o.state = 'retrying' AND t.cancel_requested THEN 'canceled' ELSE o.state END,
	run_at = CASE WHEN o.state = 'retrying' THEN ?1 + o.delay ELSE t.run_at END,
	completed_at = CASE WHEN o.state = 'retrying' AND NOT t.cancel_requested THEN NULL ELSE ?1 END,
	last_error = CASE WHEN o.err = '' THEN t.last_error ELSE o.err END,
	endpoint_id = CASE WHEN o.endpoint = '' THEN t.endpoint_id ELSE o.endpoint END,
	lease_expires_at = NULL, claim_token = NULL,
	updated_at = ?1
FROM (SELECT column1 AS id, column2 AS attempt, column3 AS claim, column4 AS state, column5 AS delay,
	column6 AS err, column7 AS endpoint FROM (VALUES %s)) AS o
WHERE t.id = o.id AND t.attempts = o.attempt AND (o.claim = 0 OR t.claim_token = o.claim)
	AND t.state = CASE WHEN o.id IS NOT NULL THEN 'running' END
RETURNING id`
	finishSQLiteRow = `(?, ?, ?, ?, ?, ?, ?)`

	// finishPostgres runs taskwheel_finish (migration 0028), whose
	// statement records the outcomes with their attempts, finding the
	// tasks by their primary key however the table's statistics stand.
	finishPostgres = `SELECT * FROM taskwheel_finish($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`
)

// maxFinishRows bounds the outcomes of one Finish statement, to stay under
// SQLite's limit on parameters.
const maxFinishRows = 1000

// Finish implements [Store]. It records the outcomes, and the attempts of
// those that apply, in batches of up to maxFinishRows: on PostgreSQL each
// batch is one statement; on SQLite, one transaction of two. Of two
// outcomes for one attempt, only the first can apply. An attempt is stored
// in the history of its outcome's task, whatever its TaskID says.
//
// On PostgreSQL the batch's tasks are found by their IDs, t.id = ANY($1),
// besides the join with the outcomes. With the join alone, the planner of a
// table never analyzed (autovacuum off, or just filled) often chose a hash
// join over a sequential scan of the whole table, long after the table had
// grown: auto_explain of every batch of a drain by an engine started on an
// empty table, 151 of 810 such plans, up to 4,498 rows estimated; with the
// IDs, 18 of 1,177, up to 240 (the first batches, on a table still small),
// but still a fifth of the batches of hundreds of outcomes, which a drain
// of 50,000 tasks makes. So the statement runs in a function that disables
// sequential scans (taskwheel_finish, migration 0028): its plan reads the
// primary key at every size of the table, with statistics or without.
//
// On PostgreSQL a batch locks its rows in no particular order. That cannot
// deadlock with the other writers of several tasks at once, which skip
// locked rows instead of waiting for them (Claim, Rescue, Extend); two
// engines' batches share a row only when an expired lease's late outcome
// meets the new attempt's, and should two such meet crosswise, PostgreSQL
// ends one of them and Finish is retried.
func (s *SQLStore) Finish(ctx context.Context, outs []Outcome) ([]bool, error) {
	applied := make([]bool, len(outs))
	seen := make(map[Lease]bool, len(outs))
	var order, waiting []int
	for i, o := range outs {
		if l := o.lease(); !seen[l] {
			seen[l] = true
			if o.WaitReason != "" {
				waiting = append(waiting, i)
			} else {
				order = append(order, i)
			}
		}
	}
	for _, i := range waiting {
		ok, err := s.finishWaiting(ctx, &outs[i])
		if err != nil {
			return nil, fmt.Errorf("tasks: finish tasks: %w", err)
		}
		applied[i] = ok
	}
	for len(order) > 0 {
		var batch []int
		batch, order = finishBatch(outs, order)
		finish := s.finishSQLiteBatch
		if s.dialect == Postgres {
			finish = s.finishPostgresBatch
		}
		if err := finish(ctx, outs, batch, applied); err != nil {
			return nil, fmt.Errorf("tasks: finish tasks: %w", err)
		}
	}
	return applied, nil
}

// finishBatch splits order into the next batch of up to maxFinishRows
// outcomes, of as many tasks, and the rest: SQLite's batch tells which
// outcomes applied by their tasks' IDs, and a task may have two, of two
// claims of it that ran here (one of them stale).
func finishBatch(outs []Outcome, order []int) (batch, rest []int) {
	ids := make(map[string]bool, min(len(order), maxFinishRows))
	for _, i := range order {
		if len(batch) < maxFinishRows && !ids[outs[i].ID] {
			ids[outs[i].ID] = true
			batch = append(batch, i)
		} else {
			rest = append(rest, i)
		}
	}
	return batch, rest
}

func (s *SQLStore) finishSQLiteBatch(ctx context.Context, outs []Outcome, batch []int, applied []bool) error {
	args := make([]any, 0, 1+7*len(batch))
	args = append(args, s.now().UnixMicro())
	byID := make(map[string]int, len(batch))
	for _, i := range batch {
		o := outs[i]
		byID[o.ID] = i
		args = append(args, o.ID, o.Attempt, o.claim, string(o.State), o.Delay.Microseconds(), o.Error, o.EndpointID)
	}
	query := fmt.Sprintf(finishSQLite, strings.Repeat(finishSQLiteRow+", ", len(batch)-1)+finishSQLiteRow)
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	var as []Attempt
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return err
		}
		i := byID[id]
		applied[i] = true
		for _, a := range outs[i].Attempts {
			a.TaskID = id
			as = append(as, a)
		}
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return err
	}
	if err := s.insertAttempts(ctx, tx, as); err != nil {
		return err
	}
	return tx.Commit()
}

func (s *SQLStore) finishPostgresBatch(ctx context.Context, outs []Outcome, batch []int, applied []bool) error {
	var (
		ids, states, errs, endpoints []string
		attemptNos                   []int32
		claims, delays               []int64
		aOutcome, aDuration          []int64
		aNumber, aStatus             []int32
		aEndpoint, aResponse, aError []string
		aStarted                     []time.Time
	)
	for k, i := range batch {
		o := outs[i]
		ids = append(ids, o.ID)
		attemptNos = append(attemptNos, int32(o.Attempt))
		claims = append(claims, o.claim)
		states = append(states, string(o.State))
		delays = append(delays, o.Delay.Microseconds())
		errs = append(errs, s.text(o.Error))
		endpoints = append(endpoints, s.text(o.EndpointID))
		for _, a := range o.Attempts {
			aOutcome = append(aOutcome, int64(k+1))
			aNumber = append(aNumber, int32(a.Number))
			aEndpoint = append(aEndpoint, s.text(a.EndpointID))
			aStarted = append(aStarted, a.StartedAt.UTC().Truncate(time.Microsecond))
			aDuration = append(aDuration, a.Duration.Microseconds())
			aStatus = append(aStatus, int32(a.StatusCode))
			aResponse = append(aResponse, s.text(a.Response))
			aError = append(aError, s.text(a.Error))
		}
	}
	rows, err := s.db.QueryContext(ctx, finishPostgres, ids, attemptNos, claims, states, delays, errs, endpoints,
		aOutcome, aNumber, aEndpoint, aStarted, aDuration, aStatus, aResponse, aError)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var k int
		if err := rows.Scan(&k); err != nil {
			return err
		}
		applied[batch[k-1]] = true
	}
	return rows.Err()
}

// Extend queries. PostgreSQL's extends in one statement the leases, given
// as arrays of IDs and attempts, that are still the caller's and not locked
// by another transaction: it skips locked rows, as Claim does, so that it
// never waits for a Finish, which could wait for it in turn.
// extendHeldPostgres then tells which of the leases it skipped are still
// the caller's.
const (
	extendSQLite = `UPDATE taskwheel_tasks SET lease_expires_at = ?5 + ?3
WHERE id = ?1 AND attempts = ?2 AND (?4 = 0 OR claim_token = ?4) AND state = 'running' AND NOT cancel_requested`
	extendPostgres = `WITH mine AS (
	SELECT t.id FROM taskwheel_tasks AS t
	JOIN unnest($1::text[], $2::int[], $4::bigint[]) AS l(id, attempt, claim)
		ON t.id = l.id AND t.attempts = l.attempt AND (l.claim = 0 OR t.claim_token = l.claim)
	WHERE t.state = CASE WHEN l.id IS NOT NULL THEN 'running' END AND NOT t.cancel_requested
	FOR UPDATE OF t SKIP LOCKED
)
UPDATE taskwheel_tasks AS t SET lease_expires_at = now() + $3 * interval '1 microsecond'
FROM mine WHERE t.id = mine.id
RETURNING t.id`
	extendHeldPostgres = `SELECT t.id FROM taskwheel_tasks AS t
JOIN unnest($1::text[], $2::int[], $3::bigint[]) AS l(id, attempt, claim)
	ON t.id = l.id AND t.attempts = l.attempt AND (l.claim = 0 OR t.claim_token = l.claim)
WHERE t.state = CASE WHEN l.id IS NOT NULL THEN 'running' END AND NOT t.cancel_requested`
)

// Extend implements [Store]. On SQLite it extends all leases in one
// transaction. On PostgreSQL, a lease whose row another transaction holds
// at that moment (the caller's own Finish, most likely) is left as it is
// for this once, and revoked only if it is no longer the caller's.
func (s *SQLStore) Extend(ctx context.Context, leases []Lease, d time.Duration) ([]string, error) {
	if len(leases) == 0 {
		return nil, nil
	}
	extend := s.extendSQLite
	if s.dialect == Postgres {
		extend = s.extendPostgres
	}
	kept, err := extend(ctx, leases, d)
	if err != nil {
		return nil, fmt.Errorf("tasks: extend leases: %w", err)
	}
	var revoked []string
	for _, l := range leases {
		if !kept[l.ID] {
			revoked = append(revoked, l.ID)
		}
	}
	return revoked, nil
}

// extendSQLite extends leases and returns the IDs of those still the
// caller's.
func (s *SQLStore) extendSQLite(ctx context.Context, leases []Lease, d time.Duration) (map[string]bool, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	kept := make(map[string]bool, len(leases))
	for _, l := range leases {
		n, err := exec(ctx, tx, extendSQLite, s.args(l.ID, l.Attempt, d.Microseconds(), l.claim)...)
		if err != nil {
			return nil, err
		}
		kept[l.ID] = n == 1
	}
	return kept, tx.Commit()
}

// extendPostgres extends leases and returns the IDs of those still the
// caller's.
func (s *SQLStore) extendPostgres(ctx context.Context, leases []Lease, d time.Duration) (map[string]bool, error) {
	ids, attempts, claims := make([]string, len(leases)), make([]int32, len(leases)), make([]int64, len(leases))
	for i, l := range leases {
		ids[i], attempts[i], claims[i] = l.ID, int32(l.Attempt), l.claim
	}
	kept, err := queryIDs(ctx, s.db, extendPostgres, s.planned(ids, attempts, d.Microseconds(), claims)...)
	if err != nil || len(kept) == len(leases) {
		return kept, err
	}
	ids, attempts, claims = ids[:0], attempts[:0], claims[:0]
	for _, l := range leases {
		if !kept[l.ID] {
			ids, attempts, claims = append(ids, l.ID), append(attempts, int32(l.Attempt)), append(claims, l.claim)
		}
	}
	held, err := queryIDs(ctx, s.db, extendHeldPostgres, s.planned(ids, attempts, claims)...)
	for id := range held {
		kept[id] = true
	}
	return kept, err
}

// queryIDs runs query, which returns one column of task IDs, and returns
// them as a set.
func queryIDs(ctx context.Context, q queryer, query string, args ...any) (map[string]bool, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	ids := make(map[string]bool)
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids[id] = true
	}
	return ids, rows.Err()
}

// exec runs query and returns how many rows it changed.
func exec(ctx context.Context, e execer, query string, args ...any) (int64, error) {
	res, err := e.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// Rescue queries take the limit and the error to record. A task whose
// cancellation was requested becomes canceled; one with no attempts left,
// failed; any other, retrying and due now. Each rescued attempt is recorded
// in the task's history as rescuedAttempt records it: SQLite's query returns
// the tasks to record, PostgreSQL's records them itself and counts them.
const (
	rescueSQLite = `UPDATE taskwheel_tasks SET
	state = CASE
		WHEN cancel_requested THEN 'canceled'
		WHEN attempts >= max_attempts THEN 'failed'
		ELSE 'retrying' END,
	run_at = CASE WHEN cancel_requested OR attempts >= max_attempts THEN run_at ELSE ?3 END,
	completed_at = CASE WHEN cancel_requested OR attempts >= max_attempts THEN ?3 END,
	last_error = ?2,
	lease_expires_at = NULL, claim_token = NULL,
	updated_at = ?3
WHERE id IN (
	SELECT id FROM taskwheel_tasks
	WHERE state = 'running' AND lease_expires_at <= ?3
	ORDER BY lease_expires_at
	LIMIT ?1)
RETURNING id, attempts`
	rescuePostgres = `WITH rescued AS (
	UPDATE taskwheel_tasks SET
		state = CASE
			WHEN cancel_requested THEN 'canceled'
			WHEN attempts >= max_attempts THEN 'failed'
			ELSE 'retrying' END,
		run_at = CASE WHEN cancel_requested OR attempts >= max_attempts THEN run_at ELSE now() END,
		completed_at = CASE WHEN cancel_requested OR attempts >= max_attempts THEN now() END,
		last_error = $2,
		lease_expires_at = NULL, claim_token = NULL,
		updated_at = now()
	WHERE id IN (
		SELECT id FROM taskwheel_tasks
		WHERE state = 'running' AND lease_expires_at <= now()
		ORDER BY lease_expires_at
		LIMIT $1
		FOR UPDATE SKIP LOCKED)
	RETURNING id, attempts),
swept AS (` + sweepSlotsPostgres + `)
INSERT INTO taskwheel_attempts (task_id, number, started_at, error)
SELECT id, attempts, now(), $2 FROM rescued`
)

// Rescue implements [Store]. It rescues tasks and records their attempts in
// one transaction (on PostgreSQL, in one statement), and sweeps the rows
// of endpoints' slots and queues that no attempt holds any more (see
// sweepSlotsSQLite).
func (s *SQLStore) Rescue(ctx context.Context, limit int) (int, error) {
	if limit <= 0 {
		return 0, nil
	}
	var n int
	var err error
	if s.dialect == Postgres {
		var rows int64
		rows, err = exec(ctx, s.db, rescuePostgres, limit, errLeaseExpired)
		n = int(rows)
	} else {
		n, err = s.rescueSQLite(ctx, limit)
	}
	if err != nil {
		return 0, fmt.Errorf("tasks: rescue tasks: %w", err)
	}
	return n, nil
}

func (s *SQLStore) rescueSQLite(ctx context.Context, limit int) (int, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	now := time.UnixMicro(s.now().UnixMicro()).UTC()
	rows, err := tx.QueryContext(ctx, rescueSQLite, limit, errLeaseExpired, now.UnixMicro())
	if err != nil {
		return 0, err
	}
	var as []Attempt
	for rows.Next() {
		var t Task
		if err := rows.Scan(&t.ID, &t.Attempts); err != nil {
			rows.Close()
			return 0, err
		}
		as = append(as, rescuedAttempt(&t, now))
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return 0, err
	}
	if err := s.insertAttempts(ctx, tx, as); err != nil {
		return 0, err
	}
	if _, err := tx.ExecContext(ctx, sweepSlotsSQLite); err != nil {
		return 0, err
	}
	return len(as), tx.Commit()
}

// Upcoming queries take the window (microseconds) and the limit, and return
// the clock with each task due in the window, or alone if none is.
const (
	upcomingSQLite = `SELECT clock.now, due.id, due.run_at
FROM (SELECT ?3 AS now) AS clock
LEFT JOIN (
	SELECT id, run_at FROM taskwheel_tasks
	WHERE state IN ('scheduled', 'retrying') AND run_at <= ?3 + ?1
	ORDER BY run_at, id
	LIMIT ?2) AS due ON true
ORDER BY due.run_at, due.id`
	upcomingPostgres = `SELECT clock.now, due.id, due.run_at
FROM (SELECT now() AS now) AS clock
LEFT JOIN LATERAL (
	SELECT id, run_at FROM taskwheel_tasks
	WHERE state IN ('scheduled', 'retrying') AND run_at <= clock.now + $1 * interval '1 microsecond'
	ORDER BY run_at, id
	LIMIT $2) AS due ON true
ORDER BY due.run_at, due.id`
)

// Upcoming implements [Store].
func (s *SQLStore) Upcoming(ctx context.Context, within time.Duration, limit int) (time.Time, []Due, error) {
	var rows []struct {
		Now   sqlTime        `db:"now"`
		ID    sql.NullString `db:"id"`
		RunAt sqlTime        `db:"run_at"`
	}
	err := sqlx.SelectContext(ctx, s.read, &rows, s.pick(upcomingSQLite, upcomingPostgres),
		s.args(within.Microseconds(), max(limit, 0))...)
	if err == nil && len(rows) == 0 {
		err = sql.ErrNoRows // never: the query returns the clock at least
	}
	if err != nil {
		return time.Time{}, nil, fmt.Errorf("tasks: list upcoming tasks: %w", err)
	}
	var due []Due
	for _, r := range rows {
		if r.ID.Valid {
			due = append(due, Due{ID: r.ID.String, RunAt: r.RunAt.t})
		}
	}
	// Tasks waiting for their key's capacity: a claim now starts those
	// that have it, should no wake-up have reached an engine (a limit
	// changed by an SQLite process, a lost notification).
	if len(due) < limit {
		var waiting bool
		if err := s.read.QueryRowContext(ctx, hasWaiting).Scan(&waiting); err != nil {
			return time.Time{}, nil, fmt.Errorf("tasks: list upcoming tasks: %w", err)
		}
		if waiting {
			due = append(due, Due{ID: flowWakeID, RunAt: rows[0].Now.t})
		}
	}
	return rows[0].Now.t, due, nil
}
