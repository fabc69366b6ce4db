package dashboard

// The pages of an app's tasks: the app picker, the task list with its
// counts, filters and chart, and a task with its timeline and actions.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/internal/web"
	"github.com/taskwheel/tasks/observe"
)

// states are the states a task can be in, in the order the task list shows
// their counts.
var states = []tasks.State{tasks.StateScheduled, tasks.StateRunning, tasks.StateRetrying,
	tasks.StateCompleted, tasks.StateFailed, tasks.StateCanceled}

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
		p.Apps, p.All = v.session.key.GrantedApps()
	}
	if app := strings.TrimSpace(r.URL.Query().Get("app")); app != "" {
		if web.ValidName(app) && (v.session.key == nil || v.session.key.Grants(app)) {
			return u.redirect(w, r, v.Base+"/apps/"+app+"/tasks")
		}
		p.Typed = app
		p.Error = fmt.Sprintf("Use an app ID of 1 to %d letters, digits and . _ : - that your key grants.", tasks.MaxIDLength)
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
	More     bool   // Total is a lower bound: some state has at least countLimit tasks
	AllHref  string // the list without a status filter
	Chart    *chart
	Filter   taskFilter
	States   []tasks.State
	Tasks    []*tasks.Task
	Next     string // the next page's URL, or ""
	First    string // the first page's URL, when this is not it
	Filtered bool
	// Attempts are the app's attempts that ended on this engine in the
	// last hour, by event type, from the measurements of its metrics.
	Attempts []attemptRow
}

// attemptRow is one event type's line of the attempts table.
type attemptRow struct {
	EventType                string
	Attempts, Failed         int64
	FailureRate              string // "1.5%"
	LatenessP50, LatenessP99 string // "12 ms", "—" when not measured
}

// newAttemptRows formats the engine's AttemptStats.
func newAttemptRows(stats []observe.EventStats) []attemptRow {
	rows := make([]attemptRow, len(stats))
	for i, s := range stats {
		rows[i] = attemptRow{
			EventType:   s.EventType,
			Attempts:    s.Attempts,
			Failed:      s.Failed,
			FailureRate: strconv.FormatFloat(100*s.FailureRate(), 'f', 1, 64) + "%",
			LatenessP50: latency(s.LatenessP50),
			LatenessP99: latency(s.LatenessP99),
		}
	}
	return rows
}

// latency shows a lateness estimate: milliseconds below ten seconds.
func latency(d time.Duration) string {
	switch {
	case d <= 0:
		return "—"
	case d < 10*time.Millisecond:
		return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64) + " ms"
	case d < 10*time.Second:
		return strconv.FormatInt(d.Milliseconds(), 10) + " ms"
	}
	return d.Round(time.Second).String()
}

