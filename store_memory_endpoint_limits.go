package tasks

// The memory store's limits per endpoint (Store.TakeEndpointCapacity,
// ReleaseEndpointCapacity and Finish's waiting outcomes); see
// endpoint_limits.go for the design.

import (
	"container/heap"
	"context"
	"time"
)

// memEndpointFlow is the state of an endpoint's limits: its token bucket,
// its slots and the tasks that wait for one.
type memEndpointFlow struct {
	rate     float64   // the RateLimit the bucket is of: a change refills it
	tokens   float64   // in the bucket at tokensAt
	tokensAt time.Time // zero: full
	queue    time.Time // see endpointCapacity
	slots    map[Lease]bool
	reserved map[Lease]bool    // attempts queued for a token; see endpointCapacity
	waiters  map[*memTask]bool // may hold tasks that no longer wait; see wake
}

// endpointFlow returns the state of endpoint id's limits, new if need be.
func (s *memoryStore) endpointFlow(id string) *memEndpointFlow {
	f := s.epFlow[id]
	if f == nil {
		f = &memEndpointFlow{slots: make(map[Lease]bool), reserved: make(map[Lease]bool), waiters: make(map[*memTask]bool)}
		if s.epFlow == nil {
			s.epFlow = make(map[string]*memEndpointFlow)
		}
		s.epFlow[id] = f
	}
	return f
}

// inFlight returns how many slots of f are held by running attempts, and
// forgets the others.
func (s *memoryStore) inFlight(f *memEndpointFlow) int {
	for l := range f.slots {
		if s.fenced(l) == nil {
			delete(f.slots, l)
		}
	}
	return len(f.slots)
}

