// Command soak holds a fixed rate of mixed traffic — cleared clients, new
// clients, bots — against bin/caddy with advcaptcha on a real redis-server,
// and then the same traffic against plain Caddy reverse_proxy to the same
// upstream, and reports throughput, latency percentiles (measured from each
// request's scheduled time, so a stall is not hidden by the generator
// waiting for it), errors and the Caddy process's memory over time.
//
//	bench/lab soak -rate 800 -duration 3m   # bench/soak/RESULTS.md
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/advcaptcha/advcaptcha/clearance"
)

var (
	rate     = flag.Int("rate", 800, "requests per second, all classes together")
	duration = flag.Duration("duration", 3*time.Minute, "how long each phase holds the rate")
	caddyBin = flag.String("caddy", "bin/caddy", "the Caddy binary with advcaptcha (make build)")
	out      = flag.String("out", "bench/soak/RESULTS.md", "results file")
)

const (
	secret   = "soak-secret-0123456789abcdef0123456789ab"
	firefox  = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
	cleared  = 200 // cleared identities, each its own IP
	botIPs   = 5
	plainURL = "http://127.0.0.1:18280/"
	gateURL  = "http://127.0.0.1:18282/"
)

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
}

// class is one kind of client: its share of the rate, how it builds a
// request, and the statuses it must get.
type class struct {
	name  string
	share float64
	build func(n int64, req *http.Request)
	want  func(status int) bool
}

func classes(cookies []string) []class {
	browser := func(req *http.Request) {
		h := req.Header
		h.Set("User-Agent", firefox)
		h.Set("Accept", "text/html,application/xhtml+xml")
		h.Set("Accept-Language", "en-GB,en;q=0.8")
		h.Set("Accept-Encoding", "gzip")
		h.Set("Sec-Fetch-Site", "none")
		h.Set("Sec-Fetch-Mode", "navigate")
	}
	return []class{
		{"cleared", 0.6, func(n int64, req *http.Request) {
			browser(req)
			i := n % cleared
			req.Header.Set("Cookie", cookies[i])
			req.Header.Set("X-Forwarded-For", fmt.Sprintf("10.1.%d.%d", i/250, i%250+1))
		}, func(s int) bool { return s == 200 }},
		{"new", 0.3, func(n int64, req *http.Request) {
			browser(req)
			req.Header.Set("X-Forwarded-For", fmt.Sprintf("10.%d.%d.%d", 2+n>>16&63, n>>8&255, n&255))
		}, func(s int) bool { return s == 200 }},
		{"bot", 0.1, func(n int64, req *http.Request) {
			req.Header.Set("User-Agent", "python-requests/2.32.3")
			req.Header.Set("Accept", "*/*")
			req.Header.Set("X-Forwarded-For", fmt.Sprintf("10.200.0.%d", n%botIPs+1))
		}, func(s int) bool { return s == 403 }},
	}
}

// phase is what one run of the traffic measured.
type phase struct {
	name      string
	latencies map[string][]time.Duration
	statuses  map[string]map[int]int
	unwanted  map[string]int
	errors    int
	sent      int64
	elapsed   time.Duration
	rss       []int64 // KiB, every 10 s
}

func run() error {
	if _, err := os.Stat(*caddyBin); err != nil {
		return fmt.Errorf("%s: %w (make build)", *caddyBin, err)
	}
	redisAddr, stopRedis, err := startRedis()
	if err != nil {
		return err
	}
	defer stopRedis()
	keys, err := clearance.NewKeys([]byte(secret))
	if err != nil {
		return err
	}
	cookies := make([]string, cleared)
	for i := range cookies {
		id, dc, err := keys.NewDevice(rand.Reader)
		if err != nil {
			return err
		}
		cookies[i] = "advc_device=" + dc + "; advc_clearance=" + keys.IssueClearance(id, firefox, time.Now().Add(24*time.Hour))
	}
	dir, err := os.MkdirTemp("", "advcaptcha-soak-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cf := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(cf, []byte(caddyfile(redisAddr)), 0o644); err != nil {
		return err
	}
	cmd := exec.Command(*caddyBin, "run", "--config", cf, "--adapter", "caddyfile")
	logf, err := os.Create(filepath.Join(dir, "caddy.log"))
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	if err := waitFor(gateURL + "robots.txt"); err != nil {
		return err
	}
	cls := classes(cookies)
	var phases []*phase
	for _, p := range []struct{ name, url string }{{"advcaptcha (Redis)", gateURL}, {"plain Caddy", plainURL}} {
		fmt.Fprintf(os.Stderr, "%s: %d req/s for %v\n", p.name, *rate, *duration)
		ph := hold(p.name, p.url, cls, cmd.Process.Pid)
		if p.url == plainURL {
			// Plain Caddy lets every client through: 200 is what each wants.
			for k := range ph.unwanted {
				ph.unwanted[k] = 0
				for s, n := range ph.statuses[k] {
					if s != 200 {
						ph.unwanted[k] += n
					}
				}
			}
		}
		phases = append(phases, ph)
	}
	report := render(phases)
	fmt.Print(report)
	return os.WriteFile(*out, []byte(report), 0o644)
}

func caddyfile(redisAddr string) string {
	return fmt.Sprintf(`{
	admin off
	auto_https off
	servers {
		trusted_proxies static 127.0.0.1/32
	}
	log {
		output discard
	}
}
:18281 {
	bind 127.0.0.1
	respond "ok"
}
:18280 {
	bind 127.0.0.1
	reverse_proxy 127.0.0.1:18281
}
:18282 {
	bind 127.0.0.1
	advcaptcha {
		redis %s
		secret %s
		adversarial off
	}
	reverse_proxy 127.0.0.1:18281
}
`, redisAddr, secret)
}

