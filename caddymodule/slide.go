package caddymodule

import (
	_ "embed"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/advcaptcha/advcaptcha/riskscore"
	"github.com/advcaptcha/advcaptcha/store"
	"github.com/advcaptcha/advcaptcha/trajectory"
)

//go:embed assets/slide.js
var slideJS []byte

// slideTicket is what the store keeps of an issued slide check.
type slideTicket struct {
	Device string    `json:"device"`
	IP     string    `json:"ip"`
	Return string    `json:"return"`
	Issued time.Time `json:"issued"`
	// Score is the request's score when the slide was issued: only the
	// lower part of the challenge band may be cleared by a slide alone.
	Score float64 `json:"score"`
	// Target is where the drag must end, as a share of the handle's
	// travel. It is drawn only into the ticket's image, never written in
	// the page, so a drag has to be aimed at what the page shows.
	Target float64 `json:"target"`
}

type slideView struct {
	Nonce  string `json:"nonce"`
	Post   string `json:"post"`
	Script string `json:"script"`
	// Target is the image of the track with the slot the drag must end on.
	Target    string    `json:"target"`
	ExpiresIn int       `json:"expires_in"`
	Return    string    `json:"-"`
	Text      *pageText `json:"-"`
	Brand     *Branding `json:"-"`
}

// issueSlide stores a single-use nonce for a slide check bound to the
// client's device and IP prefix.
func (v *visit) issueSlide(returnTo string) (*slideView, error) {
	target := slideTargetMin + (slideTargetMax-slideTargetMin)*rand.Float64()
	b, err := json.Marshal(slideTicket{Device: v.device, IP: v.ipID, Return: returnTo, Issued: v.now, Score: v.assessment.Score, Target: target})
	if err != nil {
		return nil, err
	}
	nonce := newChallengeID()
	ttl := time.Duration(v.h.ChallengeTTL)
	if err := v.h.store.PutOnce(v.r.Context(), "slide:"+nonce, b, ttl); err != nil {
		return nil, err
	}
	v.h.metrics.challenges.WithLabelValues("slide", "issued").Inc()
	return &slideView{Nonce: nonce, Post: routePrefix + "slide", Script: routePrefix + "slide.js",
		Target: routePrefix + "slide/" + nonce + ".png", ExpiresIn: int(ttl / time.Second), Return: returnTo}, nil
}

func (v *visit) serveSlidePage(w http.ResponseWriter, returnTo string) error {
	s, err := v.issueSlide(returnTo)
	if err != nil {
		v.h.health.failed(err, v.h.OnStoreError)
		return writeUnavailable(w, v.r)
	}
	return writeSlidePage(w, v.r, s, v.h.Branding)
}

// serveSlideTarget serves a ticket's track image, with the slot drawn at
// its target, to the device the ticket was issued to, and records when it
// was first fetched: the drag cannot have been aimed before that. A page
// fetches it once; a few more fetches are allowed for reloads of the image.
func (v *visit) serveSlideTarget(w http.ResponseWriter, nonce string) error {
	if !validChallengeID(nonce) {
		return writeError(w, v.r, http.StatusNotFound, "unknown slide check")
	}
	ctx := v.r.Context()
	raw, err := v.h.store.Peek(ctx, "slide:"+nonce)
	if errors.Is(err, store.ErrNotFound) {
		return writeError(w, v.r, http.StatusNotFound, "this slide check has expired or was already used; reload the page")
	}
	if err != nil {
		v.h.health.failed(err, v.h.OnStoreError)
		return writeUnavailable(w, v.r)
	}
	var ticket slideTicket
	if json.Unmarshal(raw, &ticket) != nil || ticket.Device != v.device {
		return writeError(w, v.r, http.StatusNotFound, "unknown slide check")
	}
	ttl := time.Duration(v.h.ChallengeTTL)
	n, err := v.h.store.Incr(ctx, "slide-img:"+nonce, ttl)
	if err != nil {
		v.h.health.failed(err, v.h.OnStoreError)
		return writeUnavailable(w, v.r)
	}
	if n > slideTargetFetches {
		return writeError(w, v.r, http.StatusTooManyRequests, "this slide check's image was fetched too often; reload the page")
	}
	if n == 1 {
		seen := strconv.FormatInt(v.now.UnixMilli(), 10)
		if err := v.h.store.PutOnce(ctx, "slide-seen:"+nonce, []byte(seen), ttl); err != nil {
			v.h.health.failed(err, v.h.OnStoreError)
			return writeUnavailable(w, v.r)
		}
	}
	png, err := renderSlideTarget(ticket.Target)
	if err != nil {
		v.h.logger.Error("rendering a slide target", zap.Error(err))
		return writeUnavailable(w, v.r)
	}
	return writeFile(w, "image/png", "no-store", png)
}

