// Package webhook signs and verifies the webhook deliveries of
// github.com/taskwheel/tasks, so that a receiver can check them by importing
// this small package, with no dependency beyond the standard library, rather
// than the engine.
//
// Signatures follow Standard Webhooks v1 (https://www.standardwebhooks.com):
// the signed content is "{webhook-id}.{webhook-timestamp}.{body}", the
// signature is "v1," + base64(HMAC-SHA256(key, content)) and the key is the
// base64-decoded part of the secret after "whsec_". HostedHooks-style
// receivers get a second header, HostedHooks-Signature, keyed with the whole
// secret text.
package webhook

import (
	"crypto/hmac"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Header names of a webhook delivery.
const (
	idHeader          = "webhook-id"
	timestampHeader   = "webhook-timestamp"
	signatureHeader   = "webhook-signature"
	hostedHooksHeader = "HostedHooks-Signature"
)

const (
	secretPrefix = "whsec_"
	// Bounds on the decoded key of a secret, as Standard Webhooks
	// recommends (24 to 64 bytes); NewSecret makes 32.
	minKeyLength = 24
	maxKeyLength = 64
	newKeyLength = 32
	// tolerance is how far a webhook-timestamp may be from the receiver's
	// clock, either way.
	tolerance = 5 * time.Minute
)

// Errors of Verify and Sign. Compare with [errors.Is].
var (
	// ErrSignature means a delivery failed verification: a header is
	// missing or malformed, its timestamp is too far from now, or no
	// signature matches the body. Verify's error says which.
	ErrSignature = errors.New("webhook: invalid signature")
	// ErrInvalidSecret means a secret is malformed: it is the receiver's or
	// the sender's misconfiguration, not a bad delivery. The error wrapping
	// it says what is wrong and never contains the secret.
	ErrInvalidSecret = errors.New("webhook: invalid secret")
)

// NewSecret returns a new random signing secret: "whsec_" followed by the
// standard base64 encoding of 32 bytes from crypto/rand.
func NewSecret() string {
	key := make([]byte, newKeyLength)
	rand.Read(key) // never returns an error; crashes the program if it cannot read
	return secretPrefix + base64.StdEncoding.EncodeToString(key)
}

// ValidateSecret returns an error wrapping [ErrInvalidSecret] if secret is
// unusable: it must be "whsec_" followed by standard, padded base64 that
// decodes to 24 to 64 bytes.
func ValidateSecret(secret string) error {
	_, err := secretKey(secret)
	return err
}

// invalidSecret returns an error wrapping ErrInvalidSecret that says why.
func invalidSecret(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidSecret, fmt.Sprintf(format, args...))
}

// secretKey returns the HMAC key of a Standard Webhooks signature: the
// decoded bytes after "whsec_".
func secretKey(secret string) ([]byte, error) {
	var buf [maxKeyLength]byte
	key, err := appendSecretKey(buf[:0], secret)
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), key...), nil
}

// appendSecretKey appends the HMAC key of a Standard Webhooks signature,
// the decoded bytes after "whsec_", to dst, and returns the extended
// slice: into a dst with room for maxKeyLength bytes, it allocates
// nothing.
func appendSecretKey(dst []byte, secret string) ([]byte, error) {
	enc, ok := strings.CutPrefix(secret, secretPrefix)
	if !ok {
		return nil, invalidSecret("must start with %q", secretPrefix)
	}
	// The decoder skips \r and \n; a secret holding them is a paste error.
	if strings.ContainsAny(enc, "\r\n") {
		return nil, invalidSecret("must not contain line breaks")
	}
	key, err := base64.StdEncoding.Strict().AppendDecode(dst, []byte(enc))
	if err != nil {
		return nil, invalidSecret("not valid base64 after %q", secretPrefix)
	}
	if n := len(key) - len(dst); n < minKeyLength || n > maxKeyLength {
		return nil, invalidSecret("decodes to %d bytes, want %d to %d", n, minKeyLength, maxKeyLength)
	}
	return key, nil
}

// Verify reports whether a webhook delivery is authentic. It checks the Standard Webhooks headers webhook-id,
// webhook-timestamp and webhook-signature of header against body, the raw
// request body exactly as received (read it before decoding it). It returns
// nil if any "v1" entry of webhook-signature matches; several space-separated
// entries are allowed (during secret rotation the sender signs with each
// active secret) and entries of other versions are ignored. Timestamps more
// than 5 minutes before or after now are refused, so a captured delivery
// cannot be replayed later; receivers should still deduplicate on
// webhook-id, since a task may be delivered more than once.
//
// A failed check returns an error matching [ErrSignature] that says which
// check failed. A secret that [ValidateSecret] refuses returns its error,
// matching [ErrInvalidSecret], instead.
func Verify(secret string, header http.Header, body []byte) error {
	return verifyAt(secret, header, body, time.Now())
}

