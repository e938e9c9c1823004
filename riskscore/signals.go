// Package riskscore turns what advcaptcha observes about a client — its
// request headers, its request frequency, its labels — into an explainable
// risk score from 0 to 100 and a decision (allow, challenge, block). Every
// contribution to the score is a named Reason with its weight, so operators
// can see and tune why a client was stopped.
package riskscore

import (
	"fmt"
	"sort"
	"strings"
)

// Signal is one named source of risk. Its weight is the most it adds to the
// score; a signal may fire with partial strength (a soft limit exceeded by
// half adds half its weight).
type Signal uint8

// Signals. Their names are stable: they appear in configuration, reasons,
// logs and placeholders.
const (
	UAMissing             Signal = iota // no User-Agent header
	UAMalformed                         // control bytes, not UTF-8, absurd length, or unparsable
	UAIncomplete                        // a browser UA without its usual parts (platform, engine, version)
	UAAutomation                        // an automation or HTTP-library token (curl, HeadlessChrome, python-requests…)
	UAUnknown                           // neither parser recognises a browser
	AcceptMissing                       // no Accept header
	AcceptLanguageMissing               // no Accept-Language header
	AcceptEncodingMissing               // no Accept-Encoding, or one without gzip
	SecFetchMissing                     // a modern browser over a secure context without Sec-Fetch-* headers
	ClientHintsMissing                  // a Chromium UA over a secure context without Sec-CH-UA
	ClientHintsMismatch                 // Sec-CH-UA brands or version contradict the UA, or a non-Chromium UA sends them
	PlatformMismatch                    // Sec-CH-UA-Platform or -Mobile contradict the UA
	NoDeviceCookie                      // first visit, or cookies refused
	CrawlerUnverified                   // claims to be a search-engine crawler, reverse DNS says otherwise
	FrequencyIP                         // over a soft request limit, per IP (prefix)
	FrequencyDevice                     // over a soft request limit, per device
	FrequencyAccount                    // over a soft request limit, per account
	FrequencyStrict                     // over the strict limit: labels the entity an attacker
	Labelled                            // the IP, device or account is labelled a confirmed attacker
	AudioCaptcha                        // the device played audio captchas (easier for machines than images)
	AccountLabelled                     // the account the request names is labelled: challenges, never blocks alone (anyone can name an account)
	numSignals
)

var signalNames = [numSignals]string{
	UAMissing:             "ua_missing",
	UAMalformed:           "ua_malformed",
	UAIncomplete:          "ua_incomplete",
	UAAutomation:          "ua_automation",
	UAUnknown:             "ua_unknown",
	AcceptMissing:         "accept_missing",
	AcceptLanguageMissing: "accept_language_missing",
	AcceptEncodingMissing: "accept_encoding_missing",
	SecFetchMissing:       "sec_fetch_missing",
	ClientHintsMissing:    "client_hints_missing",
	ClientHintsMismatch:   "client_hints_mismatch",
	PlatformMismatch:      "platform_mismatch",
	NoDeviceCookie:        "no_device_cookie",
	CrawlerUnverified:     "crawler_unverified",
	FrequencyIP:           "frequency_ip",
	FrequencyDevice:       "frequency_device",
	FrequencyAccount:      "frequency_account",
	FrequencyStrict:       "frequency_strict",
	Labelled:              "labelled",
	AudioCaptcha:          "audio_captcha",
	AccountLabelled:       "account_labelled",
}

// DefaultWeights are calibrated so that, with the default thresholds
// (challenge at 40, block at 90): a browser with consistent headers scores
// under 10 on its first request; an HTTP library (curl, python-requests)
// is challenged; one that also lacks the headers every browser sends, or a
// browser UA whose client hints contradict it, is blocked; and a label
// blocks on its own.
var DefaultWeights = Weights{
	UAMissing:             60,
	UAMalformed:           50,
	UAIncomplete:          25,
	UAAutomation:          60,
	UAUnknown:             15,
	AcceptMissing:         10,
	AcceptLanguageMissing: 15,
	AcceptEncodingMissing: 10,
	SecFetchMissing:       20,
	ClientHintsMissing:    10,
	ClientHintsMismatch:   45,
	PlatformMismatch:      35,
	NoDeviceCookie:        5,
	CrawlerUnverified:     70,
	FrequencyIP:           40,
	FrequencyDevice:       40,
	FrequencyAccount:      40,
	FrequencyStrict:       100,
	Labelled:              100,
	AudioCaptcha:          15,
	AccountLabelled:       40,
}

// Weights holds one weight per signal.
type Weights [numSignals]float64

func (s Signal) String() string {
	if s < numSignals {
		return signalNames[s]
	}
	return fmt.Sprintf("signal(%d)", uint8(s))
}

// ParseSignal returns the signal with the given name.
func ParseSignal(name string) (Signal, bool) {
	for i, n := range signalNames {
		if n == name {
			return Signal(i), true
		}
	}
	return 0, false
}

// SignalNames lists every signal name, sorted.
func SignalNames() []string {
	names := append([]string(nil), signalNames[:]...)
	sort.Strings(names)
	return names
}

// WithOverrides returns w with the named weights replaced. Unknown names and
// weights outside 0–100 are errors that name the culprit.
func (w Weights) WithOverrides(overrides map[string]float64) (Weights, error) {
	for name, v := range overrides {
		s, ok := ParseSignal(name)
		if !ok {
			return w, fmt.Errorf("unknown signal %q (known: %s)", name, strings.Join(SignalNames(), ", "))
		}
		if !(v >= 0 && v <= 100) {
			return w, fmt.Errorf("signal %q: weight %v is outside 0–100", name, v)
		}
		w[s] = v
	}
	return w, nil
}