// targetSeen is when the ticket's image was first fetched, if it was.
func (v *visit) targetSeen(nonce string) (time.Time, bool) {
	b, err := v.h.store.Peek(v.r.Context(), "slide-seen:"+nonce)
	if err != nil {
		return time.Time{}, false
	}
	ms, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.UnixMilli(ms), true
}

func serveSlideJS(w http.ResponseWriter) error {
	return writeFile(w, "text/javascript; charset=utf-8", "public, max-age=3600", slideJS)
}

type slideRequest struct {
	Nonce   string      `json:"nonce"`
	Points  [][]float64 `json:"points"`
	Pointer struct {
		Type      string    `json:"type"`
		Pressures []float64 `json:"pressures"`
	} `json:"pointer"`
	WallMS float64 `json:"wall_ms"`
	// Travel is how far, in CSS pixels, the handle can move on the
	// client's screen: the drag's end over it is where it was aimed.
	Travel      float64                `json:"travel"`
	Fingerprint *riskscore.Fingerprint `json:"fingerprint"`
}

// slideReply is the JSON answer to a slide: ok with the way back, or the
// next step (the captcha), or a refusal.
type slideReply struct {
	OK      bool     `json:"ok"`
	Return  string   `json:"return,omitempty"`
	Next    string   `json:"next,omitempty"`
	Error   string   `json:"error,omitempty"`
	Reasons []string `json:"-"`
}

