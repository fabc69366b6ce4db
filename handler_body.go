package tasks

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// readObject reads a request body that must be one strict JSON object and
// returns its members, their values byte for byte. An optional body may be
// empty, which gives no members.
func (h *handler) readObject(w http.ResponseWriter, r *http.Request, optional bool) (map[string]json.RawMessage, error) {
	if optional && r.ContentLength == 0 {
		return map[string]json.RawMessage{}, nil
	}
	if !optional {
		if err := checkContentType(r); err != nil {
			return nil, err
		}
	}
	if r.ContentLength > h.maxBody {
		return nil, &http.MaxBytesError{Limit: h.maxBody}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.maxBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, err
		}
		return nil, apiErrorf(http.StatusBadRequest, "", "reading the body: %v", err)
	}
	if len(body) == 0 {
		if optional {
			return map[string]json.RawMessage{}, nil
		}
		return nil, apiErrorf(http.StatusBadRequest, "", "the body is empty; send a JSON object")
	}
	if optional {
		if err := checkContentType(r); err != nil {
			return nil, err
		}
	}
	if err := checkJSON(body); err != nil {
		return nil, err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil { // checkJSON let through only an object
		return nil, apiErrorf(http.StatusBadRequest, "", "the body is not a JSON object: %v", err)
	}
	return m, nil
}

// readEmpty reads the body of a request that takes none: it may be empty,
// or the empty object.
func (h *handler) readEmpty(w http.ResponseWriter, r *http.Request) error {
	m, err := h.readObject(w, r, true)
	if err != nil {
		return err
	}
	return onlyFields(m)
}

// checkContentType refuses a body that is not declared application/json.
func checkContentType(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return apiErrorf(http.StatusUnsupportedMediaType, "", "missing Content-Type; send application/json")
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return apiErrorf(http.StatusUnsupportedMediaType, "", "Content-Type %s is not supported; send application/json", quote(ct))
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return apiErrorf(http.StatusUnsupportedMediaType, "", "charset %s is not supported; send UTF-8", quote(cs))
	}
	return nil
}

// checkJSON checks that body is one JSON object, valid UTF-8, with no
// duplicate member names at any level, nested at most maxJSONDepth deep,
// and nothing after it but white space.
func checkJSON(body []byte) error {
	if !utf8.Valid(body) {
		i := 0
		for i < len(body) {
			r, n := utf8.DecodeRune(body[i:])
			if r == utf8.RuneError && n <= 1 {
				break
			}
			i += n
		}
		return apiErrorf(http.StatusBadRequest, "", "the body is not valid UTF-8 (at byte %d)", i)
	}
	type frame struct {
		object  bool
		wantKey bool // an object's next token is a member name or its end
		names   map[string]bool
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber() // numbers stay text: none is too large to check
	var stack []*frame
	syntax := func(err error) error {
		return apiErrorf(http.StatusBadRequest, "", "the body is not valid JSON: %v (at byte %d)", err, dec.InputOffset())
	}
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return apiErrorf(http.StatusBadRequest, "", "the body is not valid JSON: unexpected end")
		}
		if err != nil {
			return syntax(err)
		}
		if len(stack) == 0 && tok != json.Delim('{') {
			return apiErrorf(http.StatusBadRequest, "", "the body must be a JSON object, not %s", tokenKind(tok))
		}
		if n := len(stack); n > 0 && stack[n-1].wantKey {
			if name, ok := tok.(string); ok {
				top := stack[n-1]
				if top.names[name] {
					return apiErrorf(http.StatusBadRequest, fieldName(name), "duplicate member %s in a JSON object (at byte %d)", quote(name), dec.InputOffset())
				}
				top.names[name] = true
				top.wantKey = false
				continue
			}
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			if len(stack) == maxJSONDepth {
				return apiErrorf(http.StatusBadRequest, "", "the body is nested more than %d levels deep", maxJSONDepth)
			}
			f := &frame{object: tok == json.Delim('{')}
			if f.object {
				f.wantKey, f.names = true, make(map[string]bool)
			}
			stack = append(stack, f)
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		// A value ended.
		if len(stack) == 0 {
			break
		}
		if top := stack[len(stack)-1]; top.object {
			top.wantKey = true
		}
	}
	if _, err := dec.Token(); err != io.EOF {
		return apiErrorf(http.StatusBadRequest, "", "trailing data after the JSON object (at byte %d)", dec.InputOffset())
	}
	return nil
}

// onlyFields refuses members of m not named in names, with a hint for a
// name that differs only in case (names are case-sensitive).
func onlyFields(m map[string]json.RawMessage, names ...string) error {
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if slices.Contains(names, k) {
			continue
		}
		for _, n := range names {
			if strings.EqualFold(k, n) {
				return apiErrorf(http.StatusBadRequest, fieldName(k), "unknown field %s: field names are case-sensitive; did you mean %q?", quote(k), n)
			}
		}
		if len(names) == 0 {
			return apiErrorf(http.StatusBadRequest, fieldName(k), "unknown field %s: this request takes no fields", quote(k))
		}
		return apiErrorf(http.StatusBadRequest, fieldName(k), "unknown field %s; the fields are %s", quote(k), strings.Join(names, ", "))
	}
	return nil
}

