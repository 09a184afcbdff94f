#!/usr/bin/env bash
# Makes the local Debian base image the tests build meshexp's image FROM,
# because this machine's Docker engine has no registry to pull
# debian:bookworm-slim from: debootstrap (minbase + what the image needs)
# into a tarball cached by suite and snapshot date outside the repository,
# then `docker import`. Prints the image tag. A second run with the tag
# present does nothing; with the tarball cached it only imports.
#
#   MESHEXP_BASE_SUITE     Debian suite (default bookworm)
#   MESHEXP_BASE_MIRROR    mirror (default: the host's apt mirror, deb.debian.org)
#   MESHEXP_BASE_INCLUDE   extra packages (comma separated)
set -euo pipefail

suite=${MESHEXP_BASE_SUITE:-bookworm}
mirror=${MESHEXP_BASE_MIRROR:-http://deb.debian.org/debian}
# The image needs iptables (both backends) and CA certificates; the package
# and systemd tests add systemd through MESHEXP_BASE_INCLUDE.
include=iptables,ca-certificates${MESHEXP_BASE_INCLUDE:+,$MESHEXP_BASE_INCLUDE}
# The version is the suite's point release (from the host when it runs the
# same suite) so the cache changes when Debian does, not on every day.
version=${MESHEXP_BASE_VERSION:-}
if [ -z "$version" ]; then
  if grep -q "$suite" /etc/os-release 2>/dev/null; then
    version=$(cat /etc/debian_version)
  else
    version=$(date -u +%Y%m)
  fi
fi
key=$(printf '%s' "$include" | sha256sum | cut -c1-8)
tag="meshexp-local/debian:$suite-$version-$key"
cache_root=${MESHEXP_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/meshexp}
tarball="$cache_root/base-$suite-$version-$key.tar"

log() { printf 'image-base: %s\n' "$*" >&2; }

if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "$tag"
  exit 0
fi

if [ ! -s "$tarball" ]; then
  command -v debootstrap >/dev/null || {
    [ "$(id -u)" -eq 0 ] || { log "debootstrap is missing: apt-get install debootstrap"; exit 1; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
  }
  [ "$(id -u)" -eq 0 ] || { log "debootstrap needs root"; exit 1; }
  mkdir -p "$cache_root"
  root=$(mktemp -d "$cache_root/base-root.XXXXXX")
  trap 'rm -rf "$root" "$tarball.tmp"' EXIT
  log "debootstrap $suite (minbase + $include) from $mirror (about 2 min cold)"
  debootstrap --variant=minbase --include="$include" "$suite" "$root" "$mirror" >"$root.log" 2>&1 || {
    tail -20 "$root.log" >&2; rm -f "$root.log"; exit 1; }
  rm -f "$root.log"
  # What an image base needs: no package caches, a usable apt source.
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  printf 'deb %s %s main\n' "$mirror" "$suite" >"$root/etc/apt/sources.list"
  tar --numeric-owner -C "$root" -cf "$tarball.tmp" .
  mv "$tarball.tmp" "$tarball"
  rm -rf "$root"
  trap - EXIT
fi

log "docker import $tarball as $tag"
docker import --change 'CMD ["/bin/bash"]' "$tarball" "$tag" >/dev/null
echo "$tag"
