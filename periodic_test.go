package tasks_test

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/taskwheel/tasks"
)

// robfig/cron's schedules are Schedules.
var _ tasks.Schedule = cron.Schedule(nil)

func mustZone(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// TestParseSchedule checks the run times of schedules, in fake time: Next
// from a given time, repeatedly.
func TestParseSchedule(t *testing.T) {
	t.Parallel()
	ny := mustZone(t, "America/New_York")
	kolkata := mustZone(t, "Asia/Kolkata")
	utc := func(y int, mo time.Month, d, h, mi, s int) time.Time {
		return time.Date(y, mo, d, h, mi, s, 0, time.UTC)
	}
	in := func(loc *time.Location, y int, mo time.Month, d, h, mi int) time.Time {
		return time.Date(y, mo, d, h, mi, 0, 0, loc)
	}
	for _, c := range []struct {
		name, spec, zone string
		from             time.Time
		want             []time.Time
	}{
		{
			name: "DST gap: 2:30 does not exist on 2026-03-08 in New York, so that day has no run",
			spec: "30 2 * * *", zone: "America/New_York", from: in(ny, 2026, 3, 7, 12, 0),
			want: []time.Time{in(ny, 2026, 3, 9, 2, 30), in(ny, 2026, 3, 10, 2, 30)},
		},
		{
			name: "DST gap: hourly runs go from 1:00 EST to 3:00 EDT, an hour apart",
			spec: "0 * * * *", zone: "America/New_York", from: in(ny, 2026, 3, 8, 0, 10),
			want: []time.Time{utc(2026, 3, 8, 6, 0, 0), utc(2026, 3, 8, 7, 0, 0), utc(2026, 3, 8, 8, 0, 0)},
		},
		{
			name: "DST overlap: 1:30 happens twice on 2026-11-01 in New York, and runs twice",
			spec: "30 1 * * *", zone: "America/New_York", from: in(ny, 2026, 10, 31, 12, 0),
			want: []time.Time{
				utc(2026, 11, 1, 5, 30, 0), // 01:30 EDT
				utc(2026, 11, 1, 6, 30, 0), // 01:30 EST
				utc(2026, 11, 2, 6, 30, 0),
			},
		},
		{
			name: "DST: midnight in New York before and after the change",
			spec: "@daily", zone: "America/New_York", from: in(ny, 2026, 3, 7, 12, 0),
			want: []time.Time{utc(2026, 3, 8, 5, 0, 0), utc(2026, 3, 9, 4, 0, 0)},
		},
		{
			name: "@daily in Asia/Kolkata is 18:30 UTC",
			spec: "@daily", zone: "Asia/Kolkata", from: utc(2026, 1, 1, 12, 0, 0),
			want: []time.Time{utc(2026, 1, 1, 18, 30, 0), utc(2026, 1, 2, 18, 30, 0)},
		},
		{
			name: "@hourly in Asia/Kolkata: on the hour of Kolkata's half-hour offset",
			spec: "@hourly", zone: "Asia/Kolkata", from: in(kolkata, 2026, 1, 1, 9, 15),
			want: []time.Time{utc(2026, 1, 1, 4, 30, 0), utc(2026, 1, 1, 5, 30, 0)},
		},
		{
			name: "@every 90s counts from the previous run",
			spec: "@every 90s", zone: "", from: utc(2026, 1, 1, 12, 0, 0),
			want: []time.Time{utc(2026, 1, 1, 12, 1, 30), utc(2026, 1, 1, 12, 3, 0), utc(2026, 1, 1, 12, 4, 30)},
		},
		{
			name: "@every ignores the zone",
			spec: "@every 1h30m", zone: "America/New_York", from: utc(2026, 11, 1, 5, 0, 0),
			want: []time.Time{utc(2026, 11, 1, 6, 30, 0), utc(2026, 11, 1, 8, 0, 0)},
		},
		{
			name: "the 31st skips the months that have 30 days",
			spec: "0 0 31 * *", zone: "UTC", from: utc(2026, 4, 1, 0, 0, 0),
			want: []time.Time{utc(2026, 5, 31, 0, 0, 0), utc(2026, 7, 31, 0, 0, 0), utc(2026, 8, 31, 0, 0, 0)},
		},
		{
			name: "February 29 waits for a leap year",
			spec: "0 12 29 2 *", zone: "UTC", from: utc(2026, 1, 1, 0, 0, 0),
			want: []time.Time{utc(2028, 2, 29, 12, 0, 0), utc(2032, 2, 29, 12, 0, 0)},
		},
		{
			name: "day of month or day of week, as in cron",
			spec: "0 0 13 * FRI", zone: "UTC", from: utc(2026, 2, 1, 0, 0, 0),
			want: []time.Time{utc(2026, 2, 6, 0, 0, 0), utc(2026, 2, 13, 0, 0, 0), utc(2026, 2, 20, 0, 0, 0)},
		},
		{
			name: "weekdays at 9:30 in New York",
			spec: "30 9 * * MON-FRI", zone: "America/New_York", from: in(ny, 2026, 1, 2, 10, 0), // a Friday
			want: []time.Time{in(ny, 2026, 1, 5, 9, 30), in(ny, 2026, 1, 6, 9, 30)},
		},
		{
			name: "an optional seconds field",
			spec: "*/20 * * * * *", zone: "", from: utc(2026, 1, 1, 0, 0, 5).Add(500 * time.Millisecond),
			want: []time.Time{utc(2026, 1, 1, 0, 0, 20), utc(2026, 1, 1, 0, 0, 40), utc(2026, 1, 1, 0, 1, 0)},
		},
		{
			name: "every second",
			spec: "* * * * * *", zone: "UTC", from: utc(2026, 1, 1, 0, 0, 0),
			want: []time.Time{utc(2026, 1, 1, 0, 0, 1), utc(2026, 1, 1, 0, 0, 2)},
		},
		{
			name: "@weekly is Sunday midnight, @monthly the 1st, @yearly January 1st",
			spec: "@weekly", zone: "UTC", from: utc(2026, 1, 1, 0, 0, 0), // a Thursday
			want: []time.Time{utc(2026, 1, 4, 0, 0, 0), utc(2026, 1, 11, 0, 0, 0)},
		},
		{name: "@monthly", spec: "@monthly", from: utc(2026, 1, 15, 0, 0, 0),
			want: []time.Time{utc(2026, 2, 1, 0, 0, 0), utc(2026, 3, 1, 0, 0, 0)}},
		{name: "@yearly", spec: "@yearly", from: utc(2026, 1, 1, 0, 0, 0),
			want: []time.Time{utc(2027, 1, 1, 0, 0, 0), utc(2028, 1, 1, 0, 0, 0)}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := tasks.ParseSchedule(c.spec, c.zone)
			if err != nil {
				t.Fatalf("ParseSchedule(%q, %q): got error %v, want nil", c.spec, c.zone, err)
			}
			at := c.from
			for i, w := range c.want {
				got := s.Next(at)
				if !got.Equal(w) {
					t.Fatalf("Next #%d from %v: got %v, want %v", i+1, at, got.UTC(), w.UTC())
				}
				at = got
			}
		})
	}
}

