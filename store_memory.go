package tasks

import (
	"context"
	"database/sql"
	"maps"
	"slices"
	"sync"
	"time"
)

// memoryStore is the Store of NewMemoryStore.
type memoryStore struct {
	mu      sync.Mutex
	tasks   taskIndex // every task, by ID; see store_memory_index.go
	idem    map[idemKey]*memTask
	due     appHeap                  // pending tasks by app, by NextAttemptAt; see store_memory_due.go
	dueApps map[string]*appDue       // the apps in due
	running map[string]*memTask      // for Rescue
	order   []*memTask               // every task, oldest first (List order reversed)
	counts  map[string]map[State]int // by app and state, for CountTasks; see countState
	ended   map[State]*ended         // the tasks that ended, by state, for PurgeTasks
	now     func() time.Time

	endpoints memTable[Endpoint, *Endpoint]
	periodics memTable[PeriodicTask, *PeriodicTask]
	revoked   map[string]time.Time        // dashboard sessions logged out, until they expire
	roles     map[string]memRole          // see Elect
	limits    map[limitKey]*memLimit      // flow control; see store_memory_flow.go
	epFlow    map[string]*memEndpointFlow // limits per endpoint, by ID; see store_memory_endpoint_limits.go

	// ready counts the tasks made pending to run at once (memTask.ready),
	// for Config.MaxWaiting.
	ready int
}

// memRecord is a record a memTable keeps: it copies itself and names its app.
type memRecord[R any] interface {
	*R
	clone() *R
	app() string
}

// memTable keeps one kind of record by ID, in the order they were added.
// The memoryStore's mutex guards it; its zero value is empty.
type memTable[R any, P memRecord[R]] struct {
	byID  map[string]P
	order []P // oldest first
}

// add adds r under id, unless id is taken.
func (m *memTable[R, P]) add(id string, r P) bool {
	if _, ok := m.byID[id]; ok {
		return false
	}
	if m.byID == nil {
		m.byID = make(map[string]P)
	}
	m.byID[id] = r
	m.order = append(m.order, r)
	return true
}

func (m *memTable[R, P]) get(id string) (P, bool) {
	r, ok := m.byID[id]
	return r, ok
}

// remove removes the record with the given ID, if there is one.
func (m *memTable[R, P]) remove(id string) bool {
	r, ok := m.byID[id]
	if ok {
		delete(m.byID, id)
		m.order = slices.DeleteFunc(m.order, func(x P) bool { return x == r })
	}
	return ok
}

// all returns copies of every record, oldest first.
func (m *memTable[R, P]) all() []*R {
	out := make([]*R, len(m.order))
	for i, r := range m.order {
		out[i] = r.clone()
	}
	return out
}

// ofApp returns copies of an app's records, oldest first.
func (m *memTable[R, P]) ofApp(appID string) []*R {
	var out []*R
	for _, r := range m.order {
		if r.app() == appID {
			out = append(out, r.clone())
		}
	}
	return out
}

type idemKey struct{ app, key string }

// memTask is a stored task plus its place in the due heap.
type memTask struct {
	t     Task
	runAt time.Time // NextAttemptAt while pending
	// scheduled is where ScheduledRunTime points, if set: a field of the
	// task, not an allocation of its own.
	scheduled time.Time
	heapIdx   int       // index in dueIn.tasks, or in waitOn.waiting, or -1
	dueIn     *appDue   // its app's pending tasks, while it is one
	waitOn    *memLimit // the limit it waits for, or nil
	// waitEndpoint is the endpoint for a slot of which it waits, or "".
	waitEndpoint string
	attempts     []Attempt // its history
	ended        uint64    // how many times it ended; see memoryStore.ended
	// ready reports whether it was made pending to run at once, and is
	// still in the due heap: counted in memoryStore.ready.
	ready bool
}

