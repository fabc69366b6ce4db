package tasks

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// These tests drive the scheduler's state (scheduler) directly, as
// run.schedule does, with a made-up time and made-up store answers: no
// goroutine, no store, no clock.

// testEpoch is the engine's epoch in these tests: nowNs 0, tick 0.
var testEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func newTestScheduler(workers int, poll time.Duration) *scheduler {
	return newScheduler(&Config{Workers: workers, PollInterval: poll}, testEpoch, 0)
}

// at returns the tick d after the epoch (rounded up, as ticks rounds).
func at(d time.Duration) int64 { return ticks(0, d) }

// ns returns the nanoseconds since the epoch of tick.
func ns(tick int64) int64 { return tick * int64(wheelTick) }

// storeRead returns a read of the store's upcoming tasks made at atNs, on
// a store whose clock is ours (no skew), that found dues.
func storeRead(atNs int64, dues ...Due) upcomingRead {
	return upcomingRead{storeNow: testEpoch.Add(time.Duration(atNs)), due: dues, atNs: atNs}
}

// dueAt returns task id due d after the epoch on the store's clock.
func dueAt(id string, d time.Duration) Due { return Due{ID: id, RunAt: testEpoch.Add(d)} }

// claimNothing has s claim at now, finding nothing due.
func claimNothing(t *testing.T, s *scheduler, now int64) {
	t.Helper()
	n := s.claimable(now, 0)
	if n == 0 {
		t.Fatalf("claimable(%d) = 0, want a claim", now)
	}
	s.claimed(n, nil, 0, ns(now))
}

func tasksNamed(ids ...string) []*Task {
	ts := make([]*Task, len(ids))
	for i, id := range ids {
		ts[i] = &Task{ID: id}
	}
	return ts
}

// TestScheduler_Hints checks that a hint due within the wheel's window,
// reckoned on the store's clock at the loop's now, lands in the wheel and
// makes its task due at its tick, and that one beyond the window does not.
func TestScheduler_Hints(t *testing.T) {
	t.Parallel()
	const nowNs = int64(3 * time.Second)
	tests := []struct {
		name   string
		skew   time.Duration // store clock minus ours
		delay  time.Duration // from the store's now to the hint's due time
		wantAt int64         // tick it pops at; -1: never
	}{
		{"within the window", 0, 10 * time.Second, ticks(nowNs, 10*time.Second)},
		{"at the window's edge", 0, wheelWindow, ticks(nowNs, wheelWindow)},
		{"beyond the window", 0, wheelWindow + time.Millisecond, -1},
		{"past", 0, -5 * time.Second, nowNs / int64(wheelTick)},
		{"store clock an hour ahead", time.Hour, 10 * time.Second, ticks(nowNs, 10*time.Second)},
		{"store clock an hour behind", -time.Hour, 10 * time.Second, ticks(nowNs, 10*time.Second)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newTestScheduler(4, time.Hour)
			if !s.startRead(0) {
				t.Fatal("no read at start")
			}
			s.received(upcomingRead{storeNow: testEpoch.Add(tt.skew), atNs: 0})
			claimNothing(t, s, 0)
			now := nowNs / int64(wheelTick)
			s.advance(now)
			runAt := testEpoch.Add(time.Duration(nowNs) + tt.skew + tt.delay)
			s.addHints(nowNs, []Due{{ID: "a", RunAt: runAt}})
			if tt.wantAt < 0 {
				s.advance(at(2 * time.Hour))
				if len(s.popped) > 0 || s.w.len > 0 {
					t.Errorf("popped %v, %d left in the wheel; want the hint not in the wheel", s.popped, s.w.len)
				}
				return
			}
			if tt.wantAt > now {
				// Unless the next refill comes first.
				if got, want := s.nextWake(now), min(tt.wantAt, at(maxRefill)); got != want {
					t.Errorf("nextWake = %d, want %d (the hint's tick, or the refill's)", got, want)
				}
				s.advance(tt.wantAt - 1)
				if n := s.claimable(tt.wantAt-1, 0); n != 0 || len(s.popped) > 0 {
					t.Errorf("a tick early: popped %v, claimable %d; want nothing", s.popped, n)
				}
			}
			s.advance(tt.wantAt)
			if !slices.Equal(s.popped, []string{"a"}) {
				t.Errorf("at tick %d popped %v, want [a]", tt.wantAt, s.popped)
			}
			if n := s.claimable(tt.wantAt, 0); n != 4 {
				t.Errorf("at tick %d claimable %d, want 4", tt.wantAt, n)
			}
		})
	}
}

