# advcaptcha — see README.md.
.PHONY: build run test test-short screenshots attack bench bench-solver bench-capacity simulate fuzz clean

# The solver's matrix products run in OpenBLAS when Debian's libopenblas-dev
# is installed (about twice as fast as gonum's pure Go; see
# bench/solver/RESULTS.md); otherwise the build stays pure Go.
BLAS_TAGS := $(if $(wildcard /usr/lib/*/libopenblas.so /usr/lib/libopenblas.so),-tags openblas)

build:
	go build $(BLAS_TAGS) -o bin/caddy ./cmd/caddy

# Build and run the gateway on the in-memory store in front of a demo site.
run:
	./scripts/run.sh

# Every test, against real Redis and real Caddy.
test:
	./scripts/test.sh

# The fast loop: the unit tests alone, leaving out what starts redis-server,
# Caddy or Chromium and what trains models (well under a minute).
test-short:
	go test -short ./...

# Rewrite the screenshots in docs/ from the browser tests.
screenshots:
	go test -count=1 -run '^(TestBrowserHumanLikeSlideDrawsNoFinding|TestBrowserPhoneViewport|TestBrowserDashboard)$$' ./caddymodule -update

# The attack suite alone (it also runs in `make test`): the attacks of
# issue 22 against a real bin/caddy; one line per attack and the summary
# line "attacks: replay=… altered=… flood_captchas=…". attack/ is a Go
# module of its own (not published with the gateway), hence the cd.
attack:
	@out=$$(mktemp); (cd attack && go test -count=1 -v .) >"$$out" 2>&1; status=$$?; \
	grep -E '^(attacks:|attack:|--- |ok|FAIL|panic:)|_test\.go:[0-9]+: attack [a-z ]+: ' "$$out"; rm -f "$$out"; exit $$status

# Go benchmarks plus the load benchmark against plain Caddy.
bench:
	./bench/run.sh

# The solver against the same network in PyTorch.
bench-solver:
	./bench/solver/run.sh

# Captchas per second from pool-command processes against one Redis.
bench-capacity:
	./bench/capacity/run.sh

# The learning loop end to end: a simulated attacker against a real gateway
# (about half an hour on two cores); last line "stages: clean=… fidelity=…".
# bench/ is a Go module of its own: the program is built there and run from
# here, where its default paths point.
simulate:
	command -v redis-server >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server)
	cd bench && go build $(BLAS_TAGS) -o ../bin/lab/simulate ./simulate
	OPENBLAS_NUM_THREADS=1 bin/lab/simulate

# Short fuzzing of every parser (FUZZTIME=30s by default per target).
fuzz:
	./scripts/fuzz.sh

clean:
	rm -rf bin bench/out
