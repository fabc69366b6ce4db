package tasks

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/taskwheel/tasks/internal/sqlstore"
)

// Wake-ups sent after the commit (PostgreSQL). The triggers of migration
// 0021 notify other engines of new tasks inside the inserting
// transaction, and PostgreSQL then holds a lock on its notification queue
// from that transaction's commit until the commit is flushed: notifying
// transactions commit one at a time, and each pays for the queue and for
// signalling every listening backend. W1 (8 producers, group commit) ran
// at 1,334 tasks a second with the trigger's NOTIFY and 3,216 without it,
// against a bare-table floor of about 4,000 (BENCHMARKS.md, round 2).
//
// So a store of package postgres (which owns its lifecycle, and calls
// sqlstore.DeferWakeups) tells the trigger, in the statement of its own
// InsertMany, that it notifies itself (migration 0024), and after the
// commit hands the tasks' wake-up to a wakeSender, which sends it from a
// transaction of its own, coalesced with every other that arrives while one
// is being sent: one NOTIFY in flight per store, whatever the rate of
// inserts, and none in the inserts' transactions. Inserts in the caller's
// transaction (EnqueueTx), single inserts and updates keep the trigger's
// NOTIFY, atomic with their commit. A process that dies between an insert's
// commit and its wake-up loses that wake-up, as a lost notification:
// other engines find the tasks at their next poll (Config.PollInterval).

// wakeDeferredCTE, a CTE put in the WITH of an INSERT … SELECT of the
// tasks table and joined into its FROM, tells migration 0024's trigger
// that the store notifies for the statement itself: the setting is local
// to the transaction, so it never outlives the statement's.
const wakeDeferredCTE = `wake AS MATERIALIZED (SELECT set_config('taskwheel.notify', 'deferred', true))`

// notifyWakePostgres sends a wake-up in the payload format of migration
// 0021's triggers (taskwheel_wake): the earliest task due, its ID, and the
// latest due time when later than the earliest.
const notifyWakePostgres = `SELECT pg_notify('taskwheel_' || left(md5(current_schema()), 16), taskwheel_wake($1, $2, $3))`

// wakeHorizon is how far ahead a new task must be due for a wake-up, as in
// the triggers: engines read the tasks due within their window (a minute)
// when they poll.
const wakeHorizon = time.Minute

func init() {
	sqlstore.DeferWakeups = func(store any) func() {
		s := store.(*SQLStore)
		if s.dialect != Postgres {
			return func() {}
		}
		s.wakes = &wakeSender{db: s.db}
		return s.wakes.close
	}
}

// wake is a wake-up: the earliest task due (its time and ID) and the
// latest due time among the tasks it is for.
type wake struct {
	lo, hi time.Time
	id     string
}

// merge makes w the wake-up for its tasks and those of o.
func (w *wake) merge(o wake) {
	if o.lo.Before(w.lo) {
		w.lo, w.id = o.lo, o.id
	}
	if o.hi.After(w.hi) {
		w.hi = o.hi
	}
}

// wakeFor returns the wake-up for the pending tasks of ts due within
// wakeHorizon of their creation, and whether there are any.
func wakeFor(ts []*Task) (w wake, ok bool) {
	for _, t := range ts {
		if t == nil || t.NextAttemptAt == nil || (t.State != StateScheduled && t.State != StateRetrying) ||
			t.NextAttemptAt.After(t.CreatedAt.Add(wakeHorizon)) {
			continue
		}
		o := wake{lo: *t.NextAttemptAt, hi: *t.NextAttemptAt, id: t.ID}
		if !ok {
			w, ok = o, true
			continue
		}
		w.merge(o)
	}
	return w, ok
}

// wakeSender sends the wake-ups of a store's inserts after their commits,
// one at a time, coalescing those that arrive while one is sent. Its
// goroutine runs only while wake-ups are pending: add starts it, and it
// exits when none is left; close waits for it. It is safe for concurrent
// use.
type wakeSender struct {
	db *sqlx.DB

	closed atomic.Bool // inserts let the trigger notify again

	mu      sync.Mutex
	pending wake
	has     bool // pending holds a wake-up
	sending bool // the goroutine runs
	done    sync.WaitGroup
}

// deferring reports whether inserts should leave their wake-up to s: not
// once s is closed.
func (s *wakeSender) deferring() bool { return s != nil && !s.closed.Load() }

// add sends w, the wake-up of an insert that left it to s (deferring), now
// or with the wake-ups that come while one is sent. Once s is closed it
// sends w itself, before returning: close waits only for what was pending
// when it came, not for inserts that go on after it.
func (s *wakeSender) add(w wake) {
	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		if err := s.notify(w); err != nil {
			lost(w, 1, err)
		}
		return
	}
	defer s.mu.Unlock()
	s.put(w)
	if s.sending {
		return
	}
	s.sending = true
	s.done.Add(1)
	go s.send() // exits when nothing is pending; joined by close
}

// notify sends w.
func (s *wakeSender) notify(w wake) error {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	_, err := s.db.ExecContext(ctx, notifyWakePostgres, w.lo, w.id, w.hi)
	return err
}

// lost logs that w was not sent after tries tries.
func lost(w wake, tries int, err error) {
	slog.Error("tasks: notify other engines of new tasks; they find them at their next poll",
		"task", w.id, "tries", tries, "err", err)
}

// wakeTries bounds the sends of one wake-up: a NOTIFY that failed (its
// connection ended, say) is sent again, with what came meanwhile, after
// wakeRetry, then twice as long, until it was tried wakeTries times.
const (
	wakeTries = 4
	wakeRetry = 50 * time.Millisecond
)

// send sends the pending wake-ups until none is left. A failed send is
// tried again (see wakeTries), unless the store is closing; then it is
// logged, and the engines that missed it find the tasks at their next
// poll, as after a lost notification.
func (s *wakeSender) send() {
	defer s.done.Done()
	tries, wait := 0, wakeRetry
	for {
		s.mu.Lock()
		if !s.has {
			s.sending = false
			s.mu.Unlock()
			return
		}
		w := s.pending
		s.has = false
		s.mu.Unlock()
		err := s.notify(w)
		if err == nil {
			tries, wait = 0, wakeRetry
			continue
		}
		if tries++; tries < wakeTries && s.retry(w) {
			time.Sleep(wait)
			wait *= 2
			continue
		}
		lost(w, tries, err)
		tries, wait = 0, wakeRetry
	}
}

// retry makes w pending again, merged with what came meanwhile, unless s
// is closing; it reports whether it did.
func (s *wakeSender) retry(w wake) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return false
	}
	s.put(w)
	return true
}

// put makes w pending, merged with the pending wake-up if there is one.
// s.mu is held.
func (s *wakeSender) put(w wake) {
	if s.has {
		s.pending.merge(w)
	} else {
		s.pending, s.has = w, true
	}
}

// close makes inserts leave their wake-ups to the trigger again, and
// waits until the pending ones are sent. An insert that left its wake-up
// to s and ends after close sends it itself (see add).
func (s *wakeSender) close() {
	s.mu.Lock()
	s.closed.Store(true)
	s.mu.Unlock()
	s.done.Wait()
}
