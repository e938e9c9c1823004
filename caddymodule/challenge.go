package caddymodule

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/advcaptcha/advcaptcha/captcha"
	"github.com/advcaptcha/advcaptcha/extraction"
	"github.com/advcaptcha/advcaptcha/riskscore"
	"github.com/advcaptcha/advcaptcha/store"
)

// routePrefix is where advcaptcha serves its own endpoints.
const routePrefix = "/.advcaptcha/"

const (
	maxAnswerBody = 4 << 10 // an answer form is well under 1 KiB
	maxAnswerLen  = 32
	idLen         = 22 // 128 random bits, base64url
)

// challengeRecord is what the store keeps of an issued captcha until it
// is answered or expires. It holds the exact image served, so that the
// image a client sees, the one judged and the one recorded for training
// are the same bytes.
type challengeRecord struct {
	Text     string    `json:"text"`
	PNG      []byte    `json:"png"`
	Seed     uint64    `json:"seed"`
	Method   string    `json:"method"` // "none": clean; else the perturbation, as perturb.Config.String
	Model    string    `json:"model,omitempty"`
	Device   string    `json:"device"`
	IP       string    `json:"ip"`
	Return   string    `json:"return"`
	Issued   time.Time `json:"issued"`
	Score    float64   `json:"score"`
	Labelled bool      `json:"labelled"`
}

func adversarialPNG(rec *challengeRecord) []byte {
	if rec.Method == "none" {
		return nil
	}
	return rec.PNG
}

// appendRecord writes an event to the captcha log. A failure is logged,
// not passed on: the visitor's challenge must not fail because of it.
func (h *Handler) appendRecord(ctx context.Context, ev extraction.CaptchaEvent) {
	b, err := json.Marshal(ev)
	if err == nil {
		err = h.store.Append(ctx, extraction.CaptchaLog, b)
	}
	if err != nil {
		h.logger.Error("captcha record lost", zap.String("kind", ev.Kind), zap.String("id", ev.ID), zap.Error(err))
	}
}

// challengeView is what a client is told of a challenge.
type challengeView struct {
	ID        string    `json:"id"`
	Image     string    `json:"image"`
	Audio     string    `json:"audio"`
	Answer    string    `json:"answer"`
	Refresh   string    `json:"refresh,omitempty"`
	ExpiresIn int       `json:"expires_in"`
	Return    string    `json:"-"`
	Error     string    `json:"-"`
	Text      *pageText `json:"-"`
}

