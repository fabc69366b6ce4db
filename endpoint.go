package tasks

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/taskwheel/tasks/webhook"
)

// EndpointStatus says whether an endpoint receives deliveries.
type EndpointStatus string

// The statuses of an endpoint.
const (
	EndpointActive   EndpointStatus = "active"   // receives deliveries
	EndpointInactive EndpointStatus = "inactive" // receives none; tasks that only it would receive are retried
)

// Endpoint is a webhook receiver of an app. A task whose event type has no
// registered func is delivered to each active endpoint of its app that
// subscribes to its event type.
//
// An engine's deliveries see the changes made to endpoints through that
// engine (CreateEndpoint, UpdateEndpoint, RotateEndpointSecret,
// DeleteEndpoint) at once, and those made through another engine sharing
// the store, in this process or another, within a second: an engine keeps
// an app's endpoints for that long rather than read them for each delivery.
// An endpoint that the engine disables (see WebhookConfig.DisableAfter)
// receives no more deliveries from that engine at once, and from the
// others within that second.
type Endpoint struct {
	ID    string `json:"id"`
	AppID string `json:"app_id"`
	// URL receives the deliveries, as POST requests.
	URL         string `json:"url"`
	Description string `json:"description"`
	// EnabledEvents lists the event types delivered, or is ["*"] for all.
	EnabledEvents []string `json:"enabled_events"`
	// Version is the version of the payloads the endpoint is set up
	// for, as HostedHooks' endpoints have one, such as "1.0": at most 64
	// bytes of text, or "" for none. It is kept and answered; deliveries
	// do not depend on it.
	Version string `json:"version"`
	// Status is EndpointActive or EndpointInactive. The engine makes an
	// endpoint inactive when its deliveries keep failing (see
	// WebhookConfig.DisableAfter) or it answers 410 Gone; setting it
	// active again re-enables it and clears FailingSince, DisabledAt and
	// DisabledReason.
	Status EndpointStatus `json:"status"`
	// FailingSince is when the current run of failed deliveries to the
	// endpoint began: the store's time of the first failed attempt since
	// the last acknowledged one. It is nil while the endpoint is healthy.
	FailingSince *time.Time `json:"failing_since"`
	// LastSuccessAt is about when a delivery to the endpoint was last
	// acknowledged: the store's time when an engine last recorded one.
	// To keep deliveries cheap, engines record a success of an endpoint
	// that is not failing only every 30 seconds or so, so it may be up to
	// a minute older than the latest acknowledgment; a failure disables
	// the endpoint only once it is more than DisableAfter and a minute
	// ago. It is nil until a success is recorded.
	LastSuccessAt *time.Time `json:"last_success_at"`
	// DisabledAt is when the engine disabled the endpoint, and
	// DisabledReason why, such as "every delivery failed since
	// 2026-01-02T03:04:05Z" or "answered 410 Gone"; nil and "" unless the
	// engine disabled it (an endpoint made inactive by hand has neither).
	DisabledAt     *time.Time `json:"disabled_at"`
	DisabledReason string     `json:"disabled_reason"`
	// RateLimit is how many deliveries per second the endpoint receives
	// at most, across every engine sharing the store, in bursts of up to
	// a tenth of a second's. 0 means no limit.
	RateLimit float64 `json:"rate_limit"`
	// MaxInFlight is how many deliveries the endpoint receives at once at
	// most, across every engine sharing the store. 0 means no limit. A
	// task that an endpoint's limit holds back waits for its capacity
	// without holding a worker or using an attempt; see Task.WaitReason.
	MaxInFlight int `json:"max_in_flight"`
	// Secret signs deliveries: "whsec_" and the base64 of the key.
	Secret string `json:"secret,omitempty"`
	// PreviousSecret, after a rotation, also signs deliveries until
	// PreviousSecretExpiresAt, so receivers can switch without a gap.
	PreviousSecret          string     `json:"-"`
	PreviousSecretExpiresAt *time.Time `json:"-"`
	CreatedAt               time.Time  `json:"created_at"`
	UpdatedAt               time.Time  `json:"updated_at"`
}

// Subscribed reports whether ep receives tasks of eventType.
func (ep *Endpoint) Subscribed(eventType string) bool {
	return slices.Contains(ep.EnabledEvents, AllEvents) || slices.Contains(ep.EnabledEvents, eventType)
}

func (ep *Endpoint) app() string { return ep.AppID }

