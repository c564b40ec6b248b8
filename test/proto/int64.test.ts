// int64 request fields kept as numbers saturate at ±(2^53 − 1) (lib/proto/int64.ts), in the
// binary readers generate.sh rewrites and in the JSON gateway's pre-pass.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { PbLong } from "@protobuf-ts/runtime";
import * as rpc from "../../lib/proto/gen/etcdserverpb/rpc.js";
import { saturateJsonInt64, saturatingInt64 } from "../../lib/proto/int64.js";
import { testSeed } from "../mvcc/helpers.js";

const MAX = BigInt(Number.MAX_SAFE_INTEGER);
const clamp = (b: bigint): number => Number(b > MAX ? MAX : b < -MAX ? -MAX : b);
const int64 = fc.bigInt({ min: -(1n << 63n), max: (1n << 63n) - 1n });

test("saturatingInt64 is exact inside ±(2^53 − 1) and clamps outside, for every int64", () => {
  const seed = testSeed("saturatingInt64");
  fc.assert(
    fc.property(fc.oneof(int64, fc.bigInt({ min: -MAX - 3n, max: MAX + 3n })), (b) => {
      assert.equal(saturatingInt64(PbLong.from(b)), clamp(b));
    }),
    { seed, numRuns: 2000 },
  );
  for (const b of [0n, -1n, MAX, -MAX, MAX + 1n, -MAX - 1n, (1n << 63n) - 1n, -(1n << 63n)]) {
    assert.equal(saturatingInt64(PbLong.from(b)), clamp(b), String(b));
  }
});

test("generated client-API readers saturate int64 numbers; ids stay exact bigints", () => {
  const seed = testSeed("rpc int64 decode");
  fc.assert(
    fc.property(int64, int64, int64, (rev, ttl, id) => {
      // field 1 key "k", field 3 limit, field 4 revision (varint int64, two's complement)
      const raw = Buffer.concat([
        Buffer.from([0x0a, 0x01, 0x6b]),
        Buffer.from([0x18]),
        varint(ttl),
        Buffer.from([0x20]),
        varint(rev),
      ]);
      const r = rpc.RangeRequest.fromBinary(raw);
      assert.equal(r.revision, clamp(rev));
      assert.equal(r.limit, clamp(ttl));
      const grant = rpc.LeaseGrantRequest.fromBinary(
        Buffer.concat([Buffer.from([0x08]), varint(ttl), Buffer.from([0x10]), varint(id)]),
      );
      assert.equal(grant.tTL, clamp(ttl));
      assert.equal(grant.iD, id);
    }),
    { seed, numRuns: 500 },
  );
});

test("a watch id is exact over all of int64, binary and JSON, as etcd reads it", () => {
  for (const id of [1n << 60n, (1n << 63n) - 1n, -5n, 42n]) {
    const raw = Buffer.concat([Buffer.from([0x38]), varint(BigInt.asUintN(64, id))]); // field 7
    assert.equal(rpc.WatchCreateRequest.fromBinary(raw).watchId, id);
  }
  const json = {
    key: "Zm9v",
    start_revision: "9223372036854775807",
    watch_id: "1152921504606846977",
  };
  saturateJsonInt64(rpc.WatchCreateRequest, json);
  assert.equal(json.start_revision, Number.MAX_SAFE_INTEGER, "a revision still saturates");
  assert.equal(rpc.WatchCreateRequest.fromJson(json).watchId, 1152921504606846977n);
  const resp = rpc.WatchResponse.create({ watchId: 1152921504606846977n });
  assert.equal(
    rpc.WatchResponse.fromBinary(rpc.WatchResponse.toBinary(resp)).watchId,
    resp.watchId,
  );
});

test("saturateJsonInt64 clamps number fields by proto or JSON name through nested messages", () => {
  const json = {
    key: "Zm9v",
    revision: "9223372036854775807",
    min_mod_revision: -9007199254740993,
    maxModRevision: "12",
    limit: "not a number",
  };
  saturateJsonInt64(rpc.RangeRequest, json);
  assert.deepEqual(json, {
    key: "Zm9v",
    revision: Number.MAX_SAFE_INTEGER,
    min_mod_revision: -Number.MAX_SAFE_INTEGER,
    maxModRevision: "12",
    limit: "not a number", // left for the decoder to refuse
  });
  const txn = {
    compare: [{ key: "Zm9v", mod_revision: "9007199254740993", target: "MOD" }],
    success: [{ request_range: { key: "Zm9v", revision: "-9223372036854775808" } }],
    failure: [{ requestPut: { key: "Zm9v", lease: "9223372036854775807" } }],
  };
  saturateJsonInt64(rpc.TxnRequest, txn);
  assert.equal(txn.compare[0].mod_revision, Number.MAX_SAFE_INTEGER);
  assert.equal(txn.success[0].request_range.revision, -Number.MAX_SAFE_INTEGER);
  // lease is a bigint field: exact, untouched
  assert.equal(txn.failure[0].requestPut.lease, "9223372036854775807");
  const decoded = rpc.TxnRequest.fromJson(txn);
  assert.equal(decoded.failure[0].request.oneofKind, "requestPut");
  assert.equal(
    decoded.failure[0].request.oneofKind === "requestPut" &&
      decoded.failure[0].request.requestPut.lease,
    9223372036854775807n,
  );
});

/** Protobuf varint of a two's-complement int64. */
function varint(v: bigint): Buffer {
  let u = BigInt.asUintN(64, v);
  const out: number[] = [];
  do {
    let byte = Number(u & 0x7fn);
    u >>= 7n;
    if (u !== 0n) byte |= 0x80;
    out.push(byte);
  } while (u !== 0n);
  return Buffer.from(out);
}
