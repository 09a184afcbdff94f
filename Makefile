# meshexp — targets named in the README.
GO ?= go
BIN := bin/meshexp
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

.PHONY: all build test lint demo bench bench-bootstrap bench-intercept bench-dns bench-kube clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -X github.com/meshexp/meshexp/internal/cli.version=$(VERSION)" -o $(BIN) ./cmd/meshexp

# The whole suite: installs apt packages, SPIRE and kube-apiserver through
# hack/, then gofmt, go vet, staticcheck and go test -race (run as root).
test:
	bash hack/test.sh

# The bootstrap end to end in a throwaway network namespace (root).
demo:
	bash hack/demo.sh

# Side-by-side benchmarks (root): each prints meshexp's figures next to what
# it replaces; the README reports the ratios.
bench: bench-bootstrap bench-intercept bench-dns bench-kube

bench-bootstrap:
	MESHEXP_SPIRE_BIN_DIR=$$(bash hack/install-spire.sh) $(GO) test -run '^$$' -bench StartToProxyReady -benchtime 3x ./test/e2e

bench-intercept:
	$(GO) test -run '^$$' -bench Install ./internal/netfilter

# meshexp dns against dnsmasq, configured alike, driven by dnsperf (~5 min).
bench-dns:
	bash hack/install-deps.sh
	bash hack/bench-dns.sh

# N simulated hosts registering and heartbeating against one API server.
bench-kube:
	MESHEXP_KUBE_BIN_DIR=$$(bash hack/install-kube.sh) $(GO) test -run '^$$' -bench . ./internal/kube -args -bench-hosts 100,500,2000

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$$($(GO) env GOPATH)/bin/staticcheck ./...

clean:
	rm -rf bin dist
