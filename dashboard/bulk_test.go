package dashboard_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
)

// uiTime is t as a datetime-local value in UTC.
func uiTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05") }

// TestUI_Delete checks the task page's Delete button on every store: shown
// for a task that is not running, it deletes the task once confirmed,
// with the form's CSRF token; a running task has none and is refused.
func TestUI_Delete(t *testing.T) {
	t.Parallel()
	testEngineStores(t, func(t *testing.T, newStore func(testing.TB) tasks.Store) {
		started := make(chan struct{}, 1)
		release := make(chan struct{})
		d := newDash(t, newStore(t), dashOpts{funcs: map[string]tasks.Func{
			"x": func(context.Context, *tasks.Task) error { return nil },
			"block": func(context.Context, *tasks.Task) error {
				started <- struct{}{}
				<-release
				return nil
			},
		}})
		ctx := context.Background()
		d.login(keyApp1)

		tk := enqueue(t, d.e, tasks.NewTask{EventType: "x"})
		waitState(t, d.e, tk.ID, tasks.StateCompleted)
		page := d.get(taskPath(tk.ID))
		wantContains(t, "a completed task's page", page.body, `action="/ui/apps/app_1/tasks/`+tk.ID+`/delete"`, `id="delete"`, `name="confirm"`)
		// Unconfirmed, or without the token: nothing is deleted.
		p := d.act(taskPath(tk.ID), taskPath(tk.ID)+"/delete", nil)
		d.wantStatus("POST delete unconfirmed", p, http.StatusUnprocessableEntity)
		wantContains(t, "the refusal", p.body, "Tick the box")
		p = d.post(taskPath(tk.ID)+"/delete", url.Values{"confirm": {"yes"}})
		d.wantStatus("POST delete without the token", p, http.StatusForbidden)
		if _, err := d.e.Get(ctx, tk.ID); err != nil {
			t.Fatalf("after refused deletes: %v", err)
		}
		p = d.act(taskPath(tk.ID), taskPath(tk.ID)+"/delete", url.Values{"confirm": {"yes"}})
		if p.status != http.StatusSeeOther || p.location() != uiPrefix+"/apps/app_1/tasks?done=deleted" {
			t.Fatalf("POST delete: got %d to %q, want 303 to the task list", p.status, p.location())
		}
		if _, err := d.e.Get(ctx, tk.ID); !errors.Is(err, tasks.ErrNotFound) {
			t.Errorf("after delete: %v, want ErrNotFound", err)
		}
		wantContains(t, "the list after delete", d.get("/apps/app_1/tasks?done=deleted").body, "The task is deleted")
		d.wantStatus("the deleted task's page", d.get(taskPath(tk.ID)), http.StatusNotFound)

		running := enqueue(t, d.e, tasks.NewTask{EventType: "block"})
		<-started
		waitState(t, d.e, running.ID, tasks.StateRunning)
		wantNotContains(t, "a running task's page", d.get(taskPath(running.ID)).body, `id="delete"`)
		p = d.act(taskPath(running.ID), taskPath(running.ID)+"/delete", url.Values{"confirm": {"yes"}})
		d.wantStatus("POST delete of a running task", p, http.StatusConflict)
		wantContains(t, "the refusal", p.body, "running")
		close(release)
		waitState(t, d.e, running.ID, tasks.StateCompleted)

		other := enqueue(t, d.e, tasks.NewTask{AppID: "app_2", EventType: "x", RunAt: time.Now().Add(time.Hour)})
		token := d.csrf("/apps/app_1/tasks")
		for _, path := range []string{"/apps/app_1/tasks/" + other.ID + "/delete", "/apps/app_2/tasks/" + other.ID + "/delete"} {
			d.wantStatus("POST "+path, d.post(path, url.Values{"csrf": {token}, "confirm": {"yes"}}), http.StatusNotFound)
		}
	})
}

