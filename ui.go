package tasks

// The web dashboard: server-rendered pages of an app's tasks, endpoints and
// periodic tasks, with the actions that steer them. Standard library only:
// html/template pages and one CSS file, embedded; no script at all.

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

//go:embed ui
var uiFiles embed.FS

// Dashboard settings.
const (
	// sessionCookie names the cookie that holds a dashboard session.
	sessionCookie = "tasks_session"
	// sessionTTL is how long a session lasts after its login.
	sessionTTL = 12 * time.Hour
	// maxFormBytes bounds the body of a dashboard form.
	maxFormBytes = 64 << 10
	// uiPageSize is the number of tasks a page lists.
	uiPageSize = 50
	// chartMinutes is the span of the chart, in one-minute bars.
	chartMinutes = 60
	// failureWindow is the span of an endpoint's failure rate.
	failureWindow = 24 * time.Hour
	// maxDataShown bounds the data a task page shows.
	maxDataShown = 64 << 10
)

// contentSecurityPolicy lets a page load only the dashboard's style sheet
// and images: no script, no inline style, no frame, no form elsewhere.
const contentSecurityPolicy = "default-src 'none'; style-src 'self'; img-src 'self' data:; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// UI returns the engine's web dashboard, an http.Handler to mount under a
// prefix with [http.StripPrefix]:
//
//	mux.Handle("/ui/", http.StripPrefix("/ui", eng.UI(cfg)))
//
// It takes the HandlerConfig of the API, so that one configuration serves
// both with the same keys: a user logs in by pasting an API key, and sees
// the apps that key grants (for a key that grants every app, the user types
// an app ID). Horizon bounds a reschedule as it bounds the API's, and
// Logger receives the errors behind 5xx pages; MaxBodyBytes is unused, as
// forms are small. With Unauthenticated there is no login.
//
// For each app it shows its tasks by status with their counts, filters
// (status, event type, creation time) and pages; a chart of the tasks ended
// per minute in the last hour; a task's data, timeline and attempts, with
// buttons to cancel, replay and reschedule it; its webhook endpoints with
// their failure rates in the last 24 hours, to create, disable, enable and
// rotate the secret of (a secret is shown once); and its periodic tasks, to
// pause and resume. Times are shown, and read, in UTC unless a form says
// otherwise.
//
// A login sets a session cookie (HttpOnly, SameSite=Strict, Secure over
// TLS, Path the mount prefix) that holds no key: a random session ID, its
// expiry (12 hours) and an HMAC of both keyed by a digest of the API key, so
// that a session serves every process that has the key, survives restarts,
// and ends when the key is removed. Logging out clears the cookie and
// revokes the session in the store ([Store.RevokeSession]), so that no
// dashboard on the store, in any process, before a restart or after, takes
// the cookie again. Logins are throttled per client address (the
// connection's) and for all clients together: too many wrong keys get 429
// Too Many Requests with Retry-After, for a while; a right key costs
// nothing. Every request
// that changes state is a POST that must come from the dashboard's own
// origin (Sec-Fetch-Site or Origin, see [http.CrossOriginProtection]) and
// carry the session's CSRF token; any other gets 403. Pages carry a strict
// Content-Security-Policy (no script at all), X-Content-Type-Options
// nosniff, Referrer-Policy no-referrer and Cache-Control no-store, and
// html/template escapes every value shown.
//
// UI panics on the configurations that [Engine.Handler] refuses. The
// dashboard is safe for concurrent use.
func (e *Engine) UI(cfg *HandlerConfig) http.Handler {
	var c HandlerConfig
	if cfg != nil {
		c = *cfg
	}
	checkHandlerConfig("UI", &c)
	u := &ui{
		e:            e,
		mux:          http.NewServeMux(),
		open:         c.Unauthenticated,
		horizon:      c.Horizon,
		log:          c.Logger,
		now:          time.Now,
		storeTimeout: apiStoreTimeout,
		origin:       http.NewCrossOriginProtection(),
		logins:       newLoginThrottle(),
	}
	if u.horizon == 0 {
		u.horizon = DefaultHorizon
	}
	if u.log == nil {
		u.log = e.log
	}
	u.keys = parseKeys("UI", c.Keys)
	for i := range u.keys {
		u.macKeys = append(u.macKeys, sessionKey(u.keys[i].digest[:]))
	}
	if u.open {
		var secret [32]byte
		rand.Read(secret[:])
		u.macKeys = [][]byte{sessionKey(secret[:])}
	}
	u.pages = uiPages()

	u.mux.HandleFunc("GET /ui.css", u.handleCSS)
	u.mux.HandleFunc("GET /login", u.handleLoginForm)
	u.mux.HandleFunc("POST /login", u.handleLogin)
	u.action("POST /logout", u.handleLogout)
	u.page("GET /{$}", u.handleHome)
	u.appPage("GET /apps/{app}/{$}", func(w http.ResponseWriter, r *http.Request, v *view) error {
		return u.redirect(w, r, v.Base+"/apps/"+v.App+"/tasks")
	})
	u.appPage("GET /apps/{app}/tasks", u.handleTasks)
	u.appPage("GET /apps/{app}/tasks/{id}", u.handleTask)
	u.appAction("POST /apps/{app}/tasks/{id}/cancel", u.handleCancel)
	u.appAction("POST /apps/{app}/tasks/{id}/replay", u.handleReplay)
	u.appAction("POST /apps/{app}/tasks/{id}/reschedule", u.handleReschedule)
	u.appPage("GET /apps/{app}/endpoints", u.handleEndpoints)
	u.appAction("POST /apps/{app}/endpoints", u.handleCreateEndpoint)
	u.appAction("POST /apps/{app}/endpoints/{id}/enable", u.endpointStatus(EndpointActive))
	u.appAction("POST /apps/{app}/endpoints/{id}/disable", u.endpointStatus(EndpointInactive))
	u.appAction("POST /apps/{app}/endpoints/{id}/rotate", u.handleRotate)
	u.appPage("GET /apps/{app}/schedules", u.handleSchedules)
	u.appAction("POST /apps/{app}/schedules/{id}/pause", u.periodicStatus(PeriodicPaused))
	u.appAction("POST /apps/{app}/schedules/{id}/resume", u.periodicStatus(PeriodicActive))
	u.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { u.renderError(w, r, errPageNotFound) })
	return u
}

