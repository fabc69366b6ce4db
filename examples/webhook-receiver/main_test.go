package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taskwheel/tasks/webhook"
)

// lockedBuffer is a bytes.Buffer the server's goroutines may write while the
// test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// sign returns a Standard Webhooks v1 signature computed from the spec.
func sign(t *testing.T, secret, id, ts, body string) string {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		t.Fatal(err)
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id + "." + ts + "." + body))
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func TestHandler(t *testing.T) {
	secret := webhook.NewSecret()
	var out lockedBuffer
	srv := httptest.NewServer(handler(secret, &out))
	defer srv.Close()

	body := `{"id":"3f1c","app_id":"app_1","event_type":"user.created","status":"running","data":{"email":"a@example.com"}}`
	post := func(sig string) int {
		t.Helper()
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/webhooks", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("webhook-id", "3f1c")
		req.Header.Set("webhook-timestamp", ts)
		if sig == "" {
			sig = sign(t, secret, "3f1c", ts, body)
		}
		req.Header.Set("webhook-signature", sig)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	if got := post(""); got != http.StatusNoContent {
		t.Errorf("signed delivery: got status %d, want 204", got)
	}
	if got, want := out.String(), "3f1c user.created {\"email\":\"a@example.com\"}\n"; got != want {
		t.Errorf("printed %q, want %q", got, want)
	}

	bad := sign(t, webhook.NewSecret(), "3f1c", strconv.FormatInt(time.Now().Unix(), 10), body)
	if got := post(bad); got != http.StatusBadRequest {
		t.Errorf("delivery signed with another secret: got status %d, want 400", got)
	}
	if got := post("v1,AAAA"); got != http.StatusBadRequest {
		t.Errorf("delivery with a garbage signature: got status %d, want 400", got)
	}
	if got := strings.Count(out.String(), "\n"); got != 1 {
		t.Errorf("printed %d lines, want 1: %q", got, out.String())
	}
}
