#!/usr/bin/env bash
# Installs nfpm (deb/rpm packager) into a version-keyed cache outside the
# repository and prints its path. Kept out of meshexp's go.mod: it is a
# build tool with many dependencies. `go install pkg@version` through the
# module proxy works for this release (v2.48.0).
set -euo pipefail
NFPM_VERSION=v2.48.0
cache_root=${MESHEXP_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/meshexp}
dir="$cache_root/nfpm-$NFPM_VERSION"
if [ ! -x "$dir/nfpm" ]; then
  echo "install-nfpm: building nfpm $NFPM_VERSION into $dir (about 30 s)" >&2
  GOBIN="$dir" CGO_ENABLED=0 go install "github.com/goreleaser/nfpm/v2/cmd/nfpm@$NFPM_VERSION"
fi
echo "$dir/nfpm"
