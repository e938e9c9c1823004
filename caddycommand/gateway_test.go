package caddycommand

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/pflag"

	"github.com/advcaptcha/advcaptcha/caddymodule"
	"github.com/advcaptcha/advcaptcha/captchapool"
	"github.com/advcaptcha/advcaptcha/internal/redistest"
	"github.com/advcaptcha/advcaptcha/perturb"
	"github.com/advcaptcha/advcaptcha/solver"
	"github.com/advcaptcha/advcaptcha/solver/solvertest"
)

// writeCaddyfile writes a gateway's Caddyfile whose advcaptcha handler has
// these options.
func writeCaddyfile(t *testing.T, options string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "Caddyfile")
	body := ":8080 {\n\tadvcaptcha {\n\t\t" + strings.ReplaceAll(options, "\n", "\n\t\t") + "\n\t}\n}\n"
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// flagAttack is the attack the attack flags args describe.
func flagAttack(t *testing.T, args ...string) perturb.Config {
	t.Helper()
	var rf redisFlags
	var a attackFlags
	f := pflag.NewFlagSet("test", pflag.ContinueOnError)
	rf.register(f) // --config
	a.register(f)
	if err := f.Parse(args); err != nil {
		t.Fatal(err)
	}
	c, err := a.config()
	if err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	return c
}

// TestCaddyfileAndFlagsShareThePoolKey: for every attack setting, a
// gateway whose Caddyfile says it and `caddy advcaptcha pool` given the
// equivalent flag — or the Caddyfile itself with --config — fill and serve
// the same pool, so external workers fill what the gateways serve; and the
// setting does change the pool unless it names the default.
func TestCaddyfileAndFlagsShareThePoolKey(t *testing.T) {
	style := defaultStyle(t)
	key := func(c perturb.Config) string { return captchapool.PoolKey(style, c, "model") }
	plain := key(flagAttack(t))
	for _, tc := range []struct {
		setting   string
		flags     []string
		isDefault bool
	}{
		{"method bim", []string{"--method", "bim"}, false},
		{"method fgsm", []string{"--method", "fgsm"}, false},
		{"epsilon 12", []string{"--epsilon", "12"}, false},
		{"step 3", []string{"--step", "3"}, false},
		{"step 12", []string{"--step", "12"}, true}, // ⌈2.5·48/10⌉, the default
		{"iterations 7", []string{"--iterations", "7"}, false},
		{"iterations 10", []string{"--iterations", "10"}, true},
		{"momentum 1", []string{"--momentum", "1"}, true},
		{"momentum 0.5", []string{"--momentum", "0.5"}, false},
		{"targeted", []string{"--targeted"}, false},
		{"eot median binarize", []string{"--eot", "median,binarize"}, false},
		{"eot off", []string{"--eot", "off"}, false},
		{"eot_samples 3", []string{"--eot-samples", "3"}, false},
		{"shift 2", []string{"--shift", "2"}, false},
		{"shift 0", []string{"--shift", "0"}, true},
		{"smooth 0", []string{"--smooth", "0"}, false},
		{"smooth 1.5", []string{"--smooth", "1.5"}, false},
		{"min_ssim 0", []string{"--min-ssim", "0"}, false},
		{"min_ssim 0.7", []string{"--min-ssim", "0.7"}, false},
		{"stroke_epsilon 2", []string{"--stroke-epsilon", "2"}, true},
		{"stroke_epsilon 8", []string{"--stroke-epsilon", "8"}, false}, // the default until 2026-12-08
		{"stroke_epsilon 0", []string{"--stroke-epsilon", "0"}, false},
	} {
		path := writeCaddyfile(t, "adversarial {\n\t"+tc.setting+"\n}")
		hs, err := caddymodule.LoadHandlers(path)
		if err != nil || len(hs) != 1 {
			t.Fatalf("%s: %d handlers, %v", tc.setting, len(hs), err)
		}
		gwAttack := hs[0].Adversarial.AttackConfig()
		if err := gwAttack.Validate(); err != nil {
			t.Fatalf("%s: %v", tc.setting, err)
		}
		gw, flags, config := key(gwAttack), key(flagAttack(t, tc.flags...)), key(flagAttack(t, "--config", path))
		if gw != flags || gw != config {
			t.Errorf("%s: the gateway's pool %s, the command's with %v %s, with --config %s", tc.setting, gw, tc.flags, flags, config)
		}
		if (gw == plain) != tc.isDefault {
			t.Errorf("%s: pool %s, the default's %s: want them equal %v", tc.setting, gw, plain, tc.isDefault)
		}
	}
	// A flag given replaces what the Caddyfile says.
	path := writeCaddyfile(t, "adversarial {\n\tsmooth 0\n\tepsilon 12\n}")
	if got := flagAttack(t, "--config", path, "--epsilon", "9"); got.Epsilon != 9 || got.Smooth != 0 {
		t.Errorf("--config with smooth 0 and epsilon 12, then --epsilon 9: %+v", got)
	}
}

