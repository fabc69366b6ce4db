package tasks

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// loopback allows the tests' own httptest servers.
var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// newTestWebhookClient builds cfg's client and closes its idle connections
// when the test ends.
func newTestWebhookClient(t *testing.T, cfg *WebhookConfig) *webhookClient {
	t.Helper()
	c, err := cfg.newClient(DefaultWorkers)
	if err != nil {
		t.Fatalf("newClient: %v", err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// countingServer starts a loopback server that answers 200 "ok" and counts
// the requests it gets.
func countingServer(t *testing.T) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		io.WriteString(w, "ok")
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

// get sends a GET for rawURL with c and reads the bounded body.
func get(t *testing.T, c *webhookClient, rawURL string) (*http.Response, []byte, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	body, err := readAll(resp, defaultMaxResponseBytes)
	return resp, body, err
}

// readAll reads at most max bytes of resp's body with readResponse, keeps
// them all, and closes the body.
func readAll(resp *http.Response, max int64) ([]byte, error) {
	defer resp.Body.Close()
	buf := make([]byte, max)
	n, read, err := readResponse(resp.Body, max, buf)
	if read != int64(n) {
		return nil, fmt.Errorf("readResponse kept %d bytes of the %d it read, want all", n, read)
	}
	return buf[:n], err
}

// fixedLookup answers every host name in names with its addresses and
// fails for any other, without DNS.
func fixedLookup(names map[string][]netip.Addr) func(context.Context, string) ([]netip.Addr, error) {
	return func(_ context.Context, host string) ([]netip.Addr, error) {
		if addrs, ok := names[strings.ToLower(host)]; ok {
			return addrs, nil
		}
		return nil, errors.New("no such host")
	}
}

func addrs(ss ...string) []netip.Addr {
	var as []netip.Addr
	for _, s := range ss {
		as = append(as, netip.MustParseAddr(s))
	}
	return as
}

func serverPort(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Port()
}

func TestBlockedAddr(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		addr    string
		blocked bool
	}{
		{"0.0.0.0", true}, {"0.255.255.255", true}, {"10.0.0.0", true}, {"10.255.255.255", true},
		{"100.64.0.0", true}, {"100.127.255.255", true}, {"127.0.0.1", true}, {"169.254.169.254", true},
		{"172.16.0.0", true}, {"172.31.255.255", true}, {"192.0.0.8", true}, {"192.0.2.255", true},
		{"192.88.99.1", true}, {"192.168.0.0", true}, {"198.18.0.0", true}, {"198.19.255.255", true},
		{"198.51.100.1", true}, {"203.0.113.1", true}, {"224.0.0.0", true}, {"239.255.255.255", true},
		{"240.0.0.0", true}, {"255.255.255.255", true},
		{"::", true}, {"::1", true}, {"::ffff:127.0.0.1", true}, {"::ffff:169.254.169.254", true},
		{"::7f00:1", true}, {"64:ff9b::7f00:1", true}, {"64:ff9b::a9fe:a9fe", true}, {"64:ff9b::a00:1", true},
		{"64:ff9b:1::808:808", true}, {"100::", true}, {"100::ffff:ffff:ffff:ffff", true},
		{"2001::", true}, {"2001:0:ffff::1", true}, {"2001:1ff:ffff::1", true}, {"2001:db8::", true},
		{"2001:db8:ffff::1", true}, {"2002::", true}, {"2002:808:808::1", true}, {"3fff:fff::1", true},
		{"fc00::", true}, {"fdff::1", true}, {"fe80::1", true}, {"fe80::1%eth0", true}, {"febf::1", true},
		{"fec0::1", true}, {"feff::1", true}, {"ff00::", true}, {"ff02::1", true}, {"8000::1", true},

		{"1.1.1.1", false}, {"8.8.8.8", false}, {"9.255.255.255", false}, {"11.0.0.0", false},
		{"100.63.255.255", false}, {"100.128.0.0", false}, {"126.255.255.255", false}, {"128.0.0.0", false},
		{"169.253.255.255", false}, {"169.255.0.0", false}, {"172.15.255.255", false}, {"172.32.0.0", false},
		{"192.0.1.1", false}, {"192.88.98.1", false}, {"192.167.255.255", false}, {"198.17.255.255", false},
		{"198.20.0.0", false}, {"223.255.255.255", false}, {"93.184.215.14", false},
		{"::ffff:8.8.8.8", false}, {"64:ff9b::808:808", false}, {"2001:200::1", false},
		{"2606:4700:4700::1111", false}, {"2a00:1450:4001:80b::200e", false}, {"3ffe::1", false},
	} {
		reason, blocked := blockedAddr(netip.MustParseAddr(tt.addr))
		if blocked != tt.blocked || blocked && reason == "" {
			t.Errorf("blockedAddr(%s) = %q, %v; want blocked %v", tt.addr, reason, blocked, tt.blocked)
		}
	}
}

func TestWebhookConfig_newClient(t *testing.T) {
	t.Parallel()
	for _, cfg := range []*WebhookConfig{
		{Timeout: -time.Second},
		{MaxResponseBytes: -1},
		{AllowNetworks: []netip.Prefix{{}}},
	} {
		if _, err := cfg.newClient(DefaultWorkers); err == nil || !strings.HasPrefix(err.Error(), "tasks: WebhookConfig.") {
			t.Errorf("newClient(%+v) = %v, want an error naming the field", cfg, err)
		}
	}
	c := newTestWebhookClient(t, nil)
	if c.http.Timeout != defaultWebhookTimeout {
		t.Errorf("Timeout = %v, want %v", c.http.Timeout, defaultWebhookTimeout)
	}
	// The Transport itself, so that net/http bounds each request with a
	// context deadline, not a goroutine of its own.
	tr := c.http.Transport.(*http.Transport)
	if tr.Proxy != nil || !tr.DisableCompression || tr.MaxResponseHeaderBytes != webhookMaxResponseHeader ||
		tr.TLSClientConfig.InsecureSkipVerify {
		t.Errorf("transport: Proxy set %v, DisableCompression %v, MaxResponseHeaderBytes %d, InsecureSkipVerify %v",
			tr.Proxy != nil, tr.DisableCompression, tr.MaxResponseHeaderBytes, tr.TLSClientConfig.InsecureSkipVerify)
	}
}

// TestWebhookClient_SSRF covers W1 and W3 at dial time: the client refuses
// blocked addresses on the address it is about to connect to, with an
// error wrapping ErrBlockedDestination that names it.
func TestWebhookClient_SSRF(t *testing.T) {
	t.Parallel()
	srv, hits := countingServer(t)
	port := serverPort(t, srv)

	t.Run("W1 loopback literal refused", func(t *testing.T) {
		t.Parallel()
		c := newTestWebhookClient(t, nil)
		for _, host := range []string{"127.0.0.1", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]"} {
			_, _, err := get(t, c, "http://"+host+":"+port+"/")
			if !errors.Is(err, ErrBlockedDestination) {
				t.Errorf("GET %s = %v, want ErrBlockedDestination", host, err)
			} else if !strings.Contains(err.Error(), "127.0.0.1:"+port) {
				t.Errorf("GET %s = %v, want the error to name 127.0.0.1:%s", host, err, port)
			}
		}
	})
	t.Run("W1 every blocked range refused before connecting", func(t *testing.T) {
		t.Parallel()
		c := newTestWebhookClient(t, &WebhookConfig{Timeout: 5 * time.Second})
		for _, host := range []string{
			"0.0.0.0", "10.0.0.1", "100.64.0.1", "127.0.0.1", "169.254.169.254", "172.16.0.1", "192.0.0.1",
			"192.0.2.1", "192.88.99.1", "192.168.1.1", "198.18.0.1", "198.51.100.1", "203.0.113.1",
			"224.0.0.1", "240.0.0.1", "255.255.255.255",
			"[::]", "[::1]", "[::ffff:10.0.0.1]", "[::ffff:a9fe:a9fe]", "[64:ff9b::a9fe:a9fe]", "[64:ff9b:1::1]",
			"[100::1]", "[2001::1]", "[2001:db8::1]", "[2002:a9fe:a9fe::1]", "[fc00::1]", "[fe80::1%25lo]",
			"[fec0::1]", "[ff02::1]",
		} {
			_, _, err := get(t, c, "http://"+host+":"+port+"/")
			if !errors.Is(err, ErrBlockedDestination) {
				t.Errorf("GET %s = %v, want ErrBlockedDestination", host, err)
			}
		}
	})
	t.Run("W1 IPv6 loopback refused", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp6", "[::1]:0")
		if err != nil {
			t.Skipf("no IPv6 loopback: %v", err)
		}
		var hits6 atomic.Int32
		srv6 := &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits6.Add(1) })}}
		srv6.Start()
		defer srv6.Close()
		_, _, err = get(t, newTestWebhookClient(t, nil), srv6.URL)
		if !errors.Is(err, ErrBlockedDestination) {
			t.Errorf("GET %s = %v, want ErrBlockedDestination", srv6.URL, err)
		}
		if _, _, err := get(t, newTestWebhookClient(t, &WebhookConfig{AllowNetworks: loopback}), srv6.URL); err != nil {
			t.Errorf("GET %s with ::1 allowed = %v, want nil", srv6.URL, err)
		}
		if n := hits6.Load(); n != 1 {
			t.Errorf("IPv6 server hits = %d, want 1", n)
		}
	})
	t.Run("W3 name resolving to loopback refused", func(t *testing.T) {
		t.Parallel()
		// The system resolver: localhost is 127.0.0.1 and/or ::1.
		_, _, err := get(t, newTestWebhookClient(t, nil), "http://localhost:"+port+"/")
		if !errors.Is(err, ErrBlockedDestination) {
			t.Errorf("GET localhost = %v, want ErrBlockedDestination", err)
		}
	})
	t.Run("W3 names resolving to private addresses refused", func(t *testing.T) {
		t.Parallel()
		c := newTestWebhookClient(t, &WebhookConfig{lookup: fixedLookup(map[string][]netip.Addr{
			"hooks.example.test":    addrs("127.0.0.1"),
			"metadata.example.test": addrs("169.254.169.254"),
			"mixed.example.test":    addrs("10.0.0.7", "::ffff:192.168.0.1", "fd00::1", "64:ff9b::a9fe:a9fe"),
		})})
		for _, host := range []string{"hooks.example.test", "metadata.example.test", "mixed.example.test"} {
			_, _, err := get(t, c, "http://"+host+":"+port+"/")
			var dnsErr *net.DNSError
			if !errors.Is(err, ErrBlockedDestination) || errors.As(err, &dnsErr) {
				t.Errorf("GET %s = %v, want ErrBlockedDestination", host, err)
			}
		}
	})
	t.Run("allow lists open the way", func(t *testing.T) {
		t.Parallel()
		lookup := fixedLookup(map[string][]netip.Addr{"dev.example.test": addrs("127.0.0.1")})
		for _, cfg := range []*WebhookConfig{
			{AllowNetworks: loopback, lookup: lookup},
			{AllowHosts: []string{"DEV.example.test."}, lookup: lookup},
		} {
			c := newTestWebhookClient(t, cfg)
			if _, body, err := get(t, c, "http://dev.example.test:"+port+"/"); err != nil || string(body) != "ok" {
				t.Errorf("GET dev.example.test with %+v = %q, %v; want ok", cfg, body, err)
			}
		}
		c := newTestWebhookClient(t, &WebhookConfig{AllowHosts: []string{"localhost"}})
		if _, body, err := get(t, c, "http://localhost:"+port+"/"); err != nil || string(body) != "ok" {
			t.Errorf("GET localhost with AllowHosts = %q, %v; want ok", body, err)
		}
		c = newTestWebhookClient(t, &WebhookConfig{AllowNetworks: loopback})
		if _, body, err := get(t, c, "http://[::ffff:127.0.0.1]:"+port+"/"); err != nil || string(body) != "ok" {
			t.Errorf("GET [::ffff:127.0.0.1] with 127.0.0.0/8 allowed = %q, %v; want ok", body, err)
		}
	})

	t.Cleanup(func() {
		if n := hits.Load(); n != 4 { // the four allowed requests only
			t.Errorf("server hits = %d, want 4", n)
		}
	})
}

