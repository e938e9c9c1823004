// Command styleprobe measures how much of a captcha style's text survives
// a global (Otsu) and an adaptive binarisation, and how many pixels a
// perturbation within ε could move across the Otsu threshold.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math"

	"github.com/advcaptcha/advcaptcha/captcha"
	"github.com/advcaptcha/advcaptcha/perturb"
)

func main() {
	n := flag.Int("n", 300, "captchas")
	seed := flag.Uint64("seed", 7000000, "first seed")
	eps := flag.Float64("eps", 40, "budget in grey levels")
	styleJSON := flag.String("style", "{}", "style as JSON")
	flat := flag.Bool("flat", false, "the second binariser is flattened Otsu (Flatten, then Binarize) instead of adaptive binarisation, and the budget is measured against its threshold")
	flag.Parse()
	var s captcha.Style
	if err := json.Unmarshal([]byte(*styleJSON), &s); err != nil {
		log.Fatal(err)
	}
	if err := s.Validate(); err != nil {
		log.Fatal(err)
	}
	var recall, falseInk, aRecall, aFalse, flippable, flipText float64
	for i := range *n {
		c, err := s.Generate(*seed + uint64(i))
		if err != nil {
			log.Fatal(err)
		}
		img := perturb.FromGray(c.Image)
		h, w := s.Height, s.Width
		thr := float64(perturb.OtsuThreshold(img))
		if *flat {
			// Budget measured against the flattened image's threshold.
			img = perturb.Flatten(img, h, w)
			thr = float64(perturb.OtsuThreshold(img))
		}
		bin := perturb.Binarize(perturb.FromGray(c.Image), h, w)
		ada := perturb.AdaptiveBinarize(img, h, w)
		if *flat {
			ada = perturb.Binarize(img, h, w)
		}
		var text, bg, tHit, bHit, atHit, abHit, flip, ftext float64
		for p, v := range img {
			isText := c.Glyphs.Pix[p] > 128
			isBg := c.Glyphs.Pix[p] == 0
			lv := float64(v) * 255
			if math.Abs(lv-thr) <= *eps {
				flip++
				if isText {
					ftext++
				}
			}
			switch {
			case isText:
				text++
				if bin[p] == 0 {
					tHit++
				}
				if ada[p] == 0 {
					atHit++
				}
			case isBg:
				bg++
				if bin[p] == 0 {
					bHit++
				}
				if ada[p] == 0 {
					abHit++
				}
			}
		}
		recall += tHit / text
		falseInk += bHit / bg
		aRecall += atHit / text
		aFalse += abHit / bg
		flippable += flip / float64(len(img))
		flipText += ftext / text
	}
	k := float64(*n)
	second, thr := "adaptive", "Otsu"
	if *flat {
		second, thr = "flattened Otsu", "flattened Otsu"
	}
	fmt.Printf("style %s: otsu text kept %.1f%%, background inked %.1f%%; %s text kept %.1f%%, background inked %.1f%%; within ε of %s: %.1f%% of pixels, %.1f%% of text\n",
		*styleJSON, 100*recall/k, 100*falseInk/k, second, 100*aRecall/k, 100*aFalse/k, thr, 100*flippable/k, 100*flipText/k)
}
