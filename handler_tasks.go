package tasks

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/taskwheel/tasks/internal/web"
)

// handleCreateTask creates a task: HostedHooks' POST /apps/{app_id}/tasks.
func (h *handler) handleCreateTask(w http.ResponseWriter, r *http.Request, app string) error {
	key, err := idempotencyKey(r)
	if err != nil {
		return err
	}
	m, err := h.readObject(w, r, false)
	if err != nil {
		return err
	}
	if err := onlyFields(m, "event_type", "scheduled_run_time", "data", "flow_key", "max_attempts", "timeout"); err != nil {
		return err
	}
	eventType, err := stringField(m, "event_type", true)
	if err != nil {
		return err
	}
	flowKey, err := stringField(m, "flow_key", false)
	if err != nil {
		return err
	}
	runAt, err := runTimeField(m, "scheduled_run_time", false)
	if err != nil {
		return err
	}
	data, err := h.dataField(m, true)
	if err != nil {
		return err
	}
	maxAttempts, timeout, err := taskOptions(m)
	if err != nil {
		return err
	}
	if err := validateEventType(eventType); err != nil {
		return err
	}

	ctx, cancel := h.storeCtx(r)
	defer cancel()
	ctx = traceContext(ctx, r)
	// A key that holds a task is answered from it before the checks below,
	// so that a replay gets the original answer whatever changed since: a
	// deleted endpoint, a shorter horizon.
	if key != "" {
		t, err := h.e.store.GetByIdempotencyKey(ctx, app, key)
		if err == nil {
			return h.replay(w, r, t, key, eventType, flowKey, runAt, data, maxAttempts, timeout)
		}
		if !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	if err := h.checkHorizon("scheduled_run_time", runAt); err != nil {
		return err
	}
	if err := h.checkRoute(ctx, app, eventType); err != nil {
		return err
	}
	t, err := h.e.Enqueue(ctx, NewTask{AppID: app, EventType: eventType, FlowKey: flowKey, Data: data, RunAt: runAt,
		MaxAttempts: maxAttempts, Timeout: timeout, IdempotencyKey: key})
	if errors.Is(err, ErrDuplicate) && t != nil {
		return h.replay(w, r, t, key, eventType, flowKey, runAt, data, maxAttempts, timeout) // a request with the key came in between
	}
	if err != nil {
		return err
	}
	return h.writeCreated(w, r, t)
}

// replay answers a request whose Idempotency-Key the task t holds. Stripe's
// semantics: the request that created t, sent again, gets t as it is now;
// another request with the key is an error. The request's options are
// part of it: its flow key (or event type) and timeout (0 for none) must be
// t's; a max_attempts, when given, must be t's (one left out asked for the
// engine's Config.MaxAttempts of the time, which t holds resolved).
func (h *handler) replay(w http.ResponseWriter, r *http.Request, t *Task, key, eventType, flowKey string, runAt time.Time, data []byte,
	maxAttempts int, timeout time.Duration) error {
	same, err := createdBy(t, eventType, runAt, data)
	if err != nil {
		return err
	}
	if !same || cmp.Or(flowKey, eventType) != t.FlowKey || timeout != t.Timeout || maxAttempts != 0 && maxAttempts != t.MaxAttempts {
		return apiErrorf(http.StatusUnprocessableEntity, "Idempotency-Key",
			"Idempotency-Key %q was used for task %s, created from another request; use a new key for a new task", key, t.ID)
	}
	w.Header().Set("Idempotent-Replayed", "true")
	return h.writeCreated(w, r, t)
}

// writeCreated answers 201 with the task t.
func (h *handler) writeCreated(w http.ResponseWriter, r *http.Request, t *Task) error {
	w.Header().Set("Location", "tasks/"+t.ID)
	return h.writeJSON(w, r, http.StatusCreated, taskJSON(t))
}

// idempotencyKey returns the request's Idempotency-Key, or "".
func idempotencyKey(r *http.Request) (string, error) {
	values := r.Header.Values("Idempotency-Key")
	switch {
	case len(values) == 0:
		return "", nil
	case len(values) > 1:
		return "", apiErrorf(http.StatusBadRequest, "Idempotency-Key", "more than one Idempotency-Key header")
	case values[0] == "":
		return "", apiErrorf(http.StatusBadRequest, "Idempotency-Key", "Idempotency-Key must not be empty")
	}
	if err := validateText("Idempotency-Key", values[0], MaxIdempotencyKeyLength); err != nil {
		return "", apiErrorf(http.StatusBadRequest, "Idempotency-Key", "invalid Idempotency-Key: %s", err.(*ValidationError).Message)
	}
	return values[0], nil
}

// checkRoute refuses an event type that no task of app could be run for:
// with no func registered and no active endpoint of app subscribed to it.
func (h *handler) checkRoute(ctx context.Context, app, eventType string) error {
	if h.e.funcFor(eventType) != nil {
		return nil
	}
	eps, err := h.e.Endpoints(ctx, app)
	if err != nil {
		return err
	}
	for _, ep := range eps {
		if ep.Status == EndpointActive && ep.Subscribed(eventType) {
			return nil
		}
	}
	return apiErrorf(http.StatusUnprocessableEntity, "event_type",
		"no route for event type %q: no func is registered for it and no active endpoint of app %q subscribes to it", eventType, app)
}

// checkHorizon refuses a run time further ahead than the horizon.
func (h *handler) checkHorizon(field string, runAt time.Time) error {
	if limit := h.now().Add(h.horizon); runAt.After(limit) {
		ahead := h.horizon.String()
		if h.horizon%(24*time.Hour) == 0 {
			ahead = fmt.Sprintf("%d days", h.horizon/(24*time.Hour))
		}
		return apiErrorf(http.StatusUnprocessableEntity, field, "%s is more than %s ahead; the latest allowed now is %s",
			field, ahead, limit.UTC().Truncate(time.Second).Format(time.RFC3339))
	}
	return nil
}

// listParams reads the query of a task listing: status (repeated or
// comma-separated), event_type, limit and cursor; anything else is a 400.
func listParams(r *http.Request) (ListParams, error) {
	var p ListParams
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return p, apiErrorf(http.StatusBadRequest, "", "malformed query string: %v", err)
	}
	for _, name := range slices.Sorted(maps.Keys(q)) {
		vs := q[name]
		if name != "status" && len(vs) > 1 {
			return p, apiErrorf(http.StatusBadRequest, name, "%s given %d times", name, len(vs))
		}
		switch name {
		case "status":
			for _, v := range vs {
				for s := range strings.SplitSeq(v, ",") {
					st := State(s)
					if !st.Valid() {
						return p, apiErrorf(http.StatusBadRequest, "status", "unknown status %s; the statuses are %s", quote(s), stateNames())
					}
					if !slices.Contains(p.States, st) {
						p.States = append(p.States, st)
					}
				}
			}
		case "event_type":
			if err := validateEventType(vs[0]); err != nil {
				return p, badRequest(err)
			}
			p.EventType = vs[0]
		case "limit":
			n, ok := parseUint(vs[0], MaxListLimit)
			if !ok || n < 1 {
				return p, apiErrorf(http.StatusBadRequest, "limit", "limit must be a whole number from 1 to %d", MaxListLimit)
			}
			p.Limit = int(n)
		case "cursor":
			if _, _, err := decodeCursor(vs[0]); err != nil {
				return p, apiErrorf(http.StatusBadRequest, "cursor", "malformed cursor; pass next_cursor of the previous page as it is")
			}
			p.Cursor = vs[0]
		default:
			return p, apiErrorf(http.StatusBadRequest, fieldName(name), "unknown query parameter %s; the parameters are status, event_type, limit and cursor", quote(name))
		}
	}
	if err := p.normalize(); err != nil {
		return p, badRequest(err)
	}
	return p, nil
}

