package webhook

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// The published Standard Webhooks test vector (ACCEPTANCE S1).
const (
	vectorSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vectorID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vectorTimestamp = 1614265330
	vectorBody      = `{"test": 2432232314}`
	vectorSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

// hostedHooksHex computes the HostedHooks signature independently of the
// code under test: hex HMAC-SHA256 over "t.body", keyed with the secret text.
func hostedHooksHex(secret string, t int64, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(strconv.FormatInt(t, 10) + "." + string(body)))
	return hex.EncodeToString(m.Sum(nil))
}

// deliveryHeader returns the Standard Webhooks headers of a delivery.
func deliveryHeader(id string, ts time.Time, signature string) http.Header {
	h := http.Header{}
	h.Set(idHeader, id)
	h.Set(timestampHeader, timestamp(ts))
	h.Set(signatureHeader, signature)
	return h
}

func TestSignWebhook_Vector(t *testing.T) {
	t.Parallel()
	ts := time.Unix(vectorTimestamp, 0)
	std, hh, err := sign([]string{vectorSecret}, vectorID, ts, []byte(vectorBody))
	if err != nil {
		t.Fatal(err)
	}
	if std != vectorSignature {
		t.Errorf("webhook-signature: got %q, want %q", std, vectorSignature)
	}
	wantHH := "t=1614265330,s=" + hostedHooksHex(vectorSecret, vectorTimestamp, []byte(vectorBody))
	if hh != wantHH {
		t.Errorf("HostedHooks-Signature: got %q, want %q", hh, wantHH)
	}
	h := deliveryHeader(vectorID, ts, vectorSignature)
	if err := verifyAt(vectorSecret, h, []byte(vectorBody), ts); err != nil {
		t.Errorf("verify the vector at its own time: got %v, want nil", err)
	}
}

// The body is signed byte for byte, never re-encoded (ACCEPTANCE S6).
func TestSignWebhook_BodyBytesAsGiven(t *testing.T) {
	t.Parallel()
	secret := NewSecret()
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	ts := time.Unix(1700000000, 0)
	for _, body := range []string{
		`{"b": 1,  "a": "\u00e9"}` + "\n", // not what json.Marshal would write
		"",
		"\x00\xff not JSON at all",
	} {
		std, hh, err := sign([]string{secret}, "id1", ts, []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		m := hmac.New(sha256.New, key)
		m.Write([]byte("id1.1700000000." + body))
		if want := "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil)); std != want {
			t.Errorf("body %q: webhook-signature: got %q, want %q", body, std, want)
		}
		if want := "t=1700000000,s=" + hostedHooksHex(secret, 1700000000, []byte(body)); hh != want {
			t.Errorf("body %q: HostedHooks-Signature: got %q, want %q", body, hh, want)
		}
	}
}

// Two active secrets give two entries in each header, newest first, and each
// entry verifies with its own secret only (ACCEPTANCE W18).
func TestSignWebhook_Rotation(t *testing.T) {
	t.Parallel()
	newSecret, oldSecret := NewSecret(), NewSecret()
	ts := time.Unix(1700000000, 0)
	body := []byte(`{"id":"t1","event_type":"user.created","data":{}}`)
	std, hh, err := sign([]string{newSecret, oldSecret}, "t1", ts, body)
	if err != nil {
		t.Fatal(err)
	}
	entries := strings.Split(std, " ")
	if len(entries) != 2 {
		t.Fatalf("webhook-signature %q: got %d entries, want 2", std, len(entries))
	}
	for i, secret := range []string{newSecret, oldSecret} {
		if err := verifyAt(secret, deliveryHeader("t1", ts, std), body, ts); err != nil {
			t.Errorf("whole header with secret %d: got %v, want nil", i, err)
		}
		for j, entry := range entries {
			err := verifyAt(secret, deliveryHeader("t1", ts, entry), body, ts)
			if i == j && err != nil {
				t.Errorf("entry %d with its own secret: got %v, want nil", j, err)
			}
			if i != j && !errors.Is(err, ErrSignature) {
				t.Errorf("entry %d with secret %d: got %v, want ErrSignature", j, i, err)
			}
		}
	}
	wantHH := "t=1700000000,s=" + hostedHooksHex(newSecret, 1700000000, body) + ",s=" + hostedHooksHex(oldSecret, 1700000000, body)
	if hh != wantHH {
		t.Errorf("HostedHooks-Signature: got %q, want %q", hh, wantHH)
	}
}

