# advcaptcha — see README.md.
.PHONY: build run test bench fuzz clean

build:
	go build -o bin/caddy ./cmd/caddy

# Build and run the gateway on the in-memory store in front of a demo site.
run:
	./scripts/run.sh

# Every test, against real Redis and real Caddy.
test:
	./scripts/test.sh

# Go benchmarks plus the load benchmark against plain Caddy.
bench:
	./bench/run.sh

# Short fuzzing of every parser (FUZZTIME=30s by default per target).
fuzz:
	./scripts/fuzz.sh

clean:
	rm -rf bin bench/out
