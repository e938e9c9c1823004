package trajectory

import (
	"fmt"
	"math"
)

// History rules: the paper observes attackers who slow their slides down
// to pass the 0.1 s rule but then slide in nearly the same time every
// time. People vary: the development data's slide durations have a
// coefficient of variation well above 0.2 for any one person.
const (
	HistoryKeep       = 20   // durations kept per device
	historyMinSlides  = 5    // judged from this many slides on
	historySameCV     = 0.05 // below this, the durations are "the same"
	historySameWeight = 100
)

// JudgeHistory looks at a device's recent slide durations (ms, newest
// first, the current slide included) and reports a certain finding when
// they are near-identical.
func JudgeHistory(durations []float64) (Reason, bool) {
	if len(durations) < historyMinSlides {
		return Reason{}, false
	}
	c := cv(durations)
	if math.IsNaN(c) || c >= historySameCV {
		return Reason{}, false
	}
	return Reason{Name: "same_durations", Points: historySameWeight, Certain: true,
		Detail: fmt.Sprintf("%d slides, duration cv %.3f", len(durations), c)}, true
}
