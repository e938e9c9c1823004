#!/usr/bin/env bash
# Builds bin/caddy and runs the gateway with Caddyfile.example (in-memory
# store) in front of the demo application.
set -euo pipefail
cd "$(dirname "$0")/.."
# The captcha generator's matrix products run in OpenBLAS (about four times
# as many captchas a second as the pure-Go build: bench/RESULTS.md): install
# Debian's libopenblas-dev when it is missing and we may, else build pure Go.
have_openblas() {
	for f in /usr/lib/*/libopenblas.so /usr/lib/libopenblas.so; do [ -e "$f" ] && return 0; done
	return 1
}
if ! have_openblas && command -v apt-get >/dev/null 2>&1; then
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo -n"
	echo "== installing libopenblas-dev (Debian) for the captcha generator"
	$sudo apt-get update -qq >/dev/null 2>&1 && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libopenblas-dev >/dev/null 2>&1 ||
		echo "   (could not install it: building pure Go, fewer captchas a second)"
fi
tags=""
have_openblas && tags="-tags openblas"
go build $tags -o bin/caddy ./cmd/caddy
# The operators' dashboard needs a token; make one for this run.
export ADVCAPTCHA_ADMIN_TOKEN=${ADVCAPTCHA_ADMIN_TOKEN:-$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')}
echo
echo "  advcaptcha demo: open http://localhost:8080/"
echo "  (try also: curl -i http://localhost:8080/)   stop with Ctrl-C"
echo "  operators' dashboard: http://localhost:8080/.advcaptcha/admin/"
echo "  admin token: $ADVCAPTCHA_ADMIN_TOKEN"
echo
exec bin/caddy run --config Caddyfile.example --adapter caddyfile