// ui serves the dashboard of one engine.
type ui struct {
	e            *Engine
	mux          *http.ServeMux
	keys         []apiKey
	macKeys      [][]byte // signs sessions: one per key, or the open one
	open         bool     // Unauthenticated
	horizon      time.Duration
	log          *slog.Logger
	now          func() time.Time
	storeTimeout time.Duration
	origin       *http.CrossOriginProtection
	pages        map[string]*template.Template
	logins       *loginThrottle
}

// sessionKey derives the key that signs the sessions of an API key from
// its digest (or, for the open dashboard, from a random secret).
func sessionKey(secret []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("taskwheel ui session key v1"))
	return m.Sum(nil)
}

// ---- requests

// view is what every page shows, and what a request knows once it is
// authenticated.
type view struct {
	Base    string // the mount prefix: "" or "/ui"
	App     string // the app, on an app's pages
	Nav     string // the section: tasks, endpoints or schedules
	CSRF    string // the session's CSRF token
	Flash   string // what the last action did
	Open    bool   // no login
	Title   string
	Page    any
	session *session
}

// uiError is an error page: its status and message.
type uiError struct {
	status int
	msg    string
}

func (e *uiError) Error() string { return e.msg }

func uiErrorf(status int, format string, args ...any) *uiError {
	return &uiError{status, fmt.Sprintf(format, args...)}
}

// Errors shown as they are.
var (
	errPageNotFound    = uiErrorf(http.StatusNotFound, "There is no such page.")
	errAppNotGranted   = uiErrorf(http.StatusNotFound, "There is no such app for your API key.")
	errUITaskNotFound  = uiErrorf(http.StatusNotFound, "There is no task with this ID in this app.")
	errUIEndpoint      = uiErrorf(http.StatusNotFound, "There is no endpoint with this ID in this app.")
	errUIPeriodic      = uiErrorf(http.StatusNotFound, "There is no periodic task with this ID in this app.")
	errCrossOrigin     = uiErrorf(http.StatusForbidden, "Refused: this request came from another site.")
	errBadCSRF         = uiErrorf(http.StatusForbidden, "Refused: the form's security token is missing or wrong. Reload the page and try again.")
	errNoSession       = uiErrorf(http.StatusForbidden, "Your session has ended. Log in again.")
	errUIUnavailable   = uiErrorf(http.StatusServiceUnavailable, "The task store is unavailable. Try again later.")
	errUIInternal      = uiErrorf(http.StatusInternalServerError, "Internal error.")
	errUIBadMountPoint = uiErrorf(http.StatusNotFound, "The dashboard is mounted at a path it cannot link to.")
)

// pageFunc serves an authenticated request. An error it returns becomes the
// answer.
type pageFunc func(w http.ResponseWriter, r *http.Request, v *view) error

// ServeHTTP sets the security headers of every answer, checks the path and
// serves the request, turning a panic into a 500 page.
func (u *ui) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			u.log.ErrorContext(r.Context(), "tasks: UI handler panicked",
				"method", r.Method, "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
			u.renderError(w, r, errUIInternal)
		}
	}()
	if !strings.HasPrefix(r.URL.Path, "/") { // mounted with StripPrefix("/ui/")
		r2 := new(http.Request)
		*r2 = *r
		u2 := *r.URL
		u2.Path, u2.RawPath = "/"+u2.Path, ""
		r2.URL = &u2
		r = r2
	}
	if _, ok := mountBase(r); !ok {
		u.renderError(w, r, errUIBadMountPoint)
		return
	}
	// ServeMux would redirect an unclean path to its clean form, which
	// under StripPrefix loses the prefix: refuse it instead.
	if p := r.URL.EscapedPath(); p != cleanPath(p) {
		u.renderError(w, r, errPageNotFound)
		return
	}
	u.mux.ServeHTTP(w, r)
}

// safeBase matches a mount prefix that can go in links as it is.
var safeBase = regexp.MustCompile(`^(/[A-Za-z0-9_~-][A-Za-z0-9._~-]*)*$`)

// mountBase returns the prefix the dashboard is mounted under, which
// http.StripPrefix took off the request's path, and reports whether it is
// one that links can start with.
func mountBase(r *http.Request) (string, bool) {
	orig := r.URL.EscapedPath()
	if r.RequestURI != "" {
		ru, err := url.ParseRequestURI(r.RequestURI)
		if err != nil {
			return "", false
		}
		orig = ru.EscapedPath()
	}
	rest := r.URL.EscapedPath()
	if !strings.HasSuffix(orig, rest) {
		return "", false
	}
	base := strings.TrimSuffix(orig[:len(orig)-len(rest)], "/")
	return base, safeBase.MatchString(base)
}

// basePath is the request's mount prefix, or "" when mountBase refuses it
// (ServeHTTP then answers 404).
func basePath(r *http.Request) string {
	base, ok := mountBase(r)
	if !ok {
		return ""
	}
	return base
}

// newView returns the view of a request, before authentication.
func (u *ui) newView(r *http.Request) *view {
	return &view{Base: basePath(r), Open: u.open}
}

