#!/bin/bash
# Runs each fuzzer briefly and keeps up to 40 of the inputs it found
# interesting as the committed corpus (testdata/fuzz/<Name>/).
cd "$(dirname "$0")/.."
cache=$(go env GOCACHE)/fuzz
grep -o "go test ./[a-z]* -run '^\$' -fuzz '^Fuzz[A-Za-z]*\\$'" scripts/fuzz.sh | while read -r _ _ pkg _ _ _ name; do
	name=$(echo "$name" | tr -d "'^\$")
	go test "$pkg" -run '^$' -fuzz "^$name\$" -fuzztime 8s -parallel 1 >/dev/null 2>&1 || echo "FUZZ FAIL $pkg $name"
	imp=$(go list "$pkg")
	src="$cache/$imp/$name"
	dst="$pkg/testdata/fuzz/$name"
	[ -d "$src" ] || { echo "no corpus $pkg $name"; continue; }
	mkdir -p "$dst"
	ls "$src" | head -40 | while read -r f; do cp "$src/$f" "$dst/$f"; done
	echo "$pkg $name: $(ls "$dst" | wc -l) inputs"
done