// NewMemoryStore returns an empty [Store] that keeps tasks in this process's
// memory. It is the reference implementation of the Store contract, and it
// is fast, but it is not durable: its tasks are gone when the process ends.
// Use it in tests and for work that may be lost; use [SQLStore] for anything
// else. It is safe for concurrent use by several engines in one process;
// its InsertTx and Listen return ErrNotSupported.
func NewMemoryStore() Store {
	return newMemoryStore()
}

// newMemoryStore is NewMemoryStore for the package's own tests, which set
// its clock.
func newMemoryStore() *memoryStore {
	return &memoryStore{
		idem:    make(map[idemKey]*memTask),
		running: make(map[string]*memTask),
		counts:  make(map[string]map[State]int),
		ended:   map[State]*ended{StateCompleted: {}, StateFailed: {}, StateCanceled: {}},
		now:     time.Now,
	}
}

// Durable reports false: a memory store loses its tasks when the process ends.
func (s *memoryStore) Durable() bool { return false }

// InsertTx returns ErrNotSupported: a memory store has no database to
// share a transaction with.
func (s *memoryStore) InsertTx(context.Context, *sql.Tx, *Task) (*Task, error) {
	return nil, ErrNotSupported
}

// Listen returns ErrNotSupported: engines sharing a memory store are in one
// process, and see each other's tasks through it at their next poll.
func (s *memoryStore) Listen(context.Context, func(), func(Due)) error {
	return ErrNotSupported
}

func (s *memoryStore) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// snapshot returns a copy of m's task that shares nothing with the store.
func (m *memTask) snapshot() *Task {
	t := m.t
	t.Data = slices.Clone(m.t.Data)
	t.ScheduledRunTime = cloneTime(m.t.ScheduledRunTime)
	t.NextAttemptAt = cloneTime(m.t.NextAttemptAt)
	t.CompletedAt = cloneTime(m.t.CompletedAt)
	t.LeaseExpiresAt = cloneTime(m.t.LeaseExpiresAt)
	if m.t.EndpointID != nil {
		t.EndpointID = new(*m.t.EndpointID)
	}
	return &t
}

func cloneTime(p *time.Time) *time.Time {
	if p == nil {
		return nil
	}
	t := *p
	return &t
}

// Insert implements [Store].
func (s *memoryStore) Insert(ctx context.Context, t *Task) (*Task, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.admit(ctx); err != nil {
		return nil, err
	}
	if m := s.holder(t); m != nil {
		return m.snapshot(), ErrDuplicate
	}
	if _, ok := s.tasks.get(t.ID); ok {
		return nil, invalid("id", "task %s exists", t.ID)
	}
	return s.add(t, s.clock()).snapshot(), nil
}

// InsertMany implements [Store].
func (s *memoryStore) InsertMany(ctx context.Context, ts []*Task) ([]*Task, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.admit(ctx); err != nil {
		return nil, err
	}
	// Check every task before storing any: all or none.
	ids := make(map[string]bool, len(ts))
	keys := make(map[idemKey]bool)
	for _, t := range ts {
		k := idemKey{t.AppID, t.IdempotencyKey}
		if t.IdempotencyKey != "" && (keys[k] || s.holder(t) != nil) {
			continue // not stored
		}
		if _, ok := s.tasks.get(t.ID); ok || ids[t.ID] {
			return nil, invalid("id", "task %s exists", t.ID)
		}
		ids[t.ID] = true
		if t.IdempotencyKey != "" {
			keys[k] = true
		}
	}
	now := s.clock()
	got := make([]*Task, len(ts))
	for i, t := range ts {
		m := s.holder(t)
		if m == nil {
			m = s.add(t, now)
		}
		got[i] = m.snapshot()
	}
	return got, nil
}

// holder returns the task that holds t's idempotency key, or nil.
func (s *memoryStore) holder(t *Task) *memTask {
	if t.IdempotencyKey == "" {
		return nil
	}
	return s.idem[idemKey{t.AppID, t.IdempotencyKey}]
}

