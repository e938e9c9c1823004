package caddymodule_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/redis/go-redis/v9"

	"github.com/advcaptcha/advcaptcha/internal/redistest"
	"github.com/advcaptcha/advcaptcha/modelregistry"
	"github.com/advcaptcha/advcaptcha/solver"
	"github.com/advcaptcha/advcaptcha/store"
)

// Scale-out: two Caddy instances — this test process and a second process
// (the test binary re-executed as a plain Caddy) — on one real three-master
// Redis Cluster.

const (
	childConfigEnv = "ADVC_TEST_CHILD_CADDYFILE"
	secondURL      = "http://localhost:9180"
)

// runChildCaddy makes this process a Caddy serving the Caddyfile named in
// the environment, until it is killed. TestMain calls it first.
func runChildCaddy() {
	path := os.Getenv(childConfigEnv)
	if path == "" {
		return
	}
	b, err := os.ReadFile(path)
	if err == nil {
		var cfg []byte
		if cfg, _, err = caddyconfig.GetAdapter("caddyfile").Adapt(b, map[string]any{"filename": path}); err == nil {
			err = caddy.Load(cfg, true)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "child caddy:", err)
		os.Exit(2)
	}
	select {}
}

// smallModelFile writes an untrained model small enough that captchas
// against it cost little under the race detector; seed makes versions.
func smallModelFile(t *testing.T, seed uint64) (string, string) {
	arch := solver.DefaultArchitecture()
	arch.Conv = []solver.ConvBlock{{Filters: 8, PoolH: 2, PoolW: 2}, {Filters: 8, PoolH: 2, PoolW: 2}, {Filters: 8, PoolH: 2, PoolW: 1}, {Filters: 8, PoolH: 2, PoolW: 1}}
	arch.Hidden, arch.Layers = 16, 1
	m, err := solver.NewModel(arch, seed)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), fmt.Sprintf("small-%d.crnn", seed))
	if err := m.Save(path); err != nil {
		t.Fatal(err)
	}
	return path, m.Version()
}

