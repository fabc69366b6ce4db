package tasktest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/taskwheel/tasks"
)

// Endpoints.

// newEndpoint returns an endpoint ready to insert: a fresh ID, app "app_1",
// every field set (a previous secret too); opts change it.
func (h *harness) newEndpoint(opts ...func(*tasks.Endpoint)) *tasks.Endpoint {
	expires := h.now().Add(time.Hour)
	ep := &tasks.Endpoint{
		ID:                      uuid.NewString(),
		AppID:                   "app_1",
		URL:                     "https://example.com/hooks",
		Description:             "Orders — ünïcode 🎉",
		EnabledEvents:           []string{"order.created", "order.paid"},
		Status:                  tasks.EndpointActive,
		Secret:                  "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
		PreviousSecret:          "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
		PreviousSecretExpiresAt: &expires,
	}
	for _, o := range opts {
		o(ep)
	}
	return ep
}

// Endpoint options for newEndpoint and insertEndpoint.
func epApp(a string) func(*tasks.Endpoint) { return func(ep *tasks.Endpoint) { ep.AppID = a } }
func epID(id string) func(*tasks.Endpoint) { return func(ep *tasks.Endpoint) { ep.ID = id } }
func epEvents(es ...string) func(*tasks.Endpoint) {
	return func(ep *tasks.Endpoint) { ep.EnabledEvents = es }
}

// insertEndpoint inserts newEndpoint(opts...) and returns the stored
// endpoint.
func (h *harness) insertEndpoint(opts ...func(*tasks.Endpoint)) *tasks.Endpoint {
	h.t.Helper()
	got, err := h.s.InsertEndpoint(h.ctx, h.newEndpoint(opts...))
	if err != nil {
		h.t.Fatalf("InsertEndpoint: got error %v, want nil", err)
	}
	h.checkEndpoint(got)
	return cloneEndpoint(got)
}

func (h *harness) getEndpoint(id string) *tasks.Endpoint {
	h.t.Helper()
	got, err := h.s.GetEndpoint(h.ctx, id)
	if err != nil {
		h.t.Fatalf("GetEndpoint(%s): got error %v, want nil", id, err)
	}
	h.checkEndpoint(got)
	return cloneEndpoint(got)
}

func (h *harness) listEndpoints(appID string) []*tasks.Endpoint {
	h.t.Helper()
	got, err := h.s.ListEndpoints(h.ctx, appID)
	if err != nil {
		h.t.Fatalf("ListEndpoints(%s): got error %v, want nil", appID, err)
	}
	out := make([]*tasks.Endpoint, len(got))
	for i, ep := range got {
		h.checkEndpoint(ep)
		out[i] = cloneEndpoint(ep)
	}
	return out
}

func (h *harness) updateEndpoint(ep *tasks.Endpoint) *tasks.Endpoint {
	h.t.Helper()
	got, err := h.s.UpdateEndpoint(h.ctx, ep)
	if err != nil {
		h.t.Fatalf("UpdateEndpoint(%s): got error %v, want nil", ep.ID, err)
	}
	h.checkEndpoint(got)
	return cloneEndpoint(got)
}

// checkEndpoint reports an endpoint whose times are unset, out of order,
// not in UTC or not kept to the microsecond.
func (h *harness) checkEndpoint(ep *tasks.Endpoint) {
	h.t.Helper()
	if ep == nil {
		h.t.Errorf("got a nil endpoint, want an endpoint")
		return
	}
	if ep.CreatedAt.IsZero() || ep.UpdatedAt.IsZero() {
		h.t.Errorf("endpoint %s: got CreatedAt %v, UpdatedAt %v, want both set", ep.ID, ep.CreatedAt, ep.UpdatedAt)
	}
	if ep.UpdatedAt.Before(ep.CreatedAt) {
		h.t.Errorf("endpoint %s: got UpdatedAt %v before CreatedAt %v", ep.ID, ep.UpdatedAt, ep.CreatedAt)
	}
	checkUTC(h.t, "endpoint "+ep.ID+" CreatedAt", ep.CreatedAt)
	checkUTC(h.t, "endpoint "+ep.ID+" UpdatedAt", ep.UpdatedAt)
	for name, p := range map[string]*time.Time{
		"PreviousSecretExpiresAt": ep.PreviousSecretExpiresAt,
		"FailingSince":            ep.FailingSince,
		"LastSuccessAt":           ep.LastSuccessAt,
		"DisabledAt":              ep.DisabledAt,
	} {
		if p != nil {
			checkUTC(h.t, "endpoint "+ep.ID+" "+name, *p)
		}
	}
	if (ep.DisabledAt != nil) != (ep.DisabledReason != "") {
		h.t.Errorf("endpoint %s: got DisabledAt %s, DisabledReason %q; want both set or neither", ep.ID, fmtTime(ep.DisabledAt), ep.DisabledReason)
	}
	if ep.DisabledAt != nil && ep.Status != tasks.EndpointInactive {
		h.t.Errorf("endpoint %s: got Status %s with DisabledAt %s, want inactive", ep.ID, ep.Status, fmtTime(ep.DisabledAt))
	}
}

