package captchapool_test

import (
	"bytes"
	"testing"

	"github.com/advcaptcha/advcaptcha/captchapool"
)

// FuzzUnmarshal: a pool entry read back from the store is either rejected
// or exactly what was checksummed and signed — never a panic, never an image that does
// not match its checksum.
func FuzzUnmarshal(f *testing.F) {
	good, _ := (&captchapool.Entry{Text: "ab3d", Method: "mifgsm ε=8", PNG: []byte("\x89PNG…")}).Marshal(testKeys)
	f.Add(good)
	f.Add([]byte(`{"text":"x","png":"AAAA","sha256":"00"}`))
	f.Add([]byte(`null`))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := captchapool.Unmarshal(b, testKeys)
		if err != nil {
			return
		}
		again, err := e.Marshal(testKeys)
		if err != nil {
			t.Fatal(err)
		}
		e2, err := captchapool.Unmarshal(again, testKeys)
		if err != nil || e2.Text != e.Text || !bytes.Equal(e2.PNG, e.PNG) || e2.SHA256 != e.SHA256 {
			t.Fatalf("accepted entry does not round-trip: %+v vs %+v (%v)", e, e2, err)
		}
	})
}
