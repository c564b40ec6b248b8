// HPACK (RFC 7541): the RFC's own examples, Huffman round trips, the dynamic table's bounds,
// HPACK bombs, and a fast-check fuzz of the decoder (no exception but HpackError or
// HeaderListTooLargeError escapes; memory stays bounded).
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  HeaderListTooLargeError,
  HpackDecoder,
  HpackError,
  decodeHuffman,
  encodeHeaderBlock,
  encodeHuffman,
} from "../../lib/h2/index.js";

const seed = Number(process.env.SEED ?? Date.now() % 2 ** 31);
const numRuns = Number(process.env.NUM_RUNS ?? 300);
const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ""), "hex");
const limits = { maxTableSizeBytes: 4096, maxHeaderListBytes: 16384, maxStringBytes: 16384 };

describe("HPACK decoder", () => {
  test("RFC 7541 C.3: requests without Huffman share the dynamic table", () => {
    const d = new HpackDecoder(limits);
    assert.deepEqual(d.decode(hex("828684410f7777772e6578616d706c652e636f6d")), [
      [":method", "GET"],
      [":scheme", "http"],
      [":path", "/"],
      [":authority", "www.example.com"],
    ]);
    assert.equal(d.tableBytes, 57);
    assert.deepEqual(d.decode(hex("828684be58086e6f2d6361636865")), [
      [":method", "GET"],
      [":scheme", "http"],
      [":path", "/"],
      [":authority", "www.example.com"],
      ["cache-control", "no-cache"],
    ]);
    assert.deepEqual(d.decode(hex("828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565")), [
      [":method", "GET"],
      [":scheme", "https"],
      [":path", "/index.html"],
      [":authority", "www.example.com"],
      ["custom-key", "custom-value"],
    ]);
    assert.equal(d.tableBytes, 164);
  });

  test("RFC 7541 C.4: the same requests with Huffman", () => {
    const d = new HpackDecoder(limits);
    assert.deepEqual(d.decode(hex("828684418cf1e3c2e5f23a6ba0ab90f4ff"))[3], [
      ":authority",
      "www.example.com",
    ]);
    assert.deepEqual(d.decode(hex("828684be5886a8eb10649cbf"))[4], ["cache-control", "no-cache"]);
    assert.deepEqual(d.decode(hex("828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf"))[4], [
      "custom-key",
      "custom-value",
    ]);
  });

  test("RFC 7541 C.6: responses with Huffman evict from a 256-byte table", () => {
    const d = new HpackDecoder({ ...limits, maxTableSizeBytes: 256 });
    d.decode(hex("3fe101")); // size update to 256 (C.6 runs with a 256-byte table)
    const r1 = d.decode(
      hex(
        "488264025885aec3771a4b6196d07abe941054d444a8200595040b8166e082a62d1bff6e919d29ad171863c78f0b97c8e9ae82ae43d3",
      ),
    );
    assert.deepEqual(r1, [
      [":status", "302"],
      ["cache-control", "private"],
      ["date", "Mon, 21 Oct 2013 20:13:21 GMT"],
      ["location", "https://www.example.com"],
    ]);
    assert.equal(d.tableBytes, 222);
    const r2 = d.decode(hex("4883640effc1c0bf"));
    assert.deepEqual(r2[0], [":status", "307"]);
    assert.equal(d.tableBytes, 222);
  });

  test("a table size update above our advertised limit is a compression error", () => {
    const d = new HpackDecoder(limits);
    d.decode(hex("3fe11f")); // 31 + 97 + 31 * 128 = 4096: allowed
    assert.throws(() => d.decode(hex("3fe21f")), HpackError); // 4097
  });

  test("index beyond the tables is a compression error", () => {
    assert.throws(() => new HpackDecoder(limits).decode(hex("be")), HpackError);
    assert.throws(() => new HpackDecoder(limits).decode(hex("80")), HpackError);
  });

  test("Huffman: EOS inside the string and bad padding are refused", () => {
    assert.throws(() => decodeHuffman(hex("ffffffff"), 0, 4), HpackError);
    assert.throws(() => decodeHuffman(hex("00"), 0, 1), HpackError);
    assert.throws(() => decodeHuffman(hex("07ff"), 0, 2), HpackError);
    assert.equal(decodeHuffman(hex("07"), 0, 1), "0");
  });

  test("Huffman round-trips any latin1 string", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        const s = Buffer.from(bytes).toString("latin1");
        const enc = encodeHuffman(s);
        assert.equal(decodeHuffman(enc, 0, enc.length), s);
      }),
      { seed, numRuns },
    );
  });

  test("HPACK bomb: one 4 KB entry referenced 10,000 times stops at the header list limit", () => {
    const d = new HpackDecoder(limits);
    const big = "x".repeat(4000);
    const first = [0x40, 0x01, 0x61, 0x7f, ...intTail(4000 - 127), ...Buffer.from(big)];
    const block = Buffer.concat([Buffer.from(first), Buffer.alloc(10_000, 0xbe)]);
    const before = process.memoryUsage().heapUsed;
    assert.throws(() => d.decode(block), HeaderListTooLargeError);
    assert.ok(process.memoryUsage().heapUsed - before < 20 * 1024 * 1024);
    // the table stayed in sync: the entry is still indexable
    assert.deepEqual(d.decode(hex("be"))[0][0], "a");
  });

  test("encodeHeaderBlock output decodes back (pre-encoded responses)", () => {
    const h: [string, string][] = [
      [":status", "200"],
      ["content-type", "application/grpc"],
      ["grpc-status", "13"],
      ["grpc-message", "x".repeat(300)],
    ];
    assert.deepEqual(new HpackDecoder(limits).decode(encodeHeaderBlock(h)), h);
  });

  test(`fuzz: random blocks throw only HPACK errors (SEED=${seed})`, () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 5 }), (blocks) => {
        const d = new HpackDecoder({
          maxTableSizeBytes: 4096,
          maxHeaderListBytes: 8192,
          maxStringBytes: 8192,
        });
        for (const b of blocks) {
          try {
            d.decode(b);
          } catch (err) {
            if (!(err instanceof HpackError) && !(err instanceof HeaderListTooLargeError))
              throw err;
          }
          assert.ok(d.tableBytes <= 4096);
        }
      }),
      { seed, numRuns: numRuns * 3 },
    );
  });

  test(`fuzz: valid blocks with dynamic-table entries round-trip (SEED=${seed})`, () => {
    const name = fc.stringMatching(/^[a-z][a-z0-9-]{0,20}$/);
    const value = fc
      .string({ maxLength: 60 })
      .map((s) => Buffer.from(s, "utf8").toString("latin1"));
    fc.assert(
      fc.property(
        fc.array(fc.array(fc.tuple(name, value, fc.boolean(), fc.boolean()), { maxLength: 10 }), {
          maxLength: 8,
        }),
        (reqs) => {
          const d = new HpackDecoder(limits);
          // a reference encoder: literal with incremental indexing, optionally Huffman
          for (const req of reqs) {
            const parts: Buffer[] = [];
            for (const [n, v, index, huff] of req) {
              parts.push(Buffer.from([index ? 0x40 : 0x00]));
              parts.push(str(n, huff), str(v, !huff));
            }
            const got = d.decode(Buffer.concat(parts));
            assert.deepEqual(
              got,
              req.map(([n, v]) => [n, v]),
            );
          }
        },
      ),
      { seed, numRuns },
    );
  });
});

function intTail(v: number): number[] {
  const out: number[] = [];
  while (v >= 128) {
    out.push((v % 128) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return out;
}

function str(s: string, huffman: boolean): Buffer {
  const body = huffman ? encodeHuffman(s) : Buffer.from(s, "latin1");
  const len = body.length;
  const head =
    len < 127 ? [len | (huffman ? 0x80 : 0)] : [0x7f | (huffman ? 0x80 : 0), ...intTail(len - 127)];
  return Buffer.concat([Buffer.from(head), body]);
}
