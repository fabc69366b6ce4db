package dashboard_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/dashboard"
	"github.com/taskwheel/tasks/internal/testkit"
)

// TestUI_LogoutIsShared checks that a logout holds for every dashboard on
// the store: one that restarted, and one in another process, with the same
// keys, refuse the logged-out session's cookie.
func TestUI_LogoutIsShared(t *testing.T) {
	t.Parallel()
	for _, c := range testkit.SharedStores {
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			stores := c.Open(t, 2)
			before := newDash(t, stores[0], dashOpts{})
			before.login(keyApp1)
			out := before.cookies()
			kept := before.newClient()
			keeper := &dash{t: t, e: before.e, srv: before.srv, client: kept}
			keeper.login(keyApp1)
			in := keeper.cookies()
			if p := before.act("/apps/app_1/tasks", "/logout", nil); p.status != http.StatusSeeOther {
				t.Fatalf("POST /logout: got %d, want 303", p.status)
			}

			after := newDash(t, stores[1], dashOpts{}) // restarted, or another process
			if p := after.getWith(in, "/apps/app_1/tasks"); p.status != http.StatusOK {
				t.Errorf("GET with the cookie of a session not logged out: got %d, want 200", p.status)
			}
			if p := after.getWith(out, "/apps/app_1/tasks"); p.status != http.StatusSeeOther || p.location() != uiPrefix+"/login" {
				t.Errorf("GET with the cookie of a logged-out session: got %d to %q, want 303 to /ui/login", p.status, p.location())
			}
		})
	}
}

// cookies returns the cookies of d's client for the dashboard.
func (d *dash) cookies() []*http.Cookie {
	u, _ := url.Parse(d.srv.URL + uiPrefix + "/")
	return d.client.Jar.Cookies(u)
}

// getWith fetches uiPrefix+path with a new client that has cookies.
func (d *dash) getWith(cookies []*http.Cookie, path string) *uiPage {
	d.t.Helper()
	c := d.newClient()
	u, _ := url.Parse(d.srv.URL + uiPrefix + "/")
	for _, ck := range cookies {
		ck.Path = uiPrefix + "/"
	}
	c.Jar.SetCookies(u, cookies)
	req, err := http.NewRequest(http.MethodGet, d.srv.URL+uiPrefix+path, nil)
	if err != nil {
		d.t.Fatal(err)
	}
	return d.send(c, req)
}

// TestUI_LoginThrottle checks in fake time that logins are throttled per
// client address and in all, with 429 and Retry-After, and that the right
// key gets in once the wait is over.
func TestUI_LoginThrottle(t *testing.T) {
	t.Parallel()
	newUI := func(t *testing.T) func(addr, key string) *httptest.ResponseRecorder {
		e, err := tasks.NewEngine(tasks.NewMemoryStore(), nil)
		if err != nil {
			t.Fatal(err)
		}
		h := http.StripPrefix(uiPrefix, dashboard.New(e, &dashboard.Config{Keys: map[string][]string{keyApp1: {"app_1"}}}))
		return func(addr, key string) *httptest.ResponseRecorder {
			req := httptest.NewRequest(http.MethodPost, uiPrefix+"/login", strings.NewReader(url.Values{"key": {key}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.RemoteAddr = addr
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			return rec
		}
	}
	// retryAfter returns the wait a 429 asks for.
	retryAfter := func(t *testing.T, rec *httptest.ResponseRecorder) time.Duration {
		t.Helper()
		s, err := strconv.Atoi(rec.Header().Get("Retry-After"))
		if err != nil || s < 1 {
			t.Fatalf("429 with Retry-After %q, want a number of seconds, at least 1", rec.Header().Get("Retry-After"))
		}
		return time.Duration(s) * time.Second
	}

	t.Run("per address", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			login := newUI(t)
			const attacker = "192.0.2.1:4321"
			wrong, throttled := 0, 0
			var wait time.Duration
			for i := range 300 {
				switch rec := login(attacker, "wrong-key"); rec.Code {
				case http.StatusUnauthorized:
					if throttled > 0 {
						t.Fatalf("wrong login %d: 401 after a 429, want 429 until the wait is over", i)
					}
					wrong++
				case http.StatusTooManyRequests:
					throttled++
					wait = retryAfter(t, rec)
				default:
					t.Fatalf("wrong login %d: got %d, want 401 or 429", i, rec.Code)
				}
			}
			if wrong == 0 || wrong > 20 || throttled == 0 {
				t.Fatalf("300 wrong logins from one address: %d answered 401, %d 429; want at most 20 answered, the rest 429", wrong, throttled)
			}
			if rec := login(attacker, keyApp1); rec.Code != http.StatusTooManyRequests {
				t.Errorf("the right key from the throttled address at once: got %d, want 429", rec.Code)
			}
			if rec := login("198.51.100.7:1234", keyApp1); rec.Code != http.StatusSeeOther {
				t.Errorf("the right key from another address: got %d, want 303", rec.Code)
			}
			time.Sleep(wait)
			if rec := login(attacker, keyApp1); rec.Code != http.StatusSeeOther {
				t.Errorf("the right key from the throttled address after Retry-After: got %d, want 303", rec.Code)
			}
		})
	})

	t.Run("an address that logged in before gets in during an attack from many", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			login := newUI(t)
			const admin = "198.51.100.7:1234"
			if rec := login(admin, keyApp1); rec.Code != http.StatusSeeOther {
				t.Fatalf("the admin's first login: got %d, want 303", rec.Code)
			}
			throttled := false
			for i := range 10000 {
				addr := "10." + strconv.Itoa(i>>16&255) + "." + strconv.Itoa(i>>8&255) + "." + strconv.Itoa(i&255) + ":1"
				if rec := login(addr, "wrong-key"); rec.Code == http.StatusTooManyRequests {
					throttled = true
					break
				}
			}
			if !throttled {
				t.Fatal("10000 wrong logins from as many addresses: none answered 429")
			}
			if rec := login("203.0.113.9:1", keyApp1); rec.Code != http.StatusTooManyRequests {
				t.Errorf("the right key from a new address during the attack: got %d, want 429", rec.Code)
			}
			if rec := login(admin, keyApp1); rec.Code != http.StatusSeeOther {
				t.Errorf("the right key from the admin's address during the attack: got %d, want 303", rec.Code)
			}
		})
	})

	t.Run("in all", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			login := newUI(t)
			var wait time.Duration
			for i := range 10000 {
				addr := "10." + strconv.Itoa(i>>16&255) + "." + strconv.Itoa(i>>8&255) + "." + strconv.Itoa(i&255) + ":1"
				rec := login(addr, "wrong-key")
				if rec.Code == http.StatusTooManyRequests {
					wait = retryAfter(t, rec)
					break
				}
				if rec.Code != http.StatusUnauthorized {
					t.Fatalf("wrong login %d: got %d, want 401 or 429", i, rec.Code)
				}
			}
			if wait == 0 {
				t.Fatal("10000 wrong logins from as many addresses: none answered 429")
			}
			time.Sleep(wait)
			if rec := login("203.0.113.9:1", keyApp1); rec.Code != http.StatusSeeOther {
				t.Errorf("the right key after Retry-After: got %d, want 303", rec.Code)
			}
		})
	})
}
