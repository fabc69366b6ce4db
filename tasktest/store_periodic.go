package tasktest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/taskwheel/tasks"
)

// Periodic tasks.

// newPeriodic returns a periodic task ready to insert: a fresh ID, app
// "app_1", every field the caller sets filled in, next run in an hour; opts
// change it.
func (h *harness) newPeriodic(opts ...func(*tasks.PeriodicTask)) *tasks.PeriodicTask {
	next := h.now().Add(time.Hour)
	p := &tasks.PeriodicTask{
		ID:        uuid.NewString(),
		AppID:     "app_1",
		Spec:      "*/5 * * * *",
		TimeZone:  "Europe/Berlin",
		EventType: "report.daily",
		Data:      json.RawMessage(`{ "report" : "sales", "n": 1.50, "z": "\u00e9" }`),
		Status:    tasks.PeriodicActive,
		Missed:    tasks.MissedRunOnce,
		NextRunAt: &next,
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

// Periodic task options for newPeriodic and insertPeriodic.
func pID(id string) func(*tasks.PeriodicTask) { return func(p *tasks.PeriodicTask) { p.ID = id } }
func pApp(a string) func(*tasks.PeriodicTask) { return func(p *tasks.PeriodicTask) { p.AppID = a } }
func pNext(tm time.Time) func(*tasks.PeriodicTask) {
	return func(p *tasks.PeriodicTask) { p.NextRunAt = &tm }
}
func pPaused(p *tasks.PeriodicTask) { p.Status, p.NextRunAt = tasks.PeriodicPaused, nil }

// insertPeriodic inserts newPeriodic(opts...) and returns the stored
// periodic task.
func (h *harness) insertPeriodic(opts ...func(*tasks.PeriodicTask)) *tasks.PeriodicTask {
	h.t.Helper()
	got, err := h.s.InsertPeriodic(h.ctx, h.newPeriodic(opts...))
	if err != nil {
		h.t.Fatalf("InsertPeriodic: got error %v, want nil", err)
	}
	h.checkPeriodic(got)
	return clonePeriodic(got)
}

func (h *harness) getPeriodic(id string) *tasks.PeriodicTask {
	h.t.Helper()
	got, err := h.s.GetPeriodic(h.ctx, id)
	if err != nil {
		h.t.Fatalf("GetPeriodic(%s): got error %v, want nil", id, err)
	}
	h.checkPeriodic(got)
	return clonePeriodic(got)
}

func (h *harness) listPeriodics(appID string) []*tasks.PeriodicTask {
	h.t.Helper()
	got, err := h.s.ListPeriodics(h.ctx, appID)
	if err != nil {
		h.t.Fatalf("ListPeriodics(%s): got error %v, want nil", appID, err)
	}
	return h.checkPeriodics(got)
}

func (h *harness) updatePeriodic(p *tasks.PeriodicTask) *tasks.PeriodicTask {
	h.t.Helper()
	got, err := h.s.UpdatePeriodic(h.ctx, p)
	if err != nil {
		h.t.Fatalf("UpdatePeriodic(%s): got error %v, want nil", p.ID, err)
	}
	h.checkPeriodic(got)
	return clonePeriodic(got)
}

func (h *harness) duePeriodics(within time.Duration, limit int) (time.Time, []*tasks.PeriodicTask) {
	h.t.Helper()
	now, got, err := h.s.DuePeriodics(h.ctx, within, limit)
	if err != nil {
		h.t.Fatalf("DuePeriodics(%v, %d): got error %v, want nil", within, limit, err)
	}
	if now.IsZero() {
		h.t.Fatalf("DuePeriodics: got zero now, want the store's clock")
	}
	checkUTC(h.t, "DuePeriodics now", now)
	return now, h.checkPeriodics(got)
}

// advancePeriodic advances periodic task id from slot from to slot to,
// recording taskID as the task of slot from.
func (h *harness) advancePeriodic(id string, from, to time.Time, taskID string) bool {
	h.t.Helper()
	ok, err := h.s.AdvancePeriodic(h.ctx, id, from, to, from, taskID)
	if err != nil {
		h.t.Fatalf("AdvancePeriodic(%s): got error %v, want nil", id, err)
	}
	return ok
}

func (h *harness) checkPeriodics(ps []*tasks.PeriodicTask) []*tasks.PeriodicTask {
	h.t.Helper()
	out := make([]*tasks.PeriodicTask, len(ps))
	for i, p := range ps {
		h.checkPeriodic(p)
		out[i] = clonePeriodic(p)
	}
	return out
}

// checkPeriodic reports a periodic task whose times are unset, out of
// order, not in UTC or not kept to the microsecond.
func (h *harness) checkPeriodic(p *tasks.PeriodicTask) {
	h.t.Helper()
	if p == nil {
		h.t.Fatalf("got a nil periodic task, want a periodic task")
	}
	if p.CreatedAt.IsZero() || p.UpdatedAt.IsZero() {
		h.t.Errorf("periodic task %s: got CreatedAt %v, UpdatedAt %v, want both set", p.ID, p.CreatedAt, p.UpdatedAt)
	}
	if p.UpdatedAt.Before(p.CreatedAt) {
		h.t.Errorf("periodic task %s: got UpdatedAt %v before CreatedAt %v", p.ID, p.UpdatedAt, p.CreatedAt)
	}
	checkUTC(h.t, "periodic task "+p.ID+" CreatedAt", p.CreatedAt)
	checkUTC(h.t, "periodic task "+p.ID+" UpdatedAt", p.UpdatedAt)
	for name, tm := range map[string]*time.Time{"NextRunAt": p.NextRunAt, "LastRunAt": p.LastRunAt} {
		if tm != nil {
			checkUTC(h.t, "periodic task "+p.ID+" "+name, *tm)
		}
	}
	if (p.LastRunAt == nil) != (p.LastTaskID == nil) {
		h.t.Errorf("periodic task %s: got LastRunAt %s, LastTaskID %s; want both set or both nil",
			p.ID, fmtTime(p.LastRunAt), fmtString(p.LastTaskID))
	}
}

// wantSamePeriodic reports the differences between got and want.
func (h *harness) wantSamePeriodic(what string, got, want *tasks.PeriodicTask) {
	h.t.Helper()
	if d := diffPeriodic(got, want); len(d) > 0 {
		h.t.Errorf("%s: periodic task differs:\n\t%s", what, strings.Join(d, "\n\t"))
	}
}

// diffPeriodic lists the fields in which got and want differ, times compared
// as instants and Data byte for byte.
func diffPeriodic(got, want *tasks.PeriodicTask) []string {
	if got == nil || want == nil {
		if got == want {
			return nil
		}
		return []string{fmt.Sprintf("got %v, want %v", got, want)}
	}
	var d []string
	add := func(field string, g, w any) {
		d = append(d, fmt.Sprintf("%s: got %v, want %v", field, g, w))
	}
	for _, f := range []struct{ name, got, want string }{
		{"ID", got.ID, want.ID},
		{"AppID", got.AppID, want.AppID},
		{"Spec", got.Spec, want.Spec},
		{"TimeZone", got.TimeZone, want.TimeZone},
		{"EventType", got.EventType, want.EventType},
		{"Status", string(got.Status), string(want.Status)},
		{"Missed", string(got.Missed), string(want.Missed)},
	} {
		if f.got != f.want {
			add(f.name, fmt.Sprintf("%q", f.got), fmt.Sprintf("%q", f.want))
		}
	}
	if !bytes.Equal(got.Data, want.Data) || (got.Data == nil) != (want.Data == nil) {
		add("Data", fmtData(got.Data), fmtData(want.Data))
	}
	if !eqTime(got.NextRunAt, want.NextRunAt) {
		add("NextRunAt", fmtTime(got.NextRunAt), fmtTime(want.NextRunAt))
	}
	if !eqTime(got.LastRunAt, want.LastRunAt) {
		add("LastRunAt", fmtTime(got.LastRunAt), fmtTime(want.LastRunAt))
	}
	if fmtString(got.LastTaskID) != fmtString(want.LastTaskID) {
		add("LastTaskID", fmtString(got.LastTaskID), fmtString(want.LastTaskID))
	}
	if !got.CreatedAt.Equal(want.CreatedAt) {
		add("CreatedAt", got.CreatedAt, want.CreatedAt)
	}
	if !got.UpdatedAt.Equal(want.UpdatedAt) {
		add("UpdatedAt", got.UpdatedAt, want.UpdatedAt)
	}
	return d
}

// clonePeriodic returns a deep copy of p.
func clonePeriodic(p *tasks.PeriodicTask) *tasks.PeriodicTask {
	c := *p
	c.Data = slices.Clone(p.Data)
	for _, t := range []**time.Time{&c.NextRunAt, &c.LastRunAt} {
		if *t != nil {
			*t = ptr(**t)
		}
	}
	if c.LastTaskID != nil {
		c.LastTaskID = ptr(*c.LastTaskID)
	}
	return &c
}

func periodicIDs(ps []*tasks.PeriodicTask) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.ID
	}
	return out
}

