package captcha

import (
	"fmt"
	"image"
	"image/draw"
	"math"
	"math/rand/v2"
	"slices"

	"golang.org/x/image/font"
	"golang.org/x/image/font/sfnt"
	"golang.org/x/image/math/fixed"
	"golang.org/x/image/vector"
)

type point struct{ x, y float64 }

// contour is a closed polyline.
type contour []point

// Render draws text in this style with the randomness of seed. The same
// (style, text, seed) gives the same pixels. The style must have been
// validated.
func (s *Style) Render(text string, seed uint64) (*image.Gray, error) {
	img, _, err := s.render(text, seed)
	return img, err
}

// render is Render that also returns the text's ink alone (its glyphs'
// coverage, without the noise arcs and dots): where a reader must see the
// strokes, which legibility measures look at.
func (s *Style) render(text string, seed uint64) (*image.Gray, *image.Alpha, error) {
	if text == "" {
		return nil, nil, fmt.Errorf("empty text")
	}
	rng := newRand(seed, 2)
	w, h := float64(s.Width), float64(s.Height)

	var buf sfnt.Buffer
	var glyphs []contour
	cursor := 0.0
	for _, r := range text {
		f, err := loadFont(s.Fonts[rng.IntN(len(s.Fonts))])
		if err != nil {
			return nil, nil, err
		}
		size := h * (0.72 + 0.1*rng.Float64()) * (1 + s.Scale*(2*rng.Float64()-1))
		cs, adv, err := glyphOutline(f, &buf, r, size)
		if err != nil {
			return nil, nil, err
		}
		angle := s.Rotation * (2*rng.Float64() - 1) * math.Pi / 180
		dy := s.Offset * h * (2*rng.Float64() - 1)
		cx, cy := bboxCenter(cs)
		sin, cos := math.Sincos(angle)
		for _, c := range cs {
			for i, p := range c {
				x, y := p.x-cx, p.y-cy
				c[i] = point{cursor + cx + x*cos - y*sin, cy + dy + x*sin + y*cos}
			}
			glyphs = append(glyphs, c)
		}
		cursor += adv * (1 - s.Overlap*rng.Float64())
	}
	fitAndCenter(glyphs, w, h, rng)
	warp := newWarp(s.Warp*h/30, w, h, rng)
	for _, c := range glyphs {
		for i, p := range c {
			c[i] = warp.apply(p)
		}
	}

	text_ := rasterize(glyphs, s.Width, s.Height)
	var noise []contour
	for range max(s.Arcs, 0) {
		noise = append(noise, arc(w, h, rng))
	}
	for range max(s.Dots, 0) {
		noise = append(noise, dot(w, h, rng))
	}
	noiseInk := rasterize(noise, s.Width, s.Height)

	bg := background(s.Width, s.Height, s.Background, rng)
	ink := 70 * rng.Float64()
	var light []float64
	if s.Shading > 0 {
		// Drawn only for shaded styles, so that unshaded captchas keep
		// their pixels.
		light = shading(s.Width, s.Height, rng)
		ink *= 1 - s.Shading // the contrast is kept by darkening the base ink
	}
	out := image.NewGray(image.Rect(0, 0, s.Width, s.Height))
	for i := range out.Pix {
		a := float64(max(text_.Pix[i], noiseInk.Pix[i])) / 255
		b, k := bg[i], ink
		if light != nil {
			b -= s.Shading * shadeLevels * (1 - light[i])
			k += s.Shading * shadeLevels * light[i]
		}
		v := b*(1-a) + k*a
		out.Pix[i] = uint8(math.Round(math.Max(0, math.Min(255, v))))
	}
	return out, text_, nil
}

// shadeLevels is how many grey levels full shading moves the background
// down on the dark side and the ink up on the light side.
const shadeLevels = 125

// shading is the light falling on each pixel, 0 (dark) to 1 (light): a
// ramp along a random direction across the whole image, bent a little by a
// smooth wobble so that its level lines are not straight.
func shading(w, h int, rng *rand.Rand) []float64 {
	// Within 36° of the horizontal, so that the text's ends sit in
	// different light. (The vertical term is scaled by w/h/3: at 100×30 the
	// light changes faster down a character than along the text once the
	// angle passes ~15°, about half the captchas — a feature of renderer
	// captcha/2, kept, since changing it changes pixels.)
	angle := (rng.Float64()*2 - 1) * math.Pi / 5
	if rng.IntN(2) == 0 {
		angle += math.Pi
	}
	dx, dy := math.Cos(angle), math.Sin(angle)*float64(w)/float64(h)/3
	phase, freq := 2*math.Pi*rng.Float64(), 1+2*rng.Float64()
	out := make([]float64, w*h)
	for y := range h {
		for x := range w {
			u, v := float64(x)/float64(w)-0.5, float64(y)/float64(h)-0.5
			out[y*w+x] = u*dx + v*dy + 0.08*math.Sin(phase+freq*math.Pi*(v-u))
		}
	}
	// Full light and full shadow are reached inside the image, not only at
	// its corners, so that the text — centred, away from the edges — spans
	// them both.
	sorted := slices.Clone(out)
	slices.Sort(sorted)
	lo, hi := sorted[len(sorted)*shadeClip/100], sorted[len(sorted)*(100-shadeClip)/100]
	for i, t := range out {
		out[i] = math.Max(0, math.Min(1, (t-lo)/(hi-lo)))
	}
	return out
}

