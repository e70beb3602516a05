# Parley — `make test` is the one command that proves the tree.
GO      ?= go
PKGS    ?= ./...
TIMEOUT ?= 20m

.PHONY: help test test-quick vet fmt-check services pyenv test-go test-cluster test-outage test-web test-deploy run bench build clean proto proto-check

## test: the whole suite, as CI runs it (starts the real engines; ~20 min)
test: fmt-check vet services test-go test-cluster test-outage test-web test-deploy

## help: list the targets and what each starts or installs
help:
	@sed -n 's/^## //p' $(MAKEFILE_LIST)

# The packages whose tests need no real engine: the embedded adapters,
# the roles, the gateway and the server end to end in embedded mode.
EMBEDDED_PKGS = $$($(GO) list ./... | grep -v -E '/(storage/cassandra|storage/minio|search/elastic|delivery/kafka)$$')

## test-quick: embedded-mode tests only: no JVMs, no browser, no race detector (a few minutes)
test-quick: pyenv
	$(GO) test -count=1 -skip '$(CLUSTER_TESTS)|$(ENGINE_TESTS)' $(EMBEDDED_PKGS)

# Tests of cmd/parley that need the real engines (test-go runs them).
ENGINE_TESTS = ^(TestMigratePreparesEveryEngine|TestAdminViewReadsKafkaGroups)$$

# The real engines the distributed adapters are tested against, started
# natively on loopback when they are not running (deploy/local/README.md).
SERVICES ?= kafka cassandra elasticsearch minio

## services: install (first time, from Maven Central and the Go proxy) and start Kafka, Cassandra, Elasticsearch, MinIO on loopback
services:
	deploy/local/services up $(SERVICES)

## pyenv: install (first time, from PyPI) the Python venv that checks push output with independent implementations (http-ece, cryptography, standardwebhooks)
pyenv:
	deploy/local/pyenv >/dev/null

## fmt-check: fail when gofmt would change a file
fmt-check:
	@out="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))"; \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

## vet: go vet, also with the outage build tag
vet:
	$(GO) vet $(PKGS)
	$(GO) vet -tags outage ./cmd/parley

# Multi-process topologies (cmd/parley's TestCluster* and the nginx of
# docker-compose.yml) run in test-cluster, alone: they offer thousands of
# sends a second to separate parley processes, which must not share the
# two cores with the other packages' tests (or with the race detector).
CLUSTER_TESTS = ^(TestCluster|TestComposeNginx)

## test-go: every Go test but the cluster ones, with the race detector (starts the engines)
test-go: services pyenv
	$(GO) test -race -timeout $(TIMEOUT) -count=1 -skip '$(CLUSTER_TESTS)' $(PKGS)

## test-cluster: the multi-process cluster and nginx tests, alone (starts the engines; nginx from Debian's package)
test-cluster: services
	$(GO) test -run '$(CLUSTER_TESTS)' -timeout $(TIMEOUT) -count=1 -v ./cmd/parley

# Engine outages under load: these stop and restart the shared engines, so
# they run alone, after the other Go tests (built only with -tags outage).
## test-outage: stop and restart the engines under load (starts the engines)
test-outage: services
	$(GO) test -tags outage -run TestOutage -timeout $(TIMEOUT) -count=1 -v ./cmd/parley
	deploy/local/services up $(SERVICES)

# Browser end-to-end tests: Playwright driving Debian's Chromium against a
# real `parley serve` (web/e2e/setup.sh installs what is missing).
## test-web: browser end-to-end tests (installs Debian's Chromium and playwright-core from npm when missing)
test-web:
	@if [ -f web/e2e/package.json ]; then bash web/e2e/setup.sh && cd web/e2e && npm test; fi

# Its own Go module (deploy/verify), so the server's module neither builds
# nor links the Kubernetes API types and compose-go.
## test-deploy: decode deploy/kubernetes strictly into the Kubernetes API types, load docker-compose.yml with compose-go, run parley check-config on every container of both
test-deploy:
	cd deploy/verify && $(GO) vet ./... && $(GO) test -count=1 ./...

## build: bin/parley, stamped with the commit and build date (parley version)
build:
	$(GO) build -ldflags "-X main.commit=$$(git rev-parse HEAD 2>/dev/null) -X main.buildDate=$$(date -u +%Y-%m-%dT%H:%M:%SZ)" -o bin/parley ./cmd/parley

## run: the server in embedded mode on http://localhost:8080
run:
	$(GO) run ./cmd/parley

# The benchmark set of issue 10 (deploy/bench/run): an embedded parley and
# Centrifugo (the peer, installed from its Go module into ~/.cache) measured
# by cmd/parley-load in one run, plus `go test -bench`; writes BENCHMARKS.md
# and docs/benchmarks/latency.png. Under 10 minutes on 2 cores.
## bench: the issue-10 benchmark set against Parley and Centrifugo (installs Centrifugo into ~/.cache/parley-bench); writes BENCHMARKS.md
bench:
	deploy/bench/run short

# The binary realtime protocol's schema (parley/v1/parley.proto) and its
# committed Go code: builds need no protoc; these fetch it (Maven Central)
# and protoc-gen-go (Go module proxy) into ~/.cache/parley-tools.
## proto: regenerate parley/v1/parley.pb.go from parley/v1/parley.proto (installs protoc and protoc-gen-go into ~/.cache/parley-tools)
proto:
	deploy/tools/protoc

## proto-check: fail when parley/v1/parley.pb.go is stale
proto-check:
	deploy/tools/protoc --check

## clean: remove bin/ and the default data dir
clean:
	rm -rf bin parley-data
