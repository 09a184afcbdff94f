#!/usr/bin/env bash
# Installs the Debian packages meshexp's tests and benchmarks need.
# Idempotent: packages already present are skipped without touching apt.
set -euo pipefail

# debootstrap makes the image tests' local Debian base; rpm checks the .rpm;
# podman runs the demo's line as the demo wrote it.
pkgs=(iptables nftables iproute2 dnsmasq-base dnsperf procps openssl util-linux curl debootstrap rpm podman)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: all present (${pkgs[*]})"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing ${missing[*]}; run as root or install them with apt-get" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
