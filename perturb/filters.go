package perturb

import (
	"bytes"
	"image"
	"image/jpeg"
	"math"
	"slices"
)

// A Filter is preprocessing an attacker may apply before solving a captcha.
// Images are grayscale, row-major, h×w, values 0–1; filters return a new image.
type Filter struct {
	Name  string
	Apply func(img []float32, h, w int) []float32
	// Backward maps a gradient at the filter's output to one at its input:
	// the transposed filter for linear ones (symmetric kernels are their own
	// transpose), identity (BPDA, straight-through) for the others.
	Backward func(grad []float32, h, w int) []float32
}

func identity(g []float32, _, _ int) []float32 { return g }

// Filters are the preprocessing steps the robustness benchmark applies (each
// once and three times) and the expectation-over-transformation draws from.
var Filters = []Filter{
	{"gaussian", func(img []float32, h, w int) []float32 { return GaussianBlur(img, h, w, 1) }, func(g []float32, h, w int) []float32 { return GaussianBlur(g, h, w, 1) }},
	{"median", Median3, identity},
	{"mean", Mean3, Mean3},
	{"bilateral", func(img []float32, h, w int) []float32 { return Bilateral(img, h, w, 2, 1.5, 0.15) }, identity},
	{"binarize", Binarize, identity},
	{"adaptive", AdaptiveBinarize, identity},
	{"flatten", Flatten, identity},
	{"flatbinarize", func(img []float32, h, w int) []float32 { return Binarize(Flatten(img, h, w), h, w) }, identity},
	{"threshold100", func(img []float32, _, _ int) []float32 { return Threshold(img, 100) }, identity},
	{"close", Close3, identity},
	{"open", Open3, identity},
	{"flatbinclose", func(img []float32, h, w int) []float32 { return Close3(Binarize(Flatten(img, h, w), h, w), h, w) }, identity},
	{"resize", func(img []float32, h, w int) []float32 { return Rescale(img, h, w, 0.75) }, func(g []float32, h, w int) []float32 { return Rescale(g, h, w, 0.75) }},
	{"edges", Edges, identity},
	{"jpeg", func(img []float32, h, w int) []float32 { return JPEG(img, h, w, 75) }, identity},
}

// FilterByName returns the named filter.
func FilterByName(name string) (Filter, bool) {
	for _, f := range Filters {
		if f.Name == name {
			return f, true
		}
	}
	return Filter{}, false
}

func at(img []float32, h, w, y, x int) float32 {
	y = min(max(y, 0), h-1)
	x = min(max(x, 0), w-1)
	return img[y*w+x]
}

// GaussianBlur convolves with a Gaussian of the given σ (separable, edges
// replicated).
func GaussianBlur(img []float32, h, w int, sigma float64) []float32 {
	r := int(math.Ceil(3 * sigma))
	k := make([]float32, 2*r+1)
	var sum float32
	for i := range k {
		d := float64(i - r)
		k[i] = float32(math.Exp(-d * d / (2 * sigma * sigma)))
		sum += k[i]
	}
	for i := range k {
		k[i] /= sum
	}
	tmp := make([]float32, len(img))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			var v float32
			for i, kv := range k {
				v += kv * at(img, h, w, y, x+i-r)
			}
			tmp[y*w+x] = v
		}
	}
	out := make([]float32, len(img))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			var v float32
			for i, kv := range k {
				v += kv * at(tmp, h, w, y+i-r, x)
			}
			out[y*w+x] = v
		}
	}
	return out
}

// Mean3 is the 3×3 box filter.
func Mean3(img []float32, h, w int) []float32 {
	out := make([]float32, len(img))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			var v float32
			for dy := -1; dy <= 1; dy++ {
				for dx := -1; dx <= 1; dx++ {
					v += at(img, h, w, y+dy, x+dx)
				}
			}
			out[y*w+x] = v / 9
		}
	}
	return out
}

// Median3 is the 3×3 median filter.
func Median3(img []float32, h, w int) []float32 {
	out := make([]float32, len(img))
	var win [9]float32
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			n := 0
			for dy := -1; dy <= 1; dy++ {
				for dx := -1; dx <= 1; dx++ {
					win[n] = at(img, h, w, y+dy, x+dx)
					n++
				}
			}
			slices.Sort(win[:])
			out[y*w+x] = win[4]
		}
	}
	return out
}

// Bilateral is the edge-preserving bilateral filter: neighbours within radius
// weighted by distance (σs pixels) and by difference in value (σr).
func Bilateral(img []float32, h, w, radius int, sigmaS, sigmaR float64) []float32 {
	out := make([]float32, len(img))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			c := float64(img[y*w+x])
			var num, den float64
			for dy := -radius; dy <= radius; dy++ {
				for dx := -radius; dx <= radius; dx++ {
					v := float64(at(img, h, w, y+dy, x+dx))
					d := v - c
					wt := math.Exp(-float64(dx*dx+dy*dy)/(2*sigmaS*sigmaS) - d*d/(2*sigmaR*sigmaR))
					num += wt * v
					den += wt
				}
			}
			out[y*w+x] = float32(num / den)
		}
	}
	return out
}

