package dashboard

// The page of an app's flow control: its limits per flow key, with their
// running and waiting tasks, and pause and resume.

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/taskwheel/tasks"
)

type limitsPage struct {
	Limits []limitRowView
}

type limitRowView struct {
	*tasks.Limit
	Rate string // "20/s", or "—" for none
}

// errUILimit is the answer to a pause or resume of a key without a limit.
var errUILimit = uiErrorf(http.StatusNotFound, "No limit for this flow key in this app.")

func (u *ui) handleLimits(w http.ResponseWriter, r *http.Request, v *view) error {
	ctx, cancel := u.storeCtx(r)
	defer cancel()
	ls, err := u.e.Limits(ctx, v.App)
	if err != nil {
		return err
	}
	p := &limitsPage{}
	for _, l := range ls {
		row := limitRowView{Limit: l, Rate: "—"}
		if l.Rate > 0 {
			row.Rate = strconv.FormatFloat(l.Rate, 'f', -1, 64) + "/s, burst " + strconv.Itoa(l.Burst)
		}
		p.Limits = append(p.Limits, row)
	}
	v.Title, v.Nav, v.Page = "Flow control", "limits", p
	u.render(w, r, http.StatusOK, "limits", v)
	return nil
}

// limitPaused pauses or resumes the flow key named by the form's key.
func (u *ui) limitPaused(paused bool) pageFunc {
	done := "key-resumed"
	if paused {
		done = "key-paused"
	}
	return func(w http.ResponseWriter, r *http.Request, v *view) error {
		ctx, cancel := u.storeCtx(r)
		defer cancel()
		// Paused alone, atomically: a limit set meanwhile through the
		// API keeps its rate and concurrency.
		_, err := u.e.PauseLimit(ctx, v.App, r.PostForm.Get("key"), paused)
		var invalid *tasks.ValidationError
		if errors.Is(err, tasks.ErrNotFound) || errors.As(err, &invalid) {
			return errUILimit // no such key, nor a key at all
		}
		if err != nil {
			return err
		}
		return u.redirect(w, r, v.Base+"/apps/"+v.App+"/limits?done="+done)
	}
}
