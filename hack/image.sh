#!/usr/bin/env bash
# Builds meshexp's base image from deploy/image/Dockerfile and prints its tag.
#
# The binaries are built on the host and copied in (the build context is a
# staged directory, not the repository): meshexp static (CGO_ENABLED=0),
# spire-server and spire-agent from hack/install-spire.sh (cgo, glibc of
# the host; the default base is Debian bookworm like the build host).
#
#   MESHEXP_IMAGE          tag (default meshexp:<version>)
#   MESHEXP_IMAGE_BASE     build arg BASE (default debian:bookworm-slim; the
#                          tests pass hack/image-base.sh's local base)
#   MESHEXP_IMAGE_PROXY    build arg PROXY_IMAGE (default Linkerd's proxy)
#   MESHEXP_IMAGE_STANDIN  1: build test/standin-proxy into an image and use
#                          it as PROXY_IMAGE (tests only; the tag must then
#                          start with meshexp-test/)
#   VERSION                version stamped into meshexp (default: git describe)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
log() { printf 'image: %s\n' "$*" >&2; }

version=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
tag=${MESHEXP_IMAGE:-meshexp:$version}
args=()
[ -n "${MESHEXP_IMAGE_BASE:-}" ] && args+=(--build-arg "BASE=$MESHEXP_IMAGE_BASE")
[ -n "${MESHEXP_IMAGE_PROXY:-}" ] && args+=(--build-arg "PROXY_IMAGE=$MESHEXP_IMAGE_PROXY")

case "${MESHEXP_IMAGE_PROXY:-}:$tag" in meshexp-test/*:meshexp-test/*) ;; meshexp-test/*)
  log "refusing to put the test stand-in proxy ($MESHEXP_IMAGE_PROXY) into $tag: stand-in images are tagged meshexp-test/..."; exit 2 ;;
esac
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT

if [ "${MESHEXP_IMAGE_STANDIN:-}" = 1 ]; then
  case "$tag" in meshexp-test/*) ;; *)
    log "refusing to put the test stand-in proxy into $tag: stand-in images are tagged meshexp-test/..."; exit 2 ;;
  esac
  standin="meshexp-test/standin-proxy:latest"
  args+=(--label meshexp.test=1)
  mkdir "$ctx/standin"
  CGO_ENABLED=0 go build -trimpath -o "$ctx/standin/linkerd2-proxy" ./test/standin-proxy
  docker build -q --label meshexp.test=1 -t "$standin" -f test/image/standin/Dockerfile "$ctx/standin" >/dev/null
  rm -rf "$ctx/standin"
  args+=(--build-arg "PROXY_IMAGE=$standin")
fi

spire=$(bash hack/install-spire.sh)
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X github.com/meshexp/meshexp/internal/cli.version=$version" \
  -o "$ctx/meshexp" ./cmd/meshexp
cp "$spire/spire-server" "$spire/spire-agent" "$ctx/"
log "docker build $tag ${args[*]}"
docker build -q -t "$tag" -f deploy/image/Dockerfile "${args[@]}" "$ctx" >/dev/null
log "$tag: $(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.1f MB", $1/1e6}')"
echo "$tag"
