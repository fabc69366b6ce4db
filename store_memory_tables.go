package tasks

// The memory store's tables of webhook endpoints, periodic tasks and
// revoked dashboard sessions, apart from its tasks in store_memory.go.

import (
	"context"
	"slices"
	"strings"
	"time"
)

// InsertEndpoint implements [Store].
func (s *memoryStore) InsertEndpoint(ctx context.Context, ep *Endpoint) (*Endpoint, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := ep.clone()
	c.normalize()
	c.CreatedAt = s.clock()
	c.UpdatedAt = c.CreatedAt
	c.FailingSince, c.LastSuccessAt, c.DisabledAt, c.DisabledReason = nil, nil, nil, ""
	if !s.endpoints.add(c.ID, c) {
		return nil, invalid("id", "endpoint %s exists", ep.ID)
	}
	return c.clone(), nil
}

// GetEndpoint implements [Store].
func (s *memoryStore) GetEndpoint(ctx context.Context, id string) (*Endpoint, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ep, ok := s.endpoints.get(id)
	if !ok {
		return nil, ErrNotFound
	}
	return ep.clone(), nil
}

// ListEndpoints implements [Store].
func (s *memoryStore) ListEndpoints(ctx context.Context, appID string) ([]*Endpoint, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if appID == "" {
		return s.endpoints.all(), nil
	}
	return s.endpoints.ofApp(appID), nil
}

// UpdateEndpoint implements [Store].
func (s *memoryStore) UpdateEndpoint(ctx context.Context, ep *Endpoint) (*Endpoint, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.endpoints.get(ep.ID)
	switch {
	case !ok:
		return nil, ErrNotFound
	case !old.UpdatedAt.Equal(ep.UpdatedAt):
		return nil, ErrConflict
	}
	c := ep.clone()
	c.normalize()
	if old.Status == EndpointInactive && c.Status == EndpointActive {
		old.FailingSince, old.DisabledAt, old.DisabledReason = nil, nil, "" // re-enabled
	}
	if c.URL != old.URL {
		old.FailingSince, old.LastSuccessAt = nil, nil // another receiver
	}
	old.URL, old.Description, old.EnabledEvents, old.Status = c.URL, c.Description, c.EnabledEvents, c.Status
	old.Version = c.Version
	old.RateLimit, old.MaxInFlight = c.RateLimit, c.MaxInFlight
	old.Secret, old.PreviousSecret, old.PreviousSecretExpiresAt = c.Secret, c.PreviousSecret, c.PreviousSecretExpiresAt
	old.UpdatedAt = nextVersion(old.UpdatedAt, s.clock())
	s.wakeEndpointWaiters(old)
	return old.clone(), nil
}

// wakeEndpointWaiters makes the tasks that wait for ep's limits, which may
// have been raised or removed, due now, as SQL stores do.
func (s *memoryStore) wakeEndpointWaiters(ep *Endpoint) {
	slots, rate := waitEndpointSlots(ep.ID), waitEndpointRate(ep.ID)
	now := s.clock()
	for m := range s.tasks.all() {
		if m.t.AppID != ep.AppID || !m.t.State.pending() || m.waitOn != nil ||
			m.waitEndpoint != ep.ID && m.t.WaitReason != slots && m.t.WaitReason != rate || !m.runAt.After(now) {
			continue
		}
		why := m.t.WaitReason
		m.waitEndpoint = ""
		s.setDue(m, now)
		m.t.WaitReason = why
	}
}

// DeleteEndpoint implements [Store].
func (s *memoryStore) DeleteEndpoint(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.endpoints.remove(id) {
		return ErrNotFound
	}
	delete(s.epFlow, id)
	return nil
}

// InsertPeriodic implements [Store].
func (s *memoryStore) InsertPeriodic(ctx context.Context, p *PeriodicTask) (*PeriodicTask, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := p.clone()
	c.normalize()
	c.LastRunAt, c.LastTaskID = nil, nil
	c.CreatedAt = s.clock()
	c.UpdatedAt = c.CreatedAt
	if !s.periodics.add(c.ID, c) {
		return nil, invalid("id", "periodic task %s exists", p.ID)
	}
	return c.clone(), nil
}