// hold sends the classes' traffic at the fixed rate for the duration.
func hold(name, url string, cls []class, pid int) *phase {
	ph := &phase{name: name, latencies: map[string][]time.Duration{}, statuses: map[string]map[int]int{}, unwanted: map[string]int{}}
	for _, c := range cls {
		ph.statuses[c.name] = map[int]int{}
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 512, IdleConnTimeout: 30 * time.Second}
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	var mu sync.Mutex
	var wg sync.WaitGroup
	var counters = make([]atomic.Int64, len(cls))
	ctx, cancel := context.WithTimeout(context.Background(), *duration)
	defer cancel()
	go func() { // memory of the Caddy process
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		for {
			if kb, err := rssKiB(pid); err == nil {
				mu.Lock()
				ph.rss = append(ph.rss, kb)
				mu.Unlock()
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	interval := time.Second / time.Duration(*rate)
	start := time.Now()
	var pick float64
	for i := int64(0); ; i++ {
		at := start.Add(time.Duration(i) * interval)
		if time.Until(at) > 0 {
			time.Sleep(time.Until(at))
		}
		if ctx.Err() != nil {
			break
		}
		// Deterministic interleaving of the classes by their shares.
		pick += 0.618033988749895
		pick -= float64(int(pick))
		ci, acc := 0, 0.0
		for j, c := range cls {
			acc += c.share
			if pick < acc {
				ci = j
				break
			}
		}
		c := cls[ci]
		n := counters[ci].Add(1)
		ph.sent++
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("GET", url, nil)
			c.build(n, req)
			res, err := client.Do(req)
			status := 0
			if err == nil {
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				status = res.StatusCode
			}
			lat := time.Since(at)
			mu.Lock()
			defer mu.Unlock()
			ph.latencies[c.name] = append(ph.latencies[c.name], lat)
			ph.statuses[c.name][status]++
			switch {
			case err != nil || status >= 500:
				ph.errors++
			case !c.want(status):
				ph.unwanted[c.name]++
			}
		}()
	}
	wg.Wait()
	ph.elapsed = time.Since(start)
	tr.CloseIdleConnections()
	return ph
}

func rssKiB(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			return strconv.ParseInt(f[1], 10, 64)
		}
	}
	return 0, errors.New("no VmRSS")
}

func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return d[min(len(d)-1, int(float64(len(d))*p))]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d.Microseconds())/1000) }

func render(phases []*phase) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Soak: fixed-rate mixed traffic, advcaptcha against plain Caddy\n\n")
	fmt.Fprintf(&b, "Command: `bench/lab soak -rate %d -duration %v` (%s, %d cores, %s). Traffic: 60%% cleared clients "+
		"(%d identities with valid clearance cookies), 30%% new clients (a new IP per request, browser headers), 10%% bots "+
		"(python-requests from %d IPs, which must be refused: 403). advcaptcha runs with its default limits on a real "+
		"redis-server; the generator, Caddy and Redis share the machine. Latency is measured from each request's scheduled "+
		"send time.\n\n", *rate, *duration, time.Now().UTC().Format("2006-01-02"), runtime.NumCPU(), runtime.Version(), cleared, botIPs)
	fmt.Fprintf(&b, "| phase | class | requests | req/s | p50 ms | p99 ms | p99.9 ms | max ms | errors (transport, 5xx) | unwanted status |\n|---|---|---|---|---|---|---|---|---|---|\n")
	for _, ph := range phases {
		var all []time.Duration
		names := make([]string, 0, len(ph.latencies))
		for k := range ph.latencies {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			l := ph.latencies[k]
			sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
			all = append(all, l...)
			fmt.Fprintf(&b, "| %s | %s | %d | %.0f | %s | %s | %s | %s | | %d |\n", ph.name, k, len(l), float64(len(l))/ph.elapsed.Seconds(),
				ms(pct(l, .5)), ms(pct(l, .99)), ms(pct(l, .999)), ms(pct(l, 1)), ph.unwanted[k])
		}
		sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
		fmt.Fprintf(&b, "| **%s** | all | %d | %.0f | %s | %s | %s | %s | %d | |\n", ph.name, len(all), float64(len(all))/ph.elapsed.Seconds(),
			ms(pct(all, .5)), ms(pct(all, .99)), ms(pct(all, .999)), ms(pct(all, 1)), ph.errors)
	}
	fmt.Fprintf(&b, "\nStatuses: ")
	for _, ph := range phases {
		fmt.Fprintf(&b, "%s %v. ", ph.name, ph.statuses)
	}
	fmt.Fprintf(&b, "\n\nCaddy's resident memory every 10 s (MiB), advcaptcha phase then plain phase:\n\n")
	for _, ph := range phases {
		var s []string
		for _, kb := range ph.rss {
			s = append(s, fmt.Sprintf("%.0f", float64(kb)/1024))
		}
		fmt.Fprintf(&b, "- %s: %s\n", ph.name, strings.Join(s, " "))
	}
	return b.String()
}

func startRedis() (string, func(), error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command("redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--loglevel", "warning")
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("redis-server (apt-get install redis-server): %w", err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if i == 100 {
			_ = cmd.Process.Kill()
			return "", nil, errors.New("redis-server did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return addr, func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }, nil
}

func waitFor(url string) error {
	for i := 0; i < 200; i++ {
		if res, err := http.Get(url); err == nil {
			res.Body.Close()
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer", url)
}
