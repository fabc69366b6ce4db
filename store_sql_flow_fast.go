package tasks

import (
	"context"
	"database/sql"
	"encoding/json"
	"time"
)

// The fast claim under limits. claimFlow's transaction is
// five round trips (begin; the due tasks with their limits, locked; the
// running tasks of those keys; the claim; commit) where a claim without
// limits is one statement: a concurrency limit that never binds (above
// the workers) made a drain two to three times slower. So a claim under
// limits first tries one statement that claims the due tasks, as a claim
// without limits does, when no limit holds any of them back: it locks the
// limits of their keys, and claims nothing when one of them is paused, has
// a rate (whose bucket only claimFlow keeps), or would reach its
// concurrency with them, or when a key that may have waiting tasks has
// capacity for one (claimFlow starts those first). Then claimFlow claims:
// its transaction parks what waits, starts waiting tasks, and takes tokens.
// Whether keys have waiting tasks is read twice: the limits of the due
// tasks' keys as locked (a claim that held one may have parked tasks of its
// key while this one waited for it, after the statement began), and every
// other limit as of the statement's start.
//
// A key whose waiting tasks have no capacity (a token not yet due, its
// concurrency reached, paused) does not turn claims of other keys away
// from this statement: 100,000 tasks waiting on a key of one a second made
// every claim of a drain of other tasks claimFlow's five round trips, at
// 0.77× the drain without them (tasksbench W11 isolation). Its capacity is
// judged as claimFlow judges it, from the bucket as stored (refilled to
// now(), rounded in favour of claimFlow) and the key's running tasks,
// without locking the limit: a key that gains capacity while this
// statement claims others' tasks has its waiting tasks started by the next
// claim, which claimFlow makes (the engine claims again when the token is
// due, and when a task of a key at its concurrency ends).
//
// The running tasks are counted by taskwheel_running (migration 0023),
// which reads them afresh after the statement has locked the key's limit,
// and so sees those that the claim that held it before started (the
// statement's own reads date from before the wait). It reads them through
// taskwheel_tasks_running (migration 0025), the key's running tasks only:
// a count that read every task of the app made each claim cost more the
// more tasks the app had run.
//
// A claim that this statement made leaves the store claiming with
// claimFlow directly (limited), so that a claim under limits is one round
// trip, not three (the claim without limits and the check for limits,
// which claim nothing, then this). So it claims nothing when no limit is
// left at all: claimFlow then finds that none is, and the store claims
// without limits again. (It claimed the due tasks, finding no limit of
// their keys, and a store that once had a limit stayed on claimFlow for as
// long as every claim found a task.)
//
// A claim that fell back to claimFlow, or that claimFlow found held back,
// skips the fast statement until claimFlow finds a claim it could have made
// (flowSlow), so that keys at their limits do not pay for both.
//
// On SQLite, which has one writer, the claim is made first and the limits
// checked after, in one transaction: the claim is the one that a claim
// without limits makes; then claimFlow's reads of the limits and of the
// running tasks by key, and when a limit holds back one of the tasks it
// took, or waiting tasks could start, it is rolled back and claimFlow's
// transaction runs. Its statements are calls into the process, not round
// trips, but claimFlow's three reads before its claim (the due tasks,
// their limits, the running tasks) cost a drain under a limit above the
// workers a tenth of its speed; one statement of the PostgreSQL shape
// measured no faster there, and a check in one statement counted each
// key's running tasks by reading them all (BENCHMARKS.md, "A limit that
// holds nothing back", "The fast claim on SQLite").
//
// Like the claim without limits, it scans the due index from ($3, $4), and
// returns with each task how many of those it took its snapshot saw as
// locked (see queryClaim); then the fewest free slots it left a key of a
// concurrency limit with (room, NULL if none has one), counted once, with
// its check: the engine claims none ahead while that is few (see
// scheduler.capped), as after claimFlow. (Without it, a task claimed ahead
// of an engine's busy worker held a key's last slot, which another
// engine's idle worker could have used.)
const flowFastPostgres = `WITH due AS MATERIALIZED (
	SELECT id, tid, app_id, flow_key AS key FROM taskwheel_due($1, $3, $4)
), need AS (
	SELECT app_id, key, count(*) AS n FROM due GROUP BY app_id, key
), lim AS MATERIALIZED (
	SELECT app_id, flow_key, rate, concurrency, paused, waiting FROM taskwheel_limits
	WHERE (app_id, flow_key) IN (SELECT app_id, key FROM need)
	ORDER BY app_id, flow_key FOR UPDATE
), room AS MATERIALIZED (
	SELECT lim.paused OR lim.rate > 0 OR lim.waiting AS held,
		CASE WHEN lim.concurrency > 0 AND NOT (lim.paused OR lim.rate > 0 OR lim.waiting)
			THEN lim.concurrency - need.n - taskwheel_running(lim.app_id, lim.flow_key) END AS free
	FROM lim JOIN need ON need.app_id = lim.app_id AND need.key = lim.flow_key
)
UPDATE taskwheel_tasks
SET state = 'running', attempts = attempts + 1,
	lease_expires_at = now() + $2 * interval '1 microsecond', updated_at = now(),
	wait_reason = NULL, wait_endpoint = NULL, ` + claimTokenPostgres + `
WHERE id IN (SELECT id FROM due) AND EXISTS (SELECT 1 FROM taskwheel_limits) AND ` + claimCommitsAsync + ` AND NOT EXISTS (
	SELECT 1 FROM room WHERE held OR free <= 0
	UNION ALL
	SELECT 1 FROM taskwheel_limits AS w WHERE w.waiting AND NOT w.paused
		AND (w.rate = 0 OR w.tokens + w.rate * GREATEST(0, extract(epoch FROM now() - w.tokens_at)::float8) >= 1 - 1e-9)
		AND (w.concurrency = 0 OR taskwheel_running(w.app_id, w.flow_key) < w.concurrency))
RETURNING ` + taskColumns + `, ` + seenColumn + `, (SELECT min(free) FROM room) AS room`