// secrets returns the secrets that sign a delivery at now, newest first.
func (ep *Endpoint) secrets(now time.Time) []string {
	s := []string{ep.Secret}
	if ep.PreviousSecret != "" && ep.PreviousSecretExpiresAt != nil && now.Before(*ep.PreviousSecretExpiresAt) {
		s = append(s, ep.PreviousSecret)
	}
	return s
}

func (ep *Endpoint) clone() *Endpoint {
	c := *ep
	c.EnabledEvents = slices.Clone(ep.EnabledEvents)
	for _, p := range []**time.Time{&c.PreviousSecretExpiresAt, &c.FailingSince, &c.LastSuccessAt, &c.DisabledAt} {
		if *p != nil {
			*p = new(**p)
		}
	}
	return &c
}

// DisabledByFailures reports whether the engine disabled ep: it is inactive
// and has a DisabledAt, because its deliveries kept failing or it answered
// 410 Gone.
func (ep *Endpoint) DisabledByFailures() bool {
	return ep.Status == EndpointInactive && ep.DisabledAt != nil
}

// normalize keeps ep's times as stores do: UTC, to the microsecond.
func (ep *Endpoint) normalize() {
	if ep.PreviousSecretExpiresAt != nil {
		ep.PreviousSecretExpiresAt = new(ep.PreviousSecretExpiresAt.UTC().Truncate(time.Microsecond))
	}
}

// endpointCacheTTL bounds how long an engine's deliveries may go on using
// an app's endpoints as they were when it last read them from the store
// (see [Endpoint]).
const endpointCacheTTL = time.Second

// maxVersionLength bounds Endpoint.Version, in bytes.
const maxVersionLength = 64

// maxCachedApps bounds how many apps' endpoints an engine caches at once.
const maxCachedApps = 1024

// endpointCache holds the endpoints of the apps an engine delivered to in
// the last endpointCacheTTL, so that each delivery need not read them from
// the store. The engine's own endpoint writes clear it. Its zero value is
// empty and ready for use; it is safe for concurrent use.
type endpointCache struct {
	mu   sync.Mutex
	gen  uint64 // counts invalidations; put stores only what was read since the last
	apps map[string]cachedEndpoints
}

// cachedEndpoints is an app's endpoints as read from the store.
type cachedEndpoints struct {
	eps     []*Endpoint // shared by deliveries, which never modify them
	expires time.Time   // on the monotonic clock
}

// get returns app's cached endpoints if they have not expired at now.
// Otherwise it returns ok false and the generation to give put with what
// the caller then reads from the store.
func (c *endpointCache) get(app string, now time.Time) (eps []*Endpoint, gen uint64, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ce, ok := c.apps[app]; ok && now.Before(ce.expires) {
		return ce.eps, 0, true
	}
	return nil, c.gen, false
}

// put caches eps, read from the store from at, as app's endpoints, unless
// the cache was invalidated since get returned gen: the read may then have
// preceded the write that invalidated it.
func (c *endpointCache) put(app string, eps []*Endpoint, gen uint64, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if c.apps == nil {
		c.apps = make(map[string]cachedEndpoints)
	}
	if _, ok := c.apps[app]; !ok && len(c.apps) >= maxCachedApps {
		for a, ce := range c.apps {
			if !at.Before(ce.expires) {
				delete(c.apps, a)
			}
		}
		if len(c.apps) >= maxCachedApps {
			return // many apps at once: read them from the store
		}
	}
	c.apps[app] = cachedEndpoints{eps: eps, expires: at.Add(endpointCacheTTL)}
}

// invalidate empties the cache, and keeps reads that began before it from
// being cached.
func (c *endpointCache) invalidate() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	clear(c.apps)
}

// deliveryEndpoints returns the endpoints of app appID for a delivery: from
// the cache if read at most endpointCacheTTL ago, else from the store. The
// caller must not modify them.
func (e *Engine) deliveryEndpoints(ctx context.Context, appID string) ([]*Endpoint, error) {
	now := time.Now()
	eps, gen, ok := e.endpoints.get(appID, now)
	if ok {
		return eps, nil
	}
	eps, err := e.store.ListEndpoints(ctx, appID)
	if err == nil {
		eps, err = e.openEndpoints(eps)
	}
	if err != nil {
		return nil, err
	}
	e.endpoints.put(appID, eps, gen, now)
	return eps, nil
}

