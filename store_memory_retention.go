package tasks

import (
	"context"
	"slices"
	"time"
)

// ended is a queue of the tasks that ended in one terminal state, in the
// order they ended, which PurgeTasks reads from the front. setState
// appends a task each time it ends. An entry whose task was replayed,
// deleted or ended again since is stale: leave moves the task's
// generation on, so that the entry no longer matches it, and counts it;
// PurgeTasks skips stale entries when it reaches them, and leave drops
// them all once they are more than half of the queue, so that the queue
// holds at most about twice the tasks in its state and no task that is
// gone, even in a state that is never purged (kept Forever).
type ended struct {
	q     []endedTask
	head  int // q[:head] are consumed
	stale int // the stale entries in q[head:]
}

type endedTask struct {
	m   *memTask
	gen uint64 // m.ended when it was queued
}

// push queues m, which has just ended.
func (e *ended) push(m *memTask) {
	m.ended++
	if e.head > 0 && e.head >= len(e.q)/2 {
		n := copy(e.q, e.q[e.head:])
		clear(e.q[n:]) // let the tasks of the entries copied down be collected
		e.q = e.q[:n]
		e.head = 0
	}
	e.q = append(e.q, endedTask{m, m.ended})
}

// leave makes the entry of m, a task in the queue's state that is leaving
// it (replayed, ended in another state or deleted), stale, and drops the
// stale entries if they are more than half of the queue: the cost of
// dropping them is spread over the leaves that made them stale.
func (e *ended) leave(m *memTask) {
	m.ended++
	e.stale++
	if e.stale*2 <= len(e.q)-e.head {
		return
	}
	live := make([]endedTask, 0, len(e.q)-e.head-e.stale)
	for _, x := range e.q[e.head:] {
		if x.m.ended == x.gen {
			live = append(live, x)
		}
	}
	e.q, e.head, e.stale = live, 0, 0
}

// PurgeTasks implements [Store]. It reads the queue of the tasks that
// ended in state from its front, so that it finds the tasks it deletes at
// the cost of those tasks and of the stale entries it passes, not of the
// store's size: oldest first, as long as the store's clock does not go
// back (when it does, a task may wait for one that ended before the jump
// and is younger). Taking them out of the store's list order costs a
// binary search each and one pass that moves the tasks listed after the
// oldest of them.
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
	var doomed []*memTask
	for ; e.head < len(e.q) && len(doomed) < limit; e.head++ {
		x := e.q[e.head]
		m := x.m
		if m.ended != x.gen {
			e.q[e.head] = endedTask{} // stale; let it be collected
			e.stale--
			continue
		}
		if !m.t.CompletedAt.Before(cutoff) {
			break
		}
		doomed = append(doomed, m)
		s.remove(m) // a terminal task is neither due nor running
		e.q[e.head] = endedTask{}
	}
	s.unlist(doomed)
	return len(doomed), nil
}

// unlist takes the tasks ms out of s.order: it finds each by binary
// search, then closes the gaps in one pass from the first of them.
func (s *memoryStore) unlist(ms []*memTask) {
	if len(ms) == 0 {
		return
	}
	at := make([]int, 0, len(ms))
	for _, m := range ms {
		if i, found := s.position(m.t.CreatedAt, m.t.ID); found {
			at = append(at, i)
		}
	}
	slices.Sort(at)
	at = slices.Compact(at)
	if len(at) == 0 {
		return
	}
	w := at[0]
	for k, i := range at {
		next := len(s.order)
		if k+1 < len(at) {
			next = at[k+1]
		}
		w += copy(s.order[w:], s.order[i+1:next])
	}
	clear(s.order[w:])
	s.order = s.order[:w]
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
