package tasks

// The memory store's counts of tasks by app and state, which it keeps as
// tasks come, change state and go, so that CountTasks costs O(states)
// under the store's lock, however many tasks the store holds.

import "context"

// countState adds delta to the count of the tasks of the app appID in
// state st. Every change to the store's tasks goes through it, under the
// store's lock: a new task counts +1 in its state (add), a change of state
// moves the task from one count to another (setState), and a task removed
// from the store counts -1 in its state (remove).
//
// A count that reaches 0 is deleted, and so is an app with no tasks, so
// that the counts hold only what is stored.
func (s *memoryStore) countState(appID string, st State, delta int) {
	byState := s.counts[appID]
	if byState == nil {
		byState = make(map[State]int, len(states))
		s.counts[appID] = byState
	}
	n := byState[st] + delta
	switch {
	case n > 0:
		byState[st] = n
	case n == 0:
		delete(byState, st)
		if len(byState) == 0 {
			delete(s.counts, appID)
		}
	default:
		panic("tasks: memory store: negative count of " + string(st) + " tasks of app " + appID)
	}
}

// setState moves the stored task m to state st, keeping the counts and,
// for a terminal state, the queue PurgeTasks reads (see ended).
func (s *memoryStore) setState(m *memTask, st State) {
	if m.t.State == st {
		return
	}
	if m.t.State.Terminal() {
		s.ended[m.t.State].leave(m)
	}
	s.countState(m.t.AppID, m.t.State, -1)
	s.countState(m.t.AppID, st, 1)
	m.t.State = st
	if st.Terminal() {
		s.ended[st].push(m)
	}
}

// CountTasks implements [Store]. It reads the counts that countState
// keeps: the live states exactly, the terminal ones capped at limit, as
// the contract says, although the memory store knows them exactly.
func (s *memoryStore) CountTasks(ctx context.Context, appID string, limit int) (map[State]int, error) {
	if err := countLimit(limit); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	counts := make(map[State]int, len(s.counts[appID]))
	for st, n := range s.counts[appID] {
		if st.Terminal() {
			n = min(n, limit)
		}
		counts[st] = n
	}
	return counts, nil
}
