#!/bin/bash
# CPU per put of each member of a 3-member cluster under etcd's benchmark tool (issue 14).
#
#   bash bench/cluster-cpu.sh etcd-ts|etcd CLIENTS TOTAL [ROOT]
#
# Starts three members of etcd-ts (node ROOT/dist/tools/etcd-ts.js; ROOT defaults to this
# checkout, so another build can be compared by its path) or of real etcd 3.4 (/usr/bin/etcd) on
# loopback ports from BASE_PORT (default 31000), each with its own data dir under a fresh temp dir;
# finds the leader (etcd_server_is_leader); runs an unmeasured warm-up of TOTAL/5 puts, then TOTAL
# puts of 256-byte values on 100,000 keys with --clients=CLIENTS --conns=min(CLIENTS,100) and
# --endpoints of all three; and prints, per member, its role (L or F), the CPU it used per put
# (utime + stime from /proc/PID/stat around the measured run, in µs), and its write and read
# system calls per put (/proc/PID/io syscw, syscr); then the tool's req/s, p50 and p99 and the load
# average, and each member's snapshots during the measured run (snap: .snap files saved; inplace:
# etcd-ts's that extended the db file in place, lib/server/snapshotter.ts). Members are stopped by their pids (SIGTERM). Extra member flags: MEMBER_FLAGS; node
# flags for etcd-ts members: NODE_FLAGS (e.g. --no-turbo-inlining: a heap sample is charged to
# the optimized function a call was inlined into).
# ENTRY=leader|follower puts that member's endpoint first (with --clients=1 etcd's tool uses only
# the first endpoint; default m1's first, whatever its role). HEAP_SAMPLE=1 (etcd-ts only)
# preloads bench/heap-sample.cjs into each member, samples its allocations and counts its garbage
# collections over the measured run, and prints per member its bytes per put by allocation site
# and its scavenges per 10,000 puts (dist/bench/heap-summary.js of this checkout; TOP sites, 25).
# WARM_TOTAL replaces the warm-up: that many puts at WARM_CLIENTS (default 1,000) clients on 100
# connections, e.g. to grow the db, or to bring a snapshot into the measured run.
# KEEP=1 keeps the members' data dirs and logs (the temp dir is printed; log-offsets there says
# where each log stood when the measured run began). SETTLE=N syncs and waits N s before it.
# CAPTURE=1 records the measured run's loopback segments with tcpdump (Debian's tcpdump) and
# prints where each put's time went (dist/bench/put-phases.js): the member's and the client's
# shares, and with etcd-ts and ENTRY=leader the leader's send, the followers' acknowledgement and
# the leader's response.
set -euo pipefail
SYSTEM=$1
CLIENTS=$2
TOTAL=$3
ROOT=${4:-$(cd "$(dirname "$0")/.." && pwd)}
BASE=${BASE_PORT:-31000}
CONNS=$((CLIENTS < 100 ? CLIENTS : 100))
BENCH=${ETCD_BENCHMARK:-$ROOT/.cache/etcd-benchmark/benchmark}
DIR=$(mktemp -d /tmp/cluster-cpu.XXXXXX)
HERE=$(cd "$(dirname "$0")" && pwd)
TICKS=$(getconf CLK_TCK)
initial=""
for i in 1 2 3; do initial+="${initial:+,}m$i=http://127.0.0.1:$((BASE + i * 10 + 2))"; done
pids=()
tcpdump_pid=""
cleanup() {
  if [ -n "$tcpdump_pid" ]; then kill -INT "$tcpdump_pid" 2>/dev/null || true; fi
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ -n "${KEEP:-}" ]; then echo "members' data and logs kept in $DIR" >&2; else rm -rf "$DIR"; fi
}
trap cleanup EXIT
for i in 1 2 3; do
  client=http://127.0.0.1:$((BASE + i * 10 + 1))
  peer=http://127.0.0.1:$((BASE + i * 10 + 2))
  args=(--name "m$i" --data-dir "$DIR/m$i" --listen-client-urls "$client"
    --advertise-client-urls "$client" --listen-peer-urls "$peer"
    --initial-advertise-peer-urls "$peer" --initial-cluster "$initial"
    --initial-cluster-state new --log-level warn)
  if [ "$SYSTEM" = etcd ]; then
    /usr/bin/etcd "${args[@]}" --logger zap ${MEMBER_FLAGS:-} >"$DIR/m$i.log" 2>&1 &
  else
    preload=()
    [ -n "${HEAP_SAMPLE:-}" ] && preload=(-r "$HERE/heap-sample.cjs")
    HEAP_SAMPLE_OUT="$DIR/m$i.heapprofile" node ${NODE_FLAGS:-} "${preload[@]}" "$ROOT/dist/tools/etcd-ts.js" \
      "${args[@]}" ${MEMBER_FLAGS:-} >"$DIR/m$i.log" 2>&1 &
  fi
  pids+=($!)