// remove takes the stored task m out of the store, as add put it in, but
// for s.order, which the caller updates: a task that is removed must be
// neither due nor running.
func (s *memoryStore) remove(m *memTask) {
	s.tasks.remove(m.t.ID)
	if m.t.IdempotencyKey != "" {
		delete(s.idem, idemKey{m.t.AppID, m.t.IdempotencyKey})
	}
	s.countState(m.t.AppID, m.t.State, -1)
}

// add stores a copy of t as a new scheduled task, created now.
func (s *memoryStore) add(t *Task, now time.Time) *memTask {
	m := &memTask{t: *t, heapIdx: -1}
	m.t.Data = slices.Clone(t.Data)
	m.t.FlowKey = flowKey(t.FlowKey, t.EventType)
	m.t.WaitReason = ""
	m.t.State = StateScheduled
	s.countState(m.t.AppID, StateScheduled, 1)
	m.t.CreatedAt, m.t.UpdatedAt = now, now
	m.t.Attempts, m.t.ReplayedAfter, m.t.LastError, m.t.CancelRequested = 0, 0, "", false
	m.t.CompletedAt, m.t.LeaseExpiresAt, m.t.EndpointID = nil, nil, nil
	if t.ScheduledRunTime != nil {
		m.scheduled = t.ScheduledRunTime.UTC().Truncate(time.Microsecond)
		m.t.ScheduledRunTime = &m.scheduled
	}
	s.schedule(m, now, m.t.ScheduledRunTime)
	s.tasks.put(m)
	if m.t.IdempotencyKey != "" {
		s.idem[idemKey{m.t.AppID, m.t.IdempotencyKey}] = m
	}
	// Keep order sorted by (CreatedAt, ID); appends are the common case.
	i := len(s.order)
	for i > 0 && listBefore(&s.order[i-1].t, &m.t) {
		i--
	}
	s.order = slices.Insert(s.order, i, m)
	return m
}

// schedule makes m pending and due at runAt, or now when runAt is nil or past.
func (s *memoryStore) schedule(m *memTask, now time.Time, runAt *time.Time) {
	at := now
	if runAt != nil && runAt.After(now) {
		at = *runAt
	}
	s.setDue(m, at)
	if at.Equal(now) {
		m.ready = true
		s.ready++
	}
}

// unready takes m, leaving the due heap or due at another time, out of
// the count of tasks pending to run at once.
func (s *memoryStore) unready(m *memTask) {
	if m.ready {
		m.ready = false
		s.ready--
	}
}

// waitingTasks returns how many tasks wait to run at once (enqueued,
// replayed or rescheduled to run as soon as possible) and have not
// started: the count that Config.MaxWaiting bounds. Tasks that fall due
// later are not counted.
func (s *memoryStore) waitingTasks() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ready
}

// admit applies, under s.mu, the Config.MaxWaiting that Engine.admit put
// in ctx, if any.
func (s *memoryStore) admit(ctx context.Context) error {
	if max, ok := ctx.Value(maxWaitingKey{}).(int); ok {
		return overloaded(s.ready, max)
	}
	return nil
}

// setDue puts m in the due heap at at and mirrors it in NextAttemptAt.
func (s *memoryStore) setDue(m *memTask, at time.Time) {
	s.unwait(m)
	s.unready(m)
	m.runAt = at
	m.t.NextAttemptAt = &m.runAt
	if m.dueIn != nil {
		s.fixDue(m)
	} else {
		s.pushDue(m)
	}
}

// unsetDue takes m out of the due heap.
func (s *memoryStore) unsetDue(m *memTask) {
	s.unready(m)
	if m.waitOn != nil {
		s.unwait(m)
	} else if m.dueIn != nil {
		s.removeDue(m)
	}
	m.t.NextAttemptAt = nil
}

// Get implements [Store].
func (s *memoryStore) Get(ctx context.Context, id string) (*Task, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.tasks.get(id)
	if !ok {
		return nil, ErrNotFound
	}
	return m.snapshot(), nil
}

