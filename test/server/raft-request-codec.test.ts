import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { InternalRaftRequest } from "../../lib/proto/gen/etcdserverpb/raft_internal.js";
import { PutRequest, RangeRequest } from "../../lib/proto/gen/etcdserverpb/rpc.js";
import {
  decodePutProposal,
  decodePutRequest,
  encodePutProposal,
  isPlainPutRequest,
} from "../../lib/server/raft-request-codec.js";
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

/** protobuf-ts's result or its error message, for comparing a decoder with it. */
function generated<T>(decode: () => T): { value: T } | { error: string } {
  try {
    return { value: decode() };
  } catch (err) {
    return { error: (err as Error).message };
  }
}

const putRequests = fc.record({
  key: fc.uint8Array({ maxLength: 40 }),
  value: fc.uint8Array({ maxLength: 300 }),
  lease: fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
  prevKv: fc.boolean(),
  ignoreValue: fc.boolean(),
  ignoreLease: fc.boolean(),
});

/** Bytes near a valid encoding: a byte changed, cut short, or random bytes appended. */
function mutated(valid: Uint8Array, at: number, byte: number, how: number): Uint8Array {
  const b = Buffer.from(valid);
  if (how === 0 && b.length > 0) b[at % b.length] = byte;
  if (how === 1) return b.subarray(0, at % (b.length + 1));
  if (how === 2) return Buffer.concat([b, Buffer.from([byte, at & 0xff, 1])]);
  return b;
}

test("decodePutRequest reads what PutRequest.fromBinary reads, or leaves it to it", () => {
  run(
    "decodePutRequest",
    fc.property(
      putRequests,
      fc.nat(),
      fc.integer({ min: 0, max: 255 }),
      fc.integer({ min: 0, max: 3 }),
      (fields, at, byte, how) => {
        const bytes = mutated(PutRequest.toBinary(PutRequest.create(fields)), at, byte, how);
        const want = generated(() => PutRequest.fromBinary(bytes));
        const got = decodePutRequest(bytes);
        if (how === 3) assert.notEqual(got, undefined, "the plain form takes the fast path");
        if (got !== undefined) assert.deepStrictEqual({ value: got }, want);
      },
    ),
  );
});

test("decodePutProposal reads what InternalRaftRequest.fromBinary reads, or leaves it to it", () => {
  run(
    "decodePutProposal",
    fc.property(
      putRequests,
      fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
      fc.nat(),
      fc.integer({ min: 0, max: 255 }),
      fc.integer({ min: 0, max: 3 }),
      fc.boolean(),
      (fields, id, at, byte, how, ours) => {
        const put = PutRequest.create(fields);
        const valid = ours
          ? encodePutProposal(Number(id >> 32n), Number(id & 0xffffffffn), put)
          : InternalRaftRequest.toBinary({
              ...InternalRaftRequest.create(),
              iD: id,
              put,
              header: { iD: id, username: "", authRevision: Number(id & 0xffffn) },
            });
        const bytes = mutated(valid, at, byte, how);
        const want = generated(() => InternalRaftRequest.fromBinary(bytes));
        const got = decodePutProposal(bytes);
        if (how === 3) assert.notEqual(got, undefined, "the plain form takes the fast path");
        if (got !== undefined) {
          assert.deepStrictEqual({ value: got }, want);
          assert.deepEqual(Object.keys(got), Object.keys((want as { value: object }).value));
        }
      },
    ),
  );
  // a proposal that is not a put, and a header with a username, are left to protobuf-ts
  const range = InternalRaftRequest.toBinary({
    ...InternalRaftRequest.create(),
    range: RangeRequest.create({ key: new Uint8Array([1]) }),
  });
  assert.equal(decodePutProposal(range), undefined);
  const named = InternalRaftRequest.toBinary({
    ...InternalRaftRequest.create(),
    put: PutRequest.create({ key: new Uint8Array([1]) }),
    header: { iD: 1n, username: "root", authRevision: 1 },
  });
  assert.equal(decodePutProposal(named), undefined);
});
