#!/usr/bin/env bash
# Builds bin/caddy and runs the gateway with Caddyfile.example (in-memory
# store) in front of the demo application.
set -euo pipefail
cd "$(dirname "$0")/.."
go build -o bin/caddy ./cmd/caddy
# The operators' dashboard needs a token; make one for this run.
export ADVCAPTCHA_ADMIN_TOKEN=${ADVCAPTCHA_ADMIN_TOKEN:-$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')}
echo
echo "  advcaptcha demo: open http://localhost:8080/"
echo "  (try also: curl -i http://localhost:8080/)   stop with Ctrl-C"
echo "  operators' dashboard: http://localhost:8080/.advcaptcha/admin/"
echo "  admin token: $ADVCAPTCHA_ADMIN_TOKEN"
echo
exec bin/caddy run --config Caddyfile.example --adapter caddyfile
