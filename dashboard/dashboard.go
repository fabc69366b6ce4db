// Package dashboard serves the web dashboard of a [tasks.Engine]:
// server-rendered pages of an app's tasks, endpoints and periodic tasks,
// with the actions that steer them. Standard library only: html/template
// pages and one CSS file, embedded; no script at all. It is a package of its
// own so that a program that does not serve it does not build it.
//
// Mount the handler that [New] returns under a prefix with
// [http.StripPrefix]:
//
//	mux.Handle("/ui/", http.StripPrefix("/ui", dashboard.New(eng, cfg)))
//
// For each app it shows its tasks by status with their counts, filters
// (status, event type, creation time) and pages, and on a filtered list
// the bulk actions of its event type and a creation range: replay the
// failed tasks, cancel the scheduled ones; a chart of the tasks ended per
// minute in the last hour; a task's data, timeline and attempts, with
// buttons to cancel, replay, reschedule and delete it; its webhook endpoints with
// their failure rates in the last 24 hours, since when each is failing and
// why and when the engine disabled it, filtered by status (all, active,
// disabled by failures, inactive by hand), to create, disable, enable and
// rotate the secret of (a secret is shown once); and its periodic tasks, to
// pause and resume. Times are shown, and read, in UTC unless a form says
// otherwise.
//
// The chart costs a view the tasks that ended in its last two minutes, not
// in the whole hour: the dashboard keeps in memory, for the 1,000 apps
// viewed most recently, the counts of the minutes that ended more than a
// minute ago, and asks the store for the rest. A minute's count is read
// once it has settled and not again, so a task of that minute that is
// replayed or deleted later still counts there (it did end then); a
// minute is taken as settled a minute after it ends, by when the task
// writes of an engine, which end within 10 seconds, have committed, with
// room for the dashboard's clock to run ahead of the store's. Each
// dashboard process keeps its own counts.
//
// A user logs in by pasting an API key, and sees the apps that key grants
// (for a key that grants every app, the user types an app ID). A login sets
// a session cookie (HttpOnly, SameSite=Strict, Secure over TLS, Path the
// mount prefix) that holds no key: a random session ID, its expiry (12
// hours) and an HMAC of both keyed by a digest of the API key, so that a
// session serves every process that has the key, survives restarts, and
// ends when the key is removed. Logging out clears the cookie and revokes
// the session in the store ([tasks.Engine.RevokeSession]), so that no
// dashboard on the store, in any process, before a restart or after, takes
// the cookie again. Logins are throttled per client address (the
// connection's) and for all clients together: too many wrong keys get 429
// Too Many Requests with Retry-After, for a while; a right key costs
// nothing, and an address that logged in with one in the last 30 days is
// held to its own limit only, so that an attack from many addresses does
// not lock it out. Every request that changes state is a POST that must come from
// the dashboard's own origin (Sec-Fetch-Site or Origin, see
// [http.CrossOriginProtection]) and carry the session's CSRF token; any
// other gets 403. Pages carry a strict Content-Security-Policy (no script at
// all), X-Content-Type-Options nosniff, Referrer-Policy no-referrer and
// Cache-Control no-store, and html/template escapes every value shown.
package dashboard

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"runtime/debug"
	"strings"
	"time"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/internal/web"
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
	// storeTimeout bounds the store calls of one request, so that a store
	// that hangs gets a quick 503 page rather than a hanging browser.
	storeTimeout = 5 * time.Second
	// retryAfter is the Retry-After of a 503, in seconds.
	retryAfter = "5"
	// secretOverlap is how long an endpoint's old secret still signs after
	// a rotation.
	secretOverlap = 24 * time.Hour
)

// contentSecurityPolicy lets a page load only the dashboard's style sheet
// and images: no script, no inline style, no frame, no form elsewhere.
const contentSecurityPolicy = "default-src 'none'; style-src 'self'; img-src 'self' data:; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// Config configures the dashboard. A zero field means its default; a nil
// *Config is a zero one, which New refuses because it has neither keys nor
// Unauthenticated. The fields mean what those of [tasks.HandlerConfig] of
// the same names mean, so that one set of keys serves the API and the
// dashboard.
type Config struct {
	// Keys maps each API key to the app IDs it may use; the app ID "*"
	// grants every app. A user logs in by pasting a key. The dashboard
	// keeps only the SHA-256 digest of each key and compares digests in
	// constant time. App IDs are 1 to tasks.MaxIDLength bytes of letters,
	// digits and "._:-". Defaults to none, which is allowed only with
	// Unauthenticated.
	Keys map[string][]string
	// Unauthenticated, when true, serves every app to anyone, with no
	// login: only for a trusted network. It cannot be combined with Keys.
	// Defaults to false.
	Unauthenticated bool
	// Horizon is how far ahead a reschedule may move a task; a later time
	// is refused. Defaults to tasks.DefaultHorizon (366 days).
	Horizon time.Duration
	// Logger receives the errors behind 5xx pages. Defaults to
	// slog.Default().
	Logger *slog.Logger
	// CountLimit bounds the counts of completed, failed and canceled
	// tasks on an app's task page, so that the page costs the same however
	// long the app's history (see tasks.Engine.CountTasks): a state with
	// CountLimit tasks or more shows the limit and a plus, such as
	// "10,000+". The counts of scheduled, running and retrying tasks are
	// exact. Defaults to DefaultCountLimit.
	CountLimit int
}

