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
	// A closing removes a dark line one pixel wide and keeps one three
	// wide; an opening does the same to light ones.
	lines := func(v, bg float32) []float32 {
		im := make([]float32, h*w)
		for i := range im {
			im[i] = bg
			if x := i % w; x == 5 || (x >= 15 && x <= 17) {
				im[i] = v
			}
		}
		return im
	}
	for _, c := range []struct {
		name  string
		f     func([]float32, int, int) []float32
		v, bg float32
	}{{"close", Close3, 0, 1}, {"open", Open3, 1, 0}} {
		out := c.f(lines(c.v, c.bg), h, w)
		if out[6*w+5] != c.bg || out[6*w+16] != c.v || out[6*w+15] != c.v {
			t.Errorf("%s: the thin line is %v, the wide one %v %v", c.name, out[6*w+5], out[6*w+15], out[6*w+16])
		}
	}
	for _, v := range Binarize(img, h, w) {
		if v != 0 && v != 1 {
			t.Fatalf("binarize gave %v", v)
		}
	}
}

// translateBack must be Translate's transpose, ⟨T x, g⟩ = ⟨x, Tᵀ g⟩, or the
// shifted draws' gradients point the wrong way.
func TestTranslateBackIsTranspose(t *testing.T) {
	h, w := 7, 11
	x, g := make([]float32, h*w), make([]float32, h*w)
	for i := range x {
		x[i] = float32((i*37)%17) / 17
		g[i] = float32((i*53)%13)/13 - 0.5
	}
	for _, d := range [][2]int{{0, 0}, {2, 0}, {-3, 1}, {1, -2}, {-1, -1}} {
		tx := Translate(x, h, w, d[0], d[1])
		tg := translateBack(g, h, w, d[0], d[1])
		var a, b float64
		for i := range x {
			a += float64(tx[i] * g[i])
			b += float64(x[i] * tg[i])
		}
		if math.Abs(a-b) > 1e-4 {
			t.Errorf("shift %v: ⟨Tx,g⟩ = %.6f, ⟨x,Tᵀg⟩ = %.6f", d, a, b)
		}
	}
	if got := Translate(x, h, w, 1, 0)[1]; got != x[0] {
		t.Errorf("a shift right by one puts %v at (0,1), want x(0,0) = %v", got, x[0])
	}
}

// TestStrokeSSIM: changing the background leaves the strokes' SSIM at 1
// while the global one falls; changing the strokes lowers it.
func TestStrokeSSIM(t *testing.T) {
	const h, w = 20, 40
	clean := make([]float32, h*w)
	glyphs := make([]uint8, h*w)
	for y := range h {
		for x := range w {
			clean[y*w+x] = 0.9
			if x >= 15 && x < 25 && y >= 4 && y < 16 { // a block of ink
				clean[y*w+x], glyphs[y*w+x] = 0.1, 255
			}
		}
	}
	bg := append([]float32(nil), clean...)
	strokes := append([]float32(nil), clean...)
	for i := range bg {
		noise := float32((i*7919)%13) / 60
		if glyphs[i] == 0 {
			bg[i] -= noise
		} else {
			strokes[i] += noise
		}
	}
	if s := StrokeSSIM(clean, clean, glyphs, h, w); s != 1 {
		t.Fatalf("stroke SSIM of an image with itself: %v", s)
	}
	bgStroke, bgAll := StrokeSSIM(clean, bg, glyphs, h, w), SSIM(clean, bg, h, w)
	strokeStroke := StrokeSSIM(clean, strokes, glyphs, h, w)
	if !(bgAll < 0.9 && bgStroke > bgAll && strokeStroke < bgStroke) {
		t.Fatalf("background noise: SSIM %.3f, stroke SSIM %.3f; stroke noise: stroke SSIM %.3f — want the stroke figure to see the strokes, not the background", bgAll, bgStroke, strokeStroke)
	}
	if s := StrokeSSIM(clean, bg, make([]uint8, h*w), h, w); s != 0 {
		t.Fatalf("stroke SSIM without strokes: %v, want 0", s)
	}
}

