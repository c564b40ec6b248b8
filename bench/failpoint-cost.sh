#!/usr/bin/env bash
# Issue 16: put throughput of etcd-ts as built (failpoint hooks present, unset) against a copy of
# dist/ with the hooks compiled out: every failpoint("…") call replaced by `false` and
# failpointSleepMs("…") by `0` outside lib/failpoint. Alternates the two builds, a fresh member per
# round, and prints etcd-ts-bench's Requests/sec for each. Run after `npm run build`:
#   bash bench/failpoint-cost.sh [rounds]        # default 3; ~20 s per round
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
rounds=${1:-3}
strip=$repo/.cache/failpoints-stripped
rm -rf "$strip" && cp -r dist "$strip"
mapfile -t files < <(grep -rlE 'failpoint(SleepMs)?\("[A-Za-z]+"\)' "$strip/lib" --include=*.js | grep -v "/lib/failpoint/")
for f in "${files[@]}"; do
  sed -i -E 's/failpointSleepMs\("[A-Za-z]+"\)/0/g; s/failpoint\("[A-Za-z]+"\)/false/g' "$f"
done
echo "hooks compiled out of ${#files[@]} files"
port=23897
run() { # $1: the dist directory to start the member from
  local dir
  dir=$(mktemp -d)
  node "$1/tools/etcd-ts.js" --data-dir "$dir/d" --listen-client-urls http://127.0.0.1:$port \
    --advertise-client-urls http://127.0.0.1:$port --listen-peer-urls http://127.0.0.1:$((port + 1)) \
    --initial-advertise-peer-urls http://127.0.0.1:$((port + 1)) \
    --initial-cluster default=http://127.0.0.1:$((port + 1)) >"$dir/log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 200); do curl -s 127.0.0.1:$port/health | grep -q true && break; sleep 0.05; done
  node dist/tools/etcd-ts-bench.js put --endpoints 127.0.0.1:$port --clients 64 --conns 8 \
    --total 100000 --key-size 8 --val-size 256 | grep -E "Requests/sec" | tr -s '\t ' ' '
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  rm -rf "$dir"
}
for r in $(seq 1 "$rounds"); do
  echo "round $r hooks present: $(run "$repo/dist") (load $(cut -d' ' -f1 /proc/loadavg))"
  echo "round $r hooks compiled out: $(run "$strip") (load $(cut -d' ' -f1 /proc/loadavg))"
done
rm -rf "$strip"
