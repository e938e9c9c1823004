package perturb

import (
	"encoding/json"
	"reflect"
	"testing"
)

// TestOverridesZeroTurnsOff: a setting given as 0 turns off what Config
// documents 0 as turning off, and it survives a trip through JSON (how a
// Caddyfile reaches the gateway); a setting left out keeps the default.
func TestOverridesZeroTurnsOff(t *testing.T) {
	zero, zeroI, none := 0.0, 0, []string{}
	o := Overrides{Smooth: &zero, MinSSIM: &zero, Shift: &zeroI, EOT: &none}
	b, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	var back Overrides
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, o) {
		t.Fatalf("through JSON %s: %+v, want %+v", b, back, o)
	}
	d := DefaultConfig()
	if d.Smooth == 0 || d.MinSSIM == 0 || len(d.EOT) == 0 {
		t.Fatalf("the defaults changed (%+v): this test needs smoothing, an SSIM floor and EOT on by default", d)
	}
	got := d.Apply(&back)
	if got.Smooth != 0 || got.MinSSIM != 0 || got.Shift != 0 || len(got.EOT) != 0 {
		t.Fatalf("smooth, min_ssim, shift 0 and eot off: %+v", got)
	}
	if got.Epsilon != d.Epsilon || got.Method != d.Method || got.Iterations != d.Iterations {
		t.Fatalf("settings left out changed: %+v, defaults %+v", got, d)
	}
	if !reflect.DeepEqual(d.Apply(nil), d) || !reflect.DeepEqual(d.Apply(&Overrides{}), d) {
		t.Fatal("no overrides changed the defaults")
	}
}

// TestOverridesEverySetting: each setting replaces the default, and a later
// Overrides (a command's flags) replaces what an earlier one (the
// Caddyfile's) set only where it sets something.
func TestOverridesEverySetting(t *testing.T) {
	eps, strokes, step, it, samples, shift := 12, 4, 3, 7, 5, 2
	mom, smooth, ssim, yes := 0.5, 1.5, 0.7, true
	eot := []string{"median"}
	o := Overrides{Method: BIM, Epsilon: &eps, StrokeEpsilon: &strokes, Step: &step, Iterations: &it, Momentum: &mom, Targeted: &yes,
		EOT: &eot, EOTSamples: &samples, Shift: &shift, Smooth: &smooth, MinSSIM: &ssim}
	want := Config{Method: BIM, Epsilon: 12, StrokeEpsilon: 4, Step: 3, Iterations: 7, Momentum: 0.5, Targeted: true,
		EOT: []string{"median"}, EOTSamples: 5, Shift: 2, Smooth: 1.5, MinSSIM: 0.7}
	if got := DefaultConfig().Apply(&o); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	eps2 := 20
	want.Epsilon = 20
	if got := DefaultConfig().Apply(&o).Apply(&Overrides{Epsilon: &eps2}); !reflect.DeepEqual(got, want) {
		t.Fatalf("after a later epsilon: %+v, want %+v", got, want)
	}
}

// TestWithDefaultsEqualisesEquivalentConfigs: a configuration naming a
// default explicitly attacks exactly like one leaving it out, and the two
// are equal once defaults are applied (the pool key hashes them so).
func TestWithDefaultsEqualisesEquivalentConfigs(t *testing.T) {
	a := DefaultConfig()
	b := a
	b.Momentum, b.Iterations = 1, 10
	b.Step = max(1, (25*b.Epsilon+99)/100) // ⌈2.5·ε/10⌉
	if reflect.DeepEqual(a, b) {
		t.Fatal("the test compares equal configs")
	}
	if !reflect.DeepEqual(a.WithDefaults(), b.WithDefaults()) {
		t.Fatalf("%+v and %+v attack alike but differ with defaults", a.WithDefaults(), b.WithDefaults())
	}
}
