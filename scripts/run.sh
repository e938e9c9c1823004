#!/usr/bin/env bash
# Builds bin/caddy and runs the gateway with Caddyfile.example (in-memory
# store) in front of the demo application.
set -euo pipefail
cd "$(dirname "$0")/.."
go build -o bin/caddy ./cmd/caddy
echo
echo "  advcaptcha demo: open http://localhost:8080/"
echo "  (try also: curl -i http://localhost:8080/)   stop with Ctrl-C"
echo
exec bin/caddy run --config Caddyfile.example --adapter caddyfile
