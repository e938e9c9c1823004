package perturb

import (
	"math"
	"testing"
)

func TestSSIMBounds(t *testing.T) {
	h, w := 16, 20
	a := make([]float32, h*w)
	for i := range a {
		a[i] = float32(i%7) / 7
	}
	if s := SSIM(a, a, h, w); math.Abs(s-1) > 1e-9 {
		t.Errorf("SSIM of an image with itself = %v", s)
	}
	b := append([]float32(nil), a...)
	for i := range b {
		b[i] = 1 - b[i]
	}
	if s := SSIM(a, b, h, w); s > 0 {
		t.Errorf("SSIM with the negative = %v, want < 0", s)
	}
}

func TestFiltersKeepSizeAndRange(t *testing.T) {
	h, w := 12, 30
	img := make([]float32, h*w)
	for i := range img {
		img[i] = float32((i*37)%256) / 255
	}
	for _, f := range Filters {
		out := f.Apply(img, h, w)
		if len(out) != len(img) {
			t.Fatalf("%s: %d pixels", f.Name, len(out))
		}
		for _, v := range out {
			if v < -1e-6 || v > 1+1e-6 || math.IsNaN(float64(v)) {
				t.Fatalf("%s: value %v", f.Name, v)
			}
		}
		if g := f.Backward(img, h, w); len(g) != len(img) {
			t.Fatalf("%s backward: %d values", f.Name, len(g))
		}
	}
	// A median filter removes salt noise; a binarised image is black and white.
	flat := make([]float32, h*w)
	for i := range flat {
		flat[i] = 0.5
	}
	flat[5*w+5] = 1
	if Median3(flat, h, w)[5*w+5] != 0.5 {
		t.Error("median kept an isolated pixel")
	}
	for _, v := range Binarize(img, h, w) {
		if v != 0 && v != 1 {
			t.Fatalf("binarize gave %v", v)
		}
	}
}
