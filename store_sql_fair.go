package tasks

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Fairness between apps on SQL stores. While due tasks wait for claims (a
// backlog: the last claim took all it asked for), a claim serves the apps
// that have due tasks in turn: it finds up to fairMaxApps of them, one
// probe each of taskwheel_tasks_app_due (an app's earliest pending task;
// for an app found before, sought from the claim floor), and claims each one's share of the batch, oldest due first; with one
// app it claims as without fairness. Without a backlog every due task is
// claimed at once, and order does not matter. With more apps than
// fairMaxApps, claims go round them from where the last one stopped.
//
// Claims under limits (claimFlow) read the due tasks from the apps in turn
// in the same way, then apply the limits.

// fairMaxApps bounds the apps one claim serves.
const fairMaxApps = 16

// fairRecheck is how long claims under a backlog of one app's tasks go
// without looking for other apps' again: the probes cost a drain of one
// app's backlog a few percent when made at every claim, and another app's
// task waits this long at most for them. The engine's claim looks at once
// when the engine knows of new tasks (its own, or on PostgreSQL another
// engine's): see flowClaim.news.
const fairRecheck = 10 * time.Millisecond

// fairCost bounds the share of a claimer's time that looking for other
// apps, news aside, takes: after a look that took d and found one app, the
// next waits fairCost×d, if that is longer than fairRecheck (at most
// fairMaxPause). A look that finds an app walks the index entries its
// claimed tasks left at the head of its range (see fairNextKnownApp); a
// look held up by the database takes long too.
const fairCost = 20

// fairMaxPause bounds that wait: one look held up by a pause of the
// process or the database must not stop looking for long.
const fairMaxPause = 50 * time.Millisecond

// fairKnownApps bounds the apps a store remembers having found, so that its
// next looks seek each one's tasks from the claim floor (see dueApps).
const fairKnownApps = 256

// fairness is an SQLStore's memory of the last claims: whether they met a
// backlog, the app after which the next claim looks for apps, and the apps
// its looks found.
type fairness struct {
	backlog atomic.Bool
	mu      sync.Mutex
	cursor  string
	alone   time.Time // until then, no other app is looked for
	known   []string  // sorted; at most fairKnownApps
}

// Fair claim queries: the app after ?1 that has a pending task due from ?2
// on (the claim floor), with its earliest due time; the same up to a known
// app ?2 included (?4, ?5; from the floor, ?3 and ?6); and the claim of up to ?1
// due tasks of app ?3 (on PostgreSQL, from the floor: $4, $5).
//
// The engine's claim floor (claim_floor.go) bounds every app's pending
// tasks from below as it bounds all of them, so these read from it too: an
// app's range of taskwheel_tasks_app_due starts with the entries its
// claimed (or parked) tasks left, dead until a vacuum removes them, 829
// pages of them beside 100,000 tasks set waiting (tasksbench W11
// isolation). A look for the app after another cannot start past them,
// since its index scan is positioned by app alone; its condition on run_at
// is checked on each entry before the row is read, so a long transaction
// that keeps the entries from being marked dead does not make it read
// their rows (2.7 ms a probe), but it still walks them: 2.55 ms a look
// against 0.41 ms with no tasks waiting. So a look walks an app's range
// once, when it finds the app; after that it seeks the app's tasks from
// the floor (fairNextKnownApp's second part, positioned by app and run_at)
// and looks for apps it does not know only between the known ones (its
// first part, which ends where the known app's range begins). The second
// part bounds the app by a range, not an equality, and orders by it, so
// that only taskwheel_tasks_app_due serves it: with app_id = ?, the
// planner may read taskwheel_tasks_due from the floor instead, through
// every other app's backlog. The whole is ordered by app, not left to the
// order in which UNION ALL returns its parts, which SQL leaves open: an
// unknown app in the gap comes before the known one however the parts run.
const (
	fairNextApp = `SELECT app_id, run_at FROM taskwheel_tasks
WHERE state IN ('scheduled', 'retrying') AND app_id > ? AND run_at >= ?
ORDER BY app_id, run_at LIMIT 1`
	fairNextKnownApp = `SELECT app_id, run_at FROM (SELECT app_id, run_at FROM taskwheel_tasks
	WHERE state IN ('scheduled', 'retrying') AND app_id > ? AND app_id < ? AND run_at >= ?
	ORDER BY app_id, run_at LIMIT 1) AS unknown
UNION ALL
SELECT app_id, run_at FROM (SELECT app_id, run_at FROM taskwheel_tasks
	WHERE state IN ('scheduled', 'retrying') AND app_id >= ? AND app_id <= ? AND run_at >= ?
	ORDER BY app_id, run_at LIMIT 1) AS known
ORDER BY app_id LIMIT 1`
	claimAppSQLite = `UPDATE taskwheel_tasks
SET state = 'running', attempts = attempts + 1, lease_expires_at = ?4 + ?2, updated_at = ?4,
	wait_reason = NULL, wait_endpoint = NULL, ` + claimTokenSQLite + `
WHERE id IN (
	SELECT id FROM taskwheel_tasks
	WHERE app_id = ?3 AND state IN ('scheduled', 'retrying') AND run_at <= ?4
		AND NOT EXISTS (SELECT 1 FROM taskwheel_limits)
	ORDER BY run_at, id
	LIMIT ?1)
RETURNING ` + taskColumns
	claimAppPostgres = `UPDATE taskwheel_tasks
SET state = 'running', attempts = attempts + 1,
	lease_expires_at = now() + $2 * interval '1 microsecond', updated_at = now(),
	wait_reason = NULL, wait_endpoint = NULL, ` + claimTokenPostgres + `
WHERE id IN (
	SELECT id FROM taskwheel_tasks
	WHERE app_id = $3 AND state IN ('scheduled', 'retrying') AND run_at <= now()
		AND (run_at, id) >= ($4, $5) AND NOT EXISTS (SELECT 1 FROM taskwheel_limits)
	ORDER BY run_at, id
	LIMIT $1
	FOR UPDATE SKIP LOCKED) AND ` + claimCommitsAsync + `
RETURNING ` + taskColumns
)

// dueApps returns up to fairMaxApps apps with due tasks, after the cursor,
// and moves the cursor. It goes through the apps in order, one statement
// an app: up to the next app it knows of (fairNextKnownApp), or, past the
// last, to the end (fairNextApp), wrapping round once.
func (s *SQLStore) dueApps(ctx context.Context, q queryRower) ([]string, error) {
	s.fair.mu.Lock()
	after, known := s.fair.cursor, slices.Clone(s.fair.known)
	s.fair.mu.Unlock()
	floor := floorAt(s.dialect, floorOf(ctx))
	now := time.Now()
	if s.dialect == SQLite {
		now = s.now()
	}
	var (
		apps    []string
		wrapped bool
		found   []string // apps with pending tasks, known or not
		gone    []string // known apps with none
	)
	for probes := 0; probes < 2*fairMaxApps && len(apps) < fairMaxApps; probes++ {
		var (
			app   string
			runAt sqlTime
			err   error
		)
		i, _ := slices.BinarySearch(known, after)
		if i < len(known) && known[i] == after {
			i++
		}
		next := ""
		if i < len(known) {
			next = known[i]
			err = q.QueryRowContext(ctx, s.db.Rebind(fairNextKnownApp), after, next, floor, next, next, floor).Scan(&app, &runAt)
		} else {
			err = q.QueryRowContext(ctx, s.db.Rebind(fairNextApp), after, floor).Scan(&app, &runAt)
		}
		if errors.Is(err, sql.ErrNoRows) && next != "" {
			// Nor any other app before it. A probe that finds a known app
			// gone does not count against the look's probes: the look before
			// known apps passed it in the statement that found the next app,
			// and many apps drained at once must not hide those that are due.
			// Forgotten here too, it costs one probe a look: at most
			// fairKnownApps more.
			gone = append(gone, next)
			known = slices.Delete(known, i, i+1)
			after = next
			probes--
			continue
		}
		if errors.Is(err, sql.ErrNoRows) {
			if after == "" || len(apps) > 0 || wrapped {
				after = ""
				break
			}
			after, wrapped = "", true // wrap round once
			continue
		}
		if err != nil {
			return nil, err
		}
		after = app
		found = append(found, app)
		// The process's clock stands for PostgreSQL's here: a task due a
		// moment later is found by the claim, or the next one.
		if !runAt.t.After(now) {
			apps = append(apps, app)
		}
	}
	s.fair.mu.Lock()
	s.fair.cursor = after
	s.fair.known = rememberApps(s.fair.known, found, gone)
	s.fair.mu.Unlock()
	return apps, nil
}

// rememberApps returns known, sorted, with the apps found added while
// there is room (fairKnownApps) and those gone removed.
//
// Only apps whose IDs are ASCII are remembered: dueApps orders the known
// apps as Go does, by the bytes of their UTF-8, and the database compares
// app_id by the bytes of its own encoding (COLLATE "C"). PostgreSQL's
// server encodings agree with UTF-8 on ASCII and encode every other
// character with bytes from 0x80 on, so an ASCII ID sorts against any ID
// alike in both; two other IDs need not (in WIN1252, "€" is 0x80, before
// "é", 0xE9), and a look would go back to an app it passed, again and
// again. An app left unknown is found by the look for apps between the
// known ones, as before fairness remembered apps.
func rememberApps(known, found, gone []string) []string {
	known = slices.DeleteFunc(known, func(app string) bool { return slices.Contains(gone, app) })
	for _, app := range found {
		if !asciiID(app) {
			continue
		}
		if i, ok := slices.BinarySearch(known, app); !ok && len(known) < fairKnownApps {
			known = slices.Insert(known, i, app)
		}
	}
	return known
}

// asciiID reports whether id is all ASCII.
func asciiID(id string) bool {
	for i := 0; i < len(id); i++ {
		if id[i] >= 0x80 {
			return false
		}
	}
	return true
}

// fairApps returns the apps a claim under a backlog serves in turn, or
// none when fewer than two have due tasks; then, for fairRecheck (or
// fairCost times as long as the look took, if longer, up to fairMaxPause),
// it looks for none,
// unless the claim brings news of tasks stored meanwhile.
func (s *SQLStore) fairApps(ctx context.Context, q queryRower) ([]string, error) {
	began := time.Now()
	s.fair.mu.Lock()
	alone := began.Before(s.fair.alone)
	s.fair.mu.Unlock()
	if alone && !flowClaimOf(ctx).hasNews() {
		return nil, nil
	}
	apps, err := s.dueApps(ctx, q)
	if err != nil || len(apps) >= 2 {
		return apps, err
	}
	end := time.Now()
	s.fair.mu.Lock()
	s.fair.alone = end.Add(max(fairRecheck, min(fairCost*end.Sub(began), fairMaxPause)))
	s.fair.mu.Unlock()
	return nil, nil
}

// claimFair claims up to limit tasks from the apps that have due tasks, in
// turn; ok is false, with nothing claimed, when fewer than two apps have.
func (s *SQLStore) claimFair(ctx context.Context, q claimDB, limit int, lease time.Duration) (rs []taskRow, ok bool, err error) {
	apps, err := s.fairApps(ctx, q)
	if err != nil || len(apps) < 2 {
		return nil, false, err
	}
	// One transaction for every app's claim: should one fail, those
	// before it must not stay running, claimed by nobody, until their
	// leases expire (an attempt lost).
	tx, err := q.BeginTx(ctx, nil)
	if err != nil {
		return nil, true, err
	}
	defer tx.Rollback()
	share := (limit + len(apps) - 1) / len(apps)
	for pass := 0; pass < 2 && len(rs) < limit; pass++ {
		for _, app := range apps {
			n := min(share, limit-len(rs))
			if pass == 1 {
				n = limit - len(rs) // what the others left
			}
			if n <= 0 {
				break
			}
			var got []taskRow
			if s.dialect == Postgres {
				from := floorOf(ctx)
				got, err = queryRows(ctx, tx, claimAppPostgres, n, lease.Microseconds(), app, from.arg(), from.id)
			} else {
				got, err = queryRows(ctx, tx, claimAppSQLite, s.args(n, lease.Microseconds(), app)...)
			}
			if err != nil {
				return nil, true, err
			}
			rs = append(rs, got...)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, true, err
	}
	return rs, true, nil
}
