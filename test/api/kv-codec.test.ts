import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import * as rpc from "../../lib/proto/gen/etcdserverpb/rpc.js";
import { encodePutResponse, encodeRangeResponse } from "../../lib/api/kv-codec.js";

const seed = process.env.SEED !== undefined ? Number(process.env.SEED) : Date.now() % 2 ** 31;

function check<T extends [unknown, ...unknown[]]>(name: string, prop: fc.IProperty<T>): void {
  try {
    fc.assert(prop, { seed, numRuns: 300 });
  } catch (err) {
    throw new Error(`${name} failed; replay with SEED=${seed}\n${(err as Error).message}`);
  }
}

const uint = fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 2 ** 31 }), fc.maxSafeNat());
const id = fc.oneof(fc.constant(0n), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }));
const header = fc.option(
  fc.record({ clusterId: id, memberId: id, revision: uint, raftTerm: uint }),
  { nil: undefined },
);
const keyValue = fc.record({
  key: fc.uint8Array({ maxLength: 40 }),
  createRevision: uint,
  modRevision: uint,
  version: uint,
  value: fc.uint8Array({ maxLength: 300 }),
  lease: fc.oneof(fc.constant(0n), fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n })),
});

test("encodePutResponse writes the bytes PutResponse.toBinary writes", () => {
  check(
    "PutResponse",
    fc.property(header, fc.option(keyValue, { nil: undefined }), (h, prevKv) => {
      const m: rpc.PutResponse = { header: h, prevKv };
      assert.deepEqual(Buffer.from(encodePutResponse(m)), Buffer.from(rpc.PutResponse.toBinary(m)));
    }),
  );
});

test("encodeRangeResponse writes the bytes RangeResponse.toBinary writes", () => {
  check(
    "RangeResponse",
    fc.property(
      header,
      fc.array(keyValue, { maxLength: 8 }),
      fc.boolean(),
      uint,
      (h, kvs, more, count) => {
        const m: rpc.RangeResponse = { header: h, kvs, more, count };
        assert.deepEqual(
          Buffer.from(encodeRangeResponse(m)),
          Buffer.from(rpc.RangeResponse.toBinary(m)),
        );
      },
    ),
  );
});