// page registers fn for a GET pattern behind authentication: a request
// without a session is sent to the login page.
func (u *ui) page(pattern string, fn pageFunc) {
	u.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		v := u.newView(r)
		s, err := u.session(r)
		if err != nil {
			u.renderError(w, r, err)
			return
		}
		if s == nil && u.open {
			s = u.newSession(w, r, 0)
		}
		if s == nil {
			http.Redirect(w, r, v.Base+"/login", http.StatusSeeOther)
			return
		}
		v.session, v.CSRF = s, s.csrf
		v.Flash = flashes[r.URL.Query().Get("done")]
		if err := fn(w, r, v); err != nil {
			u.renderError(w, r, err)
		}
	})
}

// action registers fn for a POST pattern behind the checks of a change: the
// request must come from this origin, have a session and carry its CSRF
// token.
func (u *ui) action(pattern string, fn pageFunc) {
	u.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		if err := u.origin.Check(r); err != nil {
			u.renderError(w, r, errCrossOrigin)
			return
		}
		v := u.newView(r)
		s, err := u.session(r)
		if err != nil {
			u.renderError(w, r, err)
			return
		}
		if s == nil {
			u.renderError(w, r, errNoSession)
			return
		}
		v.session, v.CSRF = s, s.csrf
		if err := parseForm(w, r); err != nil {
			u.renderError(w, r, err)
			return
		}
		token := r.PostForm.Get("csrf")
		if subtle.ConstantTimeCompare([]byte(token), []byte(s.csrf)) != 1 {
			u.renderError(w, r, errBadCSRF)
			return
		}
		if err := fn(w, r, v); err != nil {
			u.renderError(w, r, err)
		}
	})
}

// appPage is page for the pages of an app that the session's key grants.
func (u *ui) appPage(pattern string, fn pageFunc) { u.page(pattern, u.forApp(fn)) }

// appAction is action for the actions on an app that the session's key
// grants.
func (u *ui) appAction(pattern string, fn pageFunc) { u.action(pattern, u.forApp(fn)) }

// forApp checks the app of the path against the session's key.
func (u *ui) forApp(fn pageFunc) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, v *view) error {
		app := r.PathValue("app")
		if !validName(app) || v.session.key != nil && !v.session.key.grants(app) {
			return errAppNotGranted
		}
		v.App = app
		return fn(w, r, v)
	}
}

// parseForm reads a POST form of at most maxFormBytes.
func parseForm(w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return uiErrorf(http.StatusRequestEntityTooLarge, "The form is larger than %d bytes.", maxFormBytes)
		}
		return uiErrorf(http.StatusBadRequest, "The form could not be read.")
	}
	return nil
}

// storeCtx bounds the store calls of a request.
func (u *ui) storeCtx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), u.storeTimeout)
}

// redirect sends the browser, after a change, to the page at path (which
// starts with the mount prefix). It returns nil.
func (u *ui) redirect(w http.ResponseWriter, r *http.Request, path string) error {
	http.Redirect(w, r, path, http.StatusSeeOther)
	return nil
}

// flashes are the messages a page shows after an action redirected to it,
// by the value of its "done" parameter.
var flashes = map[string]string{
	"canceled":    "The task is canceled.",
	"cancel":      "Cancellation is requested: the running attempt is being stopped.",
	"replayed":    "The task will run again.",
	"rescheduled": "The task is rescheduled.",
	"enabled":     "The endpoint is enabled.",
	"disabled":    "The endpoint is disabled: it receives no deliveries until enabled.",
	"paused":      "The periodic task is paused.",
	"resumed":     "The periodic task is resumed.",
}

// ---- sessions

// session is a logged-in browser.
type session struct {
	key     *apiKey // nil on the open dashboard
	id      string  // random, base64url
	expires time.Time
	csrf    string
}

// sessionMAC signs a session's ID and expiry with key, from sessionKey.
func sessionMAC(key []byte, id string, expires int64) []byte {
	m := hmac.New(sha256.New, key)
	fmt.Fprintf(m, "session\x00%d\x00%s", expires, id)
	return m.Sum(nil)
}

// csrfToken is the CSRF token of a session, signed by key, from sessionKey.
func csrfToken(key []byte, id string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("csrf\x00" + id))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// newSession starts a session for the key u.keys[i] (on the open
// dashboard, i is 0 and there is no key), sets its cookie and returns it.
func (u *ui) newSession(w http.ResponseWriter, r *http.Request, i int) *session {
	var k *apiKey
	if !u.open {
		k = &u.keys[i]
	}
	b := make([]byte, 16)
	rand.Read(b)
	id := base64.RawURLEncoding.EncodeToString(b)
	expires := u.now().Add(sessionTTL).Unix()
	value := fmt.Sprintf("%d.%s.%s", expires, id,
		base64.RawURLEncoding.EncodeToString(sessionMAC(u.macKeys[i], id, expires)))
	http.SetCookie(w, u.cookie(r, value, int(sessionTTL/time.Second)))
	return &session{key: k, id: id, expires: time.Unix(expires, 0), csrf: csrfToken(u.macKeys[i], id)}
}

// cookie returns the session cookie with value; maxAge -1 deletes it.
func (u *ui) cookie(r *http.Request, value string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name:     sessionCookie,
		Value:    value,
		Path:     basePath(r) + "/",
		MaxAge:   maxAge,
		HttpOnly: true,
		Secure:   r.TLS != nil,
		SameSite: http.SameSiteStrictMode,
	}
}

// session returns the request's session, or nil if it has none that is
// valid: signed by a current key, not expired, not logged out. It reads
// the store for the logout.
func (u *ui) session(r *http.Request) (*session, error) {
	s := u.signedSession(r)
	if s == nil {
		return nil, nil
	}
	ctx, cancel := u.storeCtx(r)
	defer cancel()
	revoked, err := u.e.store.SessionRevoked(ctx, s.id)
	switch {
	case err != nil:
		return nil, fmt.Errorf("tasks: check session: %w", err)
	case revoked:
		return nil, nil
	}
	return s, nil
}

