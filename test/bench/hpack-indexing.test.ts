import { test } from "node:test";
import assert from "node:assert/strict";
import { HpackDecoder, type Header } from "../../lib/h2/hpack.js";
import { IndexingHeaderEncoder } from "../../bench/load/hpack-indexing.js";

function request(path: string): Header[] {
  return [
    [":method", "POST"],
    [":scheme", "http"],
    [":path", path],
    [":authority", "127.0.0.1:2379"],
    ["content-type", "application/grpc"],
    ["te", "trailers"],
  ];
}

test("the load generator's header blocks decode to the same headers, indexed after the first", () => {
  const enc = new IndexingHeaderEncoder();
  const dec = new HpackDecoder({
    maxTableSizeBytes: 4096,
    maxHeaderListBytes: 65536,
    maxStringBytes: 65536,
  });
  const paths = ["/etcdserverpb.KV/Put", "/etcdserverpb.KV/Range", "/etcdserverpb.KV/Put"];
  const sizes: number[] = [];
  for (let round = 0; round < 4; round++) {
    for (const p of paths) {
      const block = enc.encode(p, request(p));
      sizes.push(block.length);
      assert.deepEqual(dec.decode(block), request(p));
    }
  }
  // after each path's first block every header is one indexed byte
  assert.ok(sizes[0]! > 20, `first block ${sizes[0]} bytes`);
  assert.equal(sizes.at(-1), 6);
});

test("headers that would make the table evict are sent without indexing, and still decode", () => {
  const enc = new IndexingHeaderEncoder(100);
  const dec = new HpackDecoder({
    maxTableSizeBytes: 100,
    maxHeaderListBytes: 65536,
    maxStringBytes: 65536,
  });
  for (let i = 0; i < 5; i++) {
    const h: Header[] = [
      [":path", `/p${i % 3}`],
      ["x-long", "v".repeat(40 + i)],
    ];
    assert.deepEqual(dec.decode(enc.encode(`k${i}`, h)), h);
  }
});