func startSecondInstance(t *testing.T, opts string) {
	dir := t.TempDir()
	cf := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(cf, []byte(fmt.Sprintf(`{
	admin off
	http_port 9180
	grace_period 1ns
	skip_install_trust
	servers {
		trusted_proxies static 127.0.0.1/32 ::1/128
	}
	log {
		output file %s
	}
}
:9180 {
	advcaptcha {
		%s
	}
	respond "second instance"
}
`, filepath.Join(dir, "caddy.log"), opts)), 0o644); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable() // os.Args[0] is "caddy" once Caddy has started
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, "-test.run=^$")
	cmd.Env = append(os.Environ(), childConfigEnv+"="+cf)
	out, err := os.Create(filepath.Join(dir, "out.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); out.Close() })
	deadline := time.Now().Add(60 * time.Second)
	for {
		if res, err := http.Get(secondURL + "/robots.txt"); err == nil {
			res.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(dir, "out.log"))
			t.Fatalf("the second instance did not start within 60 s:\n%s", b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// at sends a request to the second instance.
func at(t *testing.T, method, path string, h http.Header, body string) reply {
	t.Helper()
	req, err := http.NewRequest(method, secondURL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	if method == "POST" && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	return do(t, req)
}

// clusterRecord reads a challenge record from the Cluster.
func clusterRecord(t *testing.T, rdb *redis.ClusterClient, id string) (text, method, model string) {
	t.Helper()
	b, err := rdb.Get(context.Background(), "advc:ch:"+id).Bytes()
	if err != nil {
		t.Fatalf("challenge %s not in the Cluster: %v", id, err)
	}
	var rec struct{ Text, Method, Model string }
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	return rec.Text, rec.Method, rec.Model
}

func challengeID(t *testing.T, r reply) string {
	t.Helper()
	m := idPattern.FindStringSubmatch(r.body)
	if r.status != http.StatusForbidden || m == nil {
		t.Fatalf("want a captcha page, got %d %.300s", r.status, r.body)
	}
	return m[1]
}

func TestTwoInstancesShareACluster(t *testing.T) {
	cl := redistest.StartCluster(t)
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs})
	defer rdb.Close()
	model, version := smallModelFile(t, 1)
	common := fmt.Sprintf("redis %s\nsecret %s\nadmin_token %s\nchallenge captcha\nstrict_limit ip 20\nsolver_model %s",
		strings.Join(cl.Addrs, " "), testSecret, adminToken, model)
	// fallback clean: the test tells pooled captchas from clean ones
	// served while the pool fills, rather than waiting for it.
	attack := "epsilon 12\n\t\t" + quickAttack + "\n\t\tfollow_models 200ms\n\t\tpool_size 6\n\t\tfallback clean"
	// This process generates; the second instance only serves from the
	// shared pool.
	up := newUpstream(t)
	load(t, common+"\nadversarial {\n\t\t"+attack+"\n\t\tcpu_budget 1\n\t}", up)
	startSecondInstance(t, common+"\nadversarial {\n\t\t"+attack+"\n\t\texternal_workers\n\t}")

	// A client challenged on one instance answers on the other, and its
	// clearance is honoured by the first.
	h := suspicious("198.51.100.150")
	r := get(t, "/basket", h)
	id := challengeID(t, r)
	h.Set("Cookie", "advc_device="+deviceCookie(t, r))
	truth, _, _ := clusterRecord(t, rdb, id)
	r = at(t, "POST", "/.advcaptcha/answer", h, answerForm(id, truth, "/basket"))
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/basket" {
		t.Fatalf("answer on the second instance: %d %q %.200s", r.status, r.header.Get("Location"), r.body)
	}
	h.Set("Cookie", h.Get("Cookie")+"; advc_clearance="+responseCookie(t, r, "advc_clearance"))
	if r := get(t, "/basket", h); r.status != 200 {
		t.Fatalf("the first instance refused the second's clearance: %d", r.status)
	}

	// The pool is shared: the second instance runs no workers, yet serves
	// adversarial captchas computed by the first.
	deadline := time.Now().Add(3 * time.Minute)
	for {
		r := at(t, "GET", "/", suspicious("198.51.100.151"), "")
		_, method, m := clusterRecord(t, rdb, challengeID(t, r))
		if method != "none" {
			if !strings.HasPrefix(method, "mifgsm ε=12") || m != version {
				t.Fatalf("second instance served %q against %q, want mifgsm ε=12 against %s", method, m, version)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the second instance served no pooled captcha within 3 minutes")
		}
		time.Sleep(500 * time.Millisecond)
	}

	// Counters are shared: 15 requests to each instance within a second
	// pass the strict limit of 20 together, and both block the IP.
	bot := sharedBurst(t, "198.51.100.152")
	if r := get(t, "/", bot); r.status != 403 {
		t.Errorf("first instance after the shared burst: %d", r.status)
	}
	if r := at(t, "GET", "/", bot, ""); r.status != 403 {
		t.Errorf("second instance after the shared burst: %d", r.status)
	}

	// Labels are shared: an operator labels on the second, the first blocks.
	client := labelOnSecondInstance(t, "198.51.100.153")
	if r := get(t, "/", client); r.status != 403 {
		t.Errorf("the first instance did not honour the second's label: %d", r.status)
	}

	// Model versions are shared: one published to the Cluster is followed
	// by both — the first generates against it, the second serves it.
	st, err := store.NewRedis(store.RedisOptions{Addrs: cl.Addrs, KeyPrefix: "advc:"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	next, nextVersion := smallModelFile(t, 2)
	m2, err := solver.Load(next)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := testRegistry(t, st).Publish(context.Background(), m2, "", modelregistry.Version{Note: "scale-out test"}); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(3 * time.Minute)
	for i := 0; ; i++ {
		r := at(t, "GET", "/", suspicious(fmt.Sprintf("198.51.101.%d", i%250)), "")
		if _, _, m := clusterRecord(t, rdb, challengeID(t, r)); m == nextVersion {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the second instance served no captcha of the published version within 3 minutes")
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// TestLocalFirstInstances: two instances with local_first on one Redis.
// Each stops a burst on its own at once; what the other counted and
// labelled arrives with the next batches (100ms); and a Redis outage turns
// on on_store_error after the first failed batch.
func TestLocalFirstInstances(t *testing.T) {
	srv := redistest.Start(t)
	common := fmt.Sprintf("redis %s {\n\t\tlocal_first\n\t\ttimeout 100ms\n\t}\nsecret %s\nadmin_token %s\nstrict_limit ip 20\non_store_error closed",
		srv.Addr, testSecret, adminToken)
	up := newUpstream(t)
	load(t, common, up)
	startSecondInstance(t, common+"\nadversarial off")

	h := browser("198.51.100.160")
	h.Set("Cookie", "advc_device="+deviceCookie(t, get(t, "/", h)))
	if statuses := burst(t, h, 300); statuses[200] == 0 || statuses[403] == 0 {
		t.Fatalf("burst of 300 on one instance: %v; want some allowed, then blocked", statuses)
	}

	// 15 requests to each instance pass the limit of 20 only together.
	// An instance learns what the other counted with its own next batch
	// that carries the client, so one more request may pass each; three
	// tries keep each instance's own count (with the first request's, 19)
	// under the limit.
	bot := sharedBurst(t, "198.51.100.161")
	for name, send := range map[string]func() reply{
		"first":  func() reply { return get(t, "/", bot) },
		"second": func() reply { return at(t, "GET", "/", bot, "") },
	} {
		for try := 1; send().status != 403; try++ {
			if try == 3 {
				t.Fatalf("the %s instance did not block the shared burst after 3 tries", name)
			}
			time.Sleep(150 * time.Millisecond)
		}
	}

	// A label set on the second instance reaches the first within a batch
	// of the first's that carries the client.
	client := labelOnSecondInstance(t, "198.51.100.162")
	deadline := time.Now().Add(2 * time.Second)
	for get(t, "/", client).status != 403 {
		if time.Now().After(deadline) {
			t.Fatal("the first instance did not honour the second's label within 2s")
		}
		time.Sleep(50 * time.Millisecond)
	}

	srv.Kill()
	deadline = time.Now().Add(3 * time.Second)
	for get(t, "/", browser("198.51.100.163")).status != http.StatusServiceUnavailable {
		if time.Now().After(deadline) {
			t.Fatal("with Redis down and on_store_error closed, requests still pass after 3s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sharedBurst sends 15 requests of one browser at ip to each instance at
// once, which together pass a strict limit of 20, and returns its headers.
func sharedBurst(t *testing.T, ip string) http.Header {
	bot := browser(ip)
	bot.Set("Cookie", "advc_device="+deviceCookie(t, get(t, "/", bot)))
	var wg sync.WaitGroup
	for _, send := range []func(){
		func() { get(t, "/", bot) },
		func() { at(t, "GET", "/", bot, "") },
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 15 {
				send()
			}
		}()
	}
	wg.Wait()
	return bot
}

// labelOnSecondInstance has a browser at ip pass the first instance, then
// labels its IP through the second's operator API, and returns its headers.
func labelOnSecondInstance(t *testing.T, ip string) http.Header {
	client := browser(ip)
	client.Set("Cookie", "advc_device="+deviceCookie(t, get(t, "/", client)))
	if r := get(t, "/", client); r.status != 200 {
		t.Fatalf("before the label: %d", r.status)
	}
	body := fmt.Sprintf(`{"entity":"ip:%s","action":"confirm","reason":"seen on the other instance"}`, ip)
	if r := at(t, "POST", "/.advcaptcha/admin/labels", adminHeader(adminToken), body); r.status != 200 {
		t.Fatalf("label on the second instance: %d %s", r.status, r.body)
	}
	return client
}