// signedSession returns the request's session if its cookie is signed by
// a current key and not expired, whether or not it was logged out.
func (u *ui) signedSession(r *http.Request) *session {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil
	}
	parts := strings.Split(c.Value, ".")
	if len(parts) != 3 {
		return nil
	}
	expires, err := strconv.ParseInt(parts[0], 10, 64)
	if err != nil || !u.now().Before(time.Unix(expires, 0)) || time.Unix(expires, 0).After(u.now().Add(sessionTTL)) {
		return nil
	}
	id := parts[1]
	got, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(id) != 22 {
		return nil
	}
	// Check the signature with every key, in constant time and without
	// stopping at a match, as findKey does.
	match := -1
	for i, mac := range u.macKeys {
		eq := subtle.ConstantTimeCompare(got, sessionMAC(mac, id, expires))
		match = subtle.ConstantTimeSelect(eq, i, match)
	}
	if match < 0 {
		return nil
	}
	s := &session{id: id, expires: time.Unix(expires, 0), csrf: csrfToken(u.macKeys[match], id)}
	if !u.open {
		s.key = &u.keys[match]
	}
	return s
}

// ---- login

type loginPage struct {
	Error string
}

func (u *ui) handleLoginForm(w http.ResponseWriter, r *http.Request) {
	v := u.newView(r)
	if s, _ := u.session(r); u.open || s != nil { // on an error, the form
		http.Redirect(w, r, v.Base+"/", http.StatusSeeOther)
		return
	}
	v.Title, v.Page = "Log in", &loginPage{}
	u.render(w, r, http.StatusOK, "login", v)
}