// serveSlide judges a posted slide: trajectory, fingerprint and the
// device's history of slide durations.
func (v *visit) serveSlide(w http.ResponseWriter) error {
	v.r.Body = http.MaxBytesReader(w, v.r.Body, trajectory.MaxBodyBytes)
	var req slideRequest
	dec := json.NewDecoder(v.r.Body)
	if err := dec.Decode(&req); err != nil {
		return writeError(w, v.r, http.StatusBadRequest, "malformed or oversized slide (want JSON with nonce, points, pointer, fingerprint)")
	}
	if !validChallengeID(req.Nonce) {
		return writeError(w, v.r, http.StatusBadRequest, "missing or malformed nonce")
	}
	traj, err := trajectory.FromArrays(req.Points)
	if err != nil {
		return writeError(w, v.r, http.StatusBadRequest, "invalid trajectory: "+err.Error())
	}
	if req.Fingerprint == nil || math.IsNaN(req.WallMS) || math.IsInf(req.WallMS, 0) || req.WallMS < 0 {
		return writeError(w, v.r, http.StatusBadRequest, "missing fingerprint or timing")
	}
	keyboard := req.Pointer.Type == "keyboard"
	if !keyboard && !(req.Travel >= slideTravelMin && req.Travel <= slideTravelMax) {
		return writeError(w, v.r, http.StatusBadRequest, "missing or implausible travel (the handle's range in CSS pixels)")
	}
	raw, err := v.h.store.Take(v.r.Context(), "slide:"+req.Nonce)
	if errors.Is(err, store.ErrNotFound) {
		return writeError(w, v.r, http.StatusBadRequest, "this slide check has expired or was already used; reload the page")
	}
	if err != nil {
		v.h.health.failed(err, v.h.OnStoreError)
		return writeUnavailable(w, v.r)
	}
	var ticket slideTicket
	if json.Unmarshal(raw, &ticket) != nil || ticket.Device != v.device || ticket.IP != v.ipID {
		return writeError(w, v.r, http.StatusBadRequest, "this slide check was issued to another browser")
	}

	fpEntity := store.Entity{Kind: store.KindFingerprint, ID: req.Fingerprint.StableID()}
	res := trajectory.Score(traj)
	var score float64
	var certain bool
	reasons := []string{}
	if !keyboard {
		// Key presses have no motion to judge; keyboard slides go on to
		// the captcha whatever their timing (see below).
		score, certain = res.Score, res.Certain()
		for _, r := range res.Reasons {
			reasons = append(reasons, r.Name)
		}
	}
	// The whole request: its Accept-Language and client hints come from
	// the same settings as what the page reports.
	for _, f := range riskscore.JudgeFingerprintRequest(req.Fingerprint, v.r.Header) {
		score += f.Points
		certain = certain || f.Certain
		reasons = append(reasons, f.Name)
	}
	if req.Pointer.Type == "mouse" && len(req.Pointer.Pressures) > 0 && allZero(req.Pointer.Pressures) {
		// A held mouse button reports 0.5; CDP-driven mice report 0.
		score += 40
		reasons = append(reasons, "zero_pressure")
	}
	if sparsePointer(req.Pointer.Type, v.r.UserAgent(), res.Features.MedianInterval) {
		score += slideSparse
		reasons = append(reasons, "sparse_pointer")
	}
	if d := res.Features.Duration; !keyboard && math.Abs(req.WallMS-d) > math.Max(150, 0.25*d) {
		score += 50
		reasons = append(reasons, "clock_mismatch")
	}
	// The server's own clock: the page was served at ticket.Issued and
	// its target image fetched at seen, so a drag the client says took
	// d ms cannot arrive sooner than d after that (plus the time to see
	// the target and press, which slideReaction leaves generous room for).
	served := ticket.Issued
	seen, fetched := v.targetSeen(req.Nonce)
	if fetched && seen.After(served) {
		served = seen
	}
	if claimed := math.Max(req.WallMS, res.Features.Duration); float64(v.now.Sub(served).Milliseconds()) < claimed+slideReaction {
		score += 50
		reasons = append(reasons, "faster_than_served")
	}
	if !keyboard {
		// The slot is only in the image: a drag posted without fetching
		// it, or ending elsewhere, was not aimed at what the page showed.
		// Either leads to the captcha; neither is certain, since a person
		// can miss.
		if !fetched {
			score += 50
			reasons = append(reasons, "target_unseen")
		}
		if !onTarget(traj, ticket.Target, req.Travel) {
			score += 50
			reasons = append(reasons, "missed_target")
		}
	}
	if tl, err := v.h.store.Observe(v.r.Context(), v.now, []store.Hit{{Entity: fpEntity}}); err == nil && tl[0].Label != nil {
		// Same browser, new cookie: the label follows the fingerprint —
		// to the captcha, not to a block, because identical machines (a
		// company's fleet) share a fingerprint and their people must not
		// pay for one bot among them.
		score += 60
		reasons = append(reasons, "fingerprint_labelled")
	}
	if !keyboard {
		if v.seenDrag(traj) {
			score += trajectory.Refuse
			reasons = append(reasons, "replayed_drag")
		}
		if hist, err := v.h.store.PushList(v.r.Context(), "hist:"+store.Entity{Kind: store.KindDevice, ID: v.device}.Key(),
			[]byte(strconv.FormatFloat(res.Features.Duration, 'f', 1, 64)), trajectory.HistoryKeep, 24*time.Hour); err == nil {
			ds := make([]float64, 0, len(hist))
			for _, b := range hist {
				if d, err := strconv.ParseFloat(string(b), 64); err == nil {
					ds = append(ds, d)
				}
			}
			if r, bad := trajectory.JudgeHistory(ds); bad {
				score += r.Points
				certain = true
				reasons = append(reasons, r.Name)
			}
		}
	}
	v.h.logger.Info("slide judged", zap.Float64("score", score), zap.Bool("certain", certain),
		zap.Strings("reasons", reasons), zap.Bool("keyboard", keyboard), zap.String("ip", v.ipID), zap.String("device", v.device))
	returnTo := safeReturn(ticket.Return)
	switch {
	case certain:
		v.h.metrics.challenges.WithLabelValues("slide", "refused").Inc()
		reason := "slide: " + strings.Join(reasons, ",")
		v.h.label(v.r.Context(), store.Entity{Kind: store.KindDevice, ID: v.device}, reason)
		if v.fingerprintOfSeveral(req.Fingerprint, fpEntity) {
			v.h.label(v.r.Context(), fpEntity, reason)
		}
		return writeJSON(w, http.StatusForbidden, slideReply{Error: "This request was refused as automated."})
	case keyboard:
		// Keyboard slides carry no motion to judge: they always go on to
		// the text captcha, which has its own audio alternative.
	case score >= trajectory.Refuse:
		v.recordFailure(fpEntity)
	case score < slideConfident && ticket.Score < v.h.CaptchaAt && v.slidePassAllowed(fpEntity):
		v.h.metrics.challenges.WithLabelValues("slide", "passed").Inc()
		v.setClearance(w, time.Duration(v.h.SlideClearanceTTL))
		return writeJSON(w, http.StatusOK, slideReply{OK: true, Return: returnTo})
	}
	// Not refused, not confidently human, or past the few slides one
	// client may pass: the captcha decides.
	v.h.metrics.challenges.WithLabelValues("slide", "failed").Inc()
	next, err := v.grantCaptcha(returnTo, 1+maxRefreshes)
	if err != nil {
		v.h.health.failed(err, v.h.OnStoreError)
		return writeUnavailable(w, v.r)
	}
	return writeJSON(w, http.StatusForbidden, slideReply{Next: next})
}

