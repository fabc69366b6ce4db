package tasks_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/internal/testkit"
)

// switchReceiver is a webhook endpoint that answers every delivery with
// the status code the test last set, and counts them.
type switchReceiver struct {
	*httptest.Server
	code     atomic.Int32
	received atomic.Int32
}

func newSwitchReceiver(t *testing.T, code int) *switchReceiver {
	t.Helper()
	rc := &switchReceiver{}
	rc.code.Store(int32(code))
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc.received.Add(1)
		w.WriteHeader(int(rc.code.Load()))
	}))
	t.Cleanup(rc.Close)
	return rc
}

// healthConfig is a webhook config for the tests of endpoints' health:
// retries after 10 ms, endpoints disabled after disableAfter, warnings
// logged to logs.
func healthConfig(disableAfter time.Duration, logs *syncBuffer) *tasks.Config {
	cfg := webhookConfig(10 * time.Millisecond)
	cfg.Webhooks.DisableAfter = disableAfter
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	return cfg
}

// endpointNow returns endpoint id as the store has it.
func endpointNow(t *testing.T, e *tasks.Engine, id string) *tasks.Endpoint {
	t.Helper()
	ep, err := e.Endpoint(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return ep
}

// waitEndpoint waits until endpoint id satisfies cond, and returns it.
func waitEndpoint(t *testing.T, e *tasks.Engine, id, what string, cond func(*tasks.Endpoint) bool) *tasks.Endpoint {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ep := endpointNow(t, e, id)
		if cond(ep) {
			return ep
		}
		if time.Now().After(deadline) {
			t.Fatalf("endpoint %s: waited 30s for %s; it is %+v", id, what, ep)
		}
		time.Sleep(5 * time.Millisecond) // polling interval, not synchronisation
	}
}

// disabledLines returns the lines of logs that say an endpoint was
// disabled.
func disabledLines(logs string) []string {
	var out []string
	for line := range strings.Lines(logs) {
		if strings.Contains(line, `msg="tasks: endpoint disabled"`) {
			out = append(out, line)
		}
	}
	return out
}

