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
// that the last of them took where its scan found it (not one whose row a
// transaction committed after the claim's snapshot changed: PostgreSQL
// takes that at its new due time; see seenInScan). Each claims every task
// it reads, or none, so no pending task before the floor was one that
// claim could see and lock: it took them all, in the index's order. Those
// it could not are
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
//   - and, since a caller of Store.Claim need not read the upcoming tasks
//     (Claim takes the earliest due tasks), a claim begun
//     floorHeadEvery or more after the floor was last taken to the head,
//     by such a read or by such a claim, scans from the head itself.
// So the floor delays no task that a wake-up announces, and a task whose
// wake-up was lost no longer than it was delayed before, until the next
// poll, nor, whoever claims, longer than floorHeadEvery after the claim
// that first could take it. claimFlow's transaction, which parks some of
// the tasks it reads, and the claims under fairness, one app at a time,
// read from the head.
//
// A claim raises the floor only as far as every lowering made while it ran
// allows: a lowering may be for a task the claim could not see yet. The
// floor keeps, for each claim in flight, the earliest lowering made
// since it began, however many were made: a store that stores a steady
// stream of tasks lowers it many times during each claim (twice for each
// task stored: its insert, and the wake-up that its Listen hears), and a
// claim that could not tell which lowerings were made while it ran would
// have to leave the floor where it was, at the head of the dead entries
// after a restart, however long the stream lasted.

func init() {
	sqlstore.Woken = func(store any, runAt time.Time) { store.(*SQLStore).floor.lower(runAt, "") }
}

// floorHeadEvery is how often, at least, a claim scans the due index
// from the head, should nothing have read it from there meanwhile: the
// engine's default Config.PollInterval, at which its reads of the upcoming
// tasks do it for the claims.
const floorHeadEvery = DefaultPollInterval

// dueFloor is where a claim's scan of the due index begins. Its
// zero value begins at the head. It is safe for concurrent use.
type dueFloor struct {
	mu       sync.Mutex
	at       time.Time     // the floor: (at, id) in the index's order
	id       string        // "" after a lowering: before every task due at at
	headAt   time.Time     // when it was last taken to the head (time.Now)
	inFlight []*floorClaim // the claims that began and have not ended
}

// floorClaim is a claim in flight, from start to raise or end.
type floorClaim struct {
	head    bool      // the claim scans from the head
	lowered bool      // a lowering was made since the claim began
	low     time.Time // the earliest of those lowerings, if lowered
}

// start returns the floor for a claim to scan from, and the claim, for
// raise or end, which the claim must call once it ends.
// The zero time and "" are the head: floorHeadEvery after the floor was
// last taken there, start returns them.
func (f *dueFloor) start() (at time.Time, id string, c *floorClaim) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c = &floorClaim{}
	f.inFlight = append(f.inFlight, c)
	if now := time.Now(); now.Sub(f.headAt) >= floorHeadEvery {
		f.headAt, c.head = now, true
		return time.Time{}, "", c
	}
	return f.at, f.id, c
}

// end ends claim c, begun by start, which took no task.
func (f *dueFloor) end(c *floorClaim) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.remove(c)
}

// remove removes c from the claims in flight; f.mu is held.
func (f *dueFloor) remove(c *floorClaim) {
	for i, in := range f.inFlight {
		if in == c {
			last := len(f.inFlight) - 1
			f.inFlight[i], f.inFlight[last] = f.inFlight[last], nil
			f.inFlight = f.inFlight[:last]
			return
		}
	}
}

// raise ends claim c, begun by start, and moves the floor up to (at, id),
// the last task it took, but not past a lowering made while it ran. A
// claim from the head moves it there even if that is lower: tasks between
// there and the floor may be pending (a rolled-back claim's), which the
// next claims must reach.
func (f *dueFloor) raise(c *floorClaim, at time.Time, id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.remove(c)
	if c.lowered && !c.low.After(at) {
		at, id = c.low, ""
	}
	if cmp := at.Compare(f.at); c.head || cmp > 0 || cmp == 0 && id > f.id {
		f.at, f.id = at, id
	}
}

// readHead takes in a read of the due index from its head, which found
// (at, id) the first task pending, or, if !found, none due soon: the floor
// is lowered to it, and claims need not scan from the head for another
// floorHeadEvery.
func (f *dueFloor) readHead(at time.Time, id string, found bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.headAt = time.Now()
	if found {
		f.lowerLocked(at, id)
	}
}

// lower moves the floor down to (at, id), a task that may be pending ("":
// the first due at at), unless it is lower already; claims in flight will
// not raise it past the first task due at at.
func (f *dueFloor) lower(at time.Time, id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lowerLocked(at, id)
}

// lowerLocked is lower; f.mu is held.
func (f *dueFloor) lowerLocked(at time.Time, id string) {
	if c := at.Compare(f.at); c < 0 || c == 0 && id < f.id {
		f.at, f.id = at, id
	}
	for _, c := range f.inFlight {
		if !c.lowered || at.Before(c.low) {
			c.lowered, c.low = true, at
		}
	}
}