// gradedStrokes is a background that darkens from left to right (0.95 →
// 0.35) with short strokes 0.3 darker than the background around them, and
// where the strokes are.
func gradedStrokes(h, w int) ([]float32, []bool) {
	img := make([]float32, h*w)
	ink := make([]bool, h*w)
	for y := range h {
		for x := range w {
			bg := 0.95 - 0.6*float32(x)/float32(w)
			img[y*w+x] = bg
			if y >= 8 && y < 11 && x%10 < 3 {
				img[y*w+x], ink[y*w+x] = bg-0.3, true
			}
		}
	}
	return img, ink
}

// TestAdaptiveBinarizeFollowsTheBackground: on a background that darkens
// from left to right below the ink of its bright side, one global threshold
// loses the text on one side; the adaptive one keeps every ink pixel black
// and the background white.
func TestAdaptiveBinarizeFollowsTheBackground(t *testing.T) {
	const h, w = 20, 80
	img, ink := gradedStrokes(h, w)
	wrong := func(out []float32) int {
		n := 0
		for i, v := range out {
			if (v == 0) != ink[i] {
				n++
			}
		}
		return n
	}
	if n := wrong(AdaptiveBinarize(img, h, w)); n > 0 {
		t.Errorf("adaptive binarisation got %d of %d pixels wrong", n, h*w)
	}
	if n := wrong(Binarize(img, h, w)); n < h*w/10 {
		t.Errorf("Otsu got only %d pixels wrong on a graded background: the test image does not show the difference", n)
	}
}

// TestFlattenEvensOutTheLight: on the same graded background, flattening
// first lets one global threshold keep every stroke and the background —
// the breaker's answer to a shaded captcha.
func TestFlattenEvensOutTheLight(t *testing.T) {
	const h, w = 20, 80
	img, ink := gradedStrokes(h, w)
	flat := Flatten(img, h, w)
	for i, v := range flat {
		if !ink[i] && v < 0.95 { // a ramp leaves up to its slope × 4 px
			t.Fatalf("pixel %d of the background flattened to %.3f, want white", i, v)
		}
	}
	f, _ := FilterByName("flatbinarize")
	wrong := 0
	for i, v := range f.Apply(img, h, w) {
		if (v == 0) != ink[i] {
			wrong++
		}
	}
	if wrong > 0 {
		t.Errorf("flatten then Otsu got %d of %d pixels wrong", wrong, h*w)
	}
}

// TestEdgesDrawsOutlinesOnly: a flat image is white, a step of 128 levels
// between two halves is black along the step and white away from it, and a
// step of 32 levels a light grey.
func TestEdgesDrawsOutlinesOnly(t *testing.T) {
	h, w := 8, 12
	step := func(lo, hi float32) []float32 {
		im := make([]float32, h*w)
		for y := range h {
			for x := range w {
				im[y*w+x] = lo
				if x >= w/2 {
					im[y*w+x] = hi
				}
			}
		}
		return im
	}
	for i, v := range Edges(step(0.5, 0.5), h, w) {
		if v != 1 {
			t.Fatalf("flat image: pixel %d is %v, want white", i, v)
		}
	}
	e := Edges(step(0.2, 0.2+128.0/255), h, w)
	if v := e[4*w+w/2]; v > 0.01 {
		t.Errorf("on a 128-level step: %v, want black", v)
	}
	if v := e[4*w+1]; v != 1 {
		t.Errorf("away from the step: %v, want white", v)
	}
	if v := Edges(step(0.2, 0.2+32.0/255), h, w)[4*w+w/2]; v < 0.7 || v > 0.8 {
		t.Errorf("on a 32-level step: %v, want a light grey (0.75)", v)
	}
}
