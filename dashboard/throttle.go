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
//
// An attack from many addresses can keep the bucket of all clients empty
// for as long as it lasts. So that it does not lock out the people who use
// the dashboard, an address that logged in with a right key in the last
// trustFor is limited by its own bucket only; an attacker cannot join them
// without a key. This process remembers up to maxTrustedClients of them
// (a restart forgets them).
const (
	loginBurst          = 10
	loginEvery          = 6 * time.Second
	globalLoginBurst    = 100
	globalLoginEvery    = 100 * time.Millisecond
	maxThrottledClients = 10_000 // addresses tracked at once
	trustFor            = 30 * 24 * time.Hour
	maxTrustedClients   = 1000
)

// loginThrottle limits login attempts. Its zero value is not ready; use
// newLoginThrottle. It is safe for concurrent use.
type loginThrottle struct {
	global *rate.Limiter

	mu      sync.Mutex
	clients map[netip.Prefix]*rate.Limiter
	trusted map[netip.Prefix]time.Time // when each last logged in
}

func newLoginThrottle() *loginThrottle {
	return &loginThrottle{
		global:  rate.NewLimiter(rate.Every(globalLoginEvery), globalLoginBurst),
		clients: make(map[netip.Prefix]*rate.Limiter),
		trusted: make(map[netip.Prefix]time.Time),
	}
}

// loginAttempt is one login attempt that the throttle let through.
type loginAttempt struct {
	l      *loginThrottle
	client netip.Prefix
	now    time.Time
	taken  []*rate.Reservation
}

// attempt takes a token for a login attempt by r at now from the buckets
// of its client and, unless the client is trusted, of all clients. It
// returns the attempt, or, taking nothing, how long the client must wait
// first.
func (l *loginThrottle) attempt(r *http.Request, now time.Time) (*loginAttempt, time.Duration) {
	key := clientKey(r)
	a := &loginAttempt{l: l, client: key, now: now}
	limits := []*rate.Limiter{l.client(key, now)}
	if !l.isTrusted(key, now) {
		limits = append(limits, l.global)
	}
	for _, lim := range limits {
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

// succeeded gives back the attempt's tokens and trusts its client: it was
// a login with the right key.
func (a *loginAttempt) succeeded() {
	a.refund()
	l := a.l
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.trusted[a.client]; !ok && len(l.trusted) >= maxTrustedClients {
		var oldest netip.Prefix
		var oldestAt time.Time
		for k, at := range l.trusted {
			if oldestAt.IsZero() || at.Before(oldestAt) {
				oldest, oldestAt = k, at
			}
		}
		delete(l.trusted, oldest)
	}
	l.trusted[a.client] = a.now
}

// isTrusted reports whether client logged in with a right key in the last
// trustFor.
func (l *loginThrottle) isTrusted(client netip.Prefix, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	at, ok := l.trusted[client]
	return ok && now.Sub(at) < trustFor
}

// clientKey returns r's client: its IP address, or for IPv6 the /64 it
// belongs to, as one host usually holds a whole /64. The address is the one
// the connection came from (RemoteAddr): behind a reverse proxy, all
// clients share the proxy's. Unparseable addresses share the zero prefix.
func clientKey(r *http.Request) netip.Prefix {
	var key netip.Prefix
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
	return key
}

// client returns the bucket of the client key. It returns nil, leaving the
// global bucket alone to limit, when it tracks maxThrottledClients
// addresses already, none of them idle.
func (l *loginThrottle) client(key netip.Prefix, now time.Time) *rate.Limiter {
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
