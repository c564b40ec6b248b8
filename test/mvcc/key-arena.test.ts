import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { MvccStore } from "../../lib/mvcc/index.js";
import { KeyArena } from "../../lib/mvcc/record.js";
import { PutRequest, RangeRequest } from "../../lib/proto/gen/etcdserverpb/rpc.js";

describe("key ownership (KeyArena)", () => {
  test("a stored key is a copy in a keys-only chunk, not a view of the request or Node's pool", () => {
    const s = new MvccStore({ keyArenaChunkBytes: 4096 });
    // A decoded request's key is a view into the request buffer: mutate it after the put.
    const wire = Buffer.from("xxkey-1yy");
    const key = wire.subarray(2, 7);
    s.put(PutRequest.create({ key, value: Buffer.from("v") }));
    wire.fill(0x7a);
    const kv = s.range(RangeRequest.create({ key: Buffer.from("key-1") })).kvs[0]!;
    assert.equal(Buffer.from(kv.key).toString(), "key-1");
    assert.equal(kv.key.buffer.byteLength, 4096, "key lives in the store's own chunk");
  });

  test("small keys share chunks; a key over chunk/8 gets its own allocation; empty key is shared", () => {
    const a = new KeyArena(64);
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

  test("chunk size is validated", () => {
    assert.throws(() => new KeyArena(10), RangeError);
    assert.throws(() => new MvccStore({ keyArenaChunkBytes: 1.5 }), RangeError);
  });
});
