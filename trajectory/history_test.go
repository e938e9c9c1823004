package trajectory

import (
	"encoding/csv"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
)

func TestJudgeHistory(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	same := make([]float64, 8)
	for i := range same {
		same[i] = 800 + 10*rng.Float64() // a script that "varies" by ±0.6%
	}
	if r, ok := JudgeHistory(same); !ok || !r.Certain {
		t.Fatalf("near-identical durations not caught: %+v", r)
	}
	if _, ok := JudgeHistory(same[:4]); ok {
		t.Fatal("judged from too few slides")
	}
	varied := []float64{640, 910, 720, 1300, 580, 820}
	if r, ok := JudgeHistory(varied); ok {
		t.Fatalf("varied durations refused: %+v", r)
	}
}

// TestJudgeHistoryOnPeople runs the rule over each person's slides in the
// development data, in windows of HistoryKeep: no person's history may be
// judged a machine.
func TestJudgeHistoryOnPeople(t *testing.T) {
	f, err := os.Open("testdata/human_durations.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	byUser := map[string][]float64{}
	for _, r := range rows[1:] {
		d, err := strconv.ParseFloat(r[2], 64)
		if err != nil {
			t.Fatal(err)
		}
		byUser[r[0]+"/"+r[1]] = append(byUser[r[0]+"/"+r[1]], d)
	}
	windows, flagged := 0, 0
	for _, ds := range byUser {
		for i := 0; i+historyMinSlides <= len(ds); i++ {
			w := ds[i:min(len(ds), i+HistoryKeep)]
			windows++
			if _, ok := JudgeHistory(w); ok {
				flagged++
			}
		}
	}
	t.Logf("%d people, %d history windows, %d judged machines", len(byUser), windows, flagged)
	if flagged > 0 {
		t.Fatalf("%d of %d human history windows judged machines", flagged, windows)
	}
}
