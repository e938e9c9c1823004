package extraction

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/advcaptcha/advcaptcha/captcha"
	"github.com/advcaptcha/advcaptcha/solver"
	"github.com/advcaptcha/advcaptcha/store"
)

// botAnswers logs n clean captchas served to a device labelled as a bot
// and answered "k3xm", the i-th at t0 + i minutes.
func botAnswers(t *testing.T, n int) *store.Memory {
	t.Helper()
	st, err := store.NewMemory(store.MemoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s := scenario{t: t, logs: st}
	s.append(LabelLog, LabelEvent{Kind: Labelled, Entity: "dev:bot", Reason: "webdriver", Source: SourceRule, At: t0, Expires: t0.Add(24 * time.Hour)})
	for i := range n {
		s.serveClean(fmt.Sprintf("run%02d", i), uint64(100+i), t0.Add(time.Duration(i)*time.Minute), "203.0.113.7", "bot", "k3xm")
	}
	return st
}

// A run that only writes: the answers since Since go to a temporary
// directory, which is gone when Run returns.
func TestRunWritesAnswersSince(t *testing.T) {
	st := botAnswers(t, 30)
	var log strings.Builder
	o, err := Run(context.Background(), RunConfig{Store: st, Since: t0.Add(10 * time.Minute), Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	if o.Status != StatusWritten || o.Stats.Attacker != 30 || o.Pairs != 20 || o.Result != nil {
		t.Fatalf("outcome %+v, want written, 30 attackers' answers of which 20 since", *o)
	}
	if ds := o.Dataset; ds.Train+ds.HeldOut != 20 || ds.Unusable != 0 {
		t.Fatalf("dataset %+v, want the 20 answers", ds)
	}
	_, after, ok := strings.Cut(log.String(), "\nwrote ")
	dir, _, _ := strings.Cut(after, ":")
	if !ok || !strings.Contains(log.String(), "attackers' answers since ") {
		t.Fatalf("log:\n%s", log.String())
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the temporary directory %s is still there: %v", dir, err)
	}
}

// With no store, Run fine-tunes on the dataset already in Dir, with the
// clean captchas it asked for, and writes and publishes nothing.
func TestRunOnADataset(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: fine-tunes a model for several seconds")
	}
	ctx := context.Background()
	dir := t.TempDir()
	written, err := Run(ctx, RunConfig{Store: botAnswers(t, 30), Dir: dir})
	if err != nil || written.Dataset.HeldOut == 0 {
		t.Fatalf("writing the dataset: %+v %v", written, err)
	}
	init, err := solver.NewModel(solver.DefaultArchitecture(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Run(ctx, RunConfig{Dir: dir, Tune: true, Publish: true}); err == nil {
		t.Fatal("published with no store")
	}
	var got TuneConfig
	want := &TuneResult{}
	cfg := RunConfig{Dir: dir, Tune: true, Init: init, CleanN: 4, CleanValN: 3, CleanSeed: 77,
		Tuning: TuneConfig{Epochs: 1, Workers: 2, MinHeldOut: 1, Seed: 3, PairShares: []float64{0}, Distill: -1},
		TuneFunc: func(ctx context.Context, c TuneConfig) (*TuneResult, error) {
			got = c
			res, err := FineTune(ctx, c)
			if err == nil {
				*want = *res
				return want, nil
			}
			return nil, err
		}}
	o, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got.Base != init || got.Root != init || got.Learner != nil || got.Seed != 3 || got.Epochs != 1 {
		t.Errorf("fine-tuned %v (root %v, learner %v, seed %d, epochs %d), want the initial model alone, seed 3, 1 epoch",
			got.Base, got.Root, got.Learner, got.Seed, got.Epochs)
	}
	if len(got.Pairs) != written.Dataset.Train || len(got.HeldOut) != written.Dataset.HeldOut {
		t.Errorf("fine-tuned on %d answers, %d held out; the dataset has %d and %d", len(got.Pairs), len(got.HeldOut), written.Dataset.Train, written.Dataset.HeldOut)
	}
	style := captcha.DefaultStyle()
	first, _ := style.Generate(77)
	firstVal, _ := style.Generate(77 + 4)
	if len(got.Clean) != 4 || len(got.CleanVal) != 3 || got.Clean[0].Text != first.Text || got.CleanVal[0].Text != firstVal.Text {
		t.Errorf("clean captchas: %d and %d to measure, want 4 from seed 77 and 3 from seed 81", len(got.Clean), len(got.CleanVal))
	}
	if o.Result != want || (o.Status != StatusNotBetter && o.Status != StatusNotPublished) || o.Published != nil || o.ModelPath != "" {
		t.Errorf("outcome %+v", *o)
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "model-*.crnn")); len(files) != 0 {
		t.Errorf("wrote %v into the dataset", files)
	}
}

// The watch runs once when enough new answers arrived, keeps its mark in
// the store, and a restarted watch does not count the same answers again.
func TestWatch(t *testing.T) {
	st := botAnswers(t, 12)
	cfg := RunConfig{Store: st, Dir: t.TempDir()}
	if err := Watch(context.Background(), cfg, WatchOptions{Trigger: Trigger{MinAnswers: 10}}); !errors.Is(err, ErrNoTrigger) {
		t.Fatalf("a watch with no trigger: %v", err)
	}
	for round, wantRuns := range []int{1, 0} {
		ctx, cancel := context.WithCancel(context.Background())
		var collects int
		var runs []Status
		err := Watch(ctx, cfg, WatchOptions{Trigger: Trigger{NewPairs: 5}, Poll: time.Millisecond,
			OnCollect: func(s Stats) {
				if s.Attacker != 12 {
					t.Errorf("collected %+v, want 12 attackers' answers", s)
				}
				if collects++; collects == 4 {
					cancel()
				}
			},
			OnRun: func(o *Outcome, err error) { runs = append(runs, o.Status) }})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if len(runs) != wantRuns || (wantRuns == 1 && runs[0] != StatusWritten) {
			t.Fatalf("watch %d ran %v, want %d run(s) that wrote the answers", round+1, runs, wantRuns)
		}
	}
	b, err := st.Peek(context.Background(), MarkKey)
	var m Mark
	if err != nil || json.Unmarshal(b, &m) != nil || !m.Seen.Equal(t0.Add(11*time.Minute+3*time.Second)) {
		t.Fatalf("mark %s %v, want the last answer's time", b, err)
	}
}
