#!/usr/bin/env bash
# Runs every test: installs Debian's redis-server when it is missing (the
# tests start their own on free ports), then `go test -race ./...` in each
# of the repository's Go modules (the gateway, bench/ and attack/).
# A skipped test fails the run: skips must not pass for passes.
set -euo pipefail
cd "$(dirname "$0")/.."

# Real parts the tests use: redis-server (the tests start their own on
# free ports) and Debian's headless Chromium (browser tests).
missing=""
command -v redis-server >/dev/null 2>&1 || missing="$missing redis-server"
[ -x /usr/bin/chromium ] || missing="$missing chromium"
# OpenBLAS, which the gateway's build uses when present (make build, make
# run): the solver's packages are tested on it as well as on pure Go.
ls /usr/lib/*/libopenblas.so >/dev/null 2>&1 || missing="$missing libopenblas-dev"
if [ -n "$missing" ]; then
	echo "== installing$missing (Debian packages)"
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo=sudo
	$sudo apt-get update -qq && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi
# The package starts a system-wide instance on 6379; the tests do not use it.

# Three Go modules: the gateway (.), and the research (bench/) and the
# attack suite (attack/), each a module of its own so that the published
# module does not carry them. Every one is vetted and tested.
modules=(. bench attack)
for m in "${modules[@]}"; do
	echo "== go vet ($m)"
	(cd "$m" && go vet ./...)
done
out=$(mktemp)
trap 'rm -f "$out"' EXIT
status=0
set +e
for m in "${modules[@]}"; do
	echo "== go test -race ./... ($m)"
	(cd "$m" && go test -race -count=1 -v ./...) 2>&1 | tee -a "$out" | grep -E '^(=== RUN|--- (FAIL|SKIP)|ok |FAIL|panic:)' | grep -v '^=== RUN'
	s=${PIPESTATUS[0]}
	[ "$s" -eq 0 ] || status=$s
done
# The generator's matrix products again through OpenBLAS (the build tag
# make build and make run use); the run above was pure Go.
echo "== go test -tags openblas (solver, perturb, captchapool)"
go test -tags openblas -count=1 -v ./solver ./perturb ./captchapool 2>&1 | tee -a "$out" | grep -E '^(--- (FAIL|SKIP)|ok |FAIL|panic:)'
s=${PIPESTATUS[0]}
[ "$s" -eq 0 ] || status=$s
set -e
if grep -q -- '--- SKIP' "$out"; then
	echo "FAIL: skipped tests (see above); every test must run" >&2
	exit 1
fi
if [ "$status" -ne 0 ]; then
	# What failed, without the Caddy log lines around it: the tests' own
	# messages, race reports and panics.
	grep -v '^{"level"' "$out" | grep -E -A12 -- '^\s+[A-Za-z0-9_]+_test\.go:[0-9]+:|^WARNING: DATA RACE|^panic:|^--- FAIL' | head -300 >&2 || true
	exit "$status"
fi
echo "== all tests passed: $(grep -c -- '--- PASS' "$out") passed, 0 skipped"
