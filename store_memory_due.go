package tasks

import (
	"container/heap"
	"time"
)

// The memory store's pending tasks, by app: each app's tasks in a heap by
// due time (appDue), and the apps in a heap by their earliest task
// (appHeap). The earliest task overall is the earliest of the first app,
// as with one heap, at the cost of a map lookup and a fix of the apps'
// heap, which with one app is nothing; and a claim can serve the apps
// that have due tasks in turn (claimFair), as the SQL stores' claims do,
// without looking at the tasks of the app whose backlog is claimed.

// appDue is an app's pending tasks, in the store's heap of apps.
type appDue struct {
	app   string
	tasks dueHeap
	idx   int // in memoryStore.due
}

// appHeap orders the apps with pending tasks by their earliest task.
type appHeap []*appDue

func (h appHeap) Len() int           { return len(h) }
func (h appHeap) Less(i, j int) bool { return h[i].tasks.Less0(h[j].tasks) }
func (h appHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}
func (h *appHeap) Push(x any) {
	a := x.(*appDue)
	a.idx = len(*h)
	*h = append(*h, a)
}
func (h *appHeap) Pop() any {
	old := *h
	a := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	a.idx = -1
	return a
}

// Less0 reports whether the earliest task of h comes before that of o;
// neither is empty.
func (h dueHeap) Less0(o dueHeap) bool {
	a, b := h[0], o[0]
	if c := a.runAt.Compare(b.runAt); c != 0 {
		return c < 0
	}
	return a.t.ID < b.t.ID
}

// pushDue puts m, in no heap, in its app's heap of pending tasks.
func (s *memoryStore) pushDue(m *memTask) {
	a := s.dueApps[m.t.AppID]
	if a == nil {
		a = &appDue{app: m.t.AppID}
		if s.dueApps == nil {
			s.dueApps = make(map[string]*appDue)
		}
		s.dueApps[a.app] = a
		heap.Push(&a.tasks, m)
		heap.Push(&s.due, a)
	} else {
		heap.Push(&a.tasks, m)
		heap.Fix(&s.due, a.idx)
	}
	m.dueIn = a
}

// fixDue restores the order of the heaps after m, pending, changed its due
// time.
func (s *memoryStore) fixDue(m *memTask) {
	heap.Fix(&m.dueIn.tasks, m.heapIdx)
	heap.Fix(&s.due, m.dueIn.idx)
}

// removeDue takes m out of its app's heap of pending tasks, and out of
// the count of tasks ready to run (see unready).
func (s *memoryStore) removeDue(m *memTask) {
	s.unready(m)
	a := m.dueIn
	heap.Remove(&a.tasks, m.heapIdx)
	m.dueIn = nil
	if len(a.tasks) == 0 {
		heap.Remove(&s.due, a.idx)
		delete(s.dueApps, a.app)
	} else {
		heap.Fix(&s.due, a.idx)
	}
}

// nextDue returns the earliest pending task if it is due at now, or nil.
func (s *memoryStore) nextDue(now time.Time) *memTask {
	if len(s.due) == 0 {
		return nil
	}
	if m := s.due[0].tasks[0]; !m.runAt.After(now) {
		return m
	}
	return nil
}

// dueAppsAt returns up to n apps with tasks due at now, earliest first.
func (s *memoryStore) dueAppsAt(now time.Time, n int) []*appDue {
	var apps []*appDue
	// Walk the heap of apps in order without popping, as Upcoming walks
	// a heap of tasks.
	cand := appIdxHeap{h: s.due}
	if len(s.due) > 0 {
		cand.idx = append(cand.idx, 0)
	}
	for len(apps) < n && len(cand.idx) > 0 {
		i := heap.Pop(&cand).(int)
		a := s.due[i]
		if a.tasks[0].runAt.After(now) {
			break
		}
		apps = append(apps, a)
		for _, c := range []int{2*i + 1, 2*i + 2} {
			if c < len(s.due) {
				heap.Push(&cand, c)
			}
		}
	}
	return apps
}

