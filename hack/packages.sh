#!/usr/bin/env bash
# Builds meshexp's .deb and .rpm with nfpm into dist/ (or $PKG_OUT) and
# prints the directory.
#
#   GOARCH       target architecture (default: the host's)
#   VERSION      package version (default: from git, see below)
#   PKG_OUT      output directory (default dist/)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
nfpm=$(bash hack/install-nfpm.sh)
goarch=${GOARCH:-$(go env GOARCH)}
# A package version must be semver: a tag v1.2.3 gives 1.2.3; without tags,
# 0.0.0+git.<commits>.<sha>, which sorts by commit count.
version=${VERSION:-$(git describe --tags --match 'v[0-9]*' 2>/dev/null | sed 's/^v//' || true)}
if [ -z "$version" ]; then
  version="0.0.0+git.$(git rev-list --count HEAD).$(git rev-parse --short HEAD)"
fi
out=${PKG_OUT:-$root/dist}
mkdir -p "$out"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
CGO_ENABLED=0 GOARCH=$goarch go build -trimpath \
  -ldflags "-s -w -X github.com/meshexp/meshexp/internal/cli.version=$version" -o "$stage/meshexp" ./cmd/meshexp
# The unit as deploy/systemd has it, with the packaged binary's path.
sed 's|/usr/local/bin/meshexp|/usr/bin/meshexp|g' deploy/systemd/meshexp.service >"$stage/meshexp.service"
# nfpm expands variables in a few fields only: fill in the whole file.
PKG_ARCH=$goarch PKG_VERSION=$version PKG_STAGE=$stage PKG_ROOT=$root \
  perl -pe 's/\$\{(PKG_\w+)\}/$ENV{$1}/g' deploy/packages/nfpm.yaml >"$stage/nfpm.yaml"
for packager in deb rpm; do
  "$nfpm" package --config "$stage/nfpm.yaml" --packager "$packager" --target "$out/" >&2
done
echo "$out"