func TestParseSchedule_Invalid(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		spec, zone, field, message string
	}{
		{"", "", "spec", "must not be empty"},
		{"   ", "UTC", "spec", "must not be empty"},
		{"* * * *", "", "spec", "expected 5 to 6 fields"},
		{"* * * * * * *", "", "spec", "expected 5 to 6 fields"},
		{"60 * * * *", "", "spec", "above maximum"},
		{"0 24 * * *", "", "spec", "above maximum"},
		{"0 0 0 * *", "", "spec", "below minimum"},
		{"0 0 L * *", "", "spec", `"0 0 L * *"`},
		{"0 0 * * MON#2", "", "spec", "MON#2"},
		{"@reboot", "", "spec", "unrecognized descriptor"},
		{"@every", "", "spec", "@every"},
		{"@every 500ms", "", "spec", "at least 1s"},
		{"@every 1.5s", "", "spec", "whole number of seconds"},
		{"@every -5s", "", "spec", "at least 1s"},
		{"@every soon", "", "spec", "not a duration"},
		{"TZ=UTC 0 0 * * *", "", "spec", "use time_zone"},
		{"CRON_TZ=Europe/Berlin 0 0 * * *", "", "spec", "use time_zone"},
		{"0 0 30 2 *", "", "spec", "never matches"},
		{"0 0 " + strings.Repeat("1,", 200) + "1 * *", "", "spec", "longer than 255 bytes"},
		{"@daily", "Mars/Olympus_Mons", "time_zone", "not a known IANA time zone"},
		{"@daily", "Local", "time_zone", `"Local"`},
		{"@daily", "America/New York", "time_zone", "not a known IANA time zone"},
		{"@daily", "../../etc/passwd", "time_zone", "not a known IANA time zone"},
		{"@daily", "/usr/share/zoneinfo/UTC", "time_zone", "not a known IANA time zone"},
		{"@daily", "UTC\n", "time_zone", "control character"},
		{"@daily", strings.Repeat("A", 300), "time_zone", "longer than"},
		{"bad spec", "Bad/Zone", "time_zone", ""}, // the zone is checked first
	} {
		s, err := tasks.ParseSchedule(c.spec, c.zone)
		var ve *tasks.ValidationError
		if !errors.As(err, &ve) || ve.Field != c.field || !strings.Contains(ve.Message, c.message) {
			t.Errorf("ParseSchedule(%.40q, %.40q): got %v, %v; want a *tasks.ValidationError of field %s containing %q",
				c.spec, c.zone, s, err, c.field, c.message)
		}
	}
}

