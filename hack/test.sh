#!/usr/bin/env bash
# The whole test suite, as the README's quick start and CI run it: installs
# what the tests need (apt packages, SPIRE, kube-apiserver + etcd) through
# the project's own scripts, then lint and `go test -race` with the real
# binaries required (a missing one fails instead of skipping).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf '== %s\n' "$*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
  log "not root: privileged tests (network namespaces, SPIRE, interception) will skip"
fi

log "installing Debian packages"
bash hack/install-deps.sh

log "installing SPIRE (cached by version)"
MESHEXP_SPIRE_BIN_DIR=$(bash hack/install-spire.sh)
export MESHEXP_SPIRE_BIN_DIR MESHEXP_REQUIRE_SPIRE=1

if [ -f hack/install-kube.sh ]; then
  log "installing kube-apiserver and etcd (cached by version)"
  MESHEXP_KUBE_BIN_DIR=$(bash hack/install-kube.sh)
  export MESHEXP_KUBE_BIN_DIR MESHEXP_REQUIRE_KUBE=1
fi

# The image, package and systemd tests (test/image) need a Docker engine;
# where one is installed they must run, not skip.
if [ -S /var/run/docker.sock ]; then
  export MESHEXP_REQUIRE_DOCKER=1
fi

log "lint: gofmt, go vet, staticcheck"
unformatted=$(gofmt -l $(git ls-files '*.go'))
if [ -n "$unformatted" ]; then
  echo "not gofmt-formatted:" >&2
  echo "$unformatted" >&2
  exit 1
fi
go vet ./...
GOOS=darwin go vet ./... # Linux-only code must keep its stubs building
staticcheck=$(go env GOPATH)/bin/staticcheck
if [ ! -x "$staticcheck" ]; then
  go install honnef.co/go/tools/cmd/staticcheck@v0.8.2
fi
"$staticcheck" ./...

log "go test -race"
# test/e2e includes the short identity soak (TestSoak*, a few minutes).
# -p 4: the long packages (e2e, image, controller) mostly wait on
# certificates, graces and containers, so four at a time on two cores
# finish sooner than go test's default of one per core.
go test -race -count=1 -p 4 -timeout 45m ${GOTESTFLAGS:-} ./...
