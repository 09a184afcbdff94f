# meshexp — targets named in the README.
GO ?= go
BIN := bin/meshexp
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

.PHONY: all build test lint demo bench clean

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

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$$($(GO) env GOPATH)/bin/staticcheck ./...

clean:
	rm -rf bin dist
