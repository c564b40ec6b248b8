import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { InternalRaftRequest } from "../../lib/proto/gen/etcdserverpb/raft_internal.js";
import { PutRequest } from "../../lib/proto/gen/etcdserverpb/rpc.js";
import { encodePutProposal, isPlainPutRequest } from "../../lib/server/raft-request-codec.js";
import { putVarint64, putVarintBig, varintSize64, varintSizeBig } from "../../lib/proto/varint.js";

const seed = process.env.SEED !== undefined ? Number(process.env.SEED) : Date.now() % 2 ** 31;

function run(
  name: string,
  prop: fc.IAsyncPropertyWithHooks<unknown> | fc.IPropertyWithHooks<unknown>,
) {
  try {
    fc.assert(prop as fc.IProperty<unknown>, { seed, numRuns: 500 });
  } catch (err) {
    throw new Error(`${name} failed; replay with SEED=${seed}\n${(err as Error).message}`);
  }
}

test("varintSize64/putVarint64 agree with the BigInt reference on every uint64", () => {
  run(
    "varint64",
    fc.property(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), (v) => {
      const a = new Uint8Array(10);
      const b = new Uint8Array(10);
      const n = putVarint64(a, 0, v);
      const m = putVarintBig(b, 0, v);
      assert.equal(n, m);
      assert.equal(varintSize64(v), varintSizeBig(v));
      assert.deepEqual(a.subarray(0, n), b.subarray(0, m));
    }),
  );
  for (const v of [0n, 127n, 128n, 2n ** 32n - 1n, 2n ** 32n, 2n ** 63n, 2n ** 64n - 1n]) {
    assert.equal(varintSize64(v), varintSizeBig(v), String(v));
  }
});

test("encodePutProposal writes the bytes InternalRaftRequest.toBinary writes", () => {
  run(
    "encodePutProposal",
    fc.property(
      fc.uint8Array({ maxLength: 300 }),
      fc.uint8Array({ maxLength: 3000 }),
      fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
      fc.boolean(),
      fc.boolean(),
      fc.boolean(),
      fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
      (key, value, lease, prevKv, ignoreValue, ignoreLease, id) => {
        const put = PutRequest.create({ key, value, lease, prevKv, ignoreValue, ignoreLease });
        assert.ok(isPlainPutRequest(put));
        const want = InternalRaftRequest.toBinary({
          ...InternalRaftRequest.create(),
          put,
          header: { iD: id, username: "", authRevision: 0 },
        });
        assert.deepEqual(
          Buffer.from(encodePutProposal(Number(id >> 32n), Number(id & 0xffffffffn), put)),
          Buffer.from(want),
        );
        const back = InternalRaftRequest.fromBinary(
          encodePutProposal(Number(id >> 32n), Number(id & 0xffffffffn), put),
        );
        assert.deepEqual(PutRequest.toBinary(back.put!), PutRequest.toBinary(put));
        assert.equal(back.header?.iD, id);
      },
    ),
  );
});

test("a PutRequest carrying unknown fields is not plain (toBinary re-emits them)", () => {
  // field 99, varint 1: unknown to PutRequest
  const put = PutRequest.fromBinary(Uint8Array.from([0x0a, 0x01, 0x61, 0x98, 0x06, 0x01]));
  assert.equal(isPlainPutRequest(put), false);
  assert.ok(isPlainPutRequest(PutRequest.fromBinary(Uint8Array.from([0x0a, 0x01, 0x61]))));
});