// TestUI_Bulk checks the task list's bulk actions on every store: shown
// only when the list is filtered, they replay the failed tasks or cancel
// the scheduled ones of the filter's event type and range, and say how
// many; a missing or reversed bound is refused.
func TestUI_Bulk(t *testing.T) {
	t.Parallel()
	testEngineStores(t, func(t *testing.T, newStore func(testing.TB) tasks.Store) {
		var up atomic.Bool
		d := newDash(t, newStore(t), dashOpts{funcs: map[string]tasks.Func{
			"x": func(context.Context, *tasks.Task) error {
				if !up.Load() {
					return tasks.Permanent(errors.New("down"))
				}
				return nil
			},
			"y": func(context.Context, *tasks.Task) error { return nil },
		}})
		ctx := context.Background()
		d.login(keyApp1)
		const list = "/apps/app_1/tasks"
		from, to := uiTime(time.Now().Add(-time.Hour)), uiTime(time.Now().Add(time.Hour))

		wantNotContains(t, "the unfiltered list", d.get(list).body, `id="bulk"`)
		filtered := d.get(list + "?event_type=x&from=" + from + "&to=" + to)
		wantContains(t, "the filtered list", filtered.body, `id="bulk"`, `id="replay-failed"`, `id="cancel-scheduled"`,
			`formaction="/ui/apps/app_1/tasks/cancel"`, `name="event_type" value="x"`, `value="`+from+`" required`)

		var failed []*tasks.Task
		for range 3 {
			failed = append(failed, enqueue(t, d.e, tasks.NewTask{EventType: "x"}))
		}
		for _, tk := range failed {
			waitState(t, d.e, tk.ID, tasks.StateFailed)
		}
		up.Store(true)
		form := url.Values{"event_type": {"x"}, "from": {from}, "to": {to}}
		p := d.act(list, list+"/replay", form)
		d.wantStatus("POST replay", p, http.StatusSeeOther)
		loc, err := url.Parse(p.location())
		if err != nil || loc.Path != uiPrefix+list || loc.Query().Get("done") != "bulk-replayed" || loc.Query().Get("n") != "3" ||
			loc.Query().Get("event_type") != "x" || loc.Query().Get("from") != from {
			t.Fatalf("POST replay: redirected to %q, want the filtered list with done=bulk-replayed&n=3", p.location())
		}
		for _, tk := range failed {
			waitState(t, d.e, tk.ID, tasks.StateCompleted)
		}
		wantContains(t, "the list after replay", d.get(loc.RequestURI()[len(uiPrefix):]).body, "Replayed 3 failed tasks")

		var later []*tasks.Task
		for range 2 {
			later = append(later, enqueue(t, d.e, tasks.NewTask{EventType: "y", RunAt: time.Now().Add(time.Hour)}))
		}
		keep := enqueue(t, d.e, tasks.NewTask{EventType: "x", RunAt: time.Now().Add(time.Hour)})
		p = d.act(list, list+"/cancel", url.Values{"event_type": {"y"}, "from": {from}, "to": {to}})
		d.wantStatus("POST cancel", p, http.StatusSeeOther)
		if loc, _ := url.Parse(p.location()); loc.Query().Get("n") != "2" || loc.Query().Get("done") != "bulk-canceled" {
			t.Errorf("POST cancel: redirected to %q, want done=bulk-canceled&n=2", p.location())
		}
		for _, tk := range later {
			if got, _ := d.e.Get(ctx, tk.ID); got.State != tasks.StateCanceled {
				t.Errorf("task of y: %s, want canceled", got.State)
			}
		}
		if got, _ := d.e.Get(ctx, keep.ID); got.State != tasks.StateScheduled {
			t.Errorf("task of x: %s, want scheduled", got.State)
		}
		wantContains(t, "the flash of one", d.get(list+"?done=bulk-canceled&n=1").body, "Canceled 1 scheduled or retrying task.")
		wantNotContains(t, "a forged count", d.get(list+"?done=bulk-canceled&n=lots").body, `class="flash"`)

		for _, tc := range []struct {
			form url.Values
			want string
		}{
			{url.Values{"to": {to}}, "Created from is required"},
			{url.Values{"from": {from}}, "Created before is required"},
			{url.Values{"from": {to}, "to": {from}}, "must be later"},
			{url.Values{"from": {"yesterday"}, "to": {to}}, "Created from"},
			{url.Values{"from": {from}, "to": {to}, "event_type": {"a b"}}, "Event type"},
		} {
			p := d.act(list, list+"/cancel", tc.form)
			d.wantStatus("POST cancel "+tc.form.Encode(), p, http.StatusUnprocessableEntity)
			wantContains(t, "the refusal", p.body, tc.want)
		}
		if got, _ := d.e.Get(ctx, keep.ID); got.State != tasks.StateScheduled {
			t.Errorf("after refused bulk actions: %s, want scheduled", got.State)
		}
		// Another app is not found; without the token, refused.
		token := d.csrf(list)
		d.wantStatus("POST to app_2", d.post("/apps/app_2/tasks/cancel", url.Values{"csrf": {token}, "from": {from}, "to": {to}}), http.StatusNotFound)
		d.wantStatus("POST without the token", d.post(list+"/cancel", url.Values{"from": {from}, "to": {to}}), http.StatusForbidden)
		if got, _ := d.e.Get(ctx, keep.ID); got.State != tasks.StateScheduled {
			t.Errorf("after refused bulk actions: %s, want scheduled", got.State)
		}
	})
}