func TestEndpointHealth(t *testing.T) {
	t.Parallel()
	testEngineStores(t, func(t *testing.T, newStore func(testing.TB) tasks.Store) {
		t.Run("an endpoint that always fails is disabled, logged, and sent nothing more", func(t *testing.T) {
			t.Parallel()
			rc := newSwitchReceiver(t, http.StatusInternalServerError)
			var logs syncBuffer
			e := startEngine(t, newStore(t), healthConfig(50*time.Millisecond, &logs), nil)
			ep := createEndpoint(t, e, tasks.NewEndpoint{URL: rc.URL})
			enqueue(t, e, tasks.NewTask{EventType: "x", MaxAttempts: 1000})
			got := waitEndpoint(t, e, ep.ID, "it to be disabled", func(ep *tasks.Endpoint) bool { return ep.Status == tasks.EndpointInactive })
			sent := rc.received.Load()
			if got.FailingSince == nil || got.DisabledAt == nil || got.DisabledAt.Sub(*got.FailingSince) < 50*time.Millisecond {
				t.Errorf("disabled endpoint: FailingSince %v, DisabledAt %v; want both, at least DisableAfter (50ms) apart", got.FailingSince, got.DisabledAt)
			}
			if want := "every delivery failed since " + got.FailingSince.Format("2006-01-02T15:04:05Z"); got.DisabledReason != want || !got.DisabledByFailures() {
				t.Errorf("DisabledReason %q, DisabledByFailures %v; want %q, true", got.DisabledReason, got.DisabledByFailures(), want)
			}
			// The engine logs once the store call that disabled it returns.
			var lines []string
			for deadline := time.Now().Add(30 * time.Second); len(lines) == 0 && time.Now().Before(deadline); {
				time.Sleep(time.Millisecond) // polling interval, not synchronisation
				lines = disabledLines(logs.String())
			}
			if len(lines) != 1 || !strings.Contains(lines[0], "level=WARN") || !strings.Contains(lines[0], "endpoint="+ep.ID) ||
				!strings.Contains(lines[0], "every delivery failed since") {
				t.Errorf("log lines about disabling: %q; want one warning naming the endpoint and the reason", lines)
			}
			// Later tasks are not delivered to it: they wait for a route.
			later := enqueue(t, e, tasks.NewTask{EventType: "x", MaxAttempts: 1})
			if task := waitState(t, e, later.ID, tasks.StateFailed); !strings.Contains(task.LastError, "no route") {
				t.Errorf("a task for a disabled endpoint failed with %q, want no route", task.LastError)
			}
			if n := rc.received.Load(); n != sent {
				t.Errorf("the disabled endpoint received %d more deliveries", n-sent)
			}
		})

		t.Run("an endpoint that never answers within the attempt's timeout is disabled", func(t *testing.T) {
			t.Parallel()
			// The attempt's timeout (Config.Timeout) ends each delivery
			// before the webhook client's own (WebhookConfig.Timeout, 15 s
			// by default) would: the receiver failed to answer all the same.
			release := make(chan struct{})
			hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				select {
				case <-r.Context().Done():
				case <-release:
				}
			}))
			t.Cleanup(hung.Close)
			t.Cleanup(func() { close(release) }) // before Close, which waits for the handlers
			var logs syncBuffer
			cfg := healthConfig(50*time.Millisecond, &logs)
			cfg.Timeout = 100 * time.Millisecond
			e := startEngine(t, newStore(t), cfg, nil)
			ep := createEndpoint(t, e, tasks.NewEndpoint{URL: hung.URL})
			enqueue(t, e, tasks.NewTask{EventType: "x", MaxAttempts: 1000})
			got := waitEndpoint(t, e, ep.ID, "it to be disabled", func(ep *tasks.Endpoint) bool { return ep.Status == tasks.EndpointInactive })
			if !got.DisabledByFailures() || !strings.HasPrefix(got.DisabledReason, "every delivery failed since ") {
				t.Errorf("endpoint that never answers: DisabledAt %v, DisabledReason %q; want disabled for failing", got.DisabledAt, got.DisabledReason)
			}
		})

		t.Run("410 Gone disables at once", func(t *testing.T) {
			t.Parallel()
			rc := newSwitchReceiver(t, http.StatusGone)
			var logs syncBuffer
			e := startEngine(t, newStore(t), healthConfig(0, &logs), nil) // the default: five days
			ep := createEndpoint(t, e, tasks.NewEndpoint{URL: rc.URL})
			task := enqueue(t, e, tasks.NewTask{EventType: "x"})
			waitState(t, e, task.ID, tasks.StateFailed)
			got := endpointNow(t, e, ep.ID)
			if got.Status != tasks.EndpointInactive || got.DisabledReason != "answered 410 Gone" || got.DisabledAt == nil {
				t.Errorf("endpoint after 410 Gone: Status %s, DisabledReason %q, DisabledAt %v; want inactive, \"answered 410 Gone\", set",
					got.Status, got.DisabledReason, got.DisabledAt)
			}
			if lines := disabledLines(logs.String()); len(lines) != 1 || !strings.Contains(lines[0], "answered 410 Gone") {
				t.Errorf("log lines about disabling: %q; want one, saying 410 Gone", lines)
			}
		})

		t.Run("a 2xx in between starts the clock again", func(t *testing.T) {
			t.Parallel()
			rc := newSwitchReceiver(t, http.StatusInternalServerError)
			const disableAfter = 50 * time.Millisecond
			var logs syncBuffer
			e := startEngine(t, newStore(t), healthConfig(disableAfter, &logs), nil)
			ep := createEndpoint(t, e, tasks.NewEndpoint{URL: rc.URL})
			deliver := func(code int, want tasks.State) {
				t.Helper()
				rc.code.Store(int32(code))
				task := enqueue(t, e, tasks.NewTask{EventType: "x", MaxAttempts: 1})
				waitState(t, e, task.ID, want)
			}
			deliver(http.StatusInternalServerError, tasks.StateFailed)
			first := endpointNow(t, e, ep.ID).FailingSince
			if first == nil {
				t.Fatalf("FailingSince nil after a failed delivery, want set")
			}
			time.Sleep(2 * disableAfter) // past DisableAfter since the first failure
			deliver(http.StatusNoContent, tasks.StateCompleted)
			if got := endpointNow(t, e, ep.ID); got.FailingSince != nil || got.Status != tasks.EndpointActive {
				t.Fatalf("after a 2xx: FailingSince %v, Status %s; want nil, active", got.FailingSince, got.Status)
			}
			// This failure is more than DisableAfter after the first, but
			// the 2xx ended that run: it begins a new one.
			deliver(http.StatusInternalServerError, tasks.StateFailed)
			got := endpointNow(t, e, ep.ID)
			if got.Status != tasks.EndpointActive || got.FailingSince == nil || !got.FailingSince.After(*first) {
				t.Errorf("after fail, 2xx, fail: Status %s, FailingSince %v; want active, failing since after %v", got.Status, got.FailingSince, first)
			}
			if lines := disabledLines(logs.String()); len(lines) != 0 {
				t.Errorf("log lines about disabling: %q, want none", lines)
			}
		})

		t.Run("re-enabled, it is delivered to again", func(t *testing.T) {
			t.Parallel()
			rc := newSwitchReceiver(t, http.StatusGone)
			var logs syncBuffer
			e := startEngine(t, newStore(t), healthConfig(time.Hour, &logs), nil)
			ep := createEndpoint(t, e, tasks.NewEndpoint{URL: rc.URL})
			waitState(t, e, enqueue(t, e, tasks.NewTask{EventType: "x"}).ID, tasks.StateFailed)
			rc.code.Store(http.StatusNoContent)
			active := tasks.EndpointActive
			got, err := e.UpdateEndpoint(context.Background(), ep.ID, tasks.EndpointUpdate{Status: &active})
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != tasks.EndpointActive || got.FailingSince != nil || got.DisabledAt != nil || got.DisabledReason != "" {
				t.Errorf("re-enabled endpoint: %+v; want active with no FailingSince, DisabledAt or DisabledReason", got)
			}
			before := rc.received.Load()
			waitState(t, e, enqueue(t, e, tasks.NewTask{EventType: "x"}).ID, tasks.StateCompleted)
			if rc.received.Load() != before+1 {
				t.Errorf("the re-enabled endpoint received %d deliveries, want 1", rc.received.Load()-before)
			}
		})
	})
}

