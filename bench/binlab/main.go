// Command binlab studies a second phase against attackers who binarise:
// given clean captchas and the same captchas attacked by the gateway's
// attack (`advcaptcha dataset --adversarial`), it flips, a few at a time,
// the pixels that can still cross Otsu's threshold within the budget,
// choosing those whose flip raises the substitutes' loss of the binarised
// image most (their gradient there), and writes the result as a dataset for
// `advcaptcha eval --filter binarize`. Measured in
// bench/adversarial/README.md ("What was tried"): it helps the substitute
// itself, not the solvers it never saw, so the gateway does not do it.
//
//	GOFLAGS=-tags=openblas bench/lab binlab -clean CLEAN -adv ADV -out DIR [-models a.crnn,b.crnn]
package main

import (
	"flag"
	"fmt"
	"image"
	"image/png"
	"log"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/advcaptcha/advcaptcha/perturb"
	"github.com/advcaptcha/advcaptcha/solver"
)

var (
	cleanDir = flag.String("clean", "", "clean dataset")
	advDir   = flag.String("adv", "", "the same captchas, attacked")
	out      = flag.String("out", "", "output dataset")
	eps      = flag.Int("eps", 32, "budget in levels")
	iters    = flag.Int("iters", 10, "flip iterations")
	perIter  = flag.Int("k", 20, "pixels flipped per iteration")
	margin   = flag.Int("margin", 6, "levels past the threshold a flipped pixel is put")
	models   = flag.String("models", "", "further substitute model files, comma-separated, whose gradients are added to the shipped model's")
)

func main() {
	flag.Parse()
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

func run() error {
	bm, err := solver.Default()
	if err != nil {
		return err
	}
	base, err := solver.New(bm, solver.Options{Workers: 1})
	if err != nil {
		return err
	}
	subs := []*solver.Solver{base}
	if *models != "" {
		for _, p := range strings.Split(*models, ",") {
			m, err := solver.Load(p)
			if err != nil {
				return err
			}
			s, err := solver.New(m, solver.Options{Workers: 1})
			if err != nil {
				return err
			}
			subs = append(subs, s)
		}
	}
	arch := base.Model().Arch
	clean, err := solver.LoadDataset(*cleanDir, arch)
	if err != nil {
		return err
	}
	adv, err := solver.LoadDataset(*advDir, arch)
	if err != nil {
		return err
	}
	h, w := arch.Height, arch.Width
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	results := make([]*image.Gray, len(adv))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 2)
	var flippable, flipped int
	var mu sync.Mutex
	for i := range adv {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			x := make([]float32, h*w)
			lo, hi := make([]int, h*w), make([]int, h*w)
			for j, v := range adv[i].Pixels {
				x[j] = float32(v) / 255
				c := int(clean[i].Pixels[j])
				lo[j], hi[j] = max(c-*eps, 0), min(c+*eps, 255)
			}
			nFlip, nAble := 0, 0
			for range *iters {
				t := perturb.OtsuThreshold(x)
				b := perturb.Binarize(x, h, w)
				g := make([]float32, h*w)
				for _, s := range subs {
					gr, err := s.InputGradient([]solver.Image{b}, []string{adv[i].Text})
					if err != nil {
						log.Fatal(err)
					}
					for j, v := range gr.Grads[0] {
						g[j] += v
					}
				}
				type cand struct {
					j     int
					score float32
				}
				var cs []cand
				nAble = 0
				for j := range x {
					if b[j] == 0 && hi[j] > t+*margin {
						nAble++
						if g[j] > 0 {
							cs = append(cs, cand{j, g[j]})
						}
					}
					if b[j] == 1 && lo[j] < t-*margin {
						nAble++
						if g[j] < 0 {
							cs = append(cs, cand{j, -g[j]})
						}
					}
				}
				sort.Slice(cs, func(a, b int) bool { return cs[a].score > cs[b].score })
				for _, c := range cs[:min(*perIter, len(cs))] {
					j := c.j
					if b[j] == 0 {
						x[j] = float32(min(hi[j], t+*margin)) / 255
					} else {
						x[j] = float32(max(lo[j], t-*margin)) / 255
					}
					nFlip++
				}
			}
			results[i] = perturb.ToGray(x, h, w)
			mu.Lock()
			flippable += nAble
			flipped += nFlip
			mu.Unlock()
		}(i)
	}
	wg.Wait()
	f, err := os.Create(filepath.Join(*out, "labels.csv"))
	if err != nil {
		return err
	}
	defer f.Close()
	fmt.Fprintln(f, "file,text")
	for i, img := range results {
		name := fmt.Sprintf("%06d.png", i)
		pf, err := os.Create(filepath.Join(*out, name))
		if err != nil {
			return err
		}
		if err := png.Encode(pf, img); err != nil {
			return err
		}
		pf.Close()
		fmt.Fprintf(f, "%s,%s\n", name, adv[i].Text)
	}
	fmt.Printf("flippable pixels per captcha %.0f, flipped %.0f\n", float64(flippable)/float64(len(adv)), float64(flipped)/float64(len(adv)))
	return nil
}
