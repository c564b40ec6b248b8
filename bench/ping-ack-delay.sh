#!/usr/bin/env bash
# Measures --experimental-grpc-ping-ack-delay-ms with etcd's own load tool: real etcd 3.4 and
# two etcd-ts members (delay 0 and delay $DELAY_MS) side by side, alternating rounds:
#   - put at 16 clients on 16 connections (8 B keys, 256 B values, 100k key space): req/s, p99,
#     server CPU per put (utime + stime of the member's pid) and socket writes per put
#     (/proc/<pid>/io syscw, WAL writes included);
#   - watch-latency: 100 watchers on 10 connections, 100 puts/s: p50 / p99 from the put's ack.
# Usage: bench/ping-ack-delay.sh [rounds, default 5]   (env DELAY_MS, default 2; needs
# tools/build-etcd-benchmark.sh first and a quiet machine). Prints one line per run and the
# medians; every member is started here on loopback ports and stopped by its pid.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-5}
DELAY_MS=${DELAY_MS:-2}
TOOL=${ETCD_BENCHMARK:-.cache/etcd-benchmark/benchmark}
ETCD=${ETCD:-/usr/bin/etcd}
[ -x "$TOOL" ] || { echo "no $TOOL: run tools/build-etcd-benchmark.sh" >&2; exit 1; }
WORK=$(mktemp -d /tmp/ping-ack-delay.XXXXXX)
declare -A PID PORT
cleanup() { for p in "${PID[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

# start NAME CLIENT_PORT COMMAND...: a single member on 127.0.0.1, data in $WORK/NAME; its pid
# in PID[NAME] (not in a command substitution: a subshell would not keep it)
start() {
  local name=$1 port=$2; shift 2
  local peer=$((port + 100))
  "$@" --name "$name" --data-dir "$WORK/$name" \
    --listen-client-urls "http://127.0.0.1:$port" --advertise-client-urls "http://127.0.0.1:$port" \
    --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
    --initial-cluster "$name=http://127.0.0.1:$peer" >"$WORK/$name.log" 2>&1 &
  PID[$name]=$!
}
PORT[etcd]=24311; PORT[ts0]=24312; PORT[tsdelay]=24313
start etcd 24311 "$ETCD"
start ts0 24312 node dist/tools/etcd-ts.js --experimental-grpc-ping-ack-delay-ms 0
start tsdelay 24313 node dist/tools/etcd-ts.js --experimental-grpc-ping-ack-delay-ms "$DELAY_MS"
for s in etcd ts0 tsdelay; do
  for _ in $(seq 1 50); do
    curl -sf "http://127.0.0.1:${PORT[$s]}/health" >/dev/null && break
    sleep 0.2
  done
done

cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
syscw() { awk '/^syscw/ {print $2}' "/proc/$1/io"; }
TICKS=$(getconf CLK_TCK)
PUTS=30000
RESULTS="$WORK/results.txt"
for round in $(seq 1 "$ROUNDS"); do
  for s in etcd ts0 tsdelay; do
    p=${PID[$s]}
    c0=$(cpu "$p"); w0=$(syscw "$p")
    out=$(timeout 120 "$TOOL" --endpoints="127.0.0.1:${PORT[$s]}" --clients=16 --conns=16 --precise \
      put --key-size=8 --val-size=256 --key-space-size=100000 --total=$PUTS 2>/dev/null)
    c1=$(cpu "$p"); w1=$(syscw "$p")
    rps=$(awk '/Requests\/sec/ {printf "%.0f", $2}' <<<"$out")
    p99=$(awk '/ 99% in/ {printf "%.2f", $3 * 1000}' <<<"$out")
    cpuus=$(awk -v a="$c0" -v b="$c1" -v t="$TICKS" -v n=$PUTS 'BEGIN {printf "%.1f", (b - a) / t * 1e6 / n}')
    wpp=$(awk -v a="$w0" -v b="$w1" -v n=$PUTS 'BEGIN {printf "%.2f", (b - a) / n}')
    echo "round $round $s put16 rps $rps p99ms $p99 cpu_us_per_put $cpuus writes_per_put $wpp load $(cut -d' ' -f1 /proc/loadavg)" | tee -a "$RESULTS"
  done
  for s in etcd ts0 tsdelay; do
    out=$(timeout 120 "$TOOL" --endpoints="127.0.0.1:${PORT[$s]}" --clients=100 --conns=10 --precise \
      watch-latency --put-rate=100 --key-size=8 --val-size=256 --total=500 2>/dev/null)
    p50=$(awk '/ 50% in/ {printf "%.3f", $3 * 1000}' <<<"$out")
    p99=$(awk '/ 99% in/ {printf "%.3f", $3 * 1000}' <<<"$out")
    echo "round $round $s watch p50ms $p50 p99ms $p99 load $(cut -d' ' -f1 /proc/loadavg)" | tee -a "$RESULTS"
  done
done
echo "medians over $ROUNDS rounds (delay ${DELAY_MS} ms for tsdelay):"
for s in etcd ts0 tsdelay; do
  med() { grep " $s $1 " "$RESULTS" | awk -v f="$2" '{for (i = 1; i < NF; i++) if ($i == f) print $(i + 1)}' | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
  echo "  $s: put16 rps $(med put16 rps) p99 $(med put16 p99ms) ms cpu/put $(med put16 cpu_us_per_put) us writes/put $(med put16 writes_per_put); watch p50 $(med watch p50ms) ms p99 $(med watch p99ms) ms"
done