// shadeClip is the share of the image, in percent, at full light and as
// much at full shadow.
const shadeClip = 15

// glyphOutline returns the flattened outline of r at size pixels per em,
// with the pen at the origin (y grows downwards), and its advance.
func glyphOutline(f *sfnt.Font, buf *sfnt.Buffer, r rune, size float64) ([]contour, float64, error) {
	idx, err := f.GlyphIndex(buf, r)
	if err != nil || idx == 0 {
		return nil, 0, fmt.Errorf("no glyph for %q", r)
	}
	ppem := fixed.Int26_6(size * 64)
	segs, err := f.LoadGlyph(buf, idx, ppem, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("glyph %q: %w", r, err)
	}
	adv, err := f.GlyphAdvance(buf, idx, ppem, font.HintingNone)
	if err != nil {
		return nil, 0, fmt.Errorf("glyph %q: %w", r, err)
	}
	var out []contour
	var cur contour
	var pen point
	fp := func(p fixed.Point26_6) point { return point{float64(p.X) / 64, float64(p.Y) / 64} }
	for _, sg := range segs {
		switch sg.Op {
		case sfnt.SegmentOpMoveTo:
			if len(cur) > 1 {
				out = append(out, cur)
			}
			pen = fp(sg.Args[0])
			cur = contour{pen}
		case sfnt.SegmentOpLineTo:
			pen = fp(sg.Args[0])
			cur = append(cur, pen)
		case sfnt.SegmentOpQuadTo:
			p0, p1, p2 := pen, fp(sg.Args[0]), fp(sg.Args[1])
			for i := 1; i <= 6; i++ {
				t := float64(i) / 6
				u := 1 - t
				cur = append(cur, point{u*u*p0.x + 2*u*t*p1.x + t*t*p2.x, u*u*p0.y + 2*u*t*p1.y + t*t*p2.y})
			}
			pen = p2
		case sfnt.SegmentOpCubeTo:
			p0, p1, p2, p3 := pen, fp(sg.Args[0]), fp(sg.Args[1]), fp(sg.Args[2])
			for i := 1; i <= 8; i++ {
				t := float64(i) / 8
				u := 1 - t
				cur = append(cur, point{
					u*u*u*p0.x + 3*u*u*t*p1.x + 3*u*t*t*p2.x + t*t*t*p3.x,
					u*u*u*p0.y + 3*u*u*t*p1.y + 3*u*t*t*p2.y + t*t*t*p3.y,
				})
			}
			pen = p3
		}
	}
	if len(cur) > 1 {
		out = append(out, cur)
	}
	// Subdivide long edges so that the warp bends straight stems too.
	for i, c := range out {
		out[i] = subdivide(c, 1.0)
	}
	return out, float64(adv) / 64, nil
}

func subdivide(c contour, step float64) contour {
	out := make(contour, 0, len(c)*2)
	for i, p := range c {
		q := c[(i+1)%len(c)]
		out = append(out, p)
		d := math.Hypot(q.x-p.x, q.y-p.y)
		for k := 1; float64(k)*step < d; k++ {
			t := float64(k) * step / d
			out = append(out, point{p.x + t*(q.x-p.x), p.y + t*(q.y-p.y)})
		}
	}
	return out
}

func bbox(cs []contour) (minX, minY, maxX, maxY float64) {
	minX, minY, maxX, maxY = math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)
	for _, c := range cs {
		for _, p := range c {
			minX, maxX = math.Min(minX, p.x), math.Max(maxX, p.x)
			minY, maxY = math.Min(minY, p.y), math.Max(maxY, p.y)
		}
	}
	return
}

func bboxCenter(cs []contour) (float64, float64) {
	x0, y0, x1, y1 := bbox(cs)
	if math.IsInf(x0, 0) {
		return 0, 0
	}
	return (x0 + x1) / 2, (y0 + y1) / 2
}

// fitAndCenter scales the text down when it does not fit, then places it
// in the image with a little random play.
func fitAndCenter(cs []contour, w, h float64, rng *rand.Rand) {
	x0, y0, x1, y1 := bbox(cs)
	if math.IsInf(x0, 0) {
		return
	}
	margin := 0.06 * w
	scale := math.Min(1, math.Min((w-2*margin)/(x1-x0), (h-0.1*h)/(y1-y0)))
	cx, cy := (x0+x1)/2, (y0+y1)/2
	slackX := math.Max(0, (w-2*margin)-(x1-x0)*scale) / 2
	slackY := math.Max(0, (h*0.9)-(y1-y0)*scale) / 2
	tx := w/2 + slackX*(2*rng.Float64()-1)
	ty := h/2 + slackY*(2*rng.Float64()-1)
	for _, c := range cs {
		for i, p := range c {
			c[i] = point{tx + (p.x-cx)*scale, ty + (p.y-cy)*scale}
		}
	}
}

