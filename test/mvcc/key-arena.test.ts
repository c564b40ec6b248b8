import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { MvccStore } from "../../lib/mvcc/index.js";
import { ByteArena } from "../../lib/mvcc/record.js";
import { PutRequest, RangeRequest } from "../../lib/proto/gen/etcdserverpb/rpc.js";

describe("key and value ownership (ByteArena)", () => {
  test("a stored key is a copy in the store's own memory, not a view of the request or Node's pool", () => {
    const s = new MvccStore({ keyArenaChunkBytes: 4096 });
    // A decoded request's key is a view into the request buffer: mutate it after the put.
    const wire = Buffer.from("xxkey-1yy");
    const key = wire.subarray(2, 7);
    s.put(PutRequest.create({ key, value: Buffer.from("v") }));
    wire.fill(0x7a);
    const kv = s.range(RangeRequest.create({ key: Buffer.from("key-1") })).kvs[0]!;
    assert.equal(Buffer.from(kv.key).toString(), "key-1");
    assert.notEqual(kv.key.buffer, wire.buffer);
    // the store's slabs (slabs.ts), not an 8 KiB slab of Node's Buffer pool
    assert.ok(kv.key.buffer.byteLength >= 256 * 1024, "key lives in the store's own slab");
  });

  test("small keys share chunks; a key over chunk/8 gets its own allocation; empty key is shared", () => {
    const a = new ByteArena(64);
    const k1 = a.copy(Buffer.from("abc"));
    const k2 = a.copy(Buffer.from("defgh"));
    assert.equal(k1.buffer, k2.buffer);
    assert.equal(k2.byteOffset, k1.byteOffset + 3);
    assert.equal(k1.toString() + k2.toString(), "abcdefgh");
    const big = a.copy(Buffer.alloc(9, 1));
    assert.notEqual(big.buffer, k1.buffer);
    assert.equal(big.buffer.byteLength, 9);
    assert.equal(a.copy(new Uint8Array(0)).length, 0);
    // fills a chunk exactly, then starts a new one
    const keys: Buffer[] = [];
    for (let i = 0; i < 20; i++) keys.push(a.copy(Buffer.from([i, i, i, i, i, i, i, i])));
    for (let i = 0; i < 20; i++) assert.deepEqual([...keys[i]!], new Array(8).fill(i));
    assert.ok(new Set(keys.map((k) => k.buffer)).size >= 3);
  });

  test("values live in the store's value chunks; a compaction moves the survivors to fresh ones", () => {
    const s = new MvccStore({ valueArenaChunkBytes: 1024 });
    const val = (i: number, round: number): Buffer => Buffer.alloc(100, (i * 7 + round) & 0xff);
    for (let round = 0; round < 5; round++) {
      for (let i = 0; i < 20; i++) {
        s.put(PutRequest.create({ key: Buffer.from(`k${i}`), value: val(i, round) }));
      }
    }
    const before = s.range(RangeRequest.create({ key: Buffer.from("k0") })).kvs[0]!;
    assert.ok(before.value.buffer.byteLength >= 256 * 1024, "the value lives in the store's slab");
    const atRev2 = s.range(RangeRequest.create({ key: Buffer.from("k0"), revision: 2 })).kvs[0]!;
    assert.ok(Buffer.from(atRev2.value).equals(val(0, 0)), "an old revision reads its own value");
    s.compact(s.currentRevision);
    const after = s.range(RangeRequest.create({ key: Buffer.from("k0") })).kvs[0]!;
    assert.notEqual(after.value.buffer, before.value.buffer, "survivors moved to a fresh arena");
    for (let i = 0; i < 20; i++) {
      const kv = s.range(RangeRequest.create({ key: Buffer.from(`k${i}`) })).kvs[0]!;
      assert.ok(Buffer.from(kv.value).equals(val(i, 4)), `k${i} keeps its value`);
    }
    // values handed out before the compaction still read the same bytes
    assert.ok(Buffer.from(before.value).equals(val(0, 4)));
    assert.ok(Buffer.from(atRev2.value).equals(val(0, 0)));
    s.checkInvariants();
  });

  test("chunk size is validated", () => {
    assert.throws(() => new ByteArena(10), RangeError);
    assert.throws(() => new MvccStore({ keyArenaChunkBytes: 1.5 }), RangeError);
    assert.throws(() => new MvccStore({ valueArenaChunkBytes: 32 }), RangeError);
  });
});
