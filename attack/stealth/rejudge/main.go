// Command rejudge re-judges the fingerprints that drive.js --fingerprint
// printed with this tree's riskscore.JudgeFingerprint, on the fingerprint
// alone: refused (>= 20 points), certain, and how many distinct certain
// findings each session drew (so how many checks must fail before it
// passes).
//
//	cd attack && go run ./stealth/rejudge stealth/out/after-*.jsonl
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"sort"

	"github.com/advcaptcha/advcaptcha/riskscore"
)

func main() {
	total, refused, certain := 0, 0, 0
	redundancy := map[int]int{} // distinct certain findings per session → sessions
	minOf := map[int][]string{}
	for _, f := range os.Args[1:] {
		fh, err := os.Open(f)
		if err != nil {
			panic(err)
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(make([]byte, 1<<20), 1<<22)
		for sc.Scan() {
			var rec struct {
				Config, Profile string
				Fingerprint     *riskscore.Fingerprint
			}
			if json.Unmarshal(sc.Bytes(), &rec) != nil || rec.Fingerprint == nil || rec.Config == "plain" {
				continue
			}
			pts, cert := 0.0, false
			var names []string
			for _, fd := range riskscore.JudgeFingerprint(rec.Fingerprint, rec.Fingerprint.UA) {
				pts += fd.Points
				cert = cert || fd.Certain
				if fd.Certain {
					names = append(names, fd.Name+"*")
				} else {
					names = append(names, fd.Name)
				}
			}
			sort.Strings(names)
			distinct := map[string]bool{}
			for _, n := range names {
				if n[len(n)-1] == '*' {
					distinct[n] = true
				}
			}
			redundancy[len(distinct)]++
			if len(minOf[len(distinct)]) < 3 {
				minOf[len(distinct)] = append(minOf[len(distinct)], rec.Profile+" "+rec.Config)
			}
			total++
			if pts >= 20 {
				refused++
			}
			if cert {
				certain++
			}
			if !cert || os.Getenv("V") != "" {
				fmt.Printf("%s %s: %.0f pts certain=%v %v\n", rec.Profile, rec.Config, pts, cert, names)
			}
		}
	}
	keys := []int{}
	for k := range redundancy {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	for _, k := range keys {
		fmt.Printf("  %d distinct certain findings: %d sessions (e.g. %v)\n", k, redundancy[k], minOf[k])
	}
	fmt.Printf("stealth sessions re-judged on the fingerprint alone: refused %d/%d, certain %d/%d\n", refused, total, certain, total)
}
