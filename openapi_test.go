package tasks_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/config"
	verrors "github.com/pb33f/libopenapi-validator/errors"
	v3 "github.com/pb33f/libopenapi/datamodel/high/v3"

	"github.com/taskwheel/tasks"
)

// The OpenAPI document, openapi.json, is proved true in two ways: its
// operations are exactly the routes of the handler's own route table
// (TestOpenAPI_Routes), and every request that the handler tests send
// through newAPI, and every answer, is validated against it (openAPICheck),
// with libopenapi-validator, which implements OpenAPI 3.1 and its JSON
// Schema 2020-12 dialect.

// openAPIDoc reads openapi.json, parsed once for all tests.
var openAPIDoc = sync.OnceValues(func() (libopenapi.Document, error) {
	b, err := os.ReadFile("openapi.json")
	if err != nil {
		return nil, err
	}
	return libopenapi.NewDocument(b)
})

// openAPIValidators are the validators of openapi.json: [0] checks the
// Bearer key that the document requires, [1] does not, for a handler that
// is Unauthenticated. A validator is safe for concurrent use.
var openAPIValidators = sync.OnceValues(func() ([2]validator.Validator, error) {
	var vs [2]validator.Validator
	doc, err := openAPIDoc()
	if err != nil {
		return vs, err
	}
	for i, opts := range [][]config.Option{
		{config.WithFormatAssertions()},
		{config.WithFormatAssertions(), config.WithoutSecurityValidation()},
	} {
		v, errs := validator.NewValidator(doc, opts...)
		if len(errs) > 0 {
			return vs, fmt.Errorf("openapi.json: %v", errs)
		}
		vs[i] = v
	}
	return vs, nil
})

// openAPIModel is the built model of openapi.json. Building writes to the
// document (the validators build it too), so it is built once, after the
// validators: two tests that built it at once raced (go test -race
// -shuffle=on).
var openAPIModel = sync.OnceValues(func() (*libopenapi.DocumentModel[v3.Document], error) {
	if _, err := openAPIValidators(); err != nil {
		return nil, err
	}
	doc, err := openAPIDoc()
	if err != nil {
		return nil, err
	}
	return doc.BuildV3Model()
})

// TestOpenAPI_Document checks that openapi.json is a valid OpenAPI 3.1
// document.
func TestOpenAPI_Document(t *testing.T) {
	t.Parallel()
	vs, err := openAPIValidators()
	if err != nil {
		t.Fatal(err)
	}
	if ok, errs := vs[0].ValidateDocument(); !ok {
		for _, e := range errs {
			t.Errorf("openapi.json is not a valid OpenAPI document: %v", e)
		}
	}
	doc, _ := openAPIDoc()
	if v := doc.GetVersion(); v != "3.1.0" {
		t.Errorf("openapi.json is OpenAPI %s, want 3.1.0", v)
	}
}

// TestOpenAPI_Routes checks that the document describes every route that
// the handler serves, and nothing else. The routes are the handler's own
// route table, so that a route added to the handler fails this test until
// the document has it, and the other way round.
func TestOpenAPI_Routes(t *testing.T) {
	t.Parallel()
	e := newEngine(t, tasks.NewMemoryStore(), nil)
	served := tasks.Routes(e.Handler(&tasks.HandlerConfig{Unauthenticated: true}))
	model, err := openAPIModel()
	if err != nil {
		t.Fatal(err)
	}
	var documented []string
	for path, item := range model.Model.Paths.PathItems.FromOldest() {
		for method := range item.GetOperations().FromOldest() {
			documented = append(documented, strings.ToUpper(method)+" "+path)
		}
	}
	slices.Sort(documented)
	for _, r := range served {
		if !slices.Contains(documented, r) {
			t.Errorf("route %q is served by the handler (Engine.Handler) but missing from openapi.json: document it under paths", r)
		}
	}
	for _, r := range documented {
		if !slices.Contains(served, r) {
			t.Errorf("route %q is in openapi.json but the handler (Engine.Handler) does not serve it: remove it from openapi.json, or serve it", r)
		}
	}
	if len(served) < 24 {
		t.Errorf("the handler serves %d routes, want at least 24: %q", len(served), served)
	}
}