func (su suite) testPeriodics(t *testing.T) {
	su.run(t, "InsertReturnsStoredPeriodicTask", func(h *harness) {
		in := h.newPeriodic()
		old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
		in.CreatedAt, in.UpdatedAt = old, old // the store's to set
		in.LastRunAt, in.LastTaskID = &old, ptr("task_1")
		want := clonePeriodic(in)
		before := h.now()
		got, err := h.s.InsertPeriodic(h.ctx, in)
		after := h.now()
		if err != nil {
			h.t.Fatalf("InsertPeriodic: got error %v, want nil", err)
		}
		h.checkPeriodic(got)
		h.wantBetween("CreatedAt", &got.CreatedAt, before, after)
		want.CreatedAt, want.UpdatedAt = got.CreatedAt, got.CreatedAt
		want.LastRunAt, want.LastTaskID = nil, nil
		h.wantSamePeriodic("InsertPeriodic", got, want)
		h.wantSamePeriodic("GetPeriodic after InsertPeriodic", h.getPeriodic(in.ID), want)
	})

	su.run(t, "InsertPausedWithoutNextRun", func(h *harness) {
		got := h.insertPeriodic(pPaused, func(p *tasks.PeriodicTask) {
			p.Missed = tasks.MissedSkip
			p.TimeZone = "UTC"
			p.Spec = "@every 90s"
		})
		if got.NextRunAt != nil || got.Status != tasks.PeriodicPaused || got.Missed != tasks.MissedSkip {
			h.t.Errorf("InsertPeriodic: got NextRunAt %s, Status %q, Missed %q; want nil, paused, skip",
				fmtTime(got.NextRunAt), got.Status, got.Missed)
		}
		h.wantSamePeriodic("GetPeriodic", h.getPeriodic(got.ID), got)
	})

	su.run(t, "DataRoundTrips", func(h *harness) {
		for _, d := range []string{`null`, `{}`, `[1, 2,3]`, `"\u0000 and \ud83d\ude00"`, " {\"a\" :\t[ ] }\n", `{"big":` + strings.Repeat("9", 5000) + `}`} {
			in := h.insertPeriodic(func(p *tasks.PeriodicTask) { p.Data = json.RawMessage(d) })
			if got := h.getPeriodic(in.ID); string(got.Data) != d {
				h.t.Errorf("GetPeriodic: got Data %s, want %s byte for byte", fmtData(got.Data), fmtData([]byte(d)))
			}
			change := clonePeriodic(in)
			change.Data = json.RawMessage(d + " ")
			if got := h.updatePeriodic(change); string(got.Data) != d+" " {
				h.t.Errorf("UpdatePeriodic: got Data %s, want %s byte for byte", fmtData(got.Data), fmtData([]byte(d+" ")))
			}
		}
	})

	su.run(t, "InsertExistingIDIsInvalid", func(h *harness) {
		first := h.insertPeriodic()
		got, err := h.s.InsertPeriodic(h.ctx, h.newPeriodic(pID(first.ID), func(p *tasks.PeriodicTask) { p.Spec = "@daily" }))
		var ve *tasks.ValidationError
		if !errors.As(err, &ve) || ve.Field != "id" {
			h.t.Errorf("InsertPeriodic of an existing ID: got %v, error %v; want a *tasks.ValidationError of field id", got, err)
		}
		h.wantSamePeriodic("GetPeriodic after a second InsertPeriodic", h.getPeriodic(first.ID), first)
	})

	su.run(t, "GetUnknownIsNotFound", func(h *harness) {
		h.insertPeriodic()
		for _, id := range []string{uuid.NewString(), "", "'; DROP TABLE taskwheel_periodic; --", strings.Repeat("x", 300), "\x00\xff"} {
			got, err := h.s.GetPeriodic(h.ctx, id)
			h.wantIs(fmt.Sprintf("GetPeriodic(%.20q)", id), err, tasks.ErrNotFound)
			if got != nil {
				h.t.Errorf("GetPeriodic(%.20q): got %v, want nil", id, got)
			}
		}
	})

	su.run(t, "ListIsPerAppOldestFirst", func(h *harness) {
		// IDs ascend in insertion order, so that periodic tasks created in
		// one clock tick are in the same order by ID.
		prefix := uuid.NewString()
		var a, b []*tasks.PeriodicTask
		for i := range 6 {
			id := fmt.Sprintf("%s-%02d", prefix, i)
			if i%3 == 2 {
				b = append(b, h.insertPeriodic(pID(id), pApp("app_b")))
			} else {
				a = append(a, h.insertPeriodic(pID(id), pApp("app_a"), pPaused))
			}
		}
		for _, c := range []struct {
			app  string
			want []*tasks.PeriodicTask
		}{{"app_a", a}, {"app_b", b}, {"app_c", nil}, {"\xff", nil}} {
			got := h.listPeriodics(c.app)
			if !slices.Equal(periodicIDs(got), periodicIDs(c.want)) {
				h.t.Errorf("ListPeriodics(%q): got %v, want %v", c.app, periodicIDs(got), periodicIDs(c.want))
				continue
			}
			for i := range got {
				h.wantSamePeriodic("ListPeriodics("+c.app+")", got[i], c.want[i])
			}
		}
	})

	su.run(t, "UpdateChangesEveryMutableField", func(h *harness) {
		in := h.insertPeriodic()
		slot := *in.NextRunAt
		if !h.advancePeriodic(in.ID, slot, slot.Add(5*time.Minute), "task_1") {
			h.t.Fatalf("AdvancePeriodic: got false, want true")
		}
		in = h.getPeriodic(in.ID)
		h.waitPast(in.UpdatedAt)
		next := h.now().Add(90 * time.Minute)
		change := &tasks.PeriodicTask{
			ID:         in.ID,
			AppID:      "app_other", // not mutable
			Spec:       "0 9 * * MON-FRI",
			TimeZone:   "America/New_York",
			EventType:  "report.weekly",
			Data:       json.RawMessage(`{"changed": true}`),
			Status:     tasks.PeriodicActive,
			Missed:     tasks.MissedSkip,
			NextRunAt:  &next,
			LastRunAt:  ptr(next.Add(-time.Hour)),                   // the store's: only Advance sets it
			LastTaskID: ptr("task_other"),                           // likewise
			CreatedAt:  time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC), // the store's
			UpdatedAt:  in.UpdatedAt,                                // as read: the version the update compares and sets
		}
		before := h.now()
		got := h.updatePeriodic(clonePeriodic(change))
		after := h.now()
		want := clonePeriodic(change)
		want.AppID, want.CreatedAt, want.UpdatedAt = in.AppID, in.CreatedAt, got.UpdatedAt
		want.LastRunAt, want.LastTaskID = in.LastRunAt, in.LastTaskID
		h.wantSamePeriodic("UpdatePeriodic", got, want)
		h.wantBetween("UpdatedAt", &got.UpdatedAt, before, after)
		if !got.UpdatedAt.After(in.UpdatedAt) {
			h.t.Errorf("UpdatedAt: got %v, want after the previous %v", got.UpdatedAt, in.UpdatedAt)
		}
		h.wantSamePeriodic("GetPeriodic after UpdatePeriodic", h.getPeriodic(in.ID), want)
		if ps := h.listPeriodics("app_other"); len(ps) != 0 {
			h.t.Errorf("ListPeriodics(app_other): got %v, want none (AppID is not mutable)", periodicIDs(ps))
		}

		// Paused: NextRunAt nil.
		change = clonePeriodic(want)
		pPaused(change)
		got = h.updatePeriodic(change)
		want.Status, want.NextRunAt, want.UpdatedAt = tasks.PeriodicPaused, nil, got.UpdatedAt
		h.wantSamePeriodic("UpdatePeriodic to paused", got, want)
		h.wantSamePeriodic("GetPeriodic after pausing", h.getPeriodic(in.ID), want)
	})

	su.run(t, "UpdateChangesOnlyItsPeriodicTask", func(h *harness) {
		a, b := h.insertPeriodic(), h.insertPeriodic()
		change := clonePeriodic(a)
		change.Spec = "@hourly"
		h.updatePeriodic(change)
		h.wantSamePeriodic("GetPeriodic of the other periodic task", h.getPeriodic(b.ID), b)
	})

	su.run(t, "UpdateUnknownIsNotFound", func(h *harness) {
		h.insertPeriodic()
		for _, id := range []string{uuid.NewString(), "", "\xff"} {
			got, err := h.s.UpdatePeriodic(h.ctx, h.newPeriodic(pID(id)))
			h.wantIs(fmt.Sprintf("UpdatePeriodic(%q)", id), err, tasks.ErrNotFound)
			if got != nil {
				h.t.Errorf("UpdatePeriodic(%q): got %v, want nil", id, got)
			}
			_, err = h.s.GetPeriodic(h.ctx, id)
			h.wantIs(fmt.Sprintf("GetPeriodic(%q) after UpdatePeriodic", id), err, tasks.ErrNotFound)
		}
	})

	su.run(t, "Delete", func(h *harness) {
		gone, kept := h.insertPeriodic(pNext(h.now())), h.insertPeriodic(pNext(h.now()))
		if err := h.s.DeletePeriodic(h.ctx, gone.ID); err != nil {
			h.t.Fatalf("DeletePeriodic: got error %v, want nil", err)
		}
		_, err := h.s.GetPeriodic(h.ctx, gone.ID)
		h.wantIs("GetPeriodic after DeletePeriodic", err, tasks.ErrNotFound)
		h.wantIs("second DeletePeriodic", h.s.DeletePeriodic(h.ctx, gone.ID), tasks.ErrNotFound)
		h.wantIs("DeletePeriodic of an unknown ID", h.s.DeletePeriodic(h.ctx, uuid.NewString()), tasks.ErrNotFound)
		h.wantIs("DeletePeriodic of a malformed ID", h.s.DeletePeriodic(h.ctx, "\xff"), tasks.ErrNotFound)
		_, err = h.s.UpdatePeriodic(h.ctx, gone)
		h.wantIs("UpdatePeriodic after DeletePeriodic", err, tasks.ErrNotFound)
		if h.advancePeriodic(gone.ID, *gone.NextRunAt, gone.NextRunAt.Add(time.Minute), "task_1") {
			h.t.Errorf("AdvancePeriodic after DeletePeriodic: got true, want false")
		}
		if ps := h.listPeriodics("app_1"); !slices.Equal(periodicIDs(ps), []string{kept.ID}) {
			h.t.Errorf("ListPeriodics after DeletePeriodic: got %v, want [%s]", periodicIDs(ps), kept.ID)
		}
		if _, due := h.duePeriodics(time.Minute, 10); !slices.Equal(periodicIDs(due), []string{kept.ID}) {
			h.t.Errorf("DuePeriodics after DeletePeriodic: got %v, want [%s]", periodicIDs(due), kept.ID)
		}
		h.wantSamePeriodic("GetPeriodic of the other periodic task", h.getPeriodic(kept.ID), kept)
	})

	su.run(t, "ReturnsACopy", func(h *harness) {
		in := h.newPeriodic()
		ins, err := h.s.InsertPeriodic(h.ctx, in)
		if err != nil {
			h.t.Fatalf("InsertPeriodic: got error %v, want nil", err)
		}
		h.advancePeriodic(in.ID, *in.NextRunAt, in.NextRunAt.Add(time.Minute), "task_1")
		want := h.getPeriodic(in.ID)
		spoil := func(ps ...*tasks.PeriodicTask) {
			for _, p := range ps {
				p.Spec = "spoiled"
				if len(p.Data) > 0 {
					p.Data[0] = 'X'
				}
				if p.NextRunAt != nil {
					*p.NextRunAt = p.NextRunAt.Add(-24 * time.Hour)
				}
				if p.LastRunAt != nil {
					*p.LastRunAt = p.LastRunAt.Add(-24 * time.Hour)
				}
				if p.LastTaskID != nil {
					*p.LastTaskID = "spoiled"
				}
				p.Status = tasks.PeriodicPaused
			}
		}
		get, err := h.s.GetPeriodic(h.ctx, in.ID)
		if err != nil {
			h.t.Fatalf("GetPeriodic: got error %v, want nil", err)
		}
		list, err := h.s.ListPeriodics(h.ctx, in.AppID)
		if err != nil || len(list) != 1 {
			h.t.Fatalf("ListPeriodics: got %d periodic tasks, error %v; want 1, nil", len(list), err)
		}
		_, due, err := h.s.DuePeriodics(h.ctx, 24*time.Hour, 10)
		if err != nil || len(due) != 1 {
			h.t.Fatalf("DuePeriodics: got %d periodic tasks, error %v; want 1, nil", len(due), err)
		}
		spoil(in, ins, get, list[0], due[0]) // in: the store keeps none of its argument
		h.wantSamePeriodic("GetPeriodic after changing what Insert, Get, List and DuePeriodics took and returned", h.getPeriodic(want.ID), want)

		change := clonePeriodic(want)
		change.Spec = "@weekly"
		upd, err := h.s.UpdatePeriodic(h.ctx, change)
		if err != nil {
			h.t.Fatalf("UpdatePeriodic: got error %v, want nil", err)
		}
		want = clonePeriodic(upd)
		spoil(change, upd)
		h.wantSamePeriodic("GetPeriodic after changing what Update took and returned", h.getPeriodic(want.ID), want)
	})

	su.run(t, "TimesAreUTCToTheMicrosecond", func(h *harness) {
		// checkPeriodic, called on every periodic task returned, checks UTC
		// and microseconds.
		zone := time.FixedZone("X", -(3*3600 + 30*60))
		next := h.now().Add(time.Hour).In(zone).Truncate(time.Microsecond).Add(123 * time.Microsecond)
		p := h.insertPeriodic(pNext(next))
		h.wantTime("NextRunAt", p.NextRunAt, &next)
		to := next.Add(time.Hour + time.Microsecond)
		if !h.advancePeriodic(p.ID, next, to, "task_1") {
			h.t.Fatalf("AdvancePeriodic from a time in another zone: got false, want true")
		}
		got := h.getPeriodic(p.ID)
		h.wantTime("NextRunAt after AdvancePeriodic", got.NextRunAt, &to)
		h.wantTime("LastRunAt after AdvancePeriodic", got.LastRunAt, &next)
		later := to.Add(time.Microsecond)
		got.NextRunAt = &later
		got = h.updatePeriodic(got)
		h.wantTime("NextRunAt after UpdatePeriodic", got.NextRunAt, &later)
		h.listPeriodics(p.AppID)
		h.duePeriodics(3*time.Hour, 10)
	})
}

