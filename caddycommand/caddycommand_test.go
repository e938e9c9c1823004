package caddycommand

import (
	"bytes"
	"encoding/csv"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"github.com/advcaptcha/advcaptcha/captcha"
)

func TestDatasetIsReproducibleAndReadable(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	for _, d := range []string{a, b} {
		if err := WriteDataset(d, 25, 7, captcha.DefaultStyle()); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Open(filepath.Join(a, "labels.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 26 || rows[0][0] != "file" || rows[0][1] != "text" {
		t.Fatalf("labels.csv: %d rows, header %v", len(rows), rows[0])
	}
	style := captcha.DefaultStyle()
	for i, r := range rows[1:] {
		pa, err := os.ReadFile(filepath.Join(a, r[0]))
		if err != nil {
			t.Fatal(err)
		}
		pb, _ := os.ReadFile(filepath.Join(b, r[0]))
		if !bytes.Equal(pa, pb) {
			t.Fatalf("%s differs between two runs with the same seed", r[0])
		}
		if want := style.Text(7 + uint64(i)); r[1] != want {
			t.Fatalf("%s: text %q, want %q", r[0], r[1], want)
		}
		img, err := png.Decode(bytes.NewReader(pa))
		if err != nil || img.Bounds().Dx() != 100 || img.Bounds().Dy() != 30 {
			t.Fatalf("%s: %v %v", r[0], err, img.Bounds())
		}
	}
}
