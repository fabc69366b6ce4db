package tasks

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// The webhook HTTP client is SSRF-safe by default. Every connection it opens
// is checked, on the address actually dialled (after DNS, in the dialer's
// Control hook, so DNS rebinding gains nothing), against the special-purpose
// ranges in blockedPrefixes; redirects are not followed, proxy environment
// variables are ignored, and time and response size are bounded.
// validateEndpointURL refuses at endpoint creation what can be refused
// without I/O: other schemes, user info, blocked literal addresses and
// ambiguous spellings of IPv4 addresses.

// WebhookConfig configures webhook delivery. A nil *WebhookConfig, like the
// zero value, means all defaults. Its fields are read when the delivery
// client is built; changing them afterwards has no effect.
type WebhookConfig struct {
	// Timeout bounds a whole delivery request: connecting, sending, waiting
	// for the response and reading its bounded body. A receiver that
	// trickles its answer is cut off when it passes. Defaults to 15s.
	Timeout time.Duration
	// MaxResponseBytes is the most of a response body that is read; the
	// rest is never read. An attempt keeps the first ResponseExcerptBytes
	// of it. Bodies are never decompressed, so a compression bomb is just
	// bytes. Defaults to 64 KiB.
	MaxResponseBytes int64
	// RetrySchedule is the delay before each retry of a failed delivery:
	// the first after attempt 1, and so on; attempts past its end wait as
	// long as its last. Each delay varies by ±10% at random. A receiver's
	// longer Retry-After (on 429 and 503) wins. Defaults to the schedule
	// Svix uses: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h, so that with
	// DefaultMaxAttempts (one attempt and one retry per step) a webhook
	// task's deliveries span about 27.5 hours.
	RetrySchedule []time.Duration
	// MaxRetryAfter caps the Retry-After a receiver can ask for. Defaults
	// to DefaultMaxRetryAfter.
	MaxRetryAfter time.Duration
	// DisableAfter is how long every delivery to an endpoint must have
	// failed before the engine disables it (see [Endpoint.FailingSince]):
	// a failed attempt that comes at least this long after the last
	// acknowledged delivery, and after the first failure since, makes the
	// endpoint inactive, with the reason and time on it, and logs a
	// warning; it may be up to a minute later than that (see
	// [Endpoint.LastSuccessAt]), never earlier. Any answer but a 2xx
	// received in full is a failure, a 429 or 503 with Retry-After too,
	// and so is an attempt cut short by its timeout (Config.Timeout or the
	// task's, when shorter than Timeout); an attempt cut short by its
	// task's cancellation or the engine's shutdown says nothing of the
	// endpoint and counts for nothing. A 410 Gone disables the endpoint at once, whatever this
	// is. Forever disables none for failing; a negative value is a
	// *ValidationError. Defaults to DefaultDisableAfter (5 days).
	DisableAfter time.Duration
	// AllowNetworks lists destination ranges that are otherwise blocked
	// but may be dialled, such as 127.0.0.0/8 for local development and
	// tests. It is checked on the address dialled; an IPv4-mapped IPv6
	// address matches the IPv4 prefix of its embedded address. Defaults to
	// none.
	AllowNetworks []netip.Prefix
	// AllowHosts lists host names (compared exactly, ignoring case and a
	// trailing dot) whose addresses may be dialled even when blocked, such
	// as "localhost" or a development machine's name. A literal address
	// written in the URL matches as written. Defaults to none.
	AllowHosts []string
	// Proxy, when set, is the proxy every delivery goes through (http,
	// https or socks5). The destination check then applies to the proxy's
	// address, not the receiver's, so the proxy must enforce its own policy
	// on where it connects. Proxy environment variables (HTTP_PROXY,
	// HTTPS_PROXY, NO_PROXY) are always ignored. Defaults to none: connect
	// directly.
	Proxy *url.URL
	// TLSConfig, when set, is cloned and used for https endpoints, for
	// example to trust a test server's own roots. Certificates are always
	// verified unless the caller sets InsecureSkipVerify here, which is the
	// caller's explicit choice and makes deliveries readable and forgeable
	// by anyone on the path. Defaults to the system roots and TLS 1.2 or
	// newer.
	TLSConfig *tls.Config

	// lookup, when set, resolves host names for the dialer in place of
	// the system resolver. Tests use it to answer with chosen addresses.
	lookup func(ctx context.Context, host string) ([]netip.Addr, error)
}

