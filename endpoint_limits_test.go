package tasks_test

import (
	"context"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/internal/testkit"
)

// Limits per endpoint (Endpoint.RateLimit, MaxInFlight), enforced across
// engines, on every store.

// limitWait is how long these tests wait for what the engines do: long,
// for a loaded machine.
const limitWait = 60 * time.Second

// endpointEngines starts an engine on each of stores (as many processes
// would), delivering to loopback receivers, with cfg's Workers and Lease.
func endpointEngines(t *testing.T, stores []tasks.Store, workers int, lease time.Duration) []*tasks.Engine {
	t.Helper()
	es := make([]*tasks.Engine, len(stores))
	for i, s := range stores {
		cfg := webhookConfig(50 * time.Millisecond)
		cfg.Workers, cfg.Lease = workers, lease
		if lease > 0 {
			cfg.RescueInterval = lease / 2
		}
		es[i] = startEngine(t, s, cfg, nil)
	}
	return es
}

// waitDone waits until every task of ids completed, and fails unless each
// did at its first attempt: waiting for an endpoint used none.
func waitDone(t *testing.T, e *tasks.Engine, ids []string) {
	t.Helper()
	for _, id := range ids {
		var got *tasks.Task
		waitFor(t, limitWait, "task "+id+" to complete", func() bool {
			var err error
			if got, err = e.Get(t.Context(), id); err != nil {
				t.Fatal(err)
			}
			return got.State == tasks.StateCompleted
		})
		if got.Attempts != 1 {
			t.Errorf("task %s: got %d attempts, want 1: waiting for an endpoint's capacity uses none", id, got.Attempts)
		}
	}
}

// TestEndpointLimits_RateAcrossEngines (L1): a rate_limit of 20 a second
// on an endpoint, three engines: every task is delivered once, at its first
// attempt; the 50 deliveries take at least the 2.4 s that the rate allows
// after the burst of 2; and the receiver gets at most 24 in each second from
// the first: the rate, the burst, and 2 for the requests' own time, since
// the receiver sees a delivery a request's time after its token was taken
// (23 was seen under -race, the first request the slowest).
func TestEndpointLimits_RateAcrossEngines(t *testing.T) {
	t.Parallel()
	for _, kind := range testkit.SharedStores {
		t.Run(kind.Name, func(t *testing.T) {
			t.Parallel()
			es := endpointEngines(t, kind.Open(t, 3), 4, 0)
			rc := newReceiver(t)
			createEndpoint(t, es[0], tasks.NewEndpoint{AppID: "app_1", URL: rc.URL, RateLimit: 20})
			const n = 50
			var ids []string
			for i := range n {
				ids = append(ids, enqueue(t, es[i%3], tasks.NewTask{AppID: "app_1", EventType: "order.created"}).ID)
			}
			waitDone(t, es[0], ids)
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
			last := rc.requests[n-1].at.Sub(first)
			t.Logf("deliveries per 1-s window from the first: %v; all %d in %v", windows, n, last)
			for w, c := range windows {
				if c > 24 {
					t.Errorf("window %d: got %d deliveries, want at most 24 (20 a second, a burst of 2, 2 for the requests' time)", w, c)
				}
			}
			if min := time.Duration(n-2) * time.Second / 20; last < min-100*time.Millisecond {
				t.Errorf("%d deliveries took %v, want at least %v at 20 a second", n, last, min)
			}
		})
	}
}

// TestEndpointLimits_MaxInFlightAcrossEngines (L1): a max_in_flight of 2,
// a receiver that takes its time, three engines of four workers each: the
// receiver never sees more than 2 requests at once, and every task is
// delivered, at its first attempt.
func TestEndpointLimits_MaxInFlightAcrossEngines(t *testing.T) {
	t.Parallel()
	for _, kind := range testkit.SharedStores {
		t.Run(kind.Name, func(t *testing.T) {
			t.Parallel()
			es := endpointEngines(t, kind.Open(t, 3), 4, 0)
			var (
				mu         sync.Mutex
				now, most  int
				deliveries int
			)
			rc := newReceiver(t, func(w http.ResponseWriter) {
				mu.Lock()
				now++
				most = max(most, now)
				deliveries++
				mu.Unlock()
				<-time.After(30 * time.Millisecond) // the receiver's work
				mu.Lock()
				now--
				mu.Unlock()
				w.WriteHeader(http.StatusNoContent)
			})
			createEndpoint(t, es[0], tasks.NewEndpoint{AppID: "app_1", URL: rc.URL, MaxInFlight: 2})
			const n = 30
			var ids []string
			for i := range n {
				ids = append(ids, enqueue(t, es[i%3], tasks.NewTask{AppID: "app_1", EventType: "order.created"}).ID)
			}
			waitDone(t, es[0], ids)
			mu.Lock()
			defer mu.Unlock()
			if most > 2 {
				t.Errorf("receiver: got up to %d requests at once, want at most 2", most)
			}
			if deliveries != n {
				t.Errorf("receiver: got %d deliveries, want %d", deliveries, n)
			}
		})
	}
}