// Binarize thresholds at Otsu's threshold: black text on white.
func Binarize(img []float32, h, w int) []float32 {
	return Threshold(img, uint8(OtsuThreshold(img)))
}

// Threshold binarises at a fixed 8-bit level: an attacker who picks one
// global level for every captcha instead of Otsu's per-image choice (at 100
// it keeps most of a shaded captcha's text and little of its background).
func Threshold(img []float32, level uint8) []float32 {
	out := make([]float32, len(img))
	for i, v := range img {
		if quantize(v) > level {
			out[i] = 1
		}
	}
	return out
}

// AdaptiveBinarize thresholds each pixel at the mean of the 15×15 window
// around it less a small margin (OpenCV's ADAPTIVE_THRESH_MEAN_C, as
// captcha breakers use it): unlike one global threshold, it follows a
// background whose brightness varies across the image.
func AdaptiveBinarize(img []float32, h, w int) []float32 {
	const r, margin = 7, 10.0 / 255
	// Summed-area table, one row and column of zeros in front.
	sum := make([]float64, (h+1)*(w+1))
	for y := range h {
		var row float64
		for x := range w {
			row += float64(img[y*w+x])
			sum[(y+1)*(w+1)+x+1] = sum[y*(w+1)+x+1] + row
		}
	}
	out := make([]float32, len(img))
	for y := range h {
		y0, y1 := max(y-r, 0), min(y+r+1, h)
		for x := range w {
			x0, x1 := max(x-r, 0), min(x+r+1, w)
			s := sum[y1*(w+1)+x1] - sum[y0*(w+1)+x1] - sum[y1*(w+1)+x0] + sum[y0*(w+1)+x0]
			mean := s / float64((y1-y0)*(x1-x0))
			if float64(img[y*w+x]) > mean-margin {
				out[y*w+x] = 1
			}
		}
	}
	return out
}

// Flatten evens out the light falling on a captcha, as breakers do before
// thresholding a page lit unevenly: the background is estimated by a grey
// closing (the lightest level within 4 pixels, then the darkest of those)
// that strokes narrower than 9 pixels do not survive, and each pixel is
// moved by what its background lacks of white (a black top-hat).
func Flatten(img []float32, h, w int) []float32 {
	const r = 4
	bg := extremum(extremum(img, h, w, r, false), h, w, r, true)
	out := make([]float32, len(img))
	for i, v := range img {
		out[i] = min(1, max(0, v+1-bg[i]))
	}
	return out
}

// Edges draws where the grey level changes sharply, dark on white (Sobel's
// gradient magnitude; a step of 128 levels is black). It is the attacker
// who knows the served captchas leave the glyphs' strokes almost alone
// while the background moves: what stays crisp is the strokes' outline.
func Edges(img []float32, h, w int) []float32 {
	out := make([]float32, len(img))
	for y := range h {
		for x := range w {
			p := func(dy, dx int) float32 { return at(img, h, w, y+dy, x+dx) }
			gx := p(-1, 1) + 2*p(0, 1) + p(1, 1) - p(-1, -1) - 2*p(0, -1) - p(1, -1)
			gy := p(1, -1) + 2*p(1, 0) + p(1, 1) - p(-1, -1) - 2*p(-1, 0) - p(-1, 1)
			// A step edge of height d gives a magnitude of 4d.
			m := float32(math.Sqrt(float64(gx*gx+gy*gy))) / 2
			out[y*w+x] = 1 - min(1, m)
		}
	}
	return out
}

// Close3 is a grey closing over 3×3 (the lightest level around each pixel,
// then the darkest of those): dark specks and lines under 3 pixels wide
// vanish, which is how breakers despeckle dark text on a light page.
func Close3(img []float32, h, w int) []float32 {
	return extremum(extremum(img, h, w, 1, false), h, w, 1, true)
}

// Open3 is a grey opening over 3×3 (darkest, then lightest): light specks
// and gaps under 3 pixels wide inside dark strokes fill in.
func Open3(img []float32, h, w int) []float32 {
	return extremum(extremum(img, h, w, 1, true), h, w, 1, false)
}

// extremum is the grey dilation (the lightest value, max) or erosion
// (darkest, !max) over the (2r+1)² square around each pixel, in two
// separable passes.
func extremum(img []float32, h, w, r int, darkest bool) []float32 {
	pick := func(a, b float32) float32 {
		if darkest {
			return min(a, b)
		}
		return max(a, b)
	}
	rows := make([]float32, len(img))
	for y := range h {
		for x := range w {
			v := img[y*w+x]
			for xx := max(x-r, 0); xx <= min(x+r, w-1); xx++ {
				v = pick(v, img[y*w+xx])
			}
			rows[y*w+x] = v
		}
	}
	out := make([]float32, len(img))
	for y := range h {
		for x := range w {
			v := rows[y*w+x]
			for yy := max(y-r, 0); yy <= min(y+r, h-1); yy++ {
				v = pick(v, rows[yy*w+x])
			}
			out[y*w+x] = v
		}
	}
	return out
}