// verifyAt is Verify with the receiver's clock reading now.
func verifyAt(secret string, header http.Header, body []byte, now time.Time) error {
	key, err := secretKey(secret)
	if err != nil {
		return err
	}
	id := header.Get(idHeader)
	ts := header.Get(timestampHeader)
	sigs := header.Values(signatureHeader)
	switch {
	case id == "":
		return fmt.Errorf("%w: missing %s header", ErrSignature, idHeader)
	case ts == "":
		return fmt.Errorf("%w: missing %s header", ErrSignature, timestampHeader)
	case len(sigs) == 0:
		return fmt.Errorf("%w: missing %s header", ErrSignature, signatureHeader)
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || ts[0] == '+' || ts[0] == '-' {
		return fmt.Errorf("%w: %s is not an integer number of seconds", ErrSignature, timestampHeader)
	}
	// Compare whole seconds, as the header has them. unix >= 0 and now is
	// a clock reading, so neither bound overflows.
	tol := int64(tolerance / time.Second)
	switch n := now.Unix(); {
	case unix < n-tol:
		return fmt.Errorf("%w: %s is more than %v in the past", ErrSignature, timestampHeader, tolerance)
	case unix > n+tol:
		return fmt.Errorf("%w: %s is more than %v in the future", ErrSignature, timestampHeader, tolerance)
	}

	m := getMAC()
	defer putMAC(m)
	want := base64.StdEncoding.AppendEncode(nil, m.standard(key, id, ts, body))
	sawV1 := false
	for _, v := range sigs {
		for _, entry := range strings.Fields(v) {
			version, sig, _ := strings.Cut(entry, ",")
			if version != "v1" {
				continue
			}
			sawV1 = true
			// Comparing the encoded text keeps one accepted spelling per
			// signature; hmac.Equal takes the same time wherever they differ.
			if hmac.Equal([]byte(sig), want) {
				return nil
			}
		}
	}
	if !sawV1 {
		return fmt.Errorf("%w: no v1 entry in %s", ErrSignature, signatureHeader)
	}
	return fmt.Errorf("%w: no signature matched the body", ErrSignature)
}

// Sign returns the headers of a delivery of body with webhook-id id, sent at
// ts: webhook-id, webhook-timestamp (ts in Unix seconds), webhook-signature
// and HostedHooks-Signature. It signs body byte for byte, so the sender
// must send exactly those bytes.
//
// secrets lists the endpoint's active secrets, newest first; during a
// rotation there are two, and each contributes one entry to each signature
// header. A malformed secret returns an error matching [ErrInvalidSecret].
func Sign(secrets []string, id string, ts time.Time, body []byte) (http.Header, error) {
	standard, hostedHooks, err := sign(secrets, id, ts, body)
	if err != nil {
		return nil, err
	}
	// The canonical forms of the names, as Header.Set would write them,
	// and one array for the four values: a sender adds a few headers of
	// its own, which the size hint leaves room for.
	v := [...]string{id, timestamp(ts), standard, hostedHooks}
	vs := v[:]
	h := make(http.Header, 8)
	h[canonicalID] = vs[0:1:1]
	h[canonicalTimestamp] = vs[1:2:2]
	h[canonicalSignature] = vs[2:3:3]
	h[canonicalHostedHooks] = vs[3:4:4]
	return h, nil
}

// The names of the headers of a delivery, in their canonical form.
var (
	canonicalID          = http.CanonicalHeaderKey(idHeader)
	canonicalTimestamp   = http.CanonicalHeaderKey(timestampHeader)
	canonicalSignature   = http.CanonicalHeaderKey(signatureHeader)
	canonicalHostedHooks = http.CanonicalHeaderKey(hostedHooksHeader)
)

// sign returns the values of the webhook-signature and
// HostedHooks-Signature headers of a delivery with webhook-id msgID and
// webhook-timestamp ts.Unix(), signing body byte for byte: the caller
// marshals the body once and sends that same buffer. The caller sets
// webhook-timestamp to the same ts, formatted by timestamp.
//
// secrets lists the endpoint's active secrets, newest first; during a
// rotation there are two. Each secret contributes one entry to each header,
// in that order:
//
//	webhook-signature:     v1,<base64 new> v1,<base64 old>
//	HostedHooks-Signature: t=<unix>,s=<hex new>,s=<hex old>
//
// The Standard Webhooks spec defines the space-separated list. HostedHooks
// sends a single s=, so repeating it is our extension (Stripe repeats v1= the
// same way while rolling secrets): receivers should accept any s= entry. A
// receiver that parses the header into a map keeps the last s=, the oldest
// secret's, which is the one it most likely still holds during the overlap.
//
// A malformed secret returns its ErrInvalidSecret error, without the
// secret's text. Besides the two strings it returns, it allocates nothing
// (see mac).
func sign(secrets []string, msgID string, ts time.Time, body []byte) (standard, hostedHooks string, err error) {
	if len(secrets) == 0 {
		return "", "", fmt.Errorf("%w: no secret", ErrInvalidSecret)
	}
	m := getMAC()
	defer putMAC(m)
	var tbuf [20]byte // a decimal int64
	t := strconv.AppendInt(tbuf[:0], ts.Unix(), 10)
	std, hh := m.out[:0], m.out2[:0]
	hh = append(append(hh, "t="...), t...)
	for i, secret := range secrets {
		key, err := appendSecretKey(m.key[:0], secret)
		if err != nil {
			return "", "", err
		}
		if i > 0 {
			std = append(std, ' ')
		}
		std = base64.StdEncoding.AppendEncode(append(std, "v1,"...), m.standard(key, msgID, string(t), body))
		hh = hex.AppendEncode(append(hh, ",s="...), m.hostedHooks(secret, string(t), body))
	}
	m.out, m.out2 = std, hh
	return string(std), string(hh), nil
}

// timestamp formats ts as the value of the webhook-timestamp header
// and the t= of HostedHooks-Signature: Unix seconds in decimal.
func timestamp(ts time.Time) string {
	return strconv.FormatInt(ts.Unix(), 10)
}
