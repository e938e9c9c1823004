// Command blindsheet is the blind legibility read: it draws a dataset's
// captchas as unlabelled sheets at the page's scale for a reader (a person,
// or any other reader that is not one of our solvers) to transcribe before
// seeing the answers, and then scores the transcription against the
// dataset's labels.csv, per captcha and per character.
//
//	bench/lab blindsheet -data DIR -out PREFIX [-per 10] [-scale 3]
//	bench/lab blindsheet -data DIR -score READS.txt
//
// READS.txt holds one transcription per line, in the sheets' order (top to
// bottom, sheet after sheet); an empty line is a captcha the reader gave up on.
// Like the gateway, scoring ignores case and surrounding spaces.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"image"
	"image/png"
	"log"
	"os"
	"strings"

	"github.com/advcaptcha/advcaptcha/solver"
)

func main() {
	data := flag.String("data", "", "dataset directory (labels.csv and its PNGs)")
	out := flag.String("out", "", "write sheets PREFIX-1.png, PREFIX-2.png, …")
	per := flag.Int("per", 10, "captchas per sheet")
	scale := flag.Int("scale", 3, "nearest-neighbour scale (the page shows captchas at 3×)")
	score := flag.String("score", "", "score this transcription file against the labels")
	flag.Parse()
	if *data == "" || (*out == "") == (*score == "") {
		log.Fatal("usage: blindsheet -data DIR (-out PREFIX | -score READS.txt)")
	}
	// The gateway's captchas at the solver's size, as `advcaptcha dataset`
	// writes them: labels.csv and its PNGs, read and checked by the
	// solver's own loader.
	arch := solver.DefaultArchitecture()
	rows, err := solver.LoadDataset(*data, arch)
	if err != nil {
		log.Fatal(err)
	}
	if *score != "" {
		if err := scoreReads(rows, *score); err != nil {
			log.Fatal(err)
		}
		return
	}
	if *per < 1 || *scale < 1 {
		log.Fatal("-per and -scale must be at least 1")
	}
	for first, n := 0, 1; first < len(rows); first, n = first+*per, n+1 {
		last := min(first+*per, len(rows))
		name := fmt.Sprintf("%s-%d.png", *out, n)
		if err := writeSheet(name, rows[first:last], arch.Height, arch.Width, *scale); err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s: captchas %d–%d\n", name, first+1, last)
	}
}

// writeSheet stacks the captchas with a white gap between rows and nothing
// else: no file names or numbers, nothing a reader could take a hint from.
func writeSheet(name string, rows []solver.Sample, h, w, scale int) error {
	gap := 2 * scale
	sheet := image.NewGray(image.Rect(0, 0, w*scale, len(rows)*(h*scale+gap)))
	for i := range sheet.Pix {
		sheet.Pix[i] = 255
	}
	for i, r := range rows {
		top := i * (h*scale + gap)
		for y := range h * scale {
			line := sheet.Pix[(top+y)*sheet.Stride:]
			for x := range w * scale {
				line[x] = r.Pixels[(y/scale)*w+x/scale]
			}
		}
	}
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	if err := png.Encode(f, sheet); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// scoreReads prints each misread and the totals. Characters are compared
// position by position, so a dropped or added character also costs the
// ones after it — the stricter of the usual measures.
func scoreReads(rows []solver.Sample, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var reads []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		reads = append(reads, strings.ToLower(strings.TrimSpace(sc.Text())))
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if len(reads) != len(rows) {
		return fmt.Errorf("%s has %d lines for %d captchas", path, len(reads), len(rows))
	}
	var solved, chars, total int
	for i, r := range rows {
		truth, read := []rune(r.Text), []rune(reads[i])
		for j := range truth {
			if j < len(read) && read[j] == truth[j] {
				chars++
			}
		}
		total += len(truth)
		if reads[i] == r.Text {
			solved++
		} else {
			fmt.Printf("%d\t%s\tread %q\n", i+1, r.Text, reads[i])
		}
	}
	fmt.Printf("solved %d/%d = %.1f%%, characters in place %d/%d = %.1f%%\n",
		solved, len(rows), 100*float64(solved)/float64(len(rows)), chars, total, 100*float64(chars)/float64(total))
	return nil
}