func newChallengeID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func validChallengeID(id string) bool {
	if len(id) != idLen {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(id)
	return err == nil
}

// issueChallenge renders a captcha and stores it for the client.
// refreshes is how many more captchas its page may ask for instead.
func (v *visit) issueChallenge(returnTo string, refreshes int) (*challengeView, error) {
	if ok, err := v.withinCaptchaBudget(); err != nil || !ok {
		return nil, cmp.Or(err, errCaptchaBudget)
	}
	c, err := v.nextCaptcha(v.r.Context())
	if err != nil {
		return nil, err
	}
	if err := v.spendCaptchaBudget(); err != nil {
		return nil, err
	}
	rec := challengeRecord{
		Text: c.Text, PNG: c.PNG, Seed: c.Seed, Method: c.Method, Model: c.Model,
		Device: v.device, IP: v.ipID, Return: returnTo, Issued: v.now,
		Score: v.assessment.Score, Labelled: v.assessment.Has(riskscore.Labelled),
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	id := newChallengeID()
	ttl := time.Duration(v.h.ChallengeTTL)
	if err := v.h.store.PutOnce(v.r.Context(), "ch:"+id, b, ttl); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(c.PNG)
	v.h.appendRecord(v.r.Context(), extraction.CaptchaEvent{
		Kind: extraction.Served, ID: id, At: v.now, Truth: c.Text, Seed: c.Seed, Renderer: captcha.RendererVersion,
		PNGSHA256: hex.EncodeToString(sum[:]), Method: rec.Method, Model: rec.Model, PNG: adversarialPNG(&rec),
		IP: v.ipID, Device: v.device, Score: rec.Score, Labelled: rec.Labelled,
	})
	v.h.metrics.challenges.WithLabelValues("captcha", "issued").Inc()
	v.h.logger.Debug("captcha issued", zap.String("id", id), zap.String("ip", v.ipID), zap.String("device", v.device))
	view := &challengeView{
		ID: id, Image: routePrefix + "captcha/" + id + ".png", Audio: routePrefix + "audio/" + id + ".wav",
		Answer: routePrefix + "answer", ExpiresIn: int(ttl / time.Second), Return: returnTo,
	}
	if refreshes > 0 {
		if view.Refresh, err = v.grantCaptcha(returnTo, refreshes); err != nil {
			return nil, err
		}
	}
	return view, nil
}

// serveOwnRoute handles /.advcaptcha/… requests.
func (v *visit) serveOwnRoute(w http.ResponseWriter) error {
	path := strings.TrimPrefix(v.r.URL.Path, routePrefix)
	if v.r.Method == http.MethodPost && !sameOrigin(v.r) {
		// Answers, slides and refreshes come from our own pages; a POST a
		// browser makes for another site would only burn the visitor's
		// challenge or spend their attempts.
		return writeError(w, v.r, http.StatusForbidden, "cross-site request refused")
	}
	switch {
	case strings.HasPrefix(path, "captcha/") && strings.HasSuffix(path, ".png") && (v.r.Method == http.MethodGet || v.r.Method == http.MethodHead):
		return v.serveImage(w, strings.TrimSuffix(strings.TrimPrefix(path, "captcha/"), ".png"))
	case strings.HasPrefix(path, "audio/") && strings.HasSuffix(path, ".wav") && (v.r.Method == http.MethodGet || v.r.Method == http.MethodHead):
		return v.serveAudio(w, strings.TrimSuffix(strings.TrimPrefix(path, "audio/"), ".wav"))
	case strings.HasPrefix(path, "slide/") && strings.HasSuffix(path, ".png") && (v.r.Method == http.MethodGet || v.r.Method == http.MethodHead):
		return v.serveSlideTarget(w, strings.TrimSuffix(strings.TrimPrefix(path, "slide/"), ".png"))
	case path == "slide.js" && v.r.Method == http.MethodGet:
		return serveSlideJS(w)
	case path == "slide" && v.r.Method == http.MethodPost:
		return v.serveSlide(w)
	case path == "answer" && v.r.Method == http.MethodPost:
		return v.serveAnswer(w)
	case path == "challenge" && (v.r.Method == http.MethodGet || v.r.Method == http.MethodPost):
		return v.serveGrantedChallenge(w)
	}
	return writeError(w, v.r, http.StatusNotFound, "no such advcaptcha endpoint")
}

// peekChallenge reads a live challenge of this client's device; when it
// cannot, it has answered the request and returns nil.
func (v *visit) peekChallenge(w http.ResponseWriter, id string) (*challengeRecord, error) {
	if !validChallengeID(id) {
		return nil, writeError(w, v.r, http.StatusNotFound, "unknown captcha")
	}
	b, err := v.h.store.Peek(v.r.Context(), "ch:"+id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, writeError(w, v.r, http.StatusNotFound, "this captcha has expired or was already answered")
	}
	if err != nil {
		v.h.health.failed(err, v.h.OnStoreError)
		return nil, writeUnavailable(w, v.r)
	}
	var rec challengeRecord
	if err := json.Unmarshal(b, &rec); err != nil || rec.Device != v.device {
		return nil, writeError(w, v.r, http.StatusNotFound, "unknown captcha")
	}
	return &rec, nil
}

func (v *visit) serveImage(w http.ResponseWriter, id string) error {
	rec, err := v.peekChallenge(w, id)
	if rec == nil {
		return err
	}
	return writeFile(w, "image/png", "no-store", rec.PNG)
}

// serveAudio reads the captcha's text out, for people who cannot see the
// image. Audio is easier for machines than the image, so it is limited per
// device, recorded, adds to the device's risk score (audio_captcha), and
// an answer given after listening counts for more: a wrong one twice, a
// right one earns a clearance of a quarter the time.
func (v *visit) serveAudio(w http.ResponseWriter, id string) error {
	rec, err := v.peekChallenge(w, id)
	if rec == nil {
		return err
	}
	dev := store.Entity{Kind: store.KindDevice, ID: v.device}
	within, err := v.countWithin("audio:", time.Hour, entityLimit{dev, v.h.MaxAudioDevice},
		entityLimit{store.Entity{Kind: store.KindIP, ID: v.ipID}, v.h.MaxAudioIP})
	if err != nil {
		v.h.health.failed(err, v.h.OnStoreError)
		return writeUnavailable(w, v.r)
	}
	if !within {
		return writeError(w, v.r, http.StatusTooManyRequests, "too many audio captchas from this browser or network; please try again in an hour")
	}
	if err := v.h.store.CountAudio(v.r.Context(), dev); err != nil { // raises the device's risk score
		v.h.health.failed(err, v.h.OnStoreError)
	}
	if err := v.h.store.PutOnce(v.r.Context(), "audio-used:"+id, []byte{1}, time.Duration(v.h.ChallengeTTL)); err != nil {
		v.h.health.failed(err, v.h.OnStoreError)
		return writeUnavailable(w, v.r)
	}
	wav, err := captcha.RenderAudio(rec.Text, rec.Seed)
	if err != nil {
		return writeError(w, v.r, http.StatusInternalServerError, "audio is not available for this captcha")
	}
	v.h.metrics.challenges.WithLabelValues("audio", "issued").Inc()
	v.h.appendRecord(v.r.Context(), extraction.CaptchaEvent{Kind: "audio_served", ID: id, At: v.now, Method: rec.Method,
		IP: v.ipID, Device: v.device, Score: rec.Score, Labelled: rec.Labelled})
	return writeFile(w, "audio/wav", "no-store", wav)
}

// serveNewChallenge answers with a fresh captcha, HTML page or JSON, whose
// page may ask for refreshes more. checkLabels reads the client's labels
// first. While the pool is empty (fallback wait) the client is told to
// come back to a grant for the same captchas.
func (v *visit) serveNewChallenge(w http.ResponseWriter, returnTo, problem string, checkLabels bool, refreshes int) error {
	if checkLabels && v.labelledNow() {
		return writeBlocked(w, v.r)
	}
	ch, err := v.issueChallenge(returnTo, refreshes)
	switch {
	case errors.Is(err, errCaptchaBudget):
		return v.serveBudgetSpent(w)
	case errors.Is(err, errPoolEmpty):
		retry, err := v.grantCaptcha(returnTo, refreshes+1)
		if err != nil {
			v.h.health.failed(err, v.h.OnStoreError)
			return writeUnavailable(w, v.r)
		}
		return v.serveWait(w, retry)
	}
	if err != nil {
		v.h.health.failed(err, v.h.OnStoreError)
		return writeUnavailable(w, v.r)
	}
	ch.Error = problem
	return writeCaptchaPage(w, v.r, http.StatusForbidden, ch)
}

type answerRequest struct {
	ID     string `json:"id"`
	Answer string `json:"answer"`
	Return string `json:"return"`
}

func (v *visit) serveAnswer(w http.ResponseWriter) error {
	req, err := readAnswer(w, v.r)
	if err != nil {
		return writeError(w, v.r, http.StatusBadRequest, err.Error())
	}
	answer, err := normalizeAnswer(req.Answer)
	if err != nil {
		return writeError(w, v.r, http.StatusBadRequest, err.Error())
	}
	if !validChallengeID(req.ID) {
		return writeError(w, v.r, http.StatusBadRequest, "malformed captcha id")
	}
	b, err := v.h.store.Take(v.r.Context(), "ch:"+req.ID)
	returnTo := safeReturn(req.Return)
	if errors.Is(err, store.ErrNotFound) {
		return v.serveNewChallenge(w, returnTo, textFor(v.r).ErrExpired, true, maxRefreshes)
	}
	if err != nil {
		v.h.health.failed(err, v.h.OnStoreError)
		return writeUnavailable(w, v.r)
	}
	var rec challengeRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		v.h.logger.Error("corrupt challenge record dropped", zap.String("id", req.ID), zap.Error(err))
		return v.serveNewChallenge(w, returnTo, textFor(v.r).ErrBroken, true, maxRefreshes)
	}
	if rec.Return != "" {
		returnTo = safeReturn(rec.Return)
	}
	if rec.Device != v.device {
		// Answers count only from the browser the captcha was shown to.
		return v.serveNewChallenge(w, returnTo, textFor(v.r).ErrOtherBrowser, true, maxRefreshes)
	}
	correct := subtle.ConstantTimeCompare([]byte(answer), []byte(rec.Text)) == 1
	labelled := v.labelledNow() // the client's label now, not when the captcha was issued
	_, audioErr := v.h.store.Take(v.r.Context(), "audio-used:"+req.ID)
	audio := audioErr == nil
	v.h.appendRecord(v.r.Context(), extraction.CaptchaEvent{
		Kind: extraction.Answer, ID: req.ID, At: v.now, Answer: answer, Correct: &correct, Audio: audio,
		LatencyMS: v.now.Sub(rec.Issued).Milliseconds(), Method: rec.Method, Model: rec.Model,
		IP: v.ipID, Device: v.device, Score: rec.Score, Labelled: labelled,
	})
	v.h.logger.Info("captcha answered",
		zap.String("id", req.ID), zap.Bool("correct", correct), zap.String("method", rec.Method),
		zap.Duration("latency", v.now.Sub(rec.Issued)), zap.Bool("labelled", rec.Labelled),
		zap.Float64("score", rec.Score), zap.String("ip", v.ipID), zap.String("device", v.device))
	outcome := "passed"
	if !correct {
		outcome = "failed"
	}
	v.h.metrics.challenges.WithLabelValues("captcha", outcome).Inc()
	v.h.metrics.countAnswer(rec.Method, rec.Model, labelled, correct)
	if !correct {
		v.recordFailure()
		if audio {
			v.recordFailure()
		}
		return v.serveNewChallenge(w, returnTo, textFor(v.r).ErrWrong, true, maxRefreshes)
	}
	ttl := time.Duration(v.h.ClearanceTTL)
	if audio {
		ttl /= 4
	}
	v.setClearance(w, ttl)
	if wantsJSON(v.r) {
		return writeJSON(w, http.StatusOK, map[string]any{"ok": true, "return": returnTo})
	}
	redirectTo(w, returnTo)
	return nil
}

// setClearance gives the client a clearance cookie valid for ttl.
func (v *visit) setClearance(w http.ResponseWriter, ttl time.Duration) {
	http.SetCookie(w, &http.Cookie{
		Name: v.h.ClearanceCookie, Value: v.h.keys.IssueClearance(v.device, v.r.UserAgent(), v.now.Add(ttl)),
		Path: "/", MaxAge: int(ttl / time.Second), HttpOnly: true,
		SameSite: http.SameSiteLaxMode, Secure: viaHTTPS(v.r),
	})
}

// readAnswer reads a form or JSON answer from a bounded body.
func readAnswer(w http.ResponseWriter, r *http.Request) (answerRequest, error) {
	var req answerRequest
	r.Body = http.MaxBytesReader(w, r.Body, maxAnswerBody)
	if isJSONBody(r) {
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			return req, errors.New("malformed JSON answer (want {\"id\": \"…\", \"answer\": \"…\"})")
		}
		if dec.More() {
			return req, errors.New("trailing data after the JSON answer")
		}
		return req, nil
	}
	if err := r.ParseForm(); err != nil {
		return req, errors.New("malformed or oversized form")
	}
	req.ID, req.Answer, req.Return = r.PostForm.Get("id"), r.PostForm.Get("answer"), r.PostForm.Get("return")
	return req, nil
}