// wantSameEndpoint reports the differences between got and want.
func (h *harness) wantSameEndpoint(what string, got, want *tasks.Endpoint) {
	h.t.Helper()
	if d := diffEndpoint(got, want); len(d) > 0 {
		h.t.Errorf("%s: endpoint differs:\n\t%s", what, strings.Join(d, "\n\t"))
	}
}

// diffEndpoint lists the fields in which got and want differ, times
// compared as instants.
func diffEndpoint(got, want *tasks.Endpoint) []string {
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
		{"URL", got.URL, want.URL},
		{"Description", got.Description, want.Description},
		{"Status", string(got.Status), string(want.Status)},
		{"Secret", got.Secret, want.Secret},
		{"PreviousSecret", got.PreviousSecret, want.PreviousSecret},
		{"DisabledReason", got.DisabledReason, want.DisabledReason},
	} {
		if f.got != f.want {
			add(f.name, fmt.Sprintf("%q", f.got), fmt.Sprintf("%q", f.want))
		}
	}
	if !slices.Equal(got.EnabledEvents, want.EnabledEvents) {
		add("EnabledEvents", fmt.Sprintf("%q", got.EnabledEvents), fmt.Sprintf("%q", want.EnabledEvents))
	}
	for _, f := range []struct {
		name      string
		got, want *time.Time
	}{
		{"PreviousSecretExpiresAt", got.PreviousSecretExpiresAt, want.PreviousSecretExpiresAt},
		{"FailingSince", got.FailingSince, want.FailingSince},
		{"LastSuccessAt", got.LastSuccessAt, want.LastSuccessAt},
		{"DisabledAt", got.DisabledAt, want.DisabledAt},
	} {
		if !eqTime(f.got, f.want) {
			add(f.name, fmtTime(f.got), fmtTime(f.want))
		}
	}
	if !got.CreatedAt.Equal(want.CreatedAt) {
		add("CreatedAt", got.CreatedAt, want.CreatedAt)
	}
	if !got.UpdatedAt.Equal(want.UpdatedAt) {
		add("UpdatedAt", got.UpdatedAt, want.UpdatedAt)
	}
	return d
}

// cloneEndpoint returns a deep copy of ep.
func cloneEndpoint(ep *tasks.Endpoint) *tasks.Endpoint {
	c := *ep
	c.EnabledEvents = slices.Clone(ep.EnabledEvents)
	for _, p := range []**time.Time{&c.PreviousSecretExpiresAt, &c.FailingSince, &c.LastSuccessAt, &c.DisabledAt} {
		if *p != nil {
			*p = ptr(**p)
		}
	}
	return &c
}

func endpointIDs(eps []*tasks.Endpoint) []string {
	out := make([]string, len(eps))
	for i, ep := range eps {
		out[i] = ep.ID
	}
	return out
}

