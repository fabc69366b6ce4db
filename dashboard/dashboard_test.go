package dashboard_test

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/dashboard"
)

// uiPrefix is where the tests mount the dashboard.
const uiPrefix = "/ui"

// wantCSP is the Content-Security-Policy of every dashboard answer.
const wantCSP = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// dash is the engine's dashboard, mounted under uiPrefix on a test server,
// and a browser-like client with a cookie jar that does not follow
// redirects.
type dash struct {
	t      *testing.T
	e      *tasks.Engine
	srv    *httptest.Server
	client *http.Client
}

type dashOpts struct {
	cfg     *tasks.Config
	handler *dashboard.Config
	funcs   map[string]tasks.Func
}

func newDash(t *testing.T, store tasks.Store, opts dashOpts) *dash {
	t.Helper()
	if opts.funcs == nil {
		opts.funcs = map[string]tasks.Func{"x": func(context.Context, *tasks.Task) error { return nil }}
	}
	e := startEngine(t, store, opts.cfg, opts.funcs)
	hc := opts.handler
	if hc == nil {
		hc = &dashboard.Config{Keys: map[string][]string{keyApp1: {"app_1"}, keyAll: {"*"}}}
	}
	mux := http.NewServeMux()
	mux.Handle(uiPrefix+"/", http.StripPrefix(uiPrefix, dashboard.New(e, hc)))
	d := &dash{t: t, e: e, srv: httptest.NewServer(mux)}
	t.Cleanup(d.srv.Close)
	d.client = d.newClient()
	return d
}

// with returns d for the subtest t.
func (d *dash) with(t *testing.T) *dash {
	c := *d
	c.t = t
	return &c
}

// newClient returns a client with an empty cookie jar: another browser.
func (d *dash) newClient() *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		d.t.Fatal(err)
	}
	return &http.Client{
		Jar:           jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

type uiPage struct {
	status int
	header http.Header
	body   string
}

// location is the path a redirect sends to.
func (p *uiPage) location() string { return p.header.Get("Location") }

func (d *dash) send(c *http.Client, req *http.Request) *uiPage {
	d.t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		d.t.Fatal(err)
	}
	return &uiPage{resp.StatusCode, resp.Header, string(b)}
}

// get fetches uiPrefix+path with d's client.
func (d *dash) get(path string) *uiPage {
	d.t.Helper()
	req, err := http.NewRequest(http.MethodGet, d.srv.URL+uiPrefix+path, nil)
	if err != nil {
		d.t.Fatal(err)
	}
	return d.send(d.client, req)
}

// post submits form to uiPrefix+path as a browser on the dashboard's page
// would: with Origin and Sec-Fetch-Site; edits change the request.
func (d *dash) post(path string, form url.Values, edits ...func(*http.Request)) *uiPage {
	d.t.Helper()
	req, err := http.NewRequest(http.MethodPost, d.srv.URL+uiPrefix+path, strings.NewReader(form.Encode()))
	if err != nil {
		d.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", d.srv.URL)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	for _, edit := range edits {
		edit(req)
	}
	return d.send(d.client, req)
}

// login logs d's client in with key.
func (d *dash) login(key string) {
	d.t.Helper()
	p := d.post("/login", url.Values{"key": {key}})
	if p.status != http.StatusSeeOther || p.location() != uiPrefix+"/" {
		d.t.Fatalf("POST /login: got %d to %q, want 303 to %s/", p.status, p.location(), uiPrefix)
	}
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf returns the CSRF token of the page at path.
func (d *dash) csrf(path string) string {
	d.t.Helper()
	p := d.get(path)
	m := csrfField.FindStringSubmatch(p.body)
	if m == nil {
		d.t.Fatalf("GET %s: %d, no CSRF field in the page", path, p.status)
	}
	return html.UnescapeString(m[1])
}

// act submits an action form with the CSRF token of the page at from.
func (d *dash) act(from, path string, form url.Values) *uiPage {
	d.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	form.Set("csrf", d.csrf(from))
	return d.post(path, form)
}

func (d *dash) wantStatus(what string, p *uiPage, want int) {
	d.t.Helper()
	if p.status != want {
		d.t.Fatalf("%s: got status %d, want %d; body:\n%s", what, p.status, want, p.body)
	}
}

func wantContains(t *testing.T, what, body string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(body, s) {
			t.Errorf("%s: missing %q", what, s)
		}
	}
}

func wantNotContains(t *testing.T, what, body string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if strings.Contains(body, s) {
			t.Errorf("%s: has %q, want none", what, s)
		}
	}
}

// taskPath is the path of a task's page.
func taskPath(id string) string { return "/apps/app_1/tasks/" + id }