// firing is one run of a periodic task's task.
type firing struct {
	task    *tasks.Task
	started time.Time
}

// firings records the runs of the tasks of event type "tick".
type firings struct {
	mu  sync.Mutex
	all []firing
}

func (f *firings) funcs() map[string]tasks.Func {
	return map[string]tasks.Func{"tick": func(ctx context.Context, task *tasks.Task) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.all = append(f.all, firing{task, time.Now()})
		return nil
	}}
}

func (f *firings) get() []firing {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.all)
}

// slots returns the ScheduledRunTime of each run, as offsets from start,
// in order. (Tasks due at the same time run in any order.)
func (f *firings) slots(start time.Time) []time.Duration {
	var out []time.Duration
	for _, r := range f.get() {
		out = append(out, r.task.ScheduledRunTime.Sub(start))
	}
	slices.Sort(out)
	return out
}

func minutes(ms ...float64) []time.Duration {
	out := make([]time.Duration, len(ms))
	for i, m := range ms {
		out[i] = time.Duration(m * float64(time.Minute))
	}
	return out
}

func createPeriodic(t *testing.T, e *tasks.Engine, np tasks.NewPeriodic) *tasks.PeriodicTask {
	t.Helper()
	if np.AppID == "" {
		np.AppID = "app_1"
	}
	if np.EventType == "" {
		np.EventType = "tick"
	}
	p, err := e.CreatePeriodic(context.Background(), np)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func getPeriodic(t *testing.T, e *tasks.Engine, id string) *tasks.PeriodicTask {
	t.Helper()
	p, err := e.Periodic(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func updatePeriodic(t *testing.T, e *tasks.Engine, id string, u tasks.PeriodicUpdate) *tasks.PeriodicTask {
	t.Helper()
	p, err := e.UpdatePeriodic(context.Background(), id, u)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPeriodic_Time checks in fake time, on the memory store, that periodic
// tasks enqueue one task per slot that starts exactly at the slot, and that
// changes, pauses, deletions and missed slots behave as documented.
func TestPeriodic_Time(t *testing.T) {
	t.Parallel()
	t.Run("every minute for ten minutes: ten tasks, each exactly at its slot", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			start := time.Now()
			var f firings
			e := startEngine(t, tasks.NewMemoryStore(), nil, f.funcs())
			data := json.RawMessage(`{ "report": "sales" }`)
			p := createPeriodic(t, e, tasks.NewPeriodic{Spec: "@every 1m", Data: data})
			if want := start.Add(time.Minute); !p.NextRunAt.Equal(want) || p.LastRunAt != nil || p.LastTaskID != nil {
				t.Errorf("created: NextRunAt %v, LastRunAt %v, LastTaskID %v; want %v, nil, nil", p.NextRunAt, p.LastRunAt, p.LastTaskID, want)
			}
			time.Sleep(10*time.Minute + 30*time.Second)
			synctest.Wait()
			runs := f.get()
			if got, want := f.slots(start), minutes(1, 2, 3, 4, 5, 6, 7, 8, 9, 10); !slices.Equal(got, want) {
				t.Fatalf("slots run: got %v, want %v", got, want)
			}
			for _, r := range runs {
				slot := *r.task.ScheduledRunTime
				if !r.started.Equal(slot) {
					t.Errorf("task of slot %v started at %v, want exactly at its slot", slot, r.started)
				}
				if want := "periodic:" + p.ID + ":" + slot.Format(time.RFC3339); r.task.IdempotencyKey != want {
					t.Errorf("task of slot %v: IdempotencyKey %q, want %q", slot, r.task.IdempotencyKey, want)
				}
				if r.task.AppID != "app_1" || r.task.EventType != "tick" || string(r.task.Data) != string(data) {
					t.Errorf("task of slot %v: app %q, event type %q, data %s; want app_1, tick, %s", slot, r.task.AppID, r.task.EventType, r.task.Data, data)
				}
			}
			got := getPeriodic(t, e, p.ID)
			last := runs[len(runs)-1].task
			if !got.NextRunAt.Equal(start.Add(11*time.Minute)) || !got.LastRunAt.Equal(*last.ScheduledRunTime) || *got.LastTaskID != last.ID {
				t.Errorf("after 10 slots: NextRunAt %v, LastRunAt %v, LastTaskID %s; want %v, %v, %s",
					got.NextRunAt, got.LastRunAt, *got.LastTaskID, start.Add(11*time.Minute), last.ScheduledRunTime, last.ID)
			}
		})
	})

	t.Run("a cron spec in a time zone", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			start := time.Now() // midnight UTC, 5:30 in Kolkata
			var f firings
			e := startEngine(t, tasks.NewMemoryStore(), nil, f.funcs())
			createPeriodic(t, e, tasks.NewPeriodic{Spec: "0 */2 * * *", TimeZone: "Asia/Kolkata"})
			time.Sleep(5 * time.Hour)
			synctest.Wait()
			// 6:00, 8:00 and 10:00 in Kolkata.
			if got, want := f.slots(start), minutes(30, 150, 270); !slices.Equal(got, want) {
				t.Errorf("slots run: got %v, want %v", got, want)
			}
			for _, r := range f.get() {
				if !r.started.Equal(*r.task.ScheduledRunTime) {
					t.Errorf("task of slot %v started at %v, want exactly at its slot", r.task.ScheduledRunTime, r.started)
				}
			}
		})
	})

	t.Run("pause and resume", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			start := time.Now()
			var f firings
			e := startEngine(t, tasks.NewMemoryStore(), nil, f.funcs())
			p := createPeriodic(t, e, tasks.NewPeriodic{Spec: "@every 1m"})
			time.Sleep(150 * time.Second)
			paused := updatePeriodic(t, e, p.ID, tasks.PeriodicUpdate{Status: new(tasks.PeriodicPaused)})
			if paused.Status != tasks.PeriodicPaused || paused.NextRunAt != nil {
				t.Errorf("paused: Status %s, NextRunAt %v; want paused, nil", paused.Status, paused.NextRunAt)
			}
			time.Sleep(3 * time.Minute) // 5:30
			resumed := updatePeriodic(t, e, p.ID, tasks.PeriodicUpdate{Status: new(tasks.PeriodicActive)})
			if want := start.Add(390 * time.Second); resumed.NextRunAt == nil || !resumed.NextRunAt.Equal(want) {
				t.Errorf("resumed: NextRunAt %v, want %v: a minute after the resume, no catching up", resumed.NextRunAt, want)
			}
			time.Sleep(170 * time.Second) // 8:20
			synctest.Wait()
			if got, want := f.slots(start), minutes(1, 2, 6.5, 7.5); !slices.Equal(got, want) {
				t.Errorf("slots run: got %v, want %v", got, want)
			}
			// Updating with the same status changes nothing.
			again := updatePeriodic(t, e, p.ID, tasks.PeriodicUpdate{Status: new(tasks.PeriodicActive), Spec: new("@every 1m")})
			if !again.NextRunAt.Equal(start.Add(510 * time.Second)) {
				t.Errorf("after an update that changes nothing: NextRunAt %v, want %v", again.NextRunAt, start.Add(510*time.Second))
			}
		})
	})

	t.Run("an update takes effect at the next slot", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			start := time.Now()
			var f firings
			e := startEngine(t, tasks.NewMemoryStore(), nil, f.funcs())
			p := createPeriodic(t, e, tasks.NewPeriodic{Spec: "@every 1m", Data: json.RawMessage(`{"v":1}`)})
			time.Sleep(150 * time.Second)
			got := updatePeriodic(t, e, p.ID, tasks.PeriodicUpdate{Data: json.RawMessage(`{"v":2}`)})
			if !got.NextRunAt.Equal(start.Add(3 * time.Minute)) {
				t.Errorf("after changing data: NextRunAt %v, want unchanged %v", got.NextRunAt, start.Add(3*time.Minute))
			}
			time.Sleep(time.Minute) // 3:30
			got = updatePeriodic(t, e, p.ID, tasks.PeriodicUpdate{Spec: new("*/5 * * * *"), EventType: new("tock")})
			if !got.NextRunAt.Equal(start.Add(5 * time.Minute)) {
				t.Errorf("after changing spec: NextRunAt %v, want %v", got.NextRunAt, start.Add(5*time.Minute))
			}
			var tocks firings
			e.Register("tock", tocks.funcs()["tick"])
			time.Sleep(7 * time.Minute) // 10:30
			synctest.Wait()
			if got, want := f.slots(start), minutes(1, 2, 3); !slices.Equal(got, want) {
				t.Errorf("slots run with the old spec: got %v, want %v", got, want)
			}
			if got, want := tocks.slots(start), minutes(5, 10); !slices.Equal(got, want) {
				t.Errorf("slots run with the new spec: got %v, want %v", got, want)
			}
			for i, r := range append(f.get(), tocks.get()...) {
				if want := map[bool]string{true: `{"v":1}`, false: `{"v":2}`}[i < 2]; string(r.task.Data) != want {
					t.Errorf("task of slot %v: data %s, want %s", r.task.ScheduledRunTime, r.task.Data, want)
				}
			}
		})
	})

	t.Run("delete stops the firings", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			start := time.Now()
			var f firings
			e := startEngine(t, tasks.NewMemoryStore(), nil, f.funcs())
			p := createPeriodic(t, e, tasks.NewPeriodic{Spec: "@every 1m"})
			time.Sleep(150 * time.Second)
			if err := e.DeletePeriodic(context.Background(), p.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := e.Periodic(context.Background(), p.ID); !errors.Is(err, tasks.ErrNotFound) {
				t.Errorf("Periodic after DeletePeriodic: got %v, want ErrNotFound", err)
			}
			if err := e.DeletePeriodic(context.Background(), p.ID); !errors.Is(err, tasks.ErrNotFound) {
				t.Errorf("second DeletePeriodic: got %v, want ErrNotFound", err)
			}
			time.Sleep(10 * time.Minute)
			synctest.Wait()
			if got, want := f.slots(start), minutes(1, 2); !slices.Equal(got, want) {
				t.Errorf("slots run: got %v, want %v", got, want)
			}
		})
	})

	t.Run("a periodic task created before Start fires after it", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			start := time.Now()
			store := tasks.NewMemoryStore()
			admin := newEngine(t, store, nil) // never started
			createPeriodic(t, admin, tasks.NewPeriodic{Spec: "@every 1m"})
			time.Sleep(30 * time.Second)
			var f firings
			startEngine(t, store, nil, f.funcs())
			time.Sleep(2 * time.Minute)
			synctest.Wait()
			if got, want := f.slots(start), minutes(1, 2); !slices.Equal(got, want) {
				t.Errorf("slots run: got %v, want %v", got, want)
			}
		})
	})

	// Missed slots: the periodic task's next run is set hours in the past
	// through the store, as if every engine had been down since, and an
	// engine starts.
	missed := func(t *testing.T, spec string, policy tasks.MissedPolicy, behind time.Duration) (start time.Time, f *firings, p *tasks.PeriodicTask, e *tasks.Engine) {
		t.Helper()
		store := tasks.NewMemoryStore()
		admin := newEngine(t, store, nil) // never started
		p = createPeriodic(t, admin, tasks.NewPeriodic{Spec: spec, Missed: policy})
		time.Sleep(30 * time.Minute)
		start = time.Now() // 00:30
		p.NextRunAt = new(p.NextRunAt.Add(-behind))
		if _, err := store.UpdatePeriodic(context.Background(), p); err != nil {
			t.Fatal(err)
		}
		f = new(firings)
		e = startEngine(t, store, &tasks.Config{Logger: slog.New(slog.DiscardHandler)}, f.funcs())
		return start, f, p, e
	}
	t.Run("missed slots, run_once: one task for the latest, at once", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			// Slots at 19:00 … 00:00 were missed; the next is 01:00.
			start, f, p, e := missed(t, "0 * * * *", tasks.MissedRunOnce, 6*time.Hour)
			time.Sleep(time.Hour)
			synctest.Wait()
			runs := f.get()
			if got, want := f.slots(start), minutes(-30, 30); !slices.Equal(got, want) {
				t.Fatalf("slots run: got %v, want %v (00:00, the latest missed, then 01:00)", got, want)
			}
			if !runs[0].started.Equal(start) || !runs[1].started.Equal(start.Add(30*time.Minute)) {
				t.Errorf("started at %v and %v, want %v (at once) and %v", runs[0].started, runs[1].started, start, start.Add(30*time.Minute))
			}
			got := getPeriodic(t, e, p.ID)
			if !got.NextRunAt.Equal(start.Add(90*time.Minute)) || *got.LastTaskID != runs[1].task.ID {
				t.Errorf("NextRunAt %v, LastTaskID %s; want %v, %s", got.NextRunAt, *got.LastTaskID, start.Add(90*time.Minute), runs[1].task.ID)
			}
		})
	})
	t.Run("missed slots, skip: none of them runs", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			start, f, p, e := missed(t, "0 * * * *", tasks.MissedSkip, 6*time.Hour)
			synctest.Wait()
			if got := getPeriodic(t, e, p.ID); !got.NextRunAt.Equal(start.Add(30*time.Minute)) || got.LastTaskID != nil {
				t.Errorf("after skipping: NextRunAt %v, LastTaskID %v; want %v, nil", got.NextRunAt, got.LastTaskID, start.Add(30*time.Minute))
			}
			time.Sleep(2 * time.Hour)
			synctest.Wait()
			if got, want := f.slots(start), minutes(30, 90); !slices.Equal(got, want) {
				t.Errorf("slots run: got %v, want %v (01:00 and 02:00 only)", got, want)
			}
		})
	})
	t.Run("missed slots a year behind: one catch-up, no flood", func(t *testing.T) {
		for _, spec := range []string{"@every 1s", "* * * * * *"} {
			t.Run(spec, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					start, f, _, _ := missed(t, spec, tasks.MissedRunOnce, 365*24*time.Hour)
					time.Sleep(3500 * time.Millisecond)
					synctest.Wait()
					// A slot is missed when more than a poll interval (1 s)
					// before the engine began: the latest is start-2s.
					// start-1s is late, not missed; then every second.
					got := f.slots(start)
					want := []time.Duration{-2 * time.Second, -time.Second, 0, time.Second, 2 * time.Second, 3 * time.Second}
					if !slices.Equal(got, want) {
						t.Errorf("slots run: got %v, want %v", got, want)
					}
				})
			})
		}
	})
	t.Run("missed slots while the store failed", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			start := time.Now()
			store := &periodicOutage{Store: tasks.NewMemoryStore()}
			var f firings
			e := startEngine(t, store, &tasks.Config{Logger: slog.New(slog.DiscardHandler)}, f.funcs())
			createPeriodic(t, e, tasks.NewPeriodic{Spec: "@every 1m", Missed: tasks.MissedSkip})
			time.Sleep(90 * time.Second)
			store.fail(true)
			time.Sleep(3 * time.Minute) // 4:30; slots 2, 3 and 4 pass unseen
			store.fail(false)
			time.Sleep(2 * time.Minute)
			synctest.Wait()
			if got, want := f.slots(start), minutes(1, 5, 6); !slices.Equal(got, want) {
				t.Errorf("slots run: got %v, want %v", got, want)
			}
		})
	})
}