func (su suite) testEndpoints(t *testing.T) {
	su.run(t, "InsertReturnsStoredEndpoint", func(h *harness) {
		in := h.newEndpoint()
		old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
		in.CreatedAt, in.UpdatedAt = old, old // the store's to set
		want := cloneEndpoint(in)
		before := h.now()
		got, err := h.s.InsertEndpoint(h.ctx, in)
		after := h.now()
		if err != nil {
			h.t.Fatalf("InsertEndpoint: got error %v, want nil", err)
		}
		h.checkEndpoint(got)
		h.wantBetween("CreatedAt", &got.CreatedAt, before, after)
		want.CreatedAt, want.UpdatedAt = got.CreatedAt, got.CreatedAt
		h.wantSameEndpoint("InsertEndpoint", got, want)
		h.wantSameEndpoint("GetEndpoint after InsertEndpoint", h.getEndpoint(in.ID), want)
	})

	su.run(t, "InsertWithoutPreviousSecret", func(h *harness) {
		in := h.newEndpoint(func(ep *tasks.Endpoint) {
			ep.PreviousSecret, ep.PreviousSecretExpiresAt = "", nil
			ep.Description = ""
			ep.Status = tasks.EndpointInactive
		})
		want := cloneEndpoint(in)
		got := h.insertEndpoint(func(ep *tasks.Endpoint) { *ep = *in })
		want.CreatedAt, want.UpdatedAt = got.CreatedAt, got.UpdatedAt
		h.wantSameEndpoint("InsertEndpoint", got, want)
		h.wantSameEndpoint("GetEndpoint", h.getEndpoint(in.ID), want)
	})

	su.run(t, "InsertExistingIDIsInvalid", func(h *harness) {
		first := h.insertEndpoint()
		got, err := h.s.InsertEndpoint(h.ctx, h.newEndpoint(epID(first.ID), func(ep *tasks.Endpoint) {
			ep.URL = "https://other.example.com/"
		}))
		var ve *tasks.ValidationError
		if !errors.As(err, &ve) || ve.Field != "id" {
			h.t.Errorf("InsertEndpoint of an existing ID: got %v, error %v; want a *tasks.ValidationError of field id", got, err)
		}
		h.wantSameEndpoint("GetEndpoint after a second InsertEndpoint", h.getEndpoint(first.ID), first)
		if eps := h.listEndpoints("app_1"); len(eps) != 1 {
			h.t.Errorf("ListEndpoints: got %v, want [%s]", endpointIDs(eps), first.ID)
		}
	})

	su.run(t, "GetUnknownIsNotFound", func(h *harness) {
		h.insertEndpoint()
		for _, id := range []string{uuid.NewString(), "", "'; DROP TABLE endpoints; --", strings.Repeat("x", 300)} {
			got, err := h.s.GetEndpoint(h.ctx, id)
			h.wantIs(fmt.Sprintf("GetEndpoint(%.20q)", id), err, tasks.ErrNotFound)
			if got != nil {
				h.t.Errorf("GetEndpoint(%.20q): got %v, want nil", id, got)
			}
		}
	})

	su.run(t, "ListIsPerAppOldestFirst", func(h *harness) {
		// IDs ascend in insertion order, so that endpoints created in one
		// clock tick are in the same order by ID.
		prefix := uuid.NewString()
		var a, b, all []*tasks.Endpoint
		for i := range 6 {
			id := fmt.Sprintf("%s-%02d", prefix, i)
			if i%3 == 2 {
				b = append(b, h.insertEndpoint(epID(id), epApp("app_b")))
				all = append(all, b[len(b)-1])
			} else {
				a = append(a, h.insertEndpoint(epID(id), epApp("app_a")))
				all = append(all, a[len(a)-1])
			}
		}
		for _, c := range []struct {
			app  string
			want []*tasks.Endpoint
		}{{"app_a", a}, {"app_b", b}, {"app_c", nil}, {"", all}} {
			got := h.listEndpoints(c.app)
			if !slices.Equal(endpointIDs(got), endpointIDs(c.want)) {
				h.t.Errorf("ListEndpoints(%s): got %v, want %v", c.app, endpointIDs(got), endpointIDs(c.want))
				continue
			}
			for i := range got {
				h.wantSameEndpoint("ListEndpoints("+c.app+")", got[i], c.want[i])
			}
		}
	})

	su.run(t, "UpdateChangesEveryMutableField", func(h *harness) {
		in := h.insertEndpoint()
		h.waitPast(in.UpdatedAt)
		expires := h.now().Add(48 * time.Hour)
		change := &tasks.Endpoint{
			ID:                      in.ID,
			AppID:                   "app_other", // not mutable
			URL:                     "https://hooks.example.org/v2?x=1",
			Description:             "changed — ✓",
			EnabledEvents:           []string{"*"},
			Status:                  tasks.EndpointInactive,
			Secret:                  "whsec_bmV3IHNlY3JldCBmb3IgdGVzdGluZyEhIQ==",
			PreviousSecret:          in.Secret,
			PreviousSecretExpiresAt: &expires,
			CreatedAt:               time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC), // the store's
			UpdatedAt:               in.UpdatedAt,                                // as read: the version the update compares and sets
		}
		before := h.now()
		got := h.updateEndpoint(cloneEndpoint(change))
		after := h.now()
		want := cloneEndpoint(change)
		want.AppID, want.CreatedAt, want.UpdatedAt = in.AppID, in.CreatedAt, got.UpdatedAt
		h.wantSameEndpoint("UpdateEndpoint", got, want)
		h.wantBetween("UpdatedAt", &got.UpdatedAt, before, after)
		if !got.UpdatedAt.After(in.UpdatedAt) {
			h.t.Errorf("UpdatedAt: got %v, want after the previous %v", got.UpdatedAt, in.UpdatedAt)
		}
		h.wantSameEndpoint("GetEndpoint after UpdateEndpoint", h.getEndpoint(in.ID), want)

		// Back, and with the previous secret removed.
		h.waitPast(got.UpdatedAt)
		change = cloneEndpoint(in)
		change.UpdatedAt = got.UpdatedAt // the version stored now
		change.PreviousSecret, change.PreviousSecretExpiresAt = "", nil
		change.EnabledEvents = []string{"b.event", "a.event"}
		got = h.updateEndpoint(cloneEndpoint(change))
		want = cloneEndpoint(change)
		want.UpdatedAt = got.UpdatedAt
		h.wantSameEndpoint("second UpdateEndpoint", got, want)
		if !got.UpdatedAt.After(in.UpdatedAt) {
			h.t.Errorf("UpdatedAt: got %v, want after %v", got.UpdatedAt, in.UpdatedAt)
		}
		h.wantSameEndpoint("GetEndpoint after the second UpdateEndpoint", h.getEndpoint(in.ID), want)
		if eps := h.listEndpoints("app_other"); len(eps) != 0 {
			h.t.Errorf("ListEndpoints(app_other): got %v, want none (AppID is not mutable)", endpointIDs(eps))
		}
	})

	su.run(t, "UpdateChangesOnlyItsEndpoint", func(h *harness) {
		a, b := h.insertEndpoint(), h.insertEndpoint()
		change := cloneEndpoint(a)
		change.URL = "https://changed.example.com/"
		h.updateEndpoint(change)
		h.wantSameEndpoint("GetEndpoint of the other endpoint", h.getEndpoint(b.ID), b)
	})

	su.run(t, "UpdateUnknownIsNotFound", func(h *harness) {
		h.insertEndpoint()
		for _, id := range []string{uuid.NewString(), ""} {
			got, err := h.s.UpdateEndpoint(h.ctx, h.newEndpoint(epID(id)))
			h.wantIs(fmt.Sprintf("UpdateEndpoint(%q)", id), err, tasks.ErrNotFound)
			if got != nil {
				h.t.Errorf("UpdateEndpoint(%q): got %v, want nil", id, got)
			}
			_, err = h.s.GetEndpoint(h.ctx, id)
			h.wantIs(fmt.Sprintf("GetEndpoint(%q) after UpdateEndpoint", id), err, tasks.ErrNotFound)
		}
	})

	su.run(t, "Delete", func(h *harness) {
		gone, kept := h.insertEndpoint(), h.insertEndpoint()
		if err := h.s.DeleteEndpoint(h.ctx, gone.ID); err != nil {
			h.t.Fatalf("DeleteEndpoint: got error %v, want nil", err)
		}
		_, err := h.s.GetEndpoint(h.ctx, gone.ID)
		h.wantIs("GetEndpoint after DeleteEndpoint", err, tasks.ErrNotFound)
		h.wantIs("second DeleteEndpoint", h.s.DeleteEndpoint(h.ctx, gone.ID), tasks.ErrNotFound)
		h.wantIs("DeleteEndpoint of an unknown ID", h.s.DeleteEndpoint(h.ctx, uuid.NewString()), tasks.ErrNotFound)
		_, err = h.s.UpdateEndpoint(h.ctx, gone)
		h.wantIs("UpdateEndpoint after DeleteEndpoint", err, tasks.ErrNotFound)
		if eps := h.listEndpoints("app_1"); !slices.Equal(endpointIDs(eps), []string{kept.ID}) {
			h.t.Errorf("ListEndpoints after DeleteEndpoint: got %v, want [%s]", endpointIDs(eps), kept.ID)
		}
		h.wantSameEndpoint("GetEndpoint of the other endpoint", h.getEndpoint(kept.ID), kept)
		// The ID is free again.
		again := h.insertEndpoint(epID(gone.ID))
		h.wantSameEndpoint("GetEndpoint of a new endpoint with the deleted ID", h.getEndpoint(gone.ID), again)
	})

	su.run(t, "ReturnsACopy", func(h *harness) {
		in := h.newEndpoint()
		ins, err := h.s.InsertEndpoint(h.ctx, in)
		if err != nil {
			h.t.Fatalf("InsertEndpoint: got error %v, want nil", err)
		}
		want := cloneEndpoint(ins)
		spoil := func(eps ...*tasks.Endpoint) {
			for _, ep := range eps {
				ep.URL = "https://spoiled.example.com/"
				ep.EnabledEvents[0] = "spoiled"
				ep.EnabledEvents = append(ep.EnabledEvents, "more")
				*ep.PreviousSecretExpiresAt = ep.PreviousSecretExpiresAt.Add(-24 * time.Hour)
				ep.Status = tasks.EndpointInactive
			}
		}
		get, err := h.s.GetEndpoint(h.ctx, in.ID)
		if err != nil {
			h.t.Fatalf("GetEndpoint: got error %v, want nil", err)
		}
		list, err := h.s.ListEndpoints(h.ctx, in.AppID)
		if err != nil || len(list) != 1 {
			h.t.Fatalf("ListEndpoints: got %d endpoints, error %v; want 1, nil", len(list), err)
		}
		spoil(in, ins, get, list[0]) // in: the store keeps none of its argument
		h.wantSameEndpoint("GetEndpoint after changing what Insert, Get and List took and returned", h.getEndpoint(want.ID), want)

		change := cloneEndpoint(want)
		change.Description = "updated"
		upd, err := h.s.UpdateEndpoint(h.ctx, change)
		if err != nil {
			h.t.Fatalf("UpdateEndpoint: got error %v, want nil", err)
		}
		want = cloneEndpoint(upd)
		spoil(change, upd)
		h.wantSameEndpoint("GetEndpoint after changing what Update took and returned", h.getEndpoint(want.ID), want)
	})

	su.run(t, "EnabledEventsRoundTrip", func(h *harness) {
		many := make([]string, tasks.MaxEnabledEvents)
		for i := range many {
			many[i] = fmt.Sprintf("event.%03d", len(many)-i) // descending: order is kept, not sorted
		}
		for _, c := range []struct {
			name   string
			events []string
		}{
			{"All", []string{tasks.AllEvents}},
			{"One", []string{"user.created"}},
			{"Order", []string{"z.last", "a.first", "m:middle", "b_x-y"}},
			{"AllAmongOthers", []string{"a.b", tasks.AllEvents}},
			{"Duplicates", []string{"a.b", "a.b"}},
			{"Many", many},
		} {
			in := h.insertEndpoint(epEvents(c.events...))
			if !slices.Equal(in.EnabledEvents, c.events) {
				h.t.Errorf("%s: InsertEndpoint returned EnabledEvents %q, want %q", c.name, in.EnabledEvents, c.events)
			}
			if got := h.getEndpoint(in.ID); !slices.Equal(got.EnabledEvents, c.events) {
				h.t.Errorf("%s: GetEndpoint returned EnabledEvents %q, want %q", c.name, got.EnabledEvents, c.events)
			}
			rev := slices.Clone(c.events)
			slices.Reverse(rev)
			change := cloneEndpoint(in)
			change.EnabledEvents = rev
			if got := h.updateEndpoint(change); !slices.Equal(got.EnabledEvents, rev) {
				h.t.Errorf("%s: UpdateEndpoint returned EnabledEvents %q, want %q", c.name, got.EnabledEvents, rev)
			}
			if got := h.getEndpoint(in.ID); !slices.Equal(got.EnabledEvents, rev) {
				h.t.Errorf("%s: GetEndpoint after UpdateEndpoint returned EnabledEvents %q, want %q", c.name, got.EnabledEvents, rev)
			}
		}
		for _, ep := range h.listEndpoints("app_1") {
			if len(ep.EnabledEvents) == 0 {
				h.t.Errorf("ListEndpoints: endpoint %s has no EnabledEvents", ep.ID)
			}
		}
	})

	su.run(t, "TimesAreUTCToTheMicrosecond", func(h *harness) {
		// checkEndpoint, called on every endpoint returned, checks UTC and
		// microseconds.
		expires := h.now().Add(time.Hour)
		ep := h.insertEndpoint(func(ep *tasks.Endpoint) { ep.PreviousSecretExpiresAt = &expires })
		h.wantTime("PreviousSecretExpiresAt", ep.PreviousSecretExpiresAt, &expires)
		h.getEndpoint(ep.ID)
		h.listEndpoints(ep.AppID)
		expires = expires.Add(time.Hour + time.Microsecond)
		ep.PreviousSecretExpiresAt = &expires
		got := h.updateEndpoint(ep)
		h.wantTime("PreviousSecretExpiresAt after UpdateEndpoint", got.PreviousSecretExpiresAt, &expires)
		h.wantTime("PreviousSecretExpiresAt from GetEndpoint", h.getEndpoint(ep.ID).PreviousSecretExpiresAt, &expires)
	})
}

