package tasks

import (
	"context"
	"slices"
	"time"
)

// Delete implements [Store].
func (s *memoryStore) Delete(ctx context.Context, id string) (*Task, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.tasks.get(id)
	if !ok {
		return nil, ErrNotFound
	}
	if m.t.State == StateRunning {
		return m.snapshot(), ErrInvalidState
	}
	t := m.snapshot()
	if m.t.State.Terminal() {
		s.ended[m.t.State].leave(m)
	}
	s.unsetDue(m)
	s.remove(m)
	if i, found := s.position(m.t.CreatedAt, m.t.ID); found {
		s.order = slices.Delete(s.order, i, i+1)
	}
	return t, nil
}

// ReplayMany implements [Store].
func (s *memoryStore) ReplayMany(ctx context.Context, p ListParams, extra int) (int, string, error) {
	return s.changeMany(ctx, p, replayableStates, func(m *memTask, now time.Time) error {
		return s.replay(m, now, extra)
	})
}

// CancelMany implements [Store].
func (s *memoryStore) CancelMany(ctx context.Context, p ListParams) (int, string, error) {
	return s.changeMany(ctx, p, cancelableStates, s.cancel)
}

// changeMany applies change, under the store's lock, to the tasks in a
// batch of a bulk operation on tasks in the states allowed (see
// Store.ReplayMany), and returns how many it changed and the cursor after
// the batch.
func (s *memoryStore) changeMany(ctx context.Context, p ListParams, allowed []State,
	change func(m *memTask, now time.Time) error) (int, string, error) {
	states, at, id, err := p.bulk(allowed)
	if err != nil {
		return 0, "", err
	}
	if err := ctx.Err(); err != nil {
		return 0, "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock()
	i, _ := s.position(at, id)
	n, seen := 0, 0
	var last *Task // the last task looked at
	for i--; i >= 0; i-- {
		t := &s.order[i].t
		if t.CreatedAt.Before(p.CreatedSince) {
			return n, "", nil
		}
		if t.AppID != p.AppID {
			continue
		}
		if seen == p.Limit {
			return n, encodeCursor(last), nil
		}
		seen++
		last = t
		if slices.Contains(states, t.State) && (p.EventType == "" || t.EventType == p.EventType) {
			if err := change(s.order[i], now); err != nil {
				return 0, "", err // cannot happen: the states allow the change
			}
			n++
		}
	}
	return n, "", nil
}
