package dashboard

// The pages of an app's webhook endpoints and periodic tasks, and their
// actions.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/internal/web"
)

type endpointsPage struct {
	Endpoints []endpointRowView // those the filter selects
	Filters   []endpointFilterLink
	Filter    string // the selected filter's name; "" for all
	Window    string
	NewSecret *shownSecret // a secret to show once
	Form      endpointForm
}

// endpointFilterLink is a link that filters the endpoints by status, with
// how many it selects.
type endpointFilterLink struct {
	Name, Label, Href string
	N                 int
	Here              bool // selected
}

// errUIEndpointFilter is the answer to an unknown status filter.
var errUIEndpointFilter = uiErrorf(http.StatusBadRequest, "Unknown endpoint filter: use active, disabled or inactive.")

// endpointFilters are the filters of the endpoints page: each selects the
// endpoints it reports true for, and all of them but "all" partition them.
var endpointFilters = []struct {
	name, label string
	selects     func(*tasks.Endpoint) bool
}{
	{"", "all", func(*tasks.Endpoint) bool { return true }},
	{"active", "active", func(ep *tasks.Endpoint) bool { return ep.Status == tasks.EndpointActive }},
	{"disabled", "disabled by failures", (*tasks.Endpoint).DisabledByFailures},
	{"inactive", "inactive by hand", func(ep *tasks.Endpoint) bool {
		return ep.Status == tasks.EndpointInactive && !ep.DisabledByFailures()
	}},
}

type endpointRowView struct {
	*tasks.Endpoint
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
	filter := r.URL.Query().Get("status")
	selects := endpointFilters[0].selects
	here := v.Base + "/apps/" + v.App + "/endpoints"
	for _, f := range endpointFilters {
		link := endpointFilterLink{Name: f.name, Label: f.label, Href: here, Here: f.name == filter}
		if f.name != "" {
			link.Href += "?status=" + f.name
		}
		if link.Here {
			selects = f.selects
		}
		for _, ep := range eps {
			if f.selects(ep) {
				link.N++
			}
		}
		p.Filters = append(p.Filters, link)
	}
	if !slices.ContainsFunc(p.Filters, func(l endpointFilterLink) bool { return l.Here }) {
		return errUIEndpointFilter
	}
	p.Filter = filter
	since := u.now().Add(-failureWindow)
	for _, ep := range eps {
		if !selects(ep) {
			continue
		}
		total, failed, err := u.e.CountAttempts(ctx, ep.ID, since)
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
	ne := tasks.NewEndpoint{AppID: v.App, URL: f.URL, Description: f.Description}
	for ev := range strings.FieldsFuncSeq(f.Events, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' || r == '\t' }) {
		ne.EnabledEvents = append(ne.EnabledEvents, ev)
	}
	ctx, cancel := u.storeCtx(r)
	ep, err := u.e.CreateEndpoint(ctx, ne)
	cancel()
	var ve *tasks.ValidationError
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
func (u *ui) appEndpoint(ctx context.Context, r *http.Request, app string) (*tasks.Endpoint, error) {
	return web.InApp(ctx, r, app, tasks.ErrNotFound, errUIEndpoint, u.e.Endpoint, func(ep *tasks.Endpoint) string { return ep.AppID })
}

// endpointStatus sets the status of the endpoint of the path.
func (u *ui) endpointStatus(status tasks.EndpointStatus) pageFunc {
	done := "enabled"
	if status == tasks.EndpointInactive {
		done = "disabled"
	}
	return func(w http.ResponseWriter, r *http.Request, v *view) error {
		ctx, cancel := u.storeCtx(r)
		defer cancel()
		ep, err := u.appEndpoint(ctx, r, v.App)
		if err != nil {
			return err
		}
		if _, err := u.e.UpdateEndpoint(ctx, ep.ID, tasks.EndpointUpdate{Status: &status}); err != nil {
			return err
		}
		return u.redirect(w, r, v.Base+"/apps/"+v.App+"/endpoints?done="+done)
	}
}

func (u *ui) handleRotate(w http.ResponseWriter, r *http.Request, v *view) error {
	ctx, cancel := u.storeCtx(r)
	ep, err := u.appEndpoint(ctx, r, v.App)
	if err == nil {
		ep, err = u.e.RotateEndpointSecret(ctx, ep.ID, secretOverlap)
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
	Periodics []*tasks.PeriodicTask
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
func (u *ui) periodicStatus(status tasks.PeriodicStatus) pageFunc {
	done := "resumed"
	if status == tasks.PeriodicPaused {
		done = "paused"
	}
	return func(w http.ResponseWriter, r *http.Request, v *view) error {
		ctx, cancel := u.storeCtx(r)
		defer cancel()
		p, err := web.InApp(ctx, r, v.App, tasks.ErrNotFound, errUIPeriodic, u.e.Periodic, func(p *tasks.PeriodicTask) string { return p.AppID })
		if err != nil {
			return err
		}
		if _, err := u.e.UpdatePeriodic(ctx, p.ID, tasks.PeriodicUpdate{Status: &status}); err != nil {
			return err
		}
		return u.redirect(w, r, v.Base+"/apps/"+v.App+"/schedules?done="+done)
	}
}
