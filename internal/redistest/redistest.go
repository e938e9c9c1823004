// Package redistest starts real redis-server processes for tests, on free
// loopback ports, and can kill and restart them to test failure handling.
package redistest

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Server is a redis-server child process.
type Server struct {
	Addr string
	t    testing.TB
	port int
	dir  string
	// extra are further redis-server arguments (cluster mode, TLS).
	extra []string
	// tls, when set, is how start's readiness check connects.
	tls *tls.Config
	// password, when set, is sent with AUTH by the readiness check.
	password string
	mu       sync.Mutex
	cmd      *exec.Cmd
}

// Start launches redis-server on a free port and stops it when the test
// ends. A missing redis-server fails the test: `make test` installs it.
func Start(t testing.TB) *Server {
	t.Helper()
	return launch(t, "")
}

// SkipShort skips t under go test -short, the fast loop of unit tests,
// because it needs what: a real redis-server, Caddy or Chromium. make test
// never runs with -short, so nothing is skipped there.
func SkipShort(t testing.TB, what string) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: " + what)
	}
}

// launch starts a redis-server with extra arguments, which authenticates
// with password when it is not "", and stops it when the test ends.
func launch(t testing.TB, password string, extra ...string) *Server {
	t.Helper()
	SkipShort(t, "starts redis-server")
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("redis-server not found on PATH (run `make test`, which installs Debian's redis-server): %v", err)
	}
	s := &Server{t: t, port: freePort(t), dir: t.TempDir(), extra: extra, password: password}
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
	s.start()
	t.Cleanup(s.Kill)
	return s
}

