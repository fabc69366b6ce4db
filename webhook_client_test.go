package tasks_test

import (
	"errors"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/net/idna"

	"github.com/taskwheel/tasks"
)

// blockedLiteralURLs has a literal address in every blocked range (W1).
var blockedLiteralURLs = []string{
	// IPv4
	"http://0.0.0.0/", "http://0.1.2.3/",
	"http://10.0.0.1/", "http://10.255.255.255/",
	"http://100.64.0.1/", "http://100.127.255.254/",
	"http://127.0.0.1/", "http://127.0.0.1:8080/hook", "http://127.255.255.254/",
	"http://169.254.169.254/latest/meta-data/", "http://169.254.0.1/",
	"http://172.16.0.1/", "http://172.31.255.255/",
	"http://192.0.0.1/", "http://192.0.0.170/",
	"http://192.0.2.1/",
	"http://192.88.99.1/",
	"http://192.168.0.1/", "http://192.168.255.255/",
	"http://198.18.0.1/", "http://198.19.255.255/",
	"http://198.51.100.7/",
	"http://203.0.113.9/",
	"http://224.0.0.1/", "http://239.255.255.250/",
	"http://240.0.0.1/", "http://254.1.2.3/",
	"http://255.255.255.255/",
	// IPv6
	"http://[::]/", "http://[::1]/", "http://[::1]:8080/", "http://[0:0:0:0:0:0:0:1]/",
	"http://[::ffff:127.0.0.1]/", "http://[::ffff:7f00:1]/", "http://[::ffff:a9fe:a9fe]/", "http://[::ffff:10.0.0.1]/",
	"http://[::127.0.0.1]/", // IPv4-compatible (deprecated)
	"http://[64:ff9b::a9fe:a9fe]/", "http://[64:ff9b::7f00:1]/", "http://[64:ff9b::10.0.0.1]/", "http://[64:ff9b::ffff:ffff]/",
	"http://[64:ff9b:1::1]/", "http://[64:ff9b:1::808:808]/",
	"http://[100::1]/",
	"http://[2001::1]/", "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", // Teredo
	"http://[2001:2::1]/", "http://[2001:10::1]/", // benchmarking, ORCHID
	"http://[2001:db8::1]/",
	"http://[2002:a9fe:a9fe::1]/", "http://[2002:7f00:1::1]/", "http://[2002:808:808::1]/", // 6to4, refused whole
	"http://[3fff::1]/",
	"http://[fc00::1]/", "http://[fd12:3456:789a::1]/",
	"http://[fe80::1]/", "http://[FE80::1]/", "http://[fe80::1%25eth0]/", "http://[fe80::1%25lo]:8080/",
	"http://[fec0::1]/",
	"http://[ff02::1]/", "http://[ff05::1:3]/", "http://[ff0e::1]/",
	"http://[4000::1]/", "http://[e000::1]/", // not global unicast
}

// ambiguousIPv4URLs spell IPv4 addresses in forms inet_aton and browsers
// accept but that are not dotted quads (W2).
var ambiguousIPv4URLs = []string{
	"http://2130706433/", "http://0x7f000001/", "http://0X7F000001/", "http://017700000001/",
	"http://0x7f.1/", "http://0x7f.0x0.0x0.0x1/", "http://0x7f.0.0.1/",
	"http://0177.0.0.1/", "http://0177.1/", "http://00000127.0.0.1/", "http://127.000.000.001/",
	"http://127.1/", "http://127.0.1/", "http://10.1/", "http://192.168.1/",
	"http://127.0.0.1./", "http://1.1.1/", "http://8.8.8.8./",
	"http://0/", "http://0x/", "http://1.2.3.4.5/", "http://example.0x7f/", "http://example.123/",
	"http://3232235777:8080/", "https://0xa9fea9fe/latest/meta-data/",
}