done
for _ in $(seq 1 150); do
  healthy=0
  for i in 1 2 3; do
    health=$(curl -s -m 1 "http://127.0.0.1:$((BASE + i * 10 + 1))/health" || true)
    grep -q true <<<"$health" && healthy=$((healthy + 1))
  done
  [ "$healthy" = 3 ] && break
  sleep 0.2
done
[ "$healthy" = 3 ] || { echo "cluster not healthy; logs in $DIR" >&2; trap - EXIT; exit 1; }
leader=0
for i in 1 2 3; do
  metrics=$(curl -s "http://127.0.0.1:$((BASE + i * 10 + 1))/metrics")
  grep -q '^etcd_server_is_leader 1' <<<"$metrics" && leader=$i
done
entry=1
case "${ENTRY:-}" in
  leader) entry=$leader ;;
  follower) entry=$((leader % 3 + 1)) ;;
esac
endpoints=127.0.0.1:$((BASE + entry * 10 + 1))
for i in 1 2 3; do
  [ "$i" = "$entry" ] || endpoints+=",127.0.0.1:$((BASE + i * 10 + 1))"
done
put() {
  "$BENCH" --endpoints="$endpoints" --clients="$CLIENTS" --conns="$CONNS" put --key-size=8 \
    --val-size=256 --key-space-size=100000 --total="$1"
}
if [ -n "${WARM_TOTAL:-}" ]; then
  "$BENCH" --endpoints="$endpoints" --clients="${WARM_CLIENTS:-1000}" --conns=100 put --key-size=8 \
    --val-size=256 --key-space-size=100000 --total="$WARM_TOTAL" >"$DIR/warm-up.txt" 2>&1
else
  put $((TOTAL / 5)) >"$DIR/warm-up.txt" 2>&1
fi
# a member's counter (0 when it does not export it): snapshots saved, and etcd-ts's in place
counter() {
  curl -s "http://127.0.0.1:$((BASE + ($1 + 1) * 10 + 1))/metrics" |
    awk -v n="$2" '$1 == n {printf "%d", $2; f = 1} END {if (!f) print 0}'
}
# SETTLE=N: sync and wait N s between the warm-up and the measured run (the disk's writeback done)
if [ -n "${SETTLE:-}" ]; then
  sync
  sleep "$SETTLE"
fi
# where each member's log stood when the measured run began (for KEEP=1 analysis)
for i in 1 2 3; do echo "m$i $(stat -c %s "$DIR/m$i.log" 2>/dev/null || echo 0)"; done >"$DIR/log-offsets"
declare -a cpu0 w0 r0 snaps0 inplace0
for i in 0 1 2; do
  snaps0[i]=$(counter "$i" etcd_debugging_snap_save_total_duration_seconds_count)
  inplace0[i]=$(counter "$i" etcd_ts_snapshot_db_in_place_total)
  cpu0[i]=$(awk '{print $14 + $15}' "/proc/${pids[i]}/stat")
  w0[i]=$(awk '/^syscw/ {print $2}' "/proc/${pids[i]}/io")
  r0[i]=$(awk '/^syscr/ {print $2}' "/proc/${pids[i]}/io")
