package solver_test

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/advcaptcha/advcaptcha/solver"
	"github.com/advcaptcha/advcaptcha/solver/solvertest"
)

// A tiny model learns a tiny dataset, and training interrupted after an epoch
// and resumed from its checkpoint ends with exactly the same weights.
func TestTrainLearnsAndResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: trains or attacks a model for several seconds")
	}
	train, val := solvertest.Samples(256, 1), solvertest.Samples(100, 2)
	cfg := solver.TrainConfig{Arch: solvertest.Arch(), Train: train, Val: val, Batch: 16, Workers: 2, Epochs: 16, LR: 1e-2, Seed: 7}
	full, hist, err := solver.Train(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	last := hist[len(hist)-1]
	t.Logf("after %d epochs: loss %.3f, validation %.1f%% texts, %.1f%% chars", len(hist), last.Loss, 100*last.Accuracy, 100*last.CharAcc)
	if last.Accuracy < 0.9 {
		t.Fatalf("validation accuracy %.2f after %d epochs, want ≥ 0.9", last.Accuracy, len(hist))
	}
	if hist[0].Loss <= last.Loss {
		t.Errorf("loss did not fall: %.3f → %.3f", hist[0].Loss, last.Loss)
	}

	ck := filepath.Join(t.TempDir(), "m.ckpt")
	ctx, cancel := context.WithCancel(context.Background())
	cfg.Checkpoint = ck
	cfg.OnEpoch = func(r solver.EpochResult, _ *solver.Model) {
		if r.Epoch == 2 {
			cancel()
		}
	}
	if _, _, err := solver.Train(ctx, cfg); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted training returned %v", err)
	}
	cfg.OnEpoch, cfg.Resume = nil, true
	resumed, hist2, err := solver.Train(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(hist2) != len(hist) {
		t.Errorf("resumed run recorded %d epochs, want %d", len(hist2), len(hist))
	}
	if !bytes.Equal(full.Marshal(), resumed.Marshal()) {
		t.Error("the resumed model differs from the uninterrupted one")
	}
}

// Distilling a teacher holds a fine-tuned model to it: fine-tuned on
// answers that contradict what it reads (every character shifted, as a
// poisoning attacker would answer), a model forgets far less of reading
// clean samples when its teacher — itself before fine-tuning — is distilled
// on the same images.
func TestTrainDistillationHoldsTheModelToItsTeacher(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: trains or attacks a model for several seconds")
	}
	teacher := solvertest.Model(t)
	charset := solvertest.Arch().Charset
	var train []solver.Sample
	for _, s := range solvertest.Samples(96, 11) {
		shifted := []byte(s.Text)
		for i, c := range shifted {
			shifted[i] = charset[(strings.IndexByte(charset, c)+1)%len(charset)]
		}
		train = append(train, solver.Sample{Pixels: s.Pixels, Text: string(shifted)})
	}
	fresh := solvertest.Samples(100, 12)
	accuracy := func(m *solver.Model) float64 {
		s, err := solver.New(m, solver.Options{})
		if err != nil {
			t.Fatal(err)
		}
		e, err := solver.Evaluate(s, fresh)
		if err != nil {
			t.Fatal(err)
		}
		if len(e.Misreads) != e.Total-e.Solved {
			t.Fatalf("%d misreads listed for %d of %d solved", len(e.Misreads), e.Solved, e.Total)
		}
		for _, mr := range e.Misreads {
			if mr.Text != fresh[mr.Index].Text || mr.Read == mr.Text {
				t.Fatalf("misread %+v: sample %d is %q", mr, mr.Index, fresh[mr.Index].Text)
			}
		}
		return float64(e.Solved) / float64(e.Total)
	}
	cfg := solver.TrainConfig{Init: teacher, Train: train, Batch: 16, Workers: 2, Epochs: 2, LR: 3e-3, Seed: 8}
	plain, _, err := solver.Train(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Teacher, cfg.TeacherWeight = teacher, 1
	distilled, _, err := solver.Train(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	before, after, held := accuracy(teacher), accuracy(plain), accuracy(distilled)
	t.Logf("clean accuracy: teacher %.0f%%, fine-tuned on shifted answers %.0f%%, the same with the teacher distilled %.0f%%", 100*before, 100*after, 100*held)
	if before < 0.9 || after > before-0.3 {
		t.Fatalf("the setting does not make the model forget: %.2f → %.2f", before, after)
	}
	if held < after+0.2 {
		t.Fatalf("distillation kept %.2f of clean accuracy, fine-tuning alone %.2f", held, after)
	}

	cfg.Teach = []bool{true}
	if _, _, err := solver.Train(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "Teach") {
		t.Fatalf("a Teach of the wrong length: %v", err)
	}
	other, err := solver.NewModel(solver.DefaultArchitecture(), 1)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Teach, cfg.Teacher = nil, other
	if _, _, err := solver.Train(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "teacher") {
		t.Fatalf("a teacher of another architecture: %v", err)
	}
}

// Evaluate lists exactly the samples read wrong, each with its text and
// what was read, in the samples' order.
func TestEvaluateListsMisreads(t *testing.T) {
	m, err := solver.NewModel(solvertest.Arch(), 3)
	if err != nil {
		t.Fatal(err)
	}
	s, err := solver.New(m, solver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	samples := solvertest.Samples(12, 21)
	imgs := make([]solver.Image, len(samples))
	for i, smp := range samples {
		imgs[i] = smp.Image()
	}
	preds, err := s.Predict(imgs)
	if err != nil {
		t.Fatal(err)
	}
	// An untrained model reads (almost) nothing right; label a third of
	// the samples with what it reads so that some are solved.
	for i := 0; i < len(samples); i += 3 {
		samples[i].Text = preds[i].Text
	}
	var want []solver.Misread
	for i, smp := range samples {
		if preds[i].Text != smp.Text {
			want = append(want, solver.Misread{Index: i, Text: smp.Text, Read: preds[i].Text})
		}
	}
	e, err := solver.Evaluate(s, samples)
	if err != nil {
		t.Fatal(err)
	}
	if e.Solved != len(samples)-len(want) || !slices.Equal(e.Misreads, want) {
		t.Fatalf("solved %d, misreads %+v; want %d solved and %+v", e.Solved, e.Misreads, len(samples)-len(want), want)
	}
	if len(want) == 0 || len(want) == len(samples) {
		t.Fatalf("%d of %d misread: the test needs both kinds", len(want), len(samples))
	}
}