// malformedURLs are refused whatever the address (W7).
var malformedURLs = []string{
	"", "example.com", "//example.com/", "/relative/path", "http://", "http:///path", "http:example.com",
	"ftp://example.com/", "file:///etc/passwd", "gopher://example.com:70/_GET", "javascript:alert(1)",
	"data:text/plain,hi", "ws://example.com/", "dict://example.com:11211/", "HTTPS//example.com",
	"http://u:p@example.com/", "http://user@example.com/", "http://:p@example.com/", "https://a@b@example.com/",
	"http://exa\x00mple.com/", "http://example.com/\r\nX-Injected: 1", "http://example.com/\t", "http://example.com/\n",
	"http://example.com/a b", " http://example.com/", "http://example.com/\x7f", "http://example.com/\x1b[2J",
	"http://example.com/\u202e", "http://example.com/\u00a0", "http://example.com/\u200b", "http://example.com/\xff",
	"http://example.com/" + strings.Repeat("a", 3000),
	"http://example.com:0/", "http://example.com:65536/", "http://example.com:99999/", "http://example.com:/",
	"http://example.com:80:80/", "http://example.com:-1/",
	"http://ex%61mple.com/", "http://exa\\mple.com/",
	"http://[127.0.0.1]/", "http://[v1.fe]/", "http://[::1/", "http://[fe80::1%eth0]/",
	"http://a..b.example/", "http://.example.com/", "http://" + strings.Repeat("a", 64) + ".example/",
	"http://" + strings.Repeat("abcdefghi.", 26) + "example/",
	"http://localhost/", "http://LOCALHOST.:8080/", "http://api.localhost/",
}

// acceptedURLs are legitimate public endpoints; validation does no I/O, so
// none of them is contacted.
var acceptedURLs = []string{
	"https://example.com/hook", "https://93.184.215.14/x", "http://example.com", "HTTPS://EXAMPLE.COM/Hook",
	"https://example.com:8443/path?q=1&r=%20#frag", "https://example.com./hook", "https://hooks_svc.example.com/",
	"https://xn--bcher-kva.example/", "https://b\u00fccher.example/", "https://\u043f\u0440\u0438\u043c\u0435\u0440.\u0440\u0444/hook",
	"https://B\u00dcCHER.example:8443/x", "https://b%C3%BCcher.example/", "https://example.com/caf\u00e9", "http://example.com:1/", "http://example.com:65535/",
	"http://0x.example.com/", "http://1.example.com/", "http://123.45.example.net/", "http://0xdeadbeef.example.com/",
	"http://127.0.0.1.example.com/", "http://example.cafe/", "http://localhost.example.com/",
	"http://8.8.8.8/", "http://9.255.255.255/", "http://11.0.0.0/", "http://100.63.255.255/", "http://100.128.0.0/",
	"http://172.15.255.255/", "http://172.32.0.0/", "http://192.0.1.255/", "http://192.0.3.0/", "http://192.167.255.255/",
	"http://192.169.0.0/", "http://198.17.255.255/", "http://198.20.0.0/", "http://223.255.255.255/",
	"http://[2606:4700:4700::1111]/", "http://[2a00:1450:4001:80b::200e]:443/", "http://[2001:200::1]/",
	"http://[64:ff9b::808:808]/", "http://[64:ff9b::8.8.8.8]/", "http://[::ffff:8.8.8.8]/",
	"http://example.com/" + strings.Repeat("a", 2048-len("http://example.com/")),
}

