package tasks

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/taskwheel/tasks/internal/web"
)

func TestParseRunTime(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in   string
		want time.Time // zero: refused
	}{
		{"2026-12-01T10:00:00Z", time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)},
		{"2026-12-01T10:00:00+05:30", time.Date(2026, 12, 1, 4, 30, 0, 0, time.UTC)},
		{"2026-12-01T10:00:00-00:00", time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)},
		{"2026-12-01T10:00:00.5-08:00", time.Date(2026, 12, 1, 18, 0, 0, 5e8, time.UTC)},
		{"2026-12-01T10:00:00.123456789Z", time.Date(2026, 12, 1, 10, 0, 0, 123456789, time.UTC)},
		{"2026-12-01t10:00:00z", time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)},
		{"2024-02-29T00:00:00+23:59", time.Date(2024, 2, 28, 0, 1, 0, 0, time.UTC)},
		{"0001-01-01T00:00:01Z", time.Date(1, 1, 1, 0, 0, 1, 0, time.UTC)},
		{"9999-12-31T23:59:59Z", time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)},

		{"2026-12-01T10:00:00", time.Time{}},
		{"2026-12-01", time.Time{}},
		{"2026-12-01 10:00:00Z", time.Time{}},
		{"2026-12-01T10:00Z", time.Time{}},
		{"2026-12-01T10:00:00.Z", time.Time{}},
		{"2026-12-01T10:00:00.1234567890Z", time.Time{}},
		{"2026-12-01T10:00:00+0530", time.Time{}},
		{"2026-12-01T10:00:00+05", time.Time{}},
		{"2026-12-01T10:00:00+24:00", time.Time{}},
		{"2026-12-01T10:00:00+05:60", time.Time{}},
		{"2026-12-01T10:00:00,5Z", time.Time{}},
		{"2026-12-01T10:00:00 Z", time.Time{}},
		{" 2026-12-01T10:00:00Z", time.Time{}},
		{"2026-12-01T10:00:00Z\n", time.Time{}},
		{"2023-02-29T10:00:00Z", time.Time{}},
		{"2026-13-01T10:00:00Z", time.Time{}},
		{"2026-12-01T10:00:60Z", time.Time{}},
		{"+2026-12-01T10:00:00Z", time.Time{}},
		{"12026-12-01T10:00:00Z", time.Time{}},
		{"0001-01-01T00:00:00Z", time.Time{}},      // Go's zero time
		{"0001-01-01T00:00:00+00:01", time.Time{}}, // year 0 in UTC
		{"9999-12-31T23:59:59-00:01", time.Time{}}, // year 10000 in UTC
		{"Tue, 01 Dec 2026 10:00:00 GMT", time.Time{}},
		{"1764583200", time.Time{}},
		{"２０２６-12-01T10:00:00Z", time.Time{}},
		{"", time.Time{}},
	} {
		got, err := parseRunTime(tt.in)
		switch {
		case tt.want.IsZero() && err == nil:
			t.Errorf("parseRunTime(%q) = %v, want an error", tt.in, got)
		case !tt.want.IsZero() && (err != nil || !got.Equal(tt.want) || got.Location() != time.UTC):
			t.Errorf("parseRunTime(%q) = %v, %v; want %v in UTC", tt.in, got, err, tt.want)
		}
	}
}

// FuzzParseRunTime: no panic; an accepted value has an offset, is in UTC
// and round-trips through RFC 3339.
func FuzzParseRunTime(f *testing.F) {
	for _, s := range []string{"2026-12-01T10:00:00Z", "2026-12-01T10:00:00+05:30", "2026-12-01T10:00:00.999999999-23:59",
		"2026-12-01T10:00:00", "2026-12-01", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "2026-02-29T10:00:00+24:00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseRunTime(s)
		if err != nil {
			if !got.IsZero() {
				t.Fatalf("parseRunTime(%q) = %v with error %v", s, got, err)
			}
			return
		}
		if n := len(s); !(strings.HasSuffix(s, "Z") || strings.HasSuffix(s, "z") || n > 6 && (s[n-6] == '+' || s[n-6] == '-') && s[n-3] == ':') {
			t.Fatalf("parseRunTime(%q) accepted a time without an offset", s)
		}
		if got.Location() != time.UTC || got.IsZero() || got.Year() < 1 || got.Year() > 9999 {
			t.Fatalf("parseRunTime(%q) = %v", s, got)
		}
		back, err := time.Parse(time.RFC3339Nano, got.Format(time.RFC3339Nano))
		if err != nil || !back.Equal(got) {
			t.Fatalf("parseRunTime(%q) = %v does not round-trip: %v, %v", s, got, back, err)
		}
		again, err := parseRunTime(got.Format(time.RFC3339Nano))
		if err != nil || !again.Equal(got) {
			t.Fatalf("parseRunTime of its own output %q: %v, %v", got.Format(time.RFC3339Nano), again, err)
		}
		if std, err := time.Parse(time.RFC3339Nano, strings.ToUpper(s)); err != nil || !std.Equal(got) {
			t.Fatalf("parseRunTime(%q) = %v, time.Parse = %v, %v", s, got, std, err)
		}
	})
}

