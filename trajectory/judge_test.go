package trajectory

import (
	"bufio"
	"encoding/json"
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// Acceptance ceilings per generated family, on the committed sample of the
// held-out sets (testdata/generated, written by `bench/lab
// trajectory/judgetool sample` from bench/trajectory's held-out seeds
// and settings, which training never sees). The targets are
// ghost-cursor and WindMouse ≤ 10%, scripted ≤ 1%, human-timed paths
// ≤ 20%; where the judge does not meet a target yet, the ceiling is where
// it stands (RESULTS.md) so that a regression fails, and says so.
var familyCeilings = map[string]struct {
	max  float64
	note string
}{
	"ghostcursor_default": {0.10, "target"},
	"ghostcursor_random":  {0.10, "target"},
	"windmouse_npm":       {0.10, "target"},
	"windmouse_canonical": {0.10, "target"},
	"scripted_own":        {0.01, "target"},
	"minjerk_noise":       {0.10, "no target; v4 0.8% of 400 on the fifth split (v3-q0.99 0.8%)"},
	"sigma_lognormal":     {0.20, "no target; v4 7.0% of 400 on the fifth split (v3-q0.99 9.8%)"},
	"bezier_eased":        {0.35, "no target; v4 7.0% of 400 on the fifth split (v3-q0.99 16.8%); 9 of these 50 (seen splits); v3-q0.99's 13 would pass too: only the human-timed ceiling tells v4 from v3"},
	// Through headless Chromium over CDP (bench/trajectory/browser.sh check,
	// seed 2; v5's check, looked at once: 0, 0, 0, 4 and 0% of 50; v4 took
	// 40% of ghost-cursor and 56% of minimum jerk).
	"browser_ghostcursor":       {0.10, "target; v5 0% of 50, v4 40%"},
	"browser_ghostcursorrandom": {0.10, "target; v5 0% of 50 (25 here), v4 14%"},
	"browser_windmouse":         {0.10, "target; v5 0% of 50 (25 here), v4 0%"},
	"browser_bezier":            {0.20, "humanised target; v5 0% of 50, v4 8%"},
	"browser_minjerk":           {0.20, "humanised target; v5 4% of 50, v4 56%"},
	// ghost-cursor-playwright, a library no training set has, and kinds
	// collected with two busy loops beside a nice-10 browser (LOAD=2; seed 2,
	// looked at for v6, which was not shipped: trajectory/RESULTS.md).
	"browser_ghostcursorplaywright":     {0.10, "target; v5 0% of 50"},
	"browser_ghostcursorplaywrightload": {0.12, "target 10% NOT met: v5 12% of 50 (6); on the real page under load 13–20% (seeds 3–5)"},
	"browser_ghostcursorload":           {0.10, "target; v5 10% of 50, at the target"},
	"browser_minjerkload":               {0.20, "humanised target; v5 4% of these 25 (8% of 50)"},
	"ghostcursor_humantime":             {0.30, "target 20%: v4 7.2% of 400 on the fifth split (v3-q0.99 18.5%), 23.2% for v3-q0.99 on the fourth; 8 of these 50 (seen splits), v3-q0.99 19 (fails)"},
}

func loadJSONL(t *testing.T, path string) []Trajectory {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []Trajectory
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 4<<20)
	for sc.Scan() {
		var body struct {
			Points [][]float64 `json:"points"`
		}
		if err := json.Unmarshal(sc.Bytes(), &body); err != nil {
			t.Fatal(err)
		}
		tr, err := FromArrays(body.Points)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, tr)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestGeneratedFamilies(t *testing.T) {
	files, _ := filepath.Glob("testdata/generated/*.jsonl")
	if len(files) < len(familyCeilings) {
		t.Fatalf("%d generated families in testdata/generated, want %d", len(files), len(familyCeilings))
	}
	for _, fn := range files {
		fam := strings.TrimSuffix(filepath.Base(fn), ".jsonl")
		c, ok := familyCeilings[fam]
		if !ok {
			t.Errorf("%s: no ceiling for this family", fam)
			continue
		}
		drags := loadJSONL(t, fn)
		acc := 0
		for _, d := range drags {
			if r := Score(d); r.Accepted() {
				acc++
			}
		}
		rate := float64(acc) / float64(len(drags))
		t.Logf("%-22s accepted %3d/%d = %5.1f%% (ceiling %.0f%%, %s)", fam, acc, len(drags), 100*rate, 100*c.max, c.note)
		if rate > c.max {
			t.Errorf("%s: accepted %.1f%%, ceiling %.0f%% (%s)", fam, 100*rate, 100*c.max, c.note)
		}
	}
}

var heldOutDigits = regexp.MustCompile(`\d+`)

// heldOutUser is bench/trajectory/split.js's rule.
func heldOutUser(source, user string) bool {
	if source == "balabit" {
		return user == "user21" || user == "user29"
	}
	n, _ := strconv.Atoi(heldOutDigits.FindString(user))
	return n%3 == 0
}

// TestPeople runs over the shared human drags when they are present (they
// stay outside the repository): every source, and the users held out of
// training, accepted ≥ 98%.
func TestPeople(t *testing.T) {
	path := "../../shared/data/human_drags_dev.jsonl"
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		// A clean clone has no shared data: the recorded human drags
		// committed in testdata stand in (fewer, one source).
		path = "testdata/human_drags_sample.jsonl"
		f, err = os.Open(path)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("people: %s", path)
	defer f.Close()
	type tally struct{ n, acc int }
	groups := map[string]*tally{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 4<<20)
	for sc.Scan() {
		var d struct {
			Source, User string
			Points       [][]float64
		}
		if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
			t.Fatal(err)
		}
		tr, err := FromArrays(d.Points)
		if err != nil {
			t.Fatal(err)
		}
		r := Score(tr)
		ok := r.Accepted()
		keys := []string{d.Source}
		if heldOutUser(d.Source, d.User) {
			keys = append(keys, "held-out users")
		}
		for _, k := range keys {
			if groups[k] == nil {
				groups[k] = &tally{}
			}
			groups[k].n++
			if ok {
				groups[k].acc++
			}
		}
	}
	for k, g := range groups {
		rate := float64(g.acc) / float64(g.n)
		t.Logf("%-16s accepted %4d/%d = %5.1f%%", k, g.acc, g.n, 100*rate)
		if rate < 0.98 {
			t.Errorf("%s: accepted %.1f%%, want ≥ 98%%", k, 100*rate)
		}
	}
}

