#!/usr/bin/env bash
# Benchmarks `meshexp dns` against dnsmasq, side by side, on loopback.
#
# Both forwarders get the same configuration: the same fake kube-dns for
# svc.cluster.local, the same fake upstream for everything else, the same
# cache size, the same limit on forwarded queries in flight. Both fakes are
# dnsmasq instances answering every name from memory (--address, TTL 300),
# so the authoritative end costs the same for both and is as cheap as it
# gets. dnsperf then sends two query mixes to each forwarder in turn:
#   cached    100 names (one in five under svc.cluster.local), repeated,
#             after a warm-up pass;
#   uncached  a unique name per query (same split), so every query goes
#             upstream and the cache churns.
# Each mix runs at full speed (QPS; latency there is mostly queueing behind
# dnsperf's outstanding queries) and at a fixed rate both forwarders sustain
# (the latency of the forwarder itself). The uncached mix also runs against
# a second meshexp with --dns-upstream-port-reuse 1 (a new source port for every
# forwarded query, as dnsmasq does). Every measurement is repeated
# BENCH_ROUNDS times, alternating which forwarder goes first; the first
# table gives the median of each figure, the second the median of each
# round's ratio to dnsmasq. Latency percentiles come from dnsperf
# -v's per-query times.
#
# Only loopback and unprivileged ports are used; everything started is
# stopped by PID on exit. Needs go, dnsmasq and dnsperf
# (hack/install-deps.sh). Takes about five minutes with the defaults.
#
# Environment: BENCH_DURATION (seconds per run, default 5), BENCH_ROUNDS
# (default 5), BENCH_RATE_CACHED and BENCH_RATE_UNCACHED (the fixed rates,
# default 20000 and 4000 queries/s), BENCH_CLIENTS (dnsperf -c, default 8),
# BENCH_OUTSTANDING (dnsperf -q, default 200), BENCH_CACHE (cache size,
# default 10000), BENCH_PORT_BASE (first of five ports, default 25350),
# BENCH_OUT (directory for raw outputs, default a temporary one, removed
# unless set), BENCH_MESHEXP (a meshexp binary to use instead of building).
set -euo pipefail

duration=${BENCH_DURATION:-5}
rounds=${BENCH_ROUNDS:-5}
rate_cached=${BENCH_RATE_CACHED:-20000}
rate_uncached=${BENCH_RATE_UNCACHED:-4000}
clients=${BENCH_CLIENTS:-8}
outstanding=${BENCH_OUTSTANDING:-200}
cache=${BENCH_CACHE:-10000}
base=${BENCH_PORT_BASE:-25350}
kube_port=$base up_port=$((base + 1))
declare -A port=([meshexp]=$((base + 2)) [dnsmasq]=$((base + 3)) [meshexp-port1]=$((base + 4)))

for tool in go dnsmasq dnsperf; do
  command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || {
    echo "bench-dns: $tool is missing; run hack/install-deps.sh" >&2
    exit 1
  }
done
DNSMASQ=$(command -v dnsmasq || echo /usr/sbin/dnsmasq)

for p in $kube_port $up_port "${port[@]}"; do
  if ss -Hln "( sport = :$p )" 2>/dev/null | grep -q .; then
    echo "bench-dns: port $p is in use; set BENCH_PORT_BASE" >&2
    exit 1
  fi
done

if [ -n "${BENCH_OUT:-}" ]; then
  work=$BENCH_OUT
  mkdir -p "$work"
else
  work=$(mktemp -d /tmp/meshexp-bench-dns.XXXXXX)
