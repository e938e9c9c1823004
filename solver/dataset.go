package solver

import (
	"encoding/csv"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"os"
	"path/filepath"
)

// Sample is one labelled captcha: grayscale pixels (row-major, 0–255) and text.
type Sample struct {
	Pixels []uint8
	Text   string
}

// Image converts a sample to the solver's input.
func (s Sample) Image() Image {
	out := make(Image, len(s.Pixels))
	for i, v := range s.Pixels {
		out[i] = float32(v) / 255
	}
	return out
}

// LoadDataset reads DIR/labels.csv (header "file,text", files relative to DIR)
// and the PNGs it names, which must all be h×w. Texts are checked against the
// charset so that a bad row fails here, not in the middle of training.
func LoadDataset(dir string, a Architecture) ([]Sample, error) {
	f, err := os.Open(filepath.Join(dir, "labels.csv"))
	if err != nil {
		return nil, fmt.Errorf("dataset: %w", err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = 2
	head, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("dataset %s: labels.csv: %w", dir, err)
	}
	if head[0] != "file" || head[1] != "text" {
		return nil, fmt.Errorf("dataset %s: labels.csv header is %q, want \"file,text\"", dir, head)
	}
	var out []Sample
	for line := 2; ; line++ {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("dataset %s: labels.csv: %w", dir, err)
		}
		if _, err := encode(a, rec[1]); err != nil {
			return nil, fmt.Errorf("dataset %s: labels.csv line %d: %w", dir, line, err)
		}
		px, err := readGray(filepath.Join(dir, filepath.FromSlash(rec[0])), a.Height, a.Width)
		if err != nil {
			return nil, fmt.Errorf("dataset %s: labels.csv line %d: %w", dir, line, err)
		}
		out = append(out, Sample{Pixels: px, Text: rec[1]})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("dataset %s: labels.csv lists no captchas", dir)
	}
	return out, nil
}

func readGray(path string, h, w int) ([]uint8, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return grayPixels(img, h, w)
}

func grayPixels(img image.Image, h, w int) ([]uint8, error) {
	px, err := FromImage(img, h, w)
	if err != nil {
		return nil, err
	}
	out := make([]uint8, len(px))
	for i, v := range px {
		out[i] = uint8(v*255 + 0.5)
	}
	return out, nil
}
