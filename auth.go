package tasks

// API keys and the checks of a HandlerConfig, shared by the API handler and
// the dashboard: each key is kept as its SHA-256 digest together with the
// apps it grants, and found by comparing digests in constant time.

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"maps"
	"slices"
)

// apiKey is an API key, kept as its digest, and the apps it grants.
type apiKey struct {
	digest [sha256.Size]byte
	apps   map[string]bool // may hold allApps
}

// checkHandlerConfig panics, naming who, on a configuration that Handler and
// UI refuse: no Keys and not Unauthenticated, or both, or a negative
// MaxBodyBytes, Horizon, MaxPageBytes or MaxListBytes.
func checkHandlerConfig(who string, c *HandlerConfig) {
	switch {
	case len(c.Keys) == 0 && !c.Unauthenticated:
		panic("tasks: " + who + ": no Keys; set Unauthenticated to serve without keys")
	case len(c.Keys) > 0 && c.Unauthenticated:
		panic("tasks: " + who + ": both Keys and Unauthenticated set")
	case c.MaxBodyBytes < 0:
		panic("tasks: " + who + ": negative MaxBodyBytes")
	case c.Horizon < 0:
		panic("tasks: " + who + ": negative Horizon")
	case c.MaxPageBytes < 0:
		panic("tasks: " + who + ": negative MaxPageBytes")
	case c.MaxListBytes < 0:
		panic("tasks: " + who + ": negative MaxListBytes")
	}
}

// parseKeys returns keys, which map each API key to the apps it grants, as
// apiKeys in the order of the keys' text. It panics, naming who, on an empty
// key, a key that grants no app, or an invalid app ID.
func parseKeys(who string, keys map[string][]string) []apiKey {
	var out []apiKey
	for _, key := range slices.Sorted(maps.Keys(keys)) {
		apps := keys[key]
		if key == "" {
			panic("tasks: " + who + ": empty API key")
		}
		if len(apps) == 0 {
			panic("tasks: " + who + ": an API key grants no app")
		}
		k := apiKey{digest: sha256.Sum256([]byte(key)), apps: make(map[string]bool)}
		for _, app := range apps {
			if app != allApps && !validName(app) {
				panic(fmt.Sprintf("tasks: %s: invalid app ID %q for an API key", who, app))
			}
			k.apps[app] = true
		}
		out = append(out, k)
	}
	return out
}

// findKey returns the index in keys of the key token, or -1. It hashes token
// and compares the digest with every key's, in constant time and without
// stopping at a match, so that neither the time taken nor a lookup depends
// on the secret.
func findKey(keys []apiKey, token string) int {
	digest := sha256.Sum256([]byte(token))
	match := -1
	for i := range keys {
		eq := subtle.ConstantTimeCompare(digest[:], keys[i].digest[:])
		match = subtle.ConstantTimeSelect(eq, i, match)
	}
	return match
}

// grants reports whether k may use app.
func (k *apiKey) grants(app string) bool { return k.apps[allApps] || k.apps[app] }

// grantedApps returns the app IDs k names, sorted, and whether it grants
// every app.
func (k *apiKey) grantedApps() (apps []string, all bool) {
	for app := range k.apps {
		if app == allApps {
			all = true
		} else {
			apps = append(apps, app)
		}
	}
	slices.Sort(apps)
	return apps, all
}