// TestEndpointLimits_LimitedDoesNotDelayUnlimited: a task for two
// endpoints, one of which has no capacity: the other gets it at once, the
// task waits for the first, scheduled, naming it, with no attempt used,
// and once it runs again the other does not get it a second time.
func TestEndpointLimits_LimitedDoesNotDelayUnlimited(t *testing.T) {
	t.Parallel()
	for _, kind := range testkit.SharedStores {
		t.Run(kind.Name, func(t *testing.T) {
			t.Parallel()
			es := endpointEngines(t, kind.Open(t, 1), 4, 0)
			e := es[0]
			slow, fast := newReceiver(t), newReceiver(t)
			limited := createEndpoint(t, e, tasks.NewEndpoint{AppID: "app_1", URL: slow.URL, RateLimit: 0.001})
			createEndpoint(t, e, tasks.NewEndpoint{AppID: "app_1", URL: fast.URL})
			a := enqueue(t, e, tasks.NewTask{AppID: "app_1", EventType: "order.created"})
			waitDone(t, e, []string{a.ID}) // took the limited endpoint's one token
			b := enqueue(t, e, tasks.NewTask{AppID: "app_1", EventType: "order.created"})
			var got *tasks.Task
			waitFor(t, limitWait, "task b to wait for the limited endpoint", func() bool {
				got, _ = e.Get(t.Context(), b.ID)
				return got.WaitReason != ""
			})
			if got.State != tasks.StateScheduled || got.Attempts != 0 || !strings.Contains(got.WaitReason, limited.ID) ||
				!strings.Contains(got.WaitReason, "rate_limit") || got.NextAttemptAt == nil || time.Until(*got.NextAttemptAt) < 10*time.Minute {
				t.Errorf("waiting task: got state %s, attempts %d, wait reason %q, next attempt %v; want scheduled, 0, naming rate_limit of %s, in about 1000 s",
					got.State, got.Attempts, got.WaitReason, got.NextAttemptAt, limited.ID)
			}
			if fast.count() != 2 || slow.count() != 1 {
				t.Errorf("deliveries: got %d to the unlimited endpoint and %d to the limited one, want 2 and 1", fast.count(), slow.count())
			}
			rate := 1000.0
			if _, err := e.UpdateEndpoint(t.Context(), limited.ID, tasks.EndpointUpdate{RateLimit: &rate}); err != nil {
				t.Fatal(err)
			}
			// The update makes b due at once.
			waitDone(t, e, []string{b.ID})
			if fast.count() != 2 || slow.count() != 2 {
				t.Errorf("deliveries after the wait: got %d to the unlimited endpoint and %d to the limited one, want 2 and 2 (no second delivery of b)",
					fast.count(), slow.count())
			}
			as, err := e.Attempts(t.Context(), b.ID)
			if err != nil {
				t.Fatal(err)
			}
			if len(as) != 2 || as[0].Number != 1 || as[1].Number != 1 {
				t.Errorf("attempts of b: got %+v, want two records of attempt 1, one per endpoint", as)
			}
		})
	}
}

// TestEndpointLimits_SlotOfADeadEngineComesBack (F1 for endpoint slots): a
// process died while delivering to an endpoint of max_in_flight 1 (its
// attempt claimed, its slot taken, never released): the next task waits,
// and is delivered once the dead attempt's lease is rescued.
func TestEndpointLimits_SlotOfADeadEngineComesBack(t *testing.T) {
	t.Parallel()
	for _, kind := range testkit.SharedStores {
		t.Run(kind.Name, func(t *testing.T) {
			t.Parallel()
			stores := kind.Open(t, 2)
			rc := newReceiver(t)
			api := newEngine(t, stores[0], webhookConfig()) // not started: the dead process
			ep := createEndpoint(t, api, tasks.NewEndpoint{AppID: "app_1", URL: rc.URL, MaxInFlight: 1})
			dead := enqueue(t, api, tasks.NewTask{AppID: "app_1", EventType: "order.created"})
			claimed, err := stores[0].Claim(t.Context(), 1, time.Second)
			if err != nil || len(claimed) != 1 || claimed[0].ID != dead.ID {
				t.Fatalf("Claim: got %v, %v; want the dead process's task", claimed, err)
			}
			if ok, _, _, err := stores[0].TakeEndpointCapacity(t.Context(), ep.ID, tasks.Lease{ID: dead.ID, Attempt: 1}, 0, ""); !ok || err != nil {
				t.Fatalf("TakeEndpointCapacity: got %v, %v; want the slot", ok, err)
			}
			next := enqueue(t, api, tasks.NewTask{AppID: "app_1", EventType: "order.created"})
			e := endpointEngines(t, stores[1:], 2, time.Second)[0]
			waitFor(t, limitWait, "the next task to wait for a slot", func() bool {
				got, _ := e.Get(t.Context(), next.ID)
				return got.WaitReason != "" && got.Attempts == 0
			})
			if got, _ := e.Get(t.Context(), next.ID); !strings.Contains(got.WaitReason, "max_in_flight") {
				t.Errorf("wait reason: got %q, want it naming max_in_flight", got.WaitReason)
			}
			waitDone(t, e, []string{next.ID})
			waitFor(t, limitWait, "the dead task to be rescued and delivered", func() bool {
				got, _ := e.Get(t.Context(), dead.ID)
				return got.State == tasks.StateCompleted
			})
			if got := rc.count(); got != 2 {
				t.Errorf("receiver: got %d deliveries, want 2", got)
			}
		})
	}
}

