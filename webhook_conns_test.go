package tasks_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/taskwheel/tasks"
)

// connReceiver is a webhook endpoint that answers 204 and counts the
// connections made to it and the requests it got.
type connReceiver struct {
	*httptest.Server
	conns    atomic.Int64  // opened
	requests atomic.Int64  // received
	all      chan struct{} // closed at the want-th request
	closed   chan net.Conn // each connection as it closes
	want     int64         // requests that close all
}

func newConnReceiver(t *testing.T, want int) *connReceiver {
	t.Helper()
	rc := &connReceiver{all: make(chan struct{}), closed: make(chan net.Conn, 1024), want: int64(want)}
	rc.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rc.requests.Add(1) == rc.want {
			close(rc.all)
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	rc.Config.ConnState = func(c net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			rc.conns.Add(1)
		case http.StateClosed, http.StateHijacked:
			rc.closed <- c
		}
	}
	rc.Start()
	t.Cleanup(rc.Close)
	return rc
}

// wait waits for the receiver's want-th request.
func (rc *connReceiver) wait(t *testing.T) {
	t.Helper()
	select {
	case <-rc.all:
	case <-time.After(20 * time.Second):
		t.Fatalf("the receiver got %d of %d requests", rc.requests.Load(), rc.want)
	}
}

// enqueueDeliveries enqueues n tasks of event type "x" for app_1.
func enqueueDeliveries(t *testing.T, e *tasks.Engine, n int) {
	t.Helper()
	nts := make([]tasks.NewTask, n)
	for i := range nts {
		nts[i] = tasks.NewTask{AppID: "app_1", EventType: "x", Data: fmt.Appendf(nil, `{"n":%d}`, i)}
	}
	if _, err := e.EnqueueMany(context.Background(), nts); err != nil {
		t.Fatal(err)
	}
}

// TestWebhookConnections_Reused checks that an engine's workers keep their
// connections to a receiver alive between deliveries: a backlog of
// deliveries to one host opens about as many connections as there are
// workers, not one per delivery or so (net/http keeps only 2 idle per host
// unless told otherwise).
func TestWebhookConnections_Reused(t *testing.T) {
	t.Parallel()
	const workers, n = 4, 300
	rc := newConnReceiver(t, n)
	cfg := webhookConfig(time.Hour)
	cfg.Workers = workers
	e, err := tasks.NewEngine(tasks.NewMemoryStore(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	createEndpoint(t, e, tasks.NewEndpoint{URL: rc.URL})
	enqueueDeliveries(t, e, n)
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.Stop(context.Background()); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	rc.wait(t)
	// A worker may dial while the connection it just used is on its way
	// back to the pool; allow for each doing so once.
	if got, limit := rc.conns.Load(), int64(2*workers); got > limit {
		t.Errorf("%d deliveries by %d workers opened %d connections, want at most %d", n, workers, got, limit)
	}
}

// TestWebhookConnections_ClosedByStop checks that Stop closes the
// keep-alive connections its deliveries left idle, and so ends their
// goroutines: none outlives Stop. It is not parallel, so that goleak sees
// only its own goroutines.
func TestWebhookConnections_ClosedByStop(t *testing.T) {
	rc := newConnReceiver(t, 20)
	ignore := goleak.IgnoreCurrent() // the receiver's, and those of tests before
	cfg := webhookConfig(time.Hour)
	cfg.Workers = 4
	e, err := tasks.NewEngine(tasks.NewMemoryStore(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	createEndpoint(t, e, tasks.NewEndpoint{URL: rc.URL})
	enqueueDeliveries(t, e, 20)
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	rc.wait(t)
	if err := e.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Every connection opened is closed, by the engine: the receiver
	// would keep an idle one for minutes.
	for closed := int64(0); closed < rc.conns.Load(); closed++ {
		select {
		case <-rc.closed:
		case <-time.After(10 * time.Second):
			t.Fatalf("%d of %d connections to the receiver closed after Stop, want all", closed, rc.conns.Load())
		}
	}
	goleak.VerifyNone(t, ignore)
}