fi
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  [ -n "${BENCH_OUT:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cd "$(dirname "$0")/.."
if [ -n "${BENCH_MESHEXP:-}" ]; then
  cp "$BENCH_MESHEXP" "$work/meshexp"
else
  echo "bench-dns: building meshexp"
  go build -o "$work/meshexp" ./cmd/meshexp
fi

user=$(id -un)
dnsmasq_common=(--keep-in-foreground --no-resolv --no-hosts --bind-interfaces
  --listen-address=127.0.0.1 --user="$user" --pid-file= --log-facility=-)

# The fakes.
"$DNSMASQ" "${dnsmasq_common[@]}" --port="$kube_port" --cache-size=0 \
  --address=/svc.cluster.local/10.96.0.10 --local-ttl=300 >"$work/kube.log" 2>&1 &
pids+=($!)
"$DNSMASQ" "${dnsmasq_common[@]}" --port="$up_port" --cache-size=0 \
  --address=/#/192.0.2.1 --local-ttl=300 >"$work/upstream.log" 2>&1 &
pids+=($!)

# The forwarders under test, configured alike: same servers, same cache
# size; dnsmasq's --dns-forward-max is meshexp's --dns-max-concurrent.
meshexp_dns() { # port extra-args...
  local p=$1
  shift
  # exec: the background job's PID is then meshexp's own, for cleanup.
  exec "$work/meshexp" dns --dns-listen "127.0.0.1:$p" \
    --cluster-dns "127.0.0.1:$kube_port" --dns-upstream "127.0.0.1:$up_port" \
    --dns-cache-size "$cache" --dns-max-concurrent 1000 --dns-log-interval 0 --log-level warn "$@"
}
meshexp_dns "${port[meshexp]}" >"$work/meshexp.log" 2>&1 &
pids+=($!)
meshexp_dns "${port[meshexp-port1]}" --dns-upstream-port-reuse 1 >"$work/meshexp-port1.log" 2>&1 &
pids+=($!)
"$DNSMASQ" "${dnsmasq_common[@]}" --port="${port[dnsmasq]}" --cache-size="$cache" \
  --dns-forward-max=1000 \
  --server=/svc.cluster.local/127.0.0.1#"$kube_port" \
  --server=127.0.0.1#"$up_port" >"$work/dnsmasq.log" 2>&1 &
pids+=($!)

printf 'ready.example.com A\n' >"$work/ready.txt"
for p in $kube_port $up_port "${port[@]}"; do
  for _ in $(seq 50); do
    if dnsperf -s 127.0.0.1 -p "$p" -d "$work/ready.txt" -n 1 -t 1 2>/dev/null | grep -q 'Queries completed: *1 '; then
      continue 2
    fi
    sleep 0.2
  done
  echo "bench-dns: nothing answers on 127.0.0.1:$p; logs in $work" >&2
  BENCH_OUT=$work
  exit 1
done

: >"$work/cached.txt"
for i in $(seq 0 99); do
  if [ $((i % 5)) -eq 0 ]; then
    echo "svc-$i.default.svc.cluster.local A" >>"$work/cached.txt"
  else
    echo "host-$i.example.com A" >>"$work/cached.txt"
  fi
done
unique() { # prefix count
  awk -v p="$1" -v n="$2" 'BEGIN { for (i = 0; i < n; i++) {
    if (i % 5 == 0) printf "%s-%d.default.svc.cluster.local A\n", p, i
    else printf "%s-%d.example.com A\n", p, i } }'
}
# Enough unique names that no run reaches the end of its file.
per_run=$((duration * 150000))

# run NAME PORT FILE DNSPERF-ARGS... → "qps mean_ms p99_ms lost"
run() {
  local name=$1 p=$2 file=$3
  shift 3
  local out="$work/$name.out"
  dnsperf -s 127.0.0.1 -p "$p" -d "$file" -c "$clients" -q "$outstanding" -v "$@" >"$out" 2>&1 || true
  local qps mean lost p99
  qps=$(awk '/Queries per second:/ {printf "%.0f", $4}' "$out")
  mean=$(awk '/Average Latency/ {printf "%.3f", $4 * 1000}' "$out")
  lost=$(awk '/Queries lost:/ {print $3}' "$out")
  p99=$(awk '$1 == ">" {print $NF}' "$out" | sort -g |
    awk '{a[NR] = $1} END { if (NR == 0) { print "nan"; exit } i = int(NR * 0.99); if (i < 1) i = 1; printf "%.3f", a[i] * 1000 }')
  echo "${qps:-0} ${mean:-nan} ${p99:-nan} ${lost:-?}"
}

tests=(cached uncached "cached@$rate_cached" "uncached@$rate_uncached")
targets() { # test → the forwarders it runs against, in round r's order
  local list="meshexp dnsmasq"
  case $1 in uncached*) list="meshexp meshexp-port1 dnsmasq" ;; esac
  if [ $(($2 % 2)) -eq 0 ]; then echo "$list" | tr ' ' '\n' | tac | tr '\n' ' '; else echo "$list"; fi
}

