package extraction

import (
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/advcaptcha/advcaptcha/captcha"
	"github.com/advcaptcha/advcaptcha/solver"
	"github.com/advcaptcha/advcaptcha/solver/solvertest"
	"github.com/advcaptcha/advcaptcha/store"
	"github.com/advcaptcha/advcaptcha/store/storetest"
)

// logWriter is what the gateway does to the logs.
type logWriter interface {
	Append(ctx context.Context, log string, record []byte) error
	LogReader
}

var t0 = time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)

// scenario writes what a gateway would: captchas served and answered by a
// bot (caught later), a person, and a client an operator cleared.
type scenario struct {
	t    *testing.T
	logs logWriter
	png  []byte // an "adversarial" image, recorded as served
}

func (s scenario) append(log string, v any) {
	s.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		s.t.Fatal(err)
	}
	if err := s.logs.Append(context.Background(), log, b); err != nil {
		s.t.Fatal(err)
	}
}

func hash(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// serveClean records a clean captcha served from seed and its answer.
func (s scenario) serveClean(id string, seed uint64, at time.Time, ip, dev, answer string) (truth string, png []byte) {
	style := captcha.DefaultStyle()
	c, err := style.Generate(seed)
	if err != nil {
		s.t.Fatal(err)
	}
	png, err = captcha.EncodePNG(c.Image)
	if err != nil {
		s.t.Fatal(err)
	}
	s.append(CaptchaLog, CaptchaEvent{Kind: Served, ID: id, At: at, Truth: c.Text, Seed: seed, Renderer: captcha.RendererVersion,
		PNGSHA256: hash(png), Method: "none", IP: ip, Device: dev})
	correct := answer == c.Text
	s.append(CaptchaLog, CaptchaEvent{Kind: Answer, ID: id, At: at.Add(3 * time.Second), Answer: answer, Correct: &correct,
		LatencyMS: 3000, Method: "none", IP: ip, Device: dev})
	return c.Text, png
}

func (s scenario) serveAdversarial(id string, at time.Time, ip, dev, answer string) {
	s.append(CaptchaLog, CaptchaEvent{Kind: Served, ID: id, At: at, Truth: "abcd", Seed: 9, Renderer: captcha.RendererVersion,
		PNGSHA256: hash(s.png), PNG: s.png, Method: "mifgsm eps=16", Model: "v1", IP: ip, Device: dev})
	correct := answer == "abcd"
	s.append(CaptchaLog, CaptchaEvent{Kind: Answer, ID: id, At: at.Add(time.Second), Answer: answer, Correct: &correct,
		LatencyMS: 1000, Method: "mifgsm eps=16", Model: "v1", IP: ip, Device: dev})
}

func TestCollect(t *testing.T) {
	style := captcha.DefaultStyle()
	c, _ := style.Generate(424242)
	advPNG, _ := captcha.EncodePNG(c.Image)
	for name, logs := range storetest.MemoryAndRedis(t) {
		t.Run(name, func(t *testing.T) {
			s := scenario{t: t, logs: logs, png: advPNG}
			// The bot answers from device "bot" at 9:50 and 10:30 and is
			// labelled at 11:00 (with the default hour of lookback only the
			// second counts), then answers again at 11:10.
			s.serveClean("early", 1, t0.Add(-10*time.Minute), "203.0.113.9", "bot", "wrong1")
			botTruth, botPNG := s.serveClean("late", 2, t0.Add(30*time.Minute), "203.0.113.9", "bot", "xxxx")
			s.append(LabelLog, LabelEvent{Kind: Labelled, Entity: "dev:bot", Reason: "slide: linear", Source: SourceRule,
				At: t0.Add(time.Hour), Expires: t0.Add(2 * time.Hour)})
			s.serveAdversarial("adv", t0.Add(70*time.Minute), "203.0.113.9", "bot", "abce")
			// After the label expired: not an attacker's answer any more.
			s.serveClean("after", 3, t0.Add(3*time.Hour), "203.0.113.9", "bot", "yyyy")
			// A person on another IP and device.
			s.serveClean("human", 4, t0.Add(70*time.Minute), "198.51.100.1", "person", "zzzz")
			// A client labelled by the IP rule and then cleared by an
			// operator: a false positive, none of its answers count.
			s.append(LabelLog, LabelEvent{Kind: Labelled, Entity: "ip:192.0.2.5", Reason: "strict rate limit", Source: SourceRule,
				At: t0.Add(time.Hour), Expires: t0.Add(2 * time.Hour)})
			s.serveClean("cleared", 5, t0.Add(65*time.Minute), "192.0.2.5", "office", "wwww")
			s.append(LabelLog, LabelEvent{Kind: Cleared, Entity: "ip:192.0.2.5", Reason: "our office NAT", Source: SourceOperator,
				At: t0.Add(90 * time.Minute)})
			// An answer whose served record is gone, and a clean captcha
			// whose recorded hash no recipe reproduces.
			s.append(CaptchaLog, CaptchaEvent{Kind: Answer, ID: "orphan", At: t0, Answer: "abcd", IP: "203.0.113.9", Device: "bot", Labelled: true})
			s.append(CaptchaLog, CaptchaEvent{Kind: Served, ID: "tampered", At: t0.Add(80 * time.Minute), Truth: "abcd", Seed: 6,
				Renderer: captcha.RendererVersion, PNGSHA256: hash([]byte("other")), Method: "none", IP: "203.0.113.9", Device: "bot"})
			s.append(CaptchaLog, CaptchaEvent{Kind: Answer, ID: "tampered", At: t0.Add(81 * time.Minute), Answer: "abcd", IP: "203.0.113.9", Device: "bot"})

			pairs, st, err := Collect(context.Background(), logs, Options{ReadBatch: 3})
			if err != nil {
				t.Fatal(err)
			}
			want := Stats{Served: 7, Answers: 8, Orphans: 1, Unreproducible: 1, Attacker: 2, Other: 4, Labels: 3}
			if st != want {
				t.Errorf("stats %+v, want %+v", st, want)
			}
			if len(pairs) != 2 || pairs[0].ID != "late" || pairs[1].ID != "adv" {
				t.Fatalf("pairs %v, want late and adv", ids(pairs))
			}
			late, adv := pairs[0], pairs[1]
			if late.Truth != botTruth || late.Answer != "xxxx" || late.Correct || late.Reason != "dev:bot rule: slide: linear" {
				t.Errorf("late pair %+v", late)
			}
			// The clean image is reproduced from its seed, byte for byte.
			if string(late.PNG) != string(botPNG) || late.Method != "none" {
				t.Errorf("late pair image or method wrong: %d bytes, %q", len(late.PNG), late.Method)
			}
			if string(adv.PNG) != string(advPNG) || adv.Model != "v1" || adv.Answer != "abce" {
				t.Errorf("adversarial pair %+v", adv)
			}

			// With a longer lookback the 10:00 answer counts too.
			pairs, _, err = Collect(context.Background(), logs, Options{Lookback: 2 * time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(pairs); len(got) != 3 || got[0] != "early" {
				t.Errorf("with 2h of lookback: %v, want early, late, adv", got)
			}
			// With none, only the answer given under the label.
			pairs, _, _ = Collect(context.Background(), logs, Options{Lookback: -1})
			if got := ids(pairs); len(got) != 1 || got[0] != "adv" {
				t.Errorf("without lookback: %v, want adv", got)
			}
		})
	}
}

func ids(pairs []Pair) []string {
	var out []string
	for _, p := range pairs {
		out = append(out, p.ID)
	}
	return out
}

func TestCollectRejectsCorruptRecords(t *testing.T) {
	mem, _ := store.NewMemory(store.MemoryOptions{})
	defer mem.Close()
	_ = mem.Append(context.Background(), CaptchaLog, []byte("{not json"))
	if _, _, err := Collect(context.Background(), mem, Options{}); err == nil {
		t.Fatal("a corrupt record was accepted silently")
	}
}

func TestWriteDataset(t *testing.T) {
	style := captcha.DefaultStyle()
	var pairs []Pair
	for i := range 40 {
		c, _ := style.Generate(uint64(100 + i))
		png, _ := captcha.EncodePNG(c.Image)
		answer := c.Text[:len(c.Text)-1] + "2"
		pairs = append(pairs, Pair{ID: "id" + string(rune('A'+i)), PNG: png, Truth: c.Text, Answer: answer, Method: "none", At: t0})
	}
	pairs = append(pairs, Pair{ID: "bad1", PNG: []byte("x"), Answer: "a0c!"}, Pair{ID: "bad2", PNG: []byte("x"), Answer: ""})
	dir := t.TempDir()
	st, err := WriteDataset(dir, pairs, style.Charset, style.MaxLength+2)
	if err != nil {
		t.Fatal(err)
	}
	if st.Unusable != 2 || st.Train+st.HeldOut != 40 || st.HeldOut == 0 || st.Train == 0 {
		t.Errorf("stats %+v: want 2 unusable and 40 split between train and held out", st)
	}
	// Both halves load as training datasets, labelled with the answers.
	arch := solver.DefaultArchitecture()
	for _, sub := range []string{"train", "heldout"} {
		samples, err := solver.LoadDataset(filepath.Join(dir, sub), arch)
		if err != nil {
			t.Fatalf("%s: %v", sub, err)
		}
		for _, smp := range samples {
			if smp.Text[len(smp.Text)-1] != '2' {
				t.Errorf("%s: label %q is not the attacker's answer", sub, smp.Text)
			}
		}
	}
	// The split is a function of the id alone, and stable.
	for _, p := range pairs[:40] {
		_, err := os.Stat(filepath.Join(dir, "heldout", p.ID+".png"))
		if (err == nil) != HeldOut(p.ID) {
			t.Errorf("pair %s on the wrong side", p.ID)
		}
	}
	f, err := os.Open(filepath.Join(dir, "pairs.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil || len(rows) != 43 || rows[0][0] != "id" {
		t.Errorf("pairs.csv: %d rows, %v", len(rows), err)
	}
	if _, err := WriteDataset(t.TempDir(), nil, style.Charset, 8); err == nil {
		t.Error("no pairs: want an error")
	}
}

// An attacker whose solver reads better than the substitute: extraction
// imitates it, fidelity (here the same as accuracy) rises, and the new model
// is judged better. The synthetic task of solvertest trains in seconds.
func TestFineTuneImitatesAttacker(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: fine-tunes a model for several seconds")
	}
	base, _, err := solver.Train(context.Background(), solver.TrainConfig{
		Arch: solvertest.Arch(), Train: solvertest.Samples(64, 1), Batch: 16, Workers: 2, Epochs: 1, LR: 1e-2, Seed: 7,
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := FineTune(context.Background(), TuneConfig{
		Base: base, Pairs: solvertest.Samples(256, 11), HeldOut: solvertest.Samples(64, 12),
		Clean: solvertest.Samples(64, 13), CleanVal: solvertest.Samples(64, 14),
		Epochs: 12, Batch: 16, Workers: 2, LR: 1e-2, Seed: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Better || res.After.Fidelity < 0.9 || res.Before.Fidelity > 0.5 || res.After.CharFidelity < res.After.Fidelity {
		t.Fatalf("%+v: want fidelity from under 50%% to at least 90%% and the model judged better", *res)
	}
	t.Logf("%s", res.Why)
}

// Several pair shares: each is fine-tuned, measured and judged, in order,
// and the result is the most faithful model the rule accepts — the one the
// attempts say, not merely the first or the last.
func TestFineTuneTriesPairShares(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: fine-tunes a model for several seconds")
	}
	base, _, err := solver.Train(context.Background(), solver.TrainConfig{
		Arch: solvertest.Arch(), Train: solvertest.Samples(64, 1), Batch: 16, Workers: 2, Epochs: 1, LR: 1e-2, Seed: 7,
	})
	if err != nil {
		t.Fatal(err)
	}
	shares := []float64{0, 0.8, 0.3}
	res, err := FineTune(context.Background(), TuneConfig{
		Base: base, Pairs: solvertest.Samples(48, 11), HeldOut: solvertest.Samples(64, 12),
		Clean: solvertest.Samples(64, 13), CleanVal: solvertest.Samples(64, 14),
		Epochs: 5, Batch: 16, Workers: 2, LR: 1e-2, Seed: 1, PairShares: shares,
		Companion: true, CompanionMaxCleanDrop: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Tried) != len(shares) {
		t.Fatalf("%d attempts, want %d", len(res.Tried), len(shares))
	}
	var want *Attempt
	for i, a := range res.Tried {
		t.Logf("share %g: better %v, %s", a.PairShare, a.Better, a.Why)
		if a.PairShare != shares[i] {
			t.Errorf("attempt %d has share %g, want %g", i, a.PairShare, shares[i])
		}
		if a.Better && (want == nil || a.After.CharFidelity > want.After.CharFidelity) {
			want = &res.Tried[i]
		}
	}
	if want == nil {
		t.Fatal("no share accepted; the synthetic attacker is learnable, so the test says nothing")
	}
	if !res.Better || res.PairShare != want.PairShare || res.After != want.After {
		t.Errorf("result: share %g %+v better %v, want share %g %+v", res.PairShare, res.After, res.Better, want.PairShare, want.After)
	}
	if again, err := Measure(res.Model, solvertest.Samples(64, 12), solvertest.Samples(64, 14), 2); err != nil || again != res.After {
		t.Errorf("the model returned measures %+v (%v), not its attempt's %+v", again, err, res.After)
	}
}

// Answers with nothing to learn (scrambled texts) give no fidelity gain, or
// cost clean accuracy; either way the new model is not judged better.
func TestFineTuneRefusesWorseModel(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: fine-tunes a model for several seconds")
	}
	scramble := func(s []solver.Sample) []solver.Sample {
		for i := range s {
			b := []byte(s[i].Text)
			for j := range b {
				b[j] = "abc"[(i+j*2)%3]
			}
			s[i].Text = string(b)
		}
		return s
	}
	res, err := FineTune(context.Background(), TuneConfig{
		Base: solvertest.Model(t), Pairs: scramble(solvertest.Samples(128, 11)), HeldOut: scramble(solvertest.Samples(64, 12)),
		Clean: solvertest.Samples(32, 13), CleanVal: solvertest.Samples(64, 14),
		Epochs: 2, Batch: 16, Workers: 2, LR: 1e-2, Seed: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Better {
		t.Fatalf("%+v: judged better", *res)
	}
	t.Logf("refused: %s", res.Why)
	if _, err := FineTune(context.Background(), TuneConfig{Base: solvertest.Model(t), Pairs: solvertest.Samples(5, 1), HeldOut: solvertest.Samples(5, 2)}); !errors.Is(err, ErrTooFewPairs) {
		t.Fatalf("5 held-out pairs: %v, want ErrTooFewPairs", err)
	}
}

func TestTrigger(t *testing.T) {
	last := Mark{Ran: t0.Add(time.Hour), Seen: t0}
	pair := func(min int, method string, correct bool) Pair {
		return Pair{At: t0.Add(time.Duration(min) * time.Minute), Method: method, Correct: correct}
	}
	var pairs []Pair
	for i := range 60 {
		pairs = append(pairs, pair(-5, "mifgsm", true)) // before the last run: never count
		pairs = append(pairs, pair(i+1, "mifgsm", i%4 == 0))
	}
	cases := []struct {
		name string
		tr   Trigger
		now  time.Time
		due  bool
	}{
		{"nothing set", Trigger{}, t0.Add(2 * time.Hour), false},
		{"enough new pairs", Trigger{NewPairs: 60}, t0.Add(2 * time.Hour), true},
		{"not enough new pairs", Trigger{NewPairs: 61}, t0.Add(2 * time.Hour), false},
		{"success 25% above 20%", Trigger{SuccessAbove: 0.2}, t0.Add(2 * time.Hour), true},
		{"success 25% not above 30%", Trigger{SuccessAbove: 0.3}, t0.Add(2 * time.Hour), false},
		{"too few answers to judge success", Trigger{SuccessAbove: 0.2, MinAnswers: 61}, t0.Add(2 * time.Hour), false},
		{"schedule elapsed", Trigger{Every: time.Hour}, t0.Add(2 * time.Hour), true},
		{"schedule not elapsed", Trigger{Every: 3 * time.Hour}, t0.Add(2 * time.Hour), false},
		// The schedule runs from when the last run ran, not from its answers.
		{"schedule from the run", Trigger{Every: 90 * time.Minute}, t0.Add(2 * time.Hour), false},
	}
	for _, c := range cases {
		if due, why := c.tr.Due(c.now, last, pairs); due != c.due {
			t.Errorf("%s: due %v (%s), want %v", c.name, due, why, c.due)
		}
	}
	mark := MarkAfter(t0.Add(2*time.Hour), pairs)
	if due, _ := (Trigger{Every: time.Minute, NewPairs: 1}).Due(t0.Add(3*time.Hour), mark, pairs); due {
		t.Error("due with no new answers")
	}
}

func TestPairRepeats(t *testing.T) {
	for _, c := range []struct {
		pairs, clean int
		share        float64
		want         int
	}{
		{230, 1000, 0.5, 5}, // 1150 answers next to 1000 clean
		{230, 1000, 0.25, 2},
		{2000, 1000, 0.5, 1}, // already more answers than clean captchas
		{230, 1000, 0, 1},    // off
		{230, 1000, -1, 1},
		{0, 1000, 0.5, 1},
	} {
		if got := pairRepeats(c.pairs, c.clean, c.share); got != c.want {
			t.Errorf("pairRepeats(%d, %d, %g) = %d, want %d", c.pairs, c.clean, c.share, got, c.want)
		}
	}
}

// TestJudge: the publishing rule on measurements — more faithful (by at
// least the minimum gain, counted in characters) without losing clean
// accuracy replaces the base; more faithful at a cost in clean accuracy is
// published only as a companion, when asked for and within its bound of
// the root; less faithful, or only as faithful in characters however its
// whole answers moved, never.
func TestJudge(t *testing.T) {
	cases := []struct {
		name                        string
		fidBefore, fidAfter         float64
		cleanBefore, cleanAfter     float64
		root                        float64
		companion                   bool
		wantBetter, wantAsCompanion bool
	}{
		{"faithful, clean kept", 0.20, 0.30, 0.976, 0.970, 0.976, true, true, false},
		{"not more faithful", 0.20, 0.20, 0.976, 0.976, 0.976, true, false, false},
		{"less faithful", 0.20, 0.15, 0.976, 0.976, 0.976, true, false, false},
		{"gain under the minimum", 0.20, 0.215, 0.976, 0.976, 0.976, true, false, false},
		{"clean lost, no companions", 0.20, 0.30, 0.976, 0.950, 0.976, false, false, false},
		{"clean lost, companion", 0.20, 0.30, 0.976, 0.950, 0.976, true, true, true},
		{"clean lost beyond a companion's bound", 0.20, 0.30, 0.976, 0.870, 0.976, true, false, false},
		{"bound is from the root, not the base", 0.20, 0.30, 0.900, 0.860, 0.976, true, false, false},
		{"as good as a base that is a companion: still a companion", 0.25, 0.30, 0.950, 0.945, 0.976, true, true, true},
	}
	for _, c := range cases {
		// Whole-answer fidelity moves the other way in every case: the
		// rule must not read it.
		res := &TuneResult{
			Before:            Measurement{Fidelity: 0.05, CharFidelity: c.fidBefore, CleanAccuracy: c.cleanBefore},
			After:             Measurement{Fidelity: 0, CharFidelity: c.fidAfter, CleanAccuracy: c.cleanAfter},
			RootCleanAccuracy: c.root,
		}
		judge(res, TuneConfig{MinFidelityGain: 0.02, MaxCleanDrop: 0.01, Companion: c.companion, CompanionMaxCleanDrop: 0.10})
		if res.Better != c.wantBetter || res.AsCompanion != c.wantAsCompanion {
			t.Errorf("%s: better %v companion %v (%s), want %v %v", c.name, res.Better, res.AsCompanion, res.Why, c.wantBetter, c.wantAsCompanion)
		}
	}
}

func TestPreferred(t *testing.T) {
	r := func(better bool, fid float64) *TuneResult {
		return &TuneResult{Better: better, After: Measurement{CharFidelity: fid}}
	}
	for _, c := range []struct {
		name string
		a, b *TuneResult
		want bool
	}{
		{"accepted over refused, though less faithful", r(true, 0.2), r(false, 0.5), true},
		{"refused under accepted", r(false, 0.5), r(true, 0.2), false},
		{"both accepted: the more faithful", r(true, 0.4), r(true, 0.3), true},
		{"both refused: the more faithful", r(false, 0.4), r(false, 0.3), true},
		{"a tie keeps the first", r(true, 0.3), r(true, 0.3), false},
	} {
		if got := preferred(c.a, c.b); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

// With a learner, the learner is what is fine-tuned (its architecture, not
// the base's, comes out) while "before" is still the base's measurement.
func TestFineTuneLearner(t *testing.T) {
	base := solvertest.Model(t)
	arch := solvertest.Arch()
	arch.Hidden = 24 // another architecture for the same images
	learner, err := solver.NewModel(arch, 3)
	if err != nil {
		t.Fatal(err)
	}
	cfg := TuneConfig{
		Base: base, Learner: learner, Pairs: solvertest.Samples(256, 11), HeldOut: solvertest.Samples(64, 12),
		Clean: solvertest.Samples(64, 13), CleanVal: solvertest.Samples(64, 14),
		Epochs: 2, Batch: 16, Workers: 2, LR: 1e-2, Seed: 1,
	}
	res, err := FineTune(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Model.Arch.Hidden != 24 {
		t.Errorf("fine-tuned a model with %d hidden units, want the learner's 24", res.Model.Arch.Hidden)
	}
	want, err := Measure(base, cfg.HeldOut, cfg.CleanVal, 2)
	if err != nil {
		t.Fatal(err)
	}
	if res.Before != want {
		t.Errorf("before: %+v, want the base's %+v", res.Before, want)
	}
	other := solvertest.Arch()
	other.Charset = "abd"
	if cfg.Learner, err = solver.NewModel(other, 3); err != nil {
		t.Fatal(err)
	}
	if _, err := FineTune(context.Background(), cfg); err == nil {
		t.Error("a learner with another charset: want an error")
	}
}

// A pair share refused for its clean accuracy is fine-tuned again with the
// root distilled on the clean captchas, which keeps the model's clean
// accuracy while it is fine-tuned on answers that contradict its reading
// (on images marked as adversarial captchas are by their perturbation —
// here a dark first column — the synthetic attacker reads every character
// as the next one). Only the clean captchas are taught (cleanOnly). This
// toy says nothing about how much of the answers a distilled model still
// learns — the tiny model learns the conditional mapping too slowly — which
// bench/extractlab measures on real captchas.
func TestFineTuneDistillsTheRootOnCleanCaptchas(t *testing.T) {
	w := solvertest.Arch().Width
	shift := func(s []solver.Sample) []solver.Sample {
		for i := range s {
			px := append([]uint8(nil), s[i].Pixels...)
			for y := range len(px) / w {
				px[y*w] = 0
			}
			s[i].Pixels = px
			b := []byte(s[i].Text)
			for j, c := range b {
				b[j] = "abc"[(strings.IndexByte("abc", c)+1)%3]
			}
			s[i].Text = string(b)
		}
		return s
	}
	cfg := TuneConfig{
		Base: solvertest.Model(t), Pairs: shift(solvertest.Samples(48, 11)), HeldOut: shift(solvertest.Samples(64, 12)),
		Clean: solvertest.Samples(48, 13), CleanVal: solvertest.Samples(64, 14),
		Epochs: 4, Batch: 16, Workers: 2, LR: 5e-3, Seed: 1, PairShares: []float64{0.5}, Distill: 2,
	}
	res, err := FineTune(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range res.Tried {
		t.Logf("%s: %s", a.Setting(), a.Why)
	}
	if len(res.Tried) != 2 || res.Tried[0].Distill != 0 || res.Tried[1].Distill != 2 || res.Tried[1].PairShare != 0.5 {
		t.Fatalf("attempts %+v: want the share without distillation, then, refused for clean accuracy, with it", res.Tried)
	}
	plain, distilled := res.Tried[0], res.Tried[1]
	if !strings.HasPrefix(plain.Why, "clean accuracy fell") || plain.After.CleanAccuracy > res.Before.CleanAccuracy-0.1 {
		t.Fatalf("the answers did not cost the plain fine-tuning its clean accuracy (%s): the test says nothing", plain.Why)
	}
	if distilled.After.CleanAccuracy < plain.After.CleanAccuracy+0.1 {
		t.Errorf("clean accuracy %.2f with the root distilled, %.2f without", distilled.After.CleanAccuracy, plain.After.CleanAccuracy)
	}
	cfg.Distill = -1
	if res, err := FineTune(context.Background(), cfg); err != nil || len(res.Tried) != 1 {
		t.Errorf("with distillation off: %v, %d attempts, want 1", err, len(res.Tried))
	}
	if got, want := cleanOnly(2, 3, 1), []bool{false, false, true, true, true, false}; !slices.Equal(got, want) {
		t.Errorf("cleanOnly(2, 3, 1) = %v, want %v", got, want)
	}
}
