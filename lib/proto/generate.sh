#!/usr/bin/env bash
# Regenerates lib/proto/gen from lib/proto/src with Debian's protoc and @protobuf-ts/plugin.
# Code is optimised for speed; @grpc/grpc-js server and client definitions are generated for
# services. NodeNext ESM needs explicit ".js" on relative imports, which protobuf-ts does not
# emit, so the imports are rewritten after generation. Client API messages read their int64
# number fields (revisions, limits, TTLs) through saturatingInt64 (lib/proto/int64.ts: a value past
# 2^53 saturates and the handler answers as etcd does, instead of the decoder failing the call as
# INTERNAL); ids (lease, member, cluster and watch ids) are bigint fields and stay exact.
set -euo pipefail
cd "$(dirname "$0")"
command -v protoc >/dev/null || { echo "protoc not found: apt-get install -y protobuf-compiler" >&2; exit 1; }
rm -rf gen && mkdir -p gen
protoc \
  --plugin=protoc-gen-ts=../../node_modules/.bin/protoc-gen-ts \
  --ts_out=gen \
  --ts_opt=optimize_speed,server_grpc1,client_grpc1,ts_nocheck,eslint_disable,keep_enum_prefix \
  --proto_path=src \
  $(cd src && find . -name "*.proto" | sed "s|^./||" | sort | sed "s|^|src/|")
find gen -name '*.ts' -print0 | xargs -0 sed -i -E 's#(from "\.{1,2}/[^"]+)";#\1.js";#'
for f in gen/etcdserverpb/rpc.ts gen/v3electionpb/v3election.ts; do
  sed -i -E 's#reader\.int64\(\)\.toNumber\(\)#saturatingInt64(reader.int64())#g' "$f"
  sed -i -E '0,/^import /s##import { saturatingInt64 } from "../../int64.js";\nimport #' "$f"
done
