package caddycommand

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"

	"github.com/advcaptcha/advcaptcha/captcha"
	"github.com/advcaptcha/advcaptcha/internal/redistest"
	"github.com/advcaptcha/advcaptcha/modelregistry"
	"github.com/advcaptcha/advcaptcha/perturb"
	"github.com/advcaptcha/advcaptcha/solver"
	"github.com/advcaptcha/advcaptcha/solver/solvertest"
	"github.com/advcaptcha/advcaptcha/store"
)

// quick keeps the attacks of these tests short and attacks an untrained
// model of the default architecture: what is checked does not depend on
// the attack's strength or on what the model reads.
func quick(t *testing.T) []string {
	return []string{"--iterations", "2", "--eot", "median", "--eot-samples", "2", "--model", solvertest.UntrainedFile(t)}
}

func run(t *testing.T, ctx context.Context, args ...string) {
	t.Helper()
	if err := execute(ctx, args...); err != nil {
		t.Fatalf("%v: %v", args, err)
	}
}

func execute(ctx context.Context, args ...string) error {
	cmd := map[string]func() *cobra.Command{
		"dataset": datasetCommand, "sheet": sheetCommand, "pool": poolCommand, "eval": evalCommand,
	}[args[0]]()
	cmd.SetArgs(args[1:])
	cmd.SetContext(ctx)
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	return cmd.Execute()
}

func TestAdversarialDataset(t *testing.T) {
	dir := t.TempDir()
	run(t, context.Background(), append([]string{"dataset", "--adversarial", "--count", "4", "--seed", "5", "--epsilon", "8", "--out", dir}, quick(t)...)...)
	samples, err := solver.LoadDataset(dir, solver.DefaultArchitecture())
	if err != nil || len(samples) != 4 {
		t.Fatalf("%d samples, %v", len(samples), err)
	}
	clean := t.TempDir()
	if err := WriteDataset(clean, 4, 5, defaultStyle(t)); err != nil {
		t.Fatal(err)
	}
	cleanSamples, _ := solver.LoadDataset(clean, solver.DefaultArchitecture())
	for i, s := range samples {
		if s.Text != cleanSamples[i].Text {
			t.Fatalf("captcha %d: %q, the clean one says %q", i, s.Text, cleanSamples[i].Text)
		}
		most := 0
		for j, v := range s.Pixels {
			most = max(most, int(v)-int(cleanSamples[i].Pixels[j]), int(cleanSamples[i].Pixels[j])-int(v))
		}
		if most == 0 || most > 8 {
			t.Fatalf("captcha %d: largest change %d levels, want 1–8", i, most)
		}
	}
	var info struct {
		Description    string  `json:"description"`
		MeanSSIM       float64 `json:"mean_ssim"`
		MeanStrokeSSIM float64 `json:"mean_stroke_ssim"`
		Count          int     `json:"count"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "attack.json"))
	if err != nil || json.Unmarshal(b, &info) != nil || info.Count != 4 || info.MeanSSIM <= 0 || info.MeanSSIM > 1 ||
		info.MeanStrokeSSIM <= 0 || info.MeanStrokeSSIM >= 1 {
		t.Fatalf("attack.json %s: %v", b, err)
	}
}

func TestSheet(t *testing.T) {
	out := filepath.Join(t.TempDir(), "sheet.png")
	run(t, context.Background(), append([]string{"sheet", "--count", "2", "--methods", "fgsm,bim", "--epsilons", "4,8", "--zoom", "1", "--out", out}, quick(t)...)...)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	// 5 columns (clean + 2 methods × 2 ε) of 100 px plus padding, 2 rows.
	if got := img.Bounds(); got.Dx() != 5*108+8 || got.Dy() != 2*(30+16+8)+8 {
		t.Fatalf("sheet of %v", got)
	}
}

func TestPoolCommandFillsRedis(t *testing.T) {
	srv := redistest.Start(t)
	t.Setenv("ADVCAPTCHA_SECRET", "")
	if err := execute(context.Background(), "pool", "--redis", srv.Addr); err == nil || !strings.Contains(err.Error(), "needs the gateway's secret") {
		t.Fatalf("pool without a secret: %v", err)
	}
	t.Setenv("ADVCAPTCHA_SECRET", cmdSecret)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := execute(ctx, append([]string{"pool", "--redis", srv.Addr, "--size", "2", "--workers", "1", "--follow-models", "100ms"}, quick(t)...)...); err != nil {
			t.Error(err)
		}
	}()
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()
	deadline := time.Now().Add(time.Minute)
	for {
		keys, _ := rdb.Keys(ctx, "advc:pool:*").Result()
		if len(keys) == 1 {
			if n, _ := rdb.LLen(ctx, keys[0]).Result(); n == 2 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the pool command did not fill a pool of 2 within a minute")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A newly published version gets its own pool, filled by the same
	// command without a restart.
	st, err := store.NewRedis(store.RedisOptions{Addrs: []string{srv.Addr}, KeyPrefix: "advc:"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	m2, _ := solver.NewModel(solver.DefaultArchitecture(), 2)
	reg := testRegistry(t, st)
	if _, err := reg.Publish(ctx, m2, "", modelregistry.Version{}); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(time.Minute)
	for {
		keys, _ := rdb.Keys(ctx, "advc:pool:*").Result()
		full := 0
		for _, k := range keys {
			if n, _ := rdb.LLen(ctx, k).Result(); n == 2 {
				full++
			}
		}
		if len(keys) == 2 && full == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after a publication: pools %v, want a second one filled", keys)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A version published with a companion: its captchas are computed
	// against both and name both.
	m3, _ := solver.NewModel(solver.DefaultArchitecture(), 3)
	m4, _ := solver.NewModel(solver.DefaultArchitecture(), 4)
	if _, err := reg.Publish(ctx, m3, m2.Version(), modelregistry.Version{}, m4); err != nil {
		t.Fatal(err)
	}
	want := `"model":"` + m3.Version() + "+" + m4.Version() + `"`
	for deadline = time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		keys, _ := rdb.Keys(ctx, "advc:pool:*").Result()
		found := false
		for _, k := range keys {
			if e, _ := rdb.LIndex(ctx, k, 0).Result(); strings.Contains(e, want) && strings.Contains(e, `"mac":"`) {
				found = true
			}
		}
		if found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after a publication with a companion: no captcha with %s in pools %v", want, keys)
		}
	}
	cancel()
	<-done
}

