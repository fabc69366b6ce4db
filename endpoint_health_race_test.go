package tasks_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/internal/testkit"
)

// gate is a webhook receiver that holds each request it gets until the
// test answers it: each request sends on arrived the channel that takes
// its status code.
type gate struct {
	*httptest.Server
	arrived chan chan int
}

func newGate(t *testing.T) *gate {
	t.Helper()
	g := &gate{arrived: make(chan chan int)}
	g.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		answer := make(chan int, 1)
		select {
		case g.arrived <- answer:
		case <-r.Context().Done():
			return
		}
		select {
		case code := <-answer:
			w.WriteHeader(code)
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(g.Close)
	return g
}

// held are the deliveries that engines A and B began and their gates hold,
// and the tasks delivered.
type held struct {
	a, b []chan int
	ids  []string
}

// answer answers each of answers with code.
func answer(answers []chan int, code int) {
	for _, a := range answers {
		a <- code
	}
}

// holdBoth enqueues tasks, one at a time and through either engine in
// turn, until each of engines A and B holds a delivery at its gate: each
// engine has then read the endpoint it delivers to.
func holdBoth(t *testing.T, engines [2]*tasks.Engine, gates [2]*gate) held {
	t.Helper()
	var h held
	for i := 0; len(h.a) == 0 || len(h.b) == 0; i++ {
		if i == 100 {
			t.Fatalf("100 tasks held: %d by engine A, %d by engine B; want both to hold one", len(h.a), len(h.b))
		}
		h.ids = append(h.ids, enqueue(t, engines[i%2], tasks.NewTask{EventType: "x", MaxAttempts: 1}).ID)
		select {
		case a := <-gates[0].arrived:
			h.a = append(h.a, a)
		case b := <-gates[1].arrived:
			h.b = append(h.b, b)
		case <-time.After(30 * time.Second):
			t.Fatalf("a task enqueued was not delivered within 30s")
		}
	}
	return h
}

// waitSettled waits until each task of ids has ended, and returns how
// many completed.
func waitSettled(t *testing.T, e *tasks.Engine, ids []string) (completed int) {
	t.Helper()
	for _, id := range ids {
		deadline := time.Now().Add(30 * time.Second)
		for {
			task, err := e.Get(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			if task.State == tasks.StateCompleted {
				completed++
			}
			if task.State == tasks.StateCompleted || task.State == tasks.StateFailed {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("task %s: %s after 30s, want it ended", id, task.State)
			}
			time.Sleep(time.Millisecond) // polling interval, not synchronisation
		}
	}
	return completed
}

// TestEndpointHealth_StaleSuccessKeepsTheEndpoint reproduces the race of
// two engines, as in two processes, that deliver to one endpoint at once:
// engine B reads the endpoint healthy and begins a delivery; engine A
// then fails a delivery, which begins a run of failures; B's delivery
// succeeds afterwards, with the endpoint as B read it. That success is
// inside the run, so the endpoint must not be disabled for a failure less
// than DisableAfter after it, although the run began more than
// DisableAfter before that failure.
//
// Engine A reaches the receiver through a "proxy" that answers for it, so
// that the test chooses each engine's answers whichever engine claims a
// task.
func TestEndpointHealth_StaleSuccessKeepsTheEndpoint(t *testing.T) {
	t.Parallel()
	for _, kind := range testkit.SharedStores {
		t.Run(kind.Name, func(t *testing.T) {
			t.Parallel()
			const disableAfter = time.Second
			gates := [2]*gate{newGate(t), newGate(t)} // engine A's proxy, and the receiver
			proxy, err := url.Parse(gates[0].URL)
			if err != nil {
				t.Fatal(err)
			}
			var logs syncBuffer
			stores := kind.Open(t, 2)
			cfgA := healthConfig(disableAfter, &logs)
			cfgA.Webhooks.Proxy = proxy
			a := startEngine(t, stores[0], cfgA, nil)
			b := startEngine(t, stores[1], healthConfig(disableAfter, &logs), nil)
			engines := [2]*tasks.Engine{a, b}
			ep := createEndpoint(t, a, tasks.NewEndpoint{URL: gates[1].URL})

			// Both engines deliver to the endpoint, successfully.
			warm := holdBoth(t, engines, gates)
			answer(warm.a, http.StatusNoContent)
			answer(warm.b, http.StatusNoContent)
			if n := waitSettled(t, a, warm.ids); n != len(warm.ids) {
				t.Fatalf("%d of %d deliveries completed, want all", n, len(warm.ids))
			}

			// Both read the endpoint healthy and deliver; A's delivery
			// fails first and begins a run of failures.
			race := holdBoth(t, engines, gates)
			answer(race.a, http.StatusInternalServerError)
			failing := waitEndpoint(t, a, ep.ID, "a run of failures", func(ep *tasks.Endpoint) bool { return ep.FailingSince != nil })
			// B's succeeds more than DisableAfter into the run.
			time.Sleep(time.Until(failing.FailingSince.Add(disableAfter + 100*time.Millisecond))) // the scenario's timing, not synchronisation
			succeeded := time.Now()
			answer(race.b, http.StatusNoContent)
			if n := waitSettled(t, a, race.ids); n != len(race.b) {
				t.Fatalf("%d of %d deliveries completed, want B's %d", n, len(race.ids), len(race.b))
			}

			// A delivery fails less than DisableAfter after B's success.
			if err := b.Stop(context.Background()); err != nil {
				t.Fatal(err)
			}
			last := enqueue(t, a, tasks.NewTask{EventType: "x", MaxAttempts: 1})
			select {
			case got := <-gates[0].arrived:
				got <- http.StatusInternalServerError
			case <-time.After(30 * time.Second):
				t.Fatalf("the last task was not delivered within 30s")
			}
			waitState(t, a, last.ID, tasks.StateFailed)
			if since := time.Since(succeeded); since >= disableAfter {
				t.Logf("the last failure came %v after B's success, not within DisableAfter (%v): the test shows less than it means to", since, disableAfter)
			}
			got := endpointNow(t, a, ep.ID)
			if got.Status != tasks.EndpointActive || got.DisabledAt != nil {
				t.Errorf("endpoint after a failure %v after a success: Status %s, DisabledAt %v, DisabledReason %q; want active",
					time.Since(succeeded).Round(time.Millisecond), got.Status, got.DisabledAt, got.DisabledReason)
			}
			if lines := disabledLines(logs.String()); len(lines) != 0 {
				t.Errorf("log lines about disabling: %q, want none", lines)
			}
		})
	}
}
