#!/usr/bin/env bash
# Lists what the published module (what `xcaddy build --with
# github.com/advcaptcha/advcaptcha` downloads) holds at a commit and fails if
# it carries bench/, attack/ or trajectory/gen/ files or grows past the size
# limit. Committed files only: scripts/modzip-check.sh [-rev REV] [-max MB] [-v]
set -euo pipefail
cd "$(dirname "$0")/.."
exec bench/lab modzip "$@"
