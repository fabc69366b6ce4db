package webhook

import (
	"crypto/sha256"
	"hash"
	"sync"
)

// mac computes the HMAC-SHA256 signatures of deliveries (RFC 2104) with
// buffers of its own, so that signing allocates nothing: crypto/hmac
// allocates its state, two digests and its pads for every key, and every
// []byte written through its hash.Hash interface that is not already on
// the heap. A mac is reused through a pool; it is not safe for concurrent
// use. The tests check it against crypto/hmac.
type mac struct {
	h    hash.Hash // SHA-256
	pad  [sha256.BlockSize]byte
	sum  [sha256.Size]byte
	key  [maxKeyLength]byte // a decoded key, for the caller (see sign)
	msg  []byte             // what precedes the body in the signed content
	out  []byte             // scratch for a header's value, for the caller
	out2 []byte             // and another
}

var macs = sync.Pool{New: func() any { return &mac{h: sha256.New()} }}

func getMAC() *mac { return macs.Get().(*mac) }

// putMAC returns m to the pool, unless a long secret or value grew its
// buffers past what a delivery needs.
func putMAC(m *mac) {
	if cap(m.msg) <= 1024 && cap(m.out) <= 1024 && cap(m.out2) <= 1024 {
		macs.Put(m)
	}
}

// standard returns HMAC-SHA256(key, "{id}.{ts}.{body}"), the signature of
// Standard Webhooks, in m's buffer: valid until m's next use.
func (m *mac) standard(key []byte, id, ts string, body []byte) []byte {
	m.msg = append(append(append(append(m.msg[:0], id...), '.'), ts...), '.')
	return m.sum256(key, m.msg, body)
}

// hostedHooks returns HMAC-SHA256 keyed with the whole secret text
// ("whsec_..." as the endpoint shows it) over "{t}.{body}", the signature
// of HostedHooks-Signature, in m's buffer: valid until m's next use.
func (m *mac) hostedHooks(secret, t string, body []byte) []byte {
	// The key goes in m.msg, after the prefix, so that a key longer than
	// a block can be hashed from there.
	m.msg = append(append(m.msg[:0], t...), '.')
	n := len(m.msg)
	m.msg = append(m.msg, secret...)
	return m.sum256(m.msg[n:], m.msg[:n], body)
}

// sum256 returns HMAC-SHA256(key, prefix || body) in m.sum: key and prefix
// may be m's own buffers, but not m.pad or m.sum.
func (m *mac) sum256(key, prefix, body []byte) []byte {
	if len(key) > sha256.BlockSize {
		m.h.Reset()
		m.h.Write(key)
		key = m.h.Sum(m.sum[:0])
	}
	// Inner: (key ⊕ ipad) || message. key may be m.sum, read here before
	// the inner hash overwrites it.
	clear(m.pad[:])
	copy(m.pad[:], key)
	for i := range m.pad {
		m.pad[i] ^= 0x36
	}
	m.h.Reset()
	m.h.Write(m.pad[:])
	m.h.Write(prefix)
	m.h.Write(body)
	// Outer: (key ⊕ opad) || inner. Turn ipad into opad in place.
	for i := range m.pad {
		m.pad[i] ^= 0x36 ^ 0x5c
	}
	inner := m.h.Sum(m.sum[:0])
	m.h.Reset()
	m.h.Write(m.pad[:])
	m.h.Write(inner)
	return m.h.Sum(m.sum[:0])
}
