#!/usr/bin/env bash
# Builds etcd 3.4.23's own load tool, `tools/benchmark` (the tool behind etcd's published
# performance figures), from Debian bookworm packages only, and prints the binary's path on stdout.
#
#   tools/build-etcd-benchmark.sh [--force]      # → .cache/etcd-benchmark/benchmark
#
# Where the parts come from:
# - the tool's own source (tools/benchmark/, 1,700 lines of Go) from the orig tarball of Debian's
#   `etcd` source package, checked against the SHA-256 that Debian's Sources index lists for it
#   (Debian's golang-etcd-server-dev leaves tools/ out: DH_GOLANG_EXCLUDES := tools);
# - the etcd packages it imports (clientv3, pkg/report, mvcc, lease, ...) from golang-etcd-server-dev,
#   which carries Debian's patches for the grpc it ships (1.33);
# - every other Go package from Debian's golang-*-dev packages, found with
#   `GO111MODULE=off go list -e -deps` until nothing was missing (ETCD_BENCHMARK_DEBS below);
# - the compiler from golang-go (Go 1.19 on bookworm), GOPATH mode (GO111MODULE=off).
# The .debs are fetched with `apt-get download` and unpacked with `dpkg-deb -x` into a private
# GOPATH under the cache dir: nothing is installed system-wide except golang-go (and only when
# `go` is missing and we are root, as in CI). Installing golang-etcd-server-dev instead would pull
# 145 packages, libsystemd-dev among them, which upgrades systemd.
#
# Idempotent: when the binary exists and its BUILD-INFO names the same etcd version and package
# list, nothing is done. A lock (flock) serialises concurrent runs. Every network step and the
# compile have a time limit; from nothing it takes about 35 s on 2 cores (download ~2 s, compile
# ~30 s), then 0 s. Output: $ETCD_BENCHMARK_CACHE (default .cache/etcd-benchmark, git-ignored):
# `benchmark` and `BUILD-INFO` (package versions, Go version, build seconds).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${ETCD_BENCHMARK_CACHE:-$ROOT/.cache/etcd-benchmark}
OUT=$CACHE/benchmark

# etcd's source: Debian bookworm's etcd 3.4.23-4 (the etcd-server /usr/bin/etcd the tests use).
ETCD_VERSION=3.4.23
ORIG_URL=https://deb.debian.org/debian/pool/main/e/etcd/etcd_${ETCD_VERSION}.orig.tar.gz
ORIG_SHA256=055c608c4898d25f23aefbc845ff074bf5e8a07e61ed41dbd5cc4d4f59c93093

# The exact Debian packages the build needs (bookworm), each for the imports named beside it.
ETCD_BENCHMARK_DEBS=(
  golang-etcd-server-dev                     # go.etcd.io/etcd/{clientv3,pkg/report,lease,mvcc,...}
  golang-github-spf13-cobra-dev              # github.com/spf13/cobra (the tool's commands)
  golang-github-spf13-pflag-dev              #   github.com/spf13/pflag (cobra's flags)
  golang-gopkg-cheggaaa-pb.v1-dev            # gopkg.in/cheggaaa/pb.v1 (progress bar)
  golang-github-mattn-go-runewidth-dev       #   github.com/mattn/go-runewidth (pb)
  golang-github-rivo-uniseg-dev              #   github.com/rivo/uniseg (go-runewidth)
  golang-golang-x-time-dev                   # golang.org/x/time/rate (--rate)
  golang-github-dustin-go-humanize-dev       # github.com/dustin/go-humanize (mvcc command)
  golang-github-bgentry-speakeasy-dev        # github.com/bgentry/speakeasy (--user prompt)
  golang-google-grpc-dev                     # google.golang.org/grpc
  golang-google-genproto-dev                 #   google.golang.org/genproto/googleapis/rpc/status
  golang-google-protobuf-dev                 #   google.golang.org/protobuf (timestamppb)
  golang-github-golang-protobuf-1-3-dev      #   github.com/golang/protobuf 1.3 (as etcd's Build-Depends)
  golang-github-gogo-protobuf-dev            # github.com/gogo/protobuf (etcd's protos)
  golang-golang-x-net-dev                    # golang.org/x/net (http2, context)
  golang-golang-x-text-dev                   #   golang.org/x/text (idna, bidi, norm)
  golang-golang-x-sys-dev                    # golang.org/x/sys/unix
  golang-golang-x-crypto-dev                 # golang.org/x/crypto/bcrypt (etcd auth)
  golang-go.uber-zap-dev                     # go.uber.org/zap
  golang-go.uber-atomic-dev                  #   go.uber.org/atomic
  golang-go.uber-multierr-dev                #   go.uber.org/multierr
  golang-github-coreos-bbolt-dev             # go.etcd.io/bbolt (mvcc/backend)
  golang-github-coreos-go-semver-dev         # github.com/coreos/go-semver
  golang-github-coreos-go-systemd-dev        # github.com/coreos/go-systemd/journal (pkg/logutil)
  golang-github-coreos-pkg-dev               # github.com/coreos/pkg/capnslog
  golang-github-golang-jwt-jwt-dev           # github.com/golang-jwt/jwt (etcd auth)
  golang-github-google-btree-dev             # github.com/google/btree (mvcc index)
  golang-github-google-uuid-dev              # github.com/google/uuid
  golang-github-prometheus-client-golang-dev # github.com/prometheus/client_golang
  golang-github-prometheus-client-model-dev  #   github.com/prometheus/client_model
  golang-github-prometheus-common-dev        #   github.com/prometheus/common/{expfmt,model}
  golang-github-prometheus-procfs-dev        #   github.com/prometheus/procfs
  golang-github-beorn7-perks-dev             #   github.com/beorn7/perks/quantile
  golang-github-cespare-xxhash-dev           #   github.com/cespare/xxhash/v2
  golang-protobuf-extensions-dev             #   github.com/matttproud/golang_protobuf_extensions
)

