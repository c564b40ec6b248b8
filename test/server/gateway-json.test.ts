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
