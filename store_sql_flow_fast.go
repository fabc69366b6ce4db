package tasks

import (
	"context"
	"time"
)

// The fast claim under limits, on PostgreSQL. claimFlow's transaction is
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
// SQLite keeps claimFlow: its statements are calls into the process, not
// round trips, and one statement of this shape measured no faster there
// (BENCHMARKS.md, "A limit that holds nothing back").
//
// Like the claim without limits, it scans the due index from ($3, $4), and
// returns with each task how many of those it took its snapshot saw as
// locked (see queryClaim).
const flowFastPostgres = `WITH due AS MATERIALIZED (
	SELECT id, tid, app_id, flow_key AS key FROM taskwheel_due($1, $3, $4)
), need AS (
	SELECT app_id, key, count(*) AS n FROM due GROUP BY app_id, key
), lim AS MATERIALIZED (
	SELECT app_id, flow_key, rate, concurrency, paused, waiting FROM taskwheel_limits
	WHERE (app_id, flow_key) IN (SELECT app_id, key FROM need)
	ORDER BY app_id, flow_key FOR UPDATE
)
UPDATE taskwheel_tasks
SET state = 'running', attempts = attempts + 1,
	lease_expires_at = now() + $2 * interval '1 microsecond', updated_at = now(),
	wait_reason = NULL, wait_endpoint = NULL, ` + claimTokenPostgres + `
WHERE id IN (SELECT id FROM due) AND EXISTS (SELECT 1 FROM taskwheel_limits) AND ` + claimCommitsAsync + ` AND NOT EXISTS (
	SELECT 1 FROM lim JOIN need ON need.app_id = lim.app_id AND need.key = lim.flow_key
	WHERE lim.paused OR lim.rate > 0 OR lim.waiting
		OR lim.concurrency > 0 AND need.n + taskwheel_running(lim.app_id, lim.flow_key) >= lim.concurrency
	UNION ALL
	SELECT 1 FROM taskwheel_limits AS w WHERE w.waiting AND NOT w.paused
		AND (w.rate = 0 OR w.tokens + w.rate * GREATEST(0, extract(epoch FROM now() - w.tokens_at)::float8) >= 1 - 1e-9)
		AND (w.concurrency = 0 OR taskwheel_running(w.app_id, w.flow_key) < w.concurrency))
RETURNING ` + taskColumns + `, ` + seenColumn

// claimFlowFast claims, on PostgreSQL, up to limit due tasks in one
// statement if no limit holds any of them back; it claims nothing if one
// does, or if none is due. The limits of the keys of the tasks it claims
// were checked with them: its NOT EXISTS is false only once every row of
// its join, one per limit of those keys, was read, each locked before its
// check.
func (s *SQLStore) claimFlowFast(ctx context.Context, q queryer, limit int, lease time.Duration) ([]taskRow, error) {
	return queryClaim(ctx, q, flowFastPostgres, limit, lease)
}
