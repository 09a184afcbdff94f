#!/usr/bin/env bash
# make dist: release artifacts for linux/amd64 and linux/arm64 in dist/:
# meshexp binaries, .deb and .rpm packages, SPIRE server and agent built
# with cgo for each architecture (arm64 with Debian's cross compiler when
# installed), and SHA256SUMS. The version comes from git.
#
#   DIST_ARCHES   architectures (default "amd64 arm64")
#   DIST_SPIRE    0: skip the SPIRE builds (about 8 min per arch cold)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
log() { printf 'dist: %s\n' "$*" >&2; }

version=${VERSION:-$(git describe --tags --match 'v[0-9]*' 2>/dev/null | sed 's/^v//' || true)}
[ -n "$version" ] || version="0.0.0+git.$(git rev-list --count HEAD).$(git rev-parse --short HEAD)"
out=${DIST_OUT:-$root/dist}
rm -rf "$out"
mkdir -p "$out"
spire_version=$(grep -o 'spire v[0-9.]*' hack/tools/spire/go.mod | awk '{print $2}')
cache_root=${MESHEXP_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/meshexp}

for arch in ${DIST_ARCHES:-amd64 arm64}; do
  log "linux/$arch: meshexp $version"
  CGO_ENABLED=0 GOOS=linux GOARCH=$arch go build -trimpath \
    -ldflags "-s -w -X github.com/meshexp/meshexp/internal/cli.version=$version" \
    -o "$out/meshexp-$version-linux-$arch" ./cmd/meshexp
  VERSION=$version GOARCH=$arch PKG_OUT="$out" bash hack/packages.sh >/dev/null

  [ "${DIST_SPIRE:-1}" = 0 ] && continue
  # SPIRE needs cgo (sqlite3): the host's gcc for amd64, Debian's
  # gcc-aarch64-linux-gnu for arm64. Built against bookworm's glibc 2.36.
  if [ "$arch" = "$(go env GOARCH)" ]; then
    spire=$(bash hack/install-spire.sh)
  else
    cc=$(case $arch in arm64) echo aarch64-linux-gnu-gcc ;; *) echo "" ;; esac)
    if [ "$cc" = aarch64-linux-gnu-gcc ] && ! command -v "$cc" >/dev/null && [ "$(id -u)" -eq 0 ]; then
      log "installing Debian's arm64 cross compiler (gcc-aarch64-linux-gnu)"
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gcc-aarch64-linux-gnu libc6-dev-arm64-cross >/dev/null
    fi
    if [ -z "$cc" ] || ! command -v "$cc" >/dev/null; then
      log "linux/$arch: no C cross compiler ($cc; apt-get install gcc-aarch64-linux-gnu): SPIRE for $arch left out"
      continue
    fi
    spire="$cache_root/spire-$spire_version-linux-$arch"
    if [ ! -x "$spire/spire-server" ] || [ ! -x "$spire/spire-agent" ]; then
      log "linux/$arch: building SPIRE $spire_version with $cc (about 8 min cold)"
      tmp="$spire.tmp.$$"
      mkdir -p "$tmp"
      (cd hack/tools/spire && CGO_ENABLED=1 GOOS=linux GOARCH=$arch CC=$cc GOFLAGS=-mod=mod \
        go build -trimpath -ldflags='-s -w' -o "$tmp/" github.com/spiffe/spire/cmd/spire-server github.com/spiffe/spire/cmd/spire-agent)
      rm -rf "$spire"
      mv "$tmp" "$spire"
    fi
  fi
  tar -C "$spire" -czf "$out/spire-$spire_version-linux-$arch.tar.gz" spire-server spire-agent
done

(cd "$out" && sha256sum -- * >SHA256SUMS)
log "artifacts in $out:"
(cd "$out" && ls -l) >&2
echo "$out"
