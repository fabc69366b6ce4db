package tasks

// The memory store's record of endpoints' health (Store.RecordEndpointHealth).

import (
	"context"
	"time"
)

// RecordEndpointHealth implements [Store].
func (s *memoryStore) RecordEndpointHealth(ctx context.Context, id string, ok, gone bool, disableAfter, resolution time.Duration) (*Endpoint, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	switch {
	case disableAfter < 0:
		return nil, invalid("disable_after", "must not be negative")
	case resolution < 0:
		return nil, invalid("resolution", "must not be negative")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ep, found := s.endpoints.get(id)
	if !found || ep.Status != EndpointActive && !ok {
		return nil, nil
	}
	now := s.clock()
	switch {
	case ok && (ep.FailingSince == nil || ep.Status != EndpointActive) &&
		ep.LastSuccessAt != nil && now.Sub(*ep.LastSuccessAt) < resolution:
		return nil, nil
	case ok:
		if ep.Status == EndpointActive {
			ep.FailingSince = nil
		}
		if ep.LastSuccessAt == nil || now.After(*ep.LastSuccessAt) {
			ep.LastSuccessAt = &now
		}
	case gone:
		if ep.FailingSince == nil {
			ep.FailingSince = &now
		}
		ep.disable(now, nextVersion(ep.UpdatedAt, now), disabledGone)
	case ep.FailingSince == nil:
		ep.FailingSince = &now
	case now.Sub(*ep.FailingSince) >= disableAfter &&
		(ep.LastSuccessAt == nil || atLeast(now.Sub(*ep.LastSuccessAt), disableAfter, resolution, resolution)):
		ep.disable(now, nextVersion(ep.UpdatedAt, now), disabledFailing(*ep.FailingSince))
	default:
		return nil, nil
	}
	return ep.clone(), nil
}

// atLeast reports whether d is at least the sum of parts, all of them not
// negative, without overflowing.
func atLeast(d time.Duration, parts ...time.Duration) bool {
	for _, p := range parts {
		if d < p {
			return false
		}
		d -= p
	}
	return true
}

// disable makes ep inactive for reason at now, as of version.
func (ep *Endpoint) disable(now, version time.Time, reason string) {
	ep.Status = EndpointInactive
	ep.DisabledAt = &now
	ep.DisabledReason = reason
	ep.UpdatedAt = version
}

// The reasons the engine disables an endpoint for, as
// Endpoint.DisabledReason gives them. SQL stores write the same text.
const disabledGone = "answered 410 Gone"

// disabledFailing is the reason of an endpoint disabled because every
// delivery failed since since.
func disabledFailing(since time.Time) string {
	return "every delivery failed since " + since.UTC().Format("2006-01-02T15:04:05Z")
}
