package tasks

import (
	"context"
	"slices"
	"time"
)

// ended is a queue of the tasks that ended in one terminal state, in the
// order they ended, which PurgeTasks reads from the front. setState
// appends a task each time it ends; an entry whose task was replayed,
// deleted or ended again since (its generation moved on) is stale, and
// skipped when reached.
type ended struct {
	q    []endedTask
	head int // q[:head] are consumed
}

type endedTask struct {
	m   *memTask
	gen uint64 // m.ended when it was queued
}

// push queues m, which has just ended.
func (e *ended) push(m *memTask) {
	m.ended++
	if e.head > 0 && e.head >= len(e.q)/2 {
		e.q = append(e.q[:0], e.q[e.head:]...)
		e.head = 0
	}
	e.q = append(e.q, endedTask{m, m.ended})
}

// PurgeTasks implements [Store]. It reads the queue of the tasks that
// ended in state from its front, so a call costs the tasks it deletes and
// the stale entries it passes, not the store's size: oldest first, as
// long as the store's clock does not go back.
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
	e := s.ended[state]
	if e == nil {
		return 0, nil
	}
	doomed := make(map[*memTask]bool)
	for ; e.head < len(e.q) && len(doomed) < limit; e.head++ {
		x := e.q[e.head]
		m := x.m
		if s.tasks[m.t.ID] != m || m.t.State != state || m.ended != x.gen || m.t.CompletedAt == nil {
			e.q[e.head] = endedTask{} // stale; let it be collected
			continue
		}
		if !m.t.CompletedAt.Before(cutoff) {
			break
		}
		doomed[m] = true
		s.remove(m) // a terminal task is neither due nor running
		e.q[e.head] = endedTask{}
	}
	if len(doomed) > 0 {
		s.order = slices.DeleteFunc(s.order, func(m *memTask) bool { return doomed[m] })
	}
	return len(doomed), nil
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