// TestHandler_KeyDigests: the handler keeps digests, not keys (A2).
func TestHandler_KeyDigests(t *testing.T) {
	t.Parallel()
	e, err := NewEngine(NewMemoryStore(), nil)
	if err != nil {
		t.Fatal(err)
	}
	const key = "super-secret-key-0123456789"
	h := e.Handler(&HandlerConfig{Keys: map[string][]string{key: {"a"}, key + "x": {"*"}}}).(*handler)
	if dump := fmt.Sprintf("%#v", h.keys); strings.Contains(dump, key) || len(h.keys) != 2 {
		t.Errorf("handler keeps %s", dump)
	}
	for _, tt := range []struct {
		auth string
		want int // index into h.keys, or -1
	}{
		{"Bearer " + key, 0},
		{"Bearer " + key + "x", 1},
		{"Bearer " + key[:len(key)-1], -1},
		{"Bearer " + key + "xx", -1},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Authorization", tt.auth)
		k, err := h.authenticate(r)
		switch {
		case tt.want < 0 && err == nil:
			t.Errorf("%q authenticated", tt.auth)
		case tt.want >= 0 && (err != nil || k != &h.keys[tt.want]):
			t.Errorf("%q: key %p, %v; want key %d", tt.auth, k, err, tt.want)
		}
	}
}

// hangingStore never answers until its caller gives up.
type hangingStore struct{ Store }

func (hangingStore) Get(ctx context.Context, id string) (*Task, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func (hangingStore) ListEndpoints(ctx context.Context, app string) ([]*Endpoint, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// TestHandler_StoreTimeout: a store that hangs gets a 503 at the timeout
// (F9).
func TestHandler_StoreTimeout(t *testing.T) {
	t.Parallel()
	e, err := NewEngine(hangingStore{NewMemoryStore()}, &Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	h := e.Handler(&HandlerConfig{Unauthenticated: true}).(*handler)
	h.storeTimeout = 50 * time.Millisecond
	for _, path := range []string{"/apps/a/tasks/0190a0a0-0000-7000-8000-000000000000", "/apps/a/endpoints"} {
		start := time.Now()
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" || time.Since(start) > 2*time.Second {
			t.Errorf("GET %s: %d after %v, Retry-After %q; want 503 at the timeout", path, w.Code, time.Since(start), w.Header().Get("Retry-After"))
		}
	}
}

// TestHandler_Panic: a panic in a route becomes a generic 500, the
// process lives, and the stack goes to the log only.
func TestHandler_Panic(t *testing.T) {
	t.Parallel()
	var log strings.Builder
	e, err := NewEngine(panickingStore{NewMemoryStore()}, &Config{Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	h := e.Handler(&HandlerConfig{Unauthenticated: true})
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/apps/a/tasks", nil))
	if w.Code != http.StatusInternalServerError || w.Header().Get("Content-Type") != "application/problem+json" ||
		strings.Contains(w.Body.String(), "goroutine") || strings.Contains(w.Body.String(), "boom") {
		t.Errorf("answer %d %s", w.Code, w.Body)
	}
	if !strings.Contains(log.String(), "boom") {
		t.Errorf("log %q lacks the panic", log.String())
	}
}

type panickingStore struct{ Store }

func (panickingStore) List(context.Context, ListParams) ([]*Task, string, error) { panic("boom") }

// TestWebLimits checks that the IDs and event types internal/web accepts
// are those MaxIDLength and MaxEventTypeLength document.
func TestWebLimits(t *testing.T) {
	if web.MaxIDLength != MaxIDLength {
		t.Errorf("web.MaxIDLength = %d, want MaxIDLength, %d", web.MaxIDLength, MaxIDLength)
	}
	if web.MaxEventTypeLength != MaxEventTypeLength {
		t.Errorf("web.MaxEventTypeLength = %d, want MaxEventTypeLength, %d", web.MaxEventTypeLength, MaxEventTypeLength)
	}
}
