package captcha

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

func validStyle(t testing.TB) Style {
	s := DefaultStyle()
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestDeterministic(t *testing.T) {
	s := validStyle(t)
	for seed := uint64(0); seed < 20; seed++ {
		a, err := s.Generate(seed)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := s.Generate(seed)
		pa, _ := EncodePNG(a.Image)
		pb, _ := EncodePNG(b.Image)
		if a.Text != b.Text || !bytes.Equal(pa, pb) {
			t.Fatalf("seed %d: not deterministic", seed)
		}
	}
	a, _ := s.Generate(1)
	b, _ := s.Generate(2)
	if bytes.Equal(a.Image.Pix, b.Image.Pix) {
		t.Fatal("seeds 1 and 2 gave the same image")
	}
}

func TestCharsetAndLength(t *testing.T) {
	s := validStyle(t)
	lengths := map[int]int{}
	for seed := uint64(0); seed < 2000; seed++ {
		txt := s.Text(seed)
		lengths[len(txt)]++
		for _, r := range txt {
			if !strings.ContainsRune(DefaultCharset, r) {
				t.Fatalf("seed %d: %q outside the charset", seed, r)
			}
		}
	}
	for n := 4; n <= 6; n++ {
		if lengths[n] < 500 {
			t.Errorf("length %d drawn %d times in 2000", n, lengths[n])
		}
	}
	if len(lengths) != 3 {
		t.Errorf("lengths %v outside 4–6", lengths)
	}
	for _, c := range "0o1li" {
		if strings.ContainsRune(DefaultCharset, c) {
			t.Errorf("confusable %q in the default charset", c)
		}
	}
}

func TestImageHasInk(t *testing.T) {
	s := validStyle(t)
	c, err := s.Generate(42)
	if err != nil {
		t.Fatal(err)
	}
	if b := c.Image.Bounds(); b.Dx() != 100 || b.Dy() != 30 {
		t.Fatalf("size %v", b)
	}
	dark := 0
	for _, p := range c.Image.Pix {
		if p < 100 {
			dark++
		}
	}
	// Text covers a good part of the image but not all of it.
	if dark < 150 || dark > 1500 {
		t.Fatalf("%d dark pixels of 3000", dark)
	}
}

func TestValidateNamesTheProblem(t *testing.T) {
	for want, s := range map[string]Style{
		"length":  {MinLength: 7, MaxLength: 5},
		"charset": {Charset: "ab\x01"},
		"font":    {Fonts: []string{"comic-sans"}},
		"size":    {Width: 5000},
	} {
		if err := s.Validate(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v", want, err)
		}
	}
}

// TestWriteGallery writes a contact sheet when ADVC_GALLERY names a file.
func TestWriteGallery(t *testing.T) {
	out := os.Getenv("ADVC_GALLERY")
	if out == "" {
		return
	}
	s := validStyle(t)
	var caps []*Captcha
	for seed := uint64(0); seed < 24; seed++ {
		c, _ := s.Generate(seed)
		caps = append(caps, c)
	}
	var buf bytes.Buffer
	b, _ := EncodePNG(Gallery(caps, 4, 3))
	buf.Write(b)
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}