// stringField reads member name of m, which must be a JSON string when
// present; required says whether it must be present.
func stringField(m map[string]json.RawMessage, name string, required bool) (string, error) {
	raw, ok := m[name]
	if !ok {
		if required {
			return "", apiErrorf(http.StatusBadRequest, name, "%s is required", name)
		}
		return "", nil
	}
	var s string
	if raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return "", apiErrorf(http.StatusBadRequest, name, "%s must be a string, not %s", name, kind(raw))
	}
	return s, nil
}

// dataField reads data: any JSON value, null included, kept byte for byte,
// of at most Config.MaxDataBytes (413 beyond). Absent gives nil, or a 400
// when required. A lone UTF-16 surrogate escape ("\ud800") gets a 400: the
// answers, which hold data as given, must be I-JSON (see validateData).
func (h *handler) dataField(m map[string]json.RawMessage, required bool) (json.RawMessage, error) {
	data, ok := m["data"]
	if !ok {
		if required {
			return nil, apiErrorf(http.StatusBadRequest, "data", "data is required (any JSON value, null included)")
		}
		return nil, nil
	}
	if len(data) > h.e.cfg.MaxDataBytes {
		return nil, apiErrorf(http.StatusRequestEntityTooLarge, "data", "data is %d bytes, more than the limit of %d", len(data), h.e.cfg.MaxDataBytes)
	}
	if err := validateData(data); err != nil {
		return nil, badRequest(err)
	}
	return data, nil
}

// optionalString reads member name of m, which must be a JSON string when
// present; absent gives nil.
func optionalString(m map[string]json.RawMessage, name string) (*string, error) {
	if _, ok := m[name]; !ok {
		return nil, nil
	}
	s, err := stringField(m, name, true)
	if err != nil {
		return nil, err
	}
	return &s, nil
}

// runTimeField reads a run time: an RFC 3339 string with an offset. Absent
// or null gives the zero time, unless required.
func runTimeField(m map[string]json.RawMessage, name string, required bool) (time.Time, error) {
	raw, ok := m[name]
	if !required && (!ok || string(raw) == "null") {
		return time.Time{}, nil
	}
	s, err := stringField(m, name, true)
	if err != nil {
		return time.Time{}, err
	}
	t, err := parseRunTime(s)
	if err != nil {
		return time.Time{}, apiErrorf(http.StatusBadRequest, name, "%s %v", name, err)
	}
	return t, nil
}

var (
	rfc3339         = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})$`)
	rfc3339NoOffset = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?$`)
)

// parseRunTime parses an RFC 3339 date-time with a UTC offset, "Z" or
// "±hh:mm" (such as 2026-12-01T10:00:00+05:30), with at most nanosecond
// precision, and returns it in UTC. A time without an offset is refused:
// its meaning would depend on the server's zone. So are dates alone and
// times outside the years 0001 to 9999 in UTC, and 0001-01-01T00:00:00Z,
// which is Go's zero time: "no run time".
func parseRunTime(s string) (time.Time, error) {
	if !rfc3339.MatchString(s) {
		if rfc3339NoOffset.MatchString(s) {
			return time.Time{}, fmt.Errorf("%s has no UTC offset; end it with Z or ±hh:mm, as in 2026-12-01T10:00:00Z", quote(s))
		}
		return time.Time{}, fmt.Errorf("%s is not an RFC 3339 date-time with an offset, such as 2026-12-01T10:00:00Z or 2026-12-01T10:00:00+05:30", quote(s))
	}
	if off := s[len(s)-6:]; off[0] == '+' || off[0] == '-' {
		if off[1:3] > "23" || off[4:6] > "59" { // time.Parse allows up to 24:59
			return time.Time{}, fmt.Errorf("%s has an offset out of range; RFC 3339 allows -23:59 to +23:59", quote(s))
		}
	}
	t, err := time.Parse(time.RFC3339Nano, strings.ToUpper(s))
	if err != nil {
		var pe *time.ParseError
		if errors.As(err, &pe) && pe.Message != "" {
			return time.Time{}, fmt.Errorf("%s is not a valid time%s", quote(s), pe.Message)
		}
		return time.Time{}, fmt.Errorf("%s is not a valid time", quote(s))
	}
	t = t.UTC()
	if y := t.Year(); y < 1 || y > 9999 || t.IsZero() {
		return time.Time{}, fmt.Errorf("%s is out of range: after 0001-01-01T00:00:00Z and before 10000-01-01T00:00:00Z", quote(s))
	}
	return t, nil
}

// parseUint parses a decimal number from 0 to max written with digits only.
func parseUint(s string, max uint64) (uint64, bool) {
	if s == "" || len(s) > 20 || strings.Trim(s, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil && n <= max
}

// kind names the JSON type of a value, for messages.
func kind(raw json.RawMessage) string {
	switch raw[0] {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// tokenKind names the JSON type of a token, for messages.
func tokenKind(tok json.Token) string {
	switch tok.(type) {
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	if tok == json.Delim('[') {
		return "an array"
	}
	return "an object"
}

// quote quotes s for a message, cut to 64 bytes.
func quote(s string) string {
	if len(s) > 64 {
		return strconv.Quote(strings.ToValidUTF8(s[:64], "")) + "…"
	}
	return strconv.Quote(s)
}

// fieldName is a member name for the field of a problem, cut to 64 bytes.
func fieldName(s string) string {
	if len(s) > 64 {
		s = s[:64]
	}
	return strings.ToValidUTF8(s, "")
}

// excerpt is the start of a JSON value, for messages.
func excerpt(raw json.RawMessage) string {
	if len(raw) > 64 {
		return string(raw[:64]) + "…"
	}
	return string(raw)
}
