package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/advcaptcha/advcaptcha/store"
)

// A captcha is handed out only against a decision to challenge: the
// request that was challenged gets its captcha at once, or a grant — a
// single-use token naming the device, the way back and how many more
// captchas it may still produce (refreshes) — that the challenge route
// redeems. A client that simply asks the challenge route for captchas,
// with or without cookies, gets none; one that redeems grants is bounded
// by the issuance budget below and by its counted requests.

// captchaGrant is what the store keeps of a grant.
type captchaGrant struct {
	Device string `json:"device"`
	IP     string `json:"ip"`
	Return string `json:"return"`
	// Uses is how many captchas the grant and its successors may still
	// produce.
	Uses int `json:"uses"`
}

// maxRefreshes is how many times a captcha page may be swapped for
// another ("another image") before the client must answer or come back
// through a challenged page.
const maxRefreshes = 3

// errCaptchaBudget is issueChallenge's answer when the client's network
// or device has had its captchas for now.
var errCaptchaBudget = errors.New("captcha budget spent")

// grantCaptcha stores a grant for uses captchas and returns the URL that
// redeems it.
func (v *visit) grantCaptcha(returnTo string, uses int) (string, error) {
	b, err := json.Marshal(captchaGrant{Device: v.device, IP: v.ipID, Return: returnTo, Uses: uses})
	if err != nil {
		return "", err
	}
	id := newChallengeID()
	if err := v.h.store.PutOnce(v.r.Context(), "grant:"+id, b, time.Duration(v.h.ChallengeTTL)); err != nil {
		return "", err
	}
	return routePrefix + "challenge?grant=" + id, nil
}

// serveGrantedChallenge redeems a grant for a captcha.
func (v *visit) serveGrantedChallenge(w http.ResponseWriter) error {
	id := v.r.URL.Query().Get("grant")
	if !validChallengeID(id) {
		return writeError(w, v.r, http.StatusForbidden, "captchas are handed out only to a page that asked for one; reload the page you came from")
	}
	// Peek, then Take: another browser naming this grant must not burn it.
	var g captchaGrant
	for _, read := range []func(context.Context, string) ([]byte, error){v.h.store.Peek, v.h.store.Take} {
		b, err := read(v.r.Context(), "grant:"+id)
		if errors.Is(err, store.ErrNotFound) {
			return writeError(w, v.r, http.StatusForbidden, "this check has expired or was used up; reload the page you came from")
		}
		if err != nil {
			v.h.health.failed(err, v.h.OnStoreError)
			return writeUnavailable(w, v.r)
		}
		if json.Unmarshal(b, &g) != nil || g.Device != v.device || g.Uses < 1 {
			return writeError(w, v.r, http.StatusForbidden, "this check was issued to another browser; reload the page you came from")
		}
	}
	return v.serveNewChallenge(w, safeReturn(g.Return), "", true, g.Uses-1)
}

// spendCaptchaBudget counts a captcha handed out against the device's and
// the IP prefix's budgets for the window. The budget is what bounds the
// memory and CPU a flood of challenge requests can cost, and how many
// adversarial captchas one network can draw from the pool.
//
// It is read first (withinCaptchaBudget) and spent only once a captcha is
// in hand: a client told to wait for the pool has been handed nothing, and
// a person whose waiting page retries every few seconds must not use up
// the budget doing so — nor may a client over its budget take entries out
// of the pool only to have them thrown away.
func (v *visit) spendCaptchaBudget() error {
	_, err := v.countWithin("captchas:", time.Duration(v.h.CaptchaBudget.Window), v.captchaBudget()...)
	return err
}

// withinCaptchaBudget reads, without counting, whether the device and the
// IP prefix may still be handed a captcha. Concurrent requests may each
// read the last one left, so the budget can be exceeded by as many
// requests as arrive at the same moment — still a bound.
func (v *visit) withinCaptchaBudget() (bool, error) {
	for _, l := range v.captchaBudget() {
		raw, err := v.h.store.Peek(v.r.Context(), "captchas:"+l.e.Key())
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return false, err
		}
		if n, err := strconv.ParseInt(string(raw), 10, 64); err == nil && n >= int64(l.limit) {
			return false, nil
		}
	}
	return true, nil
}

func (v *visit) captchaBudget() []entityLimit {
	b := v.h.CaptchaBudget
	return []entityLimit{
		{store.Entity{Kind: store.KindDevice, ID: v.device}, b.Device},
		{store.Entity{Kind: store.KindIP, ID: v.ipID}, b.IP},
	}
}

// serveBudgetSpent tells a client that has had its captchas to wait.
func (v *visit) serveBudgetSpent(w http.ResponseWriter) error {
	v.h.metrics.challenges.WithLabelValues("captcha", "over_budget").Inc()
	w.Header().Set("Retry-After", strconv.Itoa(int(time.Duration(v.h.CaptchaBudget.Window)/time.Second)))
	return writeError(w, v.r, http.StatusTooManyRequests, "too many checks from this network or browser; please try again in a few minutes")
}