func TestValidateEndpointURL(t *testing.T) {
	t.Parallel()
	refused := func(t *testing.T, raw string, cfg *tasks.WebhookConfig) {
		t.Helper()
		err := tasks.ValidateEndpointURL(raw, cfg)
		var ve *tasks.ValidationError
		if !errors.As(err, &ve) || ve.Field != "url" || ve.Message == "" {
			t.Errorf("ValidateEndpointURL(%q) = %v, want a *ValidationError for url", raw, err)
		}
	}
	t.Run("W1 blocked literal addresses", func(t *testing.T) {
		t.Parallel()
		for _, raw := range blockedLiteralURLs {
			refused(t, raw, nil)
		}
	})
	t.Run("W2 ambiguous IPv4 spellings", func(t *testing.T) {
		t.Parallel()
		all := &tasks.WebhookConfig{AllowNetworks: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}}
		for _, raw := range ambiguousIPv4URLs {
			refused(t, raw, nil)
			refused(t, raw, all) // refused even where the address would be allowed
		}
	})
	t.Run("W7 malformed", func(t *testing.T) {
		t.Parallel()
		for _, raw := range malformedURLs {
			refused(t, raw, nil)
		}
	})
	t.Run("accepts public endpoints", func(t *testing.T) {
		t.Parallel()
		for _, raw := range acceptedURLs {
			if err := tasks.ValidateEndpointURL(raw, nil); err != nil {
				t.Errorf("ValidateEndpointURL(%q) = %v, want nil", raw, err)
			}
		}
	})
	t.Run("W1 W2 internationalized spellings of blocked hosts", func(t *testing.T) {
		t.Parallel()
		// IDNA maps these to 127.0.0.1, 169.254.169.254, localhost and a
		// numeric last label: the checks apply to what the name becomes.
		for _, tt := range []struct{ raw, want string }{
			{"http://\uff11\uff12\uff17.0.0.1/", "127.0.0.1 is not allowed"},
			{"http://\uff11\uff16\uff19.\uff12\uff15\uff14.\uff11\uff16\uff19.\uff12\uff15\uff14/", "169.254.169.254 is not allowed"},
			{"http://\u24db\u24de\u24d2\u24d0\u24db\u24d7\u24de\u24e2\u24e3:8080/", "loopback name"},
			{"http://api.\u24db\u24de\u24d2\u24d0\u24db\u24d7\u24de\u24e2\u24e3/", "loopback name"},
			{"http://b\u00fccher.0x7f/", "ambiguous"},
			{"http://b\u00fccher.\uff11\uff12\uff13/", "ambiguous"},
		} {
			err := tasks.ValidateEndpointURL(tt.raw, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ValidateEndpointURL(%q) = %v, want an error mentioning %q", tt.raw, err, tt.want)
			}
		}
	})
	t.Run("W7 invalid internationalized names", func(t *testing.T) {
		t.Parallel()
		for _, raw := range []string{
			"http://\u0301a.example/",        // starts with a combining mark
			"http://a\u05d0.example/",        // mixes left-to-right and right-to-left
			"http://-b\u00fccher.example/",   // a hyphen at the start of a label
			"http://b\u00fccher-.example/",   // and at its end
			"http://b\u00fc_cher.example/",   // an underscore, which IDNA refuses
			"http://b\u00fccher.xn--zz/",     // punycode that decodes to nothing valid
			"http://xn--zz.example/",         // the same in an ASCII host
			"http://xn--localhost-.example/", // punycode of a label IDNA refuses
			"http://XN--A.example/",          // punycode of a control character
		} {
			err := tasks.ValidateEndpointURL(raw, nil)
			if err == nil || !strings.Contains(err.Error(), "is not a valid internationalized domain name") {
				t.Errorf("ValidateEndpointURL(%q) = %v, want an error naming the invalid internationalized name", raw, err)
			}
		}
	})
	t.Run("message names the problem", func(t *testing.T) {
		t.Parallel()
		for _, tt := range []struct{ raw, want string }{
			{"ftp://example.com/", "scheme"},
			{"http://u:p@example.com/", "user info"},
			{"http://169.254.169.254/", "169.254.169.254"},
			{"http://[64:ff9b::a9fe:a9fe]/", "NAT64"},
			{"http://0x7f.1/", "ambiguous"},
			{"http://example.com/\r\n", `'\r'`},
			{"http://example.com/" + strings.Repeat("a", 3000), "2048"},
			{"http://[fe80::1%25eth0]/", "zone"},
		} {
			err := tasks.ValidateEndpointURL(tt.raw, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "tasks: invalid url: ") {
				t.Errorf("ValidateEndpointURL(%.40q) = %v, want an error mentioning %q", tt.raw, err, tt.want)
			}
		}
	})
	t.Run("allow lists", func(t *testing.T) {
		t.Parallel()
		cfg := &tasks.WebhookConfig{
			AllowNetworks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("fd00::/8")},
			AllowHosts:    []string{"LocalHost", "10.1.2.3"},
		}
		for _, raw := range []string{
			"http://127.0.0.1:8080/", "http://[::ffff:127.0.0.1]:8080/", "http://[fd00::1]/", "http://localhost:3000/",
			"http://localhost.:3000/", "http://10.1.2.3/",
		} {
			if err := tasks.ValidateEndpointURL(raw, cfg); err != nil {
				t.Errorf("ValidateEndpointURL(%q) with allow lists = %v, want nil", raw, err)
			}
		}
		for _, raw := range []string{"http://10.1.2.4/", "http://[::1]/", "http://api.localhost/", "http://127.1/", "ftp://127.0.0.1/"} {
			refused(t, raw, cfg)
		}
	})
}

