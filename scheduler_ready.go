package tasks

import "sync"

// readyQueue holds the claimed tasks that wait for a worker: the scheduler
// puts each claim's tasks in, the workers take them out. It serves the apps
// whose tasks wait in turn, one task each, and each app's tasks in the
// order they were put in: a task of an app that claims served fairly
// (store_sql_fair.go) does not wait behind the other apps' tasks claimed
// ahead of it, only behind one of each.
//
// It is a channel of tokens, one per task queued, in front of the tasks
// themselves: a worker blocks on the channel as it would on a channel of
// tasks, and close ends the workers' loops once the tasks queued are taken.
// It is safe for concurrent use by one putter and many takers.
type readyQueue struct {
	tokens chan struct{} // one per task queued; closed by close

	mu   sync.Mutex
	apps map[string]*fifo[job] // by app ID: its tasks queued, oldest first
	turn fifo[string]          // the apps with tasks queued, in turn order
}

// newReadyQueue returns a queue for at most size tasks at once.
func newReadyQueue(size int) *readyQueue {
	return &readyQueue{tokens: make(chan struct{}, size), apps: make(map[string]*fifo[job])}
}

// keepApps is how many apps' emptied queues readyQueue keeps for reuse.
const keepApps = 16

// put queues js. It never blocks while at most size tasks are queued.
func (q *readyQueue) put(js ...job) {
	q.mu.Lock()
	for _, j := range js {
		app := j.t.AppID
		f := q.apps[app]
		if f == nil {
			f = new(fifo[job])
			q.apps[app] = f
		}
		if f.len() == 0 {
			q.turn.push(app)
		}
		f.push(j)
	}
	q.mu.Unlock()
	for range js {
		q.tokens <- struct{}{}
	}
}

// take returns the next task in turn, blocking until one is queued; ok is
// false once the queue is closed and empty.
func (q *readyQueue) take() (j job, ok bool) {
	if _, ok := <-q.tokens; !ok {
		return job{}, false
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	app := q.turn.pop()
	f := q.apps[app]
	j = f.pop()
	switch {
	case f.len() > 0:
		q.turn.push(app) // its next task waits for the others' turns
	case len(q.apps) > keepApps:
		delete(q.apps, app)
	}
	return j, true
}

// close makes take return false once the tasks queued are taken. Nothing
// may be put after it.
func (q *readyQueue) close() { close(q.tokens) }

// fifo is a first-in first-out queue; its zero value is empty.
type fifo[T any] struct {
	s    []T
	head int // s[head:] are queued
}

func (f *fifo[T]) len() int { return len(f.s) - f.head }

func (f *fifo[T]) push(v T) {
	if f.head > 0 && f.head >= len(f.s)/2 {
		// Reuse the front taken: amortised, each value moves at most
		// once per time it is passed over.
		n := copy(f.s, f.s[f.head:])
		clear(f.s[n:])
		f.s, f.head = f.s[:n], 0
	}
	f.s = append(f.s, v)
}

// pop removes and returns the oldest value; f must not be empty.
func (f *fifo[T]) pop() T {
	var zero T
	v := f.s[f.head]
	f.s[f.head] = zero
	f.head++
	if f.head == len(f.s) {
		f.s, f.head = f.s[:0], 0
	}
	return v
}
