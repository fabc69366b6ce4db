package tasks

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// HostedHooks' messages API, as its SDK (HostedHooks/hostedhooks-node) calls
// it: a message is a task due now, delivered to the app's endpoints; its
// webhook attempts are the task's deliveries; its webhook events are the
// event types the app's endpoints subscribe to. Its list answers are bare
// JSON arrays, paged with page, per_page and offset, as HostedHooks' API
// answers them.

// Paging of the HostedHooks list routes.
const (
	// defaultPerPage and maxPerPage bound per_page.
	defaultPerPage = 25
	maxPerPage     = 100
	// maxSkip bounds what page and offset skip: a page costs the store
	// what it skips. A task's whole history is at
	// /apps/{app_id}/tasks/{id}/attempts.
	maxSkip = 10000
)

// hostedHooksPage reads the paging of a HostedHooks list route: page (from
// 1), per_page (1 to maxPerPage, default defaultPerPage) and offset (from
// 0), each at most once; anything else is a 400. It returns how many items
// to skip, (page-1)×per_page + offset, and the page size.
func hostedHooksPage(r *http.Request) (skip, limit int, err error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return 0, 0, apiErrorf(http.StatusBadRequest, "", "malformed query string: %v", err)
	}
	page, perPage, offset := uint64(1), uint64(defaultPerPage), uint64(0)
	for _, name := range slices.Sorted(maps.Keys(q)) {
		vs := q[name]
		if len(vs) > 1 {
			return 0, 0, apiErrorf(http.StatusBadRequest, fieldName(name), "%s given %d times", name, len(vs))
		}
		var ok bool
		switch name {
		case "page":
			if page, ok = parseUint(vs[0], maxSkip+1); !ok || page < 1 {
				return 0, 0, apiErrorf(http.StatusBadRequest, "page", "page must be a whole number from 1 to %d", maxSkip+1)
			}
		case "per_page":
			if perPage, ok = parseUint(vs[0], maxPerPage); !ok || perPage < 1 {
				return 0, 0, apiErrorf(http.StatusBadRequest, "per_page", "per_page must be a whole number from 1 to %d", maxPerPage)
			}
		case "offset":
			if offset, ok = parseUint(vs[0], maxSkip); !ok {
				return 0, 0, apiErrorf(http.StatusBadRequest, "offset", "offset must be a whole number from 0 to %d", maxSkip)
			}
		default:
			return 0, 0, apiErrorf(http.StatusBadRequest, fieldName(name), "unknown query parameter %s; the parameters are page, per_page and offset", quote(name))
		}
	}
	skip64 := (page-1)*perPage + offset
	if skip64 > maxSkip {
		return 0, 0, apiErrorf(http.StatusBadRequest, "page", "page and offset skip %d items, more than %d", skip64, maxSkip)
	}
	return int(skip64), int(perPage), nil
}

// pageOf returns the page [skip, skip+limit) of items.
func pageOf[T any](items []T, skip, limit int) []T {
	if skip >= len(items) {
		return []T{}
	}
	return items[skip : skip+min(len(items)-skip, limit)]
}

// message is HostedHooks' answer to a message: the task it became.
type message struct {
	ID              string          `json:"id"`
	Data            json.RawMessage `json:"data"`
	EventType       string          `json:"event_type"`
	Version         string          `json:"version"`
	EventID         *string         `json:"event_id"`
	OverridePayload bool            `json:"override_payload"`
	CreatedAt       time.Time       `json:"created_at"`
	Status          State           `json:"status"` // the task's
}

