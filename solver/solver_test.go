package solver

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"gorgonia.org/tensor"
)

// The CTC loss on cases small enough to enumerate the alignments by hand.
// TestLossAgreesWithGraph then checks gorgonia's op against this recursion.
func TestCTCLossHandComputed(t *testing.T) {
	half := math.Log(0.5)
	cases := []struct {
		name   string
		T      int
		labels []int
		want   float64
	}{
		// Two steps, classes {blank, a}, every probability ½: "a" is read by
		// the paths aa, _a and a_, so p = 3/4.
		{"a in 2 steps", 2, []int{1}, -math.Log(0.75)},
		// "aa" needs a blank between the letters: only a_a in 3 steps.
		{"aa in 3 steps", 3, []int{1, 1}, -math.Log(0.125)},
		// "a" in 3 steps: aaa, _aa, a_a is not (that is "aa"), __a, _a_, a__, aa_, … :
		// the 2³ paths minus ___ (empty) minus a_a ("aa") = 6, p = 6/8.
		{"a in 3 steps", 3, []int{1}, -math.Log(0.75)},
	}
	for _, c := range cases {
		lp := make([]float32, c.T*2)
		for i := range lp {
			lp[i] = float32(half)
		}
		if got := ctcLoss(lp, c.T, 1, 2, 0, c.labels); math.Abs(got-c.want) > 1e-6 {
			t.Errorf("%s: ctcLoss = %.6f, want %.6f", c.name, got, c.want)
		}
	}
}

// Per-image losses from our recursion (Solver.Loss) sum to the cost of
// gorgonia's CTC op in the solver's graph, at every batch size the attacks and
// training use.
func TestLossAgreesWithGraph(t *testing.T) {
	a := tinyArch()
	m := perturbedModel(t, a, 5)
	all := randomImages(3, a.Height, a.Width, 6)
	allTexts := []string{"abc", "a", "bb"}
	for n := 1; n <= 3; n++ {
		imgs, texts := all[:n], allTexts[:n]
		s, err := New(m, Options{Workers: 1, Batch: n})
		if err != nil {
			t.Fatal(err)
		}
		losses, err := s.Loss(imgs, texts)
		if err != nil {
			t.Fatal(err)
		}
		g, err := s.InputGradient(imgs, texts)
		if err != nil {
			t.Fatal(err)
		}
		var sum float64
		for i := range losses {
			sum += losses[i]
			if math.Abs(losses[i]-g.Loss[i]) > 1e-4*math.Abs(losses[i]) || losses[i] <= 0 {
				t.Errorf("batch %d image %d: Loss %.5f, InputGradient's loss %.5f", n, i, losses[i], g.Loss[i])
			}
		}
		gr, err := buildGraph(a, modeGradient, n, tensor.Float32)
		if err != nil {
			t.Fatal(err)
		}
		gr.setWeights(m)
		batch := make([][]float32, n)
		for i := range batch {
			batch[i] = imgs[i]
		}
		gr.setInput(batch)
		if err := gr.setTargets(texts); err != nil {
			t.Fatal(err)
		}
		if err := gr.run(); err != nil {
			t.Fatal(err)
		}
		if total := float64(values32(gr.cost)[0]); math.Abs(sum-total) > 1e-4*total {
			t.Errorf("batch %d: sum of per-image losses %.5f, gorgonia's CTC cost %.5f", n, sum, total)
		}
	}
}

func TestSaveLoadGivesIdenticalPredictions(t *testing.T) {
	a := tinyArch()
	m := perturbedModel(t, a, 11)
	m.Info["about"] = "test"
	path := filepath.Join(t.TempDir(), "m.crnn")
	if err := m.Save(path); err != nil {
		t.Fatal(err)
	}
	l, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if l.Info["about"] != "test" || l.Version() != m.Version() {
		t.Errorf("loaded info %v version %s, want about=test and %s", l.Info, l.Version(), m.Version())
	}
	imgs := randomImages(5, a.Height, a.Width, 12)
	s1, _ := New(m, Options{})
	s2, _ := New(l, Options{})
	p1, err1 := s1.Loss(imgs, []string{"a", "b", "c", "ab", "abc"})
	p2, err2 := s2.Loss(imgs, []string{"a", "b", "c", "ab", "abc"})
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	for i := range p1 {
		if p1[i] != p2[i] {
			t.Errorf("image %d: loss %v before saving, %v after loading", i, p1[i], p2[i])
		}
	}
}

// rewriteHeader returns a model file whose JSON header was edited, with a
// valid checksum, to reach the checks behind the checksum.
func rewriteHeader(b []byte, edit func(string) string) []byte {
	p := len(fileMagic)
	hlen := int(binary.LittleEndian.Uint32(b[p+4:]))
	hdr := edit(string(b[p+8 : p+8+hlen]))
	var out bytes.Buffer
	out.Write(b[:p+4])
	binary.Write(&out, binary.LittleEndian, uint32(len(hdr)))
	out.WriteString(hdr)
	out.Write(b[p+8+hlen : len(b)-32])
	return withChecksum(out.Bytes())
}

