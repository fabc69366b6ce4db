package tasks

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"time"
)

// Claims under limits on SQL stores (claimFlow). A claim reads the due
// tasks first, then locks (on PostgreSQL; SQLite has one writer) only the
// limits it needs: those of the keys of its due tasks, and those whose
// waiting column says tasks may wait for them (an index finds them). So a
// claim costs the same however many limits are idle, and claims serialise
// only on the limits of keys they both meet. Locked, a limit's running
// tasks are counted, its waiting tasks started (one statement for every
// key on PostgreSQL), its due tasks started or parked, and its token
// bucket written back only when tokens were taken.
//
// The locks are taken in key order by a claim's first lock statement,
// which waits for them; the later rounds, which read more due tasks to
// park them, skip limits that another claim holds (and leave that key's
// tasks for the next claim), so that two claims never wait for each other
// crosswise.
//
// Under a backlog, the due tasks are read from the apps that have them in
// turn, as claimFair does without limits (store_sql_fair.go).

// Queries of claimFlow: the due tasks with their keys (all, or from each
// of several apps); the limits of keys given as a list, with those that
// may have waiting tasks, locked on PostgreSQL, with the store's clock;
// the waiting tasks of keys (a key's on SQLite; on PostgreSQL, n[i] of
// key i's as rows of (id, i)); parking; claiming by ID; and writing back
// the limits a claim changed: tokens, and waiting set (1) or rechecked (2).
//
// On PostgreSQL the due tasks are read by taskwheel_due (migration 0026),
// from the start of the due index, in its order (WITH ORDINALITY keeps
// it), as the claims without limits read them: planned from the table's
// size alone, a read of its own sorted every due task (a bitmap scan and
// an external sort, 75 ms a claim among 47,000 due tasks), and a
// concurrency limit that bound now and then cost a drain 40% of its speed.
const (
	flowDueSQLite = `SELECT id, app_id, COALESCE(flow_key, event_type) FROM taskwheel_tasks
WHERE state IN ('scheduled', 'retrying') AND run_at <= ?2
ORDER BY run_at, id LIMIT ?1`
	flowDuePostgres = `SELECT id, app_id, key FROM taskwheel_due($1, '-infinity', '')
	WITH ORDINALITY AS d(id, tid, app_id, key, i)
ORDER BY i`
	flowDueAppSQLite = `SELECT id, app_id, COALESCE(flow_key, event_type) FROM taskwheel_tasks
WHERE app_id = ?3 AND state IN ('scheduled', 'retrying') AND run_at <= ?2
ORDER BY run_at, id LIMIT ?1`
	flowDueAppsPostgres = `SELECT d.id, d.app_id, d.key FROM unnest($2::text[]) AS a(app_id)
CROSS JOIN LATERAL (
	SELECT t.id, t.app_id, COALESCE(t.flow_key, t.event_type) AS key FROM taskwheel_tasks AS t
	WHERE t.app_id = a.app_id AND t.state IN ('scheduled', 'retrying') AND t.run_at <= now()
	ORDER BY t.run_at, t.id LIMIT $1 FOR UPDATE SKIP LOCKED) AS d`
	flowLockSQLite = `SELECT app_id, flow_key, rate, burst, concurrency, paused, tokens, tokens_at, updated_at, waiting, ?3
FROM taskwheel_limits WHERE (app_id, flow_key) IN (
	SELECT app_id, flow_key FROM taskwheel_limits WHERE waiting AND ?2
	UNION SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?1))
ORDER BY app_id, flow_key`
	flowLockPostgres = `SELECT app_id, flow_key, rate, burst, concurrency, paused, tokens, tokens_at, updated_at, waiting, now()
FROM taskwheel_limits WHERE (app_id, flow_key) IN (
	SELECT app_id, flow_key FROM taskwheel_limits WHERE waiting AND $3
	UNION SELECT * FROM unnest($1::text[], $2::text[]))
ORDER BY app_id, flow_key FOR UPDATE`
	flowLockMorePostgres = flowLockPostgres + ` SKIP LOCKED`
	// flowDueLockPostgres is flowDuePostgres, then flowLockPostgres of
	// their keys, in one statement: the limits (kind 0), then the due
	// tasks (kind 1, with only i, id, app and key), oldest first.
	flowDueLockPostgres = `WITH due AS (
	SELECT id, app_id, key, i FROM taskwheel_due($1, '-infinity', '')
		WITH ORDINALITY AS d(id, tid, app_id, key, i)
), lim AS (
	SELECT app_id, flow_key, rate, burst, concurrency, paused, tokens, tokens_at, updated_at, waiting
	FROM taskwheel_limits WHERE (app_id, flow_key) IN (
		SELECT app_id, flow_key FROM taskwheel_limits WHERE waiting
		UNION SELECT app_id, key FROM due)
	ORDER BY app_id, flow_key FOR UPDATE
)
SELECT 0 AS kind, 0::bigint AS i, '' AS id, app_id, flow_key, rate, burst, concurrency, paused, tokens, tokens_at, updated_at,
	waiting, now() AS now FROM lim
UNION ALL
SELECT 1, i, id, app_id, key, 0, 0, 0, false, 0, now(), now(), false, now() FROM due
ORDER BY kind, i, app_id, flow_key`
	flowWaitingSQLite = `SELECT id FROM taskwheel_tasks
WHERE app_id = ?1 AND wait_key = ?2 ORDER BY parked_at, id LIMIT ?3`
	flowWaitingPostgres = `SELECT w.id, k.i FROM unnest($1::text[], $2::text[], $3::int[]) WITH ORDINALITY AS k(app_id, key, n, i)
CROSS JOIN LATERAL (
	SELECT t.id FROM taskwheel_tasks AS t WHERE t.app_id = k.app_id AND t.wait_key = k.key
	ORDER BY t.parked_at, t.id LIMIT k.n FOR UPDATE SKIP LOCKED) AS w`
	flowParkSQLite = `UPDATE taskwheel_tasks
SET wait_key = ?1, wait_reason = ?2, parked_at = run_at, run_at = ?3
WHERE id IN (SELECT value FROM json_each(?4))`
	flowParkPostgres = `UPDATE taskwheel_tasks AS t
SET wait_key = p.key, wait_reason = p.why, parked_at = t.run_at, run_at = $4
FROM unnest($1::text[], $2::text[], $3::text[]) AS p(id, key, why)
WHERE t.id = p.id`
	flowClaimSQLite = `UPDATE taskwheel_tasks
SET state = 'running', attempts = attempts + 1, lease_expires_at = ?3 + ?2, updated_at = ?3,
	run_at = COALESCE(parked_at, run_at), wait_key = NULL, parked_at = NULL, wait_reason = NULL, wait_endpoint = NULL,
	` + claimTokenSQLite + `
WHERE id IN (SELECT value FROM json_each(?1)) AND state IN ('scheduled', 'retrying')
RETURNING ` + taskColumns
	flowClaimPostgres = `UPDATE taskwheel_tasks
SET state = 'running', attempts = attempts + 1,
	lease_expires_at = now() + $2 * interval '1 microsecond', updated_at = now(),
	run_at = COALESCE(parked_at, run_at), wait_key = NULL, parked_at = NULL, wait_reason = NULL, wait_endpoint = NULL,
	` + claimTokenPostgres + `
WHERE id = ANY($1::text[]) AND state IN ('scheduled', 'retrying') AND ` + claimCommitsAsync + `
RETURNING ` + taskColumns
	flowWriteSQLite = `UPDATE taskwheel_limits SET tokens = ?3, tokens_at = ?4,
	waiting = CASE ?5 WHEN 1 THEN 1 WHEN 2 THEN EXISTS (SELECT 1 FROM taskwheel_tasks AS t
		WHERE t.app_id = taskwheel_limits.app_id AND t.wait_key = taskwheel_limits.flow_key) ELSE waiting END
WHERE app_id = ?1 AND flow_key = ?2`
	flowWritePostgres = `UPDATE taskwheel_limits AS l SET tokens = u.tokens, tokens_at = u.tokens_at,
	waiting = CASE u.w WHEN 1 THEN true WHEN 2 THEN EXISTS (SELECT 1 FROM taskwheel_tasks AS t
		WHERE t.app_id = l.app_id AND t.wait_key = l.flow_key) ELSE l.waiting END
FROM unnest($1::text[], $2::text[], $3::float8[], $4::timestamptz[], $5::int[]) AS u(app_id, key, tokens, tokens_at, w)
WHERE l.app_id = u.app_id AND l.flow_key = u.key`
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
	queryRower
	BeginTx(ctx context.Context, opts *sql.TxOptions) (*sql.Tx, error)
}