type warpField struct {
	ax, ay, lx, ly, px, py float64
}

func newWarp(amp, w, h float64, rng *rand.Rand) warpField {
	return warpField{
		ax: amp * (0.5 + rng.Float64()), ay: amp * (0.5 + rng.Float64()),
		lx: h * (1.5 + 2*rng.Float64()), ly: w * (0.4 + 0.5*rng.Float64()),
		px: 2 * math.Pi * rng.Float64(), py: 2 * math.Pi * rng.Float64(),
	}
}

func (f warpField) apply(p point) point {
	return point{
		p.x + f.ax*math.Sin(2*math.Pi*p.y/f.lx+f.px),
		p.y + f.ay*math.Sin(2*math.Pi*p.x/f.ly+f.py),
	}
}

// arc is a thin wavy stroke across the image, as a closed polygon.
func arc(w, h float64, rng *rand.Rand) contour {
	y0 := h * (0.25 + 0.5*rng.Float64())
	slope := (rng.Float64() - 0.5) * 0.5 * h / w
	amp := h * (0.1 + 0.2*rng.Float64())
	lambda := w * (0.5 + rng.Float64())
	phase := 2 * math.Pi * rng.Float64()
	half := 0.4 + 0.5*rng.Float64()*h/30
	x0 := -2 + rng.Float64()*w*0.3
	x1 := w + 2 - rng.Float64()*w*0.3
	var top, bottom []point
	for x := x0; x <= x1; x += 1 {
		y := y0 + slope*(x-w/2) + amp*math.Sin(2*math.Pi*x/lambda+phase)
		dy := slope + amp*2*math.Pi/lambda*math.Cos(2*math.Pi*x/lambda+phase)
		n := math.Hypot(1, dy)
		nx, ny := -dy/n*half, 1/n*half
		top = append(top, point{x + nx, y + ny})
		bottom = append(bottom, point{x - nx, y - ny})
	}
	c := contour(top)
	for i := len(bottom) - 1; i >= 0; i-- {
		c = append(c, bottom[i])
	}
	return c
}

// dot is a small filled octagon.
func dot(w, h float64, rng *rand.Rand) contour {
	cx, cy := w*rng.Float64(), h*rng.Float64()
	r := (0.4 + 0.6*rng.Float64()) * h / 30
	c := make(contour, 8)
	for i := range c {
		a := float64(i) * math.Pi / 4
		c[i] = point{cx + r*math.Cos(a), cy + r*math.Sin(a)}
	}
	return c
}

// rasterize fills the contours (non-zero, anti-aliased) into an alpha mask.
func rasterize(cs []contour, w, h int) *image.Alpha {
	dst := image.NewAlpha(image.Rect(0, 0, w, h))
	if len(cs) == 0 {
		return dst
	}
	z := vector.NewRasterizer(w, h)
	z.DrawOp = draw.Src
	for _, c := range cs {
		if len(c) < 3 {
			continue
		}
		z.MoveTo(float32(c[0].x), float32(c[0].y))
		for _, p := range c[1:] {
			z.LineTo(float32(p.x), float32(p.y))
		}
		z.ClosePath()
	}
	z.Draw(dst, dst.Bounds(), image.Opaque, image.Point{})
	return dst
}

// background is a smooth light texture with a little grain, per pixel.
func background(w, h int, strength float64, rng *rand.Rand) []float64 {
	const gx, gy = 6, 3
	var grid [gy + 1][gx + 1]float64
	for j := range grid {
		for i := range grid[j] {
			grid[j][i] = rng.Float64()
		}
	}
	out := make([]float64, w*h)
	for y := 0; y < h; y++ {
		fy := float64(y) / float64(h) * gy
		j := min(int(fy), gy-1)
		ty := fy - float64(j)
		for x := 0; x < w; x++ {
			fx := float64(x) / float64(w) * gx
			i := min(int(fx), gx-1)
			tx := fx - float64(i)
			n := (grid[j][i]*(1-tx)+grid[j][i+1]*tx)*(1-ty) + (grid[j+1][i]*(1-tx)+grid[j+1][i+1]*tx)*ty
			out[y*w+x] = 255 - strength*110*n + 6*(rng.Float64()-0.5)
		}
	}
	return out
}

func missingGlyphs(f *sfnt.Font, charset string) string {
	var buf sfnt.Buffer
	for _, r := range charset {
		if idx, err := f.GlyphIndex(&buf, r); err != nil || idx == 0 {
			return string(r)
		}
	}
	return ""
}
