package tasks

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Deleting a task, and replaying or canceling many.

// Delete queries take the task's ID.
const (
	deleteTask = `DELETE FROM taskwheel_tasks WHERE id = ? AND state <> 'running'
RETURNING ` + taskColumns
	deleteTaskAttempts = `DELETE FROM taskwheel_attempts WHERE task_id = ?`
)

// Delete implements [Store]. The task's row and its attempts go in one
// transaction. On PostgreSQL a Delete racing a Claim waits for the claim's
// row lock, then finds the task running and deletes nothing; a claim that
// comes second skips the row the Delete locked (SKIP LOCKED), and then
// finds it gone.
func (s *SQLStore) Delete(ctx context.Context, id string) (*Task, error) {
	if !s.storable(id) {
		return nil, ErrNotFound
	}
	for {
		t, err := s.deleteTask(ctx, id)
		if errors.Is(err, errRaced) {
			continue
		}
		if err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrInvalidState) {
			return nil, fmt.Errorf("tasks: delete task %s: %w", id, err)
		}
		return t, err
	}
}

// deleteTask deletes task id in one transaction, or returns why not: the
// task as it is with ErrInvalidState if it is running, ErrNotFound, or
// errRaced if it ended its run in between the two looks.
func (s *SQLStore) deleteTask(ctx context.Context, id string) (*Task, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	t, err := queryTask(ctx, tx, s.db.Rebind(deleteTask), id)
	if errors.Is(err, ErrNotFound) {
		t, err = queryTask(ctx, tx, s.db.Rebind(getTask), id)
		switch {
		case err != nil:
			return nil, err
		case t.State == StateRunning:
			return t, ErrInvalidState
		}
		return nil, errRaced
	}
	if err != nil {
		return nil, err
	}
	if _, err := tx.ExecContext(ctx, s.db.Rebind(deleteTaskAttempts), id); err != nil {
		return nil, err
	}
	return t, tx.Commit()
}

// A batch of a bulk operation reads the keys, states and event types of
// the next tasks of the app in the range, on the app's listing index:
// bulkWindow takes the app, the earliest creation time, the position the
// batch starts before (as List's query does) and the batch's size plus
// one, to tell whether tasks are left. Then one UPDATE changes those of
// them that are in the operation's states and of its event type, by ID,
// with the changes of the single-task Replay and Cancel.
//
// On SQLite both run in one transaction, which holds the one writer. On
// PostgreSQL the UPDATE locks the rows it changes in the order of their
// IDs, skipping those that another transaction moved out of the
// operation's states while it waited for them, so that two bulk operations
// on the same tasks neither change a task twice nor deadlock each other.
const (
	bulkWindow = `SELECT id, created_at, state, event_type FROM taskwheel_tasks
WHERE app_id = ? AND created_at >= ? AND (created_at, id) < (?, ?)
ORDER BY created_at DESC, id DESC
LIMIT ?`

	// ReplayMany's take the state to replay (failed), the number of
	// attempts to add and, SQLite's, the clock; then the tasks' IDs: on
	// SQLite from ?4 on, one parameter each (see bulkIDs), on PostgreSQL
	// as an array.
	replayManySQLite = `UPDATE taskwheel_tasks SET` + replaySetSQLite + `
WHERE state = ?1 AND id IN (%s)`
	replayManyPostgres = `UPDATE taskwheel_tasks SET` + replaySetPostgres + `
WHERE id IN (SELECT id FROM taskwheel_tasks WHERE id = ANY($3) AND state = $1 ORDER BY id FOR UPDATE)`

	// CancelMany's take the states to cancel as ?1 and ?3 ('' for a
	// state not selected) and, SQLite's, the clock as ?2; then the IDs
	// as ReplayMany's do.
	cancelManySQLite = `UPDATE taskwheel_tasks SET` + cancelSetSQLite + `
WHERE state IN (?1, ?3) AND id IN (%s)`
	cancelManyPostgres = `UPDATE taskwheel_tasks SET` + cancelSetPostgres + `
WHERE id IN (SELECT id FROM taskwheel_tasks WHERE id = ANY($3) AND state IN ($1, $2) ORDER BY id FOR UPDATE)`
)

