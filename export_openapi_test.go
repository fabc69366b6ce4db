package tasks

import (
	"maps"
	"net/http"
	"slices"
)

// Routes returns the patterns that the handler h of Engine.Handler serves,
// such as "GET /apps/{app_id}/tasks", sorted: its own route table, which the
// OpenAPI test holds the document to.
func Routes(h http.Handler) []string {
	return slices.Sorted(maps.Keys(h.(*handler).patterns))
}
