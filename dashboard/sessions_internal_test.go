package dashboard

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
)

// TestUI_SessionExpires moves the dashboard's clock past a session's
// lifetime: the session no longer opens a page, and a new login works.
func TestUI_SessionExpires(t *testing.T) {
	t.Parallel()
	e, err := tasks.NewEngine(tasks.NewMemoryStore(), nil)
	if err != nil {
		t.Fatal(err)
	}
	const key = "ui-internal-key-0123"
	u := New(e, &Config{Keys: map[string][]string{key: {"app_1"}}}).(*ui)
	var offset time.Duration
	u.now = func() time.Time { return time.Now().Add(offset) }

	login := func() *http.Cookie {
		t.Helper()
		req := httptest.NewRequest(http.MethodPost, "/login", strings.NewReader(url.Values{"key": {key}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rec := httptest.NewRecorder()
		u.ServeHTTP(rec, req)
		cookies := rec.Result().Cookies()
		if rec.Code != http.StatusSeeOther || len(cookies) != 1 {
			t.Fatalf("POST /login: %d with cookies %v, want 303 and a session cookie", rec.Code, cookies)
		}
		return cookies[0]
	}
	get := func(c *http.Cookie) int {
		t.Helper()
		req := httptest.NewRequest(http.MethodGet, "/apps/app_1/tasks", nil)
		req.AddCookie(c)
		rec := httptest.NewRecorder()
		u.ServeHTTP(rec, req)
		return rec.Code
	}

	c := login()
	if code := get(c); code != http.StatusOK {
		t.Fatalf("GET with a fresh session: %d, want 200", code)
	}
	offset = sessionTTL - time.Minute
	if code := get(c); code != http.StatusOK {
		t.Errorf("GET a minute before the session expires: %d, want 200", code)
	}
	offset = sessionTTL + time.Second
	if code := get(c); code != http.StatusSeeOther {
		t.Errorf("GET after the session expired: %d, want 303 to the login", code)
	}
	if code := get(login()); code != http.StatusOK {
		t.Errorf("GET after a new login: %d, want 200", code)
	}
	// A session that expires later than a login now gives (the clock went
	// back) is refused too.
	offset = 0
	c = login()
	offset = -time.Hour
	if code := get(c); code != http.StatusSeeOther {
		t.Errorf("GET with a session that expires beyond its lifetime: %d, want 303", code)
	}
}