// Slide judgement settings.
const (
	// slideConfident is the score under which a slide alone may clear a
	// client: people's drags in the development data score 0 (97%) or
	// under 10; anything with a finding reads the captcha.
	slideConfident = 20
	// slideReaction is the least time, in ms, between serving the slide
	// page and receiving its drag, beyond the drag itself: loading the
	// script and moving to the handle take longer than that.
	slideReaction = 100
	// slideSparse is what a sparse drag adds (sparsePointer): a drag the
	// judge found human (0, nearly all people's) reaches 30, past
	// slideConfident, so it goes on to the captcha without clearing the
	// client and without counting as a failure; one the judge already
	// doubted (20–49) reaches the refusal line and counts as one, like a
	// wrong answer. Never certain, so never a block by itself.
	slideSparse = 30
	// sparseInterval is the median interval, in ms, above which a
	// Chromium mouse or pen drag is sparse: mice report at 125 Hz or more,
	// trackpads and pens at 90 Hz or more (8–11 ms), and the issue's
	// held-out people on a real slide bar (Chrome, macOS) came at ~120 Hz;
	// ghost-cursor-playwright driven from a loaded machine, accepted by
	// the judge in the development data, at 16–41 ms (six of its eight
	// over 20). A browser's one-event-a-frame recording is 17 ms.
	sparseInterval = 20
	// slideTargetMin and slideTargetMax bound the slot's place, as a share
	// of the travel: far enough from the start that the drag is a
	// movement, and from the end that running to the end is not a hit.
	slideTargetMin = 0.4
	slideTargetMax = 0.85
	// slideTravelMin and slideTravelMax bound the handle's travel a
	// client may report, in CSS pixels: the page's track on a small
	// phone and on a wide screen.
	slideTravelMin = 150
	slideTravelMax = 1200
	// slideTargetFetches is how often a ticket's image may be fetched.
	slideTargetFetches = 3
	// replayKeep is how many signatures each replay bucket keeps, and
	// replayTTL how long (see seenDrag).
	replayKeep = 32
	replayTTL  = 24 * time.Hour
	// fingerprintDevices is how many devices must have been refused with
	// one fingerprint before the fingerprint itself is labelled.
	fingerprintDevices = 2
)