// TestScheduler_AddKeepsOneEntry checks that a task read or hinted again
// at the same time, give or take a tick, stays one entry in the wheel, and
// that one rescheduled earlier is due at its new time, and not again at
// its old one.
func TestScheduler_AddKeepsOneEntry(t *testing.T) {
	t.Parallel()
	s := newTestScheduler(4, time.Hour)
	s.startRead(0)
	s.received(storeRead(0, dueAt("a", time.Second)))
	claimNothing(t, s, 0)
	s.addHints(int64(wheelTick), []Due{dueAt("a", time.Second-wheelTick)}) // a tick earlier: the same
	s.addHints(0, []Due{dueAt("a", time.Second+wheelTick)})                // a tick later: the same
	if s.w.len != 1 {
		t.Errorf("%d entries in the wheel, want 1", s.w.len)
	}
	s.addHints(0, []Due{dueAt("a", 500*time.Millisecond)}) // rescheduled
	s.advance(at(500 * time.Millisecond))
	if !slices.Equal(s.popped, []string{"a"}) {
		t.Errorf("at its new time popped %v, want [a]", s.popped)
	}
	claimNothing(t, s, at(500*time.Millisecond)) // say another engine took it
	s.advance(at(time.Second))
	if len(s.popped) > 0 {
		t.Errorf("at its old time popped %v, want nothing (a stale entry)", s.popped)
	}
}

// TestScheduler_ReadErrorBacksOff checks that failed reads back off with
// delays that double from minStoreBackoff up to PollInterval, with jitter,
// calling the store no more meanwhile, and that a read that succeeds ends
// the backoff.
func TestScheduler_ReadErrorBacksOff(t *testing.T) {
	t.Parallel()
	const poll = 200 * time.Millisecond
	s := newTestScheduler(4, poll)
	nowNs := int64(0)
	var capped []time.Duration
	for i := range 12 {
		now := nowNs / int64(wheelTick)
		if !s.startRead(now) {
			t.Fatalf("error %d: no read at tick %d, when the backoff ended", i, now)
		}
		retryIn := s.readFailed(nowNs)
		base := min(minStoreBackoff<<i, poll)
		if retryIn < base/2 || retryIn > base {
			t.Errorf("error %d: backing off %v, want within [%v, %v]", i+1, retryIn, base/2, base)
		}
		if base == poll {
			capped = append(capped, retryIn)
		}
		until := ticks(nowNs, retryIn)
		if got := s.nextWake(now); got != until {
			t.Errorf("error %d: nextWake = %d, want %d (the backoff's end)", i+1, got, until)
		}
		if s.startRead(until-1) || s.claimable(until-1, 0) != 0 {
			t.Errorf("error %d: the store is called before the backoff ends", i+1)
		}
		nowNs = ns(until)
	}
	if len(capped) < 5 || !slices.ContainsFunc(capped, func(d time.Duration) bool { return d != capped[0] }) {
		t.Errorf("delays at the cap %v: want several, not all the same (jitter)", capped)
	}

	now := nowNs / int64(wheelTick)
	s.startRead(now)
	s.received(storeRead(nowNs))
	now = s.nextWake(now)
	if !s.startRead(now) {
		t.Fatalf("no read at tick %d, the next refill", now)
	}
	if retryIn := s.readFailed(ns(now)); retryIn > minStoreBackoff {
		t.Errorf("first error after a good read: backing off %v, want at most %v", retryIn, minStoreBackoff)
	}
}

