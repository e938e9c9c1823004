// Command modzip lists what the module zip of the gateway's module — what
// `xcaddy build --with github.com/advcaptcha/advcaptcha` downloads — holds
// at a commit, and fails if it carries the research or the attack suite or
// grows past a size limit.
//
//	bench/lab modzip [-rev HEAD] [-max 8MB] [-v]     # or scripts/modzip-check.sh
//
// It builds the zip as the Go module proxy does: `git archive` of the
// commit, then golang.org/x/mod/zip's rules (which leave out directories
// with a go.mod of their own, such as bench/ and attack/). Only committed
// files count: commit first, or pass -rev.
package main

import (
	"archive/zip"
	"bytes"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"sort"
	"strings"

	"golang.org/x/mod/module"
	modzip "golang.org/x/mod/zip"
)

// forbidden are the paths that must stay out of the published module.
var forbidden = []string{"bench/", "attack/", "trajectory/gen/"}

func main() {
	rev := flag.String("rev", "HEAD", "the commit to check")
	repo := flag.String("repo", ".", "the repository's root")
	maxMB := flag.Float64("max", 8, "the most the zip may take, in MB")
	verbose := flag.Bool("v", false, "list every file of the zip")
	flag.Parse()
	if err := run(*repo, *rev, *maxMB, *verbose); err != nil {
		fmt.Fprintln(os.Stderr, "modzip:", err)
		os.Exit(1)
	}
}

func run(repo, rev string, maxMB float64, verbose bool) error {
	// The same git invocation x/mod/zip.CreateFromVCS and the go command use.
	cmd := exec.Command("git", "-c", "core.autocrlf=input", "-c", "core.eol=lf", "archive", "--format=zip", rev)
	cmd.Dir = repo
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	archive, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("git archive %s: %v: %s", rev, err, stderr.String())
	}
	zr, err := zip.NewReader(bytes.NewReader(archive), int64(len(archive)))
	if err != nil {
		return err
	}
	var files []modzip.File
	for _, f := range zr.File {
		if !strings.HasSuffix(f.Name, "/") {
			files = append(files, zipFile{f})
		}
	}

	checked, err := modzip.CheckFiles(files)
	if err != nil {
		return fmt.Errorf("the module's files are not valid for a module zip: %v", err)
	}
	var buf bytes.Buffer
	m := module.Version{Path: "github.com/advcaptcha/advcaptcha", Version: "v0.0.0-check"}
	if err := modzip.Create(&buf, m, files); err != nil {
		return err
	}

	// What goes in, per top-level directory, and what is left out.
	sizes := map[string]int64{}
	for _, f := range zr.File {
		sizes[f.Name] = int64(f.UncompressedSize64)
	}
	in, out := byDir{}, byDir{}
	var bad []string
	for _, p := range checked.Valid {
		in.add(p, sizes[p])
		for _, prefix := range forbidden {
			if strings.HasPrefix(p, prefix) {
				bad = append(bad, p)
			}
		}
		if verbose {
			fmt.Printf("  %9d  %s\n", sizes[p], p)
		}
	}
	for _, fe := range checked.Omitted {
		out.add(fe.Path, sizes[fe.Path])
	}

	var total int64
	for _, t := range in {
		total += t.size
	}
	fmt.Printf("module zip of %s at %s: %d files, %s uncompressed, zip %s (limit %.1f MB)\n",
		m.Path, rev, len(checked.Valid), mb(total), mb(int64(buf.Len())), maxMB)
	fmt.Println("in the zip, by directory:")
	for _, k := range sortedKeys(in) {
		fmt.Printf("  %-18s %4d files %10s\n", k, in[k].n, mb(in[k].size))
	}
	if len(out) > 0 {
		fmt.Println("left out (nested modules, vendor, symlinks):")
		for _, k := range sortedKeys(out) {
			fmt.Printf("  %-18s %4d files %10s\n", k, out[k].n, mb(out[k].size))
		}
	}
	if len(checked.Invalid) > 0 {
		return fmt.Errorf("invalid files: %v", checked.Invalid)
	}
	var fail []string
	if len(bad) > 0 {
		fail = append(fail, fmt.Sprintf("%d files of %s are in the zip (e.g. %s)", len(bad), strings.Join(forbidden, ", "), bad[0]))
	}
	if float64(buf.Len()) > maxMB*(1<<20) {
		fail = append(fail, fmt.Sprintf("the zip takes %s, over the %.1f MB limit", mb(int64(buf.Len())), maxMB))
	}
	if len(fail) > 0 {
		return fmt.Errorf("%s", strings.Join(fail, "; "))
	}
	fmt.Println("ok: no research or attack-suite files, within the size limit")
	return nil
}

// byDir counts files and bytes per top-level directory.
type byDir map[string]*count

type count struct {
	n    int
	size int64
}

func (b byDir) add(p string, size int64) {
	top := p
	if i := strings.Index(p, "/"); i >= 0 {
		top = p[:i+1]
	}
	t := b[top]
	if t == nil {
		t = &count{}
		b[top] = t
	}
	t.n++
	t.size += size
}

func mb(n int64) string { return fmt.Sprintf("%.2f MB", float64(n)/(1<<20)) }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// zipFile is a file of the git archive, as x/mod/zip reads files.
type zipFile struct{ f *zip.File }

func (z zipFile) Path() string                 { return z.f.Name }
func (z zipFile) Lstat() (fs.FileInfo, error)  { return z.f.FileInfo(), nil }
func (z zipFile) Open() (io.ReadCloser, error) { return z.f.Open() }
