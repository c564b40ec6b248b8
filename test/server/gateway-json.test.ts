import { test } from "node:test";
import assert from "node:assert/strict";
import { splitJsonValues } from "../../lib/api/gateway.js";

test("splitJsonValues splits concatenated JSON values and keeps an incomplete tail", () => {
  const { values, rest } = splitJsonValues('{"a":1} {"b":"}{"}\n{"c":');
  assert.deepEqual(values, ['{"a":1}', '{"b":"}{"}']);
  assert.equal(rest, '{"c":');
});

test("splitJsonValues handles escaped quotes inside strings", () => {
  const { values } = splitJsonValues('{"k":"a\\"}b"}');
  assert.deepEqual(values, ['{"k":"a\\"}b"}']);
});

import { quoteBigIntegers } from "../../lib/api/gateway.js";

test("quoteBigIntegers keeps 64-bit integers exact and leaves strings and small numbers alone", () => {
  const text = '{"ID": 7587869374413052345, "TTL": 30, "key": "123456789012345678", "x": -9223372036854775807, "f": 1.5}';
  const j = JSON.parse(quoteBigIntegers(text)) as Record<string, unknown>;
  assert.equal(j.ID, "7587869374413052345");
  assert.equal(j.TTL, 30);
  assert.equal(j.key, "123456789012345678");
  assert.equal(j.x, "-9223372036854775807");
  assert.equal(j.f, 1.5);
});
