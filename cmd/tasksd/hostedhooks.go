package main

import (
	"net/http"
	"strings"

	"github.com/taskwheel/tasks"
)

// hostedHooksPrefix is where tasksd serves the API as HostedHooks' own
// API answers: the same routes as under /api/v1, but the endpoint list is
// a bare JSON array, paged with page, per_page and offset
// (tasks.HandlerConfig.HostedHooksLists). Point HostedHooks' SDKs here:
// their base URL is https://hostedhooks.com/api/v1.
const hostedHooksPrefix = "/hostedhooks/api/v1"

// mountHostedHooks routes hostedHooksPrefix to a handler of eng
// configured as hc but for HostedHooksLists.
func mountHostedHooks(mux *http.ServeMux, eng *tasks.Engine, hc tasks.HandlerConfig) {
	hc.HostedHooksLists = true
	h := http.StripPrefix(hostedHooksPrefix, eng.Handler(&hc))
	mux.Handle(hostedHooksPrefix+"/", h)
	mux.Handle(hostedHooksPrefix, h)
}

// under reports whether the URL path p is prefix or under it.
func under(p, prefix string) bool {
	return p == prefix || strings.HasPrefix(p, prefix+"/")
}