// Defaults for WebhookConfig and the limits of the delivery client.
const (
	defaultWebhookTimeout      = 15 * time.Second
	defaultMaxResponseBytes    = 64 << 10
	webhookDialTimeout         = 5 * time.Second
	webhookTLSHandshakeTimeout = 5 * time.Second
	webhookMaxResponseHeader   = 64 << 10
	webhookIdleConnTimeout     = 90 * time.Second
	webhookMinIdleConns        = 100 // in all, across hosts: net/http's default
	maxEndpointURLLength       = 2048
	maxHostNameLength          = 253
	maxHostLabelLength         = 63
)

// withDefaults returns a copy of c with zero fields set to their defaults,
// or an error naming a field that is out of range.
func (c *WebhookConfig) withDefaults() (WebhookConfig, error) {
	var cfg WebhookConfig
	if c != nil {
		cfg = *c
	}
	switch {
	case cfg.Timeout < 0:
		return cfg, errors.New("tasks: WebhookConfig.Timeout must not be negative")
	case cfg.MaxResponseBytes < 0:
		return cfg, errors.New("tasks: WebhookConfig.MaxResponseBytes must not be negative")
	case cfg.MaxRetryAfter < 0:
		return cfg, errors.New("tasks: WebhookConfig.MaxRetryAfter must not be negative")
	case cfg.DisableAfter < 0:
		return cfg, invalid("WebhookConfig.DisableAfter", "must not be negative")
	case slices.ContainsFunc(cfg.RetrySchedule, func(d time.Duration) bool { return d < 0 }):
		return cfg, errors.New("tasks: WebhookConfig.RetrySchedule must not hold a negative delay")
	}
	for _, p := range cfg.AllowNetworks {
		if !p.IsValid() {
			return cfg, errors.New("tasks: WebhookConfig.AllowNetworks holds an invalid prefix")
		}
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = defaultWebhookTimeout
	}
	if cfg.MaxResponseBytes == 0 {
		cfg.MaxResponseBytes = defaultMaxResponseBytes
	}
	if cfg.RetrySchedule == nil {
		cfg.RetrySchedule = defaultRetrySchedule
	}
	if cfg.MaxRetryAfter == 0 {
		cfg.MaxRetryAfter = DefaultMaxRetryAfter
	}
	if cfg.DisableAfter == 0 {
		cfg.DisableAfter = DefaultDisableAfter
	}
	return cfg, nil
}

// allowsHost reports whether host is listed in AllowHosts.
func (c *WebhookConfig) allowsHost(host string) bool {
	if c == nil {
		return false
	}
	host = strings.TrimSuffix(host, ".")
	for _, h := range c.AllowHosts {
		if strings.EqualFold(strings.TrimSuffix(h, "."), host) {
			return true
		}
	}
	return false
}

// allowsAddr reports whether a is in one of the AllowNetworks.
func (c *WebhookConfig) allowsAddr(a netip.Addr) bool {
	if c == nil {
		return false
	}
	a = a.WithZone("")
	for _, p := range c.AllowNetworks {
		if p.Contains(a) || p.Contains(a.Unmap()) {
			return true
		}
	}
	return false
}

// checkAddr returns an error wrapping ErrBlockedDestination if ap's address
// is blocked and not allowed.
func (c *WebhookConfig) checkAddr(ap netip.AddrPort) error {
	if c.allowsAddr(ap.Addr()) {
		return nil
	}
	if reason, blocked := blockedAddr(ap.Addr()); blocked {
		return fmt.Errorf("%w: %s (%s)", ErrBlockedDestination, ap, reason)
	}
	return nil
}

