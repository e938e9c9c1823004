// Package caddycommand adds the `caddy advcaptcha …` subcommands: offline
// tools for the captcha datasets that training and evaluation use.
package caddycommand

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/advcaptcha/advcaptcha/captcha"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "advcaptcha",
		Usage: "<dataset|gallery|sheet|pool|trajectories|train|eval|extract|model|crawlers> [flags]",
		Short: "advcaptcha tools: captcha datasets, galleries, slide scoring",
		Long: `Tools for advcaptcha that run without a server.

  dataset  writes captchas as PNG files plus labels.csv (header file,text),
           the interchange format for training and evaluating solvers
           (--adversarial: perturbed against the substitute model)
  gallery  writes a contact sheet of captchas with their texts
  sheet    writes clean and adversarial captchas side by side, for each
           method and ε
  pool     fills a shared Redis pool with adversarial captchas
  train    trains a solver model; eval measures one
  extract  model extraction: attackers' answers from Redis → training data
           → a fine-tuned substitute, published when it is better
  model    lists, publishes and rolls back the model versions gateways follow
  trajectories FILE.jsonl
           scores slide-bar drags as single slides of fresh devices
  crawlers shows, or refreshes, the search engines' crawler IP ranges`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.AddCommand(datasetCommand(), galleryCommand(), sheetCommand(), poolCommand(), trajectoriesCommand(), trainCommand(), evalCommand(), extractCommand(), modelCommand(), crawlersCommand())
		},
	})
}

func datasetCommand() *cobra.Command {
	var count int
	var out string
	var seed uint64
	var adversarial bool
	var styleJSON string
	var attack attackFlags
	c := &cobra.Command{
		Use:   "dataset --count N --out DIR [--seed S] [--adversarial [attack flags]]",
		Short: "Write N captchas and DIR/labels.csv",
		Long: `Writes N captchas of the default style as DIR/NNNNNN.png and their texts to
DIR/labels.csv with the header "file,text" (file relative to DIR). Captcha i
is generated from seed S+i, so the same --seed always writes the same
files, byte for byte.

With --adversarial each captcha is perturbed against the substitute model(s)
(--model, default the shipped one) as the gateway would serve it, on every
core, and DIR/attack.json records the attack, the models, the mean SSIM and
the share of captchas the substitute misreads.`,
		RunE: func(_ *cobra.Command, _ []string) error {
			if count < 1 {
				return errors.New("--count must be at least 1")
			}
			if out == "" {
				return errors.New("--out is required")
			}
			var style captcha.Style
			if err := json.Unmarshal([]byte(styleJSON), &style); err != nil {
				return fmt.Errorf("--style: %w", err)
			}
			if !adversarial {
				return WriteDataset(out, count, seed, style)
			}
			g, err := attack.generator(runtime.GOMAXPROCS(0), style)
			if err != nil {
				return err
			}
			return writeAdversarialDataset(out, count, seed, g)
		},
	}
	c.Flags().BoolVar(&adversarial, "adversarial", false, "perturb the captchas against the substitute")
	c.Flags().StringVar(&styleJSON, "style", "{}", `style fields that differ from the default, as JSON, e.g. '{"arcs":-1,"dots":-1}' (adversarial captchas: the substitutes must read the style's size and charset)`)
	attack.register(c.Flags())
	c.Flags().IntVar(&count, "count", 0, "number of captchas")
	c.Flags().StringVar(&out, "out", "", "output directory (created if missing)")
	c.Flags().Uint64Var(&seed, "seed", 1, "seed of the first captcha")
	return c
}

// WriteDataset writes count captchas from seeds seed, seed+1, … to dir.
func WriteDataset(dir string, count int, seed uint64, style captcha.Style) error {
	if err := style.Validate(); err != nil {
		return fmt.Errorf("style: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	rows := make([][2]string, count)
	width := max(6, len(strconv.Itoa(count-1)))
	for i := range rows {
		c, err := style.Generate(seed + uint64(i))
		if err != nil {
			return err
		}
		b, err := captcha.EncodePNG(c.Image)
		if err != nil {
			return err
		}
		rows[i] = [2]string{fmt.Sprintf("%0*d.png", width, i), c.Text}
		if err := os.WriteFile(filepath.Join(dir, rows[i][0]), b, 0o644); err != nil {
			return err
		}
	}
	return writeLabels(dir, rows)
}

// writeLabels writes dir/labels.csv: the header "file,text" and the rows.
func writeLabels(dir string, rows [][2]string) error {
	f, err := os.Create(filepath.Join(dir, "labels.csv"))
	if err != nil {
		return err
	}
	defer f.Close()
	w := csv.NewWriter(f)
	if err := w.Write([]string{"file", "text"}); err != nil {
		return err
	}
	for _, r := range rows {
		if err := w.Write(r[:]); err != nil {
			return err
		}
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return err
	}
	return f.Close()
}

func galleryCommand() *cobra.Command {
	var count, cols, zoom int
	var out, styleJSON string
	var seed uint64
	c := &cobra.Command{
		Use:   "gallery --out FILE.png [--count N] [--seed S] [--style JSON]",
		Short: "Write a contact sheet of captchas with their texts",
		RunE: func(_ *cobra.Command, _ []string) error {
			if out == "" {
				return errors.New("--out is required")
			}
			if count < 1 || count > 10_000 || cols < 1 || zoom < 1 || zoom > 16 {
				return errors.New("need 1 ≤ --count ≤ 10000, --cols ≥ 1, 1 ≤ --zoom ≤ 16")
			}
			var style captcha.Style
			if err := json.Unmarshal([]byte(styleJSON), &style); err != nil {
				return fmt.Errorf("--style: %w", err)
			}
			if err := style.Validate(); err != nil {
				return fmt.Errorf("--style: %w", err)
			}
			caps := make([]*captcha.Captcha, count)
			for i := range caps {
				c, err := style.Generate(seed + uint64(i))
				if err != nil {
					return err
				}
				caps[i] = c
			}
			b, err := captcha.EncodePNG(captcha.Gallery(caps, cols, zoom))
			if err != nil {
				return err
			}
			return os.WriteFile(out, b, 0o644)
		},
	}
	c.Flags().IntVar(&count, "count", 24, "number of captchas")
	c.Flags().IntVar(&cols, "cols", 4, "columns")
	c.Flags().IntVar(&zoom, "zoom", 3, "scale factor (nearest neighbour)")
	c.Flags().StringVar(&out, "out", "", "output PNG file")
	c.Flags().Uint64Var(&seed, "seed", 1, "seed of the first captcha")
	c.Flags().StringVar(&styleJSON, "style", "{}", "style fields that differ from the default, as JSON")
	return c
}