// claimFlowFast claims up to limit due tasks if no limit holds any of them
// back; it claims nothing if one does, or if none is due. On PostgreSQL
// it is one statement, which checks the limits of the keys of the tasks it
// claims with them: its NOT EXISTS is false only once every row of its
// join, one per limit of those keys, was read, each locked before its
// check. On SQLite it claims, then reads the limits of its tasks' keys and
// of keys with waiting tasks, and their running tasks, in one transaction,
// and rolls back if one holds a task back or waiting tasks could start.
func (s *SQLStore) claimFlowFast(ctx context.Context, q claimDB, limit int, lease time.Duration) ([]taskRow, error) {
	if s.dialect == Postgres {
		var room sql.NullInt64
		rs, err := queryClaim(ctx, q, flowFastPostgres, limit, lease, &room)
		if len(rs) > 0 && room.Valid {
			flowClaimOf(ctx).left(int(room.Int64))
		}
		return rs, err
	}
	tx, err := q.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	args := s.args(limit, lease.Microseconds())
	rs, err := queryRows(ctx, tx, flowFastClaimSQLite, args...)
	if err != nil || len(rs) == 0 {
		return nil, err
	}
	seen := map[limitKey]bool{}
	var pairs [][2]string
	for i := range rs {
		k := limitKey{rs[i].AppID, flowKey(rs[i].FlowKey.String, rs[i].EventType)}
		if !seen[k] {
			seen[k] = true
			pairs = append(pairs, [2]string{k.app, k.key})
		}
	}
	b, _ := json.Marshal(pairs) // strings always encode
	// The limits of those keys, and of keys that may have waiting tasks,
	// with their running tasks (the claim's among them), read as
	// claimFlow reads them: each statement costs as many rows as limits
	// it needs and tasks that run, however many keys there are.
	ls, now, err := s.flowLimits(ctx, tx, flowLockSQLite, string(b), true, args[len(args)-1])
	if err != nil {
		return nil, err
	}
	if len(ls) == 0 {
		var limited bool
		if err := tx.QueryRowContext(ctx, hasLimits).Scan(&limited); err != nil || !limited {
			// No limit is left: claimFlow finds that none is, and the
			// store claims without limits again (rolled back).
			return nil, err
		}
	}
	byKey := make(map[limitKey]*flowState, len(ls))
	for _, l := range ls {
		if l.Concurrency > 0 {
			byKey[limitKey{l.AppID, l.Key}] = l
		}
	}
	if len(byKey) > 0 {
		if err := s.countRunning(ctx, tx, byKey); err != nil {
			return nil, err
		}
	}
	room := -1 // the fewest free slots left a key of the claim's; -1: none has a concurrency limit
	for _, l := range ls {
		l.refill(now)
		if seen[limitKey{l.AppID, l.Key}] {
			// A key of the claim's tasks: held back, or left to claimFlow,
			// if paused, rated (only claimFlow keeps the bucket), with tasks
			// waiting, or at its concurrency with them.
			if l.Paused || l.Rate > 0 || l.waiting || l.Concurrency > 0 && l.Running >= l.Concurrency {
				return nil, nil // rolled back
			}
			if free := l.Concurrency - l.Running; l.Concurrency > 0 && (room < 0 || free < room) {
				room = free
			}
		} else if n, _ := l.capacity(1); n > 0 {
			return nil, nil // waiting tasks could start: claimFlow starts them first
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	if room >= 0 {
		// The engine claims none ahead while that is few (a task
		// claimed ahead holds a slot).
		flowClaimOf(ctx).left(room)
	}
	return rs, nil
}