// newClient returns the HTTP client that delivers webhooks under c, or an
// error if a field of c is out of range. The client does not follow
// redirects (a 3xx comes back as the response), ignores proxy environment
// variables, never asks for or decodes compressed bodies, and refuses to
// connect to blocked addresses with an error wrapping ErrBlockedDestination.
// Its Timeout bounds each request including reading the body; read bodies
// with readResponse.
//
// The client keeps up to workers idle connections alive to each host, so
// that as many deliveries running at once to one receiver reuse theirs
// rather than dial anew (net/http keeps 2), and up to workers or 100,
// whichever is more, across all hosts, the least recently used closed
// first. The destination check applies to each connection dialled; a
// connection is reused only for the scheme, host name and port (or proxy)
// it was dialled for, so reusing it reaches no address but the one checked.
// The client is safe for concurrent use; call its CloseIdleConnections when
// done with it.
func (c *WebhookConfig) newClient(workers int) (*webhookClient, error) {
	cfg, err := c.withDefaults()
	if err != nil {
		return nil, err
	}
	g := &dialGuard{cfg: &cfg}
	g.checked = &net.Dialer{Timeout: webhookDialTimeout, KeepAlive: 30 * time.Second, Control: g.control}
	g.unchecked = &net.Dialer{Timeout: webhookDialTimeout, KeepAlive: 30 * time.Second}

	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.TLSConfig != nil {
		tlsConfig = cfg.TLSConfig.Clone()
	}
	t := &http.Transport{
		Proxy:               nil, // never http.ProxyFromEnvironment
		DialContext:         g.dialContext,
		TLSClientConfig:     tlsConfig,
		TLSHandshakeTimeout: webhookTLSHandshakeTimeout,
		// No ResponseHeaderTimeout: the client's Timeout, as long, bounds
		// the whole request, and the Transport's would cost every
		// request a timer of its own.
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: webhookMaxResponseHeader,
		DisableCompression:     true,
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           max(webhookMinIdleConns, workers),
		MaxIdleConnsPerHost:    workers,
		IdleConnTimeout:        webhookIdleConnTimeout,
	}
	if cfg.Proxy != nil {
		t.Proxy = http.ProxyURL(cfg.Proxy)
	}
	return &webhookClient{http: &http.Client{
		Transport: t,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
		Timeout: cfg.Timeout,
	}}, nil
}

// webhookClient is the client that newClient returns. Its Do sends every
// request with "Accept-Encoding: identity", so receivers are asked not to
// compress; the Transport's DisableCompression makes sure nothing is
// decompressed when they do anyway.
//
// It sets the header itself rather than through a RoundTripper wrapping
// the Transport, which the http.Client would hold: net/http bounds a
// request by Client.Timeout with a context deadline only when its
// RoundTripper is its own Transport; any other, which it cannot trust to
// honour the request's context, gets a timer, two channels and a
// goroutine per request that cancel it the old way (Request.Cancel).
type webhookClient struct {
	http *http.Client
}

// Do sends req as http.Client.Do does, with "Accept-Encoding: identity".
// It does not change req: one that asks otherwise is cloned.
func (c *webhookClient) Do(req *http.Request) (*http.Response, error) {
	if v := req.Header["Accept-Encoding"]; len(v) != 1 || v[0] != "identity" {
		req = req.Clone(req.Context())
		req.Header.Set("Accept-Encoding", "identity")
	}
	return c.http.Do(req)
}

// CloseIdleConnections closes the client's idle keep-alive connections.
func (c *webhookClient) CloseIdleConnections() { c.http.CloseIdleConnections() }

// readResponse reads at most max bytes of a response's body, as sent (never
// decompressed): it fills excerpt with the first of them and discards the
// rest, and returns how many it kept and how many it read. A body longer
// than max is not an error; the rest is never read. The error is that of
// reading, such as the client's timeout cutting off a receiver that
// trickles its body. The caller closes body.
func readResponse(body io.Reader, max int64, excerpt []byte) (kept int, read int64, err error) {
	excerpt = excerpt[:min(int64(len(excerpt)), max)]
	for kept < len(excerpt) {
		n, err := body.Read(excerpt[kept:])
		kept += n
		if err == io.EOF {
			return kept, int64(kept), nil
		}
		if err != nil {
			return kept, int64(kept), err
		}
	}
	rest, err := io.CopyN(io.Discard, body, max-int64(kept))
	if err == io.EOF {
		err = nil
	}
	return kept, int64(kept) + rest, err
}

// dialGuard connects the delivery client, refusing blocked addresses.
type dialGuard struct {
	cfg       *WebhookConfig
	checked   *net.Dialer // Control refuses blocked addresses
	unchecked *net.Dialer // for hosts in AllowHosts
}

// control runs after the socket is created and before it connects, on the
// address actually dialled (after any DNS lookup), so nothing is sent to a
// blocked address and a name that changes its answer between a check and
// the connection still cannot reach one.
func (g *dialGuard) control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: unparseable address %q", ErrBlockedDestination, address)
	}
	return g.cfg.checkAddr(ap)
}