func (su suite) testDuePeriodics(t *testing.T) {
	su.run(t, "EmptyStore", func(h *harness) {
		before := h.now()
		now, due := h.duePeriodics(time.Hour, 10)
		after := h.now()
		if len(due) != 0 {
			h.t.Errorf("DuePeriodics: got %v, want none", periodicIDs(due))
		}
		h.wantBetween("DuePeriodics now", &now, before, after)
	})

	su.run(t, "WindowOrderAndStatus", func(h *harness) {
		now := h.now()
		prefix := uuid.NewString()
		id := func(i int) func(*tasks.PeriodicTask) { return pID(fmt.Sprintf("%s-%d", prefix, i)) }
		late := h.insertPeriodic(id(5), pNext(now.Add(-time.Hour)))
		soon := h.insertPeriodic(id(4), pNext(now.Add(30*time.Second)))
		sameB := h.insertPeriodic(id(3), pNext(now.Add(10*time.Second)))
		sameA := h.insertPeriodic(id(2), pNext(now.Add(10*time.Second)))
		h.insertPeriodic(id(1), pNext(now.Add(2*time.Hour)))                                                                   // beyond the window
		h.insertPeriodic(id(0), pPaused)                                                                                       // paused
		h.insertPeriodic(id(6), pNext(now.Add(-time.Minute)), func(p *tasks.PeriodicTask) { p.Status = tasks.PeriodicPaused }) // paused, with a next run
		want := []string{late.ID, sameA.ID, sameB.ID, soon.ID}
		_, due := h.duePeriodics(time.Minute, 10)
		if !slices.Equal(periodicIDs(due), want) {
			h.t.Fatalf("DuePeriodics(1m): got %v, want %v (earliest first, then by ID; not paused)", periodicIDs(due), want)
		}
		h.wantSamePeriodic("DuePeriodics' first", due[0], late)
		if _, due := h.duePeriodics(0, 10); !slices.Equal(periodicIDs(due), []string{late.ID}) {
			h.t.Errorf("DuePeriodics(0): got %v, want [%s]", periodicIDs(due), late.ID)
		}
		if _, due := h.duePeriodics(3*time.Hour, 10); len(due) != 5 {
			h.t.Errorf("DuePeriodics(3h): got %v, want the 5 active ones", periodicIDs(due))
		}
	})

	su.run(t, "RespectsLimit", func(h *harness) {
		now := h.now()
		var want []string
		for i := range 5 {
			p := h.insertPeriodic(pNext(now.Add(time.Duration(i-5) * time.Minute)))
			want = append(want, p.ID)
		}
		if _, due := h.duePeriodics(time.Minute, 3); !slices.Equal(periodicIDs(due), want[:3]) {
			h.t.Errorf("DuePeriodics(limit 3): got %v, want %v", periodicIDs(due), want[:3])
		}
		if _, due := h.duePeriodics(time.Minute, 0); len(due) != 0 {
			h.t.Errorf("DuePeriodics(limit 0): got %v, want none", periodicIDs(due))
		}
	})

	su.run(t, "AdvancedTaskLeavesTheWindow", func(h *harness) {
		now := h.now()
		p := h.insertPeriodic(pNext(now.Add(-time.Second)))
		if !h.advancePeriodic(p.ID, *p.NextRunAt, now.Add(time.Hour), "task_1") {
			h.t.Fatalf("AdvancePeriodic: got false, want true")
		}
		if _, due := h.duePeriodics(time.Minute, 10); len(due) != 0 {
			h.t.Errorf("DuePeriodics after AdvancePeriodic past the window: got %v, want none", periodicIDs(due))
		}
	})
}

