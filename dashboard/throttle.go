package dashboard

// Login throttling for the dashboard: token buckets per client address and
// for all clients, so that no one can try API keys at speed.

import (
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Login limits. A client address may try 10 logins at once, then one every
// 6 seconds; all clients together 100 at once, then 10 a second. A login
// with the right key costs nothing, so only wrong keys use up the buckets,
// and every bucket refills: no one is locked out for longer than the
// Retry-After of the answer.
const (
	loginBurst          = 10
	loginEvery          = 6 * time.Second
	globalLoginBurst    = 100
	globalLoginEvery    = 100 * time.Millisecond
	maxThrottledClients = 10_000 // addresses tracked at once
)

// loginThrottle limits login attempts. Its zero value is not ready; use
// newLoginThrottle. It is safe for concurrent use.
type loginThrottle struct {
	global *rate.Limiter

	mu      sync.Mutex
	clients map[netip.Prefix]*rate.Limiter
}

func newLoginThrottle() *loginThrottle {
	return &loginThrottle{
		global:  rate.NewLimiter(rate.Every(globalLoginEvery), globalLoginBurst),
		clients: make(map[netip.Prefix]*rate.Limiter),
	}
}

// loginAttempt is one login attempt that the throttle let through.
type loginAttempt struct {
	now   time.Time
	taken []*rate.Reservation
}

// attempt takes a token for a login attempt by r at now from the buckets
// of its client and of all clients. It returns the attempt, or, taking
// nothing, how long the client must wait first.
func (l *loginThrottle) attempt(r *http.Request, now time.Time) (*loginAttempt, time.Duration) {
	a := &loginAttempt{now: now}
	for _, lim := range []*rate.Limiter{l.client(r, now), l.global} {
		if lim == nil {
			continue
		}
		res := lim.ReserveN(now, 1)
		a.taken = append(a.taken, res)
		if wait := res.DelayFrom(now); wait > 0 {
			a.refund()
			return nil, wait
		}
	}
	return a, 0
}

// refund gives back the attempt's tokens: it was a login with the right
// key, or did not happen.
func (a *loginAttempt) refund() {
	for _, res := range a.taken {
		res.CancelAt(a.now)
	}
}

// client returns the bucket of r's client: its IP address, or for IPv6 the
// /64 it belongs to, as one host usually holds a whole /64. The address is
// the one the connection came from (RemoteAddr): behind a reverse proxy,
// all clients share the proxy's. It returns nil, leaving the global bucket
// alone to limit, when it tracks maxThrottledClients addresses already,
// none of them idle.
func (l *loginThrottle) client(r *http.Request, now time.Time) *rate.Limiter {
	var key netip.Prefix // unparseable addresses share the zero prefix
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if addr, err := netip.ParseAddr(host); err == nil {
		addr = addr.Unmap().WithZone("")
		bits := 32
		if addr.Is6() {
			bits = 64
		}
		key, _ = addr.Prefix(bits)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if lim, ok := l.clients[key]; ok {
		return lim
	}
	if len(l.clients) >= maxThrottledClients {
		// Forget the clients whose buckets are full again: they are as
		// good as new.
		for k, lim := range l.clients {
			if lim.TokensAt(now) >= loginBurst {
				delete(l.clients, k)
			}
		}
		if len(l.clients) >= maxThrottledClients {
			return nil
		}
	}
	lim := rate.NewLimiter(rate.Every(loginEvery), loginBurst)
	l.clients[key] = lim
	return lim
}