// TestWebhookClient_DNSRebinding is W4: a name that answers a public
// address when checked and a loopback address when the delivery connects
// is refused, because the check runs on the address actually dialled.
func TestWebhookClient_DNSRebinding(t *testing.T) {
	t.Parallel()
	srv, hits := countingServer(t)
	var calls atomic.Int32
	rebinding := func(context.Context, string) ([]netip.Addr, error) {
		if calls.Add(1) == 1 {
			return addrs("93.184.215.14"), nil // public: passes any check made now
		}
		return addrs("127.0.0.1"), nil // rebound by the time the delivery connects
	}
	cfg := &WebhookConfig{lookup: rebinding}
	rawURL := "http://rebind.example.test:" + serverPort(t, srv) + "/"

	// What a check-then-connect guard would do: validate, resolve, check.
	if err := validateEndpointURL(rawURL, cfg); err != nil {
		t.Fatalf("ValidateEndpointURL = %v, want nil", err)
	}
	if n := calls.Load(); n != 0 {
		t.Fatalf("ValidateEndpointURL resolved the name %d times, want 0", n)
	}
	first, _ := cfg.lookup(t.Context(), "rebind.example.test")
	if _, blocked := blockedAddr(first[0]); blocked {
		t.Fatalf("first answer %s is blocked; the test needs a public one", first[0])
	}

	_, _, err := get(t, newTestWebhookClient(t, cfg), rawURL)
	if !errors.Is(err, ErrBlockedDestination) || !strings.Contains(err.Error(), "127.0.0.1") {
		t.Errorf("GET after rebinding = %v, want ErrBlockedDestination naming 127.0.0.1", err)
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("lookups = %d, want 2 (the check's and the dial's)", n)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("server hits = %d, want 0", n)
	}
}

