package tasks

import (
	"cmp"
	"container/heap"
	"context"
	"slices"
	"time"
)

// limitKey names an app's flow key.
type limitKey struct{ app, key string }

// memLimit is a limit in a memory store, with its token bucket and the
// tasks that wait for it, by due time (their NextAttemptAt, unchanged while
// they wait).
type memLimit struct {
	flowState
	waiting dueHeap
}

// unwait takes m out of the tasks waiting for its limit, if it waits.
func (s *memoryStore) unwait(m *memTask) {
	if m.waitOn == nil {
		return
	}
	heap.Remove(&m.waitOn.waiting, m.heapIdx)
	m.waitOn = nil
	m.t.WaitReason = ""
}

// claimFlow is Claim when some key has a limit: it starts the tasks waiting
// for keys that have capacity again, oldest due first, then the due tasks,
// each if its key (if limited) has capacity; it parks the due tasks of keys
// that have none with their limit.
func (s *memoryStore) claimFlow(fc *flowClaim, limit int, now, expires time.Time) []*Task {
	for _, l := range s.limits {
		l.Running = 0
		l.refill(now)
	}
	for _, m := range s.running {
		if l := s.limits[limitKey{m.t.AppID, m.t.FlowKey}]; l != nil {
			l.Running++
		}
	}
	var (
		out  []*Task
		held []heldBy
	)
	started := func(m *memTask, l *memLimit) {
		l.take(1)
		if l.Concurrency > 0 {
			held = append(held, heldBy{m.t.ID, &l.flowState})
		}
		out = append(out, s.start(m, now, expires))
	}
	// The waiting tasks first: they were due before those in s.due.
	for _, l := range s.sortedLimits() {
		n, _ := l.capacity(limit - len(out))
		for ; n > 0 && len(l.waiting) > 0; n-- {
			m := heap.Pop(&l.waiting).(*memTask)
			m.waitOn = nil
			started(m, l)
		}
	}
	for m := s.nextDue(now); m != nil && len(out) < limit; m = s.nextDue(now) {
		s.removeDue(m)
		l := s.limits[limitKey{m.t.AppID, m.t.FlowKey}]
		if l == nil {
			out = append(out, s.start(m, now, expires))
			continue
		}
		if n, why := l.capacity(1); n == 0 {
			m.waitOn = l
			m.t.WaitReason = why
			heap.Push(&l.waiting, m)
			continue
		}
		started(m, l)
	}
	for _, l := range s.limits {
		if len(l.waiting) > 0 {
			fc.wake(l.wakeAt(now))
		}
	}
	fc.hold(held)
	return out
}

// sortedLimits returns the limits by app and key, so that claims visit
// them in the same order.
func (s *memoryStore) sortedLimits() []*memLimit {
	ls := make([]*memLimit, 0, len(s.limits))
	for _, l := range s.limits {
		ls = append(ls, l)
	}
	slices.SortFunc(ls, func(a, b *memLimit) int {
		return cmp.Or(cmp.Compare(a.AppID, b.AppID), cmp.Compare(a.Key, b.Key))
	})
	return ls
}

// limitOut returns a copy of l with its counts.
func (s *memoryStore) limitOut(l *memLimit) *Limit {
	out := l.Limit
	out.Running = 0
	for _, m := range s.running {
		if m.t.AppID == l.AppID && m.t.FlowKey == l.Key {
			out.Running++
		}
	}
	out.Waiting = len(l.waiting)
	return &out
}

// SetLimit implements [Store].
func (s *memoryStore) SetLimit(ctx context.Context, l *Limit) (*Limit, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock()
	k := limitKey{l.AppID, l.Key}
	ml := s.limits[k]
	if ml == nil {
		ml = &memLimit{flowState: flowState{tokens: float64(l.Burst), tokensAt: now}}
		if s.limits == nil {
			s.limits = make(map[limitKey]*memLimit)
		}
		s.limits[k] = ml
	} else if ml.Rate > 0 {
		ml.refill(now)
	} else { // it had no bucket: it starts full
		ml.tokens, ml.tokensAt = float64(l.Burst), now
	}
	ml.Limit = *l
	ml.UpdatedAt = now
	ml.tokens = min(ml.tokens, float64(l.Burst))
	s.waitFor(ml)
	return s.limitOut(ml), nil
}

// PauseLimit implements [Store].
func (s *memoryStore) PauseLimit(ctx context.Context, appID, key string, paused bool) (*Limit, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ml, ok := s.limits[limitKey{appID, key}]
	if !ok {
		return nil, ErrNotFound
	}
	now := s.clock()
	ml.refill(now)
	ml.Paused = paused
	ml.UpdatedAt = now
	s.waitFor(ml)
	return s.limitOut(ml), nil
}

// waitFor gives the tasks waiting for ml the reason its limit holds them
// back for, or makes them due again if it holds back none.
func (s *memoryStore) waitFor(ml *memLimit) {
	why := ml.waitReason()
	if why == "" {
		s.release(ml)
		return
	}
	for _, m := range ml.waiting {
		m.t.WaitReason = why
	}
}

// GetLimit implements [Store].
func (s *memoryStore) GetLimit(ctx context.Context, appID, key string) (*Limit, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ml, ok := s.limits[limitKey{appID, key}]
	if !ok {
		return nil, ErrNotFound
	}
	return s.limitOut(ml), nil
}

// ListLimits implements [Store].
func (s *memoryStore) ListLimits(ctx context.Context, appID string) ([]*Limit, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*Limit
	for _, ml := range s.sortedLimits() {
		if ml.AppID == appID {
			out = append(out, s.limitOut(ml))
		}
	}
	return out, nil
}

// DeleteLimit implements [Store].
func (s *memoryStore) DeleteLimit(ctx context.Context, appID, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k := limitKey{appID, key}
	ml, ok := s.limits[k]
	if !ok {
		return ErrNotFound
	}
	delete(s.limits, k)
	s.release(ml)
	return nil
}

// release makes the tasks waiting for ml due again, as they were.
func (s *memoryStore) release(ml *memLimit) {
	for len(ml.waiting) > 0 {
		m := ml.waiting[0]
		s.setDue(m, m.runAt) // takes it out of waiting
	}
}

// flowWake returns when the earliest task waiting for its key's capacity
// may start, or the zero time.
func (s *memoryStore) flowWake(now time.Time) time.Time {
	var fc flowClaim
	for _, l := range s.limits {
		if len(l.waiting) == 0 {
			continue
		}
		l.refill(now)
		l.Running = s.limitOut(l).Running
		fc.wake(l.wakeAt(now))
	}
	if fc.wakeAt.IsZero() {
		return fc.wakeAt
	}
	// To the microsecond, as every store keeps times, rounded up: a
	// token's time, at a rate such as 0.001/s, has nanoseconds.
	return fc.wakeAt.Add(time.Microsecond - 1).Truncate(time.Microsecond)
}
