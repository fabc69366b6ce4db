package tasks

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"time"
)

// Retention: the goroutine that deletes finished tasks once their state's
// retention (Config.RetainCompleted, RetainFailed, RetainCanceled) has
// passed. Of the engines sharing a store, the one holding the role
// "retention" (Store.Elect) deletes; the others only try to take the role.

// retentionRole is the role of the engine that deletes (see Store.Elect).
const retentionRole = "retention"

// retention paces the retention goroutine.
type retention struct {
	first    time.Duration // from Start to the first pass, jittered
	interval time.Duration // between passes, jittered by ±25%
	// term is how long the role is the engine's without a renewal; the
	// engine renews it at each pass, and during a pass every term/3.
	term time.Duration
	// batch is how many tasks one PurgeTasks deletes.
	batch int
	// minPause is the least pause between batches; the pause is at least
	// pauseFactor times as long as the batch took, so that retention
	// holds SQLite's write lock at most a fifth of the time, claims and
	// inserts get it between batches, and the disk writes a fifth of what
	// it could for it.
	minPause time.Duration
}

// pauseFactor is how many times as long as a batch took the pause after it
// lasts. With a pause as long as the batch (half of the time deleting),
// a pass over ten million tasks on SQLite deleted 61,000 tasks a second,
// and W5's tasks during it were late by 29.6 ms at p99; with four times as
// long, 34,000 a second and 11.5 ms (one run each, BENCHMARKS.md): the
// slow batches, and the tasks that wait behind them, are those that meet
// the disk busy with what the pass wrote in the second before.
const pauseFactor = 4

// defaultRetention is how engines pace retention. A batch of 1,000 tasks,
// each with two attempts, out of 200,000 holds SQLite's write lock for
// about 4 ms (BenchmarkPurgeTasks, best of five runs on a shared two-core
// machine: 4 µs a task); 5,000 hold it 22 ms for no gain per task, and
// 100 hold it 1 ms at 10 µs a task. On PostgreSQL a batch of 1,000 takes
// about 5 ms, and 5,000 about 36 ms. With the pause after each batch, a
// pass deletes up to some 35,000 tasks a second, and one pass a minute
// keeps up with any rate the engine runs tasks at.
var defaultRetention = retention{
	first:    5 * time.Second,
	interval: time.Minute,
	term:     3 * time.Minute,
	batch:    1000,
	minPause: 10 * time.Millisecond,
}

// retentionDefaults validates c's retentions and applies their defaults.
func (c *Config) retentionDefaults() error {
	for _, f := range []struct {
		name string
		d    *time.Duration
		def  time.Duration
	}{
		{"RetainCompleted", &c.RetainCompleted, DefaultRetainCompleted},
		{"RetainFailed", &c.RetainFailed, DefaultRetainFailed},
		{"RetainCanceled", &c.RetainCanceled, DefaultRetainCanceled},
	} {
		switch {
		case *f.d < 0:
			return invalid("Config."+f.name, "must not be negative, not %v (Forever keeps tasks forever)", *f.d)
		case *f.d == 0:
			*f.d = f.def
		}
	}
	return nil
}

// retentions lists the terminal states that are deleted, with their
// retention; states kept Forever are left out.
func (c *Config) retentions() []stateRetention {
	var out []stateRetention
	for _, r := range []stateRetention{
		{StateCompleted, c.RetainCompleted},
		{StateFailed, c.RetainFailed},
		{StateCanceled, c.RetainCanceled},
	} {
		if r.age != Forever {
			out = append(out, r)
		}
	}
	return out
}

// stateRetention is how long tasks that ended in a state are kept.
type stateRetention struct {
	state State
	age   time.Duration
}

// purgeParams validates the arguments of PurgeTasks.
func purgeParams(state State, olderThan time.Duration, limit int) error {
	switch {
	case !state.Terminal():
		return invalid("state", "%q is not a terminal state", state)
	case olderThan < 0:
		return invalid("older_than", "must not be negative, not %v", olderThan)
	case limit < 1:
		return invalid("limit", "must be at least 1, not %d", limit)
	}
	return nil
}

