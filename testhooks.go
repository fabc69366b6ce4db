package tasks

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/taskwheel/tasks/internal/testhook"
)

// What package tasktest reaches beyond the exported API (see package
// internal/testhook): running an engine's tasks in the caller's goroutine,
// and reading tasks through the caller's transaction.

func init() {
	testhook.Registered = func(engine any, eventType string) bool {
		return engine.(*Engine).funcFor(eventType) != nil
	}
	testhook.RunFunc = func(ctx context.Context, engine any, task any) error {
		return engine.(*Engine).runFunc(ctx, task.(*Task))
	}
	testhook.RunDue = func(ctx context.Context, engine any, asOf time.Time) (any, error) {
		return engine.(*Engine).runDue(ctx, asOf)
	}
	testhook.ListTx = func(ctx context.Context, store any, tx *sql.Tx, appID, eventType string, limit int) (any, error) {
		s, ok := store.(interface{ sqlStore() *SQLStore })
		if !ok {
			return nil, fmt.Errorf("a %T is not an SQLStore: it reads no transaction", store)
		}
		return s.sqlStore().listTx(ctx, tx, appID, eventType, limit)
	}
}

// attemptContext returns the context of an attempt of t under ctx: it
// ends at t's timeout (or the engine's), with errTimeout as its cause.
func (e *Engine) attemptContext(ctx context.Context, t *Task) (context.Context, context.CancelFunc) {
	timeout := e.cfg.Timeout
	if t.Timeout > 0 {
		timeout = t.Timeout
	}
	if timeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithDeadlineCause(ctx, time.Now().Add(timeout), errTimeout)
}

// runFunc runs the func registered for t's event type on t, as an attempt
// runs it, without a claim or a store.
func (e *Engine) runFunc(ctx context.Context, t *Task) error {
	fn := e.funcFor(t.EventType)
	if fn == nil {
		return fmt.Errorf("tasks: run task %s: no func registered for event type %q", t.ID, t.EventType)
	}
	ctx, cancel := e.attemptContext(ctx, t)
	defer cancel()
	return call(ctx, fn, t)
}

// maxRunDue bounds the attempts of one runDue: funcs that keep enqueueing
// tasks due at once would otherwise never let it return.
const maxRunDue = 10000

// runDue runs, in the calling goroutine, every task of the store that is
// scheduled or retrying with a NextAttemptAt not after asOf, earliest
// first, as the engine's workers would, and records each outcome; then
// again for the retries that became due by asOf, until none is left. A
// task not yet due on the store's clock is rescheduled to now first (its
// ScheduledRunTime becomes the time it ran), since a claim takes only due
// tasks. It returns the tasks it ran, in the order of their first runs, as
// they ended. The engine must not be started: its workers would claim the
// tasks too.
func (e *Engine) runDue(ctx context.Context, asOf time.Time) ([]*Task, error) {
	if e.current() != nil {
		return nil, errors.New("tasks: run due tasks: the engine is started; stop it, or use one that is not")
	}
	var ran []string
	seen := make(map[string]bool)
	for runs := 0; ; {
		due, err := e.dueAt(ctx, asOf)
		if err != nil || len(due) == 0 {
			return e.ended(ctx, ran, err)
		}
		now, _, err := e.store.Upcoming(ctx, 0, 1)
		if err != nil {
			return nil, wrapf(err, "run due tasks")
		}
		// One at a time, so that they run in the order they are due at
		// asOf: the claim takes the earliest due on the store's clock,
		// which is the next of them, once it is rescheduled to now.
		for _, d := range due {
			if d.NextAttemptAt.After(now) {
				if _, err := e.store.Reschedule(ctx, d.ID, time.Time{}); err != nil {
					return nil, wrapf(err, "run due tasks: reschedule task %s", d.ID)
				}
			}
			claimed, err := e.store.Claim(ctx, 1, e.cfg.Lease)
			switch {
			case err != nil:
				return nil, wrapf(err, "run due tasks: claim")
			case len(claimed) == 0:
				return nil, fmt.Errorf("tasks: run due tasks: task %s is not due", d.ID)
			}
			t := claimed[0]
			if runs++; runs > maxRunDue {
				return nil, fmt.Errorf("tasks: run due tasks: more than %d attempts due by %v", maxRunDue, asOf)
			}
			if !seen[t.ID] {
				seen[t.ID] = true
				ran = append(ran, t.ID)
			}
			if err := e.runClaimed(ctx, t); err != nil {
				return nil, err
			}
		}
	}
}