// claimFair claims up to limit due tasks, serving the apps that have due
// tasks in turn, one task each, each app's tasks in due order; with
// one app with due tasks, in due order. It is Claim without limits.
func (s *memoryStore) claimFair(limit int, now, expires time.Time) []*Task {
	var out []*Task
	apps := s.dueAppsAt(now, limit)
	if len(apps) <= 1 {
		for m := s.nextDue(now); m != nil && len(out) < limit; m = s.nextDue(now) {
			s.removeDue(m)
			out = append(out, s.start(m, now, expires))
		}
		return out
	}
	for len(out) < limit && len(apps) > 0 {
		kept := apps[:0]
		for _, a := range apps {
			if len(out) == limit || len(a.tasks) == 0 || a.tasks[0].runAt.After(now) {
				continue
			}
			m := a.tasks[0]
			s.removeDue(m)
			out = append(out, s.start(m, now, expires))
			kept = append(kept, a)
		}
		apps = kept
	}
	return out
}

// appIdxHeap is a heap of indexes into an appHeap, ordered as the appHeap
// is.
type appIdxHeap struct {
	h   appHeap
	idx []int
}

func (c appIdxHeap) Len() int           { return len(c.idx) }
func (c appIdxHeap) Less(i, j int) bool { return c.h.Less(c.idx[i], c.idx[j]) }
func (c appIdxHeap) Swap(i, j int)      { c.idx[i], c.idx[j] = c.idx[j], c.idx[i] }
func (c *appIdxHeap) Push(x any)        { c.idx = append(c.idx, x.(int)) }
func (c *appIdxHeap) Pop() any {
	i := c.idx[len(c.idx)-1]
	c.idx = c.idx[:len(c.idx)-1]
	return i
}

// upcoming returns the pending tasks due by until, earliest first, at most
// limit: a small heap of candidates, seeded with the earliest, yields them
// in O(k log k) without popping. A candidate is a task of an app's heap;
// an app's earliest task brings in, besides its own heap's children, the
// earliest tasks of the app heap's children, which come no sooner.
func (s *memoryStore) upcoming(until time.Time, limit int) []Due {
	var out []Due
	cand := &dueCands{}
	if len(s.due) > 0 {
		cand.c = append(cand.c, dueCand{s.due[0], 0})
	}
	for len(out) < limit && len(cand.c) > 0 {
		c := heap.Pop(cand).(dueCand)
		m := c.a.tasks[c.i]
		if m.runAt.After(until) {
			break
		}
		out = append(out, Due{ID: m.t.ID, RunAt: m.runAt})
		for _, i := range []int{2*c.i + 1, 2*c.i + 2} {
			if i < len(c.a.tasks) {
				heap.Push(cand, dueCand{c.a, i})
			}
		}
		if c.i == 0 {
			for _, i := range []int{2*c.a.idx + 1, 2*c.a.idx + 2} {
				if i < len(s.due) {
					heap.Push(cand, dueCand{s.due[i], 0})
				}
			}
		}
	}
	return out
}

// dueCand is task i of app a's heap, a candidate of upcoming.
type dueCand struct {
	a *appDue
	i int
}

type dueCands struct{ c []dueCand }

func (h dueCands) Len() int { return len(h.c) }
func (h dueCands) Less(i, j int) bool {
	a, b := h.c[i], h.c[j]
	return a.a.tasks[a.i:].Less0(b.a.tasks[b.i:])
}
func (h dueCands) Swap(i, j int) { h.c[i], h.c[j] = h.c[j], h.c[i] }
func (h *dueCands) Push(x any)   { h.c = append(h.c, x.(dueCand)) }
func (h *dueCands) Pop() any {
	c := h.c[len(h.c)-1]
	h.c = h.c[:len(h.c)-1]
	return c
}
