// Command simulate is the learning loop's end-to-end benchmark (`make
// simulate`). A simulated attacker — a solver this project trained on clean
// captchas, with another architecture and seed than the substitute — asks a
// real Caddy with advcaptcha (on a real redis-server) for captchas over
// HTTP, as a bot: it gets labelled, downloads what it is served and answers
// with its solver. Stages:
//
//	clean             adversarial captchas off
//	adversarial       captchas perturbed against the shipped substitute
//	adapted           the attacker fine-tunes on adversarial captchas a
//	                  human farm labelled for it, and comes back
//	after_extraction  our extraction trains the substitute on the answers
//	                  the gateway collected, publishes it, the gateway
//	                  follows it, and the adapted attacker comes back
//
// The last line reads
// "stages: clean=P% adversarial=P% adapted=P% after_extraction=P% fidelity=P%",
// fidelity being the new model's agreement with the held-out attacker
// answers character by character, what the publishing rule judges (until
// 2026-12-02 it was of whole answers, which the report still gives).
package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"image/png"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/advcaptcha/advcaptcha"
	"github.com/advcaptcha/advcaptcha/captcha"
	"github.com/advcaptcha/advcaptcha/captchapool"
	"github.com/advcaptcha/advcaptcha/extraction"
	"github.com/advcaptcha/advcaptcha/modelregistry"
	"github.com/advcaptcha/advcaptcha/perturb"
	"github.com/advcaptcha/advcaptcha/solver"
	"github.com/advcaptcha/advcaptcha/store"
)

var (
	attackerPath = flag.String("attacker", "bench/adversarial/solvers/narrow.crnn", "the attacker's solver, trained on clean captchas")
	perStage     = flag.Int("n", 200, "captchas the attacker answers in each measured stage")
	collectN     = flag.Int("collect", 600, "captchas the adapted attacker answers before the extraction (its answers are the extraction's data)")
	farmN        = flag.Int("farm", 1000, "adversarial captchas the attacker's human farm labels for its adaptation")
	perIdentity  = flag.Int("per-identity", 8, "captchas the attacker answers from one IP and device before it bursts and is labelled")
	out          = flag.String("out", "bench/simulate/RESULTS.md", "results file")
	learnerPath  = flag.String("learner", "", "if set, the extraction fine-tunes this model instead of the substitute (advcaptcha extract --learner), e.g. bench/adversarial/solvers/second.crnn")
	companion    = flag.Bool("companion", true, "let the extraction publish a more faithful model that reads clean captchas less well as a companion of the substitute (as advcaptcha extract does by default)")
	distill      = flag.Float64("distill", extraction.DefaultDistill, "a pair share refused for its clean accuracy is fine-tuned again with the substitute distilled on the clean captchas at this weight, as advcaptcha extract does (0: no second try)")
	companionMax = flag.Float64("companion-max-drop", 0, "clean accuracy a companion may lose below the root (0: the extraction's default, 10 points)")
	keep         = flag.String("keep", "", "if set, a directory to keep the adapted attacker (attacker-adapted.crnn) and the extraction's dataset (train/, heldout/) in, to study the extraction offline")
)

const sitePort = 9380

// logger is the simulation's own: Caddy redirects the standard logger.
var logger = log.New(os.Stderr, "", log.Ltime)

func main() {
	flag.Parse()
	if err := run(); err != nil {
		logger.Fatal(err)
	}
}

type sim struct {
	redisAddr string
	st        *store.Redis
	attacker  *solver.Solver
	nextIP    int
	report    bytes.Buffer
}