// GetPeriodic implements [Store].
func (s *memoryStore) GetPeriodic(ctx context.Context, id string) (*PeriodicTask, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.periodics.get(id)
	if !ok {
		return nil, ErrNotFound
	}
	return p.clone(), nil
}

// ListPeriodics implements [Store].
func (s *memoryStore) ListPeriodics(ctx context.Context, appID string) ([]*PeriodicTask, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.periodics.ofApp(appID), nil
}

// UpdatePeriodic implements [Store].
func (s *memoryStore) UpdatePeriodic(ctx context.Context, p *PeriodicTask) (*PeriodicTask, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.periodics.get(p.ID)
	switch {
	case !ok:
		return nil, ErrNotFound
	case !old.UpdatedAt.Equal(p.UpdatedAt):
		return nil, ErrConflict
	}
	c := p.clone()
	c.normalize()
	old.Spec, old.TimeZone, old.EventType, old.Data = c.Spec, c.TimeZone, c.EventType, c.Data
	old.Status, old.Missed, old.NextRunAt = c.Status, c.Missed, c.NextRunAt
	old.UpdatedAt = nextVersion(old.UpdatedAt, s.clock())
	return old.clone(), nil
}

// DeletePeriodic implements [Store].
func (s *memoryStore) DeletePeriodic(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.periodics.remove(id) {
		return ErrNotFound
	}
	return nil
}

// DuePeriodics implements [Store].
func (s *memoryStore) DuePeriodics(ctx context.Context, within time.Duration, limit int) (time.Time, []*PeriodicTask, error) {
	if err := ctx.Err(); err != nil {
		return time.Time{}, nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock()
	until := now.Add(within)
	var due []*PeriodicTask
	for _, p := range s.periodics.order {
		if p.Status == PeriodicActive && p.NextRunAt != nil && !p.NextRunAt.After(until) {
			due = append(due, p)
		}
	}
	slices.SortFunc(due, func(a, b *PeriodicTask) int {
		if c := a.NextRunAt.Compare(*b.NextRunAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	due = due[:min(len(due), max(limit, 0))]
	for i, p := range due {
		due[i] = p.clone()
	}
	return now, due, nil
}

// AdvancePeriodic implements [Store].
func (s *memoryStore) AdvancePeriodic(ctx context.Context, id string, from, to, lastRunAt time.Time, lastTaskID string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.periodics.get(id)
	if !ok || p.NextRunAt == nil || !p.NextRunAt.Equal(from.UTC().Truncate(time.Microsecond)) {
		return false, nil
	}
	p.NextRunAt = new(to.UTC().Truncate(time.Microsecond))
	if lastTaskID != "" {
		p.LastRunAt = new(lastRunAt.UTC().Truncate(time.Microsecond))
		p.LastTaskID = new(lastTaskID)
	}
	return true, nil
}

// RevokeSession implements [Store].
func (s *memoryStore) RevokeSession(ctx context.Context, id string, expires time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock()
	for id, exp := range s.revoked {
		if !now.Before(exp) {
			delete(s.revoked, id)
		}
	}
	if s.revoked == nil {
		s.revoked = make(map[string]time.Time)
	}
	s.revoked[id] = expires.UTC().Truncate(time.Microsecond)
	return nil
}

// SessionRevoked implements [Store].
func (s *memoryStore) SessionRevoked(ctx context.Context, id string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, ok := s.revoked[id]
	return ok && s.clock().Before(exp), nil
}

// nextVersion returns the UpdatedAt of an update at now of a record last
// updated at prev: now, or a microsecond after prev when now is not later,
// so that UpdatedAt, the version that updates compare and set, never
// repeats.
func nextVersion(prev, now time.Time) time.Time {
	if next := prev.Add(time.Microsecond); now.Before(next) {
		return next
	}
	return now
}