// Each attempt of a retried task gets a fresh timestamp and signature over
// the same id and body (ACCEPTANCE W16).
func TestSignWebhook_FreshPerAttempt(t *testing.T) {
	t.Parallel()
	secret := NewSecret()
	body := []byte(`{"id":"t1"}`)
	t1, t2 := time.Unix(1700000000, 0), time.Unix(1700000060, 0)
	s1, h1, _ := sign([]string{secret}, "t1", t1, body)
	s2, h2, _ := sign([]string{secret}, "t1", t2, body)
	if s1 == s2 || h1 == h2 {
		t.Errorf("signatures of two attempts are equal: %q, %q", s1, h1)
	}
	if err := verifyAt(secret, deliveryHeader("t1", t2, s2), body, t2); err != nil {
		t.Errorf("second attempt: got %v, want nil", err)
	}
	// The first attempt's signature does not verify under the second's timestamp.
	if err := verifyAt(secret, deliveryHeader("t1", t2, s1), body, t2); !errors.Is(err, ErrSignature) {
		t.Errorf("old signature with new timestamp: got %v, want ErrSignature", err)
	}
}

func TestSignWebhook_BadSecrets(t *testing.T) {
	t.Parallel()
	good := NewSecret()
	for _, secrets := range [][]string{
		nil,
		{"whsec_c2hvcnQ="},
		{good, "not-a-secret-at-all"},
		{"whsec_***"},
	} {
		std, hh, err := sign(secrets, "id", time.Unix(1, 0), nil)
		if err == nil || std != "" || hh != "" {
			t.Errorf("secrets %q: got (%q, %q, %v), want an error", secrets, std, hh, err)
			continue
		}
		for _, s := range secrets {
			if s != good && strings.Contains(err.Error(), strings.TrimPrefix(s, "whsec_")) {
				t.Errorf("error %q contains the secret", err)
			}
		}
		if len(secrets) > 0 {
			if !errors.Is(err, ErrInvalidSecret) {
				t.Errorf("secrets %q: got %v, want ErrInvalidSecret", secrets, err)
			}
		}
	}
}

func TestVerify_Tolerance(t *testing.T) {
	t.Parallel()
	secret := NewSecret()
	body := []byte(`{}`)
	sent := time.Unix(1700000000, 0)
	std, _, err := sign([]string{secret}, "id", sent, body)
	if err != nil {
		t.Fatal(err)
	}
	h := deliveryHeader("id", sent, std)
	for _, tt := range []struct {
		receivedAfter time.Duration // receiver clock minus the timestamp
		wantErr       string        // "" accepts
	}{
		{0, ""},
		{5 * time.Minute, ""}, // just inside, late
		{5*time.Minute + 999*time.Millisecond, ""},      // whole seconds
		{-5 * time.Minute, ""},                          // just inside, early
		{5*time.Minute + time.Second, "in the past"},    // too old
		{-5*time.Minute - time.Second, "in the future"}, // too new
		{time.Hour, "in the past"},
		{-time.Hour, "in the future"},
	} {
		err := verifyAt(secret, h, body, sent.Add(tt.receivedAfter))
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("received %v after: got %v, want nil", tt.receivedAfter, err)
		case tt.wantErr != "" && (!errors.Is(err, ErrSignature) || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("received %v after: got %v, want ErrSignature saying %q", tt.receivedAfter, err, tt.wantErr)
		}
	}
	// Extreme timestamps are refused without overflow.
	for _, ts := range []string{"0", "9223372036854775807", "9223372036854775808", "-9223372036854775808"} {
		h := deliveryHeader("id", sent, std)
		h.Set(timestampHeader, ts)
		if err := verifyAt(secret, h, body, sent); !errors.Is(err, ErrSignature) {
			t.Errorf("timestamp %s: got %v, want ErrSignature", ts, err)
		}
	}
}

// Sign with ours, verify with the Standard Webhooks project's Go library.
// The other direction is in webhook_test.go.
func TestSignWebhook_VerifiedByStandardWebhooksLibrary(t *testing.T) {
	t.Parallel()
	newSecret, oldSecret := NewSecret(), NewSecret()
	body := []byte(`{"id":"t1","event_type":"invoice.paid","data":{"amount":42}}`)
	ts := time.Now()
	std, _, err := sign([]string{newSecret, oldSecret}, "t1", ts, body)
	if err != nil {
		t.Fatal(err)
	}
	h := deliveryHeader("t1", ts, std)
	for _, secret := range []string{newSecret, oldSecret, vectorSecret} {
		wh, err := standardwebhooks.NewWebhook(secret)
		if err != nil {
			t.Fatal(err)
		}
		err = wh.Verify(body, h)
		if secret == vectorSecret {
			if err == nil {
				t.Error("their Verify with an unrelated secret: got nil, want an error")
			}
			continue
		}
		if err != nil {
			t.Errorf("their Verify: got %v, want nil", err)
		}
		if err := wh.Verify(append(bytes.Clone(body), ' '), h); err == nil {
			t.Error("their Verify of a changed body: got nil, want an error")
		}
	}
	// The published vector, through their VerifyIgnoringTimestamp.
	std, _, _ = sign([]string{vectorSecret}, vectorID, time.Unix(vectorTimestamp, 0), []byte(vectorBody))
	wh, _ := standardwebhooks.NewWebhook(vectorSecret)
	if err := wh.VerifyIgnoringTimestamp([]byte(vectorBody), deliveryHeader(vectorID, time.Unix(vectorTimestamp, 0), std)); err != nil {
		t.Errorf("their VerifyIgnoringTimestamp of the vector: got %v, want nil", err)
	}
}

