package tasks

import (
	"context"
	"slices"
	"time"
)

// Deleting tasks, and replaying or canceling many at once.
//
// A bulk operation pages through one app's tasks created in a time range,
// in List order, a batch of bulkBatch at a time: each batch is one atomic
// step of the store (Store.ReplayMany, Store.CancelMany) that looks at a
// bounded number of tasks, so a bulk operation on a huge table holds no
// lock for long, and one stopped half-way (its context ended, the store
// failed) has changed whole batches only, and is safe to run again.

// bulkBatch is how many tasks each batch of a bulk operation looks at.
const bulkBatch = 500

// Tasks states that bulk operations act on.
var (
	replayableStates = []State{StateFailed}
	cancelableStates = []State{StateScheduled, StateRetrying}
)

// bulk validates and normalizes p for a bulk operation (Store.ReplayMany,
// Store.CancelMany) on tasks in the states allowed, and returns the states
// it selects: p.States, or allowed if p.States is nil. It also returns the
// position the operation starts before, as List's query takes it: p's
// cursor, or CreatedBefore when that comes first.
func (p *ListParams) bulk(allowed []State) (states []State, at time.Time, id string, err error) {
	switch {
	case p.AppID == "":
		return nil, at, "", invalid("app_id", "is required: a bulk operation acts on one app's tasks")
	case p.CreatedSince.IsZero():
		return nil, at, "", invalid("created_since", "is required: a bulk operation acts on the tasks created in a time range")
	case p.CreatedBefore.IsZero():
		return nil, at, "", invalid("created_before", "is required: a bulk operation acts on the tasks created in a time range")
	}
	for _, s := range p.States {
		if !slices.Contains(allowed, s) {
			return nil, at, "", invalid("status", "this bulk operation acts on tasks in states %v only, not %q", allowed, s)
		}
	}
	states = allowed
	if p.States != nil {
		states = p.States
	}
	if err := p.normalize(); err != nil {
		return nil, at, "", err
	}
	before := p.CreatedBefore
	if before.IsZero() { // past the end of time: normalize dropped it
		before = endOfTime
	}
	if !p.CreatedSince.Before(before) {
		return nil, at, "", invalid("created_before", "must be after created_since")
	}
	at, id = before, ""
	if p.Cursor != "" {
		cat, cid, _ := decodeCursor(p.Cursor) // normalize checked it
		if cat.Before(at) || cat.Equal(at) && cid != "" {
			at, id = cat, cid
		}
	}
	return states, at, id, nil
}

// Delete deletes a task that is not running, with its attempt history, and
// returns it as it was. Its idempotency key is free again. A running task
// is returned with an error matching ErrInvalidState (cancel it first, and
// delete it once it has ended); an unknown task gives ErrNotFound.
func (e *Engine) Delete(ctx context.Context, id string) (*Task, error) {
	t, err := e.store.Delete(ctx, id)
	if err != nil {
		return t, wrapf(err, "delete task %s", id)
	}
	return t, nil
}

// ReplayFailed replays, as Replay does each, the failed tasks of the app
// p.AppID created from p.CreatedSince until before p.CreatedBefore, and of
// the event type p.EventType if not "", and returns how many it replayed.
// The app and both bounds are required: without them it returns a
// *ValidationError naming app_id, created_since or created_before, as it
// does when CreatedSince is not before CreatedBefore. It works through the
// range in batches of p.Limit tasks (500 if 0), each one atomic step of
// the store that reads no more than a batch, starting after p.Cursor if
// set, and stops when ctx ends or the store fails, returning how many it
// replayed until then with the error: what it did is done, batch by batch,
// and running it again finishes the rest. A task is replayed at most once
// per call, even if it fails again meanwhile; a second call replays the
// tasks that failed since, none if none did. p.States must be nil or
// [StateFailed]; MaxBytes is ignored.
func (e *Engine) ReplayFailed(ctx context.Context, p ListParams) (int, error) {
	n, _, err := e.replayFailed(ctx, p, time.Time{})
	if err != nil {
		return n, wrapf(err, "replay failed tasks of app %s", p.AppID)
	}
	return n, nil
}

// CancelScheduled cancels the scheduled and retrying tasks of the app
// p.AppID created in a time range, as ReplayFailed replays failed ones:
// the same bounds, batches and errors. p.States may be nil, for both
// states, or name either. Running tasks are not touched: cancel them one
// by one with Cancel.
func (e *Engine) CancelScheduled(ctx context.Context, p ListParams) (int, error) {
	n, _, err := e.cancelScheduled(ctx, p, time.Time{})
	if err != nil {
		return n, wrapf(err, "cancel scheduled tasks of app %s", p.AppID)
	}
	return n, nil
}

// replayFailed is ReplayFailed that stops after the batch that ends past
// until, if until is not zero, and returns the cursor to go on from ("" at
// the end of the range).
func (e *Engine) replayFailed(ctx context.Context, p ListParams, until time.Time) (int, string, error) {
	return e.bulk(ctx, p, true, until, func(ctx context.Context, p ListParams) (int, string, error) {
		return e.store.ReplayMany(ctx, p, e.cfg.MaxAttempts)
	})
}

// cancelScheduled is CancelScheduled as replayFailed is ReplayFailed.
func (e *Engine) cancelScheduled(ctx context.Context, p ListParams, until time.Time) (int, string, error) {
	return e.bulk(ctx, p, false, until, e.store.CancelMany)
}

// bulk runs batch over p's range, from p.Cursor on, until the range is
// done, ctx ends, batch fails or, if until is not zero, a batch ends after
// until; it returns how many tasks the batches changed and the cursor
// after the last batch, "" once the range is done. It runs at least one
// batch unless ctx has ended. Each batch is bounded by storeTimeout too,
// so that a store that hangs ends the operation. With due, the batches
// make tasks due now (replay them): after one that changed tasks, the
// running scheduler, if any, claims without waiting for its wheel, as
// after a rescue. (Other engines hear of them as of any task due now: by
// LISTEN/NOTIFY on PostgreSQL, else at their next poll.)
func (e *Engine) bulk(ctx context.Context, p ListParams, due bool, until time.Time,
	batch func(context.Context, ListParams) (int, string, error)) (int, string, error) {
	if p.Limit == 0 {
		p.Limit = bulkBatch
	}
	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return total, p.Cursor, err
		}
		bctx, cancel := context.WithTimeout(ctx, storeTimeout)
		n, next, err := batch(bctx, p)
		cancel()
		if err != nil {
			return total, p.Cursor, err
		}
		total += n
		if r := e.current(); r != nil && due && n > 0 {
			r.mayBeDue.Store(true)
			r.poke()
		}
		if next == "" || !until.IsZero() && time.Now().After(until) {
			return total, next, nil
		}
		p.Cursor = next
	}
}
