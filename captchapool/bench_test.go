package captchapool_test

import (
	"testing"

	"github.com/advcaptcha/advcaptcha/captcha"
	"github.com/advcaptcha/advcaptcha/captchapool"
	"github.com/advcaptcha/advcaptcha/perturb"
	"github.com/advcaptcha/advcaptcha/solver"
)

// The cost of one adversarial captcha against a model of the default
// architecture (its weights do not change the cost), per method at the
// default settings otherwise, next to the clean captcha it starts from (the
// peer: what serving costs without the pool). One worker, so the figure is
// CPU time per captcha on one core.

func benchGenerate(b *testing.B, cfg *perturb.Config) {
	style := captcha.DefaultStyle()
	if err := style.Validate(); err != nil {
		b.Fatal(err)
	}
	if cfg == nil {
		b.ReportAllocs()
		for i := uint64(0); b.Loop(); i++ {
			c, err := style.Generate(i)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := captcha.EncodePNG(c.Image); err != nil {
				b.Fatal(err)
			}
		}
		return
	}
	m, err := solver.NewModel(solver.DefaultArchitecture(), 1)
	if err != nil {
		b.Fatal(err)
	}
	s, err := solver.New(m, solver.Options{Workers: 1})
	if err != nil {
		b.Fatal(err)
	}
	g := &captchapool.Generator{Style: style, Solvers: []*solver.Solver{s}, Attack: *cfg}
	if _, err := g.Generate(0); err != nil { // builds the graphs
		b.Fatal(err)
	}
	b.ReportAllocs()
	for i := uint64(1); b.Loop(); i++ {
		if _, err := g.Generate(i); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGenerateClean(b *testing.B) { benchGenerate(b, nil) }

func BenchmarkGenerateDefault(b *testing.B) {
	c := perturb.DefaultConfig()
	benchGenerate(b, &c)
}

func BenchmarkGenerateFGSM(b *testing.B) {
	c := perturb.DefaultConfig()
	c.Method = perturb.FGSM
	benchGenerate(b, &c)
}

func BenchmarkGenerateBIMNoEOT(b *testing.B) {
	c := perturb.DefaultConfig()
	c.Method, c.EOT = perturb.BIM, nil
	benchGenerate(b, &c)
}

// BenchmarkGenerateManyDefault is the pool's view: default captchas made
// by one generator on every core (GenerateMany), reported as captchas per
// second of wall time. OPENBLAS_NUM_THREADS decides whether each worker's
// products also spread over the cores.
func BenchmarkGenerateManyDefault(b *testing.B) {
	m, err := solver.NewModel(solver.DefaultArchitecture(), 1)
	if err != nil {
		b.Fatal(err)
	}
	s, err := solver.New(m, solver.Options{})
	if err != nil {
		b.Fatal(err)
	}
	g := &captchapool.Generator{Style: captcha.DefaultStyle(), Solvers: []*solver.Solver{s}, Attack: perturb.DefaultConfig()}
	const count = 16
	if _, err := g.GenerateMany(0, 2, nil); err != nil {
		b.Fatal(err)
	}
	seed := uint64(100)
	for b.Loop() {
		if _, err := g.GenerateMany(seed, count, nil); err != nil {
			b.Fatal(err)
		}
		seed += count
	}
	b.ReportMetric(float64(count*b.N)/b.Elapsed().Seconds(), "captchas/s")
}