// electParams validates the arguments of Elect.
func electParams(role, holder string, term time.Duration) error {
	switch {
	case role == "":
		return invalid("role", "must not be empty")
	case holder == "":
		return invalid("holder", "must not be empty")
	case term <= 0:
		return invalid("term", "must be positive, not %v", term)
	}
	return nil
}

// jitter returns a random duration within 25% of d.
func jitter(d time.Duration) time.Duration { return d*3/4 + rand.N(d/2+1) }

// retain is the retention goroutine: a pass soon after Start, then one
// every interval, until Stop begins, which interrupts a pass at once. It
// resigns the role when it exits if it held it, so that another engine
// takes over at its next pass rather than at the end of the term.
func (r *run) retain() {
	defer close(r.retentionDone)
	e := r.e
	if len(e.cfg.retentions()) == 0 {
		return // everything is kept forever
	}
	timer := time.NewTimer(jitter(e.retain.first))
	defer timer.Stop()
	won := false
	for {
		select {
		case <-r.stopping:
			if won {
				// r.ctx lives until Stop is done waiting, and ends at
				// once when Stop gives up.
				ctx, cancel := context.WithTimeout(r.ctx, storeTimeout)
				defer cancel()
				if err := e.store.Resign(ctx, retentionRole, e.id); err != nil && r.ctx.Err() == nil {
					e.log.Error("tasks: retention: resign the role; another engine takes it when its term ends", "err", err)
				}
			}
			return
		case <-timer.C:
		}
		if r.purge(r.stopCtx) {
			won = true
		}
		timer.Reset(jitter(e.retain.interval))
	}
}

// purge is one pass of retention: if this engine holds the role, or takes
// it, it deletes the finished tasks past their retention, state by state,
// in batches, until a batch comes back short, renewing the role as it
// goes and stopping as soon as it loses it, a call fails or ctx ends. It
// reports whether it held the role at all, and logs what it deleted.
func (r *run) purge(ctx context.Context) (won bool) {
	e, p := r.e, r.e.retain
	start := time.Now()
	var electedAt time.Time
	elect := func() bool {
		at := time.Now()
		sctx, cancel := context.WithTimeout(ctx, storeTimeout)
		ok, err := e.store.Elect(sctx, retentionRole, e.id, p.term)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				e.obs.storeError("elect")
				e.log.Error("tasks: retention: elect the engine that deletes finished tasks", "err", err)
			}
			return false
		}
		if ok {
			electedAt, won = at, true
		}
		return ok
	}
	deleted := make(map[State]int)
	defer func() {
		total := 0
		attrs := []any{}
		for _, s := range []State{StateCompleted, StateFailed, StateCanceled} {
			total += deleted[s]
			attrs = append(attrs, slog.Int(string(s), deleted[s]))
		}
		if total > 0 {
			attrs = append(attrs, slog.Duration("duration", time.Since(start)))
			e.log.Info("tasks: retention: deleted finished tasks past their retention", attrs...)
		}
	}()
	if !elect() {
		return won
	}
	for _, sr := range e.cfg.retentions() {
		for {
			if time.Since(electedAt) > p.term/3 && !elect() {
				return won
			}
			began := time.Now()
			sctx, cancel := context.WithTimeout(ctx, storeTimeout)
			n, err := e.store.PurgeTasks(sctx, sr.state, sr.age, p.batch)
			cancel()
			took := time.Since(began)
			deleted[sr.state] += n
			if err != nil {
				if ctx.Err() == nil {
					e.obs.storeError("purge")
					e.log.Error("tasks: retention: delete finished tasks", "state", sr.state, "err", err)
				}
				return won
			}
			if n < p.batch {
				break
			}
			pause := time.NewTimer(max(pauseFactor*took, p.minPause))
			select {
			case <-pause.C:
			case <-ctx.Done():
				pause.Stop()
				return won
			}
		}
	}
	return won
}
