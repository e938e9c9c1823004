package solver

import (
	"math/rand/v2"
	"testing"
)

func randomImages(n, h, w int, seed uint64) []Image {
	rng := rand.New(rand.NewPCG(seed, 1))
	out := make([]Image, n)
	for i := range out {
		out[i] = make(Image, h*w)
		for j := range out[i] {
			out[i][j] = rng.Float32()
		}
	}
	return out
}

func BenchmarkForward1(b *testing.B) {
	m, _ := NewModel(DefaultArchitecture(), 1)
	s, _ := New(m, Options{Workers: 1, Batch: 1})
	imgs := randomImages(1, 30, 100, 1)
	for b.Loop() {
		if _, err := s.Predict(imgs); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGradient1(b *testing.B) {
	m, _ := NewModel(DefaultArchitecture(), 1)
	s, _ := New(m, Options{Workers: 1, Batch: 1})
	imgs := randomImages(1, 30, 100, 1)
	for b.Loop() {
		if _, err := s.InputGradient(imgs, []string{"abc23"}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGradient8(b *testing.B) {
	m, _ := NewModel(DefaultArchitecture(), 1)
	s, _ := New(m, Options{Workers: 1, Batch: 8})
	imgs := randomImages(8, 30, 100, 1)
	texts := []string{"abc23", "xyz", "hhhh", "a2b3c4", "mmnn", "pqrs", "tuvw", "2345"}
	s.InputGradient(imgs, texts)
	for b.Loop() {
		if _, err := s.InputGradient(imgs, texts); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTrainStep32(b *testing.B) {
	a := DefaultArchitecture()
	var samples []Sample
	for i, img := range randomImages(64, 30, 100, 2) {
		px := make([]uint8, len(img))
		for j, v := range img {
			px[j] = uint8(v * 255)
		}
		samples = append(samples, Sample{px, []string{"abc23", "xyz", "hhhh", "a2b3c4"}[i%4]})
	}
	for b.Loop() {
		_, _, err := Train(b.Context(), TrainConfig{Arch: a, Train: samples, Batch: 32, Epochs: 1, Seed: 1})
		if err != nil {
			b.Fatal(err)
		}
	}
}
