package tasks

import (
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strconv"
)

// The flow control API: an app's limits per flow key.
//
//	PUT    /apps/{app_id}/limits/{key}  {"rate": 20, "burst": 5, "concurrency": 3, "paused": false}
//	GET    /apps/{app_id}/limits/{key}
//	GET    /apps/{app_id}/limits
//	DELETE /apps/{app_id}/limits/{key}
//
// Each field of a PUT is optional, 0 or absent meaning no limit: a PUT
// replaces the key's limit as a whole. Answers are a Limit's JSON, with
// its running and waiting counts.

// limitFields are the fields of a PUT of a limit.
var limitFields = []string{"rate", "burst", "concurrency", "paused"}

var errLimitNotFound = apiErrorf(http.StatusNotFound, "key", "no limit for this key in this app")

// limitKeyParam returns the key of the request's path, valid.
func limitKeyParam(r *http.Request) (string, error) {
	key := r.PathValue("key")
	if err := validateFlowKey("key", key); err != nil {
		return "", err
	}
	return key, nil
}

// handlePutLimit sets the limit of an app's key.
func (h *handler) handlePutLimit(w http.ResponseWriter, r *http.Request, app string) error {
	key, err := limitKeyParam(r)
	if err != nil {
		return err
	}
	m, err := h.readObject(w, r, false)
	if err != nil {
		return err
	}
	if err := onlyFields(m, limitFields...); err != nil {
		return err
	}
	l := Limit{AppID: app, Key: key}
	if l.Rate, err = numberField(m, "rate"); err != nil {
		return err
	}
	if l.Burst, err = intField(m, "burst"); err != nil {
		return err
	}
	if l.Concurrency, err = intField(m, "concurrency"); err != nil {
		return err
	}
	if raw, ok := m["paused"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &l.Paused); err != nil {
			return apiErrorf(http.StatusBadRequest, "paused", "paused must be true or false, not %s", kind(raw))
		}
	}
	ctx, cancel := h.storeCtx(r)
	defer cancel()
	got, err := h.e.SetLimit(ctx, l)
	if err != nil {
		return err
	}
	return h.writeJSON(w, r, http.StatusOK, got)
}

// handleGetLimit answers the limit of an app's key.
func (h *handler) handleGetLimit(w http.ResponseWriter, r *http.Request, app string) error {
	key, err := limitKeyParam(r)
	if err != nil {
		return err
	}
	ctx, cancel := h.storeCtx(r)
	defer cancel()
	l, err := h.e.Limit(ctx, app, key)
	if err != nil {
		return notFoundAs(err, errLimitNotFound)
	}
	return h.writeJSON(w, r, http.StatusOK, l)
}

// handleListLimits answers an app's limits, by key.
func (h *handler) handleListLimits(w http.ResponseWriter, r *http.Request, app string) error {
	ctx, cancel := h.storeCtx(r)
	defer cancel()
	ls, err := h.e.Limits(ctx, app)
	if err != nil {
		return err
	}
	if ls == nil {
		ls = []*Limit{}
	}
	return h.writeJSON(w, r, http.StatusOK, struct {
		Data []*Limit `json:"data"`
	}{ls})
}

// handleDeleteLimit removes the limit of an app's key.
func (h *handler) handleDeleteLimit(w http.ResponseWriter, r *http.Request, app string) error {
	key, err := limitKeyParam(r)
	if err != nil {
		return err
	}
	ctx, cancel := h.storeCtx(r)
	defer cancel()
	if err := h.e.DeleteLimit(ctx, app, key); err != nil {
		return notFoundAs(err, errLimitNotFound)
	}
	return noContent(w)
}

// numberField reads member name of m, a JSON number when present; absent
// or null gives 0.
func numberField(m map[string]json.RawMessage, name string) (float64, error) {
	raw, ok := m[name]
	if !ok || string(raw) == "null" {
		return 0, nil
	}
	var v float64
	if c := raw[0]; c != '-' && (c < '0' || c > '9') || json.Unmarshal(raw, &v) != nil {
		return 0, apiErrorf(http.StatusBadRequest, name, "%s must be a number, not %s", name, kind(raw))
	}
	return v, nil
}

// intField reads member name of m, a JSON integer when present; absent or
// null gives 0.
func intField(m map[string]json.RawMessage, name string) (int, error) {
	raw, ok := m[name]
	if !ok || string(raw) == "null" {
		return 0, nil
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	var ne *strconv.NumError
	switch {
	case errors.As(err, &ne) && ne.Err == strconv.ErrRange, err == nil && (n > math.MaxInt32 || n < math.MinInt32):
		return 0, apiErrorf(http.StatusUnprocessableEntity, name, "%s is out of range", name)
	case err != nil:
		return 0, apiErrorf(http.StatusBadRequest, name, "%s must be an integer, not %s", name, kind(raw))
	}
	return int(n), nil
}
