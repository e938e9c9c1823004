package caddymodule

import (
	"math"
	"testing"
)

const linuxChrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"

// TestSparseMouseOnlyJudgesChromium: the rule needs a Chromium UA and a
// median interval over 20 ms; Safari (every iOS browser) and Firefox are
// not judged by it, nor are drags too short to have a median.
func TestSparseMouseOnlyJudgesChromium(t *testing.T) {
	const (
		safari  = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15"
		criOS   = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/119.0.6045.169 Mobile/15E148 Safari/604.1"
		firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"
		edge    = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0"
	)
	for _, c := range []struct {
		ua     string
		median float64
		want   bool
	}{
		{linuxChrome, 34, true}, {edge, 21, true}, {linuxChrome, 20, false}, {linuxChrome, 8, false}, {linuxChrome, math.NaN(), false},
		{safari, 34, false}, {criOS, 34, false}, {firefox, 34, false},
	} {
		if got := sparseMouse(c.ua, c.median); got != c.want {
			t.Errorf("%.40q, median %v ms: sparse %v, want %v", c.ua, c.median, got, c.want)
		}
	}
}
