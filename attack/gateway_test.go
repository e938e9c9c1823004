package attack

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The gateway's secrets: fixed, so a failing run can be replayed by hand.
const (
	gatewaySecret = "attack-suite-secret-0123456789abcdef0123456789"
	adminToken    = "attack-suite-admin-token-0123456789abcdef"
)

var (
	caddyBin string    // the gateway binary under attack
	workDir  string    // temp dir of this run: binary, configs, logs
	up       *upstream // what every gateway proxies to
	mainGW   *gateway  // memory store, challenge_at 5, otherwise defaults
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	workDir, err = os.MkdirTemp("", "advc-attack-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "attack:", err)
		return 1
	}
	defer os.RemoveAll(workDir)

	if caddyBin = os.Getenv("ATTACK_CADDY"); caddyBin == "" {
		caddyBin = filepath.Join(workDir, "caddy")
		start := time.Now()
		// The product binary, as `make build` makes it (no -race).
		cmd := exec.Command("go", "build", "-o", caddyBin, "./cmd/caddy")
		cmd.Dir = ".."
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "attack: go build ./cmd/caddy: %v\n%s", err, out)
			return 1
		}
		fmt.Printf("attack: built ./cmd/caddy in %v\n", time.Since(start).Round(time.Second))
	}

	up = newUpstream()
	defer up.srv.Close()

	mainGW, err = startGateway("main", gatewayOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "attack:", err)
		return 1
	}
	code := m.Run()
	stopGateways()
	fmt.Println(figures.line())
	return code
}

// upstream is the application behind the gateway. It records every request
// that reaches it, so the attacks can tell what got through.
type upstream struct {
	srv  *httptest.Server
	mu   sync.Mutex
	seen []seenRequest
}

type seenRequest struct {
	Method string
	URI    string // the request target as the gateway forwarded it
	Header http.Header
}

const upstreamBody = "upstream ok"

func newUpstream() *upstream {
	u := &upstream{}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.seen = append(u.seen, seenRequest{Method: r.Method, URI: r.RequestURI, Header: r.Header.Clone()})
		u.mu.Unlock()
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "%s %s\n", upstreamBody, r.URL.Path)
	}))
	return u
}

// mark returns the number of requests seen so far; since returns those
// seen after a mark.
func (u *upstream) mark() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.seen)
}

func (u *upstream) since(mark int) []seenRequest {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]seenRequest(nil), u.seen[mark:]...)
}

// gateway is one running bin/caddy.
type gateway struct {
	name    string
	cmd     *exec.Cmd
	host    string // 127.0.0.1:port
	base    string // http://127.0.0.1:port
	logPath string
	exited  chan struct{}
}

type gatewayOptions struct {
	// Extra lines inside the advcaptcha block.
	Extra []string
	// Hosts, when set, runs the gateway in a private mount namespace with
	// this text bind-mounted over /etc/hosts.
	Hosts string
}

var (
	gatewaysMu sync.Mutex
	gateways   []*gateway
	lazy       = map[string]*lazyGateway{}
)

type lazyGateway struct {
	once sync.Once
	gw   *gateway
	err  error
}