// TakeEndpointCapacity implements [Store].
func (s *memoryStore) TakeEndpointCapacity(ctx context.Context, endpointID string, l Lease, park int, reason string) (bool, time.Duration, []Due, error) {
	if err := ctx.Err(); err != nil {
		return false, 0, nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	running := s.fenced(l)
	if running == nil {
		return false, 0, nil, ErrInvalidState
	}
	ep, ok := s.endpoints.get(endpointID)
	if !ok || !ep.limited() {
		return true, 0, nil, nil
	}
	f := s.endpointFlow(endpointID)
	if f.slots[l] {
		return true, 0, nil, nil
	}
	now := s.clock()
	var bucket *flowState
	if ep.RateLimit > 0 {
		if f.rate != ep.RateLimit {
			f.rate, f.tokensAt, f.queue = ep.RateLimit, time.Time{}, time.Time{}
			clear(f.reserved)
		}
		if !f.queue.IsZero() && !f.queue.After(now) {
			// The queue drained: the marks left are of deliveries that
			// never came back (canceled, deleted), as on SQL stores.
			f.queue = time.Time{}
			clear(f.reserved)
		}
		bucket = endpointBucket(ep.RateLimit, f.tokens, f.tokensAt, now)
	}
	took, wait, reserve := endpointCapacity(ep.MaxInFlight, s.inFlight(f), bucket, &f.queue, f.reserved[l], now)
	if bucket != nil {
		f.tokens, f.tokensAt = bucket.tokens, bucket.tokensAt
	}
	if reserve {
		f.reserved[l] = true
	} else {
		delete(f.reserved, l)
	}
	var parked []Due
	if !took && wait > 0 && park > 0 {
		parked = s.parkForEndpoint(f, &running.t, park, reason, endpointStep(ep.RateLimit), now)
	}
	if took && ep.MaxInFlight > 0 {
		f.slots[l] = true
	}
	return took, wait, parked, nil
}

// parkForEndpoint parks up to n due tasks of t's app and event type for
// the rate limit of the endpoint of f, among the app's parkScan oldest
// due (see Store.TakeEndpointCapacity), queued one step after the other
// from f.queue, which it moves past the last.
func (s *memoryStore) parkForEndpoint(f *memEndpointFlow, t *Task, n int, reason string, step time.Duration, now time.Time) []Due {
	a := s.dueApps[t.AppID]
	if a == nil {
		return nil
	}
	// The app's oldest due tasks, visited in order through its heap: a
	// node comes after its parent, so the next is the least of the
	// children of those visited.
	var pick []*memTask
	next := &heapOrder{h: a.tasks}
	next.push(0, now)
	for seen := 0; next.Len() > 0 && seen < parkScan && len(pick) < n; seen++ {
		i := heap.Pop(next).(int)
		next.push(2*i+1, now)
		next.push(2*i+2, now)
		m := next.h[i]
		if m.t.EventType == t.EventType && m.t.Attempts == m.t.ReplayedAfter && m.t.EndpointID == nil &&
			m.waitEndpoint == "" && !f.reserved[Lease{ID: m.t.ID, Attempt: m.t.Attempts + 1}] {
			pick = append(pick, m)
		}
	}
	parked := make([]Due, len(pick))
	for i, m := range pick {
		// Due times are kept to the microsecond; not before the turn.
		at := f.queue.Truncate(time.Microsecond)
		if at.Before(f.queue) {
			at = at.Add(time.Microsecond)
		}
		s.setDue(m, at)
		m.t.WaitReason = reason
		f.reserved[Lease{ID: m.t.ID, Attempt: m.t.Attempts + 1}] = true
		parked[i] = Due{ID: m.t.ID, RunAt: m.runAt}
		f.queue = f.queue.Add(step)
	}
	return parked
}

// ReleaseEndpointCapacity implements [Store].
func (s *memoryStore) ReleaseEndpointCapacity(ctx context.Context, endpointID string, l Lease) ([]Due, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.epFlow[endpointID]
	if f == nil {
		return nil, nil
	}
	delete(f.slots, l)
	if m := s.wake(endpointID, f); m != nil {
		return []Due{{ID: m.t.ID, RunAt: m.runAt}}, nil
	}
	return nil, nil
}

// wake makes the task waiting for a slot of endpoint id with the earliest
// due time due now, and returns it, or nil if none waits.
func (s *memoryStore) wake(id string, f *memEndpointFlow) *memTask {
	var first *memTask
	for m := range f.waiters {
		if m.waitEndpoint != id || !m.t.State.pending() {
			delete(f.waiters, m) // claimed, canceled or deleted since
			continue
		}
		if first == nil || m.runAt.Before(first.runAt) || m.runAt.Equal(first.runAt) && m.t.ID < first.t.ID {
			first = m
		}
	}
	if first == nil {
		return nil
	}
	delete(f.waiters, first)
	first.waitEndpoint = ""
	why := first.t.WaitReason
	if first.waitOn == nil {
		s.setDue(first, s.clock())
	}
	first.t.WaitReason = why
	return first
}

// sweepEndpointFlows forgets, as the SQL stores' rescues do, what no
// attempt holds any more: slots of attempts that no longer run, marks of
// queued attempts whose tasks neither wait to run them nor run them, and
// tasks that no longer wait for a slot.
func (s *memoryStore) sweepEndpointFlows() {
	for id, f := range s.epFlow {
		s.inFlight(f)
		for l := range f.reserved {
			m := s.tasks.at(l.ID)
			if m == nil || !(m.t.State == StateRunning && m.t.Attempts == l.Attempt ||
				m.t.State.pending() && m.t.Attempts+1 == l.Attempt) {
				delete(f.reserved, l)
			}
		}
		for m := range f.waiters {
			if m.waitEndpoint != id || !m.t.State.pending() {
				delete(f.waiters, m)
			}
		}
	}
}

// finishWaiting applies the outcome o, which waits for an endpoint's
// capacity, to the task m, running at o's attempt.
func (s *memoryStore) finishWaiting(m *memTask, o *Outcome, now time.Time) {
	if m.t.CancelRequested {
		s.end(m, now, StateCanceled, "", 0)
		m.t.Attempts--
		return
	}
	delete(s.running, m.t.ID)
	m.t.Attempts--
	st := StateRetrying
	if m.t.Attempts <= m.t.ReplayedAfter {
		st = StateScheduled
	}
	s.setState(m, st)
	m.t.UpdatedAt = now
	m.t.LeaseExpiresAt = nil
	at := now.Add(o.Delay)
	if o.WaitEndpoint != "" {
		ep, ok := s.endpoints.get(o.WaitEndpoint)
		f := s.endpointFlow(o.WaitEndpoint)
		if !ok || ep.MaxInFlight <= 0 || s.inFlight(f) < ep.MaxInFlight {
			at = now // a slot freed meanwhile
		} else {
			m.waitEndpoint = o.WaitEndpoint
			f.waiters[m] = true
		}
	}
	s.setDue(m, at)
	m.t.WaitReason = o.WaitReason
}

// heapOrder visits a due heap's nodes in order: it holds the indexes of
// those that may come next.
type heapOrder struct {
	h   dueHeap
	idx []int
}

func (o *heapOrder) Len() int           { return len(o.idx) }
func (o *heapOrder) Less(i, j int) bool { return o.h.Less(o.idx[i], o.idx[j]) }
func (o *heapOrder) Swap(i, j int)      { o.idx[i], o.idx[j] = o.idx[j], o.idx[i] }
func (o *heapOrder) Push(x any)         { o.idx = append(o.idx, x.(int)) }
func (o *heapOrder) Pop() any {
	i := o.idx[len(o.idx)-1]
	o.idx = o.idx[:len(o.idx)-1]
	return i
}

// push adds node i, if the heap has it and it is due at now.
func (o *heapOrder) push(i int, now time.Time) {
	if i < len(o.h) && !o.h[i].runAt.After(now) {
		heap.Push(o, i)
	}
}
