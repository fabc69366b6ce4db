package tasks

// Encryption at rest of endpoints' signing secrets (Config.EncryptionKeys).
//
// The engine encrypts an endpoint's secrets just before it hands the
// endpoint to the store and decrypts them just after it reads it back, so
// every Store holds them encrypted and no Store knows about it. An
// encrypted secret is stored in the secret's own column as
//
//	enc:v1:<key ID>:<base64 of the 12-byte nonce and the AES-256-GCM ciphertext>
//
// where the key ID is the first 4 bytes of the key's SHA-256, in hex: it
// names the key without revealing it, so that a reader picks the key at
// once, and says which one is missing. The endpoint's ID is the
// ciphertext's additional data: a secret copied into another endpoint's row
// does not decrypt. A secret without the enc: prefix is plaintext (it
// starts with "whsec_"), as stored before keys were configured.

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
)

const (
	sealedPrefix   = "enc:"
	sealedPrefixV1 = "enc:v1:"
)

// keyring holds Config.EncryptionKeys, ready for use: the first seals, all
// open. Its zero value has no keys and leaves secrets in plaintext. It is
// safe for concurrent use.
type keyring struct {
	keys []sealingKey // the first seals
}

type sealingKey struct {
	id   string // see keyID
	aead cipher.AEAD
}

// keyID names key in a sealed secret.
func keyID(key []byte) string {
	sum := sha256.Sum256(key)
	return hex.EncodeToString(sum[:4])
}