// The eval help names every filter an attacker can be measured with.
func TestEvalHelpNamesEveryFilter(t *testing.T) {
	long := evalCommand().Long
	for _, f := range perturb.Filters {
		// A whole word: "close" inside "flatbinclose" does not count.
		if !regexp.MustCompile(`\b` + regexp.QuoteMeta(f.Name) + `\b`).MatchString(long) {
			t.Errorf("eval --help does not name the filter %q", f.Name)
		}
	}
}

func TestEvalFilter(t *testing.T) {
	dir := t.TempDir()
	if err := WriteDataset(dir, 3, 1, defaultStyle(t)); err != nil {
		t.Fatal(err)
	}
	model := solvertest.UntrainedFile(t)
	run(t, context.Background(), "eval", "--model", model, "--data", dir, "--filter", "median", "--passes", "3", "--misreads")
	cmd := evalCommand()
	cmd.SetArgs([]string{"--model", model, "--data", dir, "--filter", "sharpen"})
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	if err := cmd.Execute(); err == nil {
		t.Fatal("an unknown filter was accepted")
	}
	// The filter really changes what the solver sees.
	px := make([]uint8, 9)
	px[4] = 255 // one white pixel on black: a median filter removes it
	if got := preprocess(px, 3, 3, mustFilter(t, "median"), 1); got[4] != 0 {
		t.Fatalf("median of a lone white pixel: %d", got[4])
	}
}

func defaultStyle(t *testing.T) captcha.Style {
	s := captcha.DefaultStyle()
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	return s
}

func mustFilter(t *testing.T, name string) perturb.Filter {
	f, ok := perturb.FilterByName(name)
	if !ok {
		t.Fatalf("no filter %s", name)
	}
	return f
}

// TestPoolPrinterRate: the pool command's captchas/s is over the last
// minute — older captchas leave the figure.
func TestPoolPrinterRate(t *testing.T) {
	p := &poolPrinter{}
	t0 := time.Unix(1_000_000, 0)
	if r := p.rate(t0); r != 0 {
		t.Fatalf("one captcha: %v captchas/s, want 0 (no interval yet)", r)
	}
	p.rate(t0.Add(500 * time.Millisecond))
	if r := p.rate(t0.Add(time.Second)); r != 2 {
		t.Fatalf("three captchas in a second: %v captchas/s, want 2", r)
	}
	// Two minutes on, only the captchas of the last minute count.
	p.rate(t0.Add(2 * time.Minute))
	if r := p.rate(t0.Add(2*time.Minute + 250*time.Millisecond)); r != 4 {
		t.Fatalf("two captchas 250 ms apart after a pause: %v captchas/s, want 4", r)
	}
}