// TestWebhookClient_Redirect is W5: a redirect is returned, not followed.
func TestWebhookClient_Redirect(t *testing.T) {
	t.Parallel()
	target, targetHits := countingServer(t)
	for _, code := range []int{301, 302, 303, 307, 308} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, target.URL+"/stolen", code)
			}))
			defer srv.Close()
			c := newTestWebhookClient(t, &WebhookConfig{AllowNetworks: loopback})
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL, strings.NewReader(`{"a":1}`))
			resp, err := c.Do(req)
			if err != nil {
				t.Fatalf("POST = %v", err)
			}
			readAll(resp, defaultMaxResponseBytes)
			if resp.StatusCode != code || resp.Header.Get("Location") != target.URL+"/stolen" {
				t.Errorf("got %d Location %q, want %d Location %q", resp.StatusCode, resp.Header.Get("Location"), code, target.URL+"/stolen")
			}
		})
	}
	t.Cleanup(func() {
		if n := targetHits.Load(); n != 0 {
			t.Errorf("redirect target hits = %d, want 0", n)
		}
	})
}

// TestWebhookClient_ProxyEnvironment is W8: proxy environment variables are
// ignored. Go's environment proxy never applies to loopback destinations,
// so the receiver is reached by a name (resolved at the test seam) that an
// environment proxy would otherwise carry.
func TestWebhookClient_ProxyEnvironment(t *testing.T) {
	target, targetHits := countingServer(t)
	proxy, proxyHits := countingServer(t)
	for _, k := range []string{"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"} {
		t.Setenv(k, proxy.URL)
	}
	t.Setenv("NO_PROXY", "")
	t.Setenv("no_proxy", "")
	c := newTestWebhookClient(t, &WebhookConfig{
		AllowNetworks: loopback,
		lookup:        fixedLookup(map[string][]netip.Addr{"hooks.example.test": addrs("127.0.0.1")}),
	})
	if _, body, err := get(t, c, "http://hooks.example.test:"+serverPort(t, target)+"/"); err != nil || string(body) != "ok" {
		t.Fatalf("GET = %q, %v; want ok", body, err)
	}
	if n, p := targetHits.Load(), proxyHits.Load(); n != 1 || p != 0 {
		t.Errorf("receiver hits %d, proxy hits %d; want 1, 0", n, p)
	}
}