// TestEndpointHealth_OneEngineLogs has several engines, as several
// processes would, deliver to one failing endpoint: it is disabled once,
// and one engine says so.
func TestEndpointHealth_OneEngineLogs(t *testing.T) {
	t.Parallel()
	for _, kind := range testkit.SharedStores {
		t.Run(kind.Name, func(t *testing.T) {
			t.Parallel()
			rc := newSwitchReceiver(t, http.StatusInternalServerError)
			const n = 3
			logs := make([]syncBuffer, n)
			var engines []*tasks.Engine
			for i, s := range kind.Open(t, n) {
				engines = append(engines, startEngine(t, s, healthConfig(30*time.Millisecond, &logs[i]), nil))
			}
			ep := createEndpoint(t, engines[0], tasks.NewEndpoint{URL: rc.URL})
			for i := range 30 {
				enqueue(t, engines[i%n], tasks.NewTask{EventType: "x", MaxAttempts: 1000})
			}
			waitEndpoint(t, engines[0], ep.ID, "it to be disabled", func(ep *tasks.Endpoint) bool { return ep.Status == tasks.EndpointInactive })
			// Deliveries stop within the engines' cache TTL (a second);
			// wait until every engine has stopped, then count.
			var total int
			deadline := time.Now().Add(30 * time.Second)
			for last := rc.received.Load(); ; {
				time.Sleep(1500 * time.Millisecond) // longer than the cache TTL
				now := rc.received.Load()
				if now == last {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the disabled endpoint still receives deliveries after 30s")
				}
				last = now
			}
			for i := range logs {
				total += len(disabledLines(logs[i].String()))
			}
			if total != 1 {
				t.Errorf("%d log lines about disabling across %d engines, want 1", total, n)
			}
		})
	}
}