func TestUI_Login(t *testing.T) {
	t.Parallel()
	d := newDash(t, tasks.NewMemoryStore(), dashOpts{})

	t.Run("PagesNeedASession", func(t *testing.T) {
		d := d.with(t)
		for _, path := range []string{"/", "/apps/app_1/tasks", "/apps/app_1/endpoints"} {
			p := d.get(path)
			if p.status != http.StatusSeeOther || p.location() != uiPrefix+"/login" {
				t.Errorf("GET %s without a session: got %d to %q, want 303 to /ui/login", path, p.status, p.location())
			}
		}
	})

	t.Run("WrongKeyIsRefused", func(t *testing.T) {
		d := d.with(t)
		p := d.post("/login", url.Values{"key": {"not-a-key-at-all"}})
		d.wantStatus("POST /login with a wrong key", p, http.StatusUnauthorized)
		wantContains(t, "the login page", p.body, "This API key is not valid.")
		if c := p.header.Get("Set-Cookie"); c != "" {
			t.Errorf("a wrong key got a cookie: %s", c)
		}
	})

	t.Run("LoginSetsASessionCookie", func(t *testing.T) {
		d := d.with(t)
		c := d.newClient()
		req, _ := http.NewRequest(http.MethodPost, d.srv.URL+uiPrefix+"/login", strings.NewReader(url.Values{"key": {keyApp1}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		p := d.send(c, req)
		d.wantStatus("POST /login", p, http.StatusSeeOther)
		cookies := (&http.Response{Header: p.header}).Cookies()
		if len(cookies) != 1 {
			t.Fatalf("got cookies %v, want one", cookies)
		}
		ck := cookies[0]
		if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != uiPrefix+"/" || ck.Secure || ck.MaxAge <= 0 {
			t.Errorf("session cookie %s: want HttpOnly, SameSite=Strict, Path=/ui/, not Secure over plain HTTP, a Max-Age", p.header.Get("Set-Cookie"))
		}
		if strings.Contains(ck.Value, keyApp1) || strings.Contains(ck.Value, url.QueryEscape(keyApp1)) {
			t.Errorf("the session cookie holds the API key: %q", ck.Value)
		}
	})

	t.Run("OneAppKeyGoesToItsApp", func(t *testing.T) {
		d := d.with(t)
		d.login(keyApp1)
		p := d.get("/")
		if p.status != http.StatusSeeOther || p.location() != uiPrefix+"/apps/app_1/tasks" {
			t.Errorf("GET / with a key of app_1: got %d to %q, want 303 to the app's tasks", p.status, p.location())
		}
		d.wantStatus("GET the app's tasks", d.get("/apps/app_1/tasks"), http.StatusOK)
		p = d.get("/apps/app_2/tasks")
		d.wantStatus("GET another app's tasks", p, http.StatusNotFound)
		p = d.get("/?app=app_2")
		d.wantStatus("GET /?app=app_2", p, http.StatusBadRequest)
	})

	t.Run("KeyForEveryAppTypesAnAppID", func(t *testing.T) {
		other := &dash{t: t, e: d.e, srv: d.srv}
		other.client = other.newClient()
		other.login(keyAll)
		p := other.get("/")
		other.wantStatus("GET / with a key of every app", p, http.StatusOK)
		wantContains(t, "the app picker", p.body, `<label for="app">App ID</label>`, `name="app"`)
		p = other.get("/?app=app_7")
		if p.status != http.StatusSeeOther || p.location() != uiPrefix+"/apps/app_7/tasks" {
			t.Errorf("GET /?app=app_7: got %d to %q, want 303 to its tasks", p.status, p.location())
		}
		other.wantStatus("GET /?app=bad app", other.get("/?app="+url.QueryEscape("bad app")), http.StatusBadRequest)
		other.wantStatus("GET app_7's tasks", other.get("/apps/app_7/tasks"), http.StatusOK)
	})

	t.Run("TamperedCookieIsNoSession", func(t *testing.T) {
		d := d.with(t)
		u, _ := url.Parse(d.srv.URL + uiPrefix + "/")
		for _, ck := range d.client.Jar.Cookies(u) {
			parts := strings.Split(ck.Value, ".")
			for i, v := range []string{
				"9999999999." + parts[1] + "." + parts[2], // a later expiry
				parts[0] + ".AAAAAAAAAAAAAAAAAAAAAA." + parts[2],
				parts[0] + "." + parts[1] + ".AAAA",
				"garbage",
			} {
				c := d.newClient()
				c.Jar.SetCookies(u, []*http.Cookie{{Name: ck.Name, Value: v, Path: "/ui/"}})
				req, _ := http.NewRequest(http.MethodGet, d.srv.URL+uiPrefix+"/apps/app_1/tasks", nil)
				if p := d.send(c, req); p.status != http.StatusSeeOther {
					t.Errorf("tampered cookie %d: got %d, want 303 to the login", i, p.status)
				}
			}
		}
	})

	t.Run("LogoutEndsTheSession", func(t *testing.T) {
		c := d.newClient()
		other := &dash{t: t, e: d.e, srv: d.srv, client: c}
		other.login(keyApp1)
		u, _ := url.Parse(d.srv.URL + uiPrefix + "/")
		saved := c.Jar.Cookies(u)
		p := other.act("/apps/app_1/tasks", "/logout", nil)
		if p.status != http.StatusSeeOther || p.location() != uiPrefix+"/login" {
			t.Fatalf("POST /logout: got %d to %q, want 303 to /ui/login", p.status, p.location())
		}
		if p := other.get("/apps/app_1/tasks"); p.status != http.StatusSeeOther {
			t.Errorf("GET after logout: got %d, want 303 to the login", p.status)
		}
		// The cookie of before, replayed, no longer opens a session.
		replay := d.newClient()
		replay.Jar.SetCookies(u, saved)
		req, _ := http.NewRequest(http.MethodGet, d.srv.URL+uiPrefix+"/apps/app_1/tasks", nil)
		if p := d.send(replay, req); p.status != http.StatusSeeOther {
			t.Errorf("GET with the cookie of a logged-out session: got %d, want 303 to the login", p.status)
		}
	})
}

func TestUI_Headers(t *testing.T) {
	t.Parallel()
	d := newDash(t, tasks.NewMemoryStore(), dashOpts{})
	check := func(what string, p *uiPage, cache string) {
		t.Helper()
		for name, want := range map[string]string{
			"Content-Security-Policy": wantCSP,
			"X-Content-Type-Options":  "nosniff",
			"Referrer-Policy":         "no-referrer",
			"Cache-Control":           cache,
		} {
			if got := p.header.Get(name); got != want {
				t.Errorf("%s: %s: got %q, want %q", what, name, got, want)
			}
		}
	}
	p := d.get("/login")
	d.wantStatus("GET /login", p, http.StatusOK)
	check("GET /login", p, "no-store")
	if ct := p.header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("GET /login: Content-Type %q, want text/html; charset=utf-8", ct)
	}
	d.login(keyApp1)
	for _, path := range []string{"/apps/app_1/tasks", "/apps/app_1/endpoints", "/apps/app_1/schedules", "/apps/app_1/tasks/nope", "/nowhere"} {
		check("GET "+path, d.get(path), "no-store")
	}
	css := d.get("/ui.css")
	d.wantStatus("GET /ui.css", css, http.StatusOK)
	check("GET /ui.css", css, "no-cache")
	if ct := css.header.Get("Content-Type"); ct != "text/css; charset=utf-8" {
		t.Errorf("GET /ui.css: Content-Type %q, want text/css", ct)
	}
	// No inline script or style: the policy would block them.
	for _, path := range []string{"/login", "/apps/app_1/tasks", "/apps/app_1/endpoints", "/apps/app_1/schedules"} {
		body := d.get(path).body
		wantNotContains(t, "GET "+path, body, "<script", "style=", "<style", "javascript:")
		if m := regexp.MustCompile(`\son[a-z]+=`).FindString(body); m != "" {
			t.Errorf("GET %s: an event handler attribute %q", path, m)
		}
	}
	// An unclean path is refused rather than redirected out of the mount
	// (the server's mux cleans paths before; one under StripPrefix may not).
	rec := httptest.NewRecorder()
	http.StripPrefix(uiPrefix, dashboard.New(d.e, &dashboard.Config{Keys: map[string][]string{keyApp1: {"app_1"}}})).
		ServeHTTP(rec, httptest.NewRequest(http.MethodGet, uiPrefix+"/apps/app_1//tasks", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("GET an unclean path: got %d, want 404", rec.Code)
	}
}

func TestUI_TasksPage(t *testing.T) {
	t.Parallel()
	testEngineStores(t, func(t *testing.T, newStore func(testing.TB) tasks.Store) {
		d := newDash(t, newStore(t), dashOpts{funcs: map[string]tasks.Func{
			"ok":  func(context.Context, *tasks.Task) error { return nil },
			"bad": func(context.Context, *tasks.Task) error { return tasks.Permanent(errors.New("<b>boom</b>")) },
		}})
		ctx := context.Background()
		var done []*tasks.Task
		for _, et := range []string{"ok", "ok", "bad"} {
			done = append(done, enqueue(t, d.e, tasks.NewTask{EventType: et, Data: json.RawMessage(`{}`)}))
		}
		waitState(t, d.e, done[0].ID, tasks.StateCompleted)
		waitState(t, d.e, done[1].ID, tasks.StateCompleted)
		waitState(t, d.e, done[2].ID, tasks.StateFailed)
		later := enqueue(t, d.e, tasks.NewTask{EventType: "ok", RunAt: time.Now().Add(time.Hour)})
		canceled := enqueue(t, d.e, tasks.NewTask{EventType: "ok", RunAt: time.Now().Add(time.Hour)})
		if _, err := d.e.Cancel(ctx, canceled.ID); err != nil {
			t.Fatal(err)
		}
		enqueue(t, d.e, tasks.NewTask{AppID: "app_2", EventType: "ok", RunAt: time.Now().Add(time.Hour)})
		d.login(keyApp1)

		p := d.get("/apps/app_1/tasks")
		d.wantStatus("GET tasks", p, http.StatusOK)
		wantContains(t, "the tasks page", p.body,
			`<span class="n">5</span> <span class="label">all</span>`,
			`<span class="n">1</span> <span class="label">scheduled</span>`,
			`<span class="n">2</span> <span class="label">completed</span>`,
			`<span class="n">1</span> <span class="label">failed</span>`,
			`<span class="n">1</span> <span class="label">canceled</span>`,
			`<span class="n">0</span> <span class="label">running</span>`,
			// the chart: the tasks that ended this hour
			`<svg viewBox=`, `class="bar-completed"`, `class="bar-failed"`,
			"2 completed,", "1 failed,", "1 canceled since",
			later.ID, canceled.ID, done[2].ID,
			`&lt;b&gt;boom&lt;/b&gt;`, // the last error, escaped
			// the attempts of the last hour, by event type
			"Attempts per event type, last hour",
			`<tr><th scope="row">bad</th><td>1</td><td>1</td><td>100.0%</td>`,
			`<tr><th scope="row">ok</th><td>2</td><td>0</td><td>0.0%</td>`,
		)
		wantNotContains(t, "the tasks page", p.body, "<b>boom</b>")

		for _, tc := range []struct {
			query      string
			want, not_ []string
		}{
			{"?status=failed", []string{done[2].ID}, []string{done[0].ID, later.ID}},
			{"?status=scheduled", []string{later.ID}, []string{done[0].ID, canceled.ID}},
			{"?event_type=bad", []string{done[2].ID}, []string{done[0].ID, later.ID}},
			{"?to=2000-01-01T00:00", nil, []string{done[0].ID, later.ID}},
			{"?from=2000-01-01T00:00:00", []string{done[0].ID, later.ID}, nil},
			{"?from=" + url.QueryEscape(time.Now().UTC().Add(time.Hour).Format("2006-01-02T15:04")), nil, []string{done[0].ID, later.ID}},
		} {
			p := d.get("/apps/app_1/tasks" + tc.query)
			d.wantStatus("GET tasks"+tc.query, p, http.StatusOK)
			wantContains(t, "tasks"+tc.query, p.body, tc.want...)
			wantNotContains(t, "tasks"+tc.query, p.body, tc.not_...)
		}
		// A cursor that decodes but holds no valid task ID, as no page link
		// does.
		forged := base64.RawURLEncoding.EncodeToString(append(binary.BigEndian.AppendUint64(nil, 1), "<x>"...))
		for _, q := range []string{"?status=lost", "?event_type=a..b", "?from=yesterday", "?cursor=%%%", "?cursor=" + forged} {
			p := d.get("/apps/app_1/tasks" + strings.ReplaceAll(q, "%%%", "%21%21"))
			d.wantStatus("GET tasks"+q, p, http.StatusBadRequest)
			wantContains(t, "tasks"+q, p.body, "Invalid filter")
		}
	})
}

// TestUI_TasksPageCountLimit checks that a terminal state with CountLimit
// tasks or more shows "N+", and so does the total, while the live states
// show exact counts.
func TestUI_TasksPageCountLimit(t *testing.T) {
	t.Parallel()
	testEngineStores(t, func(t *testing.T, newStore func(testing.TB) tasks.Store) {
		d := newDash(t, newStore(t), dashOpts{
			funcs: map[string]tasks.Func{
				"ok":  func(context.Context, *tasks.Task) error { return nil },
				"bad": func(context.Context, *tasks.Task) error { return tasks.Permanent(errors.New("boom")) },
			},
			handler: &dashboard.Config{Keys: map[string][]string{keyApp1: {"app_1"}}, CountLimit: 2},
		})
		ctx := context.Background()
		want := map[string]tasks.State{"ok": tasks.StateCompleted, "bad": tasks.StateFailed}
		for _, et := range []string{"ok", "ok", "ok", "bad", "bad"} { // above the limit, at it
			tk := enqueue(t, d.e, tasks.NewTask{EventType: et, Data: json.RawMessage(`{}`)})
			waitState(t, d.e, tk.ID, want[et])
		}
		for range 3 { // live: exact, whatever the limit
			enqueue(t, d.e, tasks.NewTask{EventType: "ok", RunAt: time.Now().Add(time.Hour)})
		}
		canceled := enqueue(t, d.e, tasks.NewTask{EventType: "ok", RunAt: time.Now().Add(time.Hour)})
		if _, err := d.e.Cancel(ctx, canceled.ID); err != nil { // below it
			t.Fatal(err)
		}
		d.login(keyApp1)
		p := d.get("/apps/app_1/tasks")
		d.wantStatus("GET tasks", p, http.StatusOK)
		wantContains(t, "the tasks page", p.body,
			`<span class="n" title="8 or more">8+</span> <span class="label">all</span>`,
			`<span class="n">3</span> <span class="label">scheduled</span>`,
			`<span class="n" title="2 or more">2+</span> <span class="label">completed</span>`,
			`<span class="n" title="2 or more">2+</span> <span class="label">failed</span>`,
			`<span class="n">1</span> <span class="label">canceled</span>`,
		)
	})
}

func TestUI_TasksPaging(t *testing.T) {
	t.Parallel()
	d := newDash(t, tasks.NewMemoryStore(), dashOpts{})
	var all []string
	for range 55 {
		all = append(all, enqueue(t, d.e, tasks.NewTask{EventType: "x", RunAt: time.Now().Add(time.Hour)}).ID)
	}
	d.login(keyApp1)
	p := d.get("/apps/app_1/tasks?status=scheduled")
	next := regexp.MustCompile(`<a href="([^"]+)" rel="next">`).FindStringSubmatch(p.body)
	if next == nil {
		t.Fatalf("the first page of 55 tasks has no next page link")
	}
	wantContains(t, "the first page", p.body, all[54], all[5])
	wantNotContains(t, "the first page", p.body, all[4]+`"`)
	href := html.UnescapeString(next[1])
	if !strings.Contains(href, "status=scheduled") || !strings.HasPrefix(href, uiPrefix+"/apps/app_1/tasks?") {
		t.Errorf("next page link %q: want the same filters under /ui/apps/app_1/tasks", href)
	}
	req, _ := http.NewRequest(http.MethodGet, d.srv.URL+href, nil)
	p2 := d.send(d.client, req)
	d.wantStatus("GET the next page", p2, http.StatusOK)
	wantContains(t, "the second page", p2.body, all[0], all[4], "First page")
	wantNotContains(t, "the second page", p2.body, all[5]+`"`, `rel="next"`)
}

func TestUI_TaskPage(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, func(w http.ResponseWriter) {
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, `{"received":"<yes>"}`)
	})
	d := newDash(t, tasks.NewMemoryStore(), dashOpts{cfg: &tasks.Config{Webhooks: &tasks.WebhookConfig{AllowNetworks: loopback}}})
	ep := createEndpoint(t, d.e, tasks.NewEndpoint{URL: rc.URL, EnabledEvents: []string{"order.paid"}})
	xss := `{"name":"<script>alert('x')</script>","img":"\"><img src=x onerror=alert(1)>"}`
	tk := enqueue(t, d.e, tasks.NewTask{EventType: "order.paid", Data: json.RawMessage(xss)})
	waitState(t, d.e, tk.ID, tasks.StateCompleted)
	d.login(keyApp1)

	p := d.get(taskPath(tk.ID))
	d.wantStatus("GET the task", p, http.StatusOK)
	wantContains(t, "the task page", p.body,
		tk.ID, "order.paid", `class="badge state-completed"`,
		// data, pretty-printed and escaped
		`&#34;name&#34;: &#34;&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&#34;`,
		`&lt;img src=x onerror=alert(1)&gt;`,
		// the timeline and the attempt
		"Created", "Attempt 1", "Completed",
		`<td class="status-code">202</td>`, ep.ID,
		`&#34;received&#34;:&#34;&lt;yes&gt;&#34;`,
		// a completed task can be replayed, not canceled or rescheduled
		`/tasks/`+tk.ID+`/replay"`,
	)
	wantNotContains(t, "the task page", p.body, "<script>", "<img", `/cancel"`, `/reschedule"`)

	scheduled := enqueue(t, d.e, tasks.NewTask{EventType: "order.paid", RunAt: time.Now().Add(time.Hour)})
	p = d.get(taskPath(scheduled.ID))
	wantContains(t, "a scheduled task's page", p.body, "No attempt yet.", "Next attempt", `/cancel"`, `/reschedule"`,
		`type="datetime-local"`, `<label for="run-at">Run at</label>`, `<label for="time-zone">Time zone</label>`)

	for _, path := range []string{taskPath("00000000-0000-0000-0000-000000000000"), taskPath("bad%20id"), "/apps/app_1/tasks/" + strings.Repeat("a", 300)} {
		d.wantStatus("GET "+path, d.get(path), http.StatusNotFound)
	}
	// A task of another app is not found either.
	other := enqueue(t, d.e, tasks.NewTask{AppID: "app_2", EventType: "order.paid", RunAt: time.Now().Add(time.Hour)})
	d.wantStatus("GET another app's task", d.get(taskPath(other.ID)), http.StatusNotFound)
}

func TestUI_CSRF(t *testing.T) {
	t.Parallel()
	d := newDash(t, tasks.NewMemoryStore(), dashOpts{})
	tk := enqueue(t, d.e, tasks.NewTask{EventType: "x", RunAt: time.Now().Add(time.Hour)})
	d.login(keyApp1)
	token := d.csrf(taskPath(tk.ID))
	cancelPath := taskPath(tk.ID) + "/cancel"

	for _, tc := range []struct {
		name  string
		form  url.Values
		edits []func(*http.Request)
	}{
		{"NoToken", url.Values{}, nil},
		{"WrongToken", url.Values{"csrf": {"AAAA" + token[4:]}}, nil},
		{"ForeignOrigin", url.Values{"csrf": {token}}, []func(*http.Request){header("Sec-Fetch-Site", ""), header("Origin", "http://evil.example")}},
		{"CrossSite", url.Values{"csrf": {token}}, []func(*http.Request){header("Sec-Fetch-Site", "cross-site"), header("Origin", "http://evil.example")}},
		{"SameSite", url.Values{"csrf": {token}}, []func(*http.Request){header("Sec-Fetch-Site", "same-site"), header("Origin", "http://other.localhost")}},
		{"NoSession", url.Values{"csrf": {token}}, []func(*http.Request){header("Cookie", "")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := d.with(t)
			edits := tc.edits
			if tc.name == "NoSession" {
				// Another browser, without the cookie.
				req, _ := http.NewRequest(http.MethodPost, d.srv.URL+uiPrefix+cancelPath, strings.NewReader(tc.form.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set("Origin", d.srv.URL)
				p := d.send(d.newClient(), req)
				d.wantStatus("POST cancel without a session", p, http.StatusForbidden)
				return
			}
			p := d.post(cancelPath, tc.form, edits...)
			d.wantStatus("POST cancel", p, http.StatusForbidden)
			wantContains(t, "the refusal", p.body, "Refused")
		})
	}
	if got, _ := d.e.Get(context.Background(), tk.ID); got.State != tasks.StateScheduled {
		t.Fatalf("after refused cancels: task is %s, want scheduled", got.State)
	}
	// A login from another site is refused too.
	p := d.post("/login", url.Values{"key": {keyApp1}}, header("Sec-Fetch-Site", "cross-site"), header("Origin", "http://evil.example"))
	d.wantStatus("POST /login from another site", p, http.StatusForbidden)

	p = d.post(cancelPath, url.Values{"csrf": {token}})
	if p.status != http.StatusSeeOther || p.location() != uiPrefix+taskPath(tk.ID)+"?done=canceled" {
		t.Fatalf("POST cancel with the token: got %d to %q, want 303 to the task", p.status, p.location())
	}
	if got, _ := d.e.Get(context.Background(), tk.ID); got.State != tasks.StateCanceled {
		t.Fatalf("after the cancel: task is %s, want canceled", got.State)
	}
	// Another session's token does not fit this one.
	other := &dash{t: t, e: d.e, srv: d.srv}
	other.client = other.newClient()
	other.login(keyApp1)
	tk2 := enqueue(t, d.e, tasks.NewTask{EventType: "x", RunAt: time.Now().Add(time.Hour)})
	p = other.post(taskPath(tk2.ID)+"/cancel", url.Values{"csrf": {token}})
	other.wantStatus("POST cancel with another session's token", p, http.StatusForbidden)
}

func TestUI_TaskActions(t *testing.T) {
	t.Parallel()
	d := newDash(t, tasks.NewMemoryStore(), dashOpts{funcs: map[string]tasks.Func{
		"x":   func(context.Context, *tasks.Task) error { return nil },
		"bad": func(context.Context, *tasks.Task) error { return tasks.Permanent(errors.New("nope")) },
	}})
	ctx := context.Background()
	d.login(keyApp1)

	t.Run("Cancel", func(t *testing.T) {
		d := d.with(t)
		tk := enqueue(t, d.e, tasks.NewTask{EventType: "x", RunAt: time.Now().Add(time.Hour)})
		p := d.act(taskPath(tk.ID), taskPath(tk.ID)+"/cancel", nil)
		d.wantStatus("POST cancel", p, http.StatusSeeOther)
		if got, _ := d.e.Get(ctx, tk.ID); got.State != tasks.StateCanceled {
			t.Errorf("after cancel: %s, want canceled", got.State)
		}
		p = d.get(taskPath(tk.ID) + "?done=canceled")
		wantContains(t, "the task after cancel", p.body, "The task is canceled.", `class="badge state-canceled"`)
	})

	t.Run("Replay", func(t *testing.T) {
		d := d.with(t)
		tk := enqueue(t, d.e, tasks.NewTask{EventType: "bad"})
		waitState(t, d.e, tk.ID, tasks.StateFailed)
		p := d.act(taskPath(tk.ID), taskPath(tk.ID)+"/replay", nil)
		d.wantStatus("POST replay", p, http.StatusSeeOther)
		got, _ := d.e.Get(ctx, tk.ID)
		if got.State.Terminal() && got.Attempts < 2 {
			t.Errorf("after replay: %s with %d attempts, want it run again", got.State, got.Attempts)
		}
		waitState(t, d.e, tk.ID, tasks.StateFailed)
		if as, _ := d.e.Attempts(ctx, tk.ID); len(as) != 2 {
			t.Errorf("after replay: %d attempts, want 2", len(as))
		}
	})

	t.Run("Reschedule", func(t *testing.T) {
		d := d.with(t)
		tk := enqueue(t, d.e, tasks.NewTask{EventType: "x", RunAt: time.Now().Add(time.Hour)})
		berlin, _ := time.LoadLocation("Europe/Berlin")
		want := time.Now().In(berlin).Add(48 * time.Hour).Truncate(time.Second)
		p := d.act(taskPath(tk.ID), taskPath(tk.ID)+"/reschedule", url.Values{
			"run_at": {want.Format("2006-01-02T15:04:05")}, "time_zone": {"Europe/Berlin"}})
		d.wantStatus("POST reschedule", p, http.StatusSeeOther)
		got, _ := d.e.Get(ctx, tk.ID)
		if got.ScheduledRunTime == nil || !got.ScheduledRunTime.Equal(want) {
			t.Errorf("after reschedule: ScheduledRunTime %v, want %v", got.ScheduledRunTime, want.UTC())
		}
		for _, tc := range []struct {
			form url.Values
			want int
		}{
			{url.Values{"run_at": {"tomorrow"}}, http.StatusUnprocessableEntity},
			{url.Values{"run_at": {want.Format("2006-01-02T15:04")}, "time_zone": {"Mars/Olympus"}}, http.StatusUnprocessableEntity},
			{url.Values{"run_at": {want.Format("2006-01-02T15:04")}, "time_zone": {"Local"}}, http.StatusUnprocessableEntity},
			{url.Values{"run_at": {want.Format("2006-01-02T15:04")}, "time_zone": {strings.Repeat("Europe/", 40)}}, http.StatusUnprocessableEntity},
			{url.Values{"run_at": {time.Now().UTC().AddDate(2, 0, 0).Format("2006-01-02T15:04")}}, http.StatusUnprocessableEntity},
		} {
			p := d.act(taskPath(tk.ID), taskPath(tk.ID)+"/reschedule", tc.form)
			d.wantStatus("POST reschedule "+tc.form.Encode(), p, tc.want)
		}
		done := enqueue(t, d.e, tasks.NewTask{EventType: "x"})
		waitState(t, d.e, done.ID, tasks.StateCompleted)
		p = d.act(taskPath(done.ID), taskPath(done.ID)+"/reschedule", url.Values{"run_at": {want.Format("2006-01-02T15:04")}})
		d.wantStatus("POST reschedule of a completed task", p, http.StatusConflict)
		p = d.act(taskPath(done.ID), taskPath(done.ID)+"/cancel", nil)
		d.wantStatus("POST cancel of a completed task", p, http.StatusConflict)
	})

	t.Run("OtherAppIsNotFound", func(t *testing.T) {
		d := d.with(t)
		tk := enqueue(t, d.e, tasks.NewTask{AppID: "app_2", EventType: "x", RunAt: time.Now().Add(time.Hour)})
		token := d.csrf("/apps/app_1/tasks")
		for _, path := range []string{"/apps/app_1/tasks/" + tk.ID + "/cancel", "/apps/app_2/tasks/" + tk.ID + "/cancel"} {
			p := d.post(path, url.Values{"csrf": {token}})
			d.wantStatus("POST "+path, p, http.StatusNotFound)
		}
		if got, _ := d.e.Get(ctx, tk.ID); got.State != tasks.StateScheduled {
			t.Errorf("another app's task: %s, want scheduled", got.State)
		}
	})
}

func TestUI_Endpoints(t *testing.T) {
	t.Parallel()
	failing := newReceiver(t, status(http.StatusInternalServerError))
	d := newDash(t, tasks.NewMemoryStore(), dashOpts{cfg: &tasks.Config{Webhooks: &tasks.WebhookConfig{AllowNetworks: loopback}}})
	ctx := context.Background()
	d.login(keyApp1)
	const path = "/apps/app_1/endpoints"

	p := d.act(path, path, url.Values{"url": {failing.URL}, "description": {"<i>orders</i>"}, "enabled_events": {"order.paid, order.sent"}})
	d.wantStatus("POST create endpoint", p, http.StatusCreated)
	eps, _ := d.e.Endpoints(ctx, "app_1")
	if len(eps) != 1 {
		t.Fatalf("after create: %d endpoints, want 1", len(eps))
	}
	ep := eps[0]
	wantContains(t, "the page after create", p.body, "shown this once", "&lt;i&gt;orders&lt;/i&gt;", "order.paid, order.sent")
	wantContains(t, "the page after create", html.UnescapeString(p.body), ep.Secret)
	if got := d.get(path); strings.Contains(html.UnescapeString(got.body), ep.Secret) {
		t.Errorf("the endpoints page shows the secret again")
	}
	p = d.act(path, path, url.Values{"url": {"ftp://example.com"}})
	d.wantStatus("POST create endpoint with a bad URL", p, http.StatusUnprocessableEntity)
	wantContains(t, "the refusal", p.body, "Invalid url", `value="ftp://example.com"`)

	// A failed delivery makes the failure rate.
	tk := enqueue(t, d.e, tasks.NewTask{EventType: "order.paid", MaxAttempts: 1})
	waitState(t, d.e, tk.ID, tasks.StateFailed)
	wantContains(t, "the endpoints page", d.get(path).body, `<strong class="rate">100.0%</strong> (1 of 1)`)

	p = d.act(path, path+"/"+ep.ID+"/disable", nil)
	if p.status != http.StatusSeeOther || p.location() != uiPrefix+path+"?done=disabled" {
		t.Fatalf("POST disable: got %d to %q", p.status, p.location())
	}
	if got, _ := d.e.Endpoint(ctx, ep.ID); got.Status != tasks.EndpointInactive {
		t.Errorf("after disable: %s, want inactive", got.Status)
	}
	wantContains(t, "the page after disable", d.get(path+"?done=disabled").body, "The endpoint is disabled", "/"+ep.ID+`/enable"`)
	d.wantStatus("POST enable", d.act(path, path+"/"+ep.ID+"/enable", nil), http.StatusSeeOther)
	if got, _ := d.e.Endpoint(ctx, ep.ID); got.Status != tasks.EndpointActive {
		t.Errorf("after enable: %s, want active", got.Status)
	}

	p = d.act(path, path+"/"+ep.ID+"/rotate", nil)
	d.wantStatus("POST rotate", p, http.StatusOK)
	rotated, _ := d.e.Endpoint(ctx, ep.ID)
	if rotated.Secret == ep.Secret {
		t.Fatalf("after rotate: the secret did not change")
	}
	wantContains(t, "the page after rotate", html.UnescapeString(p.body), rotated.Secret, "previous secret keeps signing")
	wantNotContains(t, "the page after rotate", html.UnescapeString(p.body), ep.Secret)
	if strings.Contains(html.UnescapeString(d.get(path).body), rotated.Secret) {
		t.Errorf("the endpoints page shows the rotated secret again")
	}

	// Another app's endpoint is not found.
	foreign := createEndpoint(t, d.e, tasks.NewEndpoint{AppID: "app_2", URL: failing.URL})
	d.wantStatus("POST disable another app's endpoint", d.act(path, path+"/"+foreign.ID+"/disable", nil), http.StatusNotFound)
}

func TestUI_Schedules(t *testing.T) {
	t.Parallel()
	d := newDash(t, tasks.NewMemoryStore(), dashOpts{})
	ctx := context.Background()
	p0, err := d.e.CreatePeriodic(ctx, tasks.NewPeriodic{AppID: "app_1", Spec: "@daily", EventType: "x"})
	if err != nil {
		t.Fatal(err)
	}
	d.login(keyApp1)
	const path = "/apps/app_1/schedules"
	p := d.get(path)
	d.wantStatus("GET schedules", p, http.StatusOK)
	wantContains(t, "the schedules page", p.body, "@daily", p0.NextRunAt.UTC().Format("2006-01-02 15:04:05"), "/"+p0.ID+`/pause"`)

	d.wantStatus("POST pause", d.act(path, path+"/"+p0.ID+"/pause", nil), http.StatusSeeOther)
	if got, _ := d.e.Periodic(ctx, p0.ID); got.Status != tasks.PeriodicPaused || got.NextRunAt != nil {
		t.Errorf("after pause: %s, next %v; want paused, none", got.Status, got.NextRunAt)
	}
	wantContains(t, "the page after pause", d.get(path+"?done=paused").body, "The periodic task is paused.", "/"+p0.ID+`/resume"`)
	d.wantStatus("POST resume", d.act(path, path+"/"+p0.ID+"/resume", nil), http.StatusSeeOther)
	if got, _ := d.e.Periodic(ctx, p0.ID); got.Status != tasks.PeriodicActive || got.NextRunAt == nil {
		t.Errorf("after resume: %s, next %v; want active, a next run", got.Status, got.NextRunAt)
	}
	foreign, err := d.e.CreatePeriodic(ctx, tasks.NewPeriodic{AppID: "app_2", Spec: "@daily", EventType: "x"})
	if err != nil {
		t.Fatal(err)
	}
	d.wantStatus("POST pause another app's periodic task", d.act(path, path+"/"+foreign.ID+"/pause", nil), http.StatusNotFound)
}

func TestUI_Limits(t *testing.T) {
	t.Parallel()
	d := newDash(t, tasks.NewMemoryStore(), dashOpts{})
	ctx := context.Background()
	if _, err := d.e.SetLimit(ctx, tasks.Limit{AppID: "app_1", Key: "partner.api", Rate: 20, Concurrency: 3}); err != nil {
		t.Fatal(err)
	}
	d.login(keyApp1)
	const path = "/apps/app_1/limits"
	p := d.get(path)
	d.wantStatus("GET limits", p, http.StatusOK)
	wantContains(t, "the limits page", p.body, "partner.api", "20/s, burst 20", "/limits/pause\"", "Flow control")
	d.wantStatus("POST pause", d.act(path, path+"/pause", url.Values{"key": {"partner.api"}}), http.StatusSeeOther)
	if l, _ := d.e.Limit(ctx, "app_1", "partner.api"); !l.Paused || l.Rate != 20 || l.Concurrency != 3 {
		t.Errorf("after pause: %+v, want paused, its limits kept", l)
	}
	wantContains(t, "the page after pause", d.get(path+"?done=key-paused").body, "The flow key is paused", "/limits/resume\"")
	d.wantStatus("POST resume", d.act(path, path+"/resume", url.Values{"key": {"partner.api"}}), http.StatusSeeOther)
	if l, _ := d.e.Limit(ctx, "app_1", "partner.api"); l.Paused {
		t.Errorf("after resume: %+v, want not paused", l)
	}
	d.wantStatus("POST pause of a key without a limit", d.act(path, path+"/pause", url.Values{"key": {"nope"}}), http.StatusNotFound)
}

func TestUI_Unauthenticated(t *testing.T) {
	t.Parallel()
	d := newDash(t, tasks.NewMemoryStore(), dashOpts{handler: &dashboard.Config{Unauthenticated: true}})
	tk := enqueue(t, d.e, tasks.NewTask{AppID: "any_app", EventType: "x", RunAt: time.Now().Add(time.Hour)})
	p := d.get("/apps/any_app/tasks")
	d.wantStatus("GET without a login", p, http.StatusOK)
	wantNotContains(t, "the open dashboard", p.body, "Log out")
	// Its changes still need the session's token and this origin.
	path := "/apps/any_app/tasks/" + tk.ID
	d.wantStatus("POST cancel without a token", d.post(path+"/cancel", url.Values{}), http.StatusForbidden)
	d.wantStatus("POST cancel", d.act(path, path+"/cancel", nil), http.StatusSeeOther)
}

func TestUI_PanicsOnBadConfig(t *testing.T) {
	t.Parallel()
	e := newEngine(t, tasks.NewMemoryStore(), nil)
	for _, cfg := range []*dashboard.Config{
		nil,
		{Keys: map[string][]string{"k": {"a"}}, Unauthenticated: true},
		{Keys: map[string][]string{"": {"a"}}},
		{Keys: map[string][]string{"k": nil}},
		{Keys: map[string][]string{"k": {"bad app"}}},
		{Keys: map[string][]string{"k": {"a"}}, Horizon: -1},
		{Keys: map[string][]string{"k": {"a"}}, CountLimit: -1},
	} {
		func() {
			defer func() {
				if v := recover(); v == nil || !strings.HasPrefix(v.(string), "tasks: dashboard.New: ") {
					t.Errorf("New(%+v): got panic %v, want one starting \"tasks: dashboard.New: \"", cfg, v)
				}
			}()
			dashboard.New(e, cfg)
		}()
	}
	// A nil engine (NewEngine's answer with an error) is refused at once,
	// not on the first request that needs it.
	defer func() {
		if v, ok := recover().(string); !ok || v != "tasks: dashboard.New: nil engine" {
			t.Errorf("New(nil, …): got panic %v, want \"tasks: dashboard.New: nil engine\"", v)
		}
	}()
	dashboard.New(nil, &dashboard.Config{Unauthenticated: true})
}
