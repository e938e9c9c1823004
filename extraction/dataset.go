package extraction

import (
	"crypto/sha256"
	"encoding/csv"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// HeldOutShare is the share of pairs kept out of training to measure
// fidelity. Which pairs is decided by a hash of the challenge id, so a
// pair stays on its side across runs and a model is never measured on
// answers it was trained on.
const HeldOutShare = 5 // one pair in five

// HeldOut reports whether the pair with this id is kept for measuring.
func HeldOut(id string) bool {
	sum := sha256.Sum256([]byte(id))
	return sum[0]%HeldOutShare == 0
}

// DatasetStats counts what WriteDataset wrote.
type DatasetStats struct {
	Train, HeldOut int
	// Unusable answers cannot be training labels: empty, too long, or
	// with characters outside the charset.
	Unusable int
}

// WriteDataset writes the pairs as two datasets in the labels.csv format
// that `advcaptcha train` and `eval` read, labelled with the attacker's
// answers: dir/train and dir/heldout. dir/pairs.csv lists every pair with
// its metadata. Images are named by challenge id, and every file is
// written to a temporary name and renamed, so rerunning after a crash
// rewrites the same files and never leaves a half-written one.
func WriteDataset(dir string, pairs []Pair, charset string, maxLen int) (DatasetStats, error) {
	var st DatasetStats
	if len(pairs) == 0 {
		return st, errors.New("no attacker answers to write")
	}
	rows := map[string][][2]string{"train": nil, "heldout": nil}
	for sub := range rows {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return st, err
		}
	}
	meta := [][]string{{"id", "split", "truth", "answer", "correct", "method", "model", "latency_ms", "ip", "device", "at", "reason"}}
	for _, p := range pairs {
		split := "train"
		if HeldOut(p.ID) {
			split = "heldout"
		}
		usable := usableAnswer(p.Answer, charset, maxLen)
		if !usable {
			st.Unusable++
			split = "unusable"
		}
		meta = append(meta, []string{p.ID, split, p.Truth, p.Answer, strconv.FormatBool(p.Correct), p.Method, p.Model,
			strconv.FormatInt(p.LatencyMS, 10), p.IP, p.Device, p.At.UTC().Format(time.RFC3339Nano), p.Reason})
		if !usable {
			continue
		}
		name := p.ID + ".png"
		if err := writeFileAtomic(filepath.Join(dir, split, name), p.PNG); err != nil {
			return st, err
		}
		rows[split] = append(rows[split], [2]string{name, p.Answer})
	}
	st.Train, st.HeldOut = len(rows["train"]), len(rows["heldout"])
	for sub, r := range rows {
		out := [][]string{{"file", "text"}}
		for _, row := range r {
			out = append(out, row[:])
		}
		if err := writeCSV(filepath.Join(dir, sub, "labels.csv"), out); err != nil {
			return st, err
		}
	}
	return st, writeCSV(filepath.Join(dir, "pairs.csv"), meta)
}

func usableAnswer(a, charset string, maxLen int) bool {
	if a == "" || len(a) > maxLen {
		return false
	}
	for _, r := range a {
		if !strings.ContainsRune(charset, r) {
			return false
		}
	}
	return true
}

func writeCSV(path string, rows [][]string) error {
	var b strings.Builder
	w := csv.NewWriter(&b)
	if err := w.WriteAll(rows); err != nil {
		return err
	}
	return writeFileAtomic(path, []byte(b.String()))
}

// writeFileAtomic writes data to path through a synced temporary file.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
