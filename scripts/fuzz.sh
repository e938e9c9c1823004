#!/usr/bin/env bash
# Fuzzes each parser for FUZZTIME (default 30s).
set -euo pipefail
cd "$(dirname "$0")/.."
t=${FUZZTIME:-30s}
go test ./riskscore -run '^$' -fuzz '^FuzzParseBrands$' -fuzztime "$t"
go test ./riskscore -run '^$' -fuzz '^FuzzUserAgent$' -fuzztime "$t"
go test ./clearance -run '^$' -fuzz '^FuzzVerify$' -fuzztime "$t"
go test ./caddymodule -run '^$' -fuzz '^FuzzServeHTTP$' -fuzztime "$t"
go test ./captcha -run '^$' -fuzz '^FuzzDecodeWAV$' -fuzztime "$t"
go test ./trajectory -run '^$' -fuzz '^FuzzDecode$' -fuzztime "$t"
go test ./caddymodule -run '^$' -fuzz '^FuzzSlideBody$' -fuzztime "$t"
go test ./captchapool -run '^$' -fuzz '^FuzzUnmarshal$' -fuzztime "$t"
go test ./solver -run '^$' -fuzz '^FuzzUnmarshal$' -fuzztime "$t"
go test ./caddymodule -run '^$' -fuzz '^FuzzAnswerBody$' -fuzztime "$t"
go test ./caddymodule -run '^$' -fuzz '^FuzzOperatorLabel$' -fuzztime "$t"
go test ./caddymodule -run '^$' -fuzz '^FuzzSafeReturn$' -fuzztime "$t"
go test ./caddymodule -run '^$' -fuzz '^FuzzCaddyfile$' -fuzztime "$t"
go test ./riskscore -run '^$' -fuzz '^FuzzFingerprint$' -fuzztime "$t"
