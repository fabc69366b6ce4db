package tasks

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"
)

// The digest of the request that created a task.
//
// A request that comes again with an Idempotency-Key gets the task that the
// key holds if it is the request that created the task, and a 422 if it is
// another (Stripe's semantics). The task's fields cannot tell: PATCH changes
// its run time after it was created. So a task created with a key keeps the
// digest of its creating request, Task.IdempotencyDigest, and a request that
// comes again is compared with that.
//
// The digest is stored: its format must never change, or the requests of
// stored tasks would no longer match themselves.

// requestDigest returns the digest of a request to create a task with the
// event type eventType, run time runAt (the zero time for none) and data,
// valid JSON: the SHA-256, in lower-case hex, of the canonical JSON array
//
//	[eventType, runAt or null, data]
//
// with runAt in RFC 3339 in UTC with six fractional digits (stores keep a
// microsecond), and data in canonical form (see appendCanonical). Two
// requests have the same digest if and only if they have the same event
// type, the same run time to the microsecond in whatever offset, and data
// that is the same JSON value: the same whatever its white space, member
// order and string escapes, with numbers compared as written. Nil data is
// JSON null, as Enqueue stores it.
func requestDigest(eventType string, runAt time.Time, data []byte) (string, error) {
	if data == nil {
		data = []byte("null")
	}
	v, err := decodeJSON(data)
	if err != nil {
		return "", fmt.Errorf("tasks: digest of request: data: %w", err)
	}
	var at any // null
	if !runAt.IsZero() {
		at = runAt.UTC().Truncate(time.Microsecond).Format("2006-01-02T15:04:05.000000Z07:00")
	}
	sum := sha256.Sum256(appendCanonical(nil, []any{eventType, at, v}))
	return hex.EncodeToString(sum[:]), nil
}

// createdBy reports whether the request with these event type, run time and
// data is the one that created the task t. It compares their digests; for a
// task that keeps none (stored before the digest was kept, or by a store
// that drops it), the request is compared with t's fields as they are now,
// which a PATCH may have changed since.
func createdBy(t *Task, eventType string, runAt time.Time, data []byte) (bool, error) {
	digest, err := requestDigest(eventType, runAt, data)
	if err != nil {
		return false, err
	}
	stored := t.IdempotencyDigest
	if stored == "" {
		var at time.Time
		if t.ScheduledRunTime != nil {
			at = *t.ScheduledRunTime
		}
		if stored, err = requestDigest(t.EventType, at, t.Data); err != nil {
			return false, nil // data that is not JSON was created by no request
		}
	}
	return stored == digest, nil
}

// decodeJSON decodes the JSON text b into maps, slices, strings, booleans,
// nil and json.Numbers, which keep numbers as written.
func decodeJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	err := dec.Decode(&v)
	return v, err
}

// appendCanonical appends the canonical JSON text of v, a value that
// decodeJSON returns, to b: no white space; object members sorted by name,
// byte by byte; numbers as written (so 1 and 1.0 differ, and
// 12345678901234567890 and 12345678901234567891, equal as float64, too);
// strings with only the escapes JSON requires: \" and \\, and \u00XX for
// control characters. Two JSON texts have the same canonical text if and
// only if they hold the same value. Object member names must be unique
// (valid data has no duplicates; see validateData). The encoding is written
// out here rather than left to encoding/json, whose escaping may change
// between Go releases: digests of it are stored.
func appendCanonical(b []byte, v any) []byte {
	switch v := v.(type) {
	case nil:
		return append(b, "null"...)
	case bool:
		return strconv.AppendBool(b, v)
	case json.Number:
		return append(b, v...)
	case string:
		return appendCanonicalString(b, v)
	case []any:
		b = append(b, '[')
		for i, e := range v {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendCanonical(b, e)
		}
		return append(b, ']')
	case map[string]any:
		b = append(b, '{')
		for i, name := range slices.Sorted(maps.Keys(v)) {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendCanonicalString(b, name)
			b = append(b, ':')
			b = appendCanonical(b, v[name])
		}
		return append(b, '}')
	}
	panic(fmt.Sprintf("tasks: canonical JSON of a %T", v))
}

// appendCanonicalString appends s as a canonical JSON string to b.
func appendCanonicalString(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		default:
			b = append(b, c) // UTF-8 as it is
		}
	}
	return append(b, '"')
}