// DefaultCountLimit is the default Config.CountLimit.
const DefaultCountLimit = 10_000

// New returns the web dashboard of eng, an http.Handler to mount under a
// prefix with [http.StripPrefix]. It panics on a nil eng, on a Config with
// no Keys and not Unauthenticated, or with both, on an empty key, a key
// that grants no app or an invalid app ID, and on a negative Horizon or CountLimit, as
// [tasks.Engine.Handler] does. The dashboard is safe for concurrent use.
func New(eng *tasks.Engine, cfg *Config) http.Handler {
	var c Config
	if cfg != nil {
		c = *cfg
	}
	switch {
	case eng == nil:
		panic("tasks: dashboard.New: nil engine")
	case len(c.Keys) == 0 && !c.Unauthenticated:
		panic("tasks: dashboard.New: no Keys; set Unauthenticated to serve without keys")
	case len(c.Keys) > 0 && c.Unauthenticated:
		panic("tasks: dashboard.New: both Keys and Unauthenticated set")
	case c.Horizon < 0:
		panic("tasks: dashboard.New: negative Horizon")
	case c.CountLimit < 0:
		panic("tasks: dashboard.New: negative CountLimit")
	}
	u := &ui{
		e:            eng,
		mux:          http.NewServeMux(),
		open:         c.Unauthenticated,
		horizon:      cmp.Or(c.Horizon, tasks.DefaultHorizon),
		countLimit:   cmp.Or(c.CountLimit, DefaultCountLimit),
		log:          cmp.Or(c.Logger, slog.Default()),
		now:          time.Now,
		storeTimeout: storeTimeout,
		origin:       http.NewCrossOriginProtection(),
		logins:       newLoginThrottle(),
		charts:       newChartCache(chartCacheApps),
	}
	u.keys = web.ParseKeys("dashboard.New", c.Keys)
	for i := range u.keys {
		u.macKeys = append(u.macKeys, sessionKey(u.keys[i].Digest[:]))
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
	u.appAction("POST /apps/{app}/tasks/{id}/delete", u.handleDelete)
	u.appAction("POST /apps/{app}/tasks/replay", u.bulkAction("bulk-replayed", eng.ReplayFailed))
	u.appAction("POST /apps/{app}/tasks/cancel", u.bulkAction("bulk-canceled", eng.CancelScheduled))
	u.appPage("GET /apps/{app}/endpoints", u.handleEndpoints)
	u.appAction("POST /apps/{app}/endpoints", u.handleCreateEndpoint)
	u.appAction("POST /apps/{app}/endpoints/{id}/enable", u.endpointStatus(tasks.EndpointActive))
	u.appAction("POST /apps/{app}/endpoints/{id}/disable", u.endpointStatus(tasks.EndpointInactive))
	u.appAction("POST /apps/{app}/endpoints/{id}/rotate", u.handleRotate)
	u.appPage("GET /apps/{app}/schedules", u.handleSchedules)
	u.appAction("POST /apps/{app}/schedules/{id}/pause", u.periodicStatus(tasks.PeriodicPaused))
	u.appAction("POST /apps/{app}/schedules/{id}/resume", u.periodicStatus(tasks.PeriodicActive))
	u.appPage("GET /apps/{app}/limits", u.handleLimits)
	u.appAction("POST /apps/{app}/limits/pause", u.limitPaused(true))
	u.appAction("POST /apps/{app}/limits/resume", u.limitPaused(false))
	u.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { u.renderError(w, r, errPageNotFound) })
	return u
}

// ui serves the dashboard of one engine.
type ui struct {
	e            *tasks.Engine
	mux          *http.ServeMux
	keys         []web.Key
	macKeys      [][]byte // signs sessions: one per key, or the open one
	open         bool     // Unauthenticated
	horizon      time.Duration
	countLimit   int // of each terminal state's count
	log          *slog.Logger
	now          func() time.Time
	storeTimeout time.Duration
	origin       *http.CrossOriginProtection
	pages        map[string]*template.Template
	logins       *loginThrottle
	charts       *chartCache // the chart's settled minutes, per app
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
			u.log.ErrorContext(r.Context(), "tasks: dashboard handler panicked",
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
	if p := r.URL.EscapedPath(); p != web.CleanPath(p) {
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
		v.Flash = flash(r.URL.Query())
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
		if !web.ValidName(app) || v.session.key != nil && !v.session.key.Grants(app) {
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
	"deleted":     "The task is deleted, with its attempts.",
	"enabled":     "The endpoint is enabled.",
	"disabled":    "The endpoint is disabled: it receives no deliveries until enabled.",
	"paused":      "The periodic task is paused.",
	"resumed":     "The periodic task is resumed.",
	"key-paused":  "The flow key is paused: its tasks start no more until it is resumed; those running finish.",
	"key-resumed": "The flow key is resumed: its waiting tasks start as its limits allow.",
}