// periodicOutage fails DuePeriodics while told to: the store is unreachable
// for the periodic tasks only, so that the tasks enqueued still run.
type periodicOutage struct {
	tasks.Store
	mu     sync.Mutex
	broken bool
}

func (s *periodicOutage) fail(b bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.broken = b
}

func (s *periodicOutage) DuePeriodics(ctx context.Context, within time.Duration, limit int) (time.Time, []*tasks.PeriodicTask, error) {
	s.mu.Lock()
	broken := s.broken
	s.mu.Unlock()
	if broken {
		return time.Time{}, nil, errors.New("connection refused")
	}
	return s.Store.DuePeriodics(ctx, within, limit)
}

func TestPeriodic_Validation(t *testing.T) {
	t.Parallel()
	e := newEngine(t, tasks.NewMemoryStore(), &tasks.Config{MaxDataBytes: 64})
	ctx := context.Background()
	ok := tasks.NewPeriodic{AppID: "app_1", Spec: "@daily", EventType: "report.daily"}
	p, err := e.CreatePeriodic(ctx, ok)
	if err != nil {
		t.Fatal(err)
	}
	if p.TimeZone != "UTC" || p.Status != tasks.PeriodicActive || p.Missed != tasks.MissedRunOnce || string(p.Data) != "null" {
		t.Errorf("defaults: TimeZone %q, Status %q, Missed %q, Data %s; want UTC, active, run_once, null", p.TimeZone, p.Status, p.Missed, p.Data)
	}
	if p.NextRunAt == nil || p.NextRunAt.Location() != time.UTC || p.NextRunAt.Hour() != 0 || !p.NextRunAt.After(time.Now()) {
		t.Errorf("NextRunAt %v, want the coming midnight UTC", p.NextRunAt)
	}
	paused, err := e.CreatePeriodic(ctx, tasks.NewPeriodic{AppID: "app_1", Spec: "@daily", EventType: "x", Status: tasks.PeriodicPaused})
	if err != nil || paused.NextRunAt != nil {
		t.Errorf("CreatePeriodic paused: got NextRunAt %v, error %v; want nil, nil", paused.NextRunAt, err)
	}
	for _, c := range []struct {
		field string
		np    func(*tasks.NewPeriodic)
	}{
		{"app_id", func(np *tasks.NewPeriodic) { np.AppID = "" }},
		{"app_id", func(np *tasks.NewPeriodic) { np.AppID = "a\x00" }},
		{"spec", func(np *tasks.NewPeriodic) { np.Spec = "" }},
		{"spec", func(np *tasks.NewPeriodic) { np.Spec = "61 * * * *" }},
		{"time_zone", func(np *tasks.NewPeriodic) { np.TimeZone = "Nowhere/Special" }},
		{"time_zone", func(np *tasks.NewPeriodic) { np.TimeZone = "Local" }},
		{"event_type", func(np *tasks.NewPeriodic) { np.EventType = "" }},
		{"event_type", func(np *tasks.NewPeriodic) { np.EventType = "a..b" }},
		{"data", func(np *tasks.NewPeriodic) { np.Data = json.RawMessage(`{"a":`) }},
		{"data", func(np *tasks.NewPeriodic) { np.Data = json.RawMessage(`{"a":"\ud800"}`) }},
		{"data", func(np *tasks.NewPeriodic) { np.Data = json.RawMessage(`{"a":1,"a":1}`) }},
		{"data", func(np *tasks.NewPeriodic) { np.Data = json.RawMessage(`"` + strings.Repeat("x", 64) + `"`) }},
		{"status", func(np *tasks.NewPeriodic) { np.Status = "running" }},
		{"missed", func(np *tasks.NewPeriodic) { np.Missed = "all" }},
	} {
		np := ok
		c.np(&np)
		got, err := e.CreatePeriodic(ctx, np)
		var ve *tasks.ValidationError
		if !errors.As(err, &ve) || ve.Field != c.field {
			t.Errorf("CreatePeriodic(%+v): got %v, %v; want a *tasks.ValidationError of field %s", np, got, err, c.field)
		}
		if c.field == "app_id" {
			continue // not mutable
		}
		if _, err := e.UpdatePeriodic(ctx, p.ID, tasks.PeriodicUpdate{
			Spec: &np.Spec, TimeZone: &np.TimeZone, EventType: &np.EventType, Data: np.Data,
			Status: new(cmp.Or(np.Status, tasks.PeriodicActive)), Missed: new(cmp.Or(np.Missed, tasks.MissedSkip)),
		}); !errors.As(err, &ve) || ve.Field != c.field {
			t.Errorf("UpdatePeriodic to %+v: got %v; want a *tasks.ValidationError of field %s", np, err, c.field)
		}
	}
	if ps, err := e.Periodics(ctx, "app_1"); err != nil || len(ps) != 2 {
		t.Fatalf("Periodics: got %d, %v; want the 2 valid ones", len(ps), err)
	}
	if got := getPeriodic(t, e, p.ID); got.Spec != "@daily" || got.EventType != "report.daily" || !got.UpdatedAt.Equal(p.UpdatedAt) {
		t.Errorf("after refused updates: %+v, want unchanged %+v", got, p)
	}
	if _, err := e.UpdatePeriodic(ctx, "nope", tasks.PeriodicUpdate{}); !errors.Is(err, tasks.ErrNotFound) {
		t.Errorf("UpdatePeriodic of an unknown ID: got %v, want ErrNotFound", err)
	}
	if _, err := e.Periodic(ctx, "nope"); !errors.Is(err, tasks.ErrNotFound) {
		t.Errorf("Periodic of an unknown ID: got %v, want ErrNotFound", err)
	}

	// The JSON form.
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	want := []string{"app_id", "created_at", "data", "event_type", "id", "last_run_at", "last_task_id", "missed",
		"next_run_at", "spec", "status", "time_zone", "updated_at"}
	if !slices.Equal(keys, want) {
		t.Errorf("JSON keys: got %v, want %v", keys, want)
	}
}

