package tasks

import (
	"context"
	"slices"
	"time"
)

// PurgeTasks implements [Store]. It walks the store's tasks under its lock
// once per call: the engine calls it in batches, so the lock is held for
// one walk at a time.
func (s *memoryStore) PurgeTasks(ctx context.Context, state State, olderThan time.Duration, limit int) (int, error) {
	if err := purgeParams(state, olderThan, limit); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cutoff := s.clock().Add(-olderThan)
	var old []*memTask
	for _, m := range s.order {
		if m.t.State == state && m.t.CompletedAt != nil && m.t.CompletedAt.Before(cutoff) {
			old = append(old, m)
		}
	}
	if len(old) == 0 {
		return 0, nil
	}
	slices.SortFunc(old, func(a, b *memTask) int { return a.t.CompletedAt.Compare(*b.t.CompletedAt) })
	old = old[:min(limit, len(old))]
	doomed := make(map[*memTask]bool, len(old))
	for _, m := range old {
		doomed[m] = true
		s.remove(m) // a terminal task is neither due nor running
	}
	s.order = slices.DeleteFunc(s.order, func(m *memTask) bool { return doomed[m] })
	return len(old), nil
}

// memRole is who holds a role, and until when.
type memRole struct {
	holder  string
	expires time.Time
}

// Elect implements [Store].
func (s *memoryStore) Elect(ctx context.Context, role, holder string, term time.Duration) (bool, error) {
	if err := electParams(role, holder, term); err != nil {
		return false, err
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock()
	if r, ok := s.roles[role]; ok && r.holder != holder && r.expires.After(now) {
		return false, nil
	}
	if s.roles == nil {
		s.roles = make(map[string]memRole)
	}
	s.roles[role] = memRole{holder: holder, expires: now.Add(term)}
	return true, nil
}

// Resign implements [Store].
func (s *memoryStore) Resign(ctx context.Context, role, holder string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.roles[role]; ok && r.holder == holder {
		delete(s.roles, role)
	}
	return nil
}
