package dashboard

// Deleting a task, and the bulk actions of the task list: replaying the
// failed tasks and canceling the scheduled ones of a filter.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/internal/web"
)

// handleDelete deletes the task of the path, which must not be running,
// once the form's confirmation box is ticked, and sends the browser to the
// task list.
func (u *ui) handleDelete(w http.ResponseWriter, r *http.Request, v *view) error {
	if r.PostForm.Get("confirm") != "yes" {
		return uiErrorf(http.StatusUnprocessableEntity, "Tick the box to confirm that the task and its attempts are to be deleted.")
	}
	ctx, cancel := u.storeCtx(r)
	defer cancel()
	t, err := u.appTask(ctx, r, v.App)
	if err != nil {
		return err
	}
	t, err = u.e.Delete(ctx, t.ID)
	switch {
	case errors.Is(err, tasks.ErrInvalidState):
		return uiErrorf(http.StatusConflict, "The task is %s: a running task cannot be deleted. Cancel it, and delete it once it has ended.", t.State)
	case errors.Is(err, tasks.ErrNotFound):
		return errUITaskNotFound // deleted meanwhile
	case err != nil:
		return err
	}
	return u.redirect(w, r, v.Base+"/apps/"+v.App+"/tasks?done=deleted")
}

// bulkAction is the action of a bulk form of the task list: op, on the
// app's tasks of the form's event type (optional) created in its range
// (both ends required, in UTC). It runs as long as the request does, batch
// by batch (see tasks.Engine.ReplayFailed), and sends the browser back to
// the list, filtered as the form was, with how many tasks op changed.
func (u *ui) bulkAction(done string, op func(context.Context, tasks.ListParams) (int, error)) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, v *view) error {
		p := tasks.ListParams{AppID: v.App, EventType: strings.TrimSpace(r.PostForm.Get("event_type"))}
		if p.EventType != "" {
			if problem := web.EventTypeProblem(p.EventType); problem != "" {
				return uiErrorf(http.StatusUnprocessableEntity, "Event type: %s.", problem)
			}
		}
		from, to := r.PostForm.Get("from"), r.PostForm.Get("to")
		for _, b := range []struct {
			name, s string
			dst     *time.Time
		}{{"Created from", from, &p.CreatedSince}, {"Created before", to, &p.CreatedBefore}} {
			if b.s == "" {
				return uiErrorf(http.StatusUnprocessableEntity, "%s is required: a bulk action acts on the tasks created in a time range.", b.name)
			}
			t, err := parseLocal(b.s, time.UTC)
			if err != nil {
				return uiErrorf(http.StatusUnprocessableEntity, "%s: %v.", b.name, err)
			}
			*b.dst = t
		}
		if !p.CreatedSince.Before(p.CreatedBefore) {
			return uiErrorf(http.StatusUnprocessableEntity, "Created before must be later than created from.")
		}
		n, err := op(r.Context(), p)
		if err != nil {
			return err
		}
		q := url.Values{"done": {done}, "n": {strconv.Itoa(n)}, "from": {from}, "to": {to}}
		if p.EventType != "" {
			q.Set("event_type", p.EventType)
		}
		return u.redirect(w, r, v.Base+"/apps/"+v.App+"/tasks?"+q.Encode())
	}
}

// countFlashes are the messages of bulk actions, by the value of "done";
// the page's "n" is how many tasks the action changed.
var countFlashes = map[string][2]string{ // one task, and n tasks
	"bulk-replayed": {"Replayed 1 failed task: it will run again.", "Replayed %d failed tasks: they will run again."},
	"bulk-canceled": {"Canceled 1 scheduled or retrying task.", "Canceled %d scheduled or retrying tasks."},
}

// flash is the message a page shows after an action redirected to it
// with the query q.
func flash(q url.Values) string {
	done := q.Get("done")
	f, ok := countFlashes[done]
	if !ok {
		return flashes[done]
	}
	n, err := strconv.Atoi(q.Get("n"))
	switch {
	case err != nil || n < 0:
		return ""
	case n == 1:
		return f[0]
	}
	return fmt.Sprintf(f[1], n)
}