// GetByIdempotencyKey implements [Store].
func (s *memoryStore) GetByIdempotencyKey(ctx context.Context, appID, key string) (*Task, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.holder(&Task{AppID: appID, IdempotencyKey: key})
	if m == nil {
		return nil, ErrNotFound
	}
	return m.snapshot(), nil
}

// List implements [Store].
func (s *memoryStore) List(ctx context.Context, p ListParams) ([]*Task, string, error) {
	if err := p.normalize(); err != nil {
		return nil, "", err
	}
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	i := len(s.order)
	if p.Cursor != "" {
		at, id, _ := decodeCursor(p.Cursor)
		i, _ = s.position(at, id)
	}
	var out []*Task
	var size int64 // of out, as MaxBytes counts it
	for i--; i >= 0; i-- {
		t := &s.order[i].t
		if !p.listed(t) {
			continue
		}
		size += listSize(t)
		if len(out) == p.Limit || len(out) > 0 && p.MaxBytes > 0 && size > p.MaxBytes {
			return out, encodeCursor(out[len(out)-1]), nil
		}
		out = append(out, s.order[i].snapshot())
	}
	return out, "", nil
}

// position returns the index in s.order of the first task that does not
// come after the position (at, id) in List order, so that the tasks after
// it are those below the index, and whether that task is at the position.
func (s *memoryStore) position(at time.Time, id string) (int, bool) {
	pos := &Task{CreatedAt: at, ID: id}
	return slices.BinarySearchFunc(s.order, pos, func(m *memTask, pos *Task) int {
		switch {
		case listBefore(pos, &m.t):
			return -1
		case m.t.ID == pos.ID && m.t.CreatedAt.Equal(pos.CreatedAt):
			return 0
		}
		return 1
	})
}

// Claim implements [Store].
func (s *memoryStore) Claim(ctx context.Context, limit int, lease time.Duration) ([]*Task, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock()
	expires := now.Add(lease)
	if len(s.limits) > 0 {
		return s.claimFlow(flowClaimOf(ctx), limit, now, expires), nil
	}
	return s.claimFair(limit, now, expires), nil
}

// start moves m, taken out of its heap, to running under a lease until
// expires, and returns a snapshot of it.
func (s *memoryStore) start(m *memTask, now, expires time.Time) *Task {
	m.t.NextAttemptAt = nil
	m.t.WaitReason = ""
	m.waitEndpoint = ""
	s.setState(m, StateRunning)
	m.t.Attempts++
	m.t.UpdatedAt = now
	exp := expires
	m.t.LeaseExpiresAt = &exp
	s.running[m.t.ID] = m
	snap := m.snapshot()
	snap.dueAt = m.runAt // when it was due; a waiting task's too
	return snap
}

// fenced returns the task of l if it is still running at l's attempt.
func (s *memoryStore) fenced(l Lease) *memTask {
	m, ok := s.running[l.ID]
	if !ok || m.t.Attempts != l.Attempt {
		return nil
	}
	return m
}

// Finish implements [Store].
func (s *memoryStore) Finish(ctx context.Context, outs []Outcome) ([]bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock()
	applied := make([]bool, len(outs))
	for i, o := range outs {
		m := s.fenced(Lease{ID: o.ID, Attempt: o.Attempt})
		if m == nil {
			continue
		}
		applied[i] = true
		s.record(m, &o)
		if o.WaitReason != "" {
			s.finishWaiting(m, &o, now)
			continue
		}
		state := o.State
		if state == StateRetrying && m.t.CancelRequested {
			state = StateCanceled
		}
		s.end(m, now, state, o.Error, o.Delay)
	}
	return applied, nil
}

// record stores what the outcome o, which applies, records besides the
// task's state: its endpoint and its attempts.
func (s *memoryStore) record(m *memTask, o *Outcome) {
	if o.EndpointID != "" {
		m.t.EndpointID = new(o.EndpointID)
	}
	for _, a := range o.Attempts {
		a.TaskID = o.ID
		a.StartedAt = a.StartedAt.UTC().Truncate(time.Microsecond)
		a.Duration = a.Duration.Truncate(time.Microsecond)
		m.attempts = append(m.attempts, a)
	}
}

