// Package attack is advcaptcha's own attack suite: it builds the real
// gateway (./cmd/caddy), runs it in front of a small recording upstream,
// and attacks it the way a scripted attacker does — over HTTP only, never
// through the caddymodule's internals — with the attacks of issue 22:
//
//   - replayed recorded human drags, exact and slightly altered;
//   - a flood of captcha requests from one IP (captchas handed out, memory);
//   - a flood of wrong answers from many devices of one IP;
//   - a flood of audio captchas from many devices of one IP;
//   - a Googlebot impostor whose address has a forward-confirmed
//     *.bc.googleusercontent.com name (resolved from a private /etc/hosts in
//     a mount namespace);
//   - redirect payloads in `return` (off-site or into the gateway's own
//     routes, as a browser would resolve them);
//   - account lockout by a refused client naming someone else's account;
//   - store churn evicting operator labels and failure counters;
//   - the admin area and X-Advcaptcha-* headers reaching the upstream, and
//     exempt-path tricks (`/.well-known/..;/admin`) passing unscored;
//   - the shipped solver model reading the captchas served after a flood.
//
// The gateways: "main" (memory store, challenge_at 5, a fixed secret and
// admin token, otherwise defaults), started by TestMain; "plain" (the same
// with adversarial captchas off, so a captcha is always there to answer,
// and accounts from X-Account); "churn" (max_entities 1000); "allow" (an
// allow-listed address, upstream_headers); and "crawler" (a private
// /etc/hosts). Each attacker IP is a loopback address of its own.
//
// Every test asserts that the defence holds and logs one figure line
// ("attack replay: 0/10 cleared"); TestMain prints one summary line,
// "attacks: replay=… altered=… flood_captchas=… …". `make attack` runs the
// package alone and shows only those lines; `make test` runs it with the
// rest. ATTACK_CADDY=/path/to/caddy skips the build and attacks that binary
// instead (for example one built from an older commit).
//
// The suite needs Linux: the crawler impostor runs its gateway under
// `unshare --mount` (or, unprivileged, `unshare --mount --map-root-user`)
// with a private /etc/hosts, and the attacks send from several 127.0.x.y
// source addresses, one per simulated attacker IP.
package attack
