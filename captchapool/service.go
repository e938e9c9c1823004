package captchapool

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/advcaptcha/advcaptcha/captcha"
	"github.com/advcaptcha/advcaptcha/internal/secretkey"
	"github.com/advcaptcha/advcaptcha/modelregistry"
	"github.com/advcaptcha/advcaptcha/perturb"
	"github.com/advcaptcha/advcaptcha/solver"
	"github.com/advcaptcha/advcaptcha/store"
)

// Service is the generation service: it keeps a pool of adversarial
// captchas filled against one solver model version at a time, and follows
// the versions published in the model registry — a version's companions
// attacked together with it, the configured ensemble with every version —
// switching to a new one without a restart. The gateway runs one per store
// and settings (the sites that configure the same share it); `caddy
// advcaptcha pool` runs one of its own for gateways with external workers.
// What it does is reported to its Observer.
type Service struct {
	cfg      ServiceConfig
	ensemble []*solver.Solver
	cur      atomic.Pointer[Generation]
	ctx      context.Context
	stop     context.CancelFunc
	done     sync.WaitGroup // the follower and every generation's workers
}

// ServiceConfig configures a Service.
type ServiceConfig struct {
	Store store.Store
	Style captcha.Style
	// Attack is the attack with the configuration's settings applied
	// (perturb.DefaultConfig().Apply(…)).
	Attack perturb.Config
	// Model is generated against until a published version replaces it.
	Model *solver.Model
	// Ensemble are further substitutes attacked together with every
	// version (each costs one more gradient per step); they stay when the
	// followed model changes.
	Ensemble []*solver.Model
	// PoolKeys sign the entries (Keys); ModelKeys verify published model
	// versions (modelregistry.Keys). Both come from the gateway's secret.
	PoolKeys, ModelKeys *secretkey.Keys
	// Size is the depth the pool is kept at.
	Size int
	// Workers is the number of generation workers, and of graphs per
	// substitute (for Generate on the caller's goroutines too).
	Workers int
	// External runs no workers: the pool is filled elsewhere (`caddy
	// advcaptcha pool`), and the service only follows the published
	// versions so that Pop takes from the pool they are filled into.
	External bool
	// CPUBudget is the share of its time a worker spends generating, in
	// (0, 1].
	CPUBudget float64
	// TTL of the pool key, renewed on each push. Default 24h.
	TTL time.Duration
	// Follow is how often the registry is checked for a newly published
	// version; 0 or less keeps Model.
	Follow time.Duration
	// Observer hears what the service does; nil hears nothing.
	Observer Observer
}

// Generation is what the service generates against: one model version
// with its pool.
type Generation struct {
	Generator *Generator
	// Model is the version of the followed model (the first substitute).
	Model string
	// Key is the store key of this generation's pool (Generator.Key).
	Key string
	// PrevKey is the pool of the generation before, served from while this
	// one fills; "" for the first.
	PrevKey string
	stop    context.CancelFunc
}

// Observer hears what a Service does, for metrics, logs and events. Its
// methods are called on the service's goroutines (Generating also on
// Start's) and must not block.
type Observer interface {
	// Generating: the service generates against g from now on (before
	// its workers start).
	Generating(g *Generation)
	// Generated: a worker made a captcha of g and the pool holds depth, or
	// it failed (err: a failed generation, a recovered panic or a store
	// error).
	Generated(g *Generation, took time.Duration, depth int, err error)
	// Followed: the published version v is generated against from now on
	// (after Generating).
	Followed(v *modelregistry.Version)
	// Refused: a published version the service will not follow, told once:
	// reason is "unauthenticated" (not signed with the gateway's secret:
	// forged, or published with another secret) or "refused" (it does not
	// load, or reads another captcha style). The service keeps its model.
	Refused(version, reason string, err error)
	// RegistryError: the registry could not be read; the service keeps its
	// model and looks again at the next check.
	RegistryError(err error)
}

// Start starts the service: it generates against cfg.Model at once (unless
// external) and follows the registry every cfg.Follow. It runs until ctx is
// done or Stop.
func Start(ctx context.Context, cfg ServiceConfig) (*Service, error) {
	switch {
	case cfg.Store == nil || cfg.Model == nil:
		return nil, errors.New("captchapool: a service needs a store and a model")
	case cfg.PoolKeys == nil:
		return nil, errors.New("captchapool: a service needs the keys that sign pool entries")
	case cfg.Size < 1:
		return nil, fmt.Errorf("captchapool: pool size %d", cfg.Size)
	}
	if err := cfg.Attack.Validate(); err != nil {
		return nil, fmt.Errorf("attack: %w", err)
	}
	if cfg.Observer == nil {
		cfg.Observer = nopObserver{}
	}
	if cfg.TTL <= 0 {
		cfg.TTL = 24 * time.Hour
	}
	cfg.Workers = max(cfg.Workers, 1)
	ensemble, err := solver.NewEach(cfg.Ensemble, solver.Options{Workers: cfg.Workers})
	if err != nil {
		return nil, fmt.Errorf("ensemble: %w", err)
	}
	s := &Service{cfg: cfg, ensemble: ensemble}
	s.ctx, s.stop = context.WithCancel(ctx)
	if err := s.switchTo(cfg.Model, nil); err != nil {
		s.stop()
		return nil, err
	}
	if cfg.Follow > 0 {
		s.done.Add(1)
		go func() { defer s.done.Done(); s.follow() }()
	}
	return s, nil
}