func TestLoadRejectsBadFiles(t *testing.T) {
	m := perturbedModel(t, tinyArch(), 13)
	good := m.Marshal()
	dir := t.TempDir()
	corrupt := append([]byte(nil), good...)
	corrupt[len(corrupt)/2] ^= 0x40
	version := append([]byte(nil), good...)
	binary.LittleEndian.PutUint32(version[len(fileMagic):], 7)
	nan := append([]byte(nil), good[:len(good)-32]...)
	binary.LittleEndian.PutUint32(nan[len(nan)-4:], math.Float32bits(float32(math.NaN())))
	cases := map[string]struct {
		data []byte
		want string
	}{
		"truncated":      {good[:len(good)-100], "truncated"},
		"header only":    {good[:40], "truncated"},
		"corrupt":        {corrupt, "checksum mismatch"},
		"not a model":    {[]byte("<html>not found</html>"), "not an advcaptcha solver model"},
		"empty":          {nil, "not an advcaptcha solver model"},
		"version":        {version, "format version 7"},
		"nan":            {withChecksum(nan), "NaN"},
		"shape":          {rewriteHeader(good, func(h string) string { return strings.Replace(h, `"hidden":5`, `"hidden":6`, 1) }), "the architecture needs"},
		"bad arch":       {rewriteHeader(good, func(h string) string { return strings.Replace(h, `"layers":2`, `"layers":0`, 1) }), "layers 0"},
		"bad json":       {rewriteHeader(good, func(h string) string { return h[:10] }), "header"},
		"trailing bytes": {withChecksum(append(append([]byte(nil), good[:len(good)-32]...), 1, 2, 3, 4)), "bytes of weights"},
	}
	for name, c := range cases {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, c.data, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Load(path)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: Load error %v, want one naming the file and saying %q", name, err, c.want)
		}
	}
	if _, err := Load(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	if err := m.Reads(8, 16, "abc"); err != nil {
		t.Errorf("Reads of its own style: %v", err)
	}
	if err := m.Reads(30, 100, "abc"); err == nil || !strings.Contains(err.Error(), "8×16") {
		t.Errorf("Reads of another size: %v", err)
	}
	if err := m.Reads(8, 16, "abcd"); err == nil || !strings.Contains(err.Error(), "charset") {
		t.Errorf("Reads of another charset: %v", err)
	}
}

func withChecksum(b []byte) []byte {
	sum := sha256.Sum256(b)
	return append(append([]byte(nil), b...), sum[:]...)
}

// Several goroutines share one solver: results equal the serial ones and the
// model's weights are never written.
func TestConcurrentUse(t *testing.T) {
	a := tinyArch()
	m := perturbedModel(t, a, 17)
	before := m.Version()
	s, err := New(m, Options{Workers: 3, Batch: 4})
	if err != nil {
		t.Fatal(err)
	}
	imgs := randomImages(6, a.Height, a.Width, 18)
	texts := []string{"a", "b", "c", "ab", "bc", "ca"}
	wantP, err := s.Predict(imgs)
	if err != nil {
		t.Fatal(err)
	}
	wantG, err := s.InputGradient(imgs, texts)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5 {
				if w%2 == 0 {
					p, err := s.Predict(imgs)
					if err != nil || p[5] != wantP[5] || p[0] != wantP[0] {
						t.Errorf("concurrent Predict: %v %v", p, err)
					}
				} else {
					g, err := s.InputGradient(imgs, texts)
					if err != nil || g.Grads[5][7] != wantG.Grads[5][7] || g.Loss[2] != wantG.Loss[2] {
						t.Errorf("concurrent InputGradient differs (%v)", err)
					}
				}
			}
		}()
	}
	wg.Wait()
	if m.Version() != before {
		t.Error("running the solver changed the model's weights")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, l := range s.idle {
		if len(l) > 3 {
			t.Errorf("%d idle graphs for %v, want at most one per worker", len(l), k)
		}
	}
}

func TestBadInput(t *testing.T) {
	s, _ := New(perturbedModel(t, tinyArch(), 19), Options{})
	if _, err := s.Predict([]Image{make(Image, 10)}); err == nil || !strings.Contains(err.Error(), "8×16") {
		t.Errorf("wrong image size: %v", err)
	}
	img := randomImages(1, 8, 16, 1)
	if _, err := s.InputGradient(img, []string{"abz"}); err == nil || !strings.Contains(err.Error(), "not in the charset") {
		t.Errorf("text outside the charset: %v", err)
	}
	// 8 steps cannot hold "aaaaa" (9 steps with the blanks between repeats).
	if _, err := s.InputGradient(img, []string{"aaaaa"}); err == nil || !strings.Contains(err.Error(), "steps") {
		t.Errorf("text too long for the sequence: %v", err)
	}
	if _, err := s.Loss(img, []string{"a", "b"}); err == nil {
		t.Error("Loss accepted 1 image and 2 texts")
	}
}

// FuzzUnmarshal: a model file is either rejected with ErrModel or loads
// into a model that writes back a file that loads again.
func FuzzUnmarshal(f *testing.F) {
	m, err := NewModel(fuzzArch(), 1)
	if err != nil {
		f.Fatal(err)
	}
	good := m.Marshal()
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte("ADVCRNN\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Unmarshal(b)
		if err != nil {
			if !errors.Is(err, ErrModel) {
				t.Fatalf("error %v is not ErrModel", err)
			}
			return
		}
		if _, err := Unmarshal(m.Marshal()); err != nil {
			t.Fatalf("a loaded model does not load again: %v", err)
		}
	})
}

func fuzzArch() Architecture {
	return Architecture{
		Height: 8, Width: 16, Charset: "ab",
		Conv:   []ConvBlock{{Filters: 2, PoolH: 2, PoolW: 2}},
		Hidden: 2, Layers: 1, LeakySlope: 0.1, BNEpsilon: 1e-5,
	}
}
