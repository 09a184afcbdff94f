#!/usr/bin/env bash
# Builds the pinned kube-apiserver and etcd that internal/testutil/kubetest
# runs into a version-keyed cache outside the repository and prints the
# directory holding them. A second run with the binaries present does nothing.
#
# Why a separate module: `go install k8s.io/kubernetes/cmd/kube-apiserver@v1.34.4`
# is refused because k8s.io/kubernetes replaces its 31 staging modules with
# in-repository paths; hack/tools/kube requires k8s.io/kubernetes and replaces
# each staging module with its published v0.34.4 (see
# docs/kube-apiserver.md). etcd v3.6.4 is what v1.34.4 itself requires.
# Why -ldflags: without gitVersion the server's /version reports v0.0.0 and
# clients' discovery of the server version is nonsense.
#
# Cost on 2 cores: about 4-7 min and 1.8 GB of memory cold, a 10 s relink warm.
set -euo pipefail

KUBE_VERSION=v1.34.4
ETCD_VERSION=v3.6.4
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache_root=${MESHEXP_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/meshexp}
dir="$cache_root/kube-$KUBE_VERSION-etcd-$ETCD_VERSION"

present() { [ -x "$dir/kube-apiserver" ] && [ -x "$dir/etcd" ]; }

if present; then
  echo "$dir"
  exit 0
fi

mod="$here/tools/kube/go.mod"
for want in "k8s.io/kubernetes $KUBE_VERSION" "go.etcd.io/etcd/server/v3 $ETCD_VERSION"; do
  if ! grep -q "^[[:space:]]*$want\b" "$mod"; then
    echo "install-kube: $mod does not pin $want; update the script and the module together" >&2
    exit 1
  fi
done

# Two concurrent runs (CI and a developer, two test shells) must not both
# spend 2 GB building the same thing.
mkdir -p "$cache_root"
exec 9>"$dir.lock"
flock 9
if present; then
  echo "$dir"
  exit 0
fi

echo "install-kube: building kube-apiserver $KUBE_VERSION and etcd $ETCD_VERSION into $dir (about 4-7 min cold on 2 cores)" >&2
tmp="$dir.tmp.$$"
rm -rf "$tmp"
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT

minor=${KUBE_VERSION#v1.}
minor=${minor%%.*}
pkg=k8s.io/component-base/version
ldflags="-s -w -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
(
  cd "$here/tools/kube"
  export GOFLAGS=-mod=readonly CGO_ENABLED=0
  go build -trimpath -ldflags="$ldflags" -o "$tmp/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
  go build -trimpath -ldflags='-s -w' -o "$tmp/etcd" go.etcd.io/etcd/server/v3
)

got=$("$tmp/kube-apiserver" --version)
if [ "$got" != "Kubernetes $KUBE_VERSION" ]; then
  echo "install-kube: built kube-apiserver reports \"$got\", want \"Kubernetes $KUBE_VERSION\"" >&2
  exit 1
fi
if ! "$tmp/etcd" --version | grep -q "etcd Version: ${ETCD_VERSION#v}"; then
  echo "install-kube: built etcd reports \"$("$tmp/etcd" --version | head -1)\", want $ETCD_VERSION" >&2
  exit 1
fi

rm -rf "$dir"
mv "$tmp" "$dir"
trap - EXIT
echo "$dir"
