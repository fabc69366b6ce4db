package tasks

import (
	"bytes"
	"cmp"
	_ "embed"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/taskwheel/tasks/internal/web"
)

// openAPI is the OpenAPI 3.1 document of the handler's API, openapi.json at
// the module's root, which the handler serves at GET /openapi.json. Its one
// server is "/api/v1", where cmd/tasksd mounts the API; serveOpenAPI puts the
// prefix the request came through in its place.
//
//go:embed openapi.json
var openAPI []byte

// openAPIServer is the server URL of openAPI as written in it.
var openAPIServer = []byte(`"url": "/api/v1"`)

// handleOpenAPI answers the OpenAPI document, to anyone: it needs no key.
// Its server URL is the prefix the handler is mounted under, read from the
// request's RequestURI, which http.StripPrefix leaves as it came.
func (h *handler) handleOpenAPI(w http.ResponseWriter, r *http.Request) {
	doc := openAPI
	if prefix, ok := mountPrefix(r); ok {
		server, _ := json.Marshal(cmp.Or(prefix, "/"))
		doc = bytes.Replace(openAPI, openAPIServer, append([]byte(`"url": `), server...), 1)
	}
	setHeaders(w.Header(), "application/json")
	w.Header().Set("Cache-Control", "no-cache") // no secret in it, but it changes with the binary
	w.Header().Set("Content-Length", strconv.Itoa(len(doc)))
	w.WriteHeader(http.StatusOK)
	w.Write(doc)
}

// mountPrefix returns the prefix before /openapi.json in the path that the
// client sent, if it is a clean one.
func mountPrefix(r *http.Request) (string, bool) {
	u, err := url.ParseRequestURI(r.RequestURI)
	if err != nil {
		return "", false
	}
	prefix, ok := strings.CutSuffix(u.EscapedPath(), "/openapi.json")
	if !ok || (prefix != "" && web.CleanPath(prefix) != prefix) {
		return "", false
	}
	return prefix, true
}