func (s *Server) start() {
	s.t.Helper()
	port := []string{"--port", strconv.Itoa(s.port)}
	if s.tls != nil {
		port = nil // extra holds --port 0 --tls-port N
	}
	args := append(append(port,
		"--bind", "127.0.0.1",
		"--dir", s.dir, "--save", "", "--appendonly", "no",
		"--daemonize", "no", "--loglevel", "warning"), s.extra...)
	cmd := exec.Command("redis-server", args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		s.t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start redis-server: %v", err)
	}
	go func() { // drain; only errors are worth a line in the test output
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if line := sc.Text(); strings.Contains(line, "# Error") || strings.Contains(line, "# Fatal") {
				fmt.Fprintln(os.Stderr, "redis-server:", line)
			}
		}
	}()
	s.mu.Lock()
	s.cmd = cmd
	s.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.Addr, 100*time.Millisecond)
		if err == nil && s.tls != nil {
			tc := tls.Client(c, s.tls)
			_ = tc.SetDeadline(time.Now().Add(time.Second))
			if err = tc.Handshake(); err != nil {
				c.Close()
			} else {
				c = tc
			}
		}
		if err == nil {
			ping, want := "PING\r\n", "+PONG"
			if s.password != "" {
				ping, want = "AUTH "+s.password+"\r\n", "+OK"
			}
			_, _ = c.Write([]byte(ping))
			buf := make([]byte, 7)
			_ = c.SetReadDeadline(time.Now().Add(time.Second))
			n, _ := c.Read(buf)
			c.Close()
			if strings.HasPrefix(string(buf[:n]), want) {
				return
			}
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("redis-server on %s did not answer PING within 10s", s.Addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill stops the server abruptly (SIGKILL), as a crash would.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd := s.cmd
	s.cmd = nil
	s.mu.Unlock()
	if cmd != nil && cmd.Process != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
}

// StartPersistent is Start with the append-only file on and synced on every
// write, so that what a write acknowledged survives Kill and Restart.
func StartPersistent(t testing.TB) *Server {
	t.Helper()
	return launch(t, "", "--appendonly", "yes", "--appendfsync", "always")
}

// StartWithPassword is Start with requirepass set to password (which must
// not need quoting on a RESP command line).
func StartWithPassword(t testing.TB, password string) *Server {
	t.Helper()
	return launch(t, password, "--requirepass", password)
}

// Restart starts the server again on the same port: empty, unless it was
// started with StartPersistent.
func (s *Server) Restart() {
	s.t.Helper()
	s.Kill()
	s.start()
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Cluster is a Redis Cluster of three masters (no replicas) on loopback.
type Cluster struct {
	Addrs []string
	nodes []*Server
}

// StartCluster starts three cluster-enabled redis-server processes and
// joins them with `redis-cli --cluster create`, waiting until the cluster
// reports itself healthy. They stop when the test ends.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	if _, err := exec.LookPath("redis-cli"); err != nil {
		t.Fatalf("redis-cli not found on PATH (Debian's redis-tools, installed with redis-server): %v", err)
	}
	c := &Cluster{}
	for i := 0; i < 3; i++ {
		s := &Server{t: t, port: freePort(t), dir: t.TempDir(), extra: []string{
			"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000",
		}}
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
		s.start()
		t.Cleanup(s.Kill)
		c.nodes = append(c.nodes, s)
		c.Addrs = append(c.Addrs, s.Addr)
	}
	args := append([]string{"--cluster", "create"}, c.Addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		ok := true
		for _, s := range c.nodes {
			_, port, _ := net.SplitHostPort(s.Addr)
			out, err := exec.Command("redis-cli", "-p", port, "cluster", "info").Output()
			if err != nil || !strings.Contains(string(out), "cluster_state:ok") {
				ok = false
			}
		}
		if ok {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatal("Redis Cluster did not reach cluster_state:ok within 20s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Sentinel is a Redis master watched by one Sentinel.
type Sentinel struct {
	Master *Server
	// Replica replicates Master, for StartSentinelWithReplica; nil otherwise.
	Replica *Server
	// Addr is the Sentinel's address; MasterName the name it knows the
	// master by.
	Addr       string
	MasterName string
}

// StartSentinel starts a master and a Sentinel monitoring it, and waits
// until the Sentinel reports the master.
func StartSentinel(t testing.TB) *Sentinel {
	t.Helper()
	return startSentinel(t, false)
}

// StartSentinelWithReplica is StartSentinel with a replica of the master,
// in sync before it returns, which the Sentinel promotes a few seconds
// after the master dies.
func StartSentinelWithReplica(t testing.TB) *Sentinel {
	t.Helper()
	return startSentinel(t, true)
}

func startSentinel(t testing.TB, withReplica bool) *Sentinel {
	t.Helper()
	master := Start(t)
	var replica *Server
	if withReplica {
		replica = launch(t, "", "--replicaof", "127.0.0.1", strconv.Itoa(master.port))
		waitFor(t, "the replica to sync", func() bool {
			out, _ := exec.Command("redis-cli", "-p", strconv.Itoa(replica.port), "info", "replication").Output()
			return strings.Contains(string(out), "master_link_status:up")
		})
	}
	port := freePort(t)
	dir := t.TempDir()
	conf := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nsentinel monitor advc 127.0.0.1 %d 1\n"+
		"sentinel down-after-milliseconds advc 1000\nsentinel failover-timeout advc 5000\n",
		port, dir, master.port)
	path := dir + "/sentinel.conf"
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("redis-server", path, "--sentinel")
	if err := cmd.Start(); err != nil {
		t.Fatalf("start redis-server --sentinel: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	s := &Sentinel{Master: master, Replica: replica, Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), MasterName: "advc"}
	waitFor(t, "the Sentinel to report the master", func() bool {
		return s.MasterAddr() == master.Addr
	})
	if replica != nil {
		waitFor(t, "the Sentinel to discover the replica", func() bool {
			out, _ := exec.Command("redis-cli", "-p", strconv.Itoa(port), "sentinel", "replicas", "advc").Output()
			return strings.Contains(string(out), strconv.Itoa(replica.port))
		})
	}
	return s
}

// MasterAddr is the master's address as the Sentinel reports it now, or ""
// when it cannot be asked.
func (s *Sentinel) MasterAddr() string {
	_, port, _ := net.SplitHostPort(s.Addr)
	out, err := exec.Command("redis-cli", "-p", port, "sentinel", "get-master-addr-by-name", s.MasterName).Output()
	f := strings.Fields(string(out))
	if err != nil || len(f) != 2 {
		return ""
	}
	return net.JoinHostPort(f[0], f[1])
}

// waitFor polls ok for up to 10 s and ends the test when it stays false.
func waitFor(t testing.TB, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 10s for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