func run() error {
	started := time.Now()
	ctx := context.Background()
	s := &sim{}
	stopRedis, err := s.startRedis()
	if err != nil {
		return err
	}
	defer stopRedis()
	upstream, err := startUpstream()
	if err != nil {
		return err
	}
	defer upstream.Close()

	am, err := solver.Load(*attackerPath)
	if err != nil {
		return fmt.Errorf("the attacker's solver: %w (train it with bench/adversarial/train-transfer.sh)", err)
	}
	sub, err := solver.Default()
	if err != nil {
		return fmt.Errorf("the substitute: %w", err)
	}
	if s.attacker, err = solver.New(am, solver.Options{}); err != nil {
		return err
	}
	s.logf("attacker %s (%v); substitute %s (%v)", am.Version(), am.Arch, sub.Version(), sub.Arch)

	// (a) clean captchas.
	if err := s.load(upstream.Addr().String(), "adversarial off"); err != nil {
		return err
	}
	clean, err := s.attack(*perStage, func(string) bool { return true })
	if err != nil {
		return err
	}
	s.logf("clean: attacker solved %s", clean)

	// (b) adversarial captchas against the shipped substitute.
	if err := s.load(upstream.Addr().String(), adversarialBlock); err != nil {
		return err
	}
	isSub := func(m string) bool { return m == sub.Version() }
	adv, err := s.attack(*perStage, isSub)
	if err != nil {
		return err
	}
	s.logf("adversarial: attacker solved %s", adv)

	// (c) the attacker adapts: its human farm labels adversarial captchas
	// made the way the gateway makes them, and it fine-tunes on them.
	adapted, err := s.adapt(ctx, am, sub)
	if err != nil {
		return err
	}
	if s.attacker, err = solver.New(adapted, solver.Options{}); err != nil {
		return err
	}
	if *keep != "" {
		if err := os.MkdirAll(*keep, 0o755); err != nil {
			return err
		}
		if err := adapted.Save(filepath.Join(*keep, "attacker-adapted.crnn")); err != nil {
			return err
		}
	}
	since := time.Now()
	adaptedRate, err := s.attack(*collectN, isSub)
	if err != nil {
		return err
	}
	s.logf("adapted: attacker solved %s", adaptedRate)

	// (d) extraction on the answers collected, as `extract --tune --publish`.
	o, err := s.extract(ctx, since)
	if err != nil {
		return err
	}
	res := o.Result
	if res == nil {
		return fmt.Errorf("extraction: nothing measured: %s", o.Why)
	}
	// (e) the gateway follows the new version, if there is one — a model
	// that is not better is not published, and then the gateway keeps
	// serving captchas against the one it has — and the adapted attacker
	// returns.
	serving := sub.Version()
	if o.Published == nil {
		s.logf("extraction: not published (%s); the gateway keeps %s", res.Why, sub.Version())
	} else {
		// What served captchas record: the models attacked, joined by "+".
		serving = strings.Join(o.Published.Attacked(), "+")
		s.logf("extraction: %s; published %s", res.Why, serving)
	}
	after, err := s.attack(*perStage, func(m string) bool { return m == serving })
	if err != nil {
		return err
	}
	s.logf("after extraction: attacker solved %s", after)

	line := fmt.Sprintf("stages: clean=%s adversarial=%s adapted=%s after_extraction=%s fidelity=%.1f%%",
		clean.pct(), adv.pct(), adaptedRate.pct(), after.pct(), 100*res.After.CharFidelity)
	s.logf("took %v", time.Since(started).Round(time.Second))
	if err := s.writeReport(line); err != nil {
		return err
	}
	fmt.Println(line)
	return nil
}

// simSecret is the gateway's secret in the config load writes: model
// versions are published signed with it.
const simSecret = "simulate-secret-0123456789abcdefghij"

// adversarialBlock is the gateway's adversarial configuration in stages
// (b)–(e): the production attack, computed on request when the pool is
// empty so that every captcha is adversarial, following published models.
const adversarialBlock = `adversarial {
		workers 2
		cpu_budget 1
		pool_size 100
		fallback sync
		follow_models 1s
	}`

func (s *sim) logf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	logger.Print(msg)
	fmt.Fprintf(&s.report, "- %s\n", msg)
}

// rate is a share of correct answers.
type rate struct{ solved, total int }

func (r rate) pct() string {
	if r.total == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(r.solved)/float64(r.total))
}

func (r rate) String() string { return fmt.Sprintf("%d/%d = %s", r.solved, r.total, r.pct()) }

func (s *sim) startRedis() (func(), error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir, err := os.MkdirTemp("", "advcaptcha-simulate-")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
		"--save", "", "--appendonly", "no", "--loglevel", "warning")
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("redis-server (apt-get install redis-server): %w", err)
	}
	s.redisAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	stop := func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); os.RemoveAll(dir) }
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", s.redisAddr); err == nil {
			c.Close()
			break
		}
		if i == 100 {
			stop()
			return nil, errors.New("redis-server did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if s.st, err = store.NewRedis(store.RedisOptions{Addrs: []string{s.redisAddr}, KeyPrefix: "advc:"}); err != nil {
		stop()
		return nil, err
	}
	return func() { s.st.Close(); stop() }, nil
}

func startUpstream() (net.Listener, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	go http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "the protected site\n") }))
	return l, nil
}

