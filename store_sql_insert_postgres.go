package tasks

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// InsertMany on PostgreSQL: one INSERT … SELECT FROM unnest of arrays, one
// array per column that the tasks set. Like SQLite's (see
// insertManySQLiteShape), a column that no task of the batch sets is
// written as its constant, not sent as an array of empty values that the
// server decodes and tests row by row: a batch of plain tasks sends five
// arrays, not twelve.
//
// The insert is in the order of the arrays, so that of two tasks with one
// idempotency key the first is stored. A keyed insert skips the rows whose
// key is taken and returns the IDs it stored; an unkeyed one stores every
// row or fails, and returns only how many it stored and the clock, not a
// row per task.

// insertManyPostgresShape is the shape of a batch insert: whether it is
// keyed, whether the store sends its wake-up itself (see wakeDeferredCTE),
// and which optional columns it sends.
type insertManyPostgresShape struct {
	keyed, deferred bool
	optionalColumns
}

// postgresShape returns the shape of the insert of ts.
func postgresShape(ts []*Task, keyed, deferred bool) insertManyPostgresShape {
	return insertManyPostgresShape{keyed: keyed, deferred: deferred, optionalColumns: optionalColumnsOf(ts)}
}

// insertManyPostgresQueries holds the statements by shape.
var insertManyPostgresQueries sync.Map // insertManyPostgresShape → string

// query returns the statement of shape sh.
func (sh insertManyPostgresShape) query() string {
	if q, ok := insertManyPostgresQueries.Load(sh); ok {
		return q.(string)
	}
	var arrays, names []string
	array := func(name, typ string) string {
		arrays = append(arrays, "$"+strconv.Itoa(len(arrays)+1)+"::"+typ+"[]")
		names = append(names, name)
		return name
	}
	array("id", "text")
	array("app_id", "text")
	array("event_type", "text")
	array("data", "bytea")
	array("max_attempts", "int")
	scheduled, runAt, timeout := "NULL::timestamptz", "now()", "0"
	if sh.runAt {
		scheduled = array("at", "timestamptz")
		runAt = "GREATEST(at, now())"
	}
	if sh.timeout {
		timeout = array("timeout", "bigint")
	}
	key, digest, parent, state, flow := "NULL", "NULL", "NULL", "NULL", "NULL"
	if sh.keys {
		key, digest = "NULLIF("+array("key", "text")+", '')", "NULLIF("+array("digest", "text")+", '')"
	}
	if sh.trace {
		parent, state = "NULLIF("+array("parent", "text")+", '')", "NULLIF("+array("trace_state", "text")+", '')"
	}
	if sh.flow {
		flow = "NULLIF(NULLIF(" + array("flow", "text") + ", ''), event_type)"
	}
	var q strings.Builder
	q.WriteString("WITH ")
	join := ""
	if sh.deferred {
		q.WriteString(wakeDeferredCTE + ",\n")
		join = " CROSS JOIN wake"
	}
	fmt.Fprintf(&q, `ins AS (INSERT INTO taskwheel_tasks (id, app_id, event_type, state, data,
	scheduled_run_time, run_at, max_attempts, timeout, idempotency_key, idempotency_digest, trace_parent, trace_state,
	created_at, updated_at, flow_key)
SELECT id, app_id, event_type, 'scheduled', data, %s, %s, max_attempts, %s, %s, %s, %s, %s, now(), now(), %s
FROM unnest(%s) WITH ORDINALITY AS n(%s, idx)%s
ORDER BY idx`, scheduled, runAt, timeout, key, digest, parent, state, flow,
		strings.Join(arrays, ", "), strings.Join(names, ", "), join)
	if sh.keyed {
		q.WriteString("\nON CONFLICT DO NOTHING\nRETURNING id, created_at)\nSELECT id, created_at FROM ins")
	} else {
		q.WriteString("\nRETURNING created_at)\nSELECT count(*), min(created_at) FROM ins")
	}
	s := q.String()
	insertManyPostgresQueries.Store(sh, s)
	return s
}

// args returns the arrays of the insert of ts, of shape sh.
func (sh insertManyPostgresShape) args(ts []*Task) []any {
	var (
		ids, apps, events    = make([]string, len(ts)), make([]string, len(ts)), make([]string, len(ts))
		data                 = make([][]byte, len(ts))
		maxAttempts          = make([]int64, len(ts)) // pgx refuses a value past the column's range
		ats                  []*time.Time
		timeouts             []int64
		keys, digests, flows []string
		parents, states      []string
	)
	for i, t := range ts {
		ids[i], apps[i], events[i], data[i], maxAttempts[i] = t.ID, t.AppID, t.EventType, t.Data, int64(t.MaxAttempts)
		if sh.runAt {
			ats = append(ats, t.ScheduledRunTime)
		}
		if sh.timeout {
			timeouts = append(timeouts, t.Timeout.Microseconds())
		}
		if sh.keys {
			keys, digests = append(keys, t.IdempotencyKey), append(digests, t.IdempotencyDigest)
		}
		if sh.trace {
			parents, states = append(parents, t.TraceParent), append(states, t.TraceState)
		}
		if sh.flow {
			flows = append(flows, t.FlowKey)
		}
	}
	args := []any{ids, apps, events, data, maxAttempts}
	if sh.runAt {
		args = append(args, ats)
	}
	if sh.timeout {
		args = append(args, timeouts)
	}
	if sh.keys {
		args = append(args, keys, digests)
	}
	if sh.trace {
		args = append(args, parents, states)
	}
	if sh.flow {
		args = append(args, flows)
	}
	return args
}

// insertManyPostgres inserts ts with q and returns the tasks it stored, in
// the order of ts; keyed, it skips the rows whose key is taken; deferred,
// it tells the trigger not to notify (see wakeDeferredCTE).
func (s *SQLStore) insertManyPostgres(ctx context.Context, q queryer, ts []*Task, keyed, deferred bool) ([]*Task, error) {
	if len(ts) == 0 {
		return nil, nil
	}
	sh := postgresShape(ts, keyed, deferred)
	rs, err := q.QueryContext(ctx, sh.query(), sh.args(ts)...)
	if err != nil {
		return nil, err
	}
	// Only the IDs stored and the clock come back, not whole rows: the
	// rest is what was written, as on SQLite (reading whole rows back was
	// two fifths of the process's CPU in a batch).
	var inserted map[string]time.Time
	var n int
	var at time.Time
	if keyed {
		inserted = make(map[string]time.Time, len(ts))
	}
	for rs.Next() {
		var id string
		if !keyed {
			err = rs.Scan(&n, &at)
		} else if err = rs.Scan(&id, &at); err == nil {
			inserted[id] = at
		}
		if err != nil {
			rs.Close()
			return nil, err
		}
	}
	if err := errors.Join(rs.Err(), rs.Close()); err != nil {
		return nil, err
	}
	if !keyed && n != len(ts) {
		return nil, fmt.Errorf("inserted %d tasks of %d", n, len(ts))
	}
	stored := make([]*Task, 0, len(ts))
	for _, t := range ts {
		if keyed {
			var ok bool
			if at, ok = inserted[t.ID]; !ok {
				continue
			}
		}
		stored = append(stored, newStoredTask(t, at.UTC()))
	}
	return stored, nil
}