// dialContext is the Transport's DialContext. addr is the host and port of
// the URL, or of the proxy when one is configured.
func (g *dialGuard) dialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	d := g.checked
	if g.cfg.allowsHost(host) {
		d = g.unchecked
	}
	if _, err := netip.ParseAddr(host); err == nil || g.cfg.lookup == nil {
		return d.DialContext(ctx, network, addr) // the dialer resolves; Control checks each address
	}
	addrs, err := g.cfg.lookup(ctx, host)
	if err != nil {
		return nil, &net.DNSError{Err: err.Error(), Name: host}
	}
	var first error
	for _, a := range addrs {
		if network == "tcp4" && !a.Unmap().Is4() || network == "tcp6" && !a.Is6() {
			continue
		}
		conn, err := d.DialContext(ctx, network, net.JoinHostPort(a.String(), port))
		if err == nil {
			return conn, nil
		}
		if first == nil {
			first = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	if first == nil {
		first = &net.DNSError{Err: "no suitable address", Name: host, IsNotFound: true}
	}
	return nil, first
}

// blockedPrefix is a special-purpose range deliveries may not reach.
type blockedPrefix struct {
	prefix netip.Prefix
	reason string
}

// blockedPrefixes lists the IPv4 ranges, and the IPv6 ranges inside global
// unicast (2000::/3), that are refused; everything in IPv6 outside 2000::/3
// is refused too (see blockedAddr). First match gives the reason. From the
// IANA IPv4 and IPv6 special-purpose address registries.
var blockedPrefixes = []blockedPrefix{
	{netip.MustParsePrefix("0.0.0.0/8"), `"this network"`},
	{netip.MustParsePrefix("10.0.0.0/8"), "private"},
	{netip.MustParsePrefix("100.64.0.0/10"), "carrier-grade NAT"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local, cloud metadata"},
	{netip.MustParsePrefix("172.16.0.0/12"), "private"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignments"},
	{netip.MustParsePrefix("192.0.2.0/24"), "documentation"},
	{netip.MustParsePrefix("192.88.99.0/24"), "6to4 relay anycast"},
	{netip.MustParsePrefix("192.168.0.0/16"), "private"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking"},
	{netip.MustParsePrefix("198.51.100.0/24"), "documentation"},
	{netip.MustParsePrefix("203.0.113.0/24"), "documentation"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("255.255.255.255/32"), "broadcast"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved"},

	{netip.MustParsePrefix("64:ff9b:1::/48"), "local-use NAT64"},
	{netip.MustParsePrefix("2001::/32"), "Teredo"},
	{netip.MustParsePrefix("2001:db8::/32"), "documentation"},
	{netip.MustParsePrefix("2001::/23"), "IETF protocol assignments"},
	{netip.MustParsePrefix("2002::/16"), "6to4"},
	{netip.MustParsePrefix("3fff::/20"), "documentation"},
}

var (
	nat64Prefix          = netip.MustParsePrefix("64:ff9b::/96")
	globalUnicastPrefix  = netip.MustParsePrefix("2000::/3")
	siteLocalPrefix      = netip.MustParsePrefix("fec0::/10")
	discardPrefix        = netip.MustParsePrefix("100::/64")
	ipv4CompatiblePrefix = netip.MustParsePrefix("::/96")
)

// blockedAddr reports whether deliveries may not connect to a, and why.
//
//   - IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are judged by their IPv4
//     address, which is where they connect.
//   - Well-known-prefix NAT64 addresses (64:ff9b::a.b.c.d, RFC 6052) are
//     judged by their embedded IPv4 address: DNS64 on IPv6-only networks
//     synthesises them for ordinary public receivers, so blocking them all
//     would stop delivery from such networks, while 64:ff9b::a9fe:a9fe
//     (169.254.169.254) is refused. Local-use NAT64 (64:ff9b:1::/48,
//     RFC 8215) is refused whole.
//   - 6to4 (2002::/16) and Teredo (2001::/32) are refused whole: both are
//     deprecated transition tunnels that no receiver needs and that embed
//     IPv4 addresses a relay would connect to.
//   - Every other IPv6 address outside global unicast (2000::/3) is refused:
//     unspecified, loopback, IPv4-compatible, discard (100::/64), unique
//     local (fc00::/7), link-local (fe80::/10), site-local (fec0::/10),
//     multicast (ff00::/8) and unassigned space.
func blockedAddr(a netip.Addr) (reason string, blocked bool) {
	if !a.IsValid() {
		return "invalid address", true
	}
	a = a.WithZone("").Unmap()
	if a.Is6() {
		if nat64Prefix.Contains(a) {
			b := a.As16()
			v4 := netip.AddrFrom4([4]byte(b[12:16]))
			if reason, blocked := blockedAddr(v4); blocked {
				return "NAT64 form of " + v4.String() + ", " + reason, true
			}
			return "", false
		}
		if !globalUnicastPrefix.Contains(a) {
			return ipv6SpecialReason(a), true
		}
	}
	for _, b := range blockedPrefixes {
		if b.prefix.Contains(a) {
			return b.reason, true
		}
	}
	return "", false
}

// ipv6SpecialReason names the kind of an IPv6 address outside 2000::/3.
func ipv6SpecialReason(a netip.Addr) string {
	switch {
	case a.IsUnspecified():
		return "unspecified"
	case a.IsLoopback():
		return "loopback"
	case a.IsMulticast():
		return "multicast"
	case a.IsLinkLocalUnicast():
		return "link-local"
	case a.IsPrivate():
		return "unique local"
	case siteLocalPrefix.Contains(a):
		return "site-local"
	case discardPrefix.Contains(a):
		return "discard"
	case ipv4CompatiblePrefix.Contains(a):
		return "IPv4-compatible"
	}
	return "not global unicast"
}

// validateEndpointURL reports, as a *ValidationError for the field "url",
// whether raw is unusable as a webhook endpoint under cfg (nil means
// defaults). It does no I/O: host names are checked when a delivery
// connects, on the addresses dialled. An internationalized host name is
// checked in its ASCII form (xn--…, by IDNA's lookup rules, UTS #46, as
// browsers convert it), which is how an endpoint stores it. It refuses
//
//   - anything but an absolute http or https URL with a host, no user info,
//     and a port, if any, from 1 to 65535;
//   - URLs longer than 2048 bytes, not UTF-8, or holding spaces or control
//     or other invisible characters;
//   - host names that IDNA refuses, such as a label starting with a
//     combining mark or ending with a hyphen;
//   - host names that are not, in ASCII form, letters, digits, hyphens,
//     underscores and dots, and the special-use names localhost and
//     *.localhost;
//   - a literal address in a blocked range (see [ErrBlockedDestination]),
//     unless cfg allows it, and IPv6 literals with a zone;
//   - ambiguous IPv4 spellings, which some resolvers read as addresses:
//     decimal (2130706433), hex (0x7f.1), octal (0177.0.0.1) and short forms
//     (127.1). Following the WHATWG URL standard, a host whose last label is
//     a number (all digits, or 0x and hex digits) must be a dotted-quad IPv4
//     address; no top-level domain is numeric, so no DNS name is refused.
//
// The checks apply to the host as converted: "１２７.0.0.1" (full-width
// digits) is 127.0.0.1, and "ⓛⓞⓒⓐⓛⓗⓞⓢⓣ" is localhost.
func validateEndpointURL(raw string, cfg *WebhookConfig) error {
	_, err := endpointURL(raw, cfg)
	return err
}

// endpointURL validates raw as validateEndpointURL does and returns the URL
// an endpoint stores: raw itself, or, when raw's host is an
// internationalized name (in Unicode, or in ASCII with a punycode "xn--"
// label, which must decode to a name IDNA accepts), raw with the name in
// its ASCII form, lower case (the rest of the URL in its escaped form, as
// url.URL.String writes it).
func endpointURL(raw string, cfg *WebhookConfig) (string, error) {
	switch {
	case raw == "":
		return "", invalid("url", "must not be empty")
	case len(raw) > maxEndpointURLLength:
		return "", invalid("url", "longer than %d bytes", maxEndpointURLLength)
	case !utf8.ValidString(raw):
		return "", invalid("url", "not valid UTF-8")
	}
	for _, r := range raw {
		if r == ' ' || !unicode.IsPrint(r) {
			return "", invalid("url", "contains %q; percent-encode spaces and control characters", r)
		}
	}
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "", invalid("url", "not a URL: %v", err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return "", invalid("url", "scheme must be http or https")
	case u.Opaque != "" || u.Host == "":
		return "", invalid("url", "must have a host (http://host/…)")
	case u.User != nil:
		return "", invalid("url", "must not contain user info")
	}
	if err := validatePort(u.Host, u.Port()); err != nil {
		return "", err
	}
	host := u.Hostname()
	if strings.HasPrefix(u.Host, "[") {
		a, err := netip.ParseAddr(host)
		switch {
		case err != nil || !a.Is6():
			return "", invalid("url", "host %q in brackets is not an IPv6 address", host)
		case a.Zone() != "":
			return "", invalid("url", "IPv6 address %q must not have a zone", host)
		}
		return raw, checkLiteral(host, a, cfg)
	}
	if !isASCII(host) || hasPunycode(host) {
		ascii, err := idna.Lookup.ToASCII(host)
		if err != nil {
			return "", invalid("url", "host %q is not a valid internationalized domain name: %s", host, strings.TrimPrefix(err.Error(), "idna: "))
		}
		if port := u.Port(); port != "" {
			u.Host = net.JoinHostPort(ascii, port)
		} else {
			u.Host = ascii
		}
		if len(u.String()) > maxEndpointURLLength {
			return "", invalid("url", "longer than %d bytes with host %q in its ASCII form %q", maxEndpointURLLength, host, ascii)
		}
		raw, host = u.String(), ascii
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if !a.Is4() {
			return "", invalid("url", "IPv6 address %q must be in brackets", host)
		}
		return raw, checkLiteral(host, a, cfg)
	}
	return raw, validateHostName(host, cfg)
}

// isASCII reports whether s is all ASCII.
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// validatePort checks the port of hostport, if it has one.
func validatePort(hostport, port string) error {
	if port == "" {
		if strings.HasSuffix(hostport, ":") {
			return invalid("url", "empty port")
		}
		return nil
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return invalid("url", "port %q not in 1–65535", port)
	}
	return nil
}

// checkLiteral refuses the literal address a, written as host, if it is
// blocked and cfg does not allow it.
func checkLiteral(host string, a netip.Addr, cfg *WebhookConfig) error {
	if cfg.allowsHost(host) || cfg.allowsAddr(a) {
		return nil
	}
	if reason, blocked := blockedAddr(a); blocked {
		return invalid("url", "address %s is not allowed (%s)", host, reason)
	}
	return nil
}

// validateHostName checks a host that is not a literal address.
func validateHostName(host string, cfg *WebhookConfig) error {
	name := strings.TrimSuffix(host, ".")
	if name == "" || len(name) > maxHostNameLength {
		return invalid("url", "host name must be 1 to %d bytes", maxHostNameLength)
	}
	labels := strings.Split(name, ".")
	if isNumericLabel(labels[len(labels)-1]) {
		return invalid("url", "host %q looks like an IPv4 address but is not a dotted quad; decimal, octal, hex and short forms are ambiguous", host)
	}
	for _, l := range labels {
		if l == "" || len(l) > maxHostLabelLength {
			return invalid("url", "host %q has an empty label or one longer than %d bytes", host, maxHostLabelLength)
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return invalid("url", "host %q contains %q; use letters, digits, hyphens and dots", host, c)
			}
		}
	}
	lower := strings.ToLower(name)
	if (lower == "localhost" || strings.HasSuffix(lower, ".localhost")) && !cfg.allowsHost(host) {
		return invalid("url", "host %q is a loopback name", host)
	}
	return nil
}

// isNumericLabel reports whether l is a number as the WHATWG URL standard's
// IPv4 parser reads one: decimal digits, or "0x"/"0X" followed by hex digits
// (possibly none).
func isNumericLabel(l string) bool {
	if l == "" {
		return false
	}
	digits, isDigit := l, func(c byte) bool { return c >= '0' && c <= '9' }
	if len(l) >= 2 && l[0] == '0' && (l[1] == 'x' || l[1] == 'X') {
		digits = l[2:]
		isDigit = func(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }
	}
	for i := 0; i < len(digits); i++ {
		if !isDigit(digits[i]) {
			return false
		}
	}
	return true
}

// hasPunycode reports whether the ASCII host name has a label in punycode:
// one that starts with "xn--", in any case.
func hasPunycode(host string) bool {
	for label := range strings.SplitSeq(host, ".") {
		if len(label) >= 4 && strings.EqualFold(label[:4], "xn--") {
			return true
		}
	}
	return false
}