// stateNames lists the states for messages.
func stateNames() string {
	names := make([]string, len(states))
	for i, s := range states {
		names[i] = string(s)
	}
	return strings.Join(names, ", ")
}

// appTask returns the task id of app; another app's is not found.
func (h *handler) appTask(ctx context.Context, r *http.Request, app string) (*Task, error) {
	return web.InApp(ctx, r, app, ErrNotFound, errTaskNotFound, h.e.Get, func(t *Task) string { return t.AppID })
}

// handleGetTask answers one task.
func (h *handler) handleGetTask(w http.ResponseWriter, r *http.Request, app string) error {
	ctx, cancel := h.storeCtx(r)
	defer cancel()
	t, err := h.appTask(ctx, r, app)
	if err != nil {
		return err
	}
	return h.writeJSON(w, r, http.StatusOK, taskJSON(t))
}

// handleUpdateTask reschedules a pending task.
func (h *handler) handleUpdateTask(w http.ResponseWriter, r *http.Request, app string) error {
	m, err := h.readObject(w, r, false)
	if err != nil {
		return err
	}
	if err := onlyFields(m, "scheduled_run_time"); err != nil {
		return err
	}
	runAt, err := runTimeField(m, "scheduled_run_time", true)
	if err != nil {
		return err
	}
	if err := h.checkHorizon("scheduled_run_time", runAt); err != nil {
		return err
	}
	reschedule := func(ctx context.Context, id string) (*Task, error) { return h.e.Reschedule(ctx, id, runAt) }
	return h.changeTask(w, r, app, reschedule, "only a scheduled or retrying task can be rescheduled")
}

