package clearance

import (
	"bytes"
	"crypto/rand"
	"strings"
	"testing"
	"time"
)

var (
	secretA = bytes.Repeat([]byte("a"), 32)
	secretB = bytes.Repeat([]byte("b"), 32)
)

func TestClearanceRoundTrip(t *testing.T) {
	k, err := NewKeys(secretA)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	c := k.IssueClearance("dev1", "UA/1", now.Add(time.Hour))
	if err := k.VerifyClearance(c, "dev1", "UA/1", now); err != nil {
		t.Fatalf("valid cookie: %v", err)
	}
	for name, tc := range map[string]struct {
		cookie, dev, ua string
		at              time.Time
		want            error
	}{
		"other device":  {c, "dev2", "UA/1", now, ErrBadMAC},
		"other ua":      {c, "dev1", "UA/2", now, ErrBadMAC},
		"split binding": {c, "dev1U", "A/1", now, ErrBadMAC},
		"expired":       {c, "dev1", "UA/1", now.Add(time.Hour), ErrExpired},
		"empty":         {"", "dev1", "UA/1", now, ErrMalformed},
		"garbage":       {"!!!!", "dev1", "UA/1", now, ErrMalformed},
		"huge":          {strings.Repeat("A", 1<<20), "dev1", "UA/1", now, ErrMalformed},
		"flipped":       {flip(c), "dev1", "UA/1", now, ErrBadMAC},
	} {
		if err := k.VerifyClearance(tc.cookie, tc.dev, tc.ua, tc.at); err != tc.want {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
	// A device cookie is not a clearance cookie.
	_, dc, _ := k.NewDevice(rand.Reader)
	if err := k.VerifyClearance(dc, "dev1", "UA/1", now); err == nil {
		t.Error("device cookie accepted as clearance")
	}
}

// flip changes one character in the MAC part without breaking base64.
func flip(s string) string {
	b := []byte(s)
	i := len(b) - 3
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

func TestKeyRotation(t *testing.T) {
	old, _ := NewKeys(secretA)
	rotated, _ := NewKeys(secretB, secretA)
	dropped, _ := NewKeys(secretB)
	now := time.Now()
	c := old.IssueClearance("d", "u", now.Add(time.Minute))
	if err := rotated.VerifyClearance(c, "d", "u", now); err != nil {
		t.Fatalf("old key after rotation: %v", err)
	}
	if err := dropped.VerifyClearance(c, "d", "u", now); err != ErrUnknownKey {
		t.Fatalf("dropped key: %v", err)
	}
	id, dc, err := old.NewDevice(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := rotated.VerifyDevice(dc); err != nil || got != id {
		t.Fatalf("device after rotation: %q %v", got, err)
	}
	if _, err := dropped.VerifyDevice(dc); err == nil {
		t.Fatal("device cookie with dropped key accepted")
	}
	if _, err := rotated.VerifyDevice(flip(dc)); err != ErrBadMAC {
		t.Fatalf("forged device: %v", err)
	}
}

func TestShortSecretRejected(t *testing.T) {
	if _, err := NewKeys([]byte("short")); err == nil {
		t.Fatal("short secret accepted")
	}
	if _, err := NewKeys(); err == nil {
		t.Fatal("no secret accepted")
	}
}

func FuzzVerify(f *testing.F) {
	k, _ := NewKeys(secretA)
	f.Add(k.IssueClearance("d", "u", time.Now().Add(time.Hour)))
	_, dc, _ := k.NewDevice(rand.Reader)
	f.Add(dc)
	f.Fuzz(func(t *testing.T, s string) {
		_ = k.VerifyClearance(s, "d", "u", time.Now())
		_, _ = k.VerifyDevice(s)
	})
}

func BenchmarkVerifyClearance(b *testing.B) {
	k, _ := NewKeys(secretA)
	ua := "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
	c := k.IssueClearance("0123456789abcdef0123456789abcdef", ua, time.Now().Add(time.Hour))
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if err := k.VerifyClearance(c, "0123456789abcdef0123456789abcdef", ua, now); err != nil {
			b.Fatal(err)
		}
	}
}
