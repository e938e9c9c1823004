package caddycommand

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/advcaptcha/advcaptcha/crawler"
)

func crawlersCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "crawlers <refresh|show>",
		Short: "The search engines' published crawler IP ranges",
		Long: `A client claiming to be Googlebot, Bingbot, Applebot or DuckDuckBot is verified
against the IP ranges its engine publishes (and, where the engine documents
crawler hostnames, forward-confirmed reverse DNS). The gateway embeds a
snapshot of those ranges; "refresh" downloads a fresh one where there is
network, for the crawler_ranges option to load.`,
	}
	c.AddCommand(crawlersRefreshCommand(), crawlersShowCommand())
	return c
}

func crawlersRefreshCommand() *cobra.Command {
	var out string
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "refresh [--out FILE]",
		Short: "Download the engines' crawler IP lists into a snapshot file",
		Long: `Downloads every list in crawler.Sources (Google's common and special-case
crawlers, Bing, Apple, DuckDuckGo) and writes them, with their URLs and dates,
in the snapshot format the gateway embeds. Nothing is written unless every
list downloads and parses: an engine missing from the file would fall back on
DNS alone, and a publisher's relocation notice served with status 200 must not
become an empty list. Without --out the snapshot goes to standard output.

Google refreshes its lists daily; run this from cron and reload Caddy.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			s, err := crawler.Fetch(ctx, &http.Client{Timeout: timeout}, crawler.Sources)
			if err != nil {
				return err
			}
			b, err := s.Marshal()
			if err != nil {
				return err
			}
			if out == "" {
				_, err = cmd.OutOrStdout().Write(b)
				return err
			}
			if err := writeFileAtomic(out, b); err != nil {
				return err
			}
			r, err := s.Ranges()
			if err != nil {
				return err
			}
			printLists(cmd.ErrOrStderr(), r)
			return nil
		},
	}
	c.Flags().StringVar(&out, "out", "", "snapshot file to write (default: standard output)")
	c.Flags().DurationVar(&timeout, "timeout", time.Minute, "time allowed for all downloads")
	return c
}

func crawlersShowCommand() *cobra.Command {
	var file string
	c := &cobra.Command{
		Use:   "show [--ranges FILE]",
		Short: "Summarise a snapshot: engines, sources, dates, prefix counts",
		RunE: func(cmd *cobra.Command, _ []string) error {
			r := crawler.EmbeddedRanges()
			if file != "" {
				var err error
				if r, err = crawler.LoadRanges(file); err != nil {
					return err
				}
			}
			printLists(cmd.OutOrStdout(), r)
			return nil
		},
	}
	c.Flags().StringVar(&file, "ranges", "", "snapshot file (default: the embedded one)")
	return c
}

func printLists(w io.Writer, r *crawler.Ranges) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ENGINE\tPREFIXES\tPUBLISHED\tRETRIEVED\tURL")
	for _, l := range r.Lists() {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", l.Engine, len(l.Prefixes), l.CreationTime, l.Retrieved, l.URL)
	}
	tw.Flush()
}

// writeFileAtomic replaces path in one step, so a gateway reloading while
// the refresh runs reads the old snapshot or the new one, never half.
func writeFileAtomic(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	_, werr := tmp.Write(b)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return nil
}