// Attempts.

func (h *harness) attempts(taskID string) []tasks.Attempt {
	h.t.Helper()
	got, err := h.s.Attempts(h.ctx, taskID)
	if err != nil {
		h.t.Fatalf("Attempts(%s): got error %v, want nil", taskID, err)
	}
	for _, a := range got {
		checkUTC(h.t, fmt.Sprintf("attempt %d of %s StartedAt", a.Number, taskID), a.StartedAt)
	}
	return slices.Clone(got)
}

// wantAttempts reports the differences between got and want.
func (h *harness) wantAttempts(what string, got, want []tasks.Attempt) {
	h.t.Helper()
	if len(got) != len(want) {
		h.t.Errorf("%s: got %d attempts, want %d:\n\tgot  %v\n\twant %v", what, len(got), len(want), fmtAttempts(got), fmtAttempts(want))
		return
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.TaskID != w.TaskID || g.Number != w.Number || g.EndpointID != w.EndpointID ||
			!g.StartedAt.Equal(w.StartedAt) || g.Duration != w.Duration || g.StatusCode != w.StatusCode ||
			g.Response != w.Response || g.Error != w.Error {
			h.t.Errorf("%s: attempt %d differs:\n\tgot  %s\n\twant %s", what, i, fmtAttempt(g), fmtAttempt(w))
		}
	}
}

