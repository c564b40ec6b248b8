import { test } from "node:test";
import assert from "node:assert/strict";
import { JsonValueSplitter as Splitter } from "../../lib/api/gateway.js";

test("JsonValueSplitter splits concatenated JSON values and keeps an incomplete tail for later", () => {
  const sp = new Splitter(1 << 20);
  assert.deepEqual(sp.push(Buffer.from('{"a":1} {"b":"}{"}\n{"c":')), ['{"a":1}', '{"b":"}{"}']);
  assert.deepEqual(sp.push(Buffer.from("2}")), ['{"c":2}']);
});

test("JsonValueSplitter handles escaped quotes inside strings", () => {
  const sp = new Splitter(1 << 20);
  assert.deepEqual(sp.push(Buffer.from('{"k":"a\\"}b"}')), ['{"k":"a\\"}b"}']);
});

import { quoteBigIntegers } from "../../lib/api/gateway.js";

test("quoteBigIntegers keeps 64-bit integers exact and leaves strings and small numbers alone", () => {
  const text =
    '{"ID": 7587869374413052345, "TTL": 30, "key": "123456789012345678", "x": -9223372036854775807, "f": 1.5}';
  const j = JSON.parse(quoteBigIntegers(text)) as Record<string, unknown>;
  assert.equal(j.ID, "7587869374413052345");
  assert.equal(j.TTL, 30);
  assert.equal(j.key, "123456789012345678");
  assert.equal(j.x, "-9223372036854775807");
  assert.equal(j.f, 1.5);
});

import fc from "fast-check";
import { JsonValueSplitter } from "../../lib/api/gateway.js";

test("JsonValueSplitter gives the same values however the stream is chunked", () => {
  const seed = Number(process.env.SEED ?? Date.now() % 2 ** 31);
  const value = fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify({ v }));
  try {
    fc.assert(
      fc.property(
        fc.array(value, { minLength: 1, maxLength: 5 }),
        fc.array(fc.nat(), { maxLength: 8 }),
        (vals, cuts) => {
          const text = Buffer.from(vals.join("\n"));
          const points = [...new Set(cuts.map((c) => c % (text.length + 1)))].sort((a, b) => a - b);
          const sp = new JsonValueSplitter(1 << 20);
          const got: string[] = [];
          let prev = 0;
          for (const p of [...points, text.length]) {
            got.push(...sp.push(text.subarray(prev, p)));
            prev = p;
          }
          assert.deepEqual(got, vals);
        },
      ),
      { seed, numRuns: 300 },
    );
  } catch (err) {
    console.error(`JsonValueSplitter property failed: SEED=${seed}`);
    throw err;
  }
});

test("JsonValueSplitter refuses a value larger than its cap", () => {
  const sp = new JsonValueSplitter(100);
  assert.throws(() => {
    for (let i = 0; i < 20; i++) sp.push(Buffer.from('{"k":"' + "a".repeat(10)));
  }, /larger than max/);
});