// TestWebhookClient_ExplicitProxy: a configured proxy is used, and the
// destination check applies to the proxy's address.
func TestWebhookClient_ExplicitProxy(t *testing.T) {
	t.Parallel()
	var proxied atomic.Value
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proxied.Store(r.URL.String())
		io.WriteString(w, "via proxy")
	}))
	defer proxy.Close()
	proxyURL, _ := url.Parse(proxy.URL)

	_, _, err := get(t, newTestWebhookClient(t, &WebhookConfig{Proxy: proxyURL}), "http://hooks.example.test/x")
	if !errors.Is(err, ErrBlockedDestination) || !strings.Contains(err.Error(), proxyURL.Host) {
		t.Errorf("GET via a loopback proxy not allowed = %v, want ErrBlockedDestination naming %s", err, proxyURL.Host)
	}
	if proxied.Load() != nil {
		t.Fatalf("the blocked proxy was reached")
	}
	c := newTestWebhookClient(t, &WebhookConfig{Proxy: proxyURL, AllowNetworks: loopback})
	if _, body, err := get(t, c, "http://hooks.example.test/x"); err != nil || string(body) != "via proxy" {
		t.Errorf("GET via an allowed proxy = %q, %v; want via proxy", body, err)
	}
	if got := proxied.Load(); got != "http://hooks.example.test/x" {
		t.Errorf("proxy saw %v, want http://hooks.example.test/x", got)
	}
}

