package tasks

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
)

// Enqueue stores a new task and returns it. Once Enqueue returns nil on a
// durable store, the task will run. If nt has an IdempotencyKey that the app
// already used, nothing is stored: Enqueue returns the existing task and an
// error matching ErrDuplicate. An invalid nt gives a *ValidationError.
//
// On a durable store, Enqueue calls that overlap are committed together
// (group commit): while one call's insert is under way, the calls that
// arrive queue up, and the next insert stores all of them in one
// transaction. Nobody waits for a timer, and a lone call inserts at once.
// ctx bounds the wait in the queue; an insert of several callers' tasks
// that is under way runs to its end (at most 10 seconds) even if ctx ends,
// so a task may be stored although Enqueue returned ctx's error.
func (e *Engine) Enqueue(ctx context.Context, nt NewTask) (*Task, error) {
	t, err := e.newTask(nt)
	if err != nil {
		return nil, err
	}
	ctx, err = e.admit(ctx)
	if err != nil {
		return nil, err
	}
	keepTraceContext(ctx, t)
	var stored *Task
	switch {
	case e.enqMW && e.group != nil:
		stored, err = e.enqueueOne(ctx, t, e.group.insert)
	case e.enqMW:
		stored, err = e.enqueueOne(ctx, t, e.store.Insert)
	case e.group != nil:
		stored, err = e.group.insert(ctx, t)
	default:
		stored, err = e.store.Insert(ctx, t)
	}
	if err != nil {
		return stored, wrapf(err, "enqueue %s", nt.EventType)
	}
	e.hint(stored.ID, stored.NextAttemptAt)
	return stored, nil
}

// EnqueueMany stores new tasks in one atomic step, all of them or none,
// and returns them in the order of nts. It costs about as much as one
// Enqueue, whatever the number of tasks. If a task is invalid, nothing is
// stored and the *ValidationError names it by its index, as in
// "tasks[3].event_type". A task whose IdempotencyKey its app already used,
// before or earlier in nts, is not stored: the task that holds the key
// takes its place in the result, and EnqueueMany returns every task with an
// error matching ErrDuplicate.
func (e *Engine) EnqueueMany(ctx context.Context, nts []NewTask) ([]*Task, error) {
	ts := make([]*Task, len(nts))
	for i, nt := range nts {
		t, err := e.newTask(nt)
		if ve := (*ValidationError)(nil); errors.As(err, &ve) {
			return nil, invalid(fmt.Sprintf("tasks[%d].%s", i, ve.Field), "%s", ve.Message)
		} else if err != nil {
			return nil, err
		}
		ts[i] = t
	}
	ctx, err := e.admit(ctx)
	if err != nil {
		return nil, err
	}
	keepTraceContext(ctx, ts...)
	var stored []*Task
	if e.enqMW {
		stored, err = e.enqueueThrough(ctx, ts, true, e.store.InsertMany)
		if err == nil && len(stored) != len(ts) {
			err = fmt.Errorf("tasks: enqueue middleware returned %d tasks for %d", len(stored), len(ts))
		} else if err == nil && slices.Contains(stored, nil) {
			err = errMiddlewareNoTask
		}
	} else {
		stored, err = e.store.InsertMany(ctx, ts)
	}
	if err != nil {
		return nil, wrapf(err, "enqueue %d tasks", len(ts))
	}
	dup := false
	hints := make([]Due, 0, len(stored))
	for i, t := range stored {
		if t.ID != ts[i].ID {
			dup = true
		} else if t.NextAttemptAt != nil {
			hints = append(hints, Due{ID: t.ID, RunAt: *t.NextAttemptAt})
		}
	}
	if r := e.current(); r != nil {
		r.hint(hints...)
	}
	if dup {
		return stored, wrapf(ErrDuplicate, "enqueue %d tasks", len(ts))
	}
	return stored, nil
}

