package tasks

// The memory store's record of endpoints' health (Store.RecordEndpointHealth).

import (
	"context"
	"time"
)

// RecordEndpointHealth implements [Store].
func (s *memoryStore) RecordEndpointHealth(ctx context.Context, id string, ok, gone bool, disableAfter time.Duration) (*Endpoint, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if disableAfter < 0 {
		return nil, invalid("disable_after", "must not be negative")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ep, found := s.endpoints.get(id)
	if !found || ep.Status != EndpointActive {
		return nil, nil
	}
	now := s.clock()
	switch {
	case ok && ep.FailingSince == nil:
		return nil, nil
	case ok:
		ep.FailingSince = nil
	case gone:
		if ep.FailingSince == nil {
			ep.FailingSince = &now
		}
		ep.disable(now, nextVersion(ep.UpdatedAt, now), disabledGone)
	case ep.FailingSince == nil:
		ep.FailingSince = &now
	case now.Sub(*ep.FailingSince) >= disableAfter:
		ep.disable(now, nextVersion(ep.UpdatedAt, now), disabledFailing(*ep.FailingSince))
	default:
		return nil, nil
	}
	return ep.clone(), nil
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
