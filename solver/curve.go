package solver

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"math"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// Curve draws the training curve: the training loss per step (smoothed, log
// scale, left axis, blue) and the validation accuracy per epoch (whole text
// in red, per character in orange, 0–100% on the right axis).
func Curve(losses []float64, epochs []EpochResult) *image.RGBA {
	const W, H, left, right, top, bottom = 900, 420, 60, 60, 30, 40
	img := image.NewRGBA(image.Rect(0, 0, W, H))
	draw.Draw(img, img.Bounds(), image.White, image.Point{}, draw.Src)
	pw, ph := W-left-right, H-top-bottom
	grey := color.RGBA{200, 200, 200, 255}
	for i := 0; i <= 10; i++ { // grid at every 10%
		y := top + ph*i/10
		line(img, left, y, left+pw, y, grey)
	}
	line(img, left, top, left, top+ph, color.Black)
	line(img, left+pw, top, left+pw, top+ph, color.Black)
	line(img, left, top+ph, left+pw, top+ph, color.Black)
	label(img, left, 18, "training loss (log, blue) and validation accuracy (text red, char orange)", color.Black)
	n := len(losses)
	label(img, left, H-12, fmt.Sprintf("step 0 … %d", n), color.Black)
	if n == 0 {
		return img
	}
	// Smoothed loss on a log scale between its smallest and largest values.
	sm := make([]float64, n)
	ema := losses[0]
	lo, hi := math.Inf(1), math.Inf(-1)
	for i, l := range losses {
		ema = 0.95*ema + 0.05*l
		if i < 20 {
			ema = l
		}
		sm[i] = math.Log10(math.Max(ema, 1e-4))
		lo, hi = math.Min(lo, sm[i]), math.Max(hi, sm[i])
	}
	if hi-lo < 1e-6 {
		hi = lo + 1
	}
	label(img, 4, top+8, fmt.Sprintf("%.3g", math.Pow(10, hi)), color.RGBA{0, 0, 200, 255})
	label(img, 4, top+ph, fmt.Sprintf("%.3g", math.Pow(10, lo)), color.RGBA{0, 0, 200, 255})
	label(img, left+pw+6, top+8, "100%", color.RGBA{200, 0, 0, 255})
	label(img, left+pw+6, top+ph, "0%", color.RGBA{200, 0, 0, 255})
	xAt := func(step float64) int { return left + int(step/float64(max(n-1, 1))*float64(pw)) }
	blue := color.RGBA{30, 60, 220, 255}
	for i := 1; i < n; i++ {
		y0 := top + int((hi-sm[i-1])/(hi-lo)*float64(ph))
		y1 := top + int((hi-sm[i])/(hi-lo)*float64(ph))
		line(img, xAt(float64(i-1)), y0, xAt(float64(i)), y1, blue)
	}
	plot := func(get func(EpochResult) float64, c color.RGBA) {
		for i, e := range epochs {
			x, y := xAt(float64(e.Step-1)), top+int((1-get(e))*float64(ph))
			for dx := -2; dx <= 2; dx++ {
				for dy := -2; dy <= 2; dy++ {
					img.Set(x+dx, y+dy, c)
				}
			}
			if i > 0 {
				p := epochs[i-1]
				line(img, xAt(float64(p.Step-1)), top+int((1-get(p))*float64(ph)), x, y, c)
			}
		}
	}
	plot(func(e EpochResult) float64 { return e.CharAcc }, color.RGBA{240, 150, 0, 255})
	plot(func(e EpochResult) float64 { return e.Accuracy }, color.RGBA{210, 0, 0, 255})
	if len(epochs) > 0 {
		e := epochs[len(epochs)-1]
		label(img, left+pw-260, top+ph-8, fmt.Sprintf("last: text %.1f%%  char %.1f%%", 100*e.Accuracy, 100*e.CharAcc), color.Black)
	}
	return img
}

func line(img *image.RGBA, x0, y0, x1, y1 int, c color.Color) {
	dx, dy := abs(x1-x0), -abs(y1-y0)
	sx, sy := sign(x1-x0), sign(y1-y0)
	e := dx + dy
	for {
		img.Set(x0, y0, c)
		if x0 == x1 && y0 == y1 {
			return
		}
		e2 := 2 * e
		if e2 >= dy {
			e += dy
			x0 += sx
		}
		if e2 <= dx {
			e += dx
			y0 += sy
		}
	}
}

func label(img *image.RGBA, x, y int, s string, c color.Color) {
	d := font.Drawer{Dst: img, Src: image.NewUniform(c), Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
	d.DrawString(s)
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

func sign(v int) int {
	switch {
	case v < 0:
		return -1
	case v > 0:
		return 1
	}
	return 0
}
