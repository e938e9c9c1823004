// Package secretkey derives purpose-specific MAC keys from the gateway's
// secrets (the Caddyfile's `secret`) and signs and verifies records with
// them: pool entries and published model versions, which anyone who can
// write to the shared store could otherwise forge.
//
// Each purpose has its own key, HMAC-SHA256(secret, "advcaptcha "+purpose),
// so a MAC made for one kind of record never verifies as another, and none
// is a cookie MAC (clearance signs those with the secret itself). As with
// cookies, the first secret signs and every listed secret verifies, so a
// secret is rotated by putting the new one first and dropping the old one
// later.
package secretkey

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
)

// MinSecretLen is the shortest secret accepted, in bytes, as for cookies.
const MinSecretLen = 32

// Errors of Verify; errors.Is(err, ErrUnauthenticated) holds for each.
var (
	ErrUnauthenticated = errors.New("not authenticated with the gateway's secret")
	errUnsigned        = fmt.Errorf("%w: no MAC", ErrUnauthenticated)
	errUnknownKey      = fmt.Errorf("%w: signed with a key that none of the configured secrets gives", ErrUnauthenticated)
	errBadMAC          = fmt.Errorf("%w: the MAC does not match", ErrUnauthenticated)
)

// Keys sign (with the first) and verify (with any) the records of one
// purpose.
type Keys struct {
	purpose string
	keys    []key
}

type key struct {
	id  string // hex, 16 digits
	key []byte
}

// Derive returns the keys of purpose (e.g. "pool v1") for secrets, the
// first of which signs.
func Derive(purpose string, secrets ...[]byte) (*Keys, error) {
	if len(secrets) == 0 {
		return nil, errors.New("no secret")
	}
	k := &Keys{purpose: purpose}
	for i, s := range secrets {
		if len(s) < MinSecretLen {
			return nil, fmt.Errorf("secret %d is %d bytes; at least %d are needed", i+1, len(s), MinSecretLen)
		}
		m := hmac.New(sha256.New, s)
		m.Write([]byte("advcaptcha " + purpose))
		derived := m.Sum(nil)
		id := sha256.Sum256(append([]byte("advcaptcha key id\x00"+purpose+"\x00"), derived...))
		k.keys = append(k.keys, key{id: hex.EncodeToString(id[:8]), key: derived})
	}
	return k, nil
}

// ID names the signing key (not secret): records signed with it carry it.
func (k *Keys) ID() string { return k.keys[0].id }

// Sign returns the signing key's id and the MAC (hex) of parts.
func (k *Keys) Sign(parts ...[]byte) (id, mac string) {
	return k.keys[0].id, hex.EncodeToString(k.keys[0].mac(parts))
}

// Verify checks that mac is the MAC of parts under the key named id, in
// constant time; the error says which of missing, unknown key or wrong it
// was (all ErrUnauthenticated).
func (k *Keys) Verify(id, mac string, parts ...[]byte) error {
	if id == "" || mac == "" {
		return errUnsigned
	}
	got, err := hex.DecodeString(mac)
	if err != nil {
		return errBadMAC
	}
	for i := range k.keys {
		if k.keys[i].id == id {
			if !hmac.Equal(got, k.keys[i].mac(parts)) {
				return errBadMAC
			}
			return nil
		}
	}
	return errUnknownKey
}

// mac is HMAC-SHA256 over the parts, each length-prefixed so that
// ("ab","c") and ("a","bc") differ.
func (kk *key) mac(parts [][]byte) []byte {
	m := hmac.New(sha256.New, kk.key)
	var n [8]byte
	for _, p := range parts {
		binary.BigEndian.PutUint64(n[:], uint64(len(p)))
		m.Write(n[:])
		m.Write(p)
	}
	return m.Sum(nil)
}

// Reason is a short label for why err refused a record, for metrics:
// unsigned, unknown_key or bad_mac ("" for another error).
func Reason(err error) string {
	switch {
	case errors.Is(err, errUnsigned):
		return "unsigned"
	case errors.Is(err, errUnknownKey):
		return "unknown_key"
	case errors.Is(err, errBadMAC):
		return "bad_mac"
	}
	return ""
}