// end moves the running task m to state.
func (s *memoryStore) end(m *memTask, now time.Time, state State, errMsg string, delay time.Duration) {
	delete(s.running, m.t.ID)
	s.setState(m, state)
	m.t.UpdatedAt = now
	m.t.LeaseExpiresAt = nil
	if errMsg != "" {
		m.t.LastError = errMsg
	}
	if state == StateRetrying {
		s.setDue(m, now.Add(delay))
		return
	}
	m.t.CompletedAt = &now
}

// Extend implements [Store].
func (s *memoryStore) Extend(ctx context.Context, leases []Lease, d time.Duration) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	expires := s.clock().Add(d)
	var revoked []string
	for _, l := range leases {
		m := s.fenced(l)
		if m == nil || m.t.CancelRequested {
			revoked = append(revoked, l.ID)
			continue
		}
		exp := expires
		m.t.LeaseExpiresAt = &exp
	}
	return revoked, nil
}

// Rescue implements [Store].
func (s *memoryStore) Rescue(ctx context.Context, limit int) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock()
	n := 0
	for _, m := range s.running {
		if n == limit {
			break
		}
		if m.t.LeaseExpiresAt.After(now) {
			continue
		}
		s.end(m, now, rescueState(&m.t), errLeaseExpired, 0)
		m.attempts = append(m.attempts, rescuedAttempt(&m.t, now))
		n++
	}
	s.sweepEndpointFlows()
	return n, nil
}

const errLeaseExpired = "lease expired"

// rescuedAttempt is the record of the attempt of t that Rescue ended at now.
func rescuedAttempt(t *Task, now time.Time) Attempt {
	return Attempt{TaskID: t.ID, Number: t.Attempts, StartedAt: now, Error: errLeaseExpired}
}

// rescueState is the state a running task with an expired lease moves to.
func rescueState(t *Task) State {
	switch {
	case t.CancelRequested:
		return StateCanceled
	case t.Attempts >= t.MaxAttempts:
		return StateFailed
	}
	return StateRetrying
}

