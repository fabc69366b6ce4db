package client_test

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"sync"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/config"
)

// requestValidator validates requests against the server's OpenAPI
// document, openapi.json at the module's root.
var requestValidator = sync.OnceValues(func() (validator.Validator, error) {
	b, err := os.ReadFile("../openapi.json")
	if err != nil {
		return nil, err
	}
	doc, err := libopenapi.NewDocument(b)
	if err != nil {
		return nil, err
	}
	v, errs := validator.NewValidator(doc, config.WithFormatAssertions())
	if len(errs) > 0 {
		return nil, errs[0]
	}
	return v, nil
})

// checkRequests fails t for each request to next that the server accepts
// but the OpenAPI document refuses: the client must send requests as the
// document describes them. (The tests also send requests that the server
// refuses on purpose, such as a bad cursor.)
func checkRequests(t *testing.T, next http.Handler) http.Handler {
	v, err := requestValidator()
	if err != nil {
		t.Fatal(err)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		c := r.Clone(r.Context())
		c.Body = io.NopCloser(bytes.NewReader(body))
		rec := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		if ok, errs := v.ValidateHttpRequestSync(c); !ok && rec.status < 300 {
			for _, e := range errs {
				t.Errorf("the client sent %s %s, which openapi.json refuses and the server accepted: %v", r.Method, r.URL.RequestURI(), e)
			}
		}
	})
}

// statusWriter records the status of an answer.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}