// load (re)configures the gateway. Each identity's burst trips the strict
// per-IP limit, which labels it: the bot behaviour the learning loop uses.
// Challenges start with the slide bar (the default), so a burst of page
// requests gets cheap slide challenges; the attacker skips the slide and
// asks /.advcaptcha/challenge for its captchas (with "challenge captcha"
// every page request of a burst would be a captcha computed on request).
func (s *sim) load(upstream, adversarial string) error {
	cf := fmt.Sprintf(`{
	admin off
	http_port %d
	skip_install_trust
	servers {
		trusted_proxies static 127.0.0.1/32
	}
	log {
		output discard
	}
}
:%d {
	advcaptcha {
		redis %s
		secret simulate-secret-0123456789abcdefghij
		strict_limit ip 30
		max_failures device 1000
		max_failures ip 100000
		%s
	}
	reverse_proxy %s
}
`, sitePort, sitePort, s.redisAddr, adversarial, upstream)
	cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cf), nil)
	if err != nil {
		return err
	}
	return caddy.Load(cfg, true)
}

// identity is one attacker client: an IP and a device cookie.
type identity struct {
	ip     string
	client *http.Client
}

func (s *sim) newIdentity() *identity {
	s.nextIP++
	jar, _ := cookiejar.New(nil)
	return &identity{
		ip:     fmt.Sprintf("10.%d.%d.%d", s.nextIP>>16&255, s.nextIP>>8&255, s.nextIP&255),
		client: &http.Client{Jar: jar, Timeout: 60 * time.Second},
	}
}

func (id *identity) do(method, path string, body io.Reader) (*http.Response, []byte, error) {
	req, err := http.NewRequest(method, fmt.Sprintf("http://127.0.0.1:%d%s", sitePort, path), body)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("User-Agent", "python-requests/2.32.3")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("X-Forwarded-For", id.ip)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := id.client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res, b, err
}

type challenge struct {
	ID    string `json:"id"`
	Image string `json:"image"`
}

// challengePage is the gateway's JSON answer with a captcha.
type challengePage struct {
	Challenge challenge `json:"challenge"`
}

// attack has the attacker answer n captchas served against a model that
// counts (others — e.g. the previous version's, served while a new pool
// fills — are answered but not scored), moving to a new identity after
// every perIdentity answers, and bursting first so the old one is labelled.
func (s *sim) attack(n int, counts func(model string) bool) (rate, error) {
	var r rate
	var id *identity
	answered, refused := 0, 0
	for r.total < n {
		if refused == 50 {
			return r, fmt.Errorf("50 challenge requests in a row gave no captcha")
		}
		if id == nil || answered == *perIdentity {
			if id != nil {
				id.burst()
			}
			id, answered = s.newIdentity(), 0
		}
		res, body, err := id.do("GET", "/.advcaptcha/challenge", nil)
		var page challengePage
		if err != nil || res.StatusCode != http.StatusForbidden || json.Unmarshal(body, &page) != nil || page.Challenge.ID == "" {
			if refused++; refused%10 == 0 {
				logger.Printf("no captcha: %v %v %.200s", err, statusOf(res), body)
			}
			id = nil // blocked (labelled), or a failure: move on
			continue
		}
		refused = 0
		ch := page.Challenge
		model := s.servedModel(ch.ID)
		_, img, err := id.do("GET", ch.Image, nil)
		if err != nil {
			continue
		}
		guess := s.read(img)
		ans, _ := json.Marshal(map[string]string{"id": ch.ID, "answer": guess})
		res, body, err = id.do("POST", "/.advcaptcha/answer", bytes.NewReader(ans))
		if err != nil {
			continue
		}
		answered++
		if !counts(model) {
			continue
		}
		r.total++
		if res.StatusCode == http.StatusOK && bytes.Contains(body, []byte(`"ok":true`)) {
			r.solved++
		}
	}
	if id != nil {
		id.burst()
	}
	return r, nil
}

func statusOf(res *http.Response) int {
	if res == nil {
		return 0
	}
	return res.StatusCode
}

// burst sends requests faster than the strict limit allows until the
// gateway blocks the identity (a loaded machine may need more than one
// round to pass the limit within its window). A cleared identity's
// requests are counted in the gateway's next flush, up to 100 ms later, so
// each check waits for one.
func (id *identity) burst() {
	for round := 0; round < 10; round++ {
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 12 {
					_, _, _ = id.do("GET", "/", nil)
				}
			}()
		}
		wg.Wait()
		time.Sleep(250 * time.Millisecond)
		if _, body, err := id.do("GET", "/", nil); err == nil && bytes.Contains(body, []byte(`"decision":"block"`)) {
			return
		}
	}
	logger.Printf("identity %s was not blocked after 10 bursts", id.ip)
}

