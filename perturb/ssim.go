package perturb

// SSIM is the mean structural similarity of two h×w images with values 0–1,
// over 7×7 windows (Wang et al. 2004 with uniform windows, as
// scikit-image computes it by default).
func SSIM(a, b []float32, h, w int) float64 {
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
	return total / float64(n)
}