// countingStore counts the calls of RecordEndpointHealth.
type countingStore struct {
	tasks.Store
	mu    sync.Mutex
	calls []bool // ok of each call
}

func (s *countingStore) RecordEndpointHealth(ctx context.Context, id string, ok, gone bool, disableAfter, resolution time.Duration) (*tasks.Endpoint, error) {
	s.mu.Lock()
	s.calls = append(s.calls, ok)
	s.mu.Unlock()
	return s.Store.RecordEndpointHealth(ctx, id, ok, gone, disableAfter, resolution)
}

func (s *countingStore) count() (oks, failures int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ok := range s.calls {
		if ok {
			oks++
		} else {
			failures++
		}
	}
	return oks, failures
}

// TestEndpointHealth_HealthyCostsNothing checks that deliveries to a
// healthy endpoint ask the store about its health once (and then not
// again for 25 seconds: longer than this test), and that after a failure
// the next success is recorded.
func TestEndpointHealth_HealthyCostsNothing(t *testing.T) {
	t.Parallel()
	rc := newSwitchReceiver(t, http.StatusNoContent)
	store := &countingStore{Store: tasks.NewMemoryStore()}
	var logs syncBuffer
	e := startEngine(t, store, healthConfig(time.Hour, &logs), nil)
	ep := createEndpoint(t, e, tasks.NewEndpoint{URL: rc.URL})
	deliver := func(code int, want tasks.State) {
		t.Helper()
		rc.code.Store(int32(code))
		waitState(t, e, enqueue(t, e, tasks.NewTask{EventType: "x", MaxAttempts: 1}).ID, want)
	}
	for range 20 {
		deliver(http.StatusNoContent, tasks.StateCompleted)
	}
	if oks, failures := store.count(); oks != 1 || failures != 0 {
		t.Errorf("20 deliveries to a healthy endpoint made %d calls of RecordEndpointHealth for successes and %d for failures, want 1 and 0", oks, failures)
	}
	if got := endpointNow(t, e, ep.ID); got.LastSuccessAt == nil {
		t.Errorf("LastSuccessAt nil after 20 successes, want set")
	}
	deliver(http.StatusInternalServerError, tasks.StateFailed)
	deliver(http.StatusInternalServerError, tasks.StateFailed) // the run goes on: nothing to record
	deliver(http.StatusNoContent, tasks.StateCompleted)        // ends the run, at once
	deliver(http.StatusNoContent, tasks.StateCompleted)        // healthy again: nothing to record
	if oks, failures := store.count(); oks != 2 || failures != 1 {
		t.Errorf("ok, fail, fail, ok, ok made %d calls for failures and %d for successes, want 1 and 2", failures, oks)
	}
	if got := endpointNow(t, e, ep.ID); got.FailingSince != nil {
		t.Errorf("FailingSince %v after a success, want nil", got.FailingSince)
	}
}

func TestEndpointHealth_NegativeDisableAfterIsInvalid(t *testing.T) {
	t.Parallel()
	_, err := tasks.NewEngine(tasks.NewMemoryStore(), &tasks.Config{Webhooks: &tasks.WebhookConfig{DisableAfter: -time.Second}})
	var ve *tasks.ValidationError
	if !errors.As(err, &ve) || ve.Field != "WebhookConfig.DisableAfter" {
		t.Errorf("NewEngine with a negative DisableAfter: got %v, want a *tasks.ValidationError naming WebhookConfig.DisableAfter", err)
	}
}