// Current is the generation served from now.
func (s *Service) Current() *Generation { return s.cur.Load() }

// Stop stops following and the workers without waiting for them: a worker
// finishes the captcha it is computing (up to seconds) in the background.
func (s *Service) Stop() { s.stop() }

// Wait waits until the follower and every worker have stopped.
func (s *Service) Wait() { s.done.Wait() }

// Pop takes the oldest captcha of the current generation's pool or, just
// after a model change while the new pool fills, of the previous one's
// (its captchas are still adversarial). It returns store.ErrNotFound when
// both are empty; see the package's Pop for dropped and ErrCorrupt.
func (s *Service) Pop(ctx context.Context) (*Entry, Dropped, error) {
	g := s.Current()
	e, dropped, err := Pop(ctx, s.cfg.Store, g.Key, s.cfg.PoolKeys)
	if errors.Is(err, store.ErrNotFound) && g.PrevKey != "" {
		var more Dropped
		e, more, err = Pop(ctx, s.cfg.Store, g.PrevKey, s.cfg.PoolKeys)
		dropped.add(more)
	}
	return e, dropped, err
}

func (d *Dropped) add(o Dropped) {
	d.Corrupt += o.Corrupt
	for reason, n := range o.Forged {
		if d.Forged == nil {
			d.Forged = map[string]int{}
		}
		d.Forged[reason] += n
	}
}

// switchTo generates against model, together with the published version's
// companions (with) and the ensemble: it starts workers on the model's own
// pool and then stops the previous generation's.
func (s *Service) switchTo(model *solver.Model, with []*solver.Model) error {
	solvers, err := solver.NewEach(append([]*solver.Model{model}, with...), solver.Options{Workers: s.cfg.Workers})
	if err != nil {
		return err
	}
	gen := &Generator{Style: s.cfg.Style, Solvers: append(solvers, s.ensemble...), Attack: s.cfg.Attack}
	ctx, cancel := context.WithCancel(s.ctx)
	g := &Generation{Generator: gen, Model: model.Version(), Key: gen.Key(), stop: cancel}
	if old := s.Current(); old != nil {
		g.PrevKey = old.Key
	}
	obs := s.cfg.Observer
	obs.Generating(g)
	if !s.cfg.External {
		f := &Filler{
			Store: s.cfg.Store, Key: g.Key, Keys: s.cfg.PoolKeys, Size: s.cfg.Size, TTL: s.cfg.TTL,
			Workers: s.cfg.Workers, CPUBudget: s.cfg.CPUBudget, GenerateBatch: gen.GenerateBatch, Batch: DefaultBatch,
			Observe: func(took time.Duration, depth int, err error) { obs.Generated(g, took, depth, err) },
		}
		s.done.Add(1)
		go func() { defer s.done.Done(); f.Run(ctx) }()
	}
	if old := s.cur.Swap(g); old != nil {
		old.stop()
	}
	return nil
}

// follow checks the model registry every Follow and switches to a newly
// published version. A version that cannot be loaded (corrupt, expired, or
// for another captcha style) or that is not authenticated with the
// gateway's secret is refused once and the service keeps the model it has.
func (s *Service) follow() {
	reg := modelregistry.New(s.cfg.Store, s.cfg.ModelKeys)
	obs := s.cfg.Observer
	refused := ""
	t := time.NewTicker(s.cfg.Follow)
	defer t.Stop()
	for {
		cur, err := reg.Current(s.ctx)
		switch {
		case errors.Is(err, modelregistry.ErrNone), s.ctx.Err() != nil:
		case errors.Is(err, modelregistry.ErrUnauthenticated) && cur != nil:
			if cur.Version != refused && cur.Version != s.Current().Model {
				refused = cur.Version
				obs.Refused(cur.Version, "unauthenticated", err)
			}
		case err != nil:
			obs.RegistryError(err)
		case cur.Version == s.Current().Model, cur.Version == refused:
		default:
			if err := s.load(reg, cur); err != nil {
				refused = cur.Version
				reason := "refused"
				if errors.Is(err, modelregistry.ErrUnauthenticated) {
					reason = "unauthenticated"
				}
				obs.Refused(cur.Version, reason, err)
				break
			}
			refused = ""
			obs.Followed(cur)
		}
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Service) load(reg *modelregistry.Registry, v *modelregistry.Version) error {
	ms, err := reg.Models(s.ctx, v)
	if err != nil {
		return err
	}
	st := s.cfg.Style
	for _, m := range ms {
		if err := m.Reads(st.Height, st.Width, st.Charset); err != nil {
			return fmt.Errorf("version %s: %w", m.Version(), err)
		}
	}
	return s.switchTo(ms[0], ms[1:])
}

type nopObserver struct{}

func (nopObserver) Generating(*Generation)                           {}
func (nopObserver) Generated(*Generation, time.Duration, int, error) {}
func (nopObserver) Followed(*modelregistry.Version)                  {}
func (nopObserver) Refused(string, string, error)                    {}
func (nopObserver) RegistryError(error)                              {}