// bulkIDs returns query, a bulk UPDATE for SQLite, with n numbered
// parameters from ?4 on in place of its %s.
func bulkIDs(query string, n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("?" + strconv.Itoa(4+i))
	}
	return fmt.Sprintf(query, b.String())
}

// ReplayMany implements [Store].
func (s *SQLStore) ReplayMany(ctx context.Context, p ListParams, extra int) (int, string, error) {
	n, next, err := s.changeMany(ctx, p, replayableStates, func(states []State, ids []string) (string, []any) {
		if s.dialect == Postgres {
			return replayManyPostgres, s.planned(string(StateFailed), extra, ids)
		}
		return bulkIDs(replayManySQLite, len(ids)), []any{string(StateFailed), extra, s.now().UnixMicro()}
	})
	if err != nil {
		return 0, "", wrapf(err, "replay failed tasks of app %s", p.AppID)
	}
	return n, next, nil
}

// CancelMany implements [Store].
func (s *SQLStore) CancelMany(ctx context.Context, p ListParams) (int, string, error) {
	n, next, err := s.changeMany(ctx, p, cancelableStates, func(states []State, ids []string) (string, []any) {
		st := [2]string{string(states[0])}
		if len(states) > 1 {
			st[1] = string(states[1])
		}
		if s.dialect == Postgres {
			return cancelManyPostgres, s.planned(st[0], st[1], ids)
		}
		return bulkIDs(cancelManySQLite, len(ids)), []any{st[0], s.now().UnixMicro(), st[1]}
	})
	if err != nil {
		return 0, "", wrapf(err, "cancel tasks of app %s", p.AppID)
	}
	return n, next, nil
}

// changeMany runs a batch of a bulk operation on tasks in the states
// allowed (see Store.ReplayMany): update returns the UPDATE for the
// states selected and the IDs of the tasks to change, and its arguments,
// to which changeMany adds the IDs on SQLite. It returns how many tasks the
// UPDATE changed and the cursor after the batch.
func (s *SQLStore) changeMany(ctx context.Context, p ListParams, allowed []State,
	update func(states []State, ids []string) (string, []any)) (n int, next string, err error) {
	states, at, id, err := p.bulk(allowed)
	if err != nil {
		return 0, "", err
	}
	if !s.storable(id) {
		return 0, "", invalid("cursor", "malformed")
	}
	if !s.storable(p.AppID) || !s.storable(p.EventType) {
		return 0, "", nil // no task has them
	}
	// A batch that PostgreSQL ended to break a deadlock (with a writer of
	// many tasks other than a bulk operation) runs again.
	err = retryDeadlock(ctx, func() error {
		n, next, err = s.changeBatch(ctx, &p, states, at, id, update)
		return err
	})
	return n, next, err
}

// changeBatch is one run of changeMany's batch, in one transaction.
func (s *SQLStore) changeBatch(ctx context.Context, p *ListParams, states []State, at time.Time, id string,
	update func(states []State, ids []string) (string, []any)) (int, string, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, "", err
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, s.db.Rebind(bulkWindow),
		p.AppID, s.timeArg(p.CreatedSince), s.timeArg(at), id, p.Limit+1)
	if err != nil {
		return 0, "", err
	}
	var (
		ids    []string // to change
		seen   int
		last   Task // the last task looked at
		more   bool
		tid    string
		tstate State
		ttype  string
		tat    sqlTime
	)
	for rows.Next() {
		if err := rows.Scan(&tid, &tat, &tstate, &ttype); err != nil {
			rows.Close()
			return 0, "", err
		}
		if seen == p.Limit {
			more = true
			break
		}
		seen++
		last = Task{ID: tid, CreatedAt: tat.t}
		if slices.Contains(states, tstate) && (p.EventType == "" || ttype == p.EventType) {
			ids = append(ids, tid)
		}
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return 0, "", err
	}
	var next string
	if more {
		next = encodeCursor(&last)
	}
	if len(ids) == 0 {
		return 0, next, nil
	}
	query, args := update(states, ids)
	if s.dialect == SQLite {
		for _, id := range ids {
			args = append(args, id)
		}
	}
	res, err := tx.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, "", err
	}
	changed, err := res.RowsAffected()
	if err != nil {
		return 0, "", err
	}
	return int(changed), next, tx.Commit()
}
