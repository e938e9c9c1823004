package solver_test

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/advcaptcha/advcaptcha/solver"
	"github.com/advcaptcha/advcaptcha/solver/solvertest"
)

// A tiny model learns a tiny dataset, and training interrupted after an epoch
// and resumed from its checkpoint ends with exactly the same weights.
func TestTrainLearnsAndResumes(t *testing.T) {
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
