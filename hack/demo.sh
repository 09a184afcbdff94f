#!/usr/bin/env bash
# make demo: meshexp bootstrap end to end in a throwaway network namespace.
#
# Two namespaces joined by a veth stand for a VM ("host", 10.213.9.1) and the
# rest of the mesh ("peer", 10.213.9.2). meshexp runs in the host namespace
# with the demo's embedded SPIRE, a sample workload that serves HTTP on 8000,
# and linkerd2-proxy — the real one when MESHEXP_PROXY_BIN points to it,
# otherwise the project's test stand-in, which answers every intercepted
# connection with its original destination. Everything is removed at the end.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

[ "$(id -u)" -eq 0 ] || { echo "make demo needs root (network namespaces, iptables, uids)" >&2; exit 1; }

say()  { printf '\n\033[1m== %s\033[0m\n' "$*"; }
step() { printf '   %s\n' "$*"; }

bash hack/install-deps.sh >/dev/null
spire_bin=$(bash hack/install-spire.sh)

work=$(mktemp -d /tmp/mxdemo.XXXX)
chmod 0755 "$work"
host=mxdemo-host-$$ peer=mxdemo-peer-$$
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  ip netns del "$host" 2>/dev/null || true
  ip netns del "$peer" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

say "building meshexp and the sample workload"
go build -o "$work/meshexp" ./cmd/meshexp
go build -o "$work/workload" ./test/workload
if [ -n "${MESHEXP_PROXY_BIN:-}" ] && [ -x "${MESHEXP_PROXY_BIN}" ]; then
  proxy=$MESHEXP_PROXY_BIN
  step "proxy: the real linkerd2-proxy at $proxy"
else
  go build -o "$work/linkerd2-proxy-standin" ./test/standin-proxy
  proxy=$work/linkerd2-proxy-standin
  step "proxy: the TEST STAND-IN (test/standin-proxy); set MESHEXP_PROXY_BIN to use a real linkerd2-proxy"
fi

say "creating namespaces $host (the VM) and $peer (the mesh), joined by a veth"
ip netns add "$host"
ip netns add "$peer"
ip -n "$host" link set lo up
ip -n "$peer" link set lo up
ip -n "$host" link add veth0 type veth peer name veth1 netns "$peer"
ip -n "$host" addr add 10.213.9.1/24 dev veth0
ip -n "$peer" addr add 10.213.9.2/24 dev veth1
ip -n "$host" link set veth0 up
ip -n "$peer" link set veth1 up

say "creating a trust anchor (meshexp certs root)"
mkdir -p "$work/certs"
"$work/meshexp" certs root --out-dir "$work/certs" --log-level warn | sed 's/^/   /'

say "starting meshexp bootstrap in $host (embedded demo SPIRE)"
export WORKLOAD_NAME=demo WORKLOAD_NAMESPACE=demo NODE_NAME=demo-vm \
  MESHEXP_TRUST_ANCHOR_DIR=$work/certs MESHEXP_SPIRE_MODE=embedded \
  MESHEXP_SPIRE_BIN_DIR=$spire_bin MESHEXP_SPIRE_DATA_DIR=$work/spire \
  MESHEXP_SPIRE_SOCKET=$work/run/api.sock MESHEXP_PROXY_BIN=$proxy \
  MESHEXP_WORKLOAD=$work/workload MESHEXP_WORKLOAD_USER=65534:65534 \
  MESHEXP_SHUTDOWN_GRACE=3s MESHEXP_TEST_SPIRE_SOCKET=$work/run/api.sock \
  WORKLOAD_LISTEN=:8000
say "meshexp check --pre in $host (the demo has no cluster: its checks fail or are skipped)"
ip netns exec "$host" "$work/meshexp" check --pre 2>/dev/null | sed 's/^/   /' || true

start=$(date +%s.%N)
ip netns exec "$host" "$work/meshexp" bootstrap >"$work/meshexp.log" 2>&1 &
pid=$!
for _ in $(seq 1 600); do
  if ip netns exec "$host" curl -fsS -m 1 http://127.0.0.1:8000/whoami >/dev/null 2>&1; then break; fi
  if ! kill -0 "$pid" 2>/dev/null; then cat "$work/meshexp.log"; echo "meshexp exited" >&2; exit 1; fi
  sleep 0.1
done
ready=$(date +%s.%N)
step "$(printf 'workload serving %.1f s after start (proxy ready, workload started)' "$(echo "$ready - $start" | bc 2>/dev/null || awk "BEGIN{print $ready-$start}")")"
grep -E '"?msg"?=?"?(phase|identity ready|interception rules installed|running)' "$work/meshexp.log" | sed 's/^/   log: /' | cut -c1-200 || true

say "identity issued to the proxy's uid (2102) by SPIRE, chained to the trust anchor"
setpriv --reuid 2102 --regid 2102 --clear-groups \
  "$work/meshexp" identity fetch-svid -socket "$work/run/api.sock" -id spiffe://root.linkerd.cluster.local/demo -timeout 20s >"$work/svid.pem" 2>/dev/null || true
if [ -s "$work/svid.pem" ]; then
  openssl x509 -in "$work/svid.pem" -noout -subject -issuer -ext subjectAltName -enddate 2>/dev/null | sed 's/^/   /'
  openssl verify -CAfile "$work/certs/ca.crt" -untrusted "$work/svid.pem" "$work/svid.pem" 2>&1 | sed 's/^/   /'
fi
step "the workload (uid 65534) asks the same socket: $(ip netns exec "$host" curl -fsS -m 5 http://127.0.0.1:8000/svid | head -c 120)"

say "interception rules installed in $host (nat table)"
ip netns exec "$host" iptables-save -t nat | grep -E 'PROXY_INIT' | sed 's/^/   /'

say "workload → peer 10.213.9.2:80 (outbound, intercepted by the proxy)"
step "$(ip netns exec "$host" curl -fsS -m 5 'http://127.0.0.1:8000/call?url=http://10.213.9.2:80/')"
say "peer → workload 10.213.9.1:8000 (inbound, intercepted by the proxy)"
step "$(ip netns exec "$peer" curl -fsS -m 5 http://10.213.9.1:8000/whoami)"

say "meshexp status (the admin endpoint on 127.0.0.1:4192)"
ip netns exec "$host" "$work/meshexp" status | sed 's/^/   /' || true
say "meshexp check against the running host in $host"
ip netns exec "$host" "$work/meshexp" check 2>/dev/null | sed 's/^/   /' || true

say "SIGTERM: ordered teardown"
kill -TERM "$pid"
status=0
wait "$pid" || status=$?
pid=""
grep -E 'teardown|child stopped|rules removed' "$work/meshexp.log" | sed 's/^/   log: /' | cut -c1-160
step "meshexp exited with status $status"
left=$(ip netns exec "$host" iptables-save -t nat | grep -c PROXY_INIT || true)
step "PROXY_INIT rules left: $left"
ip netns del "$host"; ip netns del "$peer"
step "namespaces removed"
[ "$status" -eq 0 ] && [ "$left" -eq 0 ]
