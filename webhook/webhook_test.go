package webhook_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/taskwheel/tasks/webhook"
)

// signStandard computes a Standard Webhooks v1 signature entry from the
// spec, independently of the package: "v1," + base64 of HMAC-SHA256 keyed
// with the decoded secret over "id.timestamp.body".
func signStandard(t *testing.T, secret, id, ts string, body []byte) string {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		t.Fatal(err)
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id + "." + ts + "." + string(body)))
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func TestNewSecret(t *testing.T) {
	t.Parallel()
	a, b := webhook.NewSecret(), webhook.NewSecret()
	if a == b {
		t.Errorf("two secrets are equal: %q", a)
	}
	for _, s := range []string{a, b} {
		enc, ok := strings.CutPrefix(s, "whsec_")
		if !ok {
			t.Errorf("secret %q: want the prefix whsec_", s)
		}
		key, err := base64.StdEncoding.DecodeString(enc)
		if err != nil || len(key) != 32 {
			t.Errorf("secret %q: got %d bytes, err %v; want 32 bytes of standard base64", s, len(key), err)
		}
		if err := webhook.ValidateSecret(s); err != nil {
			t.Errorf("ValidateSecret(%q): got %v, want nil", s, err)
		}
	}
}

// ACCEPTANCE S5.
func TestValidateSecret(t *testing.T) {
	t.Parallel()
	key := func(n int) string { return base64.StdEncoding.EncodeToString(make([]byte, n)) }
	for _, tt := range []struct {
		name, secret, wantErr string // wantErr "" accepts
	}{
		{"published vector", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", ""},
		{"24 bytes", "whsec_" + key(24), ""},
		{"64 bytes", "whsec_" + key(64), ""},
		{"empty", "", "must start with"},
		{"no prefix", key(32), "must start with"},
		{"prefix without underscore", "whsec" + key(32), "must start with"},
		{"upper-case prefix", "WHSEC_" + key(32), "must start with"},
		{"prefix only", "whsec_", "decodes to 0 bytes"},
		{"23 bytes", "whsec_" + key(23), "decodes to 23 bytes"},
		{"65 bytes", "whsec_" + key(65), "decodes to 65 bytes"},
		{"not base64", "whsec_this is not base64!!", "not valid base64"},
		{"URL alphabet", "whsec_" + strings.Repeat("-_", 16), "not valid base64"},
		{"missing padding", "whsec_" + base64.RawStdEncoding.EncodeToString(make([]byte, 32)), "not valid base64"},
		{"non-zero padding bits", "whsec_" + key(32)[:42] + "B=", "not valid base64"},
		{"line break", "whsec_" + key(32)[:20] + "\n" + key(32)[20:], "line breaks"},
		{"surrounding space", " whsec_" + key(32), "must start with"},
		{"trailing space", "whsec_" + key(32) + " ", "not valid base64"},
	} {
		err := webhook.ValidateSecret(tt.secret)
		if tt.wantErr == "" {
			if err != nil {
				t.Errorf("%s: got %v, want nil", tt.name, err)
			}
			continue
		}
		if !errors.Is(err, webhook.ErrInvalidSecret) || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%s: got %v, want ErrInvalidSecret saying %q", tt.name, err, tt.wantErr)
			continue
		}
		if enc := strings.TrimPrefix(strings.TrimSpace(tt.secret), "whsec_"); len(enc) > 4 && strings.Contains(err.Error(), enc) {
			t.Errorf("%s: error %q contains the secret", tt.name, err)
		}
	}
}