// TestScheduler_RefillsAtLeastEveryMaxRefill checks that the store is read
// every PollInterval, and at least every maxRefill however long that is,
// so that a task due beyond the wheel's window is in the wheel at its
// time.
func TestScheduler_RefillsAtLeastEveryMaxRefill(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		poll, want time.Duration
	}{
		{time.Second, time.Second},
		{maxRefill, maxRefill},
		{24 * time.Hour, maxRefill},
	} {
		t.Run(fmt.Sprint("PollInterval ", tt.poll), func(t *testing.T) {
			t.Parallel()
			s := newTestScheduler(4, tt.poll)
			now := int64(0)
			for i := range 3 {
				if !s.startRead(now) {
					t.Fatalf("no read at tick %d", now)
				}
				s.received(storeRead(ns(now)))
				if i == 0 {
					claimNothing(t, s, now)
				}
				next := s.nextWake(now)
				if want := ticks(ns(now), tt.want); next != want {
					t.Fatalf("read %d: next wake at tick %d, want %d (%v later)", i+1, next, want, tt.want)
				}
				if s.startRead(next - 1) {
					t.Fatalf("read %d: read again before %v", i+1, tt.want)
				}
				now = next
			}
		})
	}

	// A task five minutes ahead, on a store whose reads return the tasks
	// due within the window, with PollInterval a day: it pops at its tick.
	t.Run("task beyond the window", func(t *testing.T) {
		t.Parallel()
		s := newTestScheduler(4, 24*time.Hour)
		const due = 5 * time.Minute
		read := func(atNs int64) upcomingRead {
			if due-time.Duration(atNs) <= wheelWindow {
				return storeRead(atNs, dueAt("a", due))
			}
			return storeRead(atNs)
		}
		now := int64(0)
		for range 100 {
			if s.startRead(now) {
				s.received(read(ns(now)))
			}
			s.advance(now)
			if len(s.popped) > 0 {
				if now != at(due) {
					t.Errorf("popped %v at tick %d, want at tick %d", s.popped, now, at(due))
				}
				return
			}
			if n := s.claimable(now, 0); n > 0 {
				s.claimed(n, nil, 0, ns(now))
			}
			now = s.nextWake(now)
		}
		t.Errorf("not popped by tick %d, want at tick %d", now, at(due))
	})
}

// TestScheduler_RecheckGrows checks that when the wheel says a task is due
// and the claim does not return it (the store's clock is behind ours, or
// another engine holds it), the store is read again soon, less soon each
// time up to PollInterval, and that a claim that returns it ends that.
func TestScheduler_RecheckGrows(t *testing.T) {
	t.Parallel()
	const poll = 100 * time.Millisecond
	s := newTestScheduler(4, poll)
	now := int64(0)
	miss := func(i int, want time.Duration) {
		t.Helper()
		if !s.startRead(now) {
			t.Fatalf("miss %d: no read at tick %d", i, now)
		}
		s.received(storeRead(ns(now), dueAt("a", time.Duration(ns(now))))) // due now, says the store
		s.advance(now)
		if !slices.Equal(s.popped, []string{"a"}) {
			t.Fatalf("miss %d: popped %v, want [a]", i, s.popped)
		}
		claimNothing(t, s, now)
		next := s.nextWake(now)
		if wantAt := ticks(ns(now), want); next != wantAt {
			t.Fatalf("miss %d: next wake at tick %d (%v later), want %d (%v later)",
				i, next, time.Duration(ns(next-now)), wantAt, want)
		}
		now = next
	}
	want := time.Millisecond
	for i := range 64 { // long enough for an uncapped doubling to overflow
		miss(i+1, want)
		want = min(2*want, poll)
	}
	if want != poll {
		t.Fatalf("rechecks grew to %v, want %v", want, poll)
	}
	// The claim returns it now: the next miss rechecks soon again.
	s.startRead(now)
	s.received(storeRead(ns(now), dueAt("a", time.Duration(ns(now)))))
	s.advance(now)
	s.claimed(s.claimable(now, 0), tasksNamed("a"), 0, ns(now))
	now = s.nextWake(now)
	miss(65, time.Millisecond)
}

