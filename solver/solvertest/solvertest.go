// Package solvertest provides a small solver model that trains in seconds on
// synthetic "captchas", for the tests of packages built on the solver.
package solvertest

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"

	"github.com/advcaptcha/advcaptcha/solver"
)

// Arch is the synthetic task's architecture: 8×32 images, charset "abc".
func Arch() solver.Architecture {
	return solver.Architecture{
		Height: 8, Width: 32, Charset: "abc",
		Conv:   []solver.ConvBlock{{Filters: 8, PoolH: 2, PoolW: 2}, {Filters: 8, PoolH: 2, PoolW: 1}},
		Hidden: 16, Layers: 1, LeakySlope: 0.1, BNEpsilon: 1e-5,
	}
}

// Samples draws n texts of one to three characters over "abc" as images a
// network learns in seconds: each character fills a 5-pixel slot with its
// own pattern (a vertical bar, a block on top, a block at the bottom).
func Samples(n int, seed uint64) []solver.Sample {
	a := Arch()
	rng := rand.New(rand.NewPCG(seed, 2))
	out := make([]solver.Sample, n)
	for i := range out {
		px := make([]uint8, a.Height*a.Width)
		for j := range px {
			px[j] = 255
		}
		var text []byte
		x := 1 + rng.IntN(3)
		for range 1 + rng.IntN(3) {
			c := rng.IntN(3)
			text = append(text, "abc"[c])
			for y := 0; y < a.Height; y++ {
				for dx := 0; dx < 5; dx++ {
					if (c == 0 && dx == 2) || (c == 1 && y < 3) || (c == 2 && y >= 5) {
						px[y*a.Width+x+dx] = 0
					}
				}
			}
			x += 8
		}
		out[i] = solver.Sample{Pixels: px, Text: string(text)}
	}
	return out
}

var (
	once  sync.Once
	model *solver.Model
	err   error
)

// Model returns a model trained on Samples (trained once per process, about
// 100% accurate on fresh samples).
func Model(t testing.TB) *solver.Model {
	t.Helper()
	once.Do(func() {
		model, _, err = solver.Train(context.Background(), solver.TrainConfig{
			Arch: Arch(), Train: Samples(256, 1), Val: Samples(64, 2),
			Batch: 16, Workers: 2, Epochs: 16, LR: 1e-2, Seed: 7,
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return model
}

// UntrainedFile writes an untrained model of solver.DefaultArchitecture to
// a temporary file and returns its path: for tests of plumbing (pools,
// commands, config) whose outcome does not depend on what the model reads.
func UntrainedFile(t testing.TB) string {
	t.Helper()
	m, err := solver.NewModel(solver.DefaultArchitecture(), 1)
	if err != nil {
		t.Fatal(err)
	}
	m.Info["about"] = "untrained, for tests"
	path := filepath.Join(t.TempDir(), "untrained.crnn")
	if err := m.Save(path); err != nil {
		t.Fatal(err)
	}
	return path
}
