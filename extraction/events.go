// Package extraction turns what the gateway records — the captchas it
// served, the answers it got and the attackers it labelled — into training
// data for the substitute solver: (image, attacker's answer) pairs, whose
// answers are queries to the attacker's own solver (model extraction).
//
// The gateway appends to two logs in the store; this package reads them
// back. Collection is a pure function of the logs, so it can be rerun at
// any time (after a crash, or after a client has been labelled late) and
// always gives the same pairs for the same records.
//
// It also owns the learning loop built on them: Run is one pass (collect
// → write the dataset → fine-tune → judge → publish a model version) and
// Watch repeats it whenever a Trigger is due. The `advcaptcha extract`
// command is a flag layer over the two, and the benchmarks call Run too.
package extraction

import "time"

// Names of the store logs the gateway writes.
const (
	// CaptchaLog holds a CaptchaEvent for every captcha served and every
	// answer received.
	CaptchaLog = "captchas"
	// LabelLog holds a LabelEvent for every label set or cleared, by a rule
	// or an operator.
	LabelLog = "labels"
)

// CaptchaEvent is one record of CaptchaLog. A served record carries the
// recipe that reproduces the image (renderer version and seed), the image's
// hash to check the reproduction, and the image itself when no recipe can
// reproduce it (adversarial captchas); an answer record carries the text
// given, whether it was right, how long it took and the client's label then.
type CaptchaEvent struct {
	Kind      string    `json:"kind"` // "served" or "answer"
	ID        string    `json:"id"`
	At        time.Time `json:"at"`
	Truth     string    `json:"truth,omitempty"`
	Seed      uint64    `json:"seed,omitempty"`
	Renderer  string    `json:"renderer,omitempty"`
	PNGSHA256 string    `json:"png_sha256,omitempty"`
	// PNG is the served image itself when the recipe cannot reproduce it:
	// an adversarial image depends on the model and the attack, not only
	// on the seed, and extraction trains on exactly what the attacker saw.
	PNG       []byte  `json:"png,omitempty"`
	Answer    string  `json:"answer,omitempty"`
	Correct   *bool   `json:"correct,omitempty"`
	Audio     bool    `json:"audio,omitempty"` // the answer came after listening to the audio
	LatencyMS int64   `json:"latency_ms,omitempty"`
	Method    string  `json:"method"` // "none" for a clean captcha
	Model     string  `json:"model,omitempty"`
	IP        string  `json:"ip"`     // the client's IP or IPv6 prefix id
	Device    string  `json:"device"` // the client's device id
	Score     float64 `json:"score"`
	Labelled  bool    `json:"labelled"`
}

// Kinds of CaptchaEvent.
const (
	Served = "served"
	Answer = "answer"
)

// LabelEvent is one record of LabelLog.
type LabelEvent struct {
	// Kind is "label" (the entity is a confirmed attacker until Expires)
	// or "clear" (the label is removed; by an operator, it also says the
	// entity was never an attacker).
	Kind string `json:"kind"`
	// Entity is the store key of the entity: "ip:…", "dev:…", "acct:…",
	// "fp:…".
	Entity string `json:"entity"`
	Reason string `json:"reason,omitempty"`
	// Source is "rule" for the gateway's own rules and "operator" for a
	// person using the admin API.
	Source  string    `json:"source"`
	At      time.Time `json:"at"`
	Expires time.Time `json:"expires,omitzero"`
}

// Kinds of LabelEvent and its sources.
const (
	Labelled       = "label"
	Cleared        = "clear"
	SourceRule     = "rule"
	SourceOperator = "operator"
)
