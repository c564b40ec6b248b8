import { test } from "node:test";
import assert from "node:assert/strict";
import { AutoCompactor, parseRetention } from "../../lib/server/compactor.js";

function host(rev: { current: number; compact: number }, leader = true) {
  const asked: number[] = [];
  return {
    asked,
    currentRevision: () => rev.current,
    compactRevision: () => rev.compact,
    compact: async (r: number) => {
      asked.push(r);
      rev.compact = r;
    },
    isLeader: () => leader,
  };
}

test("retention parses as hours (bare number) or a Go duration in periodic mode", () => {
  assert.equal(parseRetention("periodic", "1"), 3600_000);
  assert.equal(parseRetention("periodic", "30m"), 1800_000);
  assert.equal(parseRetention("revision", "1000"), 1000);
  assert.throws(() => parseRetention("revision", "1h"));
});

test("revision mode compacts to current - retention, once per new target", async () => {
  const rev = { current: 1500, compact: 0 };
  const h = host(rev);
  const c = new AutoCompactor("revision", 1000, h);
  assert.equal(await c.runOnce(), 500);
  assert.equal(await c.runOnce(), 0);
  rev.current = 2000;
  assert.equal(await c.runOnce(), 1000);
  assert.deepEqual(h.asked, [500, 1000]);
});

test("periodic mode compacts to the revision seen one retention ago", async () => {
  let now = 0;
  const rev = { current: 10, compact: 0 };
  const h = host(rev);
  const c = new AutoCompactor("periodic", 1000, h, () => now);
  assert.equal(await c.runOnce(), 0); // sample (0, 10)
  now = 500;
  rev.current = 20;
  assert.equal(await c.runOnce(), 0);
  now = 1000;
  rev.current = 30;
  assert.equal(await c.runOnce(), 10);
  now = 1500;
  rev.current = 40;
  assert.equal(await c.runOnce(), 20);
});

test("followers never compact", async () => {
  const rev = { current: 5000, compact: 0 };
  const h = host(rev, false);
  const c = new AutoCompactor("revision", 10, h);
  assert.equal(await c.runOnce(), 0);
});
