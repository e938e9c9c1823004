// Package clearance issues and checks the two cookies advcaptcha gives a
// browser: a device cookie (a random, signed device id) and a clearance
// cookie (proof of a passed challenge, bound to that device and to the
// User-Agent, expiring). Both are HMAC-SHA256 signed; several keys can be
// configured so a key can rotate: the first signs, all verify.
//
// Checking a cookie needs no store round trip, which keeps the hot path of
// cleared clients cheap.
package clearance

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"
	"time"
)

// MinSecretLen is the shortest secret accepted, in bytes.
const MinSecretLen = 32

const (
	kindClearance = 'c'
	kindDevice    = 'd'
	keyIDLen      = 4
	macLen        = 16 // truncated HMAC-SHA256: 128 bits
	deviceIDLen   = 16
	// clearance: kind | key id | expiry (unix seconds) | mac
	clearanceLen = 1 + keyIDLen + 8 + macLen
	// device: kind | key id | device id | mac
	deviceLen = 1 + keyIDLen + deviceIDLen + macLen
)

// Errors returned by the Verify methods. They are deliberately coarse.
var (
	ErrMalformed  = errors.New("malformed cookie")
	ErrUnknownKey = errors.New("cookie signed with an unknown key")
	ErrBadMAC     = errors.New("cookie signature does not match")
	ErrExpired    = errors.New("cookie expired")
)

// Keys signs and verifies cookies.
type Keys struct {
	keys []key
}

type key struct {
	id   [keyIDLen]byte
	pool *sync.Pool // of *macState, one per goroutine at a time
}

// macState is an HMAC and a scratch buffer, pooled so that signing and
// verifying allocate nothing.
type macState struct {
	h   hash.Hash
	buf []byte
}

// NewKeys returns Keys for the given secrets; the first one signs.
func NewKeys(secrets ...[]byte) (*Keys, error) {
	if len(secrets) == 0 {
		return nil, errors.New("no secret")
	}
	k := &Keys{}
	for i, s := range secrets {
		if len(s) < MinSecretLen {
			return nil, fmt.Errorf("secret %d is %d bytes; at least %d are needed", i+1, len(s), MinSecretLen)
		}
		secret := append([]byte(nil), s...)
		sum := sha256.Sum256(append([]byte("advcaptcha key id\x00"), secret...))
		var kk key
		copy(kk.id[:], sum[:keyIDLen])
		kk.pool = &sync.Pool{New: func() any { return &macState{h: hmac.New(sha256.New, secret), buf: make([]byte, 0, 512)} }}
		k.keys = append(k.keys, kk)
	}
	return k, nil
}

func (k *Keys) find(id []byte) *key {
	for i := range k.keys {
		if string(k.keys[i].id[:]) == string(id) {
			return &k.keys[i]
		}
	}
	return nil
}

// mac computes the truncated MAC of the token header and the bound values.
func (kk *key) mac(dst []byte, header []byte, bound ...string) []byte {
	st := kk.pool.Get().(*macState)
	buf := append(st.buf[:0], header...)
	for _, b := range bound {
		// length-prefixed, so ("ab","c") ≠ ("a","bc")
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(b)))
		buf = append(buf, b...)
	}
	st.h.Reset()
	st.h.Write(buf)
	var sum [sha256.Size]byte
	out := st.h.Sum(sum[:0])
	if cap(buf) <= 4096 { // keep the scratch buffer unless a huge UA grew it
		st.buf = buf
	}
	kk.pool.Put(st)
	return append(dst, out[:macLen]...)
}

var b64 = base64.RawURLEncoding

// IssueClearance returns a clearance cookie value for device and userAgent,
// valid until expires.
func (k *Keys) IssueClearance(device, userAgent string, expires time.Time) string {
	kk := &k.keys[0]
	buf := make([]byte, 0, clearanceLen)
	buf = append(buf, kindClearance)
	buf = append(buf, kk.id[:]...)
	buf = binary.BigEndian.AppendUint64(buf, uint64(expires.Unix()))
	buf = kk.mac(buf, buf, device, userAgent)
	return b64.EncodeToString(buf)
}

// VerifyClearance checks a clearance cookie against the request's device
// and User-Agent at time now.
func (k *Keys) VerifyClearance(cookie, device, userAgent string, now time.Time) error {
	var raw [clearanceLen]byte
	var src [64]byte // the encoded cookie, copied to avoid an allocation
	if b64.DecodedLen(len(cookie)) != clearanceLen || len(cookie) > len(src) {
		return ErrMalformed
	}
	if n, err := b64.Decode(raw[:], src[:copy(src[:], cookie)]); err != nil || n != clearanceLen || raw[0] != kindClearance {
		return ErrMalformed
	}
	kk := k.find(raw[1 : 1+keyIDLen])
	if kk == nil {
		return ErrUnknownKey
	}
	body := raw[:clearanceLen-macLen]
	var want [macLen]byte
	if !hmac.Equal(kk.mac(want[:0], body, device, userAgent), raw[clearanceLen-macLen:]) {
		return ErrBadMAC
	}
	if exp := int64(binary.BigEndian.Uint64(raw[1+keyIDLen:])); now.Unix() >= exp {
		return ErrExpired
	}
	return nil
}

// NewDevice returns a fresh random device id and its signed cookie value.
func (k *Keys) NewDevice(random io.Reader) (id, cookie string, err error) {
	var raw [deviceIDLen]byte
	if _, err := io.ReadFull(random, raw[:]); err != nil {
		return "", "", fmt.Errorf("device id: %w", err)
	}
	kk := &k.keys[0]
	buf := make([]byte, 0, deviceLen)
	buf = append(buf, kindDevice)
	buf = append(buf, kk.id[:]...)
	buf = append(buf, raw[:]...)
	buf = kk.mac(buf, buf)
	return hex.EncodeToString(raw[:]), b64.EncodeToString(buf), nil
}

// VerifyDevice returns the device id in a signed device cookie. A cookie
// signed with an older key is accepted; callers may re-sign it.
func (k *Keys) VerifyDevice(cookie string) (string, error) {
	var raw [deviceLen]byte
	var src [64]byte
	if b64.DecodedLen(len(cookie)) != deviceLen || len(cookie) > len(src) {
		return "", ErrMalformed
	}
	if n, err := b64.Decode(raw[:], src[:copy(src[:], cookie)]); err != nil || n != deviceLen || raw[0] != kindDevice {
		return "", ErrMalformed
	}
	kk := k.find(raw[1 : 1+keyIDLen])
	if kk == nil {
		return "", ErrUnknownKey
	}
	var want [macLen]byte
	if !hmac.Equal(kk.mac(want[:0], raw[:deviceLen-macLen]), raw[deviceLen-macLen:]) {
		return "", ErrBadMAC
	}
	return hex.EncodeToString(raw[1+keyIDLen : 1+keyIDLen+deviceIDLen]), nil
}