// TestScheduler_RecheckSurvivesRead checks that a recheck asked for while
// a read is in flight is kept when that read's result comes back.
func TestScheduler_RecheckSurvivesRead(t *testing.T) {
	t.Parallel()
	s := newTestScheduler(4, time.Second)
	s.startRead(0) // in flight until the end
	claimNothing(t, s, 0)
	s.addHints(0, []Due{dueAt("a", 5*time.Millisecond)})
	now := at(5 * time.Millisecond)
	s.advance(now)
	claimNothing(t, s, now) // the store does not have it yet
	recheckAt := ticks(ns(now), time.Millisecond)
	s.received(storeRead(ns(now)))
	if got := s.nextWake(now); got != recheckAt {
		t.Errorf("next wake at tick %d, want %d (the recheck)", got, recheckAt)
	}
	if !s.startRead(recheckAt) {
		t.Errorf("no read at tick %d, the recheck", recheckAt)
	}
}

// TestScheduler_RefillNow checks that a refill asked for (after the
// listener reconnects) reads at once, and, asked for while a read is in
// flight, reads again as soon as that read is back.
func TestScheduler_RefillNow(t *testing.T) {
	t.Parallel()
	s := newTestScheduler(4, time.Hour)
	s.startRead(0)
	s.received(storeRead(0))
	now := at(10 * time.Millisecond)
	s.refillNow(now)
	if !s.startRead(now) {
		t.Fatal("no read at once after refillNow")
	}
	now = at(20 * time.Millisecond)
	s.refillNow(now)
	if s.startRead(now) {
		t.Fatal("a second read while one is in flight")
	}
	s.received(storeRead(ns(now)))
	if !s.startRead(now) {
		t.Error("no read at once after the read in flight came back")
	}
}

// TestScheduler_NoBusyLoopWhileReading checks that while a read is in
// flight, the refill it answers does not make the loop wake at once, and
// that its wake time is a valid duration from now.
func TestScheduler_NoBusyLoopWhileReading(t *testing.T) {
	t.Parallel()
	s := newTestScheduler(4, time.Second)
	now := at(time.Second)
	s.startRead(now)
	claimNothing(t, s, now)
	next := s.nextWake(now)
	if sleep := time.Duration(next)*wheelTick - time.Duration(ns(now)); next <= now || sleep <= 0 {
		t.Errorf("while reading, next wake at tick %d, a sleep of %v from tick %d; want later", next, sleep, now)
	}
}

// TestScheduler_FullReadRefillsWhenWheelRunsOut checks that after a read
// that returned wheelLimit tasks, the store is read again when the wheel
// runs out, unless those tasks are due already.
func TestScheduler_FullReadRefillsWhenWheelRunsOut(t *testing.T) {
	t.Parallel()
	const atNs = int64(time.Second)
	for _, tt := range []struct {
		name       string
		rows       int
		from       time.Duration // the first task's delay from the read; each next one a millisecond later
		wantRefill int64
	}{
		{"full", wheelLimit, time.Second, ticks(atNs, time.Second+(wheelLimit-1)*time.Millisecond)},
		{"full, all due", wheelLimit, -2 * time.Second, ticks(atNs, maxRefill)},
		{"not full", wheelLimit - 1, time.Second, ticks(atNs, maxRefill)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newTestScheduler(4, time.Hour)
			dues := make([]Due, tt.rows)
			for i := range dues {
				dues[i] = dueAt(fmt.Sprint(i), time.Duration(atNs)+tt.from+time.Duration(i)*time.Millisecond)
			}
			now := atNs / int64(wheelTick)
			s.startRead(now)
			s.received(storeRead(atNs, dues...))
			s.advance(tt.wantRefill - 1)
			if s.startRead(tt.wantRefill - 1) {
				t.Errorf("read at tick %d, want at %d", tt.wantRefill-1, tt.wantRefill)
			}
			if !s.startRead(tt.wantRefill) {
				t.Errorf("no read at tick %d", tt.wantRefill)
			}
		})
	}
}

