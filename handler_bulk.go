package tasks

import (
	"context"
	"errors"
	"net/http"
	"time"
)

// handleDeleteTask deletes a task that is not running, with its attempts:
// 204. A running task is a 409.
func (h *handler) handleDeleteTask(w http.ResponseWriter, r *http.Request, app string) error {
	if err := h.readEmpty(w, r); err != nil {
		return err
	}
	ctx, cancel := h.storeCtx(r)
	defer cancel()
	t, err := h.appTask(ctx, r, app)
	if err != nil {
		return err
	}
	t, err = h.e.Delete(ctx, t.ID)
	switch {
	case errors.Is(err, ErrInvalidState):
		return stateConflict(t, "a running task cannot be deleted; cancel it, and delete it once it has ended")
	case err != nil:
		return notFoundAs(err, errTaskNotFound) // deleted meanwhile
	}
	return noContent(w)
}

// handleReplayTasks replays the failed tasks of the app that the body's
// filter selects: {"replayed": n}.
func (h *handler) handleReplayTasks(w http.ResponseWriter, r *http.Request, app string) error {
	return h.bulk(w, r, app, "replayed", h.e.replayFailed)
}

// handleCancelTasks cancels the scheduled and retrying tasks of the app
// that the body's filter selects: {"canceled": n}.
func (h *handler) handleCancelTasks(w http.ResponseWriter, r *http.Request, app string) error {
	return h.bulk(w, r, app, "canceled", h.e.cancelScheduled)
}

// defaultBulkTimeout is HandlerConfig.BulkTimeout's default.
const defaultBulkTimeout = 20 * time.Second

// bulk runs op, a bulk operation, on the app's tasks that the body selects
// (event_type, optional; created_since and created_before, required;
// cursor, optional), and answers {name: how many it changed, "next_cursor":
// where to go on, or null}. It works batch by batch, each batch bounded by
// the store's timeout, until the range is done or h.bulkTimeout has passed;
// when the client goes away, it stops after a whole batch.
func (h *handler) bulk(w http.ResponseWriter, r *http.Request, app, name string,
	op func(context.Context, ListParams, time.Time) (int, string, error)) error {
	m, err := h.readObject(w, r, false)
	if err != nil {
		return err
	}
	if err := onlyFields(m, "event_type", "created_since", "created_before", "cursor"); err != nil {
		return err
	}
	p := ListParams{AppID: app}
	if p.EventType, err = stringField(m, "event_type", false); err != nil {
		return err
	}
	if p.EventType != "" {
		if err := validateEventType(p.EventType); err != nil {
			return badRequest(err)
		}
	}
	if p.CreatedSince, err = runTimeField(m, "created_since", true); err != nil {
		return err
	}
	if p.CreatedBefore, err = runTimeField(m, "created_before", true); err != nil {
		return err
	}
	if !p.CreatedSince.Before(p.CreatedBefore) {
		return apiErrorf(http.StatusBadRequest, "created_before", "created_before must be after created_since")
	}
	if p.Cursor, err = stringField(m, "cursor", false); err != nil {
		return err
	}
	n, next, err := op(r.Context(), p, time.Now().Add(h.bulkTimeout))
	if err != nil {
		return badRequest(err)
	}
	var cursor *string // null at the end of the range
	if next != "" {
		cursor = &next
	}
	return h.writeJSON(w, r, http.StatusOK, map[string]any{name: n, "next_cursor": cursor})
}
