package client

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Sentinel errors that an *Error matches with errors.Is, by its status.
var (
	ErrNotFound     = errors.New("tasks: not found")       // 404: no such object in the app, or an app the key does not grant
	ErrConflict     = errors.New("tasks: conflict")        // 409: the object's state does not allow the call
	ErrUnauthorized = errors.New("tasks: unauthorized")    // 401: no key, or an unknown one
	ErrUnavailable  = errors.New("tasks: unavailable")     // 503: the server's store failed or did not answer in time
	ErrInvalid      = errors.New("tasks: invalid request") // 400, 413, 415 and 422: the server refused the request's content
)

// Error is an error answer of the server: its status and its problem
// detail (RFC 9457), which every error answer of the API carries.
type Error struct {
	// Method and Path are the request's, such as "GET" and
	// "/apps/app_1/tasks/…" (without the base URL).
	Method, Path string
	// Status is the HTTP status code.
	Status int
	// Type, Title and Detail are the problem's members; Title is the
	// status text and Detail says what went wrong.
	Type, Title, Detail string
	// Message is the problem's "error" member, which HostedHooks clients
	// read: the same text as Detail.
	Message string
	// Field names the request field, query parameter or header at fault,
	// or is "".
	Field string
	// RetryAfter is the answer's Retry-After, or 0.
	RetryAfter time.Duration
}

// Error returns "tasks: METHOD PATH: STATUS TITLE: DETAIL".
func (e *Error) Error() string {
	detail := e.Detail
	if detail == "" {
		detail = e.Message
	}
	title := e.Title
	if title == "" {
		title = http.StatusText(e.Status)
	}
	s := fmt.Sprintf("tasks: %s %s: %d %s", e.Method, e.Path, e.Status, title)
	if detail != "" {
		s += ": " + detail
	}
	return s
}

// Is reports whether target is the sentinel of e's status: ErrNotFound,
// ErrConflict, ErrUnauthorized, ErrUnavailable or ErrInvalid.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	case ErrConflict:
		return e.Status == http.StatusConflict
	case ErrUnauthorized:
		return e.Status == http.StatusUnauthorized
	case ErrUnavailable:
		return e.Status == http.StatusServiceUnavailable
	case ErrInvalid:
		switch e.Status {
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType, http.StatusUnprocessableEntity:
			return true
		}
	}
	return false
}