// TestPoolCommandReadsTheGatewayConfig: with --config, the pool command
// reaches the gateway's Redis (its address from an env placeholder, its
// key prefix) and fills the very pool the gateway serves from — its model,
// attack and pool size — with no other flag.
func TestPoolCommandReadsTheGatewayConfig(t *testing.T) {
	srv := redistest.Start(t)
	t.Setenv("ADVCAPTCHA_SECRET", cmdSecret)
	t.Setenv("GATEWAY_REDIS", srv.Addr)
	model := solvertest.UntrainedFile(t)
	path := writeCaddyfile(t, fmt.Sprintf(`redis {env.GATEWAY_REDIS} {
	key_prefix site:
}
solver_model %s
adversarial {
	external_workers
	pool_size 2
	iterations 2
	eot median
	eot_samples 2
	smooth 0
	momentum 1
	follow_models off
}`, model))
	hs, err := caddymodule.LoadHandlers(path)
	if err != nil {
		t.Fatal(err)
	}
	m, err := solver.Load(model)
	if err != nil {
		t.Fatal(err)
	}
	want := "site:" + captchapool.PoolKey(defaultStyle(t), hs[0].Adversarial.AttackConfig(), m.Version())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- execute(ctx, "pool", "--config", path, "--workers", "1") }()
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		if n, _ := rdb.LLen(ctx, want).Result(); n == 2 {
			break
		}
		if time.Now().After(deadline) {
			keys, _ := rdb.Keys(ctx, "*").Result()
			t.Fatalf("the pool command did not fill the gateway's pool %s within a minute; keys %v", want, keys)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if keys, _ := rdb.Keys(context.Background(), "*pool:*").Result(); len(keys) != 1 {
		t.Fatalf("pools %v, want only the gateway's", keys)
	}
	// A gateway whose adversarial captchas are off has no pool to fill.
	off := writeCaddyfile(t, "redis "+srv.Addr+"\nadversarial off")
	if err := execute(context.Background(), "pool", "--config", off); err == nil || !strings.Contains(err.Error(), "off") {
		t.Fatalf("pool for a gateway with adversarial off: %v", err)
	}
}

// TestExtractReadsTheGatewayConfig: extract --config reaches the gateway's
// Redis from its Caddyfile alone, and its hardening attack is the
// gateway's.
func TestExtractReadsTheGatewayConfig(t *testing.T) {
	srv, st := startRedisStore(t)
	writeBotAnswers(t, st, 30)
	path := writeCaddyfile(t, "redis "+srv.Addr+"\nadversarial {\n\tsmooth 0\n\teot off\n}")
	out, err := output(t, extractCommand(), "--config", path, "--out", t.TempDir())
	if err != nil || !strings.Contains(out, "attackers' answers: 20 ") {
		t.Fatalf("extract --config: %q %v", out, err)
	}
	if got := flagAttack(t, "--config", path); got.Smooth != 0 || len(got.EOT) != 0 || got.Epsilon != perturb.DefaultConfig().Epsilon {
		t.Fatalf("the hardening attack from --config: %+v", got)
	}
}