done
[ -n "${HEAP_SAMPLE:-}" ] && kill -USR2 "${pids[@]}" && sleep 0.5
if [ -n "${CAPTURE:-}" ]; then
  command -v tcpdump >/dev/null || { echo "CAPTURE=1 needs tcpdump (apt-get install -y tcpdump)" >&2; exit 1; }
  client_port=$((BASE + entry * 10 + 1))
  tcpdump -i lo -nn -s 128 -B 16384 -w "$DIR/capture.pcap" "tcp port $client_port or tcp port $((BASE + 12)) or tcp port $((BASE + 22)) or tcp port $((BASE + 32))" 2>"$DIR/tcpdump.log" &
  tcpdump_pid=$!
  sleep 1
fi
put "$TOTAL" >"$DIR/run.txt" 2>&1
if [ -n "${CAPTURE:-}" ]; then
  sleep 0.2
  kill -INT "$tcpdump_pid"
  wait "$tcpdump_pid" || true
  tcpdump_pid=""
  tcpdump -r "$DIR/capture.pcap" -tt -nn >"$DIR/capture.txt" 2>/dev/null
  phase_ports=()
  if [ "$SYSTEM" = etcd-ts ] && [ "$entry" = "$leader" ]; then
    phase_ports=($((BASE + leader * 10 + 2)))
    for i in 1 2 3; do [ "$i" = "$leader" ] || phase_ports+=($((BASE + i * 10 + 2))); done
  fi
  node "$HERE/../dist/bench/put-phases.js" "$DIR/capture.txt" "$client_port" "${phase_ports[@]}"
fi
[ -n "${HEAP_SAMPLE:-}" ] && kill -USR2 "${pids[@]}"
line="$SYSTEM clients=$CLIENTS puts=$TOTAL"
sum=0
for i in 0 1 2; do
  cpu=$(($(awk '{print $14 + $15}' "/proc/${pids[i]}/stat") - cpu0[i]))
  us=$((cpu * 1000000 / TICKS / TOTAL))
  w=$(awk -v a="${w0[i]}" -v n="$TOTAL" '/^syscw/ {printf "%.2f", ($2 - a) / n}' "/proc/${pids[i]}/io")
  r=$(awk -v a="${r0[i]}" -v n="$TOTAL" '/^syscr/ {printf "%.2f", ($2 - a) / n}' "/proc/${pids[i]}/io")
  role=F
  [ $((i + 1)) = "$leader" ] && role=L
  snaps=$(($(counter "$i" etcd_debugging_snap_save_total_duration_seconds_count) - snaps0[i]))
  inplace=$(($(counter "$i" etcd_ts_snapshot_db_in_place_total) - inplace0[i]))
  line+=" m$((i + 1))$role=${us}us(w$w,r$r,snap$snaps,inplace$inplace)"
  sum=$((sum + us))
done
rps=$(awk '/Requests\/sec/ {print $2}' "$DIR/run.txt")
p50=$(awk '/ 50% in/ {print $3}' "$DIR/run.txt")
p99=$(awk '/ 99% in/ {print $3}' "$DIR/run.txt")
if [ -n "${HEAP_SAMPLE:-}" ]; then
  for i in 1 2 3; do
    for _ in $(seq 1 100); do [ -s "$DIR/m$i.heapprofile" ] && break; sleep 0.1; done
    role=F
    [ "$i" = "$leader" ] && role=L
    [ "$i" = "$entry" ] && role+=" (client's)"
    echo "m$i $role:"
    node "$HERE/../dist/bench/heap-summary.js" "$DIR/m$i.heapprofile" "$TOTAL" "${TOP:-25}"
  done
fi
echo "$line sum=${sum}us req/s=$rps p50=${p50}s p99=${p99}s load=$(cut -d' ' -f1 /proc/loadavg)"
