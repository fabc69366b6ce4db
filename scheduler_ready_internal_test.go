package tasks

import (
	"slices"
	"testing"
)

// TestReadyQueue checks that the queue of claimed tasks serves the apps
// with tasks queued in turn, each app's tasks in the order they came, and
// that a closed queue hands out what it holds, then nothing.
func TestReadyQueue(t *testing.T) {
	q := newReadyQueue(100)
	put := func(app string, ids ...string) {
		var js []job
		for _, id := range ids {
			js = append(js, job{t: &Task{ID: id, AppID: app}})
		}
		q.put(js...)
	}
	take := func(n int) []string {
		var got []string
		for range n {
			j, ok := q.take()
			if !ok {
				t.Fatalf("take: closed, after %v", got)
			}
			got = append(got, j.t.ID)
		}
		return got
	}
	put("a", "a1", "a2", "a3", "a4")
	if got, want := take(1), []string{"a1"}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	put("b", "b1", "b2") // behind one of a's, not all of them
	put("c", "c1")
	if got, want := take(6), []string{"a2", "b1", "c1", "a3", "b2", "a4"}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for i := range 40 { // reuses the fifos' space: no growth without bound
		put("a", "x")
		put("b", "y")
		if got := take(2); !slices.Equal(got, []string{"x", "y"}) {
			t.Fatalf("round %d: got %v, want [x y]", i, got)
		}
	}
	if n := cap(q.apps["a"].s); n > 4 {
		t.Errorf("a's queue holds room for %d tasks after 40 rounds of one, want a few", n)
	}
	put("a", "last")
	q.close()
	if got := take(1); !slices.Equal(got, []string{"last"}) {
		t.Errorf("after close: got %v, want [last]", got)
	}
	if _, ok := q.take(); ok {
		t.Error("take on a closed, empty queue: got a task, want none")
	}
}