// runClaimed runs the attempt of t, just claimed, and stores its outcome.
func (e *Engine) runClaimed(ctx context.Context, t *Task) error {
	actx, cancel := e.attemptContext(ctx, t)
	attempts, endpointID, err := e.attempt(actx, t)
	o := e.outcome(t, err, context.Cause(actx))
	cancel()
	o.Attempts, o.EndpointID = attempts, endpointID
	applied, err := e.store.Finish(context.WithoutCancel(ctx), []Outcome{o})
	if err != nil {
		return wrapf(err, "run due tasks: store the outcome of task %s", t.ID)
	}
	if !applied[0] {
		return fmt.Errorf("tasks: run due tasks: the outcome of task %s was not applied: another engine runs the store's tasks", t.ID)
	}
	return nil
}

// dueAt returns the scheduled and retrying tasks of every app whose
// NextAttemptAt is not after asOf, earliest first.
func (e *Engine) dueAt(ctx context.Context, asOf time.Time) ([]*Task, error) {
	var due []*Task
	p := ListParams{States: []State{StateScheduled, StateRetrying}, Limit: MaxListLimit}
	for {
		ts, next, err := e.store.List(ctx, p)
		if err != nil {
			return nil, wrapf(err, "run due tasks: list")
		}
		for _, t := range ts {
			if t.NextAttemptAt != nil && !t.NextAttemptAt.After(asOf) {
				due = append(due, t)
			}
		}
		if next == "" {
			break
		}
		p.Cursor = next
	}
	slices.SortStableFunc(due, func(a, b *Task) int { return a.NextAttemptAt.Compare(*b.NextAttemptAt) })
	return due, nil
}

// ended returns the tasks with the given IDs as they are now, or err.
func (e *Engine) ended(ctx context.Context, ids []string, err error) ([]*Task, error) {
	if err != nil {
		return nil, err
	}
	ts := make([]*Task, 0, len(ids))
	for _, id := range ids {
		t, err := e.store.Get(ctx, id)
		if err != nil {
			return nil, wrapf(err, "run due tasks: get task %s", id)
		}
		ts = append(ts, t)
	}
	return ts, nil
}

// sqlStore returns s, and the SQLStore that a store of packages sqlite
// and postgres embeds.
func (s *SQLStore) sqlStore() *SQLStore { return s }

// listTxTasks reads the newest tasks of an app (or all, "") and an event
// type (or all, "").
const listTxTasks = `SELECT ` + taskColumns + ` FROM taskwheel_tasks
	WHERE (? = '' OR app_id = ?) AND (? = '' OR event_type = ?)
	ORDER BY created_at DESC, id DESC LIMIT ?`

// listTx returns the newest tasks, up to limit, of the app appID and of
// the event type eventType ("" for any) that tx sees.
func (s *SQLStore) listTx(ctx context.Context, tx *sql.Tx, appID, eventType string, limit int) ([]*Task, error) {
	if tx == nil {
		return nil, errors.New("tasks: list tasks: nil transaction")
	}
	ts, err := queryTasks(ctx, tx, s.db.Rebind(listTxTasks), appID, appID, eventType, eventType, cmp.Or(limit, DefaultListLimit))
	if err != nil {
		return nil, fmt.Errorf("tasks: list tasks in a transaction: %w", err)
	}
	return ts, nil
}