// NewEndpoint describes an endpoint to create.
type NewEndpoint struct {
	// AppID is the app whose tasks the endpoint receives. Required.
	AppID string
	// URL receives deliveries: http or https, to a public address unless
	// the engine's WebhookConfig allows others. Required.
	URL         string
	Description string
	// EnabledEvents lists the event types to deliver; nil or ["*"] means
	// all.
	EnabledEvents []string
	// Status defaults to EndpointActive.
	Status EndpointStatus
	// Version is the payload version the endpoint is set up for (see
	// Endpoint.Version). Defaults to "", none.
	Version string
	// RateLimit and MaxInFlight limit the deliveries to the endpoint (see
	// Endpoint). Default to 0, no limit.
	RateLimit   float64
	MaxInFlight int
}

// EndpointUpdate changes an endpoint; nil fields stay as they are.
type EndpointUpdate struct {
	URL           *string
	Description   *string
	EnabledEvents []string
	Status        *EndpointStatus
	Version       *string
	RateLimit     *float64
	MaxInFlight   *int
}

// validateEndpoint checks ep, and sets its URL to the form it is stored in
// (see endpointURL).
func (e *Engine) validateEndpoint(ep *Endpoint) error {
	u, err := endpointURL(ep.URL, e.cfg.Webhooks)
	if err != nil {
		return err
	}
	ep.URL = u
	if err := validateText("app_id", ep.AppID, MaxIDLength); err != nil {
		return err
	}
	switch {
	case ep.AppID == "":
		return invalid("app_id", "must not be empty")
	case len(ep.Description) > MaxDescriptionLength:
		return invalid("description", "longer than %d bytes", MaxDescriptionLength)
	case len(ep.EnabledEvents) == 0:
		return invalid("enabled_events", `must not be empty; use ["*"] for all events`)
	case len(ep.EnabledEvents) > MaxEnabledEvents:
		return invalid("enabled_events", "more than %d event types", MaxEnabledEvents)
	case ep.Status != EndpointActive && ep.Status != EndpointInactive:
		return invalid("status", "must be %q or %q", EndpointActive, EndpointInactive)
	}
	if err := validateText("version", ep.Version, maxVersionLength); err != nil {
		return err
	}
	if err := validateEndpointLimits(ep); err != nil {
		return err
	}
	for _, et := range ep.EnabledEvents {
		if et == AllEvents {
			continue
		}
		if err := validateEventType(et); err != nil {
			return invalid("enabled_events", "%q: %s", et, err.(*ValidationError).Message)
		}
	}
	return nil
}

// CreateEndpoint stores a new webhook endpoint with a new signing secret and
// returns it, secret included. An invalid ne gives a *ValidationError.
func (e *Engine) CreateEndpoint(ctx context.Context, ne NewEndpoint) (*Endpoint, error) {
	ep := &Endpoint{
		ID:            uuid.NewString(),
		AppID:         ne.AppID,
		URL:           ne.URL,
		Description:   ne.Description,
		EnabledEvents: ne.EnabledEvents,
		Status:        ne.Status,
		Version:       ne.Version,
		RateLimit:     ne.RateLimit,
		MaxInFlight:   ne.MaxInFlight,
		Secret:        webhook.NewSecret(),
	}
	if ep.EnabledEvents == nil {
		ep.EnabledEvents = []string{AllEvents}
	}
	if ep.Status == "" {
		ep.Status = EndpointActive
	}
	if err := e.validateEndpoint(ep); err != nil {
		return nil, err
	}
	defer e.endpoints.invalidate() // once stored (or perhaps stored, on an error)
	stored, err := e.store.InsertEndpoint(ctx, e.sealEndpoint(ep))
	if err == nil {
		stored, err = e.openEndpoint(stored)
	}
	if err != nil {
		return nil, wrapf(err, "create endpoint")
	}
	return stored, nil
}

// Endpoint returns the endpoint with the given ID, or an error matching
// ErrNotFound.
func (e *Engine) Endpoint(ctx context.Context, id string) (*Endpoint, error) {
	ep, err := e.store.GetEndpoint(ctx, id)
	if err == nil {
		ep, err = e.openEndpoint(ep)
	}
	if err != nil {
		return nil, wrapf(err, "get endpoint %s", id)
	}
	return ep, nil
}

// Endpoints returns an app's endpoints, oldest first.
func (e *Engine) Endpoints(ctx context.Context, appID string) ([]*Endpoint, error) {
	eps, err := e.store.ListEndpoints(ctx, appID)
	if err == nil {
		eps, err = e.openEndpoints(eps)
	}
	if err != nil {
		return nil, wrapf(err, "list endpoints of %s", appID)
	}
	return eps, nil
}

