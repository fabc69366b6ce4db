package tasks

import (
	"testing"
	"time"
)

// TestScheduler_AheadAfterASlowClaim checks that one slow claim, or a
// failed one (which can take storeTimeout), does not make the scheduler
// claim ahead of long tasks: the tasks an engine claims ahead wait in its
// queue, held from other engines (and, past Stop's deadline, handed back
// with an attempt used), so a claim's cycle is not taken to be longer than
// maxCycle, and a failed claim tells nothing of how long claims take.
func TestScheduler_AheadAfterASlowClaim(t *testing.T) {
	t.Parallel()
	const workers = 4
	for _, tt := range []struct {
		name  string
		after func(s *scheduler)
		runNs time.Duration
		want  int
	}{
		{"a claim of storeTimeout failed, tasks of a minute", func(s *scheduler) {
			s.claimFailed(storeTimeout, 0)
			s.errUntil = 0 // the backoff is over
		}, time.Minute, 0},
		{"a claim of storeTimeout failed, tasks of 20 ms after claims of 1 ms", func(s *scheduler) {
			s.claimFailed(storeTimeout, 0)
			s.errUntil = 0
		}, 20 * time.Millisecond, 1}, // as after the claims of 1 ms
		{"a claim took 2 s, tasks of 10 s", func(s *scheduler) {
			s.inFlight = 0 // the first four ended
			s.claimed(s.claimable(0, 0), tasksNamed("e", "f", "g", "h"), 2*time.Second, 0)
		}, 10 * time.Second, 0},
		{"a claim took 2 s, tasks of 100 ms", func(s *scheduler) {
			s.inFlight = 0
			s.claimed(s.claimable(0, 0), tasksNamed("e", "f", "g", "h"), 2*time.Second, 0)
		}, 100 * time.Millisecond, 1}, // as for a cycle of maxCycle
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newTestScheduler(workers, time.Second)
			s.claimed(s.claimable(0, 0), tasksNamed("a", "b", "c", "d"), time.Millisecond, 0) // a backlog
			tt.after(s)
			if got := s.claimable(0, int64(tt.runNs)); got != tt.want {
				t.Errorf("claimable %d with %d in flight, want %d", got, s.inFlight, tt.want)
			}
		})
	}
}
