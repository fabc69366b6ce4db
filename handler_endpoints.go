package tasks

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"time"

	"github.com/taskwheel/tasks/internal/web"
)

// appEndpoint returns the endpoint id of app; another app's is not found.
func (h *handler) appEndpoint(ctx context.Context, r *http.Request, app string) (*Endpoint, error) {
	return web.InApp(ctx, r, app, ErrNotFound, errEndpointNotFound, h.e.Endpoint, func(ep *Endpoint) string { return ep.AppID })
}

// endpointJSON is ep as answered: with its secret only when withSecret.
func endpointJSON(ep *Endpoint, withSecret bool) *Endpoint {
	c := ep.clone()
	if !withSecret {
		c.Secret = ""
	}
	c.PreviousSecret = ""
	return c
}

// handleListEndpoints answers an app's endpoints, oldest first: all of
// them in {"data": [...]}, or with HandlerConfig.HostedHooksLists a page of
// them (page, per_page, offset) as a bare array.
func (h *handler) handleListEndpoints(w http.ResponseWriter, r *http.Request, app string) error {
	skip, limit := 0, math.MaxInt
	if h.hostedHooksLists {
		var err error
		if skip, limit, err = hostedHooksPage(r); err != nil {
			return err
		}
	}
	ctx, cancel := h.storeCtx(r)
	defer cancel()
	eps, err := h.e.Endpoints(ctx, app)
	if err != nil {
		return err
	}
	out := []*endpointAnswer{}
	for _, ep := range pageOf(eps, skip, limit) {
		out = append(out, answerEndpoint(ep, false))
	}
	if h.hostedHooksLists {
		return h.writeJSON(w, r, http.StatusOK, out)
	}
	return h.writeJSON(w, r, http.StatusOK, struct {
		Data []*endpointAnswer `json:"data"`
	}{out})
}

// endpointFields are the fields of an endpoint that a request may set.
var endpointFields = []string{"url", "description", "enabled_events", "status", "version", "rate_limit", "max_in_flight"}

// handleCreateEndpoint creates an endpoint; the answer holds its secret.
func (h *handler) handleCreateEndpoint(w http.ResponseWriter, r *http.Request, app string) error {
	m, err := h.readObject(w, r, false)
	if err != nil {
		return err
	}
	if err := onlyFields(m, endpointFields...); err != nil {
		return err
	}
	ne := NewEndpoint{AppID: app}
	if ne.URL, err = stringField(m, "url", true); err != nil {
		return err
	}
	if ne.Description, err = stringField(m, "description", false); err != nil {
		return err
	}
	if ne.EnabledEvents, err = enabledEventsField(m); err != nil {
		return err
	}
	status, err := stringField(m, "status", false)
	if err != nil {
		return err
	}
	ne.Status = EndpointStatus(status)
	if ne.Version, err = stringField(m, "version", false); err != nil {
		return err
	}
	if ne.RateLimit, err = numberField(m, "rate_limit"); err != nil {
		return err
	}
	if ne.MaxInFlight, err = intField(m, "max_in_flight"); err != nil {
		return err
	}
	ctx, cancel := h.storeCtx(r)
	defer cancel()
	ep, err := h.e.CreateEndpoint(ctx, ne)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "endpoints/"+ep.ID)
	return h.writeJSON(w, r, http.StatusCreated, answerEndpoint(ep, true))
}

// handleGetEndpoint answers one endpoint, without its secret.
func (h *handler) handleGetEndpoint(w http.ResponseWriter, r *http.Request, app string) error {
	ctx, cancel := h.storeCtx(r)
	defer cancel()
	ep, err := h.appEndpoint(ctx, r, app)
	if err != nil {
		return err
	}
	return h.writeJSON(w, r, http.StatusOK, answerEndpoint(ep, false))
}