func fmtAttempt(a tasks.Attempt) string {
	return fmt.Sprintf("{TaskID:%s Number:%d EndpointID:%q StartedAt:%s Duration:%v StatusCode:%d Response:%q Error:%q}",
		a.TaskID, a.Number, a.EndpointID, a.StartedAt.Format(time.RFC3339Nano), a.Duration, a.StatusCode, a.Response, a.Error)
}

func fmtAttempts(as []tasks.Attempt) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = fmtAttempt(a)
	}
	return "[" + strings.Join(s, ", ") + "]"
}

// attemptOf returns a record of attempt n of t, to endpoint ep ("" for a
// func), started at start, with every field set.
func attemptOf(t *tasks.Task, ep string, start time.Time, status int, response, errMsg string) tasks.Attempt {
	return tasks.Attempt{
		TaskID:     t.ID,
		Number:     t.Attempts,
		EndpointID: ep,
		StartedAt:  start,
		Duration:   1234567 * time.Microsecond,
		StatusCode: status,
		Response:   response,
		Error:      errMsg,
	}
}

// finishWith records the outcome of t's current attempt with as and fails
// unless it applies.
func (h *harness) finishWith(t *tasks.Task, state tasks.State, endpointID string, as ...tasks.Attempt) {
	h.t.Helper()
	msg := ""
	if state != tasks.StateCompleted {
		msg = "boom"
	}
	o := tasks.Outcome{ID: t.ID, Attempt: t.Attempts, State: state, Error: msg, EndpointID: endpointID, Attempts: as}
	if applied := h.finish(o); !applied[0] {
		h.t.Fatalf("Finish(%+v): got applied false, want true", o)
	}
}