# Time limits, seconds.
DOWNLOAD_TIMEOUT_S=300
BUILD_TIMEOUT_S=900

log() { printf '[build-etcd-benchmark] %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

FORCE=0
for a in "$@"; do
  case "$a" in
    --force) FORCE=1 ;;
    -h | --help)
      sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *) die "unknown argument $a (usage: $0 [--force])" ;;
  esac
done

# The identity of a build: etcd's version and the package list. A change to either rebuilds.
WANT="etcd ${ETCD_VERSION} orig ${ORIG_SHA256:0:16}; debs: ${ETCD_BENCHMARK_DEBS[*]}"

mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock -w "$BUILD_TIMEOUT_S" 9 || die "another build holds $CACHE/.lock"

if [[ $FORCE == 0 && -x $OUT && -f $CACHE/BUILD-INFO ]] && [[ $(head -n 1 "$CACHE/BUILD-INFO") == "$WANT" ]]; then
  log "up to date: $OUT"
  echo "$OUT"
  exit 0
fi

t0=$(date +%s)
AS_ROOT=0
[[ $(id -u) == 0 ]] && AS_ROOT=1

if ! command -v go >/dev/null; then
  [[ $AS_ROOT == 1 ]] || die "go not found: apt-get install -y golang-go (as root)"
  log "installing golang-go"
  export DEBIAN_FRONTEND=noninteractive
  timeout "$DOWNLOAD_TIMEOUT_S" apt-get install -y -qq --no-install-recommends golang-go >/dev/null
fi
for tool in curl sha256sum dpkg-deb apt-get tar flock timeout; do
  command -v "$tool" >/dev/null || die "$tool not found"
done

WORK=$CACHE/work
rm -rf "$WORK"
mkdir -p "$WORK/debs" "$WORK/root" "$WORK/gopath/src/go.etcd.io/etcd" "$WORK/gocache"

# apt-get download as root: the _apt sandbox user cannot write into our dir, so stay root.
APT_OPTS=(-q -o Acquire::http::Timeout=30 -o Acquire::Retries=2)
[[ $AS_ROOT == 1 ]] && APT_OPTS+=(-o APT::Sandbox::User=root)
log "downloading ${#ETCD_BENCHMARK_DEBS[@]} Debian packages"
if ! (cd "$WORK/debs" && timeout "$DOWNLOAD_TIMEOUT_S" apt-get "${APT_OPTS[@]}" download "${ETCD_BENCHMARK_DEBS[@]}" >/dev/null); then
  # Package lists older than the archive give 404s; refresh them once if we may.
  [[ $AS_ROOT == 1 ]] || die "apt-get download failed; run apt-get update as root and retry"
  log "apt-get download failed; apt-get update and retry"
  timeout "$DOWNLOAD_TIMEOUT_S" apt-get -qq update
  (cd "$WORK/debs" && timeout "$DOWNLOAD_TIMEOUT_S" apt-get "${APT_OPTS[@]}" download "${ETCD_BENCHMARK_DEBS[@]}" >/dev/null)
fi

etcd_deb=$(ls "$WORK"/debs/golang-etcd-server-dev_*.deb)
etcd_deb_version=$(dpkg-deb -f "$etcd_deb" Version)
[[ $etcd_deb_version == "$ETCD_VERSION"-* ]] ||
  die "golang-etcd-server-dev is $etcd_deb_version, the tool's source is etcd $ETCD_VERSION"
for deb in "$WORK"/debs/*.deb; do
  dpkg-deb -x "$deb" "$WORK/root"
done

log "downloading $ORIG_URL"
curl -fsSL --retry 2 --connect-timeout 20 --max-time "$DOWNLOAD_TIMEOUT_S" -o "$WORK/orig.tar.gz" "$ORIG_URL"
echo "$ORIG_SHA256  $WORK/orig.tar.gz" | sha256sum -c --quiet - || die "checksum mismatch for $ORIG_URL"
tar -xzf "$WORK/orig.tar.gz" -C "$WORK/gopath/src/go.etcd.io/etcd" --strip-components=1 \
  "etcd-${ETCD_VERSION}/tools/benchmark"

# GOPATH mode: the tool from our GOPATH, every import from the unpacked packages' /usr/share/gocode
# (go.etcd.io/etcd's other packages included); nothing from the host's /usr/share/gocode.
log "compiling with $(go version | cut -d' ' -f3) (GOPATH mode)"
env -u GOFLAGS GO111MODULE=off GOPATH="$WORK/gopath:$WORK/root/usr/share/gocode" \
  GOCACHE="$WORK/gocache" CGO_ENABLED=0 GOPROXY=off \
  timeout "$BUILD_TIMEOUT_S" go build -trimpath -o "$OUT.tmp" go.etcd.io/etcd/tools/benchmark
"$OUT.tmp" --help | grep -q watch-latency || die "built binary does not run"
mv "$OUT.tmp" "$OUT"

{
  echo "$WANT"
  echo "built $(date -u +%Y-%m-%dT%H:%M:%SZ) in $(($(date +%s) - t0)) s with $(go version)"
  for deb in "$WORK"/debs/*.deb; do
    echo "$(dpkg-deb -f "$deb" Package) $(dpkg-deb -f "$deb" Version)"
  done
} >"$CACHE/BUILD-INFO"
rm -rf "$WORK"
log "built $OUT in $(($(date +%s) - t0)) s"
echo "$OUT"