// handleUpdateEndpoint changes the fields given, and answers the endpoint
// without its secret.
func (h *handler) handleUpdateEndpoint(w http.ResponseWriter, r *http.Request, app string) error {
	m, err := h.readObject(w, r, false)
	if err != nil {
		return err
	}
	if err := onlyFields(m, endpointFields...); err != nil {
		return err
	}
	var u EndpointUpdate
	if u.URL, err = optionalString(m, "url"); err != nil {
		return err
	}
	if u.Description, err = optionalString(m, "description"); err != nil {
		return err
	}
	if u.EnabledEvents, err = enabledEventsField(m); err != nil {
		return err
	}
	status, err := optionalString(m, "status")
	if err != nil {
		return err
	}
	if status != nil {
		u.Status = new(EndpointStatus(*status))
	}
	if u.Version, err = optionalString(m, "version"); err != nil {
		return err
	}
	if _, ok := m["rate_limit"]; ok {
		v, err := numberField(m, "rate_limit")
		if err != nil {
			return err
		}
		u.RateLimit = &v
	}
	if _, ok := m["max_in_flight"]; ok {
		n, err := intField(m, "max_in_flight")
		if err != nil {
			return err
		}
		u.MaxInFlight = &n
	}
	ctx, cancel := h.storeCtx(r)
	defer cancel()
	ep, err := h.appEndpoint(ctx, r, app)
	if err != nil {
		return err
	}
	if ep, err = h.e.UpdateEndpoint(ctx, ep.ID, u); err != nil {
		return err
	}
	return h.writeJSON(w, r, http.StatusOK, answerEndpoint(ep, false))
}

// handleDeleteEndpoint deletes an endpoint: 204.
func (h *handler) handleDeleteEndpoint(w http.ResponseWriter, r *http.Request, app string) error {
	ctx, cancel := h.storeCtx(r)
	defer cancel()
	ep, err := h.appEndpoint(ctx, r, app)
	if err != nil {
		return err
	}
	if err := h.e.DeleteEndpoint(ctx, ep.ID); err != nil {
		return notFoundAs(err, errEndpointNotFound) // deleted meanwhile
	}
	return noContent(w)
}

// handleRotateSecret gives an endpoint a new secret, which the answer
// shows; the old one keeps signing for overlap_seconds (default one day).
func (h *handler) handleRotateSecret(w http.ResponseWriter, r *http.Request, app string) error {
	m, err := h.readObject(w, r, true)
	if err != nil {
		return err
	}
	if err := onlyFields(m, "overlap_seconds"); err != nil {
		return err
	}
	overlap := defaultSecretOverlap
	if raw, ok := m["overlap_seconds"]; ok {
		n, ok := parseUint(string(raw), uint64(maxSecretOverlap/time.Second))
		if !ok {
			return apiErrorf(http.StatusBadRequest, "overlap_seconds", "overlap_seconds must be a whole number from 0 to %d, not %s",
				int64(maxSecretOverlap/time.Second), excerpt(raw))
		}
		overlap = time.Duration(n) * time.Second
	}
	ctx, cancel := h.storeCtx(r)
	defer cancel()
	ep, err := h.appEndpoint(ctx, r, app)
	if err != nil {
		return err
	}
	if ep, err = h.e.RotateEndpointSecret(ctx, ep.ID, overlap); err != nil {
		return err
	}
	return h.writeJSON(w, r, http.StatusOK, answerEndpoint(ep, true))
}

// enabledEventsField reads enabled_events: a list of event types, or the
// string "*" for all. Absent gives nil.
func enabledEventsField(m map[string]json.RawMessage) ([]string, error) {
	raw, ok := m["enabled_events"]
	if !ok {
		return nil, nil
	}
	const want = `enabled_events must be a list of event types, or "*" for all`
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil || s != AllEvents {
			return nil, apiErrorf(http.StatusBadRequest, "enabled_events", "%s, not %s", want, excerpt(raw))
		}
		return []string{AllEvents}, nil
	case '[':
		var items []json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil {
			return nil, apiErrorf(http.StatusBadRequest, "enabled_events", "%s", want)
		}
		events := make([]string, len(items))
		for i, item := range items {
			if item[0] != '"' || json.Unmarshal(item, &events[i]) != nil {
				return nil, apiErrorf(http.StatusBadRequest, "enabled_events", "enabled_events[%d] must be a string, not %s", i, kind(item))
			}
		}
		return events, nil
	}
	return nil, apiErrorf(http.StatusBadRequest, "enabled_events", "%s, not %s", want, kind(raw))
}