func (su suite) testAttempts(t *testing.T) {
	su.run(t, "FinishRecordsAttempts", func(h *harness) {
		tk := h.running(time.Hour)
		start := h.now()
		want := []tasks.Attempt{
			attemptOf(tk, "ep_1", start, 500, "Zoë — 日本語 🎉 \"q\"\n<html>", "endpoint returned 500 Internal Server Error"),
			attemptOf(tk, "ep_2", start.Add(time.Microsecond), 200, "ok", ""),
		}
		want[1].Duration = 3 * time.Microsecond
		h.finishWith(tk, tasks.StateCompleted, "ep_2", want...)
		h.wantAttempts("Attempts", h.attempts(tk.ID), want)
	})

	su.run(t, "FuncAttemptHasNoEndpoint", func(h *harness) {
		tk := h.running(time.Hour)
		want := []tasks.Attempt{{TaskID: tk.ID, Number: 1, StartedAt: h.now(), Duration: time.Millisecond, Error: "panic: boom"}}
		h.finishWith(tk, tasks.StateFailed, "", want...)
		h.wantAttempts("Attempts", h.attempts(tk.ID), want)
		if got := h.get(tk.ID); got.EndpointID != nil {
			h.t.Errorf("EndpointID after Finish without one: got %s, want nil", fmtString(got.EndpointID))
		}
	})

	su.run(t, "FinishSetsEndpointID", func(h *harness) {
		tk := h.running(time.Hour)
		h.finishWith(tk, tasks.StateRetrying, "ep_1")
		got := h.get(tk.ID)
		if got.EndpointID == nil || *got.EndpointID != "ep_1" {
			h.t.Errorf("EndpointID after Finish with ep_1: got %s, want \"ep_1\"", fmtString(got.EndpointID))
		}
		// An outcome without an endpoint keeps the task's.
		tk = h.claimOne(tk.ID, time.Hour)
		h.finishWith(tk, tasks.StateCompleted, "")
		if got := h.get(tk.ID); got.EndpointID == nil || *got.EndpointID != "ep_1" {
			h.t.Errorf("EndpointID after Finish without one: got %s, want \"ep_1\" as before", fmtString(got.EndpointID))
		}
	})

	su.run(t, "StaleOutcomeRecordsNothing", func(h *harness) {
		tk := h.running(time.Hour)
		stale := tasks.Outcome{ID: tk.ID, Attempt: tk.Attempts + 1, State: tasks.StateCompleted, EndpointID: "ep_stale",
			Attempts: []tasks.Attempt{attemptOf(tk, "ep_stale", h.now(), 200, "stale", "")}}
		if applied := h.finish(stale); applied[0] {
			h.t.Fatalf("Finish of a stale attempt: got applied true, want false")
		}
		h.wantAttempts("Attempts after a stale Finish", h.attempts(tk.ID), nil)
		if got := h.get(tk.ID); got.EndpointID != nil {
			h.t.Errorf("EndpointID after a stale Finish: got %s, want nil", fmtString(got.EndpointID))
		}

		// In one batch with an outcome that applies.
		other := h.running(time.Hour)
		good := attemptOf(other, "ep_1", h.now(), 204, "", "")
		applied := h.finish(stale, tasks.Outcome{ID: other.ID, Attempt: other.Attempts, State: tasks.StateCompleted,
			Attempts: []tasks.Attempt{good}})
		if applied[0] || !applied[1] {
			h.t.Fatalf("Finish of a stale and a current attempt: got applied %v, want [false true]", applied)
		}
		h.wantAttempts("Attempts of the stale outcome's task", h.attempts(tk.ID), nil)
		h.wantAttempts("Attempts of the current outcome's task", h.attempts(other.ID), []tasks.Attempt{good})

		// The same outcome again, once it has applied.
		h.finishWith(tk, tasks.StateCompleted, "", attemptOf(tk, "", h.now(), 0, "", ""))
		before := h.attempts(tk.ID)
		again := tasks.Outcome{ID: tk.ID, Attempt: tk.Attempts, State: tasks.StateCompleted,
			Attempts: []tasks.Attempt{attemptOf(tk, "ep_again", h.now(), 200, "again", "")}}
		if applied := h.finish(again); applied[0] {
			h.t.Fatalf("Finish of an attempt already finished: got applied true, want false")
		}
		h.wantAttempts("Attempts after finishing an attempt twice", h.attempts(tk.ID), before)
	})

	su.run(t, "HistoryInOrderAcrossFinishes", func(h *harness) {
		tk := h.running(time.Hour)
		var want []tasks.Attempt
		step := func(state tasks.State, as ...tasks.Attempt) {
			h.t.Helper()
			h.finishWith(tk, state, "", as...)
			want = append(want, as...)
			h.wantAttempts(fmt.Sprintf("Attempts after attempt %d", tk.Attempts), h.attempts(tk.ID), want)
		}
		now := h.now()
		step(tasks.StateRetrying, attemptOf(tk, "ep_b", now, 500, "first", "HTTP 500"))
		tk = h.claimOne(tk.ID, time.Hour)
		step(tasks.StateRetrying,
			attemptOf(tk, "ep_b", now.Add(time.Second), 503, "second", "HTTP 503"),
			attemptOf(tk, "ep_a", now.Add(time.Second), 0, "", "dial tcp: connection refused"))
		tk = h.claimOne(tk.ID, time.Hour)
		step(tasks.StateCompleted,
			attemptOf(tk, "ep_b", now.Add(2*time.Second), 200, "third", ""),
			attemptOf(tk, "ep_a", now.Add(2*time.Second), 201, "", ""))
		if tk.Attempts != 3 {
			h.t.Errorf("task Attempts: got %d, want 3", tk.Attempts)
		}
	})

	su.run(t, "ManyAttemptsInOneFinish", func(h *harness) {
		for range 3 {
			h.insert()
		}
		ts := h.claim(3, time.Hour)
		if len(ts) != 3 {
			h.t.Fatalf("Claim: got %d tasks, want 3", len(ts))
		}
		now := h.now()
		want := make(map[string][]tasks.Attempt)
		outs := make([]tasks.Outcome, len(ts))
		for i, tk := range ts {
			for j := range 400 {
				a := attemptOf(tk, fmt.Sprintf("ep_%04d", j), now.Add(time.Duration(j)*time.Microsecond), 200+j%300, fmt.Sprint(j), "")
				want[tk.ID] = append(want[tk.ID], a)
			}
			outs[i] = tasks.Outcome{ID: tk.ID, Attempt: tk.Attempts, State: tasks.StateCompleted, Attempts: want[tk.ID]}
		}
		for i, ok := range h.finish(outs...) {
			if !ok {
				h.t.Errorf("Finish of %s: got applied false, want true", outs[i].ID)
			}
		}
		for _, tk := range ts {
			h.wantAttempts("Attempts of "+tk.ID, h.attempts(tk.ID), want[tk.ID])
		}
	})

	su.run(t, "RescueRecordsLeaseExpired", func(h *harness) {
		tk := h.running(time.Hour, maxAttempts(3))
		first := attemptOf(tk, "", h.now(), 0, "", "boom")
		h.finishWith(tk, tasks.StateRetrying, "", first)
		want := []tasks.Attempt{first}
		for range 2 {
			tk = h.claimOne(tk.ID, time.Millisecond)
			h.waitExpired(tk)
			before := h.now()
			if n := h.rescue(10); n != 1 {
				h.t.Fatalf("Rescue: got %d, want 1", n)
			}
			after := h.now()
			got := h.attempts(tk.ID)
			if len(got) != len(want)+1 {
				h.t.Fatalf("Attempts after Rescue: got %s, want %d attempts", fmtAttempts(got), len(want)+1)
			}
			last := got[len(got)-1]
			h.wantBetween("StartedAt of the rescued attempt", &last.StartedAt, before, after)
			want = append(want, tasks.Attempt{TaskID: tk.ID, Number: tk.Attempts, StartedAt: last.StartedAt, Error: "lease expired"})
			h.wantAttempts("Attempts after Rescue", got, want)
		}
		h.wantState(h.get(tk.ID), tasks.StateFailed) // the third attempt was the last
	})

	su.run(t, "RescueRecordsEachTask", func(h *harness) {
		for range 5 {
			h.insert(maxAttempts(1))
		}
		claimed := h.claim(5, time.Millisecond)
		h.waitExpired(claimed...)
		if n := h.rescue(2); n != 2 {
			h.t.Fatalf("Rescue(2): got %d, want 2", n)
		}
		count := func() int {
			n := 0
			for _, tk := range claimed {
				as := h.attempts(tk.ID)
				for _, a := range as {
					if a.Number != 1 || a.Error != "lease expired" || a.EndpointID != "" {
						h.t.Errorf("attempt of %s: got %s, want attempt 1, lease expired", tk.ID, fmtAttempt(a))
					}
				}
				n += len(as)
			}
			return n
		}
		if n := count(); n != 2 {
			h.t.Errorf("attempts after Rescue(2): got %d, want 2", n)
		}
		if n := h.rescue(10); n != 3 {
			h.t.Fatalf("Rescue(10): got %d, want 3", n)
		}
		if n := count(); n != 5 {
			h.t.Errorf("attempts after rescuing all: got %d, want 5", n)
		}
		if n := h.rescue(10); n != 0 {
			h.t.Errorf("Rescue with nothing expired: got %d, want 0", n)
		}
		if n := count(); n != 5 {
			h.t.Errorf("attempts after a Rescue that rescued none: got %d, want 5", n)
		}
	})

	su.run(t, "UnknownTaskHasNone", func(h *harness) {
		h.completed()
		for _, id := range []string{uuid.NewString(), "", "'; DROP TABLE attempts; --"} {
			got, err := h.s.Attempts(h.ctx, id)
			if err != nil || len(got) != 0 {
				h.t.Errorf("Attempts(%q): got %v, error %v; want none, nil", id, got, err)
			}
		}
	})

	su.run(t, "OutliveTheirEndpoint", func(h *harness) {
		ep := h.insertEndpoint()
		tk := h.running(time.Hour)
		want := []tasks.Attempt{attemptOf(tk, ep.ID, h.now(), 200, "ok", "")}
		h.finishWith(tk, tasks.StateCompleted, ep.ID, want...)
		if err := h.s.DeleteEndpoint(h.ctx, ep.ID); err != nil {
			h.t.Fatalf("DeleteEndpoint: got error %v, want nil", err)
		}
		h.wantAttempts("Attempts after DeleteEndpoint", h.attempts(tk.ID), want)
		if got := h.get(tk.ID); got.EndpointID == nil || *got.EndpointID != ep.ID {
			h.t.Errorf("EndpointID after DeleteEndpoint: got %s, want %q", fmtString(got.EndpointID), ep.ID)
		}
	})

	su.run(t, "ReturnsACopy", func(h *harness) {
		tk := h.running(time.Hour)
		want := []tasks.Attempt{attemptOf(tk, "ep_1", h.now(), 200, "ok", "")}
		h.finishWith(tk, tasks.StateCompleted, "", want...)
		got, err := h.s.Attempts(h.ctx, tk.ID)
		if err != nil || len(got) != 1 {
			h.t.Fatalf("Attempts: got %d, error %v; want 1, nil", len(got), err)
		}
		got[0].Response = "spoiled"
		h.wantAttempts("Attempts after changing what it returned", h.attempts(tk.ID), want)
	})

	// Response excerpts come from arbitrary servers: text that a database
	// cannot store is kept, or stored with U+FFFD in place of each NUL byte
	// and invalid sequence, but never an error.
	su.run(t, "UnstorableTextIsNotAnError", func(h *harness) {
		tk := h.running(time.Hour)
		const text = "nul \x00, invalid \xff"
		const replaced = "nul \uFFFD, invalid \uFFFD"
		a := attemptOf(tk, "ep_1", h.now(), 500, text, text)
		h.finishWith(tk, tasks.StateCompleted, "", a)
		got := h.attempts(tk.ID)
		if len(got) != 1 {
			h.t.Fatalf("Attempts: got %s, want 1 attempt", fmtAttempts(got))
		}
		for name, g := range map[string]string{"Response": got[0].Response, "Error": got[0].Error} {
			if g != text && g != replaced {
				h.t.Errorf("%s: got %q, want %q, or with U+FFFD for the NUL and the invalid byte", name, g, text)
			}
		}
	})
}