// TestWebhookClient_Timeout is W10: a receiver that trickles its answer is
// cut off at WebhookConfig.Timeout.
func TestWebhookClient_Timeout(t *testing.T) {
	t.Parallel()
	const timeout = 300 * time.Millisecond
	done := make(chan struct{})
	trickle := func(w io.Writer, flush func(), s string) {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for i := 0; i < len(s); i++ {
			if _, err := w.Write([]byte{s[i]}); err != nil {
				return
			}
			flush()
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/headers" {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			defer conn.Close()
			trickle(conn, func() {}, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			return
		}
		w.WriteHeader(http.StatusOK)
		trickle(w, func() { http.NewResponseController(w).Flush() }, strings.Repeat("x", 100))
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(done) }) // runs first: stops the trickling handlers
	c := newTestWebhookClient(t, &WebhookConfig{Timeout: timeout, AllowNetworks: loopback})

	for _, path := range []string{"/body", "/headers"} {
		start := time.Now()
		_, body, err := get(t, c, srv.URL+path)
		elapsed := time.Since(start)
		var ne net.Error
		if err == nil || !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("GET %s = %q, %v; want a timeout error", path, body, err)
		}
		if elapsed < timeout || elapsed > timeout+2*time.Second {
			t.Errorf("GET %s took %v, want about %v", path, elapsed, timeout)
		}
	}
}

// TestWebhookClient_ResponseLimits is W11: at most MaxResponseBytes of a
// body is read, and nothing is decompressed.
func TestWebhookClient_ResponseLimits(t *testing.T) {
	t.Parallel()
	var bomb bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&bomb, gzip.BestCompression)
	zeros := make([]byte, 1<<20)
	for range 16 { // 16 MiB of zeros, about 16 KiB compressed
		zw.Write(zeros)
	}
	zw.Close()
	const limit = 4096
	if bomb.Len() <= limit {
		t.Fatalf("the bomb is %d bytes compressed, want more than %d", bomb.Len(), limit)
	}

	var acceptEncoding atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		acceptEncoding.Store(r.Header.Get("Accept-Encoding"))
		switch r.URL.Path {
		case "/huge": // 50 MB
			chunk := bytes.Repeat([]byte("y"), 1<<20)
			for range 50 {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		case "/bomb":
			w.Header().Set("Content-Encoding", "gzip")
			w.Header().Set("Content-Type", "application/json")
			w.Write(bomb.Bytes())
		case "/headers":
			w.Header().Set("X-Huge", strings.Repeat("h", 100<<10))
		}
	}))
	defer srv.Close()

	c := newTestWebhookClient(t, &WebhookConfig{AllowNetworks: loopback, MaxResponseBytes: limit})
	for _, path := range []string{"/huge", "/bomb"} {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+path, nil)
		req.Header.Set("Accept-Encoding", "gzip")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		start := time.Now()
		// An excerpt shorter than what is read, as deliveries keep.
		excerpt := make([]byte, limit/4)
		n, read, err := readResponse(resp.Body, limit, excerpt)
		resp.Body.Close()
		body := excerpt[:n]
		if err != nil || n != limit/4 || read != limit {
			t.Errorf("GET %s: kept %d bytes, read %d, %v; want %d, %d, nil", path, n, read, err, limit/4, limit)
		}
		if elapsed := time.Since(start); elapsed > 2*time.Second {
			t.Errorf("GET %s: reading took %v", path, elapsed)
		}
		if path == "/bomb" {
			if resp.Uncompressed || resp.Header.Get("Content-Encoding") != "gzip" || !bytes.Equal(body, bomb.Bytes()[:limit/4]) {
				t.Errorf("GET /bomb: Uncompressed %v, Content-Encoding %q, body not the raw gzip bytes", resp.Uncompressed, resp.Header.Get("Content-Encoding"))
			}
		}
		if got := acceptEncoding.Load(); got != "identity" {
			t.Errorf("GET %s: Accept-Encoding %q, want identity", path, got)
		}
	}
	if _, _, err := get(t, c, srv.URL+"/headers"); err == nil || !strings.Contains(err.Error(), "header") {
		t.Errorf("GET with 100 KiB of headers = %v, want an error", err)
	}
}

// TestWebhookClient_TLS is W17: certificates are verified; a test server's
// certificate is trusted only when TLSConfig says so.
func TestWebhookClient_TLS(t *testing.T) {
	t.Parallel()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
	srv.StartTLS()
	defer srv.Close()

	_, _, err := get(t, newTestWebhookClient(t, &WebhookConfig{AllowNetworks: loopback}), srv.URL)
	var certErr *tls.CertificateVerificationError
	if !errors.As(err, &certErr) {
		t.Errorf("GET with system roots = %v, want a certificate verification error", err)
	}

	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	c := newTestWebhookClient(t, &WebhookConfig{AllowNetworks: loopback, TLSConfig: &tls.Config{RootCAs: roots}})
	if _, body, err := get(t, c, srv.URL); err != nil || string(body) != "ok" {
		t.Errorf("GET with the server's roots = %q, %v; want ok", body, err)
	}
}