func (su suite) testAdvancePeriodic(t *testing.T) {
	su.run(t, "MovesAndRecordsTheTask", func(h *harness) {
		p := h.insertPeriodic()
		h.waitPast(p.UpdatedAt)
		from, to := *p.NextRunAt, p.NextRunAt.Add(5*time.Minute)
		if !h.advancePeriodic(p.ID, from, to, "task_1") {
			h.t.Fatalf("AdvancePeriodic: got false, want true")
		}
		want := clonePeriodic(p)
		want.NextRunAt, want.LastRunAt, want.LastTaskID = &to, &from, ptr("task_1")
		h.wantSamePeriodic("GetPeriodic after AdvancePeriodic (UpdatedAt unchanged)", h.getPeriodic(p.ID), want)

		// Without a task: only NextRunAt moves.
		if !h.advancePeriodic(p.ID, to, to.Add(time.Hour), "") {
			h.t.Fatalf("AdvancePeriodic without a task: got false, want true")
		}
		want.NextRunAt = ptr(to.Add(time.Hour))
		h.wantSamePeriodic("GetPeriodic after AdvancePeriodic without a task", h.getPeriodic(p.ID), want)

		// Past missed slots, with the task of the latest: LastRunAt is
		// that slot, not the one moved from.
		from, latest, to := to.Add(time.Hour), to.Add(3*time.Hour), to.Add(4*time.Hour)
		ok, err := h.s.AdvancePeriodic(h.ctx, p.ID, from, to, latest, "task_2")
		if err != nil || !ok {
			h.t.Fatalf("AdvancePeriodic past missed slots: got %v, %v; want true, nil", ok, err)
		}
		want.NextRunAt, want.LastRunAt, want.LastTaskID = &to, &latest, ptr("task_2")
		h.wantSamePeriodic("GetPeriodic after AdvancePeriodic past missed slots", h.getPeriodic(p.ID), want)
	})

	su.run(t, "WrongFromChangesNothing", func(h *harness) {
		p := h.insertPeriodic()
		from := *p.NextRunAt
		for _, wrong := range []time.Time{from.Add(-time.Microsecond), from.Add(time.Second), from.Add(-time.Hour)} {
			if h.advancePeriodic(p.ID, wrong, from.Add(time.Hour), "task_1") {
				h.t.Errorf("AdvancePeriodic from %v when NextRunAt is %v: got true, want false", wrong, from)
			}
		}
		h.wantSamePeriodic("GetPeriodic after refused AdvancePeriodic", h.getPeriodic(p.ID), p)
		if !h.advancePeriodic(p.ID, from, from.Add(time.Hour), "task_1") {
			h.t.Errorf("AdvancePeriodic from NextRunAt: got false, want true")
		}
		if h.advancePeriodic(p.ID, from, from.Add(2*time.Hour), "task_2") {
			h.t.Errorf("second AdvancePeriodic from the same slot: got true, want false")
		}
		if got := h.getPeriodic(p.ID); !eqTime(got.NextRunAt, ptr(from.Add(time.Hour))) || fmtString(got.LastTaskID) != `"task_1"` {
			h.t.Errorf("after a refused second AdvancePeriodic: got NextRunAt %s, LastTaskID %s; want %v, task_1",
				fmtTime(got.NextRunAt), fmtString(got.LastTaskID), from.Add(time.Hour))
		}
	})

	su.run(t, "PausedOrUnknownIsNotAdvanced", func(h *harness) {
		p := h.insertPeriodic(pPaused)
		for _, from := range []time.Time{h.now(), {}} {
			if h.advancePeriodic(p.ID, from, from.Add(time.Hour), "task_1") {
				h.t.Errorf("AdvancePeriodic of a paused periodic task from %v: got true, want false", from)
			}
		}
		h.wantSamePeriodic("GetPeriodic after refused AdvancePeriodic", h.getPeriodic(p.ID), p)
		for _, id := range []string{uuid.NewString(), "", "\xff"} {
			if h.advancePeriodic(id, h.now(), h.now(), "task_1") {
				h.t.Errorf("AdvancePeriodic(%q): got true, want false", id)
			}
		}
	})

	su.run(t, "F23_ConcurrentAdvancersOneWins", func(h *harness) {
		// Engines that read the same slot advance from it at once: exactly
		// one succeeds, and its values are the ones stored.
		const n = 8
		for round := range 5 {
			p := h.insertPeriodic()
			from := *p.NextRunAt
			var wg sync.WaitGroup
			won := make([]bool, n)
			errs := make([]error, n)
			start := make(chan struct{})
			for i := range n {
				wg.Go(func() {
					<-start
					won[i], errs[i] = h.s.AdvancePeriodic(h.ctx, p.ID, from, from.Add(time.Duration(i+1)*time.Minute), from, fmt.Sprintf("task_%d", i))
				})
			}
			close(start)
			h.wait(&wg)
			winners := 0
			var winner int
			for i := range n {
				if errs[i] != nil {
					h.t.Fatalf("round %d: AdvancePeriodic %d: got error %v, want nil", round, i, errs[i])
				}
				if won[i] {
					winners++
					winner = i
				}
			}
			if winners != 1 {
				h.t.Fatalf("round %d: %d of %d concurrent AdvancePeriodic calls from one slot succeeded, want exactly 1", round, winners, n)
			}
			got := h.getPeriodic(p.ID)
			wantNext := from.Add(time.Duration(winner+1) * time.Minute)
			if !eqTime(got.NextRunAt, &wantNext) || fmtString(got.LastTaskID) != fmt.Sprintf("%q", fmt.Sprintf("task_%d", winner)) {
				h.t.Errorf("round %d: got NextRunAt %s, LastTaskID %s; want the winner's %v, task_%d",
					round, fmtTime(got.NextRunAt), fmtString(got.LastTaskID), wantNext, winner)
			}
		}
	})
}
