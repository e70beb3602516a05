# Parley — `make test` is the one command that proves the tree.
GO      ?= go
PKGS    ?= ./...
TIMEOUT ?= 20m

.PHONY: test vet fmt-check services test-go test-cluster test-outage test-web run bench build clean

test: fmt-check vet services test-go test-cluster test-outage test-web

# The real engines the distributed adapters are tested against, started
# natively on loopback when they are not running (deploy/local/README.md).
SERVICES ?= kafka cassandra elasticsearch minio

services:
	deploy/local/services up $(SERVICES)

fmt-check:
	@out="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))"; \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)
	$(GO) vet -tags outage ./cmd/parley

# Multi-process topologies (cmd/parley's TestCluster* and the nginx of
# docker-compose.yml) run in test-cluster, alone: they offer thousands of
# sends a second to separate parley processes, which must not share the
# two cores with the other packages' tests (or with the race detector).
CLUSTER_TESTS = ^(TestCluster|TestComposeNginx)

test-go: services
	$(GO) test -race -timeout $(TIMEOUT) -count=1 -skip '$(CLUSTER_TESTS)' $(PKGS)

test-cluster: services
	$(GO) test -run '$(CLUSTER_TESTS)' -timeout $(TIMEOUT) -count=1 -v ./cmd/parley

# Engine outages under load: these stop and restart the shared engines, so
# they run alone, after the other Go tests (built only with -tags outage).
test-outage: services
	$(GO) test -tags outage -run TestOutage -timeout $(TIMEOUT) -count=1 -v ./cmd/parley
	deploy/local/services up $(SERVICES)

# Browser end-to-end tests: Playwright driving Debian's Chromium against a
# real `parley serve` (web/e2e/setup.sh installs what is missing).
test-web:
	@if [ -f web/e2e/package.json ]; then bash web/e2e/setup.sh && cd web/e2e && npm test; fi

build:
	$(GO) build -o bin/parley ./cmd/parley

run:
	$(GO) run ./cmd/parley

# The benchmark set of issue 10 (deploy/bench/run): an embedded parley and
# Centrifugo (the peer, installed from its Go module into ~/.cache) measured
# by cmd/parley-load in one run, plus `go test -bench`; writes BENCHMARKS.md
# and docs/benchmarks/latency.png. Under 10 minutes on 2 cores.
bench:
	deploy/bench/run short

clean:
	rm -rf bin parley-data