// EnqueueTx is Enqueue inside the caller's transaction on a SQL store: the
// task exists if and only if tx commits. The engine sees it at once if it is
// committed by its run time, otherwise within Config.PollInterval. It returns
// ErrNotSupported on a store that keeps no database/sql database, such as
// the memory store.
func (e *Engine) EnqueueTx(ctx context.Context, tx *sql.Tx, nt NewTask) (*Task, error) {
	t, err := e.newTask(nt)
	if err != nil {
		return nil, err
	}
	keepTraceContext(ctx, t)
	var stored *Task
	if e.enqMW {
		stored, err = e.enqueueOne(ctx, t, func(ctx context.Context, t *Task) (*Task, error) {
			return e.store.InsertTx(ctx, tx, t)
		})
	} else {
		stored, err = e.store.InsertTx(ctx, tx, t)
	}
	if err != nil {
		return stored, wrapf(err, "enqueue %s in transaction", nt.EventType)
	}
	e.hint(stored.ID, stored.NextAttemptAt)
	return stored, nil
}

// newTask validates nt and builds the task to insert.
func (e *Engine) newTask(nt NewTask) (*Task, error) {
	if err := nt.Validate(); err != nil {
		return nil, err
	}
	if len(nt.Data) > e.cfg.MaxDataBytes {
		return nil, invalid("data", "%d bytes, more than the limit of %d", len(nt.Data), e.cfg.MaxDataBytes)
	}
	id, err := uuid.NewV7()
	if err != nil {
		return nil, fmt.Errorf("tasks: new task id: %w", err)
	}
	t := &Task{
		ID:             id.String(),
		AppID:          nt.AppID,
		EventType:      nt.EventType,
		FlowKey:        flowKey(nt.FlowKey, nt.EventType),
		Data:           nt.Data,
		MaxAttempts:    cmp.Or(nt.MaxAttempts, e.cfg.MaxAttempts),
		Timeout:        nt.Timeout,
		IdempotencyKey: nt.IdempotencyKey,
	}
	if t.Data == nil {
		t.Data = json.RawMessage("null")
	}
	if !nt.RunAt.IsZero() {
		at := nt.RunAt.UTC().Truncate(time.Microsecond)
		t.ScheduledRunTime = &at
	}
	if t.IdempotencyKey != "" {
		if t.IdempotencyDigest, err = requestDigest(t.EventType, nt.RunAt, t.Data); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// groupCommit inserts the tasks of overlapping Enqueue calls together. The
// first caller inserts its task at once; callers that arrive meanwhile queue
// up, and when an insert ends, the first of them inserts the queue with one
// InsertMany. On a store whose commits wait for the disk, N overlapping
// enqueues then cost about one commit instead of N, and a lone one costs
// what it did.
type groupCommit struct {
	store Store
	mu    sync.Mutex
	busy  bool           // an insert is under way, or about to be
	queue []*enqueueCall // waiting, oldest first
}

// enqueueCall is one Enqueue waiting in a groupCommit.
type enqueueCall struct {
	t    *Task
	got  *Task
	err  error
	lead bool // set under mu: this call inserts the queue
	// ready receives once: when got and err are set, or lead.
	ready chan struct{}
}

// maxGroupCommit bounds the tasks of one group commit.
const maxGroupCommit = 1000

// insert inserts t, alone or with the tasks of overlapping calls, and
// returns what the store returned for it.
func (g *groupCommit) insert(ctx context.Context, t *Task) (*Task, error) {
	c := &enqueueCall{t: t, ready: make(chan struct{}, 1)}
	g.mu.Lock()
	g.queue = append(g.queue, c)
	lead := !g.busy
	c.lead, g.busy = lead, true
	g.mu.Unlock()
	if !lead {
		// Wait for an answer, or for the lead (c.lead is read after
		// ready, which orders it after the write).
		select {
		case <-c.ready:
		case <-ctx.Done():
			g.mu.Lock()
			if i := slices.Index(g.queue, c); i >= 0 && !c.lead {
				g.queue = slices.Delete(g.queue, i, i+1)
				g.mu.Unlock()
				return nil, ctx.Err()
			}
			g.mu.Unlock()
			<-c.ready // taken into an insert, which storeTimeout bounds, or made to lead
		}
	}
	if c.lead {
		g.commit(ctx)
	}
	return c.got, c.err
}

// commit inserts the calls at the head of the queue, the leading call
// first, answers them, and hands the lead to the next call waiting.
func (g *groupCommit) commit(ctx context.Context) {
	g.mu.Lock()
	n := min(len(g.queue), maxGroupCommit)
	batch := slices.Clone(g.queue[:n])
	g.queue = slices.Delete(g.queue, 0, n)
	g.mu.Unlock()

	// Answer and hand over even if the store panics, which then goes on
	// up the leader's Enqueue: the other callers get an error, and the
	// calls after them a leader, instead of waiting forever.
	stored := false
	defer func() {
		if !stored {
			for _, c := range batch[1:] {
				c.got, c.err = nil, errStorePanicked
			}
		}
		g.mu.Lock()
		if len(g.queue) > 0 {
			next := g.queue[0]
			next.lead = true
			next.ready <- struct{}{}
		} else {
			g.busy = false
		}
		g.mu.Unlock()
		for _, c := range batch[1:] { // batch[0] is the leader
			c.ready <- struct{}{}
		}
	}()
	if len(batch) == 1 {
		c := batch[0]
		c.got, c.err = g.store.Insert(ctx, c.t)
	} else {
		// The insert is the other callers' too: the leader's ctx ending
		// must not fail theirs.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
		defer cancel()
		g.insertMany(ctx, batch)
	}
	stored = true
}

// errStorePanicked is the error of the callers whose tasks were in a group
// commit whose store call panicked (in another caller's Enqueue).
var errStorePanicked = errors.New("tasks: enqueue: the store panicked while inserting this task with others")

// insertMany inserts the tasks of batch with one InsertMany and sets each
// call's result.
func (g *groupCommit) insertMany(ctx context.Context, batch []*enqueueCall) {
	ts := make([]*Task, len(batch))
	for i, c := range batch {
		ts[i] = c.t
	}
	got, err := g.store.InsertMany(ctx, ts)
	if ve := (*ValidationError)(nil); errors.As(err, &ve) {
		// One task spoiled the batch (its ID is taken): insert each
		// alone, so that only its caller gets the error.
		for _, c := range batch {
			c.got, c.err = g.store.Insert(ctx, c.t)
		}
		return
	}
	for i, c := range batch {
		if err != nil {
			c.err = err
			continue
		}
		c.got = got[i]
		if c.got.ID != c.t.ID {
			c.err = ErrDuplicate
		}
	}
}

// waitingCounter is a store that counts its tasks waiting to run, for
// Config.MaxWaiting: the MemoryStore.
type waitingCounter interface{ waitingTasks() int }

// maxWaitingKey is the context key under which admit passes
// Config.MaxWaiting to the store's insert, which applies it again under
// its lock: callers that overlap at the bound would otherwise all find
// the count below it before any of them stored its tasks.
type maxWaitingKey struct{}

// admit returns an error matching ErrOverloaded when Config.MaxWaiting is
// set and the store holds that many tasks waiting to run; otherwise ctx,
// carrying the bound for the store's insert to check as it stores.
func (e *Engine) admit(ctx context.Context) (context.Context, error) {
	if e.cfg.MaxWaiting <= 0 {
		return ctx, nil
	}
	wc, ok := e.store.(waitingCounter)
	if !ok {
		return ctx, nil
	}
	if err := overloaded(wc.waitingTasks(), e.cfg.MaxWaiting); err != nil {
		return ctx, err
	}
	return context.WithValue(ctx, maxWaitingKey{}, e.cfg.MaxWaiting), nil
}

// overloaded returns an error matching ErrOverloaded if n tasks waiting
// to run reach the bound max.
func overloaded(n, max int) error {
	if n >= max {
		return fmt.Errorf("%w: %d tasks waiting to run, Config.MaxWaiting is %d", ErrOverloaded, n, max)
	}
	return nil
}
