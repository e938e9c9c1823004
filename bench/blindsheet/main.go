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
	"encoding/csv"
	"flag"
	"fmt"
	"image"
	"image/draw"
	"image/png"
	"log"
	"os"
	"path/filepath"
	"strings"
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
	rows, err := readLabels(*data)
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
		if err := writeSheet(name, *data, rows[first:last], *scale); err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s: captchas %d–%d\n", name, first+1, last)
	}
}

type labelled struct{ file, text string }

func readLabels(dir string) ([]labelled, error) {
	f, err := os.Open(filepath.Join(dir, "labels.csv"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("labels.csv: %w", err)
	}
	if len(recs) < 2 || len(recs[0]) != 2 || recs[0][0] != "file" {
		return nil, fmt.Errorf("labels.csv: want a header file,text and at least one row")
	}
	var rows []labelled
	for _, r := range recs[1:] {
		rows = append(rows, labelled{r[0], r[1]})
	}
	return rows, nil
}

// writeSheet stacks the captchas with a white gap between rows and nothing
// else: no file names or numbers, nothing a reader could take a hint from.
func writeSheet(name, dir string, rows []labelled, scale int) error {
	var imgs []image.Image
	for _, r := range rows {
		im, err := readPNG(filepath.Join(dir, r.file))
		if err != nil {
			return err
		}
		imgs = append(imgs, im)
	}
	w, h := imgs[0].Bounds().Dx(), imgs[0].Bounds().Dy()
	gap := 2 * scale
	sheet := image.NewGray(image.Rect(0, 0, w*scale, len(imgs)*(h*scale+gap)))
	draw.Draw(sheet, sheet.Bounds(), image.White, image.Point{}, draw.Src)
	for i, im := range imgs {
		if im.Bounds().Dx() != w || im.Bounds().Dy() != h {
			return fmt.Errorf("%s: %v, the first captcha is %dx%d", rows[i].file, im.Bounds().Size(), w, h)
		}
		b, top := im.Bounds(), i*(h*scale+gap)
		for y := 0; y < h*scale; y++ {
			for x := 0; x < w*scale; x++ {
				sheet.Set(x, top+y, im.At(b.Min.X+x/scale, b.Min.Y+y/scale))
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

func readPNG(path string) (image.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	im, err := png.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return im, nil
}

// scoreReads prints each misread and the totals. Characters are compared
// position by position, so a dropped or added character also costs the
// ones after it — the stricter of the usual measures.
func scoreReads(rows []labelled, path string) error {
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
		truth, read := []rune(r.text), []rune(reads[i])
		for j := range truth {
			if j < len(read) && read[j] == truth[j] {
				chars++
			}
		}
		total += len(truth)
		if reads[i] == r.text {
			solved++
		} else {
			fmt.Printf("%d\t%s\tread %q\n", i+1, r.text, reads[i])
		}
	}
	fmt.Printf("solved %d/%d = %.1f%%, characters in place %d/%d = %.1f%%\n",
		solved, len(rows), 100*float64(solved)/float64(len(rows)), chars, total, 100*float64(chars)/float64(total))
	return nil
}
