#!/usr/bin/env bash
# Benchmarks `meshexp dns` against dnsmasq, side by side, on loopback.
#
# Both forwarders get the same configuration: the same fake kube-dns for
# svc.cluster.local, the same fake upstream for everything else, the same
# cache size, the same limit on forwarded queries in flight. Both fakes are
# dnsmasq instances answering every name from memory (--address), so the
# authoritative end costs the same for both and is as cheap as it gets.
# dnsperf then sends two query mixes to each forwarder in turn:
#   cached    a small set of names, repeated (after a warm-up pass);
#   uncached  a unique name per query (so every one goes upstream).
# Each mix runs at full speed (QPS; latency then is mostly queueing behind
# dnsperf's outstanding queries) and at a fixed rate both forwarders can
# sustain (latency of the forwarder itself). Every measurement is repeated
# BENCH_ROUNDS times, alternating which forwarder goes first; the table
# gives the median of each figure. Latency percentiles come from dnsperf
# -v's per-query times.
#
# Only loopback and unprivileged ports are used; everything started is
# stopped by PID on exit. Needs: go, dnsmasq, dnsperf (hack/install-deps.sh).
#
# Environment: BENCH_DURATION (seconds per run, default 5), BENCH_ROUNDS
# (default 5), BENCH_RATE_CACHED and BENCH_RATE_UNCACHED (the fixed rates,
# default 20000 and 4000 queries/s), BENCH_CLIENTS (dnsperf -c, default 8), BENCH_OUTSTANDING
# (dnsperf -q, default 200), BENCH_CACHE (cache size, default 10000),
# BENCH_PORT_BASE (first of four ports, default 25350), BENCH_OUT (directory
# for raw outputs, default a temporary one, removed unless set),
# BENCH_MESHEXP (a meshexp binary to use instead of building one).
set -euo pipefail

duration=${BENCH_DURATION:-5}
rounds=${BENCH_ROUNDS:-5}
clients=${BENCH_CLIENTS:-8}
outstanding=${BENCH_OUTSTANDING:-200}
cache=${BENCH_CACHE:-10000}
base=${BENCH_PORT_BASE:-25350}
kube_port=$base up_port=$((base + 1)) mx_port=$((base + 2)) dm_port=$((base + 3))

for tool in go dnsmasq dnsperf; do
  command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || {
    echo "bench-dns: $tool is missing; run hack/install-deps.sh" >&2
    exit 1
  }
done
DNSMASQ=$(command -v dnsmasq || echo /usr/sbin/dnsmasq)

for p in $kube_port $up_port $mx_port $dm_port; do
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

# The fakes: answers from memory, TTL 300 (so caching forwarders keep them).
"$DNSMASQ" "${dnsmasq_common[@]}" --port="$kube_port" --cache-size=0 \
  --address=/svc.cluster.local/10.96.0.10 --local-ttl=300 >"$work/kube.log" 2>&1 &
pids+=($!)
"$DNSMASQ" "${dnsmasq_common[@]}" --port="$up_port" --cache-size=0 \
  --address=/#/192.0.2.1 --local-ttl=300 >"$work/upstream.log" 2>&1 &
pids+=($!)

# The forwarders under test, configured alike. dnsmasq's --dns-forward-max
# matches meshexp's --max-concurrent.
"$work/meshexp" dns --listen "127.0.0.1:$mx_port" \
  --cluster-dns "127.0.0.1:$kube_port" --upstream "127.0.0.1:$up_port" \
  --cache-size "$cache" --max-concurrent 1000 --log-interval 0 \
  --log-level warn >"$work/meshexp.log" 2>&1 &
pids+=($!)
"$DNSMASQ" "${dnsmasq_common[@]}" --port="$dm_port" --cache-size="$cache" \
  --dns-forward-max=1000 \
  --server=/svc.cluster.local/127.0.0.1#"$kube_port" \
  --server=127.0.0.1#"$up_port" >"$work/dnsmasq.log" 2>&1 &
pids+=($!)

# Wait until all four answer.
for p in $kube_port $up_port $mx_port $dm_port; do
  printf 'ready.example.com A\n' >"$work/ready.txt"
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

# Query files. cached: 100 names, one in five in the cluster zone.
: >"$work/cached.txt"
for i in $(seq 0 99); do
  if [ $((i % 5)) -eq 0 ]; then
    echo "svc-$i.default.svc.cluster.local A" >>"$work/cached.txt"
  else
    echo "host-$i.example.com A" >>"$work/cached.txt"
  fi