// handleLogin checks the API key of the login form and starts a session. A
// login, too, must come from this origin.
func (u *ui) handleLogin(w http.ResponseWriter, r *http.Request) {
	v := u.newView(r)
	if err := u.origin.Check(r); err != nil {
		u.renderError(w, r, errCrossOrigin)
		return
	}
	if u.open {
		http.Redirect(w, r, v.Base+"/", http.StatusSeeOther)
		return
	}
	attempt, wait := u.logins.attempt(r, u.now())
	if attempt == nil {
		secs := int((wait + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		u.renderError(w, r, uiErrorf(http.StatusTooManyRequests, "Too many login attempts. Try again in %d seconds.", secs))
		return
	}
	if err := parseForm(w, r); err != nil {
		u.renderError(w, r, err)
		return
	}
	i := findKey(u.keys, strings.TrimSpace(r.PostForm.Get("key")))
	if i < 0 {
		v.Title, v.Page = "Log in", &loginPage{Error: "This API key is not valid."}
		u.render(w, r, http.StatusUnauthorized, "login", v)
		return
	}
	attempt.refund()
	u.newSession(w, r, i)
	http.Redirect(w, r, v.Base+"/", http.StatusSeeOther)
}

func (u *ui) handleLogout(w http.ResponseWriter, r *http.Request, v *view) error {
	ctx, cancel := u.storeCtx(r)
	defer cancel()
	if err := u.e.store.RevokeSession(ctx, v.session.id, v.session.expires); err != nil {
		return fmt.Errorf("tasks: log out: %w", err)
	}
	http.SetCookie(w, u.cookie(r, "", -1))
	if u.open {
		return u.redirect(w, r, v.Base+"/")
	}
	return u.redirect(w, r, v.Base+"/login")
}

// ---- home: the app picker

type homePage struct {
	Apps  []string
	All   bool   // the key grants every app: type one
	Error string // about the typed app ID
	Typed string
}

func (u *ui) handleHome(w http.ResponseWriter, r *http.Request, v *view) error {
	p := &homePage{All: true}
	if v.session.key != nil {
		p.Apps, p.All = v.session.key.grantedApps()
	}
	if app := strings.TrimSpace(r.URL.Query().Get("app")); app != "" {
		if validName(app) && (v.session.key == nil || v.session.key.grants(app)) {
			return u.redirect(w, r, v.Base+"/apps/"+app+"/tasks")
		}
		p.Typed = app
		p.Error = fmt.Sprintf("Use an app ID of 1 to %d letters, digits and . _ : - that your key grants.", MaxIDLength)
	} else if len(p.Apps) == 1 && !p.All {
		return u.redirect(w, r, v.Base+"/apps/"+p.Apps[0]+"/tasks")
	}
	v.Title, v.Page = "Apps", p
	status := http.StatusOK
	if p.Error != "" {
		status = http.StatusBadRequest
	}
	u.render(w, r, status, "home", v)
	return nil
}

// ---- tasks

type tasksPage struct {
	Counts   []stateCount
	Total    int
	AllHref  string // the list without a status filter
	Chart    *chart
	Filter   taskFilter
	States   []State
	Tasks    []*Task
	Next     string // the next page's URL, or ""
	First    string // the first page's URL, when this is not it
	Filtered bool
}

type stateCount struct {
	State State
	N     int
	Href  string
	Here  bool // the status filter selects it
}

// taskFilter is the query of the task list, as the form shows it.
type taskFilter struct {
	Status    string
	EventType string
	From      string // datetime-local, UTC
	To        string
	Error     string
}

// datetimeLayouts are the forms of a datetime-local input's value.
var datetimeLayouts = []string{"2006-01-02T15:04", "2006-01-02T15:04:05", "2006-01-02T15:04:05.999999999"}

// parseLocal reads a datetime-local value in loc.
func parseLocal(s string, loc *time.Location) (time.Time, error) {
	for _, layout := range datetimeLayouts {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a date and time such as 2026-12-01T10:00", s)
}

// listParams reads the filters of the task list into p.
func (f *taskFilter) listParams(q url.Values, p *ListParams) error {
	f.Status, f.EventType = q.Get("status"), strings.TrimSpace(q.Get("event_type"))
	f.From, f.To = q.Get("from"), q.Get("to")
	if f.Status != "" {
		if !State(f.Status).Valid() {
			return fmt.Errorf("unknown status %q", f.Status)
		}
		p.States = []State{State(f.Status)}
	}
	if f.EventType != "" {
		if err := validateEventType(f.EventType); err != nil {
			return fmt.Errorf("event type: %s", err.(*ValidationError).Message)
		}
		p.EventType = f.EventType
	}
	for _, b := range []struct {
		name, s string
		dst     *time.Time
	}{{"created from", f.From, &p.CreatedSince}, {"created before", f.To, &p.CreatedBefore}} {
		if b.s == "" {
			continue
		}
		t, err := parseLocal(b.s, time.UTC)
		if err != nil {
			return fmt.Errorf("%s: %v", b.name, err)
		}
		*b.dst = t
	}
	if c := q.Get("cursor"); c != "" {
		if _, id, err := decodeCursor(c); err != nil || !validName(id) {
			return errors.New("the page link is malformed")
		}
		p.Cursor = c
	}
	return nil
}

// query is the URL query of f, with cursor if it is not "".
func (f *taskFilter) query(status, cursor string) string {
	q := url.Values{}
	for k, v := range map[string]string{"status": status, "event_type": f.EventType, "from": f.From, "to": f.To, "cursor": cursor} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if len(q) == 0 {
		return ""
	}
	return "?" + q.Encode()
}

func (u *ui) handleTasks(w http.ResponseWriter, r *http.Request, v *view) error {
	v.Title, v.Nav = "Tasks", "tasks"
	p := &tasksPage{States: states}
	v.Page = p
	list := ListParams{AppID: v.App, Limit: uiPageSize}
	status := http.StatusOK
	if err := p.Filter.listParams(r.URL.Query(), &list); err != nil {
		p.Filter.Error = err.Error()
		status = http.StatusBadRequest
	}
	p.Filtered = p.Filter.query(p.Filter.Status, "") != ""
	ctx, cancel := u.storeCtx(r)
	defer cancel()
	counts, err := u.e.store.CountTasks(ctx, v.App)
	if err != nil {
		return err
	}
	here := v.Base + "/apps/" + v.App + "/tasks"
	p.AllHref = here + p.Filter.query("", "")
	for _, s := range states {
		p.Counts = append(p.Counts, stateCount{State: s, N: counts[s], Href: here + p.Filter.query(string(s), ""), Here: p.Filter.Status == string(s)})
		p.Total += counts[s]
	}
	now := u.now().UTC()
	since := now.Truncate(time.Minute).Add(-(chartMinutes - 1) * time.Minute)
	buckets, err := u.e.store.TaskHistogram(ctx, v.App, since, time.Minute)
	if err != nil {
		return err
	}
	p.Chart = newChart(since, buckets)
	if p.Filter.Error == "" {
		ts, next, err := u.e.List(ctx, list)
		if err != nil {
			return err
		}
		p.Tasks = ts
		if next != "" {
			p.Next = here + p.Filter.query(p.Filter.Status, next)
		}
		if list.Cursor != "" {
			p.First = here + p.Filter.query(p.Filter.Status, "")
		}
	}
	u.render(w, r, status, "tasks", v)
	return nil
}

// chart is the bar chart of tasks ended per minute.
type chart struct {
	Bars                        []bar
	Max                         int // the tallest bar's count
	Completed, Failed, Canceled int
	From, To                    time.Time
	Width, Height, Top          int // of the SVG's view box, and the plot's top
}

// bar is one minute of the chart: three stacked rectangles.
type bar struct {
	Start                       time.Time
	X, W                        int
	Completed, Failed, Canceled int
	Segments                    []segment
}

type segment struct {
	Class string
	Y, H  int
}

// newChart lays out chartMinutes bars from since, one a minute.
func newChart(since time.Time, buckets []Bucket) *chart {
	const barWidth, plotHeight, top = 10, 120, 16
	c := &chart{From: since, To: since.Add(chartMinutes * time.Minute), Width: chartMinutes * barWidth, Height: top + plotHeight + 2, Top: top}
	byStart := make(map[int64]Bucket, len(buckets))
	for _, b := range buckets {
		byStart[b.Start.Unix()] = b
	}
	for i := range chartMinutes {
		start := since.Add(time.Duration(i) * time.Minute)
		b := byStart[start.Unix()]
		c.Bars = append(c.Bars, bar{Start: start, X: i * barWidth, W: barWidth - 2, Completed: b.Completed, Failed: b.Failed, Canceled: b.Canceled})
		c.Max = max(c.Max, b.Completed+b.Failed+b.Canceled)
		c.Completed += b.Completed
		c.Failed += b.Failed
		c.Canceled += b.Canceled
	}
	if c.Max == 0 {
		return c
	}
	for i := range c.Bars {
		b := &c.Bars[i]
		y := top + plotHeight
		for _, s := range []struct {
			class string
			n     int
		}{{"bar-completed", b.Completed}, {"bar-failed", b.Failed}, {"bar-canceled", b.Canceled}} {
			if s.n == 0 {
				continue
			}
			h := max(1, (s.n*plotHeight+c.Max/2)/c.Max)
			y -= h
			b.Segments = append(b.Segments, segment{s.class, y, h})
		}
	}
	return c
}

// ---- a task

type taskPage struct {
	Task          *Task
	Data          string
	DataCut       bool
	Timeline      []event
	Attempts      []Attempt
	CanCancel     bool
	CanReplay     bool
	CanReschedule bool
	RunAt         string // the reschedule form's default, datetime-local in UTC
	Horizon       string
}

type event struct {
	At     time.Time
	What   string
	Detail string
	Class  string
}

// appTask returns the task of the path if it belongs to app.
func (u *ui) appTask(ctx context.Context, r *http.Request, app string) (*Task, error) {
	return inApp(ctx, r, app, errUITaskNotFound, u.e.Get, func(t *Task) string { return t.AppID })
}

func (u *ui) handleTask(w http.ResponseWriter, r *http.Request, v *view) error {
	ctx, cancel := u.storeCtx(r)
	defer cancel()
	t, err := u.appTask(ctx, r, v.App)
	if err != nil {
		return err
	}
	as, err := u.e.Attempts(ctx, t.ID)
	if err != nil {
		return err
	}
	v.Title, v.Nav = "Task "+t.ID, "tasks"
	p := &taskPage{
		Task:          t,
		Attempts:      as,
		Timeline:      timeline(t, as),
		CanCancel:     t.State.pending() || t.State == StateRunning && !t.CancelRequested,
		CanReplay:     t.State.Terminal(),
		CanReschedule: t.State.pending(),
		Horizon:       fmtHorizon(u.horizon),
	}
	p.Data, p.DataCut = prettyData(t.Data)
	runAt := u.now().Add(time.Hour)
	if t.NextAttemptAt != nil && t.NextAttemptAt.After(u.now()) {
		runAt = *t.NextAttemptAt
	}
	p.RunAt = runAt.UTC().Format("2006-01-02T15:04:05")
	v.Page = p
	u.render(w, r, http.StatusOK, "task", v)
	return nil
}

// prettyData indents JSON data for reading, cut to maxDataShown bytes.
func prettyData(data json.RawMessage) (string, bool) {
	var b bytes.Buffer
	if err := json.Indent(&b, data, "", "  "); err != nil {
		b.Reset()
		b.Write(data)
	}
	s := b.String()
	if len(s) <= maxDataShown {
		return s, false
	}
	return strings.ToValidUTF8(s[:maxDataShown], ""), true
}

// timeline lists what happened to t, and what is due, in time order.
func timeline(t *Task, as []Attempt) []event {
	evs := []event{{At: t.CreatedAt, What: "Created", Class: "ev-created"}}
	if t.ScheduledRunTime != nil {
		evs = append(evs, event{At: *t.ScheduledRunTime, What: "Scheduled to run", Class: "ev-scheduled"})
	}
	for _, a := range as {
		e := event{At: a.StartedAt, What: fmt.Sprintf("Attempt %d", a.Number), Class: "ev-ok"}
		var parts []string
		if a.EndpointID != "" {
			parts = append(parts, "endpoint "+a.EndpointID)
		}
		if a.StatusCode != 0 {
			parts = append(parts, "HTTP "+strconv.Itoa(a.StatusCode))
		}
		parts = append(parts, fmtDuration(a.Duration))
		if a.Error != "" {
			e.Class = "ev-failed"
			parts = append(parts, excerptText(a.Error, 200))
		} else {
			parts = append(parts, "succeeded")
		}
		e.Detail = strings.Join(parts, " · ")
		evs = append(evs, e)
	}
	switch {
	case t.State.pending() && t.NextAttemptAt != nil:
		evs = append(evs, event{At: *t.NextAttemptAt, What: "Next attempt due", Class: "ev-scheduled"})
	case t.State == StateRunning && t.LeaseExpiresAt != nil:
		what := "Running; lease until"
		if t.CancelRequested {
			what = "Running, cancellation requested; lease until"
		}
		evs = append(evs, event{At: *t.LeaseExpiresAt, What: what, Class: "ev-running"})
	case t.State.Terminal() && t.CompletedAt != nil:
		evs = append(evs, event{At: *t.CompletedAt, What: titleCase(string(t.State)), Class: "ev-" + string(t.State)})
	}
	slices.SortStableFunc(evs, func(a, b event) int { return a.At.Compare(b.At) })
	return evs
}

func titleCase(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// excerptText cuts s to n runes.
func excerptText(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n]) + "…"
}

// fmtDuration shows d in milliseconds, or seconds from ten of them.
func fmtDuration(d time.Duration) string {
	if d >= 10*time.Second {
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + " s"
	}
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64) + " ms"
}

// fmtHorizon shows the reschedule horizon in days or as a duration.
func fmtHorizon(h time.Duration) string {
	if h%(24*time.Hour) == 0 {
		return fmt.Sprintf("%d days", h/(24*time.Hour))
	}
	return h.String()
}

// taskAction runs do on the task of the path and sends the browser back to
// it, with the flash message done.
func (u *ui) taskAction(w http.ResponseWriter, r *http.Request, v *view, do func(context.Context, *Task) (string, error)) error {
	ctx, cancel := u.storeCtx(r)
	defer cancel()
	t, err := u.appTask(ctx, r, v.App)
	if err != nil {
		return err
	}
	done, err := do(ctx, t)
	if err != nil {
		return err
	}
	return u.redirect(w, r, v.Base+"/apps/"+v.App+"/tasks/"+t.ID+"?done="+done)
}

func (u *ui) handleCancel(w http.ResponseWriter, r *http.Request, v *view) error {
	return u.taskAction(w, r, v, func(ctx context.Context, t *Task) (string, error) {
		t, err := u.e.Cancel(ctx, t.ID)
		switch {
		case errors.Is(err, ErrInvalidState):
			return "", uiErrorf(http.StatusConflict, "The task is %s: a completed or failed task cannot be canceled.", t.State)
		case err != nil:
			return "", err
		case t.State == StateRunning:
			return "cancel", nil
		}
		return "canceled", nil
	})
}

func (u *ui) handleReplay(w http.ResponseWriter, r *http.Request, v *view) error {
	return u.taskAction(w, r, v, func(ctx context.Context, t *Task) (string, error) {
		t, err := u.e.Replay(ctx, t.ID)
		if errors.Is(err, ErrInvalidState) {
			return "", uiErrorf(http.StatusConflict, "The task is %s: only a completed, failed or canceled task can be replayed.", t.State)
		}
		return "replayed", err
	})
}

func (u *ui) handleReschedule(w http.ResponseWriter, r *http.Request, v *view) error {
	zone := strings.TrimSpace(r.PostForm.Get("time_zone"))
	if zone == "" {
		zone = "UTC"
	}
	loc, err := loadZone(zone)
	if err != nil {
		return uiErrorf(http.StatusUnprocessableEntity, "%s", err.(*ValidationError).Message)
	}
	runAt, err := parseLocal(r.PostForm.Get("run_at"), loc)
	if err != nil {
		return uiErrorf(http.StatusUnprocessableEntity, "Run at: %v.", err)
	}
	if limit := u.now().Add(u.horizon); runAt.After(limit) {
		return uiErrorf(http.StatusUnprocessableEntity, "Run at is more than %s ahead; the latest allowed now is %s.",
			fmtHorizon(u.horizon), fmtTime(limit))
	}
	return u.taskAction(w, r, v, func(ctx context.Context, t *Task) (string, error) {
		t, err := u.e.Reschedule(ctx, t.ID, runAt)
		if errors.Is(err, ErrInvalidState) {
			return "", uiErrorf(http.StatusConflict, "The task is %s: only a scheduled or retrying task can be rescheduled.", t.State)
		}
		return "rescheduled", err
	})
}

// ---- endpoints

type endpointsPage struct {
	Endpoints []endpointRowView
	Window    string
	NewSecret *shownSecret // a secret to show once
	Form      endpointForm
}

type endpointRowView struct {
	*Endpoint
	Total, Failed int
	Rate          string // "4.2%", or "" without attempts
	Events        string
}

type shownSecret struct {
	EndpointID, URL, Secret string
	Rotated                 bool
	Overlap                 string
}

// endpointForm is the create form, as it was filled in.
type endpointForm struct {
	URL, Description, Events, Error string
}

func (u *ui) handleEndpoints(w http.ResponseWriter, r *http.Request, v *view) error {
	return u.renderEndpoints(w, r, v, http.StatusOK, &endpointsPage{})
}

// renderEndpoints shows the app's endpoints on p.
func (u *ui) renderEndpoints(w http.ResponseWriter, r *http.Request, v *view, status int, p *endpointsPage) error {
	ctx, cancel := u.storeCtx(r)
	defer cancel()
	eps, err := u.e.Endpoints(ctx, v.App)
	if err != nil {
		return err
	}
	since := u.now().Add(-failureWindow)
	for _, ep := range eps {
		total, failed, err := u.e.store.CountAttempts(ctx, ep.ID, since)
		if err != nil {
			return err
		}
		row := endpointRowView{Endpoint: ep, Total: total, Failed: failed, Events: strings.Join(ep.EnabledEvents, ", ")}
		if total > 0 {
			row.Rate = strconv.FormatFloat(100*float64(failed)/float64(total), 'f', 1, 64) + "%"
		}
		p.Endpoints = append(p.Endpoints, row)
	}
	p.Window = "24 hours"
	v.Title, v.Nav, v.Page = "Endpoints", "endpoints", p
	u.render(w, r, status, "endpoints", v)
	return nil
}

func (u *ui) handleCreateEndpoint(w http.ResponseWriter, r *http.Request, v *view) error {
	f := endpointForm{
		URL:         strings.TrimSpace(r.PostForm.Get("url")),
		Description: r.PostForm.Get("description"),
		Events:      r.PostForm.Get("enabled_events"),
	}
	ne := NewEndpoint{AppID: v.App, URL: f.URL, Description: f.Description}
	for ev := range strings.FieldsFuncSeq(f.Events, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' || r == '\t' }) {
		ne.EnabledEvents = append(ne.EnabledEvents, ev)
	}
	ctx, cancel := u.storeCtx(r)
	ep, err := u.e.CreateEndpoint(ctx, ne)
	cancel()
	var ve *ValidationError
	if errors.As(err, &ve) {
		f.Error = fmt.Sprintf("Invalid %s: %s.", strings.ReplaceAll(ve.Field, "_", " "), ve.Message)
		return u.renderEndpoints(w, r, v, http.StatusUnprocessableEntity, &endpointsPage{Form: f})
	}
	if err != nil {
		return err
	}
	return u.renderEndpoints(w, r, v, http.StatusCreated, &endpointsPage{NewSecret: &shownSecret{EndpointID: ep.ID, URL: ep.URL, Secret: ep.Secret}})
}

// appEndpoint returns the endpoint of the path if it belongs to app.
func (u *ui) appEndpoint(ctx context.Context, r *http.Request, app string) (*Endpoint, error) {
	return inApp(ctx, r, app, errUIEndpoint, u.e.Endpoint, func(ep *Endpoint) string { return ep.AppID })
}

// endpointStatus sets the status of the endpoint of the path.
func (u *ui) endpointStatus(status EndpointStatus) pageFunc {
	done := "enabled"
	if status == EndpointInactive {
		done = "disabled"
	}
	return func(w http.ResponseWriter, r *http.Request, v *view) error {
		ctx, cancel := u.storeCtx(r)
		defer cancel()
		ep, err := u.appEndpoint(ctx, r, v.App)
		if err != nil {
			return err
		}
		if _, err := u.e.UpdateEndpoint(ctx, ep.ID, EndpointUpdate{Status: &status}); err != nil {
			return err
		}
		return u.redirect(w, r, v.Base+"/apps/"+v.App+"/endpoints?done="+done)
	}
}

func (u *ui) handleRotate(w http.ResponseWriter, r *http.Request, v *view) error {
	ctx, cancel := u.storeCtx(r)
	ep, err := u.appEndpoint(ctx, r, v.App)
	if err == nil {
		ep, err = u.e.RotateEndpointSecret(ctx, ep.ID, defaultSecretOverlap)
	}
	cancel()
	if err != nil {
		return err
	}
	return u.renderEndpoints(w, r, v, http.StatusOK, &endpointsPage{NewSecret: &shownSecret{
		EndpointID: ep.ID, URL: ep.URL, Secret: ep.Secret, Rotated: true, Overlap: "24 hours"}})
}

// ---- periodic tasks

type schedulesPage struct {
	Periodics []*PeriodicTask
}

func (u *ui) handleSchedules(w http.ResponseWriter, r *http.Request, v *view) error {
	ctx, cancel := u.storeCtx(r)
	defer cancel()
	ps, err := u.e.Periodics(ctx, v.App)
	if err != nil {
		return err
	}
	v.Title, v.Nav, v.Page = "Schedules", "schedules", &schedulesPage{Periodics: ps}
	u.render(w, r, http.StatusOK, "schedules", v)
	return nil
}

// periodicStatus pauses or resumes the periodic task of the path.
func (u *ui) periodicStatus(status PeriodicStatus) pageFunc {
	done := "resumed"
	if status == PeriodicPaused {
		done = "paused"
	}
	return func(w http.ResponseWriter, r *http.Request, v *view) error {
		ctx, cancel := u.storeCtx(r)
		defer cancel()
		p, err := inApp(ctx, r, v.App, errUIPeriodic, u.e.Periodic, func(p *PeriodicTask) string { return p.AppID })
		if err != nil {
			return err
		}
		if _, err := u.e.UpdatePeriodic(ctx, p.ID, PeriodicUpdate{Status: &status}); err != nil {
			return err
		}
		return u.redirect(w, r, v.Base+"/apps/"+v.App+"/schedules?done="+done)
	}
}

// ---- rendering

// uiPages returns the pages' templates, parsed once.
var uiPages = sync.OnceValue(parsePages)

// parsePages parses each page's template with the layout.
func parsePages() map[string]*template.Template {
	funcs := template.FuncMap{
		"when":    fmtTimeAny,
		"iso":     isoTime,
		"ms":      fmtDuration,
		"excerpt": excerptText,
		"title":   titleCase,
	}
	pages := make(map[string]*template.Template)
	names, err := fs.Glob(uiFiles, "ui/*.html")
	if err != nil {
		panic(err)
	}
	for _, name := range names {
		page := strings.TrimSuffix(strings.TrimPrefix(name, "ui/"), ".html")
		if page == "layout" {
			continue
		}
		pages[page] = template.Must(template.New("layout.html").Funcs(funcs).ParseFS(uiFiles, "ui/layout.html", name))
	}
	return pages
}

// fmtTime shows a time in UTC, to the second.
func fmtTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05") + " UTC" }

// fmtTimeAny shows a time.Time or *time.Time; nil is "—".
func fmtTimeAny(v any) string {
	switch t := v.(type) {
	case time.Time:
		return fmtTime(t)
	case *time.Time:
		if t != nil {
			return fmtTime(*t)
		}
	}
	return "—"
}

// isoTime is a time for a datetime attribute.
func isoTime(v any) string {
	switch t := v.(type) {
	case time.Time:
		return t.UTC().Format(time.RFC3339)
	case *time.Time:
		if t != nil {
			return t.UTC().Format(time.RFC3339)
		}
	}
	return ""
}

// render answers status with the page name of v.
func (u *ui) render(w http.ResponseWriter, r *http.Request, status int, name string, v *view) {
	var b bytes.Buffer
	if err := u.pages[name].Execute(&b, v); err != nil {
		u.log.ErrorContext(r.Context(), "tasks: UI page not rendered", "page", name, "err", err)
		status = http.StatusInternalServerError
		b.Reset()
		b.WriteString("<!doctype html><title>Internal error</title><p>Internal error.</p>\n")
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(b.Len()))
	w.WriteHeader(status)
	w.Write(b.Bytes())
}

type errorPage struct {
	Status  int
	Message string
	Back    string
}

// renderError answers err as an error page. An unexpected error, which is
// the store's, becomes a 503 and is logged.
func (u *ui) renderError(w http.ResponseWriter, r *http.Request, err error) {
	var ue *uiError
	var ve *ValidationError
	switch {
	case errors.As(err, &ue):
	case errors.As(err, &ve):
		ue = uiErrorf(http.StatusUnprocessableEntity, "Invalid %s: %s.", strings.ReplaceAll(ve.Field, "_", " "), ve.Message)
	case errors.Is(err, ErrNotFound):
		ue = uiErrorf(http.StatusNotFound, "Not found.")
	case errors.Is(err, ErrInvalidState):
		ue = uiErrorf(http.StatusConflict, "The task's state does not allow this.")
	case errors.Is(err, ErrConflict):
		ue = uiErrorf(http.StatusConflict, "Others changed this at the same time. Try again.")
	default:
		ue = errUIUnavailable
		level := slog.LevelError
		if r.Context().Err() != nil {
			level = slog.LevelInfo // the browser went away
		}
		u.log.Log(r.Context(), level, "tasks: UI request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	if ue.status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", retryAfter)
	}
	v := u.newView(r)
	// The signature alone decides the links an error page shows: it may
	// answer a store that failed, and shows no data.
	if s := u.signedSession(r); s != nil {
		v.session, v.CSRF = s, s.csrf
	}
	back := v.Base + "/"
	if app := r.PathValue("app"); app != "" && validName(app) && v.session != nil && (v.session.key == nil || v.session.key.grants(app)) {
		v.App = app
		back = v.Base + "/apps/" + app + "/tasks"
		if id := r.PathValue("id"); id != "" && validName(id) && strings.Contains(r.URL.Path, "/tasks/") && ue.status != http.StatusNotFound {
			back += "/" + id
		}
	}
	v.Title, v.Page = http.StatusText(ue.status), &errorPage{Status: ue.status, Message: ue.msg, Back: back}
	u.render(w, r, ue.status, "error", v)
}

// handleCSS serves the style sheet.
func (u *ui) handleCSS(w http.ResponseWriter, r *http.Request) {
	b, err := uiFiles.ReadFile("ui/ui.css")
	if err != nil {
		u.renderError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(b)
}
