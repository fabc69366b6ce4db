package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/taskwheel/tasks"
)

// Server limits, as cmd/tasksd sets them.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 30 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 120 * time.Second
)

// server is an http.Server on a loopback port.
type server struct {
	srv    *http.Server
	url    string // http://127.0.0.1:port
	served chan error
}

// serve starts serving h on 127.0.0.1 at a free port. Call close.
func serve(h http.Handler) (*server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	s := &server{
		srv: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: readHeaderTimeout,
			ReadTimeout:       readTimeout,
			WriteTimeout:      writeTimeout,
			IdleTimeout:       idleTimeout,
		},
		url:    "http://" + ln.Addr().String(),
		served: make(chan error, 1),
	}
	go func() { s.served <- s.srv.Serve(ln) }() // ends at shutdown
	return s, nil
}

// close stops the server and closes its connections, and waits for it to
// return. Call it once the clients are done: unlike Shutdown, it does not
// wait the five seconds that net/http grants a connection that has sent
// nothing yet, such as a client's spare one.
func (s *server) close() error {
	err := s.srv.Close()
	if serveErr := <-s.served; !errors.Is(serveErr, http.ErrServerClosed) {
		err = errors.Join(err, serveErr)
	}
	if err != nil {
		return fmt.Errorf("close server: %w", err)
	}
	return nil
}

// newClient returns a client that keeps a connection alive for each of
// Workers goroutines. Call CloseIdleConnections when done.
func newClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:               nil,
		MaxIdleConns:        Workers,
		MaxIdleConnsPerHost: Workers,
		MaxConnsPerHost:     Workers,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}}
}

// post sends body to url with headers and returns an error unless the
// answer has status want.
func post(ctx context.Context, c *http.Client, url string, body []byte, want int, header http.Header) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	excerpt, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	io.Copy(io.Discard, resp.Body) // so that the connection is reused
	if resp.StatusCode != want {
		return fmt.Errorf("POST %s: got %s, want %d: %s", url, resp.Status, want, excerpt)
	}
	return nil
}

// WebhookResult is the outcome of [Webhooks].
type WebhookResult struct {
	// Deliveries is the engine's: from Start until every task was
	// delivered and Stop stored the last outcomes.
	Deliveries Rate
	// Floor is the same number of bare POSTs of the same body to the same
	// receiver from Workers goroutines.
	Floor Rate
	// CPU and FloorCPU are the CPU time the process used over each, the
	// receiver's included (0 where it is not measured): on a machine that
	// others share, the rates vary with their load, the CPU time much less.
	CPU, FloorCPU time.Duration
	// BodyBytes is the size of a delivery's body.
	BodyBytes int
}

