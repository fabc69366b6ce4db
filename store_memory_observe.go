package tasks

import "context"

// countLive implements liveCounter, for the gauge of live tasks: it sums
// the counts that countState keeps, in O(apps).
func (s *memoryStore) countLive(ctx context.Context) (map[State]int, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	counts := make(map[State]int, 3)
	for _, byState := range s.counts {
		for _, st := range []State{StateScheduled, StateRunning, StateRetrying} {
			counts[st] += byState[st]
		}
	}
	return counts, nil
}
