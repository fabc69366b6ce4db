package tasks

import (
	"slices"
	"testing"
	"time"
)

// TestScheduler_ClaimedBeforeDue checks that a task a claim took before the
// wheel said it was due (the store's clock had it due, or a backlog brought
// it forward) does not come due again: no claim for it, and no read of the
// store, which a claim that did not find it would ask for.
func TestScheduler_ClaimedBeforeDue(t *testing.T) {
	t.Parallel()
	s := newTestScheduler(4, time.Second)
	s.startRead(0)
	s.received(storeRead(0, dueAt("a", 10*time.Millisecond), dueAt("b", 20*time.Millisecond)))
	claimNothing(t, s, 0)
	now := at(10 * time.Millisecond)
	s.advance(now)
	if !slices.Equal(s.popped, []string{"a"}) {
		t.Fatalf("popped %v at 10ms, want [a]", s.popped)
	}
	s.claimed(s.claimable(now, 0), tasksNamed("a", "b"), 0, ns(now))
	refillAt := s.refillAt
	later := at(20 * time.Millisecond)
	s.advance(later)
	if len(s.popped) > 0 || s.claimable(later, 0) != 0 {
		t.Errorf("at 20ms popped %v, claimable %d; want nothing (b was claimed)", s.popped, s.claimable(later, 0))
	}
	if s.refillAt != refillAt || s.recheckAt != 0 {
		t.Errorf("refill at tick %d, recheck at %d; want the refill unchanged (%d) and no recheck", s.refillAt, s.recheckAt, refillAt)
	}
	// Its retry is a new entry, due at its own time.
	s.addHints(ns(later), []Due{dueAt("b", 30*time.Millisecond)})
	s.advance(at(30 * time.Millisecond))
	if !slices.Equal(s.popped, []string{"b"}) {
		t.Errorf("at 30ms popped %v, want [b] (its retry)", s.popped)
	}
}

// TestScheduler_ClaimedDuringRead checks that a task claimed while a read
// was in flight, which the read still found pending, does not go into the
// wheel; and that the next read, should the task be pending again, puts it
// there.
func TestScheduler_ClaimedDuringRead(t *testing.T) {
	t.Parallel()
	s := newTestScheduler(4, time.Second)
	s.startRead(0)
	s.due = false // nothing due at start: only the read's tasks
	now := at(time.Millisecond)
	s.addHints(ns(now), []Due{dueAt("a", 0)})
	s.advance(now)
	s.claimed(s.claimable(now, 0), tasksNamed("a"), 0, ns(now))
	s.received(storeRead(0, dueAt("a", 0), dueAt("b", 5*time.Millisecond)))
	if _, ok := s.inWheel["a"]; ok || s.w.len != 1 {
		t.Errorf("wheel holds %v (%d entries) after the read; want only b", s.inWheel, s.w.len)
	}
	// A later read that finds it pending again (its retry) puts it in.
	s.refillNow(now)
	s.startRead(now)
	s.received(storeRead(ns(now), dueAt("a", 50*time.Millisecond)))
	if _, ok := s.inWheel["a"]; !ok {
		t.Errorf("wheel holds %v after the next read, want a in it", s.inWheel)
	}
}

// TestScheduler_Skew checks what the scheduler takes the store's clock to
// be: the largest lower bound of the last skewReads reads, each the larger
// of its clock call's and its read's, so that a slow read does not make
// tasks wake late; a store clock set forward is followed at once, and so is
// one set back, which a read's upper bound shows.
func TestScheduler_Skew(t *testing.T) {
	t.Parallel()
	// read returns a read that began at beganNs on a store whose clock
	// is ours plus skew, whose clock call took clockTook and whose read
	// of tasks took readTook more.
	read := func(beganNs int64, skew, clockTook, readTook time.Duration) upcomingRead {
		return upcomingRead{
			beganNs:  beganNs,
			clock:    testEpoch.Add(time.Duration(beganNs) + skew),
			clockNs:  beganNs + int64(clockTook),
			storeNow: testEpoch.Add(time.Duration(beganNs) + skew + clockTook),
			atNs:     beganNs + int64(clockTook+readTook),
		}
	}
	const ms = time.Millisecond
	s := newTestScheduler(4, time.Second)
	steps := []struct {
		name string
		read upcomingRead
		want time.Duration
	}{
		{"first read, slow", read(0, 0, 3*ms, 9*ms), -3 * ms},
		{"a faster clock call", read(int64(time.Second), 0, ms/2, 9*ms), -ms / 2},
		{"a slower one: the faster holds", read(int64(2*time.Second), 0, 4*ms, 9*ms), -ms / 2},
		{"no clock call: the read's bound", upcomingRead{storeNow: testEpoch.Add(3 * time.Second), atNs: int64(3*time.Second + ms)}, -ms / 2},
		{"store clock set forward an hour", read(int64(4*time.Second), time.Hour, ms, 9*ms), time.Hour - ms},
	}
	for _, st := range steps {
		s.startRead(0)
		s.received(st.read)
		if got := time.Duration(s.skew); got != st.want {
			t.Fatalf("%s: skew %v, want %v", st.name, got, st.want)
		}
	}
	// Set back an hour: followed at once, the forward reads forgotten,
	// and the faster bounds learnt again.
	for i, st := range []struct {
		clockTook time.Duration
		want      time.Duration
	}{{ms, -ms}, {ms / 4, -ms / 4}, {ms, -ms / 4}} {
		s.startRead(0)
		s.received(read(int64(5*time.Second)+int64(i)*int64(time.Second), 0, st.clockTook, 9*ms))
		if got := time.Duration(s.skew); got != st.want {
			t.Fatalf("read %d after the clock went back: skew %v, want %v", i+1, got, st.want)
		}
	}
	// A task read is due at its tick by that skew, not by its read's
	// clock: its read took 9 ms, which it would have been late by.
	s = newTestScheduler(4, time.Second)
	s.startRead(0)
	r := read(0, 0, ms/2, 9*ms)
	r.due = []Due{dueAt("a", 20*ms)}
	s.received(r)
	claimNothing(t, s, 0)
	wantAt := ticks(0, 20*ms+ms/2)
	s.advance(wantAt - 1)
	if len(s.popped) > 0 {
		t.Fatalf("popped %v a tick before %v, want nothing", s.popped, time.Duration(ns(wantAt)))
	}
	s.advance(wantAt)
	if !slices.Equal(s.popped, []string{"a"}) {
		t.Errorf("popped %v at %v, want [a]", s.popped, time.Duration(ns(wantAt)))
	}
}
