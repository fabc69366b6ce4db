package tasks

import (
	"context"
	"math"
	"time"
)

// The claim floor. On PostgreSQL a task that leaves the due range (claimed,
// or parked to wait for its flow key's capacity) leaves a dead entry in the
// due index until a vacuum, and a claim that scans the index from its start
// reads them all: 100,000 tasks set waiting made each claim of a drain read
// 829–897 pages more; and while any transaction older than the claims
// stays open the entries cannot be marked dead, and such a claim reads
// each one's row: a drain beside those tasks ran at 0.21–0.28 of its speed
// without them (tasksbench W11 isolation). So an engine's claims scan from
// a floor, the position in the due index (run_at, id) of the first task
// its previous claim took, and the scheduler lowers the floor whenever it
// learns of a task that may be due below it:
//
//   - a hint (a task stored or made due, here or, through the store's
//     notifications, by another engine; a retry of a task that ran here),
//     less floorMargin, since a retry's due time is reckoned on the
//     engine's estimate of the store's clock;
//   - a read of the upcoming tasks (at least every PollInterval), to the
//     start, as the read scans: not to the first task it returned, whose
//     time is as the Store interface shows it (a wrapper may show the
//     store's times on another clock), while the floor is a position in
//     the store's own due order; so the poll bounds a skip whatever the
//     hints said;
//   - news that tasks the engine was not told of may be due (the rescuer
//     returned some, a limit changed, a bulk change): to the start.
//
// A claim raises the floor only if it scanned from it in due order and its
// snapshot saw every task it took as it was locked (see queryClaim): the
// tasks it passed over were then claimed by it, held by another claim, or
// stored after its snapshot, and a task stored after it is hinted after
// it, so that the hint lowers the floor after the claim raised it (the
// scheduler takes in what it was told only between claims). A task that
// another transaction held locked while a claim passed it, and then left
// pending (another engine's claim that rolled back, or the application's
// own row lock, such as a foreign key's check of a row that references the
// task), is claimed after the next read of the upcoming tasks, as a task
// whose notification was lost is.
//
// The engine's claims that take each app's share under a backlog, and
// their looks for apps, read from the floor too (store_sql_fair.go), but
// do not move it; its claims under limits that run in a transaction, and
// claims of other callers, scan from the start. SQLite and the memory
// store have no dead entries to skip and ignore it.

// floorMargin is how far below a hinted due time the floor is lowered.
const floorMargin = 100 * time.Millisecond

// duePos is a position in the due order of tasks: due time, then ID. Its
// zero value is the start.
type duePos struct {
	at time.Time
	id string
}

// before reports whether p comes before q. IDs compare by their bytes, as
// the "C" collation of PostgreSQL's id column does.
func (p duePos) before(q duePos) bool {
	if c := p.at.Compare(q.at); c != 0 {
		return c < 0
	}
	return p.id < q.id
}

// arg returns p's due time as a parameter of PostgreSQL's queries: in
// UTC, to the microsecond PostgreSQL keeps, rounded down; the start is
// -infinity (see floorAt).
func (p duePos) arg() any { return floorAt(Postgres, p) }

// lowerFloor moves the claim floor down to p, if p is below it.
func (s *scheduler) lowerFloor(p duePos) {
	if p.before(s.floor) {
		s.floor = p
	}
}

// floorOf returns the claim floor of a claim's context: the start if the
// claim is not an engine's.
func floorOf(ctx context.Context) duePos {
	if fc := flowClaimOf(ctx); fc != nil {
		return fc.from
	}
	return duePos{}
}

// floorAt returns the due time of from as a parameter of dialect d's
// queries. The start is below every due time: not the zero time.Time
// (0001-01-01), above the tasks that the app's SQL stored due earlier,
// which a scan from it never reached.
func floorAt(d Dialect, from duePos) any {
	switch {
	case !from.at.IsZero():
		if d == SQLite {
			return from.at.UnixMicro()
		}
		return from.at.UTC().Truncate(time.Microsecond)
	case d == SQLite:
		return int64(math.MinInt64)
	default:
		return "-infinity"
	}
}

// seenColumn ends the RETURNING of an engine's claims on PostgreSQL, whose
// CTE due holds the tasks it locked (taskwheel_due, migration 0026): how
// many of them the statement's snapshot holds at the version locked. A task
// updated and committed after the snapshot, but before the claim locked it,
// is locked at its new version (PostgreSQL re-reads the row), whose due
// time may be later than tasks the scan did not reach.
const seenColumn = `(SELECT count(*) FROM due JOIN taskwheel_tasks AS s ON s.ctid = due.tid) AS seen`

// queryClaim runs query, an engine's claim on PostgreSQL with the
// parameters n ($1), lease ($2) and the position to scan from ($3, $4),
// which returns taskColumns and seenColumn, then the columns that it scans
// into more, with every row. It scans from the floor of the claim's
// flowClaim (the start without one) and, if the claim saw every task it
// took, sets the flowClaim's next floor to the first of them.
func queryClaim(ctx context.Context, q queryer, query string, n int, lease time.Duration, more ...any) ([]taskRow, error) {
	fc, from := flowClaimOf(ctx), floorOf(ctx)
	rows, err := q.QueryContext(ctx, query, n, lease.Microseconds(), from.arg(), from.id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var (
		rs   []taskRow
		seen int
	)
	for rows.Next() {
		rs = append(rs, taskRow{})
		if err := rows.Scan(append(append(rs[len(rs)-1].dest(), &seen), more...)...); err != nil {
			return nil, err
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if fc != nil && len(rs) > 0 && seen == len(rs) {
		first := duePos{rs[0].RunAt.t, rs[0].ID}
		for _, r := range rs[1:] {
			if p := (duePos{r.RunAt.t, r.ID}); p.before(first) {
				first = p
			}
		}
		fc.next, fc.moved = first, true
	}
	return rs, nil
}
