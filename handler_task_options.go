package tasks

import (
	"encoding/json"
	"net/http"
	"time"
)

// Bounds of the per-task options of POST /apps/{app_id}/tasks.
const (
	// maxAPIMaxAttempts bounds max_attempts over HTTP: past the retry
	// schedule's end each attempt waits its last delay, so a hundred
	// attempts already span weeks.
	maxAPIMaxAttempts = 100
	// maxAPITimeout bounds timeout over HTTP, in seconds: a day.
	maxAPITimeout = 24 * 60 * 60
)

// taskOptions reads the per-task options of a create request:
// max_attempts, a whole number from 1 to maxAPIMaxAttempts, and timeout,
// the attempt timeout in whole seconds from 1 to maxAPITimeout. Absent or
// null gives 0: the engine's Config.MaxAttempts and Config.Timeout.
func taskOptions(m map[string]json.RawMessage) (maxAttempts int, timeout time.Duration, err error) {
	n, err := boundedUint(m, "max_attempts", maxAPIMaxAttempts, "attempts")
	if err != nil {
		return 0, 0, err
	}
	secs, err := boundedUint(m, "timeout", maxAPITimeout, "seconds (a day)")
	if err != nil {
		return 0, 0, err
	}
	return int(n), time.Duration(secs) * time.Second, nil
}

// boundedUint reads member name of m: absent or null gives 0; otherwise a
// JSON number that is a whole number from 1 to max, written without a
// fraction or exponent. unit names what max counts, for the message.
func boundedUint(m map[string]json.RawMessage, name string, max uint64, unit string) (uint64, error) {
	raw, ok := m[name]
	if !ok || string(raw) == "null" {
		return 0, nil
	}
	n, ok := parseUint(string(raw), max)
	if !ok || n < 1 {
		return 0, apiErrorf(http.StatusBadRequest, name, "%s must be a whole number from 1 to %d %s, not %s", name, max, unit, excerpt(raw))
	}
	return n, nil
}

// timeoutSeconds is the per-task timeout of t as answered: whole seconds,
// or nil when the task uses the engine's.
func timeoutSeconds(t *Task) *int64 {
	if t.Timeout <= 0 {
		return nil
	}
	s := int64((t.Timeout + time.Second - 1) / time.Second)
	return &s
}