func isJSONBody(r *http.Request) bool {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return mt == "application/json"
}

// normalizeAnswer trims and lower-cases an answer (comparison is
// case-insensitive) and refuses what no person types for a captcha.
func normalizeAnswer(s string) (string, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return "", errors.New("the answer is empty")
	case len(s) > maxAnswerLen:
		return "", errors.New("the answer is too long")
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c > '~' {
			return "", errors.New("the answer may only hold letters and digits")
		}
	}
	return strings.ToLower(s), nil
}

// safeReturn keeps only same-origin absolute paths, so a challenge can
// never redirect a visitor to another site. It refuses rather than
// repairs: a backslash (browsers read it as a slash), a dot segment in any
// spelling (resolving one can leave "//host" or "/\\host" behind, and
// http.Redirect resolves them), control characters, and our own routes.
// Values read back from the store pass through it again.
func safeReturn(s string) string {
	if s == "" || s[0] != '/' || len(s) > maxReturnLen || strings.HasPrefix(s, "//") || strings.HasPrefix(s, routePrefix) {
		return "/"
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c == 0x7f || c == '\\' {
			return "/"
		}
	}
	u, err := url.Parse(s)
	if err != nil || u.IsAbs() || u.Host != "" || u.Opaque != "" {
		return "/"
	}
	path := strings.ToLower(u.EscapedPath())
	if strings.Contains(path, "%5c") || strings.HasPrefix(path, "/%2f") || strings.HasPrefix(strings.ToLower(u.Path), routePrefix) || hasDotSegment(path) {
		return "/"
	}
	return s
}

