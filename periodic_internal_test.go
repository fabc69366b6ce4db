package tasks

import (
	"testing"
	"time"
)

// TestMissedSlots checks missedSlots, which jumps through long backlogs,
// against stepping through every slot.
func TestMissedSlots(t *testing.T) {
	t.Parallel()
	step := func(sched schedule, s, x time.Time) (last, first time.Time) {
		last = s
		for {
			first = sched.Next(last)
			if first.IsZero() || !first.Before(x) {
				return last, first
			}
			last = first
		}
	}
	x := time.Date(2026, 3, 9, 20, 0, 0, 0, time.UTC).Add(123 * time.Millisecond)
	for _, c := range []struct {
		spec, zone string
		behind     time.Duration
	}{
		{"@every 1s", "", 2 * time.Hour},
		{"@every 7s", "", 30 * 24 * time.Hour},
		{"@every 1h", "", 1000 * 24 * time.Hour},
		{"* * * * * *", "", 2 * time.Hour},
		{"*/7 * * * * *", "UTC", 3 * time.Hour},
		{"* * 9 * * *", "UTC", 3 * 24 * time.Hour},              // every second of 9:00 to 9:59 only
		{"* * 2 * * *", "America/New_York", 3 * 24 * time.Hour}, // across the DST gap of 2026-03-08
		{"0 * * * *", "Asia/Kolkata", 90 * 24 * time.Hour},
		{"@daily", "", 2 * 365 * 24 * time.Hour},
		{"0 0 31 * *", "", 5 * 365 * 24 * time.Hour},
		{"* * * * *", "", time.Minute}, // a single slot behind
	} {
		sched, err := parseSchedule(c.spec, c.zone)
		if err != nil {
			t.Fatal(err)
		}
		s := sched.Next(x.Add(-c.behind))
		wantLast, wantFirst := step(sched, s, x)
		last, first := missedSlots(sched, s, x)
		if !last.Equal(wantLast) || !first.Equal(wantFirst) {
			t.Errorf("%s in %q, %v behind: got last %v, first %v; want %v, %v", c.spec, c.zone, c.behind, last, first, wantLast, wantFirst)
		}
	}
}

// TestMissedSlots_YearsBehind checks that a backlog of years of slots every
// second takes no noticeable time.
func TestMissedSlots_YearsBehind(t *testing.T) {
	t.Parallel()
	x := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, spec := range []string{"@every 1s", "* * * * * *"} {
		sched, err := parseSchedule(spec, "")
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		last, first := missedSlots(sched, x.AddDate(-5, 0, 0), x)
		if want := x.Add(-time.Second); !last.Equal(want) || !first.Equal(x) {
			t.Errorf("%s: got last %v, first %v; want %v, %v", spec, last, first, want, x)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("%s: took %v for 5 years of slots, want well under a second", spec, d)
		}
	}
}