// TestOpenAPI_Served checks that the handler serves openapi.json at GET
// /openapi.json without a key, with its server URL the prefix it is mounted
// under.
func TestOpenAPI_Served(t *testing.T) {
	t.Parallel()
	want, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	a := newAPI(t, tasks.NewMemoryStore(), apiOpts{})
	r := a.do("GET", "/openapi.json", "", header("Authorization", ""))
	r.wantStatus(t, http.StatusOK)
	if !bytes.Equal(r.body, want) {
		t.Errorf("GET %s/openapi.json does not answer openapi.json as it is (%d bytes, want %d)", prefix, len(r.body), len(want))
	}
	a.do("POST", "/openapi.json", "{}").problem(t, http.StatusMethodNotAllowed, "")

	// Mounted elsewhere, or at the root, the server URL follows.
	e := newEngine(t, tasks.NewMemoryStore(), nil)
	h := e.Handler(&tasks.HandlerConfig{Keys: map[string][]string{keyApp1: {"app_1"}}})
	for mount, server := range map[string]string{"/v2/jobs": `"url": "/v2/jobs"`, "": `"url": "/"`} {
		req := httptest.NewRequest("GET", mount+"/openapi.json", nil)
		w := httptest.NewRecorder()
		http.StripPrefix(mount, h).ServeHTTP(w, req)
		if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), server) {
			t.Errorf("mounted at %q: status %d, want 200 and a document with %s", mount, w.Code, server)
		}
	}
}

// openAPICheck validates each request to next, and next's answer, against
// openapi.json, failing t with what does not match:
//   - an answer to a documented operation must be one the document gives it:
//     status, Content-Type and body;
//   - a request that the handler accepts (2xx) must be valid by the
//     document; one that it refuses may be invalid: tests send bad requests
//     on purpose;
//   - a request for an operation that the document lacks must get a 404 or
//     405 problem, since the handler serves only documented routes.
//
// Answers to a request whose client went away are not checked: they may be
// cut short.
func openAPICheck(t *testing.T, next http.Handler, unauthenticated bool) http.Handler {
	vs, err := openAPIValidators()
	if err != nil {
		t.Fatal(err)
	}
	v := vs[0]
	if unauthenticated {
		v = vs[1]
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		const maxChecked = 32 << 20 // a longer body goes through unchecked
		body, err := io.ReadAll(io.LimitReader(r.Body, maxChecked+1))
		whole := err == nil && len(body) <= maxChecked
		r.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(body), r.Body), r.Body}
		tee := &teeWriter{ResponseWriter: w, head: r.Method == http.MethodHead}
		next.ServeHTTP(tee, r)
		if r.Context().Err() != nil || !whole {
			return
		}
		status := tee.status
		if status == 0 {
			status = http.StatusOK
		}
		request := func() *http.Request {
			c := r.Clone(context.Background())
			c.Body = io.NopCloser(bytes.NewReader(body))
			return c
		}
		what := fmt.Sprintf("%s %s (answered %d)", r.Method, r.URL.RequestURI(), status)
		_, reqErrs := v.ValidateHttpRequestSync(request())
		if slices.ContainsFunc(reqErrs, func(e *verrors.ValidationError) bool {
			return e.IsPathMissingError() || e.IsOperationMissingError()
		}) {
			if (status != http.StatusNotFound && status != http.StatusMethodNotAllowed) ||
				tee.Header().Get("Content-Type") != "application/problem+json" {
				t.Errorf("openapi.json: %s: the handler answered an operation that openapi.json does not have; document it", what)
			}
			return
		}
		if status < 300 {
			for _, e := range reqErrs {
				t.Errorf("openapi.json: %s: the handler accepted a request that openapi.json refuses: %v", what, e)
			}
		}
		resp := &http.Response{
			StatusCode: status,
			Header:     tee.Header().Clone(),
			Body:       io.NopCloser(bytes.NewReader(tee.body.Bytes())),
			Request:    request(),
		}
		if _, errs := v.ValidateHttpResponse(request(), resp); len(errs) > 0 {
			for _, e := range errs {
				t.Errorf("openapi.json: %s: the answer does not match openapi.json: %v; body %.500s", what, e, tee.body.Bytes())
			}
		}
	})
}

// teeWriter keeps a copy of what it passes on.
type teeWriter struct {
	http.ResponseWriter
	status int
	head   bool // the request is a HEAD: net/http sends no body
	body   bytes.Buffer
}

func (w *teeWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *teeWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if !w.head {
		w.body.Write(b)
	}
	return w.ResponseWriter.Write(b)
}

func (w *teeWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