type stateCount struct {
	State tasks.State
	N     int
	More  bool // N is the dashboard's countLimit: there are N or more
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
func (f *taskFilter) listParams(q url.Values, p *tasks.ListParams) error {
	f.Status, f.EventType = q.Get("status"), strings.TrimSpace(q.Get("event_type"))
	f.From, f.To = q.Get("from"), q.Get("to")
	if f.Status != "" {
		if !tasks.State(f.Status).Valid() {
			return fmt.Errorf("unknown status %q", f.Status)
		}
		p.States = []tasks.State{tasks.State(f.Status)}
	}
	if f.EventType != "" {
		if problem := web.EventTypeProblem(f.EventType); problem != "" {
			return fmt.Errorf("event type: %s", problem)
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
	p.Cursor = q.Get("cursor") // List refuses a malformed one
	return nil
}

// errMalformedCursor is the filter error of a page link whose cursor List
// refuses.
const errMalformedCursor = "the page link is malformed"

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
	list := tasks.ListParams{AppID: v.App, Limit: uiPageSize}
	status := http.StatusOK
	if err := p.Filter.listParams(r.URL.Query(), &list); err != nil {
		p.Filter.Error = err.Error()
		status = http.StatusBadRequest
	}
	p.Filtered = p.Filter.query(p.Filter.Status, "") != ""
	ctx, cancel := u.storeCtx(r)
	defer cancel()
	counts, err := u.e.CountTasks(ctx, v.App, u.countLimit)
	if err != nil {
		return err
	}
	here := v.Base + "/apps/" + v.App + "/tasks"
	p.AllHref = here + p.Filter.query("", "")
	for _, s := range states {
		more := s.Terminal() && counts[s] >= u.countLimit
		p.Counts = append(p.Counts, stateCount{State: s, N: counts[s], More: more, Href: here + p.Filter.query(string(s), ""), Here: p.Filter.Status == string(s)})
		p.Total += counts[s]
		p.More = p.More || more
	}
	if p.Chart, err = u.taskChart(ctx, v.App, u.now()); err != nil {
		return err
	}
	p.Attempts = newAttemptRows(u.e.AttemptStats(v.App))
	if p.Filter.Error == "" {
		ts, next, err := u.e.List(ctx, list)
		var ve *tasks.ValidationError
		switch {
		case errors.As(err, &ve) && ve.Field == "cursor":
			p.Filter.Error, status = errMalformedCursor, http.StatusBadRequest
		case err != nil:
			return err
		default:
			p.Tasks = ts
			if next != "" {
				p.Next = here + p.Filter.query(p.Filter.Status, next)
			}
			if list.Cursor != "" {
				p.First = here + p.Filter.query(p.Filter.Status, "")
			}
		}
	}
	u.render(w, r, status, "tasks", v)
	return nil
}

// taskChart returns the chart of the tasks of app that ended in each
// minute of the hour up to now: the minutes the chart's cache has settled,
// and the store's count of the others.
func (u *ui) taskChart(ctx context.Context, app string, now time.Time) (*chart, error) {
	since := chartSince(now)
	buckets, err := u.charts.histogram(ctx, app, since, now, u.histogram)
	if err != nil {
		return nil, err
	}
	return newChart(since, buckets), nil
}

// chartSince is the start of the chart's first minute at the time now.
func chartSince(now time.Time) time.Time {
	return now.UTC().Truncate(time.Minute).Add(-(chartMinutes - 1) * time.Minute)
}

// histogram is the engine's TaskHistogram of app from since, a bucket a
// minute: what the chart's cache asks for.
func (u *ui) histogram(ctx context.Context, app string, since time.Time) ([]tasks.Bucket, error) {
	return u.e.TaskHistogram(ctx, app, since, time.Minute)
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
func newChart(since time.Time, buckets []tasks.Bucket) *chart {
	const barWidth, plotHeight, top = 10, 120, 16
	c := &chart{From: since, To: since.Add(chartMinutes * time.Minute), Width: chartMinutes * barWidth, Height: top + plotHeight + 2, Top: top}
	byStart := make(map[int64]tasks.Bucket, len(buckets))
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
	Task          *tasks.Task
	Data          string
	DataCut       bool
	Timeline      []event
	Attempts      []tasks.Attempt
	CanCancel     bool
	CanReplay     bool
	CanReschedule bool
	CanDelete     bool
	RunAt         string // the reschedule form's default, datetime-local in UTC
	Horizon       string
}

type event struct {
	At     time.Time
	What   string
	Detail string
	Class  string
}

// pending reports whether a task in state s waits for an attempt: it is
// scheduled or retrying.
func pending(s tasks.State) bool { return s == tasks.StateScheduled || s == tasks.StateRetrying }

// appTask returns the task of the path if it belongs to app.
func (u *ui) appTask(ctx context.Context, r *http.Request, app string) (*tasks.Task, error) {
	return web.InApp(ctx, r, app, tasks.ErrNotFound, errUITaskNotFound, u.e.Get, func(t *tasks.Task) string { return t.AppID })
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
		CanCancel:     pending(t.State) || t.State == tasks.StateRunning && !t.CancelRequested,
		CanReplay:     t.State.Terminal(),
		CanReschedule: pending(t.State),
		CanDelete:     t.State != tasks.StateRunning,
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
func timeline(t *tasks.Task, as []tasks.Attempt) []event {
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
	case pending(t.State) && t.NextAttemptAt != nil:
		evs = append(evs, event{At: *t.NextAttemptAt, What: "Next attempt due", Class: "ev-scheduled"})
	case t.State == tasks.StateRunning && t.LeaseExpiresAt != nil:
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
func (u *ui) taskAction(w http.ResponseWriter, r *http.Request, v *view, do func(context.Context, *tasks.Task) (string, error)) error {
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
	return u.taskAction(w, r, v, func(ctx context.Context, t *tasks.Task) (string, error) {
		t, err := u.e.Cancel(ctx, t.ID)
		switch {
		case errors.Is(err, tasks.ErrInvalidState):
			return "", uiErrorf(http.StatusConflict, "The task is %s: a completed or failed task cannot be canceled.", t.State)
		case err != nil:
			return "", err
		case t.State == tasks.StateRunning:
			return "cancel", nil
		}
		return "canceled", nil
	})
}

func (u *ui) handleReplay(w http.ResponseWriter, r *http.Request, v *view) error {
	return u.taskAction(w, r, v, func(ctx context.Context, t *tasks.Task) (string, error) {
		t, err := u.e.Replay(ctx, t.ID)
		if errors.Is(err, tasks.ErrInvalidState) {
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
		return err
	}
	runAt, err := parseLocal(r.PostForm.Get("run_at"), loc)
	if err != nil {
		return uiErrorf(http.StatusUnprocessableEntity, "Run at: %v.", err)
	}
	if limit := u.now().Add(u.horizon); runAt.After(limit) {
		return uiErrorf(http.StatusUnprocessableEntity, "Run at is more than %s ahead; the latest allowed now is %s.",
			fmtHorizon(u.horizon), fmtTime(limit))
	}
	return u.taskAction(w, r, v, func(ctx context.Context, t *tasks.Task) (string, error) {
		t, err := u.e.Reschedule(ctx, t.ID, runAt)
		if errors.Is(err, tasks.ErrInvalidState) {
			return "", uiErrorf(http.StatusConflict, "The task is %s: only a scheduled or retrying task can be rescheduled.", t.State)
		}
		return "rescheduled", err
	})
}

// loadZone returns the location named by an IANA time zone name, or the
// error page that says why there is none.
func loadZone(name string) (*time.Location, error) {
	switch {
	case len(name) > tasks.MaxIDLength:
		return nil, uiErrorf(http.StatusUnprocessableEntity, "The time zone is longer than %d bytes.", tasks.MaxIDLength)
	case name == "Local":
		return nil, uiErrorf(http.StatusUnprocessableEntity, `"Local" differs from machine to machine; name an IANA time zone such as "Europe/Berlin" or "UTC"`)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, uiErrorf(http.StatusUnprocessableEntity, "%q is not a known IANA time zone", name)
	}
	return loc, nil
}