declare -A result
echo "bench-dns: $(nproc) CPUs; load before: $(cut -d' ' -f1-3 /proc/loadavg); ${duration}s per run, $rounds rounds, dnsperf -c $clients -q $outstanding, cache $cache"
for r in $(seq "$rounds"); do
  for test in "${tests[@]}"; do
    mix=${test%@*}
    extra=()
    [ "$mix" != "$test" ] && extra=(-Q "${test#*@}")
    for target in $(targets "$test" "$r"); do
      p=${port[$target]}
      if [ "$mix" = cached ]; then
        dnsperf -s 127.0.0.1 -p "$p" -d "$work/cached.txt" -n 2 >/dev/null 2>&1 || true
        res=$(run "$target-$test-$r" "$p" "$work/cached.txt" -l "$duration" "${extra[@]}")
      else
        unique "$target-$r-${test#*@}" "$per_run" >"$work/unique.txt"
        res=$(run "$target-$test-$r" "$p" "$work/unique.txt" -l "$duration" -n 1 "${extra[@]}")
      fi
      result[$test,$target,$r]=$res
      echo "  round $r $test $target: qps mean_ms p99_ms lost = $res"
    done
  done
done
echo "bench-dns: load after: $(cut -d' ' -f1-3 /proc/loadavg)"

# median TEST TARGET FIELD → the median over the rounds of one field
# (1 qps, 2 mean, 3 p99, 4 lost).
median() {
  for r in $(seq "$rounds"); do echo "${result[$1,$2,$r]}"; done |
    awk -v f="$3" '{print $f}' | sort -g | awk '{a[NR] = $1} END { print a[int((NR + 1) / 2)] }'
}

echo
echo "Medians over $rounds rounds:"
echo
echo "| test | server | QPS | mean latency (ms) | p99 latency (ms) | lost |"
echo "| --- | --- | ---: | ---: | ---: | ---: |"
for test in "${tests[@]}"; do
  for target in $(targets "$test" 1); do
    printf '| %s | %s | %s | %s | %s | %s |\n' "$test" "$target" \
      "$(median "$test" "$target" 1)" "$(median "$test" "$target" 2)" \
      "$(median "$test" "$target" 3)" "$(median "$test" "$target" 4)"
  done
done
echo
# ratio TEST TARGET FIELD → the median over the rounds of TARGET's figure
# divided by dnsmasq's in the same round: paired, so that a round on a
# busier machine moves both sides of its ratio.
ratio() {
  for r in $(seq "$rounds"); do
    echo "${result[$1,$2,$r]} ${result[$1,dnsmasq,$r]}"
  done | awk -v f="$3" '{ d = $(f + 4); print (d > 0) ? $f / d : 0 }' |
    sort -g | awk '{a[NR] = $1} END { printf "%.2f", a[int((NR + 1) / 2)] }'
}

echo "Ratios to dnsmasq (median over the rounds of each round's ratio):"
echo
echo "| test | server | QPS ÷ dnsmasq | mean ÷ dnsmasq | p99 ÷ dnsmasq | goal |"
echo "| --- | --- | ---: | ---: | ---: | --- |"
missed=0
for test in "${tests[@]}"; do
  mix=${test%@*}
  for target in $(targets "$test" 1); do
    [ "$target" = dnsmasq ] && continue
    qr=$(ratio "$test" "$target" 1) mr=$(ratio "$test" "$target" 2) pr=$(ratio "$test" "$target" 3)
    if [ "$mix" != "$test" ]; then
      goal="p99 ≤ 1×"
      ok=$(awk -v p="$pr" 'BEGIN { print (p <= 1.0) ? "met" : "NOT met" }')
    else
      g=1.0
      [ "$mix" = uncached ] && g=0.8
      goal="QPS ≥ ${g}×, p99 ≤ 1×"
      ok=$(awk -v q="$qr" -v p="$pr" -v g="$g" 'BEGIN { print (q >= g && p <= 1.0) ? "met" : "NOT met" }')
    fi
    echo "| $test | $target | $qr | $mr | $pr | $goal: $ok |"
    # The goals are for the default configuration; the port-per-query
    # variant is there for its figures.
    [ "$target" = meshexp ] && [ "$ok" != met ] && missed=1
  done
done
exit $missed