// maxReturnLen bounds a return path kept in a challenge.
const maxReturnLen = 2048

// entityLimit is an entity something is counted against and its limit.
type entityLimit struct {
	e     store.Entity
	limit int
}

// countWithin counts one more of something per entity (keys prefix+entity,
// created with ttl) and reports whether every entity is still within its
// limit. Every entity is counted, over its limit or not, so a client that
// keeps trying keeps its counts up.
func (v *visit) countWithin(prefix string, ttl time.Duration, limits ...entityLimit) (bool, error) {
	within := true
	for _, l := range limits {
		n, err := v.h.store.Incr(v.r.Context(), prefix+l.e.Key(), ttl)
		if err != nil {
			return false, err
		}
		within = within && n <= int64(l.limit)
	}
	return within, nil
}

// failureLimits lists the client's entities with their hourly limits of
// wrong answers.
func (v *visit) failureLimits() []entityLimit {
	fl := append(make([]entityLimit, 0, 3),
		entityLimit{store.Entity{Kind: store.KindDevice, ID: v.device}, v.h.MaxFailuresDevice},
		entityLimit{store.Entity{Kind: store.KindIP, ID: v.ipID}, v.h.MaxFailuresIP})
	if v.account != "" {
		fl = append(fl, entityLimit{store.Entity{Kind: store.KindAccount, ID: v.account}, v.h.MaxFailuresAccount})
	}
	return fl
}