// FuzzVerify checks that verification never panics on any secret,
// headers and body, that a signature we produced always verifies for the
// same body, and that it never verifies for a different body.
func FuzzVerify(f *testing.F) {
	f.Add(vectorSecret, vectorID, "1614265330", vectorSignature, []byte(vectorBody), []byte("key seed"), []byte("x"))
	f.Add("whsec_", "", "", "", []byte(nil), []byte(nil), []byte(nil))
	f.Add("whsec_====", "id", "+1", "v1, v1,,, v2,abc  \t v1", []byte("{}"), []byte{0}, []byte{})
	f.Add("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "a.b", "-0", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", []byte("\xff"), []byte("k"), []byte("\xff"))
	now := time.Unix(vectorTimestamp, 0)
	f.Fuzz(func(t *testing.T, secret, id, ts, sig string, body, seed, other []byte) {
		// Arbitrary input: any result but a panic.
		h := http.Header{}
		h.Set(idHeader, id)
		h.Set(timestampHeader, ts)
		h.Add(signatureHeader, sig)
		_ = verifyAt(secret, h, body, now)
		_ = Verify(secret, h, body)
		_ = ValidateSecret(secret)
		_, _, _ = sign([]string{secret}, id, now, body)

		// A valid secret derived from seed: our signature round-trips.
		key := sha256.Sum256(seed)
		good := "whsec_" + base64.StdEncoding.EncodeToString(key[:])
		std, hh, err := sign([]string{good, NewSecret()}, id, now, body)
		if err != nil {
			t.Fatalf("sign with a valid secret: %v", err)
		}
		if !strings.HasPrefix(hh, "t=1614265330,s=") {
			t.Fatalf("HostedHooks-Signature %q", hh)
		}
		if id == "" {
			return // a delivery always has an ID; verification requires one
		}
		h = deliveryHeader(id, now, std)
		if err := verifyAt(good, h, body, now); err != nil {
			t.Fatalf("verify our own signature: %v", err)
		}
		// Keep other's entries too: a stray extra entry changes nothing.
		h.Add(signatureHeader, sig)
		if err := verifyAt(good, h, body, now); err != nil {
			t.Fatalf("verify our own signature beside %q: %v", sig, err)
		}
		if !bytes.Equal(other, body) {
			if err := verifyAt(good, h, other, now); !errors.Is(err, ErrSignature) {
				t.Fatalf("verify a different body: got %v, want ErrSignature", err)
			}
		}
	})
}

// TestMAC checks the signing's own HMAC-SHA256 against crypto/hmac, with
// keys shorter than, as long as and longer than a SHA-256 block (which
// HMAC hashes first), bodies empty and of several blocks, and one mac
// reused for every case, as the pool reuses them.
func TestMAC(t *testing.T) {
	t.Parallel()
	want := func(key []byte, parts ...string) []byte {
		h := hmac.New(sha256.New, key)
		for _, p := range parts {
			h.Write([]byte(p))
		}
		return h.Sum(nil)
	}
	m := getMAC()
	defer putMAC(m)
	for _, keyLen := range []int{0, 1, 24, 32, 63, 64, 65, 100, 200} {
		key := bytes.Repeat([]byte{byte(keyLen) + 1}, keyLen)
		for _, bodyLen := range []int{0, 1, 55, 64, 1000} {
			body := bytes.Repeat([]byte("b"), bodyLen)
			if got, w := m.standard(key, "msg_1", "1614265330", body), want(key, "msg_1.1614265330.", string(body)); !bytes.Equal(got, w) {
				t.Errorf("standard, key of %d bytes, body of %d: got %x, want %x", keyLen, bodyLen, got, w)
			}
			secret := "whsec_" + strings.Repeat("s", keyLen)
			if got, w := m.hostedHooks(secret, "1614265330", body), want([]byte(secret), "1614265330.", string(body)); !bytes.Equal(got, w) {
				t.Errorf("HostedHooks, secret of %d bytes, body of %d: got %x, want %x", len(secret), bodyLen, got, w)
			}
		}
	}
}