func TestJudgeModel(t *testing.T) {
	m := JudgeModel()
	if m.Version == "" || m.Training == "" || m.Calibration == "" || len(m.Trees) == 0 {
		t.Fatalf("model %q lacks its version, training command, calibration or trees", m.Version)
	}
	if !(0 < m.Clean && m.Clean < m.Refuse && m.Refuse < 1) {
		t.Fatalf("thresholds clean %v, refuse %v", m.Clean, m.Refuse)
	}
	if s := m.ScoreOf(m.Clean); math.Abs(s-20) > 1e-9 {
		t.Errorf("ScoreOf(clean) = %v, want 20", s)
	}
	if s := m.ScoreOf(m.Refuse); math.Abs(s-Refuse) > 1e-9 {
		t.Errorf("ScoreOf(refuse) = %v, want %d", s, Refuse)
	}
	prev := -1.0
	for p := 0.0; p <= 1; p += 0.001 {
		s := m.ScoreOf(p)
		if s < prev || s < 0 || s > 100 {
			t.Fatalf("ScoreOf not monotone in [0, 100] at p %v: %v after %v", p, s, prev)
		}
		prev = s
	}
	// Missing inputs (NaN) are scored, not a panic or NaN.
	var x Inputs
	for i := range x {
		x[i] = math.NaN()
	}
	if p := m.Prob(&x, nil); math.IsNaN(p) || p < 0 || p > 1 {
		t.Fatalf("Prob of all-missing inputs = %v", p)
	}
}

// TestLoadedClient: the same drag delivered by a loaded client — events
// batched onto one timestamp, some dropped — is judged alike: the verdict
// on a generated family's drags does not flip from refused to accepted by
// timing damage alone, nor the other way for people (TestPeople covers
// them where their data is present).
func TestLoadedClient(t *testing.T) {
	drags := loadJSONL(t, "testdata/generated/ghostcursor_default.jsonl")
	flipped := 0
	for _, d := range drags {
		var damaged Trajectory
		for i, p := range d {
			if i > 0 && i < len(d)-1 && i%7 == 3 {
				continue // dropped
			}
			if i > 0 && i%5 == 0 {
				p.T = damaged[len(damaged)-1].T // batched
			}
			damaged = append(damaged, p)
		}
		if r := Score(damaged); r.Accepted() {
			flipped++
		}
	}
	if rate := float64(flipped) / float64(len(drags)); rate > 0.10 {
		t.Errorf("ghost-cursor drags with batched and dropped events accepted %.0f%%, want ≤ 10%%", 100*rate)
	}
}