// queryRower is a *sql.DB, *sql.Tx or *sql.Conn.
type queryRower interface {
	queryer
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
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

// dueTask is a due task as claimFlow reads it.
type dueTask struct {
	id  string
	key limitKey
}

// flowLocked is a limit that a claim holds, with what the claim did to it.
type flowLocked struct {
	*flowState
	counted bool // Running is counted
	due     bool // the claim met due tasks of its key
	took    bool // tokens were taken
	write   int  // waiting: 0 as it is, 1 set, 2 rechecked
}

// flowParkKey is a key that a claim parks tasks of, and why.
type flowParkKey struct {
	l   *flowLocked
	why string
}

// flowRun is the state of one claimFlow.
type flowRun struct {
	s     *SQLStore
	tx    *sql.Tx
	now   time.Time
	byKey map[limitKey]*flowLocked // nil: asked for, not held
	free  map[limitKey]bool        // asked for and unlimited
	order []*flowLocked            // byKey's held limits, as locked
	read  int                      // the due tasks the last read returned
	claim []string
	seen  map[string]bool // the IDs claimed or parked
	held  []heldBy
}

// claimFlow is Claim when limits exist. q is the store's database, or on
// SQLite the connection the claim holds.
func (s *SQLStore) claimFlow(ctx context.Context, q claimDB, limit int, lease time.Duration) ([]*Task, error) {
	fc := flowClaimOf(ctx)
	var apps []string
	if s.fair.backlog.Load() {
		var err error
		if apps, err = s.fairApps(ctx, q); err != nil {
			return nil, err
		}
	}
	if len(apps) < 2 && !s.flowSlow.Load() {
		rs, err := s.claimFlowFast(ctx, q, limit, lease)
		if err != nil {
			return nil, err
		}
		if len(rs) > 0 {
			// Limits existed when the claim began (Claim called
			// claimFlow): the next claim comes here at once, without
			// the claim without limits and the check for limits
			// first, two round trips that claim nothing. One that
			// claims nothing finds out below whether limits are left.
			s.limited.Store(true)
			s.fair.backlog.Store(len(rs) == limit)
			return claimed(rs), nil
		}
	}
	tx, err := q.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	r := &flowRun{s: s, tx: tx, byKey: map[limitKey]*flowLocked{}, free: map[limitKey]bool{}, seen: map[string]bool{}}
	var due []dueTask
	if s.dialect == Postgres && len(apps) < 2 {
		due, err = r.dueAndLock(ctx, limit)
	} else if due, err = r.due(ctx, limit, apps); err == nil {
		err = r.lock(ctx, due, true)
	}
	if err != nil {
		return nil, err
	}
	if len(r.order) == 0 {
		// No limit applies to this claim: does any exist?
		var limited bool
		if err := tx.QueryRowContext(ctx, hasLimits).Scan(&limited); err != nil {
			return nil, err
		}
		s.limited.Store(limited)
		if !limited {
			return nil, nil // none: the caller claims again, fast
		}
	} else {
		s.limited.Store(true)
	}
	if err := r.countRunning(ctx); err != nil {
		return nil, err
	}
	// The waiting tasks first: they were due before any due now.
	if err := r.startWaiting(ctx, limit); err != nil {
		return nil, err
	}
	parkedAll := 0
	for round, batch := 0, limit; ; round++ {
		parked, err := r.take(ctx, due, limit)
		if err != nil {
			return nil, err
		}
		parkedAll += parked
		if r.read < batch || parked == 0 || round+1 == flowRounds {
			break // nothing more is due, or what was due is claimed
		}
		// After a round that parked tasks, read more to park them faster.
		batch = max(limit, flowBatch)
		if due, err = r.due(ctx, batch, nil); err != nil {
			return nil, err
		}
		if err := r.lock(ctx, due, false); err != nil {
			return nil, err
		}
		if err := r.countRunning(ctx); err != nil {
			return nil, err
		}
	}
	for _, l := range r.order {
		if !l.Paused && (l.Concurrency == 0 || l.Running < l.Concurrency) {
			fc.wake(l.nextToken())
		}
	}
	fc.hold(r.held)
	var rs []taskRow
	if len(r.claim) > 0 {
		rs, err = queryRows(ctx, tx, s.pick(flowClaimSQLite, flowClaimPostgres), s.planned(s.args(s.idList(r.claim), lease.Microseconds())...)...)
		if err != nil {
			return nil, err
		}
	}
	if err := r.writeLimits(ctx); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	s.fair.backlog.Store(len(rs) == limit)
	s.flowSlow.Store(parkedAll > 0 || r.holdsBack())
	return claimed(rs), nil
}

// holdsBack reports whether a limit the claim holds held back, or after the
// claim would hold back, a task of its key that the claim met due, or
// parked tasks, or may have waiting tasks and has capacity for one: then
// claimFlowFast would claim nothing, and the next claim is claimFlow's
// without it. A limit that the claim holds only because tasks may wait for
// it, and that has no capacity left, holds back none of the tasks that
// claimFlowFast claims (the due tasks of other keys).
func (r *flowRun) holdsBack() bool {
	for _, l := range r.order {
		switch {
		case l.write == 1:
			return true
		case l.due && (l.Paused || l.Rate > 0 || l.Concurrency > 0 && l.Running >= l.Concurrency):
			return true
		case l.waiting:
			if n, _ := l.capacity(1); n > 0 {
				return true
			}
		}
	}
	return false
}

// due reads up to n due tasks, oldest first; from apps, if two or more,
// up to their share each, in turn.
func (r *flowRun) due(ctx context.Context, n int, apps []string) ([]dueTask, error) {
	s := r.s
	if len(apps) < 2 {
		if s.dialect == Postgres {
			return r.readDue(ctx, flowDuePostgres, n)
		}
		return r.readDue(ctx, flowDueSQLite, n, s.now().UnixMicro())
	}
	share := (n + len(apps) - 1) / len(apps)
	var byApp [][]dueTask
	read := 0
	if s.dialect == Postgres {
		ts, err := r.readDue(ctx, flowDueAppsPostgres, s.planned(share, apps)...)
		if err != nil {
			return nil, err
		}
		read = r.read
		at := map[string]int{}
		for _, t := range ts {
			i, ok := at[t.key.app]
			if !ok {
				i = len(byApp)
				at[t.key.app] = i
				byApp = append(byApp, nil)
			}
			byApp[i] = append(byApp[i], t)
		}
	} else {
		now := s.now().UnixMicro()
		for _, app := range apps {
			ts, err := r.readDue(ctx, flowDueAppSQLite, share, now, app)
			if err != nil {
				return nil, err
			}
			read += r.read
			byApp = append(byApp, ts)
		}
	}
	// In turn: each app's first, then each one's second, and so on.
	var out []dueTask
	for i := 0; ; i++ {
		more := false
		for _, ts := range byApp {
			if i < len(ts) {
				out = append(out, ts[i])
				more = true
			}
		}
		if !more {
			break
		}
	}
	r.read = min(read, n)
	return out, nil
}

// readDue runs query, which returns due tasks, and returns those that the
// claim has not met yet.
func (r *flowRun) readDue(ctx context.Context, query string, args ...any) ([]dueTask, error) {
	rows, err := r.tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []dueTask
	r.read = 0
	for rows.Next() {
		var t dueTask
		if err := rows.Scan(&t.id, &t.key.app, &t.key.key); err != nil {
			return nil, err
		}
		r.read++
		if !r.seen[t.id] {
			out = append(out, t)
		}
	}
	return out, rows.Err()
}

// lock locks the limits of the keys of due that the claim has not asked
// for yet, and if first those that may have waiting tasks. The first lock
// waits for limits that other claims hold; a later one skips them, and
// leaves their tasks alone.
func (r *flowRun) lock(ctx context.Context, due []dueTask, first bool) error {
	s := r.s
	asked := r.ask(due)
	if len(asked) == 0 && !first {
		return nil
	}
	var (
		ls  []*flowState
		now time.Time
		err error
	)
	if s.dialect == Postgres {
		apps, keys := make([]string, len(asked)), make([]string, len(asked))
		for i, k := range asked {
			apps[i], keys[i] = k.app, k.key
		}
		query := flowLockPostgres
		if !first {
			query = flowLockMorePostgres
		}
		ls, now, err = s.flowLimits(ctx, r.tx, query, s.planned(apps, keys, first)...)
	} else {
		pairs := make([][2]string, len(asked)) // [], not null, in JSON
		for i, k := range asked {
			pairs[i] = [2]string{k.app, k.key}
		}
		b, _ := json.Marshal(pairs) // strings always encode
		ls, now, err = s.flowLimits(ctx, r.tx, flowLockSQLite, string(b), first, s.now().UnixMicro())
	}
	if err != nil {
		return err
	}
	r.hold(ls, now, asked, first)
	return nil
}

// ask returns the keys of due that the claim has not asked for yet, and
// notes them asked for.
func (r *flowRun) ask(due []dueTask) []limitKey {
	var asked []limitKey
	for _, t := range due {
		if _, ok := r.byKey[t.key]; !ok {
			r.byKey[t.key] = nil
			asked = append(asked, t.key)
		}
	}
	return asked
}

// hold records the limits ls that a lock returned at now, for the keys
// asked and (if first) those that may have waiting tasks.
func (r *flowRun) hold(ls []*flowState, now time.Time, asked []limitKey, first bool) {
	if first {
		r.now = now
	}
	for _, l := range ls {
		l.refill(r.now)
		fl := &flowLocked{flowState: l}
		r.byKey[limitKey{l.AppID, l.Key}] = fl
		r.order = append(r.order, fl)
	}
	if first {
		// The first lock waited for every limit it met: a key it did not
		// return has none.
		for _, k := range asked {
			if r.byKey[k] == nil {
				r.free[k] = true
			}
		}
	}
}

// dueAndLock is due and the first lock in one statement, on PostgreSQL.
func (r *flowRun) dueAndLock(ctx context.Context, n int) ([]dueTask, error) {
	rows, err := r.tx.QueryContext(ctx, flowDueLockPostgres, n)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var (
		due []dueTask
		ls  []*flowState
		now sqlTime
	)
	for rows.Next() {
		var (
			kind, i           int64
			id                string
			l                 flowState
			tokensAt, updated sqlTime
		)
		if err := rows.Scan(&kind, &i, &id, &l.AppID, &l.Key, &l.Rate, &l.Burst, &l.Concurrency, &l.Paused,
			&l.tokens, &tokensAt, &updated, &l.waiting, &now); err != nil {
			return nil, err
		}
		if kind == 1 {
			due = append(due, dueTask{id, limitKey{l.AppID, l.Key}})
			continue
		}
		l.tokensAt, l.UpdatedAt = tokensAt.t, updated.t
		ls = append(ls, &l)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if !now.valid {
		now = sqlTime{time.UnixMicro(r.s.now().UnixMicro()).UTC(), true}
	}
	r.read = len(due)
	// The statement locked the limits of every key of due, after reading
	// them: ask for them, then hold what it returned.
	r.hold(ls, now.t, r.ask(due), true)
	return due, nil
}

// countRunning sets the Running count of the limits the claim holds that
// have a concurrency limit and were not counted yet.
func (r *flowRun) countRunning(ctx context.Context) error {
	byKey := map[limitKey]*flowState{}
	for _, l := range r.order {
		if l.Concurrency > 0 && !l.counted {
			l.counted = true
			byKey[limitKey{l.AppID, l.Key}] = l.flowState
		}
	}
	if len(byKey) == 0 {
		return nil
	}
	return r.s.countRunning(ctx, r.tx, byKey)
}

// started records that the claim starts task id under l (nil: no limit).
func (r *flowRun) started(id string, l *flowLocked) {
	r.claim = append(r.claim, id)
	r.seen[id] = true
	if l == nil {
		return
	}
	l.take(1)
	if l.Rate > 0 {
		l.took = true
	}
	if l.Concurrency > 0 {
		r.held = append(r.held, heldBy{id, l.flowState})
	}
}

// startWaiting starts the waiting tasks of the keys that have capacity, up
// to limit in all. A key that had fewer waiting than it could start has
// its waiting column rechecked.
func (r *flowRun) startWaiting(ctx context.Context, limit int) error {
	s := r.s
	var (
		ls     []*flowLocked
		ns     []int32
		as, ks []string
	)
	left := limit
	for _, l := range r.order {
		if !l.waiting || left == 0 {
			continue
		}
		if n, _ := l.capacity(left); n > 0 {
			ls, ns = append(ls, l), append(ns, int32(n))
			as, ks = append(as, l.AppID), append(ks, l.Key)
			left -= n
		}
	}
	if len(ls) == 0 {
		return nil
	}
	got := make([]int, len(ls))
	add := func(i int, id string) {
		r.started(id, ls[i])
		got[i]++
	}
	if s.dialect == Postgres {
		rows, err := r.tx.QueryContext(ctx, flowWaitingPostgres, s.planned(as, ks, ns)...)
		if err != nil {
			return err
		}
		for rows.Next() {
			var (
				id string
				i  int
			)
			if err := rows.Scan(&id, &i); err != nil {
				rows.Close()
				return err
			}
			add(i-1, id)
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return err
		}
	} else {
		for i, l := range ls {
			ids, err := queryStrings(ctx, r.tx, flowWaitingSQLite, l.AppID, l.Key, ns[i])
			if err != nil {
				return err
			}
			for _, id := range ids {
				add(i, id)
			}
		}
	}
	for i, l := range ls {
		if got[i] < int(ns[i]) {
			l.write = 2 // maybe none waits any more
		}
	}
	return nil
}

// take starts the tasks of due that the claim may start, up to limit, and
// parks those whose key has no capacity; it returns how many it parked.
// A task whose limit another claim holds is left for the next claim.
func (r *flowRun) take(ctx context.Context, due []dueTask, limit int) (int, error) {
	park := map[flowParkKey][]string{}
	var keys []flowParkKey
	parked := 0
	for _, t := range due {
		l := r.byKey[t.key]
		if l == nil {
			if r.free[t.key] && len(r.claim) < limit {
				r.started(t.id, nil)
			}
			continue
		}
		l.due = true
		c, why := l.capacity(1)
		switch {
		case c == 0:
			k := flowParkKey{l, why}
			if park[k] == nil {
				keys = append(keys, k)
			}
			park[k] = append(park[k], t.id)
			r.seen[t.id] = true
			parked++
		case len(r.claim) < limit:
			r.started(t.id, l)
		}
	}
	if parked == 0 {
		return 0, nil
	}
	s := r.s
	if s.dialect == Postgres {
		var ids, ks, whys []string
		for _, k := range keys {
			for _, id := range park[k] {
				ids, ks, whys = append(ids, id), append(ks, k.l.Key), append(whys, k.why)
			}
		}
		if _, err := r.tx.ExecContext(ctx, flowParkPostgres, s.planned(ids, ks, whys, s.timeArg(parkedRunAt))...); err != nil {
			return 0, err
		}
	} else {
		for _, k := range keys {
			if _, err := r.tx.ExecContext(ctx, flowParkSQLite, k.l.Key, k.why, s.timeArg(parkedRunAt), s.idList(park[k])); err != nil {
				return 0, err
			}
		}
	}
	for _, k := range keys {
		k.l.write = 1
	}
	return parked, nil
}

// writeLimits writes back the limits whose tokens the claim took or whose
// waiting column it changes.
func (r *flowRun) writeLimits(ctx context.Context) error {
	s := r.s
	var (
		apps, keys []string
		tokens     []float64
		at         []time.Time
		ws         []int32
	)
	for _, l := range r.order {
		if !l.took && l.write == 0 {
			continue
		}
		if s.dialect == SQLite {
			if _, err := r.tx.ExecContext(ctx, flowWriteSQLite, l.AppID, l.Key, l.tokens, s.timeArg(l.tokensAt), l.write); err != nil {
				return err
			}
			continue
		}
		apps, keys = append(apps, l.AppID), append(keys, l.Key)
		tokens, at, ws = append(tokens, l.tokens), append(at, l.tokensAt.UTC().Truncate(time.Microsecond)), append(ws, int32(l.write))
	}
	if len(apps) == 0 {
		return nil
	}
	_, err := r.tx.ExecContext(ctx, flowWritePostgres, s.planned(apps, keys, tokens, at, ws)...)
	return err
}