// Escalating penalties for wrong answers: the nth label within
// penaltyMemory lasts label_ttl × 2^(n-1), at most maxPenalty.
const (
	penaltyMemory = 7 * 24 * time.Hour
	maxPenalty    = 7 * 24 * time.Hour
)

// recordFailure counts a wrong answer or a failed slide; a device, IP or
// account that reaches its limit within the hour is labelled, which blocks
// it, for longer each time it happens again within a week. also are
// further entities (a slide's fingerprint) counted with the IP's limit.
func (v *visit) recordFailure(also ...store.Entity) {
	ctx := v.r.Context()
	limits := v.failureLimits()
	for _, e := range also {
		limits = append(limits, entityLimit{e, v.h.MaxFailuresIP})
	}
	for _, fl := range limits {
		n, err := v.h.store.Incr(ctx, "fail:"+fl.e.Key(), time.Hour)
		if err != nil {
			v.h.health.failed(err, v.h.OnStoreError)
			return
		}
		if n < int64(fl.limit) {
			continue
		}
		times, err := v.h.store.Incr(ctx, "penalty:"+fl.e.Key(), penaltyMemory)
		if err != nil {
			v.h.health.failed(err, v.h.OnStoreError)
			return
		}
		ttl := time.Duration(v.h.LabelTTL) << min(times-1, 20)
		if ttl > maxPenalty || ttl <= 0 {
			ttl = maxPenalty
		}
		reason := "too many wrong captcha answers"
		if times >= store.IncrSaturated {
			// The memory store lost this count under churn: the longest
			// penalty, as its fail-safe intends, without a made-up number.
			reason += " (again, many times this week)"
		} else if times > 1 {
			reason += fmt.Sprintf(" (again: %d times this week)", times)
		}
		v.h.labelFor(ctx, fl.e, reason, ttl)
	}
}

// labelledNow reports whether the client's device or IP is labelled
// (by its wrong answers or anything else): such clients get no captchas.
func (v *visit) labelledNow() bool {
	hits := []store.Hit{{Entity: store.Entity{Kind: store.KindDevice, ID: v.device}}, {Entity: store.Entity{Kind: store.KindIP, ID: v.ipID}}}
	tallies, err := v.h.store.Observe(v.r.Context(), v.now, hits)
	if err != nil {
		return false // the store's failure rule applies when the captcha is stored
	}
	for _, t := range tallies {
		if t.Label != nil {
			return true
		}
	}
	return false
}