// handleListAttempts answers a task's attempt history.
func (h *handler) handleListAttempts(w http.ResponseWriter, r *http.Request, app string) error {
	ctx, cancel := h.storeCtx(r)
	defer cancel()
	t, err := h.appTask(ctx, r, app)
	if err != nil {
		return err
	}
	as, err := h.e.Attempts(ctx, t.ID)
	if err != nil {
		return err
	}
	if as == nil {
		as = []Attempt{}
	}
	return h.writeJSON(w, r, http.StatusOK, struct {
		Data []Attempt `json:"data"`
	}{as})
}

// handleCancelTask cancels a task, or requests the cancellation of a
// running one. Canceling a canceled task answers it again.
func (h *handler) handleCancelTask(w http.ResponseWriter, r *http.Request, app string) error {
	return h.taskAction(w, r, app, h.e.Cancel, "a completed or failed task cannot be canceled")
}

// handleReplayTask makes a terminal task run again.
func (h *handler) handleReplayTask(w http.ResponseWriter, r *http.Request, app string) error {
	return h.taskAction(w, r, app, h.e.Replay, "only a completed, failed or canceled task can be replayed")
}

// taskAction applies action, which takes no body, to the app's task in the
// path, as changeTask does.
func (h *handler) taskAction(w http.ResponseWriter, r *http.Request, app string,
	action func(ctx context.Context, id string) (*Task, error), refused string) error {
	if err := h.readEmpty(w, r); err != nil {
		return err
	}
	return h.changeTask(w, r, app, action, refused)
}

// changeTask applies change to the app's task in the path, and answers the
// task; refused is the 409's reason when the task's state does not allow
// the change. It serves every route that changes a task: PATCH, cancel and
// replay.
func (h *handler) changeTask(w http.ResponseWriter, r *http.Request, app string,
	change func(ctx context.Context, id string) (*Task, error), refused string) error {
	ctx, cancel := h.storeCtx(r)
	defer cancel()
	t, err := h.appTask(ctx, r, app)
	if err != nil {
		return err
	}
	t, err = change(ctx, t.ID)
	if errors.Is(err, ErrInvalidState) {
		return stateConflict(t, refused)
	}
	if err != nil {
		return err
	}
	return h.writeJSON(w, r, http.StatusOK, taskJSON(t))
}

// stateConflict is the 409 of an operation that t's state does not allow.
func stateConflict(t *Task, msg string) error {
	if t != nil {
		return apiErrorf(http.StatusConflict, "", "the task is %s; %s", t.State, msg)
	}
	return apiErrorf(http.StatusConflict, "", "%s", msg)
}

// taskJSON encodes t with its data byte for byte as given (see withData).
func taskJSON(t *Task) encoded {
	return withData(taskHead(t), t.Data)
}
