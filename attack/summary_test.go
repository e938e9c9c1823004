package attack

import (
	"strings"
	"sync"
)

// figures collects each attack's figure for the one summary line.
var figures = &figureSet{m: map[string]string{}}

type figureSet struct {
	mu sync.Mutex
	m  map[string]string
}

func (f *figureSet) set(key, value string) {
	f.mu.Lock()
	f.m[key] = value
	f.mu.Unlock()
}

// figureOrder is the order of the summary line; "?" marks an attack that
// did not run or did not get as far as its figure.
var figureOrder = []string{"replay", "altered", "flood_captchas", "flood_plain", "rss_mb", "answer_flood", "audio",
	"crawler", "redirect", "lockout", "churn", "admin", "solved"}

func (f *figureSet) line() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	parts := []string{"attacks:"}
	for _, k := range figureOrder {
		v, ok := f.m[k]
		if !ok {
			v = "?"
		}
		parts = append(parts, k+"="+v)
	}
	return strings.Join(parts, " ")
}
