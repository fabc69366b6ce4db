package tasks

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/taskwheel/tasks/internal/web"
)

// appPeriodic returns the periodic task id of app; another app's is not
// found.
func (h *handler) appPeriodic(ctx context.Context, r *http.Request, app string) (*PeriodicTask, error) {
	return web.InApp(ctx, r, app, ErrNotFound, errScheduleNotFound, h.e.Periodic, func(p *PeriodicTask) string { return p.AppID })
}

// periodicJSON encodes p with its data byte for byte as given (see
// withData).
func periodicJSON(p *PeriodicTask) encoded {
	type periodic PeriodicTask // without its Data
	head, err := json.Marshal(struct {
		*periodic
		Data *struct{} `json:"data,omitempty"` // hides periodic.Data
	}{periodic: (*periodic)(p)})
	if err != nil { // a PeriodicTask always encodes: its times are years 1 to 9999
		panic(err)
	}
	return withData(head, p.Data)
}

// handleListSchedules answers an app's periodic tasks, oldest first.
func (h *handler) handleListSchedules(w http.ResponseWriter, r *http.Request, app string) error {
	ctx, cancel := h.storeCtx(r)
	defer cancel()
	ps, err := h.e.Periodics(ctx, app)
	if err != nil {
		return err
	}
	b := append([]byte(`{"data":`), jsonArray(ps, periodicJSON)...)
	return h.writeJSON(w, r, http.StatusOK, encoded(append(b, '}')))
}

// scheduleFields are the fields of a periodic task that a request may set.
var scheduleFields = []string{"spec", "time_zone", "event_type", "data", "status", "missed"}

// handleCreateSchedule creates a periodic task: spec, event_type and data
// (any JSON value, null included) are required; time_zone defaults to UTC,
// status to active and missed to run_once. An invalid spec or time zone is
// a 422 naming the field. The event type is not checked for a route, unlike
// at task creation: the endpoint or func may be added before the first
// slot, and a task of a slot that has none fails with "no route", visibly
// in the task list.
func (h *handler) handleCreateSchedule(w http.ResponseWriter, r *http.Request, app string) error {
	m, err := h.readObject(w, r, false)
	if err != nil {
		return err
	}
	if err := onlyFields(m, scheduleFields...); err != nil {
		return err
	}
	np := NewPeriodic{AppID: app}
	if np.Spec, err = stringField(m, "spec", true); err != nil {
		return err
	}
	if np.TimeZone, err = stringField(m, "time_zone", false); err != nil {
		return err
	}
	if np.EventType, err = stringField(m, "event_type", true); err != nil {
		return err
	}
	if np.Data, err = h.dataField(m, true); err != nil {
		return err
	}
	status, err := stringField(m, "status", false)
	if err != nil {
		return err
	}
	np.Status = PeriodicStatus(status)
	missed, err := stringField(m, "missed", false)
	if err != nil {
		return err
	}
	np.Missed = MissedPolicy(missed)
	ctx, cancel := h.storeCtx(r)
	defer cancel()
	p, err := h.e.CreatePeriodic(ctx, np)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "schedules/"+p.ID)
	return h.writeJSON(w, r, http.StatusCreated, periodicJSON(p))
}

// handleGetSchedule answers one periodic task.
func (h *handler) handleGetSchedule(w http.ResponseWriter, r *http.Request, app string) error {
	ctx, cancel := h.storeCtx(r)
	defer cancel()
	p, err := h.appPeriodic(ctx, r, app)
	if err != nil {
		return err
	}
	return h.writeJSON(w, r, http.StatusOK, periodicJSON(p))
}

// handleUpdateSchedule changes the fields given (see
// [Engine.UpdatePeriodic]); as at creation, the event type is not checked
// for a route.
func (h *handler) handleUpdateSchedule(w http.ResponseWriter, r *http.Request, app string) error {
	m, err := h.readObject(w, r, false)
	if err != nil {
		return err
	}
	if err := onlyFields(m, scheduleFields...); err != nil {
		return err
	}
	var u PeriodicUpdate
	if u.Spec, err = optionalString(m, "spec"); err != nil {
		return err
	}
	if u.TimeZone, err = optionalString(m, "time_zone"); err != nil {
		return err
	}
	if u.EventType, err = optionalString(m, "event_type"); err != nil {
		return err
	}
	if u.Data, err = h.dataField(m, false); err != nil {
		return err
	}
	status, err := optionalString(m, "status")
	if err != nil {
		return err
	}
	if status != nil {
		u.Status = new(PeriodicStatus(*status))
	}
	missed, err := optionalString(m, "missed")
	if err != nil {
		return err
	}
	if missed != nil {
		u.Missed = new(MissedPolicy(*missed))
	}
	ctx, cancel := h.storeCtx(r)
	defer cancel()
	p, err := h.appPeriodic(ctx, r, app)
	if err != nil {
		return err
	}
	if p, err = h.e.UpdatePeriodic(ctx, p.ID, u); err != nil {
		return notFoundAs(err, errScheduleNotFound)
	}
	return h.writeJSON(w, r, http.StatusOK, periodicJSON(p))
}

// handleDeleteSchedule deletes a periodic task: 204. The tasks it enqueued
// stay.
func (h *handler) handleDeleteSchedule(w http.ResponseWriter, r *http.Request, app string) error {
	ctx, cancel := h.storeCtx(r)
	defer cancel()
	p, err := h.appPeriodic(ctx, r, app)
	if err != nil {
		return err
	}
	if err := h.e.DeletePeriodic(ctx, p.ID); err != nil {
		return notFoundAs(err, errScheduleNotFound)
	}
	return noContent(w)
}

// handlePauseSchedule sets a periodic task's status to paused.
func (h *handler) handlePauseSchedule(w http.ResponseWriter, r *http.Request, app string) error {
	return h.setScheduleStatus(w, r, app, PeriodicPaused)
}

// handleResumeSchedule sets a periodic task's status to active; its next
// slot is the first from now, the slots that passed while it was paused
// are not caught up on.
func (h *handler) handleResumeSchedule(w http.ResponseWriter, r *http.Request, app string) error {
	return h.setScheduleStatus(w, r, app, PeriodicActive)
}

// setScheduleStatus sets a periodic task's status and answers it. It takes
// no body, or {}. A task that has the status already is answered as it is,
// unchanged, so that pausing or resuming twice gives the same answer.
func (h *handler) setScheduleStatus(w http.ResponseWriter, r *http.Request, app string, status PeriodicStatus) error {
	if err := h.readEmpty(w, r); err != nil {
		return err
	}
	ctx, cancel := h.storeCtx(r)
	defer cancel()
	p, err := h.appPeriodic(ctx, r, app)
	if err != nil {
		return err
	}
	if p.Status != status {
		if p, err = h.e.UpdatePeriodic(ctx, p.ID, PeriodicUpdate{Status: &status}); err != nil {
			return notFoundAs(err, errScheduleNotFound)
		}
	}
	return h.writeJSON(w, r, http.StatusOK, periodicJSON(p))
}
