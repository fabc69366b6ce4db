package tasks

import (
	"sync"
	"time"

	"github.com/taskwheel/tasks/internal/sqlstore"
)

// The due floor (PostgreSQL). A claimed task leaves its entry in
// taskwheel_tasks_due, dead, until a vacuum removes it, and claims take
// the earliest tasks, so the dead entries gather at the head of the index
// where no insert ever lands, and a claim that scans from the head reads
// every one of them: between two vacuums of a table with a long history,
// 2,500 claims a second grew each claim's scan by 20 pages a second, to
// 1,800 pages and 18 ms (tasksbench W9, BENCHMARKS.md). Autovacuum's
// default threshold (a fifth of the table dead) lets far more gather, and
// a drain of tasks stored at once, all due at the same time, gathers them
// within one due time.
//
// So the claim without limits, and the one-statement claim under limits
// (claimFlowFast), scan the index from a floor: the due time and ID (the
// index's key; IDs are ordered bytewise, COLLATE "C") of the last task
// that the last of them took. Each claims every task it reads, or none, so
// no pending task before the floor was one that claim could see and lock:
// it took them all, in the index's order. Those it could not are
//   - stored or made pending (a retry, a rescue, a replay, a task handed
//     back) by a transaction that committed after the claim began: each
//     is announced by a wake-up, from the triggers of migration 0021 or the
//     store's own after InsertMany, and the store lowers the floor to the
//     due time of the wake-ups it hears (package postgres's Listen) and of
//     its own inserts;
//   - held by a transaction that then rolled back (a claim whose
//     connection ended), or announced by a wake-up that was lost: Upcoming,
//     which reads from the head of the index (the engine calls it every
//     Config.PollInterval, and at once after a claim did not return a task
//     that its wheel said was due), lowers the floor to the first task
//     pending.
// So the floor delays no task that a wake-up announces, and a task whose
// wake-up was lost no longer than it was delayed before: until the next
// poll. claimFlow's transaction, which parks some of the tasks it reads,
// and the claims under fairness, one app at a time, read from the head.
//
// A claim raises the floor only as far as every lowering made while it ran
// allows: a lowering may be for a task the claim could not see yet.

func init() {
	sqlstore.Woken = func(store any, runAt time.Time) { store.(*SQLStore).floor.lower(runAt, "") }
}

// floorLows is how many of the last lowerings a dueFloor remembers: a
// claim during which more were made leaves the floor as it is.
const floorLows = 64

// dueFloor is where a claim's scan of the due index begins. Its
// zero value begins at the head. It is safe for concurrent use.
type dueFloor struct {
	mu   sync.Mutex
	at   time.Time            // the floor: (at, id) in the index's order
	id   string               // "" after a lowering: before every task due at at
	seq  uint64               // lowerings made so far
	lows [floorLows]time.Time // the time of lowering i, at i % floorLows
}

// start returns the floor for a claim to scan from, and the lowerings made
// so far, for raise.
func (f *dueFloor) start() (at time.Time, id string, since uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.at, f.id, f.seq
}

// raise moves the floor up to (at, id), a task taken by a claim that began
// after since lowerings, but not past a lowering made since then.
func (f *dueFloor) raise(at time.Time, id string, since uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.seq-since > floorLows {
		return // lowerings the floor no longer remembers
	}
	for i := since; i < f.seq; i++ {
		if low := f.lows[i%floorLows]; !low.After(at) {
			at, id = low, ""
		}
	}
	if c := at.Compare(f.at); c > 0 || c == 0 && id > f.id {
		f.at, f.id = at, id
	}
}

// lower moves the floor down to (at, id), a task that may be pending ("":
// the first due at at), unless it is lower already; claims in flight will
// not raise it past the first task due at at.
func (f *dueFloor) lower(at time.Time, id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := at.Compare(f.at); c < 0 || c == 0 && id < f.id {
		f.at, f.id = at, id
	}
	f.lows[f.seq%floorLows] = at
	f.seq++
}
