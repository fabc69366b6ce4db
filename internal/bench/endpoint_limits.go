package bench

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/taskwheel/tasks"
)

// EndpointRate measures the rate limit of an endpoint (W11, issue 16): an
// endpoint of rate_limit rate, engines on stores sharing one database
// deliver to it a backlog larger than d allows; it returns the deliveries
// the receiver got in each whole second of d after the first, counted
// from the first delivery.
func EndpointRate(ctx context.Context, stores []tasks.Store, rate float64, d time.Duration) (_ []int, err error) {
	var (
		mu       sync.Mutex
		arrivals []time.Time
	)
	recv, err := serve(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		arrivals = append(arrivals, time.Now())
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	if err != nil {
		return nil, fmt.Errorf("start receiver: %w", err)
	}
	defer func() { err = errors.Join(err, recv.close()) }()
	cfg := tasks.Config{Webhooks: &tasks.WebhookConfig{AllowNetworks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}}
	var es []*tasks.Engine
	defer func() { err = errors.Join(err, stopAll(ctx, es...)) }()
	for _, s := range stores {
		e, err := newEngine(s, cfg, "", nil)
		if err != nil {
			return nil, err
		}
		es = append(es, e)
	}
	if _, err := es[0].CreateEndpoint(ctx, tasks.NewEndpoint{
		AppID: appID, URL: recv.url + "/hook", EnabledEvents: []string{webhookEvent}, RateLimit: rate,
	}); err != nil {
		return nil, err
	}
	n := int(rate*d.Seconds()*1.5) + 100
	if err := enqueueBatches(ctx, es[0], n, func(i int) tasks.NewTask {
		return tasks.NewTask{AppID: appID, EventType: webhookEvent, Data: fmt.Appendf(nil, `{"n":%d}`, i)}
	}); err != nil {
		return nil, err
	}
	for _, e := range es {
		if err := e.Start(ctx); err != nil {
			return nil, err
		}
	}
	select {
	case <-time.After(d + time.Second):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	mu.Lock()
	defer mu.Unlock()
	if len(arrivals) == 0 {
		return nil, errors.New("no delivery")
	}
	windows := make([]int, int(d/time.Second))
	for _, at := range arrivals {
		if w := int(at.Sub(arrivals[0]) / time.Second); w < len(windows) {
			windows[w]++
		}
	}
	return windows[1:], nil
}