// ACCEPTANCE S2 and S3; the timestamp tolerance at its edges is in
// webhook_internal_test.go.
func TestVerify(t *testing.T) {
	t.Parallel()
	secret := webhook.NewSecret()
	other := webhook.NewSecret()
	body := []byte(`{"id":"t1","event_type":"user.created","data":{"n":1}}`)
	now := strconv.FormatInt(time.Now().Unix(), 10)
	good := signStandard(t, secret, "t1", now, body)

	for _, tt := range []struct {
		name    string
		edit    func(h http.Header)
		body    string // "" means body
		wantErr string // "" accepts
	}{
		{name: "valid", edit: func(http.Header) {}},
		{name: "several entries, one valid", edit: func(h http.Header) {
			h.Set("webhook-signature", "v1,bm90IGl0 v2,abc "+signStandard(t, other, "t1", now, body)+"  "+good+" v1a,xyz")
		}},
		{name: "valid entry in a second header line", edit: func(h http.Header) {
			h.Set("webhook-signature", "v1,bm90IGl0")
			h.Add("webhook-signature", good)
		}},
		{name: "missing webhook-id", edit: func(h http.Header) { h.Del("webhook-id") }, wantErr: "missing webhook-id"},
		{name: "empty webhook-id", edit: func(h http.Header) { h.Set("webhook-id", "") }, wantErr: "missing webhook-id"},
		{name: "missing webhook-timestamp", edit: func(h http.Header) { h.Del("webhook-timestamp") }, wantErr: "missing webhook-timestamp"},
		{name: "missing webhook-signature", edit: func(h http.Header) { h.Del("webhook-signature") }, wantErr: "missing webhook-signature"},
		{name: "fractional timestamp", edit: func(h http.Header) { h.Set("webhook-timestamp", now+".5") }, wantErr: "not an integer"},
		{name: "RFC 3339 timestamp", edit: func(h http.Header) { h.Set("webhook-timestamp", time.Now().Format(time.RFC3339)) }, wantErr: "not an integer"},
		{name: "signed timestamp", edit: func(h http.Header) { h.Set("webhook-timestamp", "+"+now) }, wantErr: "not an integer"},
		{name: "timestamp with space", edit: func(h http.Header) { h.Set("webhook-timestamp", " "+now) }, wantErr: "not an integer"},
		{name: "ten minutes old", edit: func(h http.Header) {
			ts := strconv.FormatInt(time.Now().Add(-10*time.Minute).Unix(), 10)
			h.Set("webhook-timestamp", ts)
			h.Set("webhook-signature", signStandard(t, secret, "t1", ts, body))
		}, wantErr: "in the past"},
		{name: "ten minutes ahead", edit: func(h http.Header) {
			ts := strconv.FormatInt(time.Now().Add(10*time.Minute).Unix(), 10)
			h.Set("webhook-timestamp", ts)
			h.Set("webhook-signature", signStandard(t, secret, "t1", ts, body))
		}, wantErr: "in the future"},
		{name: "only unknown versions", edit: func(h http.Header) {
			h.Set("webhook-signature", "v2"+strings.TrimPrefix(good, "v1")+" v1a,"+strings.TrimPrefix(good, "v1,"))
		}, wantErr: "no v1 entry"},
		{name: "bare signature without version", edit: func(h http.Header) {
			h.Set("webhook-signature", strings.TrimPrefix(good, "v1,"))
		}, wantErr: "no v1 entry"},
		{name: "one changed body byte", body: strings.Replace(string(body), `"n":1`, `"n":2`, 1), wantErr: "no signature matched"},
		{name: "body with a trailing newline", body: string(body) + "\n", wantErr: "no signature matched"},
		{name: "other webhook-id", edit: func(h http.Header) { h.Set("webhook-id", "t2") }, wantErr: "no signature matched"},
		{name: "other secret's signature", edit: func(h http.Header) {
			h.Set("webhook-signature", signStandard(t, other, "t1", now, body))
		}, wantErr: "no signature matched"},
		{name: "truncated signature", edit: func(h http.Header) { h.Set("webhook-signature", good[:len(good)-2]) }, wantErr: "no signature matched"},
		{name: "unpadded signature", edit: func(h http.Header) { h.Set("webhook-signature", strings.TrimRight(good, "=")) }, wantErr: "no signature matched"},
	} {
		h := http.Header{}
		h.Set("webhook-id", "t1")
		h.Set("webhook-timestamp", now)
		h.Set("webhook-signature", good)
		if tt.edit != nil {
			tt.edit(h)
		}
		b := body
		if tt.body != "" {
			b = []byte(tt.body)
		}
		err := webhook.Verify(secret, h, b)
		if tt.wantErr == "" {
			if err != nil {
				t.Errorf("%s: got %v, want nil", tt.name, err)
			}
			continue
		}
		if !errors.Is(err, webhook.ErrSignature) || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%s: got %v, want ErrSignature saying %q", tt.name, err, tt.wantErr)
		}
	}
}

func TestVerify_BadSecret(t *testing.T) {
	t.Parallel()
	h := http.Header{}
	h.Set("webhook-id", "t1")
	h.Set("webhook-timestamp", strconv.FormatInt(time.Now().Unix(), 10))
	h.Set("webhook-signature", "v1,AAAA")
	for _, secret := range []string{"", "whsec_", "whsec_short", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"} {
		err := webhook.Verify(secret, h, nil)
		if !errors.Is(err, webhook.ErrInvalidSecret) || errors.Is(err, webhook.ErrSignature) {
			t.Errorf("secret %q: got %v, want ErrInvalidSecret", secret, err)
		}
	}
}