// FuzzValidateEndpointURL checks that no URL ValidateEndpointURL accepts
// has a host that is, or that a resolver would read as, a literal address
// in a blocked range (T: URL validation never accepts a blocked address).
func FuzzValidateEndpointURL(f *testing.F) {
	for _, seeds := range [][]string{blockedLiteralURLs, ambiguousIPv4URLs, malformedURLs, acceptedURLs} {
		for _, s := range seeds {
			f.Add(s)
		}
	}
	f.Add("http://\uff11\uff12\uff17.0.0.1/")
	f.Add("http://\u24db\u24de\u24d2\u24d0\u24db\u24d7\u24de\u24e2\u24e3/")
	f.Add("https://b\u00fccher.example:8443/")
	f.Fuzz(func(t *testing.T, raw string) {
		if tasks.ValidateEndpointURL(raw, nil) != nil {
			return
		}
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("accepted %q, which url.Parse refuses: %v", raw, err)
		}
		if u.Scheme != "http" && u.Scheme != "https" || u.User != nil || u.Hostname() == "" || len(raw) > 2048 {
			t.Fatalf("accepted %q: scheme %q, user %v, host %q", raw, u.Scheme, u.User, u.Hostname())
		}
		// The checks must hold for the name a resolver is asked for: an
		// internationalized name's ASCII form.
		host := u.Hostname()
		if strings.ContainsFunc(host, func(r rune) bool { return r >= 0x80 }) {
			if host, err = idna.Lookup.ToASCII(host); err != nil {
				t.Fatalf("accepted %q, whose host IDNA refuses: %v", raw, err)
			}
		}
		if a, err := netip.ParseAddr(host); err == nil {
			if a.Zone() != "" || isBlockedAddr(a) {
				t.Fatalf("accepted %q with blocked address %s", raw, a)
			}
		}
		if a, ok := inetAton(host); ok {
			if host != a.String() {
				t.Fatalf("accepted %q, whose host %q a resolver reads as %s", raw, host, a)
			}
			if isBlockedAddr(a) {
				t.Fatalf("accepted %q with blocked address %s", raw, a)
			}
		}
		if h := strings.TrimSuffix(strings.ToLower(host), "."); h == "localhost" || strings.HasSuffix(h, ".localhost") {
			t.Fatalf("accepted %q with a loopback name", raw)
		}
		for _, r := range raw {
			if r < 0x20 || r == 0x7f || r == ' ' {
				t.Fatalf("accepted %q with control character or space", raw)
			}
		}
	})
}

// testBlockedPrefixes is the test's own copy of the ranges the package must
// refuse, written from the IANA special-purpose registries.
var testBlockedPrefixes = func() []netip.Prefix {
	var ps []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
		"192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15",
		"198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
		"::/128", "::1/128", "64:ff9b:1::/48", "100::/64", "2001::/32", "2001:db8::/32", "2002::/16",
		"fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
	} {
		ps = append(ps, netip.MustParsePrefix(s))
	}
	return ps
}()

