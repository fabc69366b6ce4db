package tasks_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/internal/testkit"
)

// refusalsStore counts the takes of an endpoint's capacity that were
// refused, and the tasks that the refusals parked.
type refusalsStore struct {
	tasks.Store
	mu                     sync.Mutex
	takes, refused, parked int
}

func (s *refusalsStore) TakeEndpointCapacity(ctx context.Context, id string, l tasks.Lease, park int, reason string) (bool, time.Duration, []tasks.Due, error) {
	ok, wait, parked, err := s.Store.TakeEndpointCapacity(ctx, id, l, park, reason)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.takes++
	if err == nil && !ok {
		s.refused++
	}
	s.parked += len(parked)
	return ok, wait, parked, err
}

// TestEndpointLimits_BacklogQueuesInOneStep: a backlog due at once for an
// endpoint of rate_limit 20, on three engines: the first refused take
// queues most of the backlog with it, rather than each task costing a
// claim, a refused take and a waiting outcome; every task is delivered
// once, at its first attempt, and no second sees more than the rate
// allows.
func TestEndpointLimits_BacklogQueuesInOneStep(t *testing.T) {
	t.Parallel()
	for _, kind := range testkit.SharedStores {
		t.Run(kind.Name, func(t *testing.T) {
			t.Parallel()
			var counted []*refusalsStore
			var stores []tasks.Store
			for _, s := range kind.Open(t, 3) {
				rs := &refusalsStore{Store: s}
				counted, stores = append(counted, rs), append(stores, rs)
			}
			api := newEngine(t, stores[0], webhookConfig()) // enqueues before the engines start
			rc := newReceiver(t)
			createEndpoint(t, api, tasks.NewEndpoint{AppID: "app_1", URL: rc.URL, RateLimit: 20})
			const n = 60
			var ids []string
			for range n {
				ids = append(ids, enqueue(t, api, tasks.NewTask{AppID: "app_1", EventType: "order.created"}).ID)
			}
			es := endpointEngines(t, stores, 4, 0)
			waitDone(t, es[0], ids)
			var refused, parked, takes int
			for _, s := range counted {
				s.mu.Lock()
				refused, parked, takes = refused+s.refused, parked+s.parked, takes+s.takes
				s.mu.Unlock()
			}
			t.Logf("%d tasks: %d takes, %d refused, %d parked by them", n, takes, refused, parked)
			// Without parking each task but the burst would be refused
			// once, and none parked; with it, only those claimed before
			// the first refusal are (12 at most: 3 engines of 4 workers),
			// and those that come back late for their token.
			if parked < n/2 {
				t.Errorf("got %d tasks parked by %d refused takes, want at least %d parked", parked, refused, n/2)
			}
			rc.mu.Lock()
			defer rc.mu.Unlock()
			if len(rc.requests) != n {
				t.Fatalf("receiver: got %d deliveries, want %d", len(rc.requests), n)
			}
			first := rc.requests[0].at
			windows := map[int]int{}
			for _, r := range rc.requests {
				windows[int(r.at.Sub(first)/time.Second)]++
			}
			for w, c := range windows {
				if c > 24 { // see TestEndpointLimits_RateAcrossEngines
					t.Errorf("window %d: got %d deliveries, want at most 24", w, c)
				}
			}
		})
	}
}
