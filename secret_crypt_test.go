package tasks_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/internal/testdb"
	"github.com/taskwheel/tasks/sqlite"
	"github.com/taskwheel/tasks/webhook"
)

// newKey returns a new random encryption key.
func newKey() []byte {
	k := make([]byte, tasks.EncryptionKeySize)
	rand.Read(k)
	return k
}

// keyed returns webhookConfig() with keys as its EncryptionKeys.
func keyed(keys ...[]byte) *tasks.Config {
	c := webhookConfig()
	c.EncryptionKeys = keys
	return c
}

// wantSealed fails t unless the store holds the endpoint's secrets
// encrypted: no "whsec_" text in them.
func wantSealed(t *testing.T, s tasks.Store, id string) {
	t.Helper()
	raw, err := s.GetEndpoint(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	for _, stored := range []string{raw.Secret, raw.PreviousSecret} {
		if stored != "" && (!strings.HasPrefix(stored, "enc:v1:") || strings.Contains(stored, "whsec_")) {
			t.Errorf("stored secret: got %q, want it encrypted (enc:v1:...)", stored)
		}
	}
}

func TestEncryptionKeys(t *testing.T) {
	t.Parallel()
	testEngineStores(t, func(t *testing.T, newStore func(testing.TB) tasks.Store) {
		t.Run("the store holds secrets encrypted, and deliveries verify", func(t *testing.T) {
			t.Parallel()
			s := newStore(t)
			rc := newReceiver(t)
			e := startEngine(t, s, keyed(newKey()), nil)
			ep := createEndpoint(t, e, tasks.NewEndpoint{URL: rc.URL})
			if !strings.HasPrefix(ep.Secret, "whsec_") {
				t.Fatalf("CreateEndpoint: secret %q, want whsec_...", ep.Secret)
			}
			wantSealed(t, s, ep.ID)
			rotated, err := e.RotateEndpointSecret(context.Background(), ep.ID, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			wantSealed(t, s, ep.ID)

			enqueue(t, e, tasks.NewTask{EventType: "user.created"})
			var got *received
			select {
			case got = <-rc.got:
			case <-time.After(10 * time.Second):
				t.Fatal("no delivery within 10 s")
			}
			for _, secret := range []string{rotated.Secret, ep.Secret} { // the new, and the old in the overlap
				if err := webhook.Verify(secret, got.header, got.body); err != nil {
					t.Errorf("Verify with %s: %v", secret[:10], err)
				}
			}
		})

		t.Run("plaintext secrets stay readable, and ReencryptEndpoints encrypts them", func(t *testing.T) {
			t.Parallel()
			s := newStore(t)
			plain := createEndpoint(t, newEngine(t, s, webhookConfig()), tasks.NewEndpoint{URL: "https://example.com/hooks"})
			e := newEngine(t, s, keyed(newKey()))
			if got, err := e.Endpoint(context.Background(), plain.ID); err != nil || got.Secret != plain.Secret {
				t.Fatalf("Endpoint: got %v, %v; want the plaintext secret read as it is", got, err)
			}
			n, err := e.ReencryptEndpoints(context.Background())
			if n != 1 || err != nil {
				t.Fatalf("ReencryptEndpoints: got %d, %v; want 1, nil", n, err)
			}
			wantSealed(t, s, plain.ID)
			if got, err := e.Endpoint(context.Background(), plain.ID); err != nil || got.Secret != plain.Secret {
				t.Errorf("Endpoint after ReencryptEndpoints: got %v, %v; want the same secret", got, err)
			}
			if n, err := e.ReencryptEndpoints(context.Background()); n != 0 || err != nil {
				t.Errorf("ReencryptEndpoints again: got %d, %v; want 0, nil", n, err)
			}
		})

		t.Run("a new key first and the old kept: old secrets read, and move to the new key", func(t *testing.T) {
			t.Parallel()
			s := newStore(t)
			older, newer := newKey(), newKey()
			ep := createEndpoint(t, newEngine(t, s, keyed(older)), tasks.NewEndpoint{URL: "https://example.com/hooks"})
			other := createEndpoint(t, newEngine(t, s, keyed(older)), tasks.NewEndpoint{AppID: "app_2", URL: "https://example.com/hooks"})
			e := newEngine(t, s, keyed(newer, older))
			if got, err := e.Endpoint(context.Background(), ep.ID); err != nil || got.Secret != ep.Secret {
				t.Fatalf("Endpoint with the old key second: got %v, %v; want the secret", got, err)
			}
			if n, err := e.ReencryptEndpoints(context.Background()); n != 2 || err != nil {
				t.Fatalf("ReencryptEndpoints: got %d, %v; want 2 (every app's), nil", n, err)
			}
			onlyNew := newEngine(t, s, keyed(newer))
			for _, want := range []*tasks.Endpoint{ep, other} {
				if got, err := onlyNew.Endpoint(context.Background(), want.ID); err != nil || got.Secret != want.Secret {
					t.Errorf("Endpoint with the new key only: got %v, %v; want the secret", got, err)
				}
			}
		})

		t.Run("a secret whose key is missing is a clear error, never a wrong signature", func(t *testing.T) {
			t.Parallel()
			s := newStore(t)
			rc := newReceiver(t)
			ep := createEndpoint(t, newEngine(t, s, keyed(newKey())), tasks.NewEndpoint{URL: rc.URL})
			for _, cfg := range []*tasks.Config{keyed(newKey()), webhookConfig()} {
				e := newEngine(t, s, cfg)
				_, err := e.Endpoint(context.Background(), ep.ID)
				if err == nil || !strings.Contains(err.Error(), "decrypt secret of endpoint "+ep.ID) || !strings.Contains(err.Error(), "EncryptionKeys") {
					t.Errorf("Endpoint with %d other keys: got error %v, want one saying the secret's key is not among Config.EncryptionKeys", len(cfg.EncryptionKeys), err)
				}
				if _, err := e.Endpoints(context.Background(), "app_1"); err == nil {
					t.Error("Endpoints: got no error, want the decrypt error")
				}
			}
			e := startEngine(t, s, keyed(newKey()), nil)
			task := enqueue(t, e, tasks.NewTask{EventType: "user.created"})
			deadline := time.Now().Add(10 * time.Second)
			for {
				got, err := e.Get(context.Background(), task.ID)
				if err != nil {
					t.Fatal(err)
				}
				if strings.Contains(got.LastError, "decrypt secret of endpoint "+ep.ID) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("task: state %s, last error %q; want a retry saying the secret does not decrypt", got.State, got.LastError)
				}
				time.Sleep(5 * time.Millisecond)
			}
			if n := rc.count(); n != 0 {
				t.Errorf("receiver got %d deliveries, want none", n)
			}
		})
	})
}

// With a key, the SQLite file and its WAL hold no secret in plaintext,
// however the pages happen to be laid out.
func TestEncryptionKeys_SQLiteFileHasNoPlaintextSecret(t *testing.T) {
	t.Parallel()
	path := testdb.SQLitePath(t)
	s, err := sqlite.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	e := newEngine(t, s, keyed(newKey()))
	ep := createEndpoint(t, e, tasks.NewEndpoint{URL: "https://example.com/hooks"})
	rotated, err := e.RotateEndpointSecret(context.Background(), ep.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var column string
	if err := s.DB().QueryRow("SELECT secret || previous_secret FROM taskwheel_endpoints").Scan(&column); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(column, "whsec_") {
		t.Errorf("secret columns: got %q, want no whsec_ text", column)
	}
	for _, name := range []string{path, path + "-wal"} {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, secret := range []string{ep.Secret, rotated.Secret, "whsec_"} {
			if bytes.Contains(b, []byte(secret)) {
				t.Errorf("%s holds %q in plaintext", name, secret)
			}
		}
	}
}

func TestNewEngine_badEncryptionKeys(t *testing.T) {
	t.Parallel()
	k := newKey()
	for _, c := range []struct {
		name string
		keys [][]byte
		want string
	}{
		{"short", [][]byte{k, k[:16]}, "Config.EncryptionKeys[1] is 16 bytes, want 32"},
		{"twice", [][]byte{k, newKey(), k}, "Config.EncryptionKeys[2] is Config.EncryptionKeys[0] again"},
	} {
		_, err := tasks.NewEngine(tasks.NewMemoryStore(), &tasks.Config{EncryptionKeys: c.keys})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got error %v, want %q", c.name, err, c.want)
		}
	}
}