// isBlockedAddr is the fuzz target's oracle: an address in a blocked range,
// directly, IPv4-mapped or NAT64-embedded, or IPv6 outside 2000::/3.
func isBlockedAddr(a netip.Addr) bool {
	a = a.WithZone("").Unmap()
	if netip.MustParsePrefix("64:ff9b::/96").Contains(a) {
		b := a.As16()
		return isBlockedAddr(netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}))
	}
	if a.Is6() && !netip.MustParsePrefix("2000::/3").Contains(a) {
		return true
	}
	for _, p := range testBlockedPrefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// inetAton parses host as inet_aton(3) and the WHATWG URL standard do: one
// to four parts separated by dots (one trailing dot allowed), each decimal,
// octal (leading 0) or hex (leading 0x), the last filling the remaining
// bytes.
func inetAton(host string) (netip.Addr, bool) {
	parts := strings.Split(strings.TrimSuffix(host, "."), ".")
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	var nums []uint64
	for _, p := range parts {
		base, digits := 10, p
		switch {
		case len(p) >= 2 && (p[:2] == "0x" || p[:2] == "0X"):
			base, digits = 16, p[2:]
			if digits == "" {
				digits = "0"
			}
		case len(p) > 1 && p[0] == '0':
			base, digits = 8, p[1:]
		}
		if digits == "" || strings.ContainsAny(digits, "+-_") {
			return netip.Addr{}, false
		}
		digits = strings.TrimLeft(digits, "0")
		if len(digits) > 12 {
			return netip.Addr{}, false
		}
		if digits == "" {
			digits = "0"
		}
		n, err := strconv.ParseUint(digits, base, 64)
		if err != nil {
			return netip.Addr{}, false
		}
		nums = append(nums, n)
	}
	var v uint64
	for i, n := range nums[:len(nums)-1] {
		if n > 255 {
			return netip.Addr{}, false
		}
		v |= n << (24 - 8*i)
	}
	last := nums[len(nums)-1]
	if last >= 1<<(8*(5-len(nums))) {
		return netip.Addr{}, false
	}
	v |= last
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true
}

func TestInetAton(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in   string
		want string // "" when not an address
	}{
		{"127.0.0.1", "127.0.0.1"}, {"2130706433", "127.0.0.1"}, {"0x7f.1", "127.0.0.1"}, {"0177.0.0.1", "127.0.0.1"},
		{"127.1", "127.0.0.1"}, {"10.1", "10.0.0.1"}, {"0x7f000001", "127.0.0.1"}, {"127.0.0.1.", "127.0.0.1"},
		{"192.168.257", "192.168.1.1"}, {"0x", "0.0.0.0"}, {"0", "0.0.0.0"},
		{"256.0.0.1", ""}, {"1.2.3.4.5", ""}, {"08.0.0.1", ""}, {"example.com", ""}, {"4294967296", ""}, {"1..2", ""},
	} {
		a, ok := inetAton(tt.in)
		got := ""
		if ok {
			got = a.String()
		}
		if got != tt.want {
			t.Errorf("inetAton(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestCreateEndpoint_PunycodeHost: a host written in punycode is stored as
// the same name written in Unicode is, in lower case ASCII.
func TestCreateEndpoint_PunycodeHost(t *testing.T) {
	t.Parallel()
	e, err := tasks.NewEngine(tasks.NewMemoryStore(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, raw := range []string{"https://XN--BCHER-KVA.example/hook", "https://B\u00dcCHER.example/hook"} {
		ep, err := e.CreateEndpoint(t.Context(), tasks.NewEndpoint{AppID: "app_1", URL: raw})
		if err != nil {
			t.Fatal(err)
		}
		if want := "https://xn--bcher-kva.example/hook"; ep.URL != want {
			t.Errorf("CreateEndpoint(%q) stored %q, want %q", raw, ep.URL, want)
		}
	}
}
