// Package web holds what the HTTP API handler of package tasks and the
// dashboard (package dashboard) share: API keys, kept as SHA-256 digests and
// found in constant time, the apps they grant, the checks of an ID taken
// from a path (and of the app of the object it names) and of an event type,
// and ServeMux's cleaning of a path.
package web

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"path"
	"slices"
	"strings"
)

// MaxIDLength bounds an ID; it is tasks.MaxIDLength.
const MaxIDLength = 255

// MaxEventTypeLength bounds an event type; it is tasks.MaxEventTypeLength.
const MaxEventTypeLength = 255

// AllApps, as an app ID granted to a key, grants every app.
const AllApps = "*"

// Key is an API key, kept as its digest, and the apps it grants.
type Key struct {
	Digest [sha256.Size]byte
	apps   map[string]bool // may hold AllApps
}

// ParseKeys returns keys, which map each API key to the apps it grants, as
// Keys in the order of the keys' text. It panics, naming who, on an empty
// key, a key that grants no app, or an invalid app ID.
func ParseKeys(who string, keys map[string][]string) []Key {
	var out []Key
	for _, key := range slices.Sorted(maps.Keys(keys)) {
		apps := keys[key]
		if key == "" {
			panic("tasks: " + who + ": empty API key")
		}
		if len(apps) == 0 {
			panic("tasks: " + who + ": an API key grants no app")
		}
		k := Key{Digest: sha256.Sum256([]byte(key)), apps: make(map[string]bool)}
		for _, app := range apps {
			if app != AllApps && !ValidName(app) {
				panic(fmt.Sprintf("tasks: %s: invalid app ID %q for an API key", who, app))
			}
			k.apps[app] = true
		}
		out = append(out, k)
	}
	return out
}

// FindKey returns the index in keys of the key token, or -1. It hashes token
// and compares the digest with every key's, in constant time and without
// stopping at a match, so that neither the time taken nor a lookup depends
// on the secret.
func FindKey(keys []Key, token string) int {
	digest := sha256.Sum256([]byte(token))
	match := -1
	for i := range keys {
		eq := subtle.ConstantTimeCompare(digest[:], keys[i].Digest[:])
		match = subtle.ConstantTimeSelect(eq, i, match)
	}
	return match
}

// Grants reports whether k may use app.
func (k *Key) Grants(app string) bool { return k.apps[AllApps] || k.apps[app] }

// GrantedApps returns the app IDs k names, sorted, and whether it grants
// every app.
func (k *Key) GrantedApps() (apps []string, all bool) {
	for app := range k.apps {
		if app == AllApps {
			all = true
		} else {
			apps = append(apps, app)
		}
	}
	slices.Sort(apps)
	return apps, all
}

// ValidName reports whether s is a usable app, task or endpoint ID: 1 to
// MaxIDLength bytes of letters, digits and "._:-", not "." or "..". Task and
// endpoint IDs are UUIDs.
func ValidName(s string) bool {
	if s == "" || len(s) > MaxIDLength || s == "." || s == ".." {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

// EventTypeProblem says what makes s unacceptable as an event type, or ""
// when it is acceptable: 1 to MaxEventTypeLength bytes of letters, digits
// and "._-:", not starting or ending with a dot and without empty segments
// such as "a..b".
func EventTypeProblem(s string) string {
	switch {
	case s == "":
		return "must not be empty"
	case len(s) > MaxEventTypeLength:
		return fmt.Sprintf("longer than %d bytes", MaxEventTypeLength)
	case strings.HasPrefix(s, ".") || strings.HasSuffix(s, "."):
		return "must not start or end with a dot"
	case strings.Contains(s, ".."):
		return `must not contain an empty segment ("..")`
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-:", r)) {
			return fmt.Sprintf("contains %q; use letters, digits and . _ - :", r)
		}
	}
	return ""
}

// InApp returns the object of the request's path value "id", read by get,
// if it belongs to app: appOf gives its app. An invalid ID, a missing object
// (get's error is missing) and another app's object are all notFound, so
// that the answer does not tell whether the object exists.
func InApp[T any](ctx context.Context, r *http.Request, app string, missing, notFound error,
	get func(context.Context, string) (T, error), appOf func(T) string) (T, error) {
	var none T
	id := r.PathValue("id")
	if !ValidName(id) {
		return none, notFound
	}
	v, err := get(ctx, id)
	if errors.Is(err, missing) || err == nil && appOf(v) != app {
		return none, notFound
	}
	return v, err
}

// LogFailed logs err, which failed the request r and which the caller
// answers with a generic 503 whose details stay in the log: at Error, or at
// Info when the client went away (its context ended), so that a closed
// browser tab is not an alert. what names the surface, such as "API".
func LogFailed(log *slog.Logger, r *http.Request, what string, err error) {
	level := slog.LevelError
	if r.Context().Err() != nil {
		level = slog.LevelInfo
	}
	log.Log(r.Context(), level, "tasks: "+what+" request failed", "method", r.Method, "path", r.URL.Path, "err", err)
}

// CleanPath is how ServeMux cleans a path: path.Clean, keeping a trailing
// slash. A handler mounted with StripPrefix refuses a path that is not
// clean, as ServeMux's redirect to the clean form would lose the prefix.
func CleanPath(p string) string {
	if p == "" || p[0] != '/' {
		p = "/" + p
	}
	np := path.Clean(p)
	if p[len(p)-1] == '/' && np != "/" {
		np += "/"
	}
	return np
}
