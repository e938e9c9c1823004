package captcha

import (
	"bytes"
	"strconv"
	"testing"

	dchest "github.com/dchest/captcha"
)

// The peer is github.com/dchest/captcha, the most used Go captcha package
// (digits only, paletted PNG). Both are measured rendering and encoding a
// PNG, at our default size (100×30) and at dchest's default (240×80).

func benchOurs(b *testing.B, w, h int) {
	s := DefaultStyle()
	s.Width, s.Height = w, h
	if err := s.Validate(); err != nil {
		b.Fatal(err)
	}
	var bytesOut int
	seed := uint64(0)
	b.ReportAllocs()
	for b.Loop() {
		c, err := s.Generate(seed)
		if err != nil {
			b.Fatal(err)
		}
		p, err := EncodePNG(c.Image)
		if err != nil {
			b.Fatal(err)
		}
		bytesOut += len(p)
		seed++
	}
	b.ReportMetric(float64(bytesOut)/float64(seed), "png-bytes")
}

func benchDchest(b *testing.B, w, h int) {
	var bytesOut int
	n := 0
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		img := dchest.NewImage(strconv.Itoa(n), dchest.RandomDigits(6), w, h)
		buf.Reset()
		if _, err := img.WriteTo(&buf); err != nil {
			b.Fatal(err)
		}
		bytesOut += buf.Len()
		n++
	}
	b.ReportMetric(float64(bytesOut)/float64(n), "png-bytes")
}

func BenchmarkRender100x30(b *testing.B)       { benchOurs(b, 100, 30) }
func BenchmarkDchestRender100x30(b *testing.B) { benchDchest(b, 100, 30) }
func BenchmarkRender240x80(b *testing.B)       { benchOurs(b, 240, 80) }
func BenchmarkDchestRender240x80(b *testing.B) { benchDchest(b, 240, 80) }