// TestPeriodic_F23_OneTaskPerSlot runs several engines, each on a store of
// its own (as separate processes have), on one SQLite file and on one
// PostgreSQL schema, with a periodic task firing every second: every slot
// from the first to the last has exactly one task, run exactly once.
func TestPeriodic_F23_OneTaskPerSlot(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name   string
		stores func(t *testing.T) []tasks.Store
	}{
		{"sqlite/2 engines", func(t *testing.T) []tasks.Store { return sqliteStores(t, 2) }},
		{"postgres/3 engines", func(t *testing.T) []tasks.Store { return postgresStores(t, 3) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			stores := c.stores(t)
			var mu sync.Mutex
			runs := map[string][]int{} // task ID → the engines that ran it
			var es []*tasks.Engine
			for i, s := range stores {
				es = append(es, startEngine(t, s, &tasks.Config{PollInterval: 100 * time.Millisecond, Lease: liveLease},
					map[string]tasks.Func{"tick": func(ctx context.Context, task *tasks.Task) error {
						mu.Lock()
						defer mu.Unlock()
						runs[task.ID] = append(runs[task.ID], i)
						return nil
					}}))
			}
			p := createPeriodic(t, es[0], tasks.NewPeriodic{Spec: "* * * * * *"})
			time.Sleep(5 * time.Second)
			if err := es[1].DeletePeriodic(context.Background(), p.ID); err != nil {
				t.Fatal(err)
			}
			ts, _, err := es[0].List(context.Background(), tasks.ListParams{AppID: "app_1", Limit: tasks.MaxListLimit})
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			perSlot := map[int64]int{}
			var first, last int64
			for _, task := range ts {
				slot := task.ScheduledRunTime.Unix()
				if want := "periodic:" + p.ID + ":" + task.ScheduledRunTime.Format(time.RFC3339); task.IdempotencyKey != want {
					t.Errorf("task %s: IdempotencyKey %q, want %q", task.ID, task.IdempotencyKey, want)
				}
				perSlot[slot]++
				if first == 0 || slot < first {
					first = slot
				}
				last = max(last, slot)
				ids = append(ids, task.ID)
			}
			if n := last - first + 1; len(ts) < 4 || n != int64(len(ts)) {
				t.Errorf("%d tasks for the slots from %d to %d, want one for each of the %d slots (at least 4)", len(ts), first, last, n)
			}
			for s, n := range perSlot {
				if n != 1 {
					t.Errorf("slot %d: %d tasks, want 1", s, n)
				}
			}
			// Each task runs once. The last ones are due within a poll
			// interval or two: the engines enqueue them ahead.
			final := waitCompleted(t, es[0], ids)
			mu.Lock()
			defer mu.Unlock()
			ranOn := make([]int, len(es))
			for _, id := range ids {
				if got := runs[id]; len(got) != 1 {
					t.Errorf("task %s (slot %v) ran %d times, on engines %v; want once", id, final[id].ScheduledRunTime, len(got), got)
				} else {
					ranOn[got[0]]++
				}
			}
			t.Logf("%d slots, tasks run on engines: %v", len(ts), ranOn)
		})
	}
}