// OtsuThreshold is the 8-bit level that best separates img's histogram into
// two classes (Otsu's method): levels above it are white after Binarize.
func OtsuThreshold(img []float32) int {
	var hist [256]int
	for _, v := range img {
		hist[quantize(v)]++
	}
	total := len(img)
	var sum float64
	for i, c := range hist {
		sum += float64(i * c)
	}
	var sumB float64
	var wB int
	best, thr := -1.0, 128
	for t := 0; t < 256; t++ {
		wB += hist[t]
		if wB == 0 {
			continue
		}
		wF := total - wB
		if wF == 0 {
			break
		}
		sumB += float64(t * hist[t])
		mB, mF := sumB/float64(wB), (sum-sumB)/float64(wF)
		if between := float64(wB) * float64(wF) * (mB - mF) * (mB - mF); between > best {
			best, thr = between, t
		}
	}
	return thr
}

// Rescale shrinks the image by scale and enlarges it back (bilinear both
// ways), as solvers that resize their input do.
func Rescale(img []float32, h, w int, scale float64) []float32 {
	sh, sw := max(1, int(float64(h)*scale+0.5)), max(1, int(float64(w)*scale+0.5))
	return resize(resize(img, h, w, sh, sw), sh, sw, h, w)
}

func resize(img []float32, h, w, nh, nw int) []float32 {
	out := make([]float32, nh*nw)
	for y := 0; y < nh; y++ {
		fy := (float64(y)+0.5)*float64(h)/float64(nh) - 0.5
		y0 := int(math.Floor(fy))
		ty := float32(fy - float64(y0))
		for x := 0; x < nw; x++ {
			fx := (float64(x)+0.5)*float64(w)/float64(nw) - 0.5
			x0 := int(math.Floor(fx))
			tx := float32(fx - float64(x0))
			top := at(img, h, w, y0, x0)*(1-tx) + at(img, h, w, y0, x0+1)*tx
			bot := at(img, h, w, y0+1, x0)*(1-tx) + at(img, h, w, y0+1, x0+1)*tx
			out[y*nw+x] = top*(1-ty) + bot*ty
		}
	}
	return out
}

// JPEG round-trips the image through JPEG at the given quality.
func JPEG(img []float32, h, w, quality int) []float32 {
	g := ToGray(img, h, w)
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, g, &jpeg.Options{Quality: quality}); err != nil {
		return append([]float32(nil), img...)
	}
	dec, err := jpeg.Decode(&buf)
	if err != nil {
		return append([]float32(nil), img...)
	}
	out := make([]float32, len(img))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			r, _, _, _ := dec.At(x, y).RGBA()
			out[y*w+x] = float32(r>>8) / 255
		}
	}
	return out
}

func quantize(v float32) uint8 {
	return uint8(min(max(v*255+0.5, 0), 255))
}

// ToGray converts pixels in [0,1] to an 8-bit image (rounding to nearest).
func ToGray(img []float32, h, w int) *image.Gray {
	g := image.NewGray(image.Rect(0, 0, w, h))
	for i, v := range img {
		g.Pix[i] = quantize(v)
	}
	return g
}

// FromGray converts an 8-bit image to pixels in [0,1].
func FromGray(g *image.Gray) []float32 {
	b := g.Bounds()
	out := make([]float32, b.Dx()*b.Dy())
	for y := 0; y < b.Dy(); y++ {
		for x := 0; x < b.Dx(); x++ {
			out[y*b.Dx()+x] = float32(g.Pix[y*g.Stride+x]) / 255
		}
	}
	return out
}

// Translate moves the image by dx pixels right and dy down, replicating the
// edges into the uncovered border (captchas have a plain background there).
func Translate(img []float32, h, w, dx, dy int) []float32 {
	out := make([]float32, len(img))
	for y := range h {
		for x := range w {
			out[y*w+x] = at(img, h, w, y-dy, x-dx)
		}
	}
	return out
}

// translateBack is Translate's transpose: each output pixel's gradient goes
// back to the input pixel it was copied from, so the replicated edge pixels
// collect the gradient of every copy.
func translateBack(grad []float32, h, w, dx, dy int) []float32 {
	out := make([]float32, len(grad))
	for y := range h {
		for x := range w {
			sy, sx := min(max(y-dy, 0), h-1), min(max(x-dx, 0), w-1)
			out[sy*w+sx] += grad[y*w+x]
		}
	}
	return out
}