// newKeyring returns the keyring of keys, Config.EncryptionKeys.
func newKeyring(keys [][]byte) (keyring, error) {
	var kr keyring
	for i, key := range keys {
		if len(key) != EncryptionKeySize {
			return keyring{}, fmt.Errorf("tasks: Config.EncryptionKeys[%d] is %d bytes, want %d", i, len(key), EncryptionKeySize)
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return keyring{}, fmt.Errorf("tasks: Config.EncryptionKeys[%d]: %w", i, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return keyring{}, fmt.Errorf("tasks: Config.EncryptionKeys[%d]: %w", i, err)
		}
		id := keyID(key)
		for j, k := range kr.keys {
			if k.id == id {
				return keyring{}, fmt.Errorf("tasks: Config.EncryptionKeys[%d] is Config.EncryptionKeys[%d] again", i, j)
			}
		}
		kr.keys = append(kr.keys, sealingKey{id: id, aead: aead})
	}
	return kr, nil
}

// seal returns secret encrypted for endpoint epID with the first key, or
// secret itself with no keys or no secret.
func (kr keyring) seal(secret, epID string) string {
	if len(kr.keys) == 0 || secret == "" {
		return secret
	}
	k := kr.keys[0]
	nonce := make([]byte, k.aead.NonceSize(), k.aead.NonceSize()+len(secret)+k.aead.Overhead())
	rand.Read(nonce) // never fails
	sealed := k.aead.Seal(nonce, nonce, []byte(secret), []byte(epID))
	return sealedPrefixV1 + k.id + ":" + base64.RawStdEncoding.EncodeToString(sealed)
}

// open returns stored, a secret of endpoint epID as stored, decrypted. A
// secret that does not decrypt gives an error saying why, never a wrong
// secret.
func (kr keyring) open(stored, epID string) (string, error) {
	if !strings.HasPrefix(stored, sealedPrefix) {
		return stored, nil // plaintext
	}
	rest, ok := strings.CutPrefix(stored, sealedPrefixV1)
	id, enc, ok2 := strings.Cut(rest, ":")
	if !ok || !ok2 {
		return "", errors.New("encrypted in an unknown format (this version reads enc:v1:)")
	}
	i := slices.IndexFunc(kr.keys, func(k sealingKey) bool { return k.id == id })
	switch {
	case len(kr.keys) == 0:
		return "", fmt.Errorf("encrypted with key %s, and Config.EncryptionKeys is empty", id)
	case i < 0:
		return "", fmt.Errorf("encrypted with key %s, which is not among Config.EncryptionKeys (%s)", id, kr.ids())
	}
	k := kr.keys[i]
	sealed, err := base64.RawStdEncoding.DecodeString(enc)
	if err != nil || len(sealed) < k.aead.NonceSize() {
		return "", fmt.Errorf("encrypted with key %s, but not valid ciphertext", id)
	}
	nonce, ciphertext := sealed[:k.aead.NonceSize()], sealed[k.aead.NonceSize():]
	plain, err := k.aead.Open(nil, nonce, ciphertext, []byte(epID))
	if err != nil {
		return "", fmt.Errorf("encrypted with key %s, but does not decrypt with it: altered, or another endpoint's", id)
	}
	return string(plain), nil
}

// ids lists the IDs of kr's keys, for errors.
func (kr keyring) ids() string {
	ids := make([]string, len(kr.keys))
	for i, k := range kr.keys {
		ids[i] = k.id
	}
	return strings.Join(ids, ", ")
}

// current reports whether stored, a secret as stored, is as the first key
// would seal it: sealed with that key, or with no keys, plaintext.
func (kr keyring) current(stored string) bool {
	if len(kr.keys) == 0 || stored == "" {
		return !strings.HasPrefix(stored, sealedPrefix)
	}
	return strings.HasPrefix(stored, sealedPrefixV1+kr.keys[0].id+":")
}

// sealEndpoint returns ep as the store is to hold it: its secrets encrypted
// with the first of Config.EncryptionKeys. Without keys, it returns ep.
func (e *Engine) sealEndpoint(ep *Endpoint) *Endpoint {
	if len(e.keys.keys) == 0 {
		return ep
	}
	c := ep.clone()
	c.Secret = e.keys.seal(ep.Secret, ep.ID)
	c.PreviousSecret = e.keys.seal(ep.PreviousSecret, ep.ID)
	return c
}

// openEndpoint returns ep, as the store held it, with its secrets
// decrypted; ep itself if they are plaintext. A secret that does not
// decrypt gives an error saying why, never a wrong secret; the caller adds
// the "tasks: " prefix with its own context.
func (e *Engine) openEndpoint(ep *Endpoint) (*Endpoint, error) {
	if !strings.HasPrefix(ep.Secret, sealedPrefix) && !strings.HasPrefix(ep.PreviousSecret, sealedPrefix) {
		return ep, nil
	}
	secret, err := e.keys.open(ep.Secret, ep.ID)
	if err == nil {
		var previous string
		if previous, err = e.keys.open(ep.PreviousSecret, ep.ID); err == nil {
			c := ep.clone()
			c.Secret, c.PreviousSecret = secret, previous
			return c, nil
		}
	}
	return nil, fmt.Errorf("decrypt secret of endpoint %s: %w", ep.ID, err)
}

// openEndpoints is openEndpoint of each of eps.
func (e *Engine) openEndpoints(eps []*Endpoint) ([]*Endpoint, error) {
	opened := make([]*Endpoint, len(eps))
	for i, ep := range eps {
		var err error
		if opened[i], err = e.openEndpoint(ep); err != nil {
			return nil, err
		}
	}
	return opened, nil
}

// ReencryptEndpoints stores again, encrypted with the first of
// Config.EncryptionKeys, the signing secrets of every endpoint, of every
// app, that the store holds otherwise: in plaintext, or encrypted with
// another key. It returns how many endpoints it rewrote (their UpdatedAt
// changes; nothing else does). An endpoint it cannot rewrite, such as one
// whose secret no key decrypts, does not stop it: it goes on with the
// others and returns their errors joined. Once it has run without error
// after a new key was put first, the older keys can be dropped.
func (e *Engine) ReencryptEndpoints(ctx context.Context) (int, error) {
	eps, err := e.store.ListEndpoints(ctx, "")
	if err != nil {
		return 0, fmt.Errorf("tasks: reencrypt endpoints: %w", err)
	}
	n := 0
	var errs []error
	for _, ep := range eps {
		if e.keys.current(ep.Secret) && e.keys.current(ep.PreviousSecret) {
			continue
		}
		// changeEndpoint decrypts it and encrypts it with the first key.
		_, err := e.changeEndpoint(ctx, ep.ID, func(*Endpoint) {})
		var invalid *ValidationError
		switch {
		case errors.Is(err, ErrNotFound): // deleted meanwhile
		case errors.As(err, &invalid): // its URL, say, is refused by today's WebhookConfig
			errs = append(errs, fmt.Errorf("tasks: reencrypt endpoint %s: invalid %s: %s", ep.ID, invalid.Field, invalid.Message))
		case err != nil:
			errs = append(errs, err)
		default:
			n++
		}
	}
	return n, errors.Join(errs...)
}
