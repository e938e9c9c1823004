package caddymodule

import (
	"math"
	"testing"
)

const linuxChrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"

// TestSparsePointerOnlyJudgesChromiumMiceAndPens: the rule needs a mouse
// or pen, a Chromium UA and a median interval over 20 ms; touch, keyboard,
// Safari (every iOS browser) and Firefox are not judged by it, nor are
// drags too short to have a median.
func TestSparsePointerOnlyJudgesChromiumMiceAndPens(t *testing.T) {
	const (
		safari  = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15"
		criOS   = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/119.0.6045.169 Mobile/15E148 Safari/604.1"
		firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"
		edge    = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0"
	)
	for _, c := range []struct {
		pointer, ua string
		median      float64
		want        bool
	}{
		{"mouse", linuxChrome, 34, true}, {"pen", linuxChrome, 34, true}, {"mouse", edge, 21, true},
		{"touch", linuxChrome, 34, false}, {"keyboard", linuxChrome, 34, false}, {"", linuxChrome, 34, false},
		{"mouse", linuxChrome, 20, false}, {"mouse", linuxChrome, 8, false}, {"mouse", linuxChrome, math.NaN(), false},
		{"mouse", safari, 34, false}, {"mouse", criOS, 34, false}, {"mouse", firefox, 34, false},
	} {
		if got := sparsePointer(c.pointer, c.ua, c.median); got != c.want {
			t.Errorf("%s, %.40q, median %v ms: sparse %v, want %v", c.pointer, c.ua, c.median, got, c.want)
		}
	}
}
