#!/usr/bin/env bash
# Builds the pinned SPIRE server and agent into a version-keyed cache outside
# the repository and prints the directory holding them. A second run with the
# binaries present does nothing.
#
# Why a separate module: `go install ...@v1.13.3` needs the module proxy's
# version list, which is refused here; `go get -tool` in hack/tools/spire
# pins the release and its go.sum (see docs/spire.md).
# Why cgo: the sqlite3 datastore refuses to run without it.
set -euo pipefail

SPIRE_VERSION=v1.13.3
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache_root=${MESHEXP_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/meshexp}
dir="$cache_root/spire-$SPIRE_VERSION"

if [ -x "$dir/spire-server" ] && [ -x "$dir/spire-agent" ]; then
  echo "$dir"
  exit 0
fi

want=$(grep -o 'spire v[0-9.]*' "$here/tools/spire/go.mod" | awk '{print $2}')
if [ "$want" != "$SPIRE_VERSION" ]; then
  echo "install-spire: hack/tools/spire/go.mod pins spire $want, script expects $SPIRE_VERSION" >&2
  exit 1
fi

command -v gcc >/dev/null || { echo "install-spire: gcc is required (cgo for sqlite3); apt-get install gcc" >&2; exit 1; }

echo "install-spire: building SPIRE $SPIRE_VERSION into $dir (about 8 min cold on 2 cores)" >&2
tmp="$dir.tmp.$$"
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
(
  cd "$here/tools/spire"
  CGO_ENABLED=1 GOFLAGS=-mod=mod GOBIN="$tmp" go install -trimpath -ldflags='-s -w' tool
)
rm -rf "$dir"
mv "$tmp" "$dir"
trap - EXIT
echo "$dir"
