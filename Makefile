# meshexp — targets named in the README.
GO ?= go
BIN := bin/meshexp
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

.PHONY: all build test lint demo soak bench bench-bootstrap bench-image bench-intercept bench-dns bench-kube image example-image packages dist bench-controller clean

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

# The identity soak (root): SVIDs rotating every ~20s under traffic while
# SPIRE is killed, restarted, cut off and changed. The short variant (a few
# minutes) also runs in `make test`; SOAK=30m adds a 30-minute steady phase.
SOAK ?=
soak:
	MESHEXP_SPIRE_BIN_DIR=$$(bash hack/install-spire.sh) MESHEXP_KUBE_BIN_DIR=$$(bash hack/install-kube.sh) \
	MESHEXP_REQUIRE_SPIRE=1 MESHEXP_SOAK=$(SOAK) $(GO) test -count=1 -v -timeout 4h -run '^TestSoak' ./test/e2e

# Side-by-side benchmarks (root): each prints meshexp's figures next to what
# it replaces; the README reports the ratios.
bench: bench-bootstrap bench-image bench-intercept bench-dns bench-kube bench-controller

bench-bootstrap:
	MESHEXP_SPIRE_BIN_DIR=$$(bash hack/install-spire.sh) $(GO) test -run '^$$' -bench StartToProxyReady -benchtime 3x ./test/e2e

# docker run of the seed's line → proxy /ready, beside the bare bootstrap in
# a network namespace (the images are built first, not timed).
bench-image:
	MESHEXP_SPIRE_BIN_DIR=$$(bash hack/install-spire.sh) $(GO) test -run '^$$' -bench 'StartToProxyReady' -benchtime 3x ./test/e2e
	$(GO) test -run '^$$' -bench DockerRunToProxyReady -benchtime 3x ./test/image

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

# The container image from deploy/image/Dockerfile (public bases by default;
# BASE=… PROXY_IMAGE=… for others, e.g. BASE=$$(bash hack/image-base.sh)).
image:
	MESHEXP_IMAGE_BASE=$(BASE) MESHEXP_IMAGE_PROXY=$(PROXY_IMAGE) VERSION=$(VERSION) bash hack/image.sh

# The seed's example workload FROM the image (IMAGE=meshexp:<version>).
example-image:
	mkdir -p bin/example && CGO_ENABLED=0 $(GO) build -trimpath -o bin/example/my-workload ./test/workload
	docker build -t meshexp-example:$(VERSION) --build-arg BASE=$${IMAGE:-meshexp:$(VERSION)} -f deploy/example-workload/Dockerfile bin/example

# .deb and .rpm for this machine's architecture in dist/.
packages:
	bash hack/packages.sh

# linux/amd64 and linux/arm64 binaries, packages, SPIRE and SHA256SUMS in dist/.
dist:
	bash hack/dist.sh

clean:
	rm -rf bin dist

# The fleet controller (one `meshexp controller`, N simulated hosts with
# their own mTLS streams and SVIDs) beside the per-host Lease design of
# bench-kube at the sizes that design fits on this machine (~20 min).
bench-controller:
	MESHEXP_KUBE_BIN_DIR=$$(bash hack/install-kube.sh) $(GO) test -run '^$$' -bench SteadyState -benchtime 1x ./internal/kube -args -bench-hosts 1000,2000
	MESHEXP_KUBE_BIN_DIR=$$(bash hack/install-kube.sh) $(GO) test -run '^$$' -bench ControllerFleet -benchtime 1x -timeout 60m ./internal/controller -args -controller-hosts 1000,5000,10000
	MESHEXP_KUBE_BIN_DIR=$$(bash hack/install-kube.sh) $(GO) test -run '^$$' -bench ControllerFailover -benchtime 1x -timeout 30m ./internal/controller -args -failover-hosts 1000
