package perturb

// SSIM is the mean structural similarity of two h×w images with values 0–1,
// over 7×7 windows (Wang et al. 2004 with uniform windows, as
// scikit-image computes it by default).
func SSIM(a, b []float32, h, w int) float64 {
	return meanSSIM(a, b, h, w, nil)
}

// StrokeSSIM is SSIM over the windows centred on the text's strokes alone —
// the pixels glyphs (the captcha's ink without its noise, captcha.Captcha's
// Glyphs: coverage 0–255) covers at least half: how much of what a reader
// must see the perturbation kept, which the global figure dilutes with the
// background. 0 when no window is centred on a stroke.
func StrokeSSIM(a, b []float32, glyphs []uint8, h, w int) float64 {
	return meanSSIM(a, b, h, w, glyphs)
}

// meanSSIM averages SSIM over the 7×7 windows, all of them or, with a
// mask, those whose centre the mask covers at least half.
func meanSSIM(a, b []float32, h, w int, mask []uint8) float64 {
	const win = 7
	const c1, c2 = 0.01 * 0.01, 0.03 * 0.03
	if h < win || w < win {
		return 0
	}
	var total float64
	var n int
	const np = win * win
	for y := 0; y+win <= h; y++ {
		for x := 0; x+win <= w; x++ {
			if mask != nil && mask[(y+win/2)*w+x+win/2] < 128 {
				continue
			}
			var sa, sb, saa, sbb, sab float64
			for dy := 0; dy < win; dy++ {
				row := (y+dy)*w + x
				for dx := 0; dx < win; dx++ {
					va, vb := float64(a[row+dx]), float64(b[row+dx])
					sa += va
					sb += vb
					saa += va * va
					sbb += vb * vb
					sab += va * vb
				}
			}
			ma, mb := sa/np, sb/np
			// Sample (co)variances, as scikit-image's default.
			va := (saa - np*ma*ma) / (np - 1)
			vb := (sbb - np*mb*mb) / (np - 1)
			cov := (sab - np*ma*mb) / (np - 1)
			total += (2*ma*mb + c1) * (2*cov + c2) / ((ma*ma + mb*mb + c1) * (va + vb + c2))
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return total / float64(n)
}