// TestScheduler_ClaimsAhead checks how many tasks are claimed at once:
// Workers less those in flight, and under a backlog as many more as the
// pool runs in a claim's cycle (the gathering and the claim), rounded up,
// at most maxAhead×Workers, and none for tasks longer than aheadUpTo
// cycles.
func TestScheduler_ClaimsAhead(t *testing.T) {
	t.Parallel()
	const (
		workers = 4
		took    = time.Millisecond // each claim
	)
	for _, tt := range []struct {
		name    string
		backlog bool
		runNs   time.Duration // tasks' average run time
		want    int
	}{
		{"no backlog", false, time.Microsecond, 1},
		{"backlog, no task ran yet", true, 0, 0},
		{"backlog, tasks as long as a claim's cycle", true, 2 * took, workers},
		{"backlog, tasks as long as a claim", true, took, 2 * workers},
		{"backlog, tasks 2.5 cycles long", true, 5 * took, 2},         // 1.6, rounded up
		{"backlog, tasks 20 cycles long", true, 40 * took, 1},         // 0.2, rounded up
		{"backlog, tasks aheadUpTo cycles long", true, 200 * took, 1}, // the last claimed ahead
		{"backlog, tasks longer than aheadUpTo cycles", true, 201 * took, 0},
		{"backlog, tasks far shorter than a claim", true, took / 1000, maxAhead * workers},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newTestScheduler(workers, time.Second)
			ids := []string{"a", "b", "c", "d"}
			if !tt.backlog {
				ids = ids[:3] // fewer than asked
			}
			s.claimed(s.claimable(0, 0), tasksNamed(ids...), took, 0)
			if !tt.backlog {
				if n := s.claimable(0, int64(tt.runNs)); n != 0 {
					t.Errorf("claimable %d before anything is due, want 0", n)
				}
				s.mayBeDue()
			}
			if got := s.claimable(0, int64(tt.runNs)); got != tt.want {
				t.Errorf("claimable %d with %d in flight, want %d", got, len(ids), tt.want)
			}
		})
	}
}

// TestScheduler_Gathering checks that under a backlog a freed worker waits
// up to the time a claim takes for others to free up, so that one claim
// serves them all, but not once every worker is free.
func TestScheduler_Gathering(t *testing.T) {
	t.Parallel()
	const took = time.Millisecond
	s := newTestScheduler(4, time.Second)
	s.startRead(0)
	s.received(storeRead(0))
	s.claimed(s.claimable(0, 0), tasksNamed("a", "b", "c", "d"), took, 0) // a backlog
	const runNs = int64(time.Second)                                      // nothing claimed ahead
	now := at(10 * time.Millisecond)
	s.freed(1, ns(now))
	until := ticks(ns(now), took)
	if n := s.claimable(now, runNs); n != 0 {
		t.Errorf("claimable %d right after a worker is freed, want 0 (gathering)", n)
	}
	if got := s.nextWake(now); got != until {
		t.Errorf("next wake at tick %d, want %d (the gathering's end)", got, until)
	}
	s.freed(1, ns(now+1))
	if n := s.claimable(until, runNs); n != 2 {
		t.Errorf("claimable %d at the gathering's end, want 2", n)
	}
	s.freed(2, ns(now+2))
	if n := s.claimable(now+2, runNs); n != 4 {
		t.Errorf("claimable %d with every worker free, want 4 at once", n)
	}

	// A claim quicker than a tick: no gathering.
	s = newTestScheduler(4, time.Second)
	s.claimed(s.claimable(0, 0), tasksNamed("a", "b", "c", "d"), wheelTick/2, 0)
	s.freed(1, ns(now))
	if n := s.claimable(now, runNs); n != 1 {
		t.Errorf("after a claim quicker than a tick, claimable %d, want 1 at once", n)
	}
}
