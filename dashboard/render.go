package dashboard

// Rendering: the pages' templates, the formatting they use, error pages
// and the style sheet.

import (
	"bytes"
	"errors"
	"html/template"
	"io/fs"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/internal/web"
)

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
		"count":   fmtCount,
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

// fmtCount shows a count with its thousands separated: 10,000.
func fmtCount(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
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
		u.log.ErrorContext(r.Context(), "tasks: dashboard page not rendered", "page", name, "err", err)
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
	var ve *tasks.ValidationError
	switch {
	case errors.As(err, &ue):
	case errors.As(err, &ve):
		ue = uiErrorf(http.StatusUnprocessableEntity, "Invalid %s: %s.", strings.ReplaceAll(ve.Field, "_", " "), ve.Message)
	case errors.Is(err, tasks.ErrNotFound):
		ue = uiErrorf(http.StatusNotFound, "Not found.")
	case errors.Is(err, tasks.ErrInvalidState):
		ue = uiErrorf(http.StatusConflict, "The task's state does not allow this.")
	case errors.Is(err, tasks.ErrConflict):
		ue = uiErrorf(http.StatusConflict, "Others changed this at the same time. Try again.")
	default:
		ue = errUIUnavailable
		web.LogFailed(u.log, r, "dashboard", err)
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
	if app := r.PathValue("app"); app != "" && web.ValidName(app) && v.session != nil && (v.session.key == nil || v.session.key.Grants(app)) {
		v.App = app
		back = v.Base + "/apps/" + app + "/tasks"
		if id := r.PathValue("id"); id != "" && web.ValidName(id) && strings.Contains(r.URL.Path, "/tasks/") && ue.status != http.StatusNotFound {
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