// TestEndpointLimits_Validation: limits out of range are refused, naming
// the field, and change nothing.
func TestEndpointLimits_Validation(t *testing.T) {
	t.Parallel()
	e := newEngine(t, tasks.NewMemoryStore(), webhookConfig())
	for _, c := range []struct {
		name  string
		ne    tasks.NewEndpoint
		field string
	}{
		{"NegativeRate", tasks.NewEndpoint{RateLimit: -1}, "rate_limit"},
		{"NaNRate", tasks.NewEndpoint{RateLimit: math.NaN()}, "rate_limit"},
		{"InfiniteRate", tasks.NewEndpoint{RateLimit: math.Inf(1)}, "rate_limit"},
		{"HugeRate", tasks.NewEndpoint{RateLimit: 2e6}, "rate_limit"},
		{"NegativeMaxInFlight", tasks.NewEndpoint{MaxInFlight: -1}, "max_in_flight"},
		{"HugeMaxInFlight", tasks.NewEndpoint{MaxInFlight: 2_000_000}, "max_in_flight"},
	} {
		c.ne.AppID, c.ne.URL = "app_1", "http://127.0.0.1:1/hooks"
		_, err := e.CreateEndpoint(t.Context(), c.ne)
		if ve, ok := err.(*tasks.ValidationError); !ok || ve.Field != c.field {
			t.Errorf("%s: got %v, want a *tasks.ValidationError naming %s", c.name, err, c.field)
		}
	}
	eps, err := e.Endpoints(context.Background(), "app_1")
	if err != nil || !slices.Equal(eps, nil) {
		t.Errorf("Endpoints: got %v, %v; want none stored", eps, err)
	}
}

// limitCallsStore counts the calls of the store methods that limits per
// endpoint add to a delivery.
type limitCallsStore struct {
	tasks.Store
	mu                       sync.Mutex
	takes, releases, history int
}

func (s *limitCallsStore) TakeEndpointCapacity(ctx context.Context, id string, l tasks.Lease, park int, reason string) (bool, time.Duration, []tasks.Due, error) {
	s.mu.Lock()
	s.takes++
	s.mu.Unlock()
	return s.Store.TakeEndpointCapacity(ctx, id, l, park, reason)
}

func (s *limitCallsStore) ReleaseEndpointCapacity(ctx context.Context, id string, l tasks.Lease) ([]tasks.Due, error) {
	s.mu.Lock()
	s.releases++
	s.mu.Unlock()
	return s.Store.ReleaseEndpointCapacity(ctx, id, l)
}

func (s *limitCallsStore) Attempts(ctx context.Context, id string) ([]tasks.Attempt, error) {
	s.mu.Lock()
	s.history++
	s.mu.Unlock()
	return s.Store.Attempts(ctx, id)
}

// TestEndpointLimits_NoLimitCostsNothing: without a limit on any endpoint
// of the app, a delivery calls none of the store methods that limits
// need; with one, each delivery to the limited endpoint takes and
// releases its capacity.
func TestEndpointLimits_NoLimitCostsNothing(t *testing.T) {
	t.Parallel()
	s := &limitCallsStore{Store: tasks.NewMemoryStore()}
	e := startEngine(t, s, webhookConfig(), nil)
	rc := newReceiver(t)
	createEndpoint(t, e, tasks.NewEndpoint{AppID: "app_1", URL: rc.URL})
	createEndpoint(t, e, tasks.NewEndpoint{AppID: "app_1", URL: rc.URL})
	var ids []string
	for range 10 {
		ids = append(ids, enqueue(t, e, tasks.NewTask{AppID: "app_1", EventType: "order.created"}).ID)
	}
	waitDone(t, e, ids)
	s.mu.Lock()
	if s.takes+s.releases+s.history != 0 {
		t.Errorf("without limits: got %d takes, %d releases and %d history reads, want none", s.takes, s.releases, s.history)
	}
	s.mu.Unlock()
	createEndpoint(t, e, tasks.NewEndpoint{AppID: "app_2", URL: rc.URL, MaxInFlight: 5})
	waitDone(t, e, []string{enqueue(t, e, tasks.NewTask{AppID: "app_2", EventType: "order.created"}).ID})
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.takes != 1 || s.releases != 1 {
		t.Errorf("with a limited endpoint: got %d takes and %d releases, want 1 and 1", s.takes, s.releases)
	}
}
