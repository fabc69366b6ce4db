package tasks

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Webhook signing follows Standard Webhooks v1 (https://www.standardwebhooks.com):
// the signed content is "{webhook-id}.{webhook-timestamp}.{body}", the
// signature is "v1," + base64(HMAC-SHA256(key, content)) and the key is the
// base64-decoded part of the secret after "whsec_". HostedHooks-style
// receivers get a second header, keyed with the whole secret text.

// Header names of a webhook delivery.
const (
	webhookIDHeader            = "webhook-id"
	webhookTimestampHeader     = "webhook-timestamp"
	webhookSignatureHeader     = "webhook-signature"
	hostedHooksSignatureHeader = "HostedHooks-Signature"
)

const (
	webhookSecretPrefix = "whsec_"
	// Bounds on the decoded key of a secret, as Standard Webhooks
	// recommends (24 to 64 bytes); NewWebhookSecret makes 32.
	minWebhookKeyLength = 24
	maxWebhookKeyLength = 64
	newWebhookKeyLength = 32
	// webhookTolerance is how far a webhook-timestamp may be from the
	// receiver's clock, either way.
	webhookTolerance = 5 * time.Minute
)

// ErrWebhookSignature means a webhook delivery failed verification: a
// header is missing or malformed, its timestamp is too far from now, or no
// signature matches the body. VerifyWebhook's error says which.
var ErrWebhookSignature = errors.New("tasks: invalid webhook signature")

// NewWebhookSecret returns a new random signing secret: "whsec_" followed by
// the standard base64 encoding of 32 bytes from crypto/rand.
func NewWebhookSecret() string {
	key := make([]byte, newWebhookKeyLength)
	rand.Read(key) // never returns an error; crashes the program if it cannot read
	return webhookSecretPrefix + base64.StdEncoding.EncodeToString(key)
}

// ValidateWebhookSecret reports, as a *ValidationError for the field
// "secret", whether secret is unusable: it must be "whsec_" followed by
// standard, padded base64 that decodes to 24 to 64 bytes. The error never
// contains the secret.
func ValidateWebhookSecret(secret string) error {
	_, err := webhookKey(secret)
	return err
}

// webhookKey returns the HMAC key of a Standard Webhooks signature: the
// decoded bytes after "whsec_".
func webhookKey(secret string) ([]byte, error) {
	enc, ok := strings.CutPrefix(secret, webhookSecretPrefix)
	if !ok {
		return nil, invalid("secret", "must start with %q", webhookSecretPrefix)
	}
	// The decoder skips \r and \n; a secret holding them is a paste error.
	if strings.ContainsAny(enc, "\r\n") {
		return nil, invalid("secret", "must not contain line breaks")
	}
	key, err := base64.StdEncoding.Strict().DecodeString(enc)
	if err != nil {
		return nil, invalid("secret", "not valid base64 after %q", webhookSecretPrefix)
	}
	if len(key) < minWebhookKeyLength || len(key) > maxWebhookKeyLength {
		return nil, invalid("secret", "decodes to %d bytes, want %d to %d", len(key), minWebhookKeyLength, maxWebhookKeyLength)
	}
	return key, nil
}

// VerifyWebhook reports whether a webhook delivery is authentic, for Go
// receivers. It checks the Standard Webhooks headers webhook-id,
// webhook-timestamp and webhook-signature of header against body, the raw
// request body exactly as received (read it before decoding it). It returns
// nil if any "v1" entry of webhook-signature matches; several space-separated
// entries are allowed (during secret rotation the sender signs with each
// active secret) and entries of other versions are ignored. Timestamps more
// than 5 minutes before or after now are refused, so a captured delivery
// cannot be replayed later; receivers should still deduplicate on
// webhook-id, since a task may be delivered more than once.
//
// A failed check returns an error matching [ErrWebhookSignature] that says
// which check failed. A secret that [ValidateWebhookSecret] refuses returns
// its *ValidationError instead: that is the receiver's misconfiguration, not
// a bad delivery.
func VerifyWebhook(secret string, header http.Header, body []byte) error {
	return verifyWebhookAt(secret, header, body, time.Now())
}

// verifyWebhookAt is VerifyWebhook with the receiver's clock reading now.
func verifyWebhookAt(secret string, header http.Header, body []byte, now time.Time) error {
	key, err := webhookKey(secret)
	if err != nil {
		return err
	}
	id := header.Get(webhookIDHeader)
	ts := header.Get(webhookTimestampHeader)
	sigs := header.Values(webhookSignatureHeader)
	switch {
	case id == "":
		return fmt.Errorf("%w: missing %s header", ErrWebhookSignature, webhookIDHeader)
	case ts == "":
		return fmt.Errorf("%w: missing %s header", ErrWebhookSignature, webhookTimestampHeader)
	case len(sigs) == 0:
		return fmt.Errorf("%w: missing %s header", ErrWebhookSignature, webhookSignatureHeader)
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || ts[0] == '+' || ts[0] == '-' {
		return fmt.Errorf("%w: %s is not an integer number of seconds", ErrWebhookSignature, webhookTimestampHeader)
	}
	// Compare whole seconds, as the header has them. unix >= 0 and now is
	// a clock reading, so neither bound overflows.
	tol := int64(webhookTolerance / time.Second)
	switch n := now.Unix(); {
	case unix < n-tol:
		return fmt.Errorf("%w: %s is more than %v in the past", ErrWebhookSignature, webhookTimestampHeader, webhookTolerance)
	case unix > n+tol:
		return fmt.Errorf("%w: %s is more than %v in the future", ErrWebhookSignature, webhookTimestampHeader, webhookTolerance)
	}

	want := []byte(base64.StdEncoding.EncodeToString(standardMAC(key, id, ts, body)))
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
		return fmt.Errorf("%w: no v1 entry in %s", ErrWebhookSignature, webhookSignatureHeader)
	}
	return fmt.Errorf("%w: no signature matched the body", ErrWebhookSignature)
}

// standardMAC returns HMAC-SHA256(key, "{id}.{ts}.{body}").
func standardMAC(key []byte, id, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// signWebhook returns the values of the webhook-signature and
// HostedHooks-Signature headers of a delivery with webhook-id msgID and
// webhook-timestamp ts.Unix(), signing body byte for byte: the caller
// marshals the body once and sends that same buffer. The caller sets
// webhook-timestamp to the same ts, formatted by webhookTimestamp.
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
// A malformed secret returns its *ValidationError, without the secret's text.
func signWebhook(secrets []string, msgID string, ts time.Time, body []byte) (standard, hostedHooks string, err error) {
	if len(secrets) == 0 {
		return "", "", errors.New("tasks: sign webhook: no secret")
	}
	t := webhookTimestamp(ts)
	var std, hh strings.Builder
	hh.WriteString("t=")
	hh.WriteString(t)
	for i, secret := range secrets {
		key, err := webhookKey(secret)
		if err != nil {
			return "", "", err
		}
		if i > 0 {
			std.WriteByte(' ')
		}
		std.WriteString("v1,")
		std.WriteString(base64.StdEncoding.EncodeToString(standardMAC(key, msgID, t, body)))
		hh.WriteString(",s=")
		hh.WriteString(hex.EncodeToString(hostedHooksMAC(secret, t, body)))
	}
	return std.String(), hh.String(), nil
}

// webhookTimestamp formats ts as the value of the webhook-timestamp header
// and the t= of HostedHooks-Signature: Unix seconds in decimal.
func webhookTimestamp(ts time.Time) string {
	return strconv.FormatInt(ts.Unix(), 10)
}

// hostedHooksMAC returns HMAC-SHA256 keyed with the whole secret text
// ("whsec_..." as the endpoint shows it) over "{t}.{body}".
func hostedHooksMAC(secret, t string, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(t))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}