// Upcoming implements [Store].
func (s *memoryStore) Upcoming(ctx context.Context, within time.Duration, limit int) (time.Time, []Due, error) {
	if err := ctx.Err(); err != nil {
		return time.Time{}, nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock()
	until := now.Add(within)
	out := s.upcoming(until, limit)
	if at := s.flowWake(now); !at.IsZero() && len(out) < limit && !at.After(until) {
		out = append(out, Due{ID: flowWakeID, RunAt: at})
	}
	return now, out, nil
}

// Cancel implements [Store].
func (s *memoryStore) Cancel(ctx context.Context, id string) (*Task, error) {
	return s.changeTask(ctx, id, s.cancel)
}

// cancel cancels m, as Cancel and CancelMany do.
func (s *memoryStore) cancel(m *memTask, now time.Time) error {
	switch m.t.State {
	case StateScheduled, StateRetrying:
		s.unsetDue(m)
		s.setState(m, StateCanceled)
		m.t.UpdatedAt = now
		m.t.CompletedAt = &now
	case StateRunning:
		if !m.t.CancelRequested {
			m.t.CancelRequested = true
			m.t.UpdatedAt = now
		}
	case StateCompleted, StateFailed:
		return ErrInvalidState
	}
	return nil
}

// Reschedule implements [Store].
func (s *memoryStore) Reschedule(ctx context.Context, id string, runAt time.Time) (*Task, error) {
	return s.changeTask(ctx, id, func(m *memTask, now time.Time) error {
		if !m.t.State.pending() {
			return ErrInvalidState
		}
		m.scheduled = runAt.UTC().Truncate(time.Microsecond)
		m.t.ScheduledRunTime = &m.scheduled
		s.setState(m, StateScheduled)
		m.t.UpdatedAt = now
		s.schedule(m, now, &m.scheduled)
		return nil
	})
}

// Replay implements [Store].
func (s *memoryStore) Replay(ctx context.Context, id string, extra int) (*Task, error) {
	return s.changeTask(ctx, id, func(m *memTask, now time.Time) error {
		return s.replay(m, now, extra)
	})
}

// replay replays m with extra more attempts, as Replay and ReplayMany do.
func (s *memoryStore) replay(m *memTask, now time.Time, extra int) error {
	if !m.t.State.Terminal() {
		return ErrInvalidState
	}
	s.setState(m, StateScheduled)
	m.t.MaxAttempts = m.t.Attempts + extra
	m.t.ReplayedAfter = m.t.Attempts
	m.t.CancelRequested = false
	m.t.CompletedAt = nil
	m.t.UpdatedAt = now
	s.schedule(m, now, nil) // due at once: counted for Config.MaxWaiting
	return nil
}

// changeTask applies change to the task id under the store's lock, at the
// store's clock, and returns the task as change left it, with change's
// error (ErrInvalidState for a change its state does not allow);
// ErrNotFound if there is no such task.
func (s *memoryStore) changeTask(ctx context.Context, id string, change func(m *memTask, now time.Time) error) (*Task, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.tasks.get(id)
	if !ok {
		return nil, ErrNotFound
	}
	err := change(m, s.clock())
	return m.snapshot(), err
}

// Attempts implements [Store].
func (s *memoryStore) Attempts(ctx context.Context, taskID string) ([]Attempt, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.tasks.get(taskID)
	if !ok {
		return nil, nil
	}
	return slices.Clone(m.attempts), nil
}

// dueHeap orders pending tasks by due time, then ID.
type dueHeap []*memTask

func (h dueHeap) Len() int { return len(h) }
func (h dueHeap) Less(i, j int) bool {
	if c := h[i].runAt.Compare(h[j].runAt); c != 0 {
		return c < 0
	}
	return h[i].t.ID < h[j].t.ID
}
func (h dueHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx, h[j].heapIdx = i, j
}
func (h *dueHeap) Push(x any) {
	m := x.(*memTask)
	m.heapIdx = len(*h)
	*h = append(*h, m)
}
func (h *dueHeap) Pop() any {
	old := *h
	m := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	m.heapIdx = -1
	return m
}

// TaskHistogram implements [Store].
func (s *memoryStore) TaskHistogram(ctx context.Context, appID string, since time.Time, bucket time.Duration) ([]Bucket, error) {
	since, bucket, err := histogramParams(since, bucket)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	byIndex := make(map[int64]*Bucket)
	for _, m := range s.order {
		t := &m.t
		if t.AppID != appID || t.CompletedAt == nil || t.CompletedAt.Before(since) {
			continue
		}
		k := int64(t.CompletedAt.Sub(since) / bucket)
		b := byIndex[k]
		if b == nil {
			b = &Bucket{Start: since.Add(time.Duration(k) * bucket)}
			byIndex[k] = b
		}
		b.add(t.State, 1)
	}
	out := make([]Bucket, 0, len(byIndex))
	for _, k := range slices.Sorted(maps.Keys(byIndex)) {
		out = append(out, *byIndex[k])
	}
	return out, nil
}

// CountAttempts implements [Store].
func (s *memoryStore) CountAttempts(ctx context.Context, endpointID string, since time.Time) (total, failed int, err error) {
	if err := ctx.Err(); err != nil {
		return 0, 0, err
	}
	if endpointID == "" {
		return 0, 0, nil
	}
	since = since.UTC().Truncate(time.Microsecond)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.order {
		for _, a := range m.attempts {
			if a.EndpointID == endpointID && !a.StartedAt.Before(since) {
				total++
				if a.Error != "" {
					failed++
				}
			}
		}
	}
	return total, failed, nil
}