// sharedGateway starts the named gateway on first use; it runs until the
// end of the package.
func sharedGateway(t *testing.T, name string, o gatewayOptions) *gateway {
	t.Helper()
	gatewaysMu.Lock()
	l := lazy[name]
	if l == nil {
		l = &lazyGateway{}
		lazy[name] = l
	}
	gatewaysMu.Unlock()
	l.once.Do(func() { l.gw, l.err = startGateway(name, o) })
	if l.err != nil {
		t.Fatalf("starting gateway %s: %v", name, l.err)
	}
	return l.gw
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startGateway writes a Caddyfile (memory store, challenge_at 5, a fixed
// secret and admin token, plus o.Extra) and runs `caddy run` on it until it
// answers.
func startGateway(name string, o gatewayOptions) (*gateway, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(workDir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var extra strings.Builder
	for _, l := range o.Extra {
		extra.WriteString("\t\t" + l + "\n")
	}
	caddyfile := fmt.Sprintf(`{
	admin off
	auto_https off
	persist_config off
	skip_install_trust
}

:%d {
	bind 127.0.0.1
	advcaptcha {
		secret %s
		admin_token %s
		challenge_at 5
%s	}
	reverse_proxy %s
}
`, port, gatewaySecret, adminToken, extra.String(), strings.TrimPrefix(up.srv.URL, "http://"))
	cfgPath := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(cfgPath, []byte(caddyfile), 0o644); err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "caddy.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()

	args := []string{caddyBin, "run", "--config", cfgPath, "--adapter", "caddyfile"}
	env := append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	var cmd *exec.Cmd
	if o.Hosts != "" {
		hostsPath := filepath.Join(dir, "hosts")
		if err := os.WriteFile(hostsPath, []byte(o.Hosts), 0o644); err != nil {
			return nil, err
		}
		unshare, err := privateHostsCommand(hostsPath)
		if err != nil {
			return nil, err
		}
		// unshare execs (no --fork), and so does the shell: the process
		// started is the gateway itself.
		script := `mount --bind "$0" /etc/hosts && exec "$@"`
		cmd = exec.Command(unshare[0], append(append(unshare[1:], "sh", "-c", script, hostsPath), args...)...)
		// Go's own resolver reads /etc/hosts for reverse lookups too.
		env = append(env, "GODEBUG=netdns=go")
	} else {
		cmd = exec.Command(args[0], args[1:]...)
	}
	cmd.Env = env
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	gw := &gateway{name: name, cmd: cmd, host: fmt.Sprintf("127.0.0.1:%d", port), logPath: logPath, exited: make(chan struct{})}
	gw.base = "http://" + gw.host
	go func() { _ = cmd.Wait(); close(gw.exited) }()
	gatewaysMu.Lock()
	gateways = append(gateways, gw)
	gatewaysMu.Unlock()

	// Ready when it answers (an exempt path: no state is touched).
	c := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(90 * time.Second)
	for {
		select {
		case <-gw.exited:
			return nil, fmt.Errorf("gateway %s exited at start: %s", name, gw.logTail(30))
		default:
		}
		resp, err := c.Get(gw.base + "/robots.txt")
		if err == nil {
			resp.Body.Close()
			return gw, nil
		}
		if time.Now().After(deadline) {
			gw.stop()
			return nil, fmt.Errorf("gateway %s did not answer within 90s: %v\n%s", name, err, gw.logTail(30))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

var (
	unshareOnce sync.Once
	unshareCmd  []string
	unshareErr  error
)

// privateHostsCommand finds an unshare invocation that can bind-mount a
// file over /etc/hosts: as root a plain mount namespace, otherwise one in a
// user namespace.
func privateHostsCommand(probeHosts string) ([]string, error) {
	unshareOnce.Do(func() {
		path, err := exec.LookPath("unshare")
		if err != nil {
			unshareErr = fmt.Errorf("unshare (util-linux) is needed to give the gateway a private /etc/hosts: %w", err)
			return
		}
		var msgs []string
		for _, c := range [][]string{{path, "--mount"}, {path, "--mount", "--map-root-user"}} {
			probe := exec.Command(c[0], append(append([]string{}, c[1:]...), "sh", "-c", `mount --bind "$0" /etc/hosts && cat /etc/hosts`, probeHosts)...)
			out, err := probe.CombinedOutput()
			if err == nil {
				want, _ := os.ReadFile(probeHosts)
				if bytes.Equal(out, want) {
					unshareCmd = c
					return
				}
				err = errors.New("the bind mount did not take")
			}
			msgs = append(msgs, fmt.Sprintf("%s: %v: %s", strings.Join(c, " "), err, strings.TrimSpace(string(out))))
		}
		unshareErr = fmt.Errorf("cannot give the gateway a private /etc/hosts (root, or unprivileged user namespaces, are needed):\n%s", strings.Join(msgs, "\n"))
	})
	return unshareCmd, unshareErr
}

func (g *gateway) stop() {
	select {
	case <-g.exited:
		return
	default:
	}
	_ = g.cmd.Process.Signal(os.Interrupt)
	select {
	case <-g.exited:
	case <-time.After(10 * time.Second):
		_ = g.cmd.Process.Kill()
		<-g.exited
	}
}

func stopGateways() {
	gatewaysMu.Lock()
	defer gatewaysMu.Unlock()
	var wg sync.WaitGroup
	for _, g := range gateways {
		wg.Add(1)
		go func() { defer wg.Done(); g.stop() }()
	}
	wg.Wait()
}

// logTail returns the last n lines of the gateway's log.
func (g *gateway) logTail(n int) string {
	b, _ := os.ReadFile(g.logPath)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// rssKB reads the gateway's resident set size.
func (g *gateway) rssKB() (int, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", g.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			return strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
		}
	}
	return 0, errors.New("no VmRSS in /proc status")
}

// transports are shared per source address: an attacker IP.
var (
	transportsMu sync.Mutex
	transports   = map[string]*http.Transport{}
)

// transportFrom dials from the given loopback address, so the gateway sees
// each attacker IP as a different client.
func transportFrom(ip string) *http.Transport {
	transportsMu.Lock()
	defer transportsMu.Unlock()
	if t := transports[ip]; t != nil {
		return t
	}
	d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	t := &http.Transport{
		DialContext:         d.DialContext,
		MaxIdleConns:        64,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true, // the headers say what a browser accepts
	}
	transports[ip] = t
	return t
}

// dialFrom opens a raw connection from ip, for request lines no HTTP
// client would send as they are.
func dialFrom(ctx context.Context, ip, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	return d.DialContext(ctx, "tcp", addr)
}