done
# uncached: unique names, enough that no run reaches the end of its file.
unique() { # prefix count
  awk -v p="$1" -v n="$2" 'BEGIN { for (i = 0; i < n; i++) {
    if (i % 5 == 0) printf "%s-%d.default.svc.cluster.local A\n", p, i
    else printf "%s-%d.example.com A\n", p, i } }'
}
per_run=$((duration * 150000))

# run NAME PORT FILE EXTRA... → prints "qps mean_ms p99_ms lost"
run() {
  local name=$1 port=$2 file=$3
  shift 3
  local out="$work/$name.out"
  dnsperf -s 127.0.0.1 -p "$port" -d "$file" -c "$clients" -q "$outstanding" -v "$@" >"$out" 2>&1 || true
  local qps mean lost p99
  qps=$(awk '/Queries per second:/ {printf "%.0f", $4}' "$out")
  mean=$(awk '/Average Latency/ {printf "%.3f", $4 * 1000}' "$out")
  lost=$(awk '/Queries lost:/ {print $3}' "$out")
  p99=$(awk '$1 == ">" {print $NF}' "$out" | sort -g | awk '{a[NR] = $1} END { if (NR == 0) { print "nan"; exit } i = int(NR * 0.99); if (i < 1) i = 1; printf "%.3f", a[i] * 1000 }')
  echo "${qps:-0} ${mean:-nan} ${p99:-nan} ${lost:-?}"
}

# The measurements: at full speed (dnsperf keeps $outstanding queries in
# flight, so latency there is mostly queueing) and at a fixed rate both
# forwarders sustain (latency of the forwarder itself).
rate_cached=${BENCH_RATE_CACHED:-20000}
rate_uncached=${BENCH_RATE_UNCACHED:-4000}
tests=(cached uncached cached@$rate_cached uncached@$rate_uncached)

declare -A result
echo "bench-dns: load before: $(cut -d' ' -f1-3 /proc/loadavg); ${duration}s per run, $rounds rounds, dnsperf -c $clients -q $outstanding, cache $cache"
for r in $(seq "$rounds"); do
  for test in "${tests[@]}"; do
    mix=${test%@*}
    extra=()
    [ "$mix" != "$test" ] && extra=(-Q "${test#*@}")
    # Alternate which forwarder goes first, so neither always runs on the
    # warmer (or busier) machine.
    order="meshexp dnsmasq"
    [ $((r % 2)) -eq 0 ] && order="dnsmasq meshexp"
    for target in $order; do
      port=$mx_port
      [ "$target" = dnsmasq ] && port=$dm_port
      if [ "$mix" = cached ]; then
        dnsperf -s 127.0.0.1 -p "$port" -d "$work/cached.txt" -n 2 >/dev/null 2>&1 || true
        res=$(run "$target-$test-$r" "$port" "$work/cached.txt" -l "$duration" "${extra[@]}")
      else
        unique "$target-r$r-${test#*@}" "$per_run" >"$work/unique.txt"
        res=$(run "$target-$test-$r" "$port" "$work/unique.txt" -l "$duration" -n 1 "${extra[@]}")
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
  for target in meshexp dnsmasq; do
    printf '| %s | %s | %s | %s | %s | %s |\n' "$test" "$target" \
      "$(median "$test" "$target" 1)" "$(median "$test" "$target" 2)" \
      "$(median "$test" "$target" 3)" "$(median "$test" "$target" 4)"
  done
done
echo
echo "| test | QPS meshexp/dnsmasq | mean meshexp/dnsmasq | p99 meshexp/dnsmasq | goal |"
echo "| --- | ---: | ---: | ---: | --- |"
for test in "${tests[@]}"; do
  mix=${test%@*}
  goal=1.0
  [ "$mix" = uncached ] && goal=0.8
  awk -v t="$test" -v g="$goal" -v fixed="$([ "$mix" != "$test" ] && echo 1 || echo 0)" \
    -v q1="$(median "$test" meshexp 1)" -v q2="$(median "$test" dnsmasq 1)" \
    -v m1="$(median "$test" meshexp 2)" -v m2="$(median "$test" dnsmasq 2)" \
    -v p1="$(median "$test" meshexp 3)" -v p2="$(median "$test" dnsmasq 3)" 'BEGIN {
      qr = (q2 > 0) ? q1 / q2 : 0; mr = (m2 > 0) ? m1 / m2 : 0; pr = (p2 > 0) ? p1 / p2 : 0
      if (fixed) { ok = (pr <= 1.0) ? "met" : "not met"; goal = "p99 ≤ 1× (rate fixed)" }
      else { ok = (qr >= g && pr <= 1.0) ? "met" : "not met"; goal = sprintf("QPS ≥ %s×, p99 ≤ 1×", g) }
      printf "| %s | %.2f | %.2f | %.2f | %s: %s |\n", t, qr, mr, pr, goal, ok }'
done