// handleCreateMessage creates a message: a task due now, which the app's
// endpoints subscribed to its event type receive. event_id, or the
// Idempotency-Key header, is the task's idempotency key.
func (h *handler) handleCreateMessage(w http.ResponseWriter, r *http.Request, app string) error {
	header, err := idempotencyKey(r)
	if err != nil {
		return err
	}
	m, err := h.readObject(w, r, false)
	if err != nil {
		return err
	}
	if err := onlyFields(m, "event_type", "data", "version", "event_id", "override_payload"); err != nil {
		return err
	}
	eventType, err := stringField(m, "event_type", true)
	if err != nil {
		return err
	}
	data, err := h.dataField(m, true)
	if err != nil {
		return err
	}
	version, err := stringField(m, "version", false)
	if err != nil {
		return err
	}
	if err := validateText("version", version, maxVersionLength); err != nil {
		return badRequest(err)
	}
	key, err := messageKey(m, header)
	if err != nil {
		return err
	}
	if raw, ok := m["override_payload"]; ok {
		switch string(raw) {
		case "false", "null":
		case "true":
			return apiErrorf(http.StatusUnprocessableEntity, "override_payload",
				"override_payload is not supported: a delivery's body is always the task, with data in it")
		default:
			return apiErrorf(http.StatusBadRequest, "override_payload", "override_payload must be a boolean, not %s", kind(raw))
		}
	}
	if err := validateEventType(eventType); err != nil {
		return err
	}

	ctx, cancel := h.storeCtx(r)
	defer cancel()
	// answer answers the message t; replayed says that t held the key
	// already, which only the request that created it may send again.
	answer := func(t *Task, replayed bool) error {
		if replayed {
			same, err := createdBy(t, eventType, time.Time{}, data)
			if err != nil {
				return err
			}
			if !same {
				// The key came from event_id, or else from the header.
				field := "event_id"
				if _, ok := m["event_id"]; !ok {
					field = "Idempotency-Key"
				}
				return apiErrorf(http.StatusUnprocessableEntity, field,
					"%s %q was used for message %s, created from another request; use a new %s for a new message", field, key, t.ID, field)
			}
			w.Header().Set("Idempotent-Replayed", "true")
		}
		w.Header().Set("Location", "tasks/"+t.ID)
		msg := &message{ID: t.ID, Data: t.Data, EventType: t.EventType, Version: version,
			CreatedAt: t.CreatedAt, Status: t.State}
		if key != "" {
			msg.EventID = &key
		}
		return h.writeJSON(w, r, http.StatusCreated, msg)
	}
	if key != "" {
		t, err := h.e.store.GetByIdempotencyKey(ctx, app, key)
		if err == nil {
			return answer(t, true)
		}
		if !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	if err := h.checkRoute(ctx, app, eventType); err != nil {
		return err
	}
	t, err := h.e.Enqueue(ctx, NewTask{AppID: app, EventType: eventType, Data: data, IdempotencyKey: key})
	if errors.Is(err, ErrDuplicate) && t != nil {
		return answer(t, true) // a message with the event_id came in between
	}
	if err != nil {
		return err
	}
	return answer(t, false)
}

// messageKey returns a message's idempotency key: its event_id, a string,
// or else the Idempotency-Key header; both given must agree.
func messageKey(m map[string]json.RawMessage, header string) (string, error) {
	id, err := optionalString(m, "event_id")
	if err != nil || id == nil {
		return header, err
	}
	switch {
	case *id == "":
		return "", apiErrorf(http.StatusBadRequest, "event_id", "event_id must not be empty; leave it out for none")
	case header != "" && header != *id:
		return "", apiErrorf(http.StatusBadRequest, "event_id", "event_id and the Idempotency-Key header differ; send one, or the same")
	}
	if err := validateText("event_id", *id, MaxIdempotencyKeyLength); err != nil {
		return "", badRequest(err)
	}
	return *id, nil
}

// webhookAttempt is HostedHooks' form of a delivery attempt, with ours
// (attempt, duration_ms) beside it.
type webhookAttempt struct {
	ID            string         `json:"id"`
	StatusCode    string         `json:"status_code"` // the SDK types it a string; "" without an answer
	RetryStatus   *string        `json:"retry_status"`
	StatusMessage string         `json:"status_message"`
	Payload       webhookPayload `json:"payload"`
	Response      string         `json:"response"`
	ErrorMessage  string         `json:"error_message"`
	AppID         string         `json:"app_id"`
	EndpointID    string         `json:"endpoint_id"`
	MessageID     string         `json:"message_id"`
	CreatedAt     time.Time      `json:"created_at"`
	Attempt       int            `json:"attempt"`
	DurationMS    float64        `json:"duration_ms"`
}

// webhookPayload is what a webhook attempt delivered, in HostedHooks'
// terms.
type webhookPayload struct {
	Type    string          `json:"type"`
	Version string          `json:"version"`
	Created time.Time       `json:"created"`
	Data    json.RawMessage `json:"data"`
}

// attemptID is the ID of the delivery a: its task's ID, its number and its
// endpoint's ID, joined by dots.
func attemptID(a *Attempt) string {
	return a.TaskID + "." + strconv.Itoa(a.Number) + "." + a.EndpointID
}

// parseAttemptID splits an attemptID; ok is false for anything else, such
// as a number with leading zeros, so that an attempt has one ID.
func parseAttemptID(id string) (taskID string, number int, endpointID string, ok bool) {
	taskID, rest, ok1 := strings.Cut(id, ".")
	num, endpointID, ok2 := strings.Cut(rest, ".")
	n, ok3 := parseUint(num, MaxMaxAttempts)
	if !ok1 || !ok2 || !ok3 || strconv.FormatUint(n, 10) != num || taskID == "" || endpointID == "" {
		return "", 0, "", false
	}
	return taskID, int(n), endpointID, true
}

// webhookAttemptOf is the delivery a of the task t, to an endpoint whose
// version is version.
func webhookAttemptOf(a *Attempt, t *Task, version string) webhookAttempt {
	data := t.Data
	if len(data) == 0 {
		data = json.RawMessage("null")
	}
	wa := webhookAttempt{
		ID:            attemptID(a),
		StatusMessage: "success",
		Payload:       webhookPayload{Type: t.EventType, Version: version, Created: t.CreatedAt, Data: data},
		Response:      a.Response,
		ErrorMessage:  a.Error,
		AppID:         t.AppID,
		EndpointID:    a.EndpointID,
		MessageID:     t.ID,
		CreatedAt:     a.StartedAt,
		Attempt:       a.Number,
		DurationMS:    float64(a.Duration) / float64(time.Millisecond),
	}
	if a.StatusCode != 0 {
		wa.StatusCode = strconv.Itoa(a.StatusCode)
	}
	if a.Error != "" {
		// Another attempt follows a failed one unless it was the last of a
		// task that ended without completing.
		retry := "scheduled"
		if (t.State == StateFailed || t.State == StateCanceled) && a.Number >= t.Attempts {
			retry = "failed"
		}
		wa.StatusMessage, wa.RetryStatus = "failed", &retry
	}
	return wa
}

// endpointVersions returns the versions of the app's endpoints by ID.
func (h *handler) endpointVersions(ctx context.Context, app string) (map[string]string, error) {
	eps, err := h.e.Endpoints(ctx, app)
	if err != nil {
		return nil, err
	}
	versions := make(map[string]string, len(eps))
	for _, ep := range eps {
		versions[ep.ID] = ep.Version
	}
	return versions, nil
}

// handleListWebhookAttempts answers a page of the app's deliveries, newest
// first, as a bare array.
func (h *handler) handleListWebhookAttempts(w http.ResponseWriter, r *http.Request, app string) error {
	skip, limit, err := hostedHooksPage(r)
	if err != nil {
		return err
	}
	ctx, cancel := h.storeCtx(r)
	defer cancel()
	as, err := h.e.store.ListDeliveryAttempts(ctx, app, skip, limit)
	if err != nil {
		return wrapf(err, "list delivery attempts of %s", app)
	}
	versions, err := h.endpointVersions(ctx, app)
	if err != nil {
		return err
	}
	out := make([]webhookAttempt, 0, len(as))
	byID := make(map[string]*Task)
	for i := range as {
		a := &as[i]
		t, ok := byID[a.TaskID]
		if !ok {
			t, err = h.e.Get(ctx, a.TaskID)
			if errors.Is(err, ErrNotFound) {
				continue // deleted since
			}
			if err != nil {
				return err
			}
			byID[a.TaskID] = t
		}
		out = append(out, webhookAttemptOf(a, t, versions[a.EndpointID]))
	}
	return h.writeJSON(w, r, http.StatusOK, out)
}

// errAttemptNotFound answers a webhook attempt that is not the app's.
var errAttemptNotFound = apiErrorf(http.StatusNotFound, "", "no webhook attempt with this ID in this app")

// handleGetWebhookAttempt answers one delivery, by the ID that
// webhook_attempts gives it.
func (h *handler) handleGetWebhookAttempt(w http.ResponseWriter, r *http.Request, app string) error {
	taskID, number, endpointID, ok := parseAttemptID(r.PathValue("id"))
	if !ok {
		return errAttemptNotFound
	}
	ctx, cancel := h.storeCtx(r)
	defer cancel()
	t, err := h.e.Get(ctx, taskID)
	switch {
	case errors.Is(err, ErrNotFound) || err == nil && t.AppID != app:
		return errAttemptNotFound
	case err != nil:
		return err
	}
	as, err := h.e.Attempts(ctx, taskID)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(as, func(a Attempt) bool { return a.Number == number && a.EndpointID == endpointID })
	if i < 0 {
		return errAttemptNotFound
	}
	var version string
	if ep, err := h.e.Endpoint(ctx, endpointID); err == nil && ep.AppID == app {
		version = ep.Version
	} else if !errors.Is(err, ErrNotFound) && err != nil {
		return err
	}
	return h.writeJSON(w, r, http.StatusOK, webhookAttemptOf(&as[i], t, version))
}

// webhookEvent is HostedHooks' webhook event: an event type endpoints
// subscribe to. Its ID is the event type.
type webhookEvent struct {
	ID        string    `json:"id"`
	EventType string    `json:"event_type"`
	CreatedAt time.Time `json:"created_at"`
}

// webhookEvents returns the event types that eps subscribe to by name
// ("*" aside), each created when the oldest of them that names it was,
// oldest first, then by event type.
func webhookEvents(eps []*Endpoint) []webhookEvent {
	first := make(map[string]time.Time)
	for _, ep := range eps {
		for _, et := range ep.EnabledEvents {
			if at, ok := first[et]; et != AllEvents && (!ok || ep.CreatedAt.Before(at)) {
				first[et] = ep.CreatedAt
			}
		}
	}
	out := make([]webhookEvent, 0, len(first))
	for et, at := range first {
		out = append(out, webhookEvent{ID: et, EventType: et, CreatedAt: at})
	}
	slices.SortFunc(out, func(a, b webhookEvent) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.EventType, b.EventType))
	})
	return out
}

