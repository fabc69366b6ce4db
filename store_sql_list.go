package tasks

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// A page of a task listing is read in two steps, so that the database reads
// no task past the page's bounds whole. The first finds, on the listing's
// index, the keys of the next Limit+1 tasks and their sizes as
// ListParams.MaxBytes counts them (the length of a BLOB or bytea is read
// without its bytes), and numbers them with running totals of the sizes; the
// second reads by primary key the tasks within Limit and MaxBytes, in no
// order (sorting them is left to List, so that the database does not copy
// their data into a sorter). Each row also carries the number of keys found:
// more than the tasks read means the listing goes on.
//
// The queries take the app (for an app's listing), the six states to
// select, "" for a state not selected, or for an app's listing of one
// state that state alone, an event type, "" for all, the earliest creation time, the position that
// the listing starts before, the limit plus one, the limit and MaxBytes
// (math.MaxInt64 for none). The position is the cursor's, or CreatedBefore's
// when that is earlier (no ID comes before "", so (CreatedBefore, "") is
// before every task created at CreatedBefore), or else endOfTime.
const (
	listFind = `WITH found AS (
	SELECT id AS found_id,
		row_number() OVER running AS found_n,
		sum(size) OVER running AS found_bytes,
		count(*) OVER () AS found_count
	FROM (SELECT id, created_at, `
	// Then the size of a task, as MaxBytes counts it: SQLite's length
	// counts the characters of a text, octet_length (3.43) its bytes.
	listSizeSQLite   = `coalesce(length(data), 0) + length(CAST(last_error AS BLOB))`
	listSizePostgres = `coalesce(octet_length(data), 0) + octet_length(last_error)`
	// Then the listing's filters, an app's or all apps'.
	listFromApp = ` AS size FROM taskwheel_tasks
		WHERE app_id = ? AND state IN (?, ?, ?, ?, ?, ?) AND (? = '' OR event_type = ?)`
	listFromAll = ` AS size FROM taskwheel_tasks
		WHERE state IN (?, ?, ?, ?, ?, ?) AND (? = '' OR event_type = ?)`
	// An app's tasks in one state are read on the index that holds that
	// state's tasks, so that the first page of an app's failed tasks
	// passes none of its completed ones, however many, nor the first page
	// of its running tasks any finished one. A terminal state's are read
	// in order on taskwheel_tasks_ended_list (app_id, state, created_at,
	// id); a live state's on taskwheel_tasks_due or taskwheel_tasks_lease,
	// which hold the live tasks of every app, and sorted: the store's live
	// tasks, not the app's history. SQLite's planner, with no statistics,
	// would rather take taskwheel_tasks_app_list for its range on
	// (created_at, id), and walk the app's history: it is told the index.
	// PostgreSQL's planner, which has statistics, takes the cheaper one.
	listFromAppEndedSQLite = ` AS size FROM taskwheel_tasks INDEXED BY taskwheel_tasks_ended_list
		WHERE app_id = ? AND state = ? AND completed_at IS NOT NULL AND (? = '' OR event_type = ?)`
	listFromAppPendingSQLite = ` AS size FROM taskwheel_tasks INDEXED BY taskwheel_tasks_due
		WHERE app_id = ? AND state IN ('scheduled', 'retrying') AND state = ? AND (? = '' OR event_type = ?)`
	listFromAppRunningSQLite = ` AS size FROM taskwheel_tasks INDEXED BY taskwheel_tasks_lease
		WHERE app_id = ? AND state = 'running' AND state = ? AND (? = '' OR event_type = ?)`
	listFromAppEndedPostgres = ` AS size FROM taskwheel_tasks
		WHERE app_id = ? AND state = ? AND completed_at IS NOT NULL AND (? = '' OR event_type = ?)`
	listFromAppPendingPostgres = ` AS size FROM taskwheel_tasks
		WHERE app_id = ? AND state IN ('scheduled', 'retrying') AND state = ? AND (? = '' OR event_type = ?)`
	listFromAppRunningPostgres = ` AS size FROM taskwheel_tasks
		WHERE app_id = ? AND state = 'running' AND state = ? AND (? = '' OR event_type = ?)`
	listRead = `
			AND created_at >= ? AND (created_at, id) < (?, ?)
		ORDER BY created_at DESC, id DESC
		LIMIT ?) AS page
	WINDOW running AS (ORDER BY created_at DESC, id DESC ROWS UNBOUNDED PRECEDING)
)
SELECT ` + taskColumns + `, found_count
FROM found JOIN taskwheel_tasks ON id = found_id
WHERE found_n <= ? AND (found_n = 1 OR found_bytes <= ?)`

	listAppSQLite   = listFind + listSizeSQLite + listFromApp + listRead
	listAllSQLite   = listFind + listSizeSQLite + listFromAll + listRead
	listAppPostgres = listFind + listSizePostgres + listFromApp + listRead
	listAllPostgres = listFind + listSizePostgres + listFromAll + listRead

	listAppEndedSQLite     = listFind + listSizeSQLite + listFromAppEndedSQLite + listRead
	listAppPendingSQLite   = listFind + listSizeSQLite + listFromAppPendingSQLite + listRead
	listAppRunningSQLite   = listFind + listSizeSQLite + listFromAppRunningSQLite + listRead
	listAppEndedPostgres   = listFind + listSizePostgres + listFromAppEndedPostgres + listRead
	listAppPendingPostgres = listFind + listSizePostgres + listFromAppPendingPostgres + listRead
	listAppRunningPostgres = listFind + listSizePostgres + listFromAppRunningPostgres + listRead
)