// servedModel is the model version a challenge was computed against
// ("" for a clean captcha), from the challenge record in Redis: what the
// attacker cannot see, the benchmark can.
func (s *sim) servedModel(id string) string {
	b, err := s.st.Peek(context.Background(), "ch:"+id)
	if err != nil {
		return ""
	}
	var rec struct{ Model string }
	_ = json.Unmarshal(b, &rec)
	return rec.Model
}

func (s *sim) read(pngBytes []byte) string {
	img, err := png.Decode(bytes.NewReader(pngBytes))
	if err != nil {
		return "x"
	}
	a := s.attacker.Model().Arch
	in, err := solver.FromImage(img, a.Height, a.Width)
	if err != nil {
		return "x"
	}
	p, err := s.attacker.Predict([]solver.Image{in})
	if err != nil || p[0].Text == "" {
		return "x"
	}
	return p[0].Text
}

// adapt fine-tunes the attacker on farmN adversarial captchas made as the
// gateway makes them (against the shipped substitute, production attack)
// and labelled with their truth, mixed with as many clean ones.
func (s *sim) adapt(ctx context.Context, attacker, sub *solver.Model) (*solver.Model, error) {
	style := captcha.DefaultStyle()
	if err := style.Validate(); err != nil {
		return nil, err
	}
	subSolver, err := solver.New(sub, solver.Options{})
	if err != nil {
		return nil, err
	}
	gen := &captchapool.Generator{Style: style, Solvers: []*solver.Solver{subSolver}, Attack: perturb.DefaultConfig()}
	s.logf("the attacker's farm labels %d adversarial captchas", *farmN)
	entries, err := gen.GenerateMany(90_000_000, *farmN, nil)
	if err != nil {
		return nil, err
	}
	farm, err := captchapool.Samples(entries)
	if err != nil {
		return nil, err
	}
	clean, err := extraction.CleanSamples(style, *farmN, 91_000_000)
	if err != nil {
		return nil, err
	}
	s.logf("the attacker fine-tunes on them and %d clean captchas", len(clean))
	m, _, err := solver.Train(ctx, solver.TrainConfig{
		Init: attacker, Train: append(farm, clean...), Batch: 16, Epochs: 3, LR: 5e-4, Augment: true, Seed: 21,
		Progress: os.Stderr,
	})
	return m, err
}

// extract runs the extraction on the answers collected since the attacker
// adapted and publishes the result, as the `extract --tune --publish`
// command does, with the simulation's seeds; its report goes into ours.
func (s *sim) extract(ctx context.Context, since time.Time) (*extraction.Outcome, error) {
	// Signed with the gateway's secret (the config's secret), or the
	// gateway refuses the version.
	keys, err := modelregistry.Keys([]byte(simSecret))
	if err != nil {
		return nil, err
	}
	var learner *solver.Model
	if *learnerPath != "" {
		if learner, err = solver.Load(*learnerPath); err != nil {
			return nil, err
		}
	}
	report := &reportWriter{s: s}
	return extraction.Run(ctx, extraction.RunConfig{
		Store: s.st, Keys: keys, Dir: *keep, Since: since, Tune: true, Publish: true, Learner: learner,
		CleanN: 1000, CleanValN: 500, CleanSeed: 92_000_000, Log: report,
		Tuning: extraction.TuneConfig{Seed: 22, Progress: os.Stderr,
			Companion: *companion, CompanionMaxCleanDrop: *companionMax, Distill: cmp.Or(*distill, -1)},
	})
}

// reportWriter puts each line written to it into the report.
type reportWriter struct {
	s    *sim
	line []byte
}

func (w *reportWriter) Write(p []byte) (int, error) {
	w.line = append(w.line, p...)
	for {
		i := bytes.IndexByte(w.line, '\n')
		if i < 0 {
			return len(p), nil
		}
		w.s.logf("%s", w.line[:i])
		w.line = w.line[i+1:]
	}
}

func (s *sim) writeReport(line string) error {
	var b strings.Builder
	cmd := "make simulate"
	flag.Visit(func(f *flag.Flag) { // flags set differently from make simulate's defaults
		if cmd == "make simulate" {
			cmd = "OPENBLAS_NUM_THREADS=1 bin/lab/simulate" // as built by make simulate
		}
		cmd += fmt.Sprintf(" -%s %s", f.Name, f.Value)
	})
	fmt.Fprintf(&b, "# Learning-loop simulation\n\nCommand: `%s` (%s, %d cores).\n\n", cmd, time.Now().UTC().Format("2006-01-02"), runtime.NumCPU())
	b.Write(s.report.Bytes())
	fmt.Fprintf(&b, "\n```\n%s\n```\n", line)
	return os.WriteFile(*out, []byte(b.String()), 0o644)
}