// Webhooks measures W6: n tasks of an event type with no func, enqueued
// through the batch path (not timed), delivered by a started engine to an
// endpoint of their app created with Engine.CreateEndpoint, a receiver
// on 127.0.0.1 that answers 204; then its floor, n bare POSTs of a
// delivery's body to the same receiver.
func Webhooks(ctx context.Context, store tasks.Store, n int) (_ WebhookResult, err error) {
	var received atomic.Int64
	var firstBody atomic.Pointer[[]byte]
	all := make(chan struct{})
	recv, err := serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		firstBody.CompareAndSwap(nil, &body)
		if received.Add(1) == int64(n) {
			close(all)
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	if err != nil {
		return WebhookResult{}, fmt.Errorf("start receiver: %w", err)
	}
	defer func() { err = errors.Join(err, recv.close()) }()

	eng, err := newEngine(store, tasks.Config{Webhooks: &tasks.WebhookConfig{
		AllowNetworks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
	}}, "", nil)
	if err != nil {
		return WebhookResult{}, err
	}
	if _, err := eng.CreateEndpoint(ctx, tasks.NewEndpoint{
		AppID:         appID,
		URL:           recv.url + "/hook",
		EnabledEvents: []string{webhookEvent},
	}); err != nil {
		return WebhookResult{}, err
	}
	if err := enqueueBatches(ctx, eng, n, func(i int) tasks.NewTask {
		return tasks.NewTask{AppID: appID, EventType: webhookEvent, Data: fmt.Appendf(nil, `{"n":%d}`, i)}
	}); err != nil {
		return WebhookResult{}, err
	}
	start, cpu := time.Now(), cpuTime()
	if err := eng.Start(ctx); err != nil {
		return WebhookResult{}, err
	}
	defer func() { err = errors.Join(err, stopAll(ctx, eng)) }()
	if n > 0 {
		if err := await(ctx, all, waitTimeout, func() string {
			return fmt.Sprintf("%d of %d tasks delivered", received.Load(), n)
		}); err != nil {
			return WebhookResult{}, err
		}
	}
	if err := eng.Stop(ctx); err != nil {
		return WebhookResult{}, fmt.Errorf("stop engine: %w", err)
	}
	r := WebhookResult{Deliveries: Rate{N: n, Elapsed: time.Since(start)}, CPU: cpuTime() - cpu}
	if n == 0 {
		return r, nil
	}

	body := *firstBody.Load()
	r.BodyBytes = len(body)
	c := newClient()
	defer c.CloseIdleConnections()
	header := http.Header{"Content-Type": {"application/json"}}
	start, cpu = time.Now(), cpuTime()
	err = runN(ctx, Workers, n, func(ctx context.Context, i int) error {
		return post(ctx, c, recv.url+"/hook", body, http.StatusNoContent, header)
	})
	r.Floor, r.FloorCPU = Rate{N: n, Elapsed: time.Since(start)}, cpuTime()-cpu
	if err != nil {
		return r, fmt.Errorf("floor: %w", err)
	}
	return r, nil
}

// HTTPCreate measures W7: POST /apps/{app_id}/tasks through Engine.Handler,
// mounted under /api/v1 behind an API key as cmd/tasksd mounts it, on a
// loopback http.Server, from Workers clients with keep-alive, for d or
// until n tasks were created, whichever comes first (a zero d or n does
// not bound). The engine is not started: it only enqueues, so the
// requests are measured without workers competing for the store. Only
// 201 Created counts; any other answer fails the run.
func HTTPCreate(ctx context.Context, store tasks.Store, d time.Duration, n int) (_ Rate, err error) {
	if d <= 0 && n <= 0 {
		return Rate{}, errors.New("want a duration or a count")
	}
	eng, err := newEngine(store, tasks.Config{}, httpEvent, func(context.Context, *tasks.Task) error { return nil })
	if err != nil {
		return Rate{}, err
	}
	key := "tw_" + rand.Text()
	mux := http.NewServeMux()
	mux.Handle("/api/v1/", http.StripPrefix("/api/v1", eng.Handler(&tasks.HandlerConfig{
		Keys: map[string][]string{key: {"*"}},
	})))
	srv, err := serve(mux)
	if err != nil {
		return Rate{}, fmt.Errorf("start server: %w", err)
	}
	defer func() { err = errors.Join(err, srv.close()) }()

	c := newClient()
	defer c.CloseIdleConnections()
	url := srv.url + "/api/v1/apps/" + appID + "/tasks"
	body := []byte(`{"event_type":"` + httpEvent + `","data":{"n":1}}`)
	header := http.Header{
		"Authorization": {"Bearer " + key},
		"Content-Type":  {"application/json"},
	}
	var deadline time.Time
	start := time.Now()
	if d > 0 {
		deadline = start.Add(d)
	}
	var issued, created atomic.Int64
	err = parallel(ctx, Workers, func(ctx context.Context) error {
		for {
			if !deadline.IsZero() && !time.Now().Before(deadline) || n > 0 && issued.Add(1) > int64(n) {
				return nil
			}
			if err := post(ctx, c, url, body, http.StatusCreated, header); err != nil {
				return err
			}
			created.Add(1)
		}
	})
	return Rate{N: int(created.Load()), Elapsed: time.Since(start)}, err
}
