package caddycommand

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/spf13/cobra"

	"github.com/advcaptcha/advcaptcha/trajectory"
)

func trajectoriesCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "trajectories FILE.jsonl",
		Short: "Score slide-bar drags; the last line is the share accepted",
		Long: `Scores each line of FILE.jsonl, {"points": [[x, y, t_ms], ...]} (x relative to
the press point, y downwards, t in ms since the press), as the single slide of a
fresh device. Prints how often each reason fired and, last, the share accepted:
"accepted 590/600 = 98.3%". A line that is not a valid trajectory counts as
refused.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			return ScoreTrajectories(f, cmd.OutOrStdout())
		},
	}
}

// ScoreTrajectories scores JSONL drags from r and reports to w.
func ScoreTrajectories(r io.Reader, w io.Writer) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), trajectory.MaxBodyBytes+1)
	total, accepted, invalid := 0, 0, 0
	reasons := map[string]int{}
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		total++
		t, err := trajectory.Decode(bytes.NewReader(line))
		if err != nil {
			invalid++
			reasons["invalid: "+err.Error()]++
			continue
		}
		res := trajectory.Score(t)
		for _, x := range res.Reasons {
			reasons[x.Name]++
		}
		if res.Accepted() {
			accepted++
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	names := make([]string, 0, len(reasons))
	for n := range reasons {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return reasons[names[i]] > reasons[names[j]] })
	for _, n := range names {
		fmt.Fprintf(w, "%6d  %s\n", reasons[n], n)
	}
	if invalid > 0 {
		fmt.Fprintf(w, "invalid %d\n", invalid)
	}
	pct := 0.0
	if total > 0 {
		pct = 100 * float64(accepted) / float64(total)
	}
	fmt.Fprintf(w, "accepted %d/%d = %.1f%%\n", accepted, total, pct)
	return nil
}