// handleListWebhookEvents answers a page of the event types the app's
// endpoints subscribe to, as a bare array.
func (h *handler) handleListWebhookEvents(w http.ResponseWriter, r *http.Request, app string) error {
	skip, limit, err := hostedHooksPage(r)
	if err != nil {
		return err
	}
	ctx, cancel := h.storeCtx(r)
	defer cancel()
	eps, err := h.e.Endpoints(ctx, app)
	if err != nil {
		return err
	}
	return h.writeJSON(w, r, http.StatusOK, pageOf(webhookEvents(eps), skip, limit))
}

// endpointAnswer is an endpoint as answered: with webhook_events, the
// event types it subscribes to as HostedHooks' SDK reads them ("*" as one
// event type "*").
type endpointAnswer struct {
	*Endpoint
	WebhookEvents []webhookEvent `json:"webhook_events"`
}

// answerEndpoint is ep as answered: with its secret only when withSecret.
func answerEndpoint(ep *Endpoint, withSecret bool) *endpointAnswer {
	c := endpointJSON(ep, withSecret)
	events := make([]webhookEvent, len(c.EnabledEvents))
	for i, et := range c.EnabledEvents {
		events[i] = webhookEvent{ID: et, EventType: et, CreatedAt: c.CreatedAt}
	}
	return &endpointAnswer{Endpoint: c, WebhookEvents: events}
}