// Sign with the Standard Webhooks project's Go library, verify with ours.
// The other direction is in webhook_internal_test.go.
func TestVerify_StandardWebhooksLibrary(t *testing.T) {
	t.Parallel()
	for _, secret := range []string{webhook.NewSecret(), "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"} {
		wh, err := standardwebhooks.NewWebhook(secret)
		if err != nil {
			t.Fatal(err)
		}
		body := []byte(`{"test": 2432232314}`)
		ts := time.Now()
		sig, err := wh.Sign("msg_p5jXN8AQM9LWM0D4loKWxJek", ts, body)
		if err != nil {
			t.Fatal(err)
		}
		h := http.Header{}
		h.Set(standardwebhooks.HeaderWebhookID, "msg_p5jXN8AQM9LWM0D4loKWxJek")
		h.Set(standardwebhooks.HeaderWebhookTimestamp, strconv.FormatInt(ts.Unix(), 10))
		h.Set(standardwebhooks.HeaderWebhookSignature, sig)
		if err := webhook.Verify(secret, h, body); err != nil {
			t.Errorf("verify their signature: got %v, want nil", err)
		}
		if err := webhook.Verify(secret, h, []byte(`{"test": 2432232315}`)); !errors.Is(err, webhook.ErrSignature) {
			t.Errorf("verify their signature over another body: got %v, want ErrSignature", err)
		}
		if err := webhook.Verify(webhook.NewSecret(), h, body); !errors.Is(err, webhook.ErrSignature) {
			t.Errorf("verify their signature with another secret: got %v, want ErrSignature", err)
		}
	}
}

// A receiver verifies the raw body before decoding it.
func ExampleVerify() {
	secret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" // the endpoint's signing secret
	http.HandleFunc("POST /webhooks", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil {
			http.Error(w, "unreadable body", http.StatusBadRequest)
			return
		}
		if err := webhook.Verify(secret, r.Header, body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var task struct { // a tasks.Task, of which a receiver needs little
			ID        string          `json:"id"`
			EventType string          `json:"event_type"`
			Data      json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(body, &task); err != nil {
			http.Error(w, "not a task", http.StatusBadRequest)
			return
		}
		// Deliveries are at least once: deduplicate on task.ID.
		fmt.Println(task.ID, task.EventType, string(task.Data))
		w.WriteHeader(http.StatusNoContent)
	})
}

// Sign gives the four headers of a delivery, and Verify accepts them: the
// published vector (ACCEPTANCE S1) through the exported API.
func TestSign(t *testing.T) {
	t.Parallel()
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	body := []byte(`{"test": 2432232314}`)
	h, err := webhook.Sign([]string{secret}, "msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), body)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"webhook-id":        "msg_p5jXN8AQM9LWM0D4loKWxJek",
		"webhook-timestamp": "1614265330",
		"webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
	} {
		if got := h.Get(name); got != want {
			t.Errorf("%s: got %q, want %q", name, got, want)
		}
	}
	if got := h.Get("HostedHooks-Signature"); !strings.HasPrefix(got, "t=1614265330,s=") {
		t.Errorf("HostedHooks-Signature: got %q, want t=1614265330,s=<hex>", got)
	}

	now := time.Now()
	h, err = webhook.Sign([]string{secret}, "t1", now, body)
	if err != nil {
		t.Fatal(err)
	}
	if err := webhook.Verify(secret, h, body); err != nil {
		t.Errorf("Verify(Sign(...)): got %v, want nil", err)
	}
	if _, err := webhook.Sign([]string{"whsec_short"}, "t1", now, body); !errors.Is(err, webhook.ErrInvalidSecret) {
		t.Errorf("Sign with a short secret: got %v, want ErrInvalidSecret", err)
	}
}

// BenchmarkSign signs a delivery of a typical task body with one secret,
// as every webhook delivery does.
func BenchmarkSign(b *testing.B) {
	secret := webhook.NewSecret()
	body := []byte(`{"id":"0193f6a8-7b7c-7cc2-9a4e-3f1d2c5b6a70","app_id":"bench","event_type":"bench.webhook",` +
		`"scheduled_run_time":null,"created_at":"2026-12-06T17:00:00.123456Z","data":{"n":1234}}`)
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := webhook.Sign([]string{secret}, "0193f6a8-7b7c-7cc2-9a4e-3f1d2c5b6a70", now, body); err != nil {
			b.Fatal(err)
		}
	}
}