// UpdateEndpoint changes an endpoint and returns it. An invalid change gives
// a *ValidationError and changes nothing. Setting Status to EndpointActive
// re-enables an endpoint that is inactive, whether the engine disabled it
// or a person did: it clears FailingSince, DisabledAt and DisabledReason,
// so its next failure starts a new run.
func (e *Engine) UpdateEndpoint(ctx context.Context, id string, u EndpointUpdate) (*Endpoint, error) {
	return e.changeEndpoint(ctx, id, func(ep *Endpoint) {
		if u.URL != nil {
			ep.URL = *u.URL
		}
		if u.Description != nil {
			ep.Description = *u.Description
		}
		if u.EnabledEvents != nil {
			ep.EnabledEvents = u.EnabledEvents
		}
		if u.Status != nil {
			ep.Status = *u.Status
		}
		if u.Version != nil {
			ep.Version = *u.Version
		}
		if u.RateLimit != nil {
			ep.RateLimit = *u.RateLimit
		}
		if u.MaxInFlight != nil {
			ep.MaxInFlight = *u.MaxInFlight
		}
	})
}

// RotateEndpointSecret gives an endpoint a new signing secret and returns
// it. The old secret keeps signing deliveries, beside the new one, for
// overlap, so that receivers can switch without rejecting a delivery.
func (e *Engine) RotateEndpointSecret(ctx context.Context, id string, overlap time.Duration) (*Endpoint, error) {
	return e.changeEndpoint(ctx, id, func(ep *Endpoint) {
		ep.PreviousSecret = ep.Secret
		ep.PreviousSecretExpiresAt = new(time.Now().Add(overlap).UTC().Truncate(time.Microsecond))
		ep.Secret = webhook.NewSecret()
	})
}

// changeEndpoint reads an endpoint, applies change, validates and stores it.
// The store's write is a compare and set: when another change was stored
// since the read, it reads the endpoint again and applies change to that,
// so that concurrent changes all apply, in some order.
func (e *Engine) changeEndpoint(ctx context.Context, id string, change func(*Endpoint)) (*Endpoint, error) {
	defer e.endpoints.invalidate()
	var err error
	for range maxUpdateTries {
		var ep *Endpoint
		ep, err = e.store.GetEndpoint(ctx, id)
		if err == nil {
			ep, err = e.openEndpoint(ep)
		}
		if err != nil {
			break
		}
		change(ep)
		if err := e.validateEndpoint(ep); err != nil {
			return nil, err
		}
		var stored *Endpoint
		stored, err = e.store.UpdateEndpoint(ctx, e.sealEndpoint(ep))
		if !errors.Is(err, ErrConflict) {
			if err == nil {
				stored, err = e.openEndpoint(stored)
			}
			if err != nil {
				break
			}
			return stored, nil
		}
	}
	return nil, wrapf(err, "update endpoint %s", id)
}

// maxUpdateTries bounds the reads and writes of one update of an endpoint
// or periodic task that keeps conflicting. Each conflict means another
// update was stored, so it takes that many concurrent updates of one record
// to exhaust it, and the update then fails with ErrConflict.
const maxUpdateTries = 32

// DeleteEndpoint deletes an endpoint; its tasks are no longer delivered to
// it. Its attempts stay in the tasks' histories.
func (e *Engine) DeleteEndpoint(ctx context.Context, id string) error {
	defer e.endpoints.invalidate()
	if err := e.store.DeleteEndpoint(ctx, id); err != nil {
		return wrapf(err, "delete endpoint %s", id)
	}
	return nil
}

// Attempts returns a task's attempt history, oldest first.
func (e *Engine) Attempts(ctx context.Context, taskID string) ([]Attempt, error) {
	as, err := e.store.Attempts(ctx, taskID)
	if err != nil {
		return nil, wrapf(err, "attempts of task %s", taskID)
	}
	return as, nil
}

// CountAttempts returns how many attempts to deliver to the endpoint
// endpointID started at or after since, and how many of those failed; see
// [Store.CountAttempts].
func (e *Engine) CountAttempts(ctx context.Context, endpointID string, since time.Time) (total, failed int, err error) {
	total, failed, err = e.store.CountAttempts(ctx, endpointID, since)
	if err != nil {
		return 0, 0, wrapf(err, "count attempts of endpoint %s", endpointID)
	}
	return total, failed, nil
}