// seenDrag files the drag's signature in the store-wide replay buckets
// and reports whether a near copy of it was there already: no person
// repeats a hand movement that closely, so a match is a replay (of this
// client's own earlier drag or of anyone's). Each of the signature's
// buckets keeps its replayKeep newest signatures for replayTTL, so a
// replay is recognised among the last ~30,000 slides of the day. A store
// error leaves the drag unjudged on this count.
func (v *visit) seenDrag(t trajectory.Trajectory) bool {
	sig, err := trajectory.Sign(t)
	if err != nil {
		return false
	}
	b, _ := sig.MarshalBinary()
	seen := false
	var key [len("replay:0:0000")]byte
	for band, bucket := range sig.Bands() {
		k := strconv.AppendInt(append(key[:0], "replay:"...), int64(band), 10)
		k = strconv.AppendUint(append(k, ':'), uint64(bucket), 16)
		list, err := v.h.store.PushList(v.r.Context(), string(k), b, replayKeep, replayTTL)
		if err != nil {
			v.h.health.failed(err, v.h.OnStoreError)
			return seen
		}
		for _, other := range list[min(1, len(list)):] { // list[0] is this drag
			var o trajectory.Signature
			if !seen && o.UnmarshalBinary(other) == nil && sig.Replays(&o) {
				seen = true
			}
		}
	}
	return seen
}

// slidePassAllowed counts a slide that would clear the client against the
// few a device, an IP prefix and a fingerprint may pass in an hour: a
// person needs one now and then, a farm of scripts many.
func (v *visit) slidePassAllowed(fp store.Entity) bool {
	lim := v.h.SlidePasses
	within, err := v.countWithin("slidepass:", time.Hour,
		entityLimit{store.Entity{Kind: store.KindDevice, ID: v.device}, lim.Device},
		entityLimit{store.Entity{Kind: store.KindIP, ID: v.ipID}, lim.IP},
		entityLimit{fp, lim.Fingerprint})
	if err != nil {
		v.h.health.failed(err, v.h.OnStoreError)
		return false // the captcha still works without this count
	}
	return within
}

// fingerprintOfSeveral reports whether a fingerprint that a refused slide
// reported may be labelled: it must match the request it came with (a
// script can post anyone's fingerprint; labelling it would refuse the
// real browsers that share it), and more than one device must have been
// refused with it.
func (v *visit) fingerprintOfSeveral(fp *riskscore.Fingerprint, e store.Entity) bool {
	if fp.UA != v.r.UserAgent() {
		return false
	}
	devs, err := v.h.store.PushList(v.r.Context(), "fpdev:"+e.Key(), []byte(v.device), 8, time.Duration(v.h.LabelTTL))
	if err != nil {
		return false
	}
	distinct := map[string]bool{}
	for _, d := range devs {
		distinct[string(d)] = true
	}
	return len(distinct) >= fingerprintDevices
}

// sparsePointer reports whether a mouse or pen drag from a browser that
// claims to be Chromium came with fewer samples than such a device sends.
// Chromium hands a page every sample the pointer sent, through
// getCoalescedEvents, which slide.js reads; a driver that sends CDP moves
// one at a time from a loaded machine gets fewer than one a frame. Touch is
// not judged (60 Hz screens exist; a touch drag needs a touch screen, which
// the fingerprint checks), nor Safari (one event a frame; every iOS
// browser) or Firefox (not measured); a Chromium engine behind another UA
// is the fingerprint's to find. Drags too short for a median (NaN) pass.
// People it would send to the captcha, none of them measured: remote
// desktops and virtual machines, assistive pointers (head and eye
// trackers, Mouse Keys), a drag slower than the screen's pixels change.
func sparsePointer(pointer, userAgent string, medianInterval float64) bool {
	return (pointer == "mouse" || pointer == "pen") && medianInterval > sparseInterval &&
		riskscore.ParseUserAgent(userAgent).Chromium()
}

func allZero(v []float64) bool {
	for _, x := range v {
		if x != 0 {
			return false
		}
	}
	return true
}