var endOfTime = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)

// List implements [Store].
func (s *SQLStore) List(ctx context.Context, p ListParams) ([]*Task, string, error) {
	if err := p.normalize(); err != nil {
		return nil, "", err
	}
	at, id := endOfTime, ""
	if p.Cursor != "" {
		at, id, _ = decodeCursor(p.Cursor)
		if !s.storable(id) {
			return nil, "", invalid("cursor", "malformed")
		}
	}
	if !p.CreatedBefore.IsZero() && (p.CreatedBefore.Before(at) || p.CreatedBefore.Equal(at) && id != "") {
		at, id = p.CreatedBefore, ""
	}
	if !s.storable(p.AppID) || !s.storable(p.EventType) {
		return nil, "", nil // no task has them
	}
	var query string
	var args []any
	switch {
	case p.AppID != "" && len(p.States) == 1:
		switch st := p.States[0]; {
		case st.Terminal():
			query = s.pick(listAppEndedSQLite, listAppEndedPostgres)
		case st.pending():
			query = s.pick(listAppPendingSQLite, listAppPendingPostgres)
		default:
			query = s.pick(listAppRunningSQLite, listAppRunningPostgres)
		}
		args = []any{p.AppID, string(p.States[0])}
	case p.AppID != "":
		query, args = s.pick(listAppSQLite, listAppPostgres), []any{p.AppID}
	default:
		query = s.pick(listAllSQLite, listAllPostgres)
	}
	if p.AppID == "" || len(p.States) != 1 {
		for _, st := range states {
			if p.States != nil && !slices.Contains(p.States, st) {
				st = ""
			}
			args = append(args, string(st))
		}
	}
	args = append(args, p.EventType, p.EventType, s.timeArg(p.CreatedSince), s.timeArg(at), id,
		p.Limit+1, p.Limit, cmp.Or(p.MaxBytes, math.MaxInt64))
	var ts []*Task
	var found int64
	err := s.retryLost(ctx, s.read, func(q dbOrConn) (err error) {
		ts, found, err = queryPage(ctx, q, s.read.Rebind(query), args...)
		return err
	})
	if err != nil {
		return nil, "", fmt.Errorf("tasks: list tasks: %w", err)
	}
	slices.SortFunc(ts, func(a, b *Task) int { // newest first, as listBefore orders
		return cmp.Or(b.CreatedAt.Compare(a.CreatedAt), strings.Compare(b.ID, a.ID))
	})
	if found <= int64(len(ts)) {
		return ts, "", nil
	}
	return ts, encodeCursor(ts[len(ts)-1]), nil
}

// queryPage runs query, a list query, and returns the tasks it read and the
// number of keys it found.
func queryPage(ctx context.Context, q queryer, query string, args ...any) (ts []*Task, found int64, err error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	for rows.Next() {
		var r taskRow
		if err := rows.Scan(append(r.dest(), &found)...); err != nil {
			return nil, 0, err
		}
		ts = append(ts, r.task())
	}
	return ts, found, rows.Err()
}