// waitCompleted waits until every task of ids is completed, and returns
// them by ID.
func waitCompleted(t *testing.T, e *tasks.Engine, ids []string) map[string]*tasks.Task {
	t.Helper()
	out := map[string]*tasks.Task{}
	waitFor(t, 10*time.Second, "every task to complete", func() bool {
		for _, id := range ids {
			task, err := e.Get(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			out[id] = task
			if task.State != tasks.StateCompleted {
				return false
			}
		}
		return true
	})
	return out
}

func ExampleEngine_CreatePeriodic() {
	ctx := context.Background()
	eng, err := tasks.NewEngine(tasks.NewMemoryStore(), nil)
	if err != nil {
		panic(err)
	}
	p, err := eng.CreatePeriodic(ctx, tasks.NewPeriodic{
		AppID:     "app_1",
		Spec:      "30 9 * * MON-FRI", // 9:30 on weekdays
		TimeZone:  "Europe/Berlin",
		EventType: "report.daily",
		Data:      json.RawMessage(`{"report":"sales"}`),
	})
	if err != nil {
		panic(err)
	}
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		panic(err)
	}
	next := p.NextRunAt.In(berlin)
	fmt.Println(p.Status, p.Missed, next.Format("15:04"), next.Weekday() != time.Saturday && next.Weekday() != time.Sunday)
	// Output: active run_once 09:30 true
}
