import { test } from "node:test";
import assert from "node:assert/strict";
import { RequestWaits, waitSweepIntervalMs } from "../../lib/server/wait.js";

test("a wait resolves with the triggered value and settles once", async () => {
  const settled: [string, boolean][] = [];
  const w = new RequestWaits<number, string>((tag, ok) => settled.push([tag, ok]));
  const p = w.register(1, 10_000, "a");
  assert.equal(w.size, 1);
  assert.equal(w.trigger(1, 42), true);
  assert.equal(w.trigger(1, 43), false);
  w.fail(1, new Error("late"));
  assert.equal(await p, 42);
  assert.deepEqual(settled, [["a", true]]);
  assert.equal(w.size, 0);
});

test("fail rejects; completed marks an answered request", async () => {
  const settled: [string, boolean][] = [];
  const w = new RequestWaits<number, string>((tag, ok) => settled.push([tag, ok]));
  const a = w.register(1, 10_000, "dropped");
  const b = w.register(2, 10_000, "apply-error");
  w.fail(1, new Error("dropped"));
  w.fail(2, new Error("key not found"), true);
  await assert.rejects(a, /dropped/);
  await assert.rejects(b, /key not found/);
  assert.deepEqual(settled, [
    ["dropped", false],
    ["apply-error", true],
  ]);
});

test("an untriggered wait times out with ErrTimeout within one sweep of its deadline", async () => {
  const settled: boolean[] = [];
  const w = new RequestWaits<number, undefined>((_t, ok) => settled.push(ok));
  const started = performance.now();
  const p = w.register(7, 30, undefined);
  const keep = w.register(8, 60_000, undefined);
  // the sweep timer is unref'd (it must not keep a stopping member alive): hold the loop open
  const hold = setTimeout(() => undefined, 10_000);
  await assert.rejects(p, /request timed out/);
  clearTimeout(hold);
  const waited = performance.now() - started;
  assert.ok(waited >= 30 && waited < 30 + 3 * waitSweepIntervalMs, `timed out after ${waited} ms`);
  assert.deepEqual(settled, [false]);
  assert.equal(w.size, 1);
  w.failAll(new Error("stopped"));
  await assert.rejects(keep, /stopped/);
  assert.equal(w.size, 0);
});

test("many pending waits, ids that meet in one slot and ids above 2^32 each get their own answer", async () => {
  const settled: number[] = [];
  const w = new RequestWaits<number, number>((tag) => settled.push(tag));
  // 5000 consecutive ids outgrow the first ring; 7 and 7 + 1024·k share a slot until it grows;
  // the request counter runs to 2^48
  const ids = [
    ...Array.from({ length: 5000 }, (_, i) => i),
    7 + 1024 * 9,
    7 + 1024 * 4096,
    2 ** 47 + 3,
    2 ** 48 - 1,
  ];
  const promises = ids.map((id) => w.register(id, 60_000, id));
  assert.equal(w.size, ids.length);
  // answer in a scrambled order; an unknown id and a second trigger find nobody
  const order = ids
    .map((id, i) => [id, (i * 7919) % ids.length] as const)
    .sort((a, b) => a[1] - b[1]);
  for (const [id] of order) assert.equal(w.trigger(id, id * 2), true);
  assert.equal(w.trigger(12_345, 0), false);
  assert.equal(w.trigger(ids[0]!, 0), false);
  assert.deepEqual(
    await Promise.all(promises),
    ids.map((id) => id * 2),
  );
  assert.equal(w.size, 0);
  assert.deepEqual(
    [...settled].sort((a, b) => a - b),
    [...ids].sort((a, b) => a - b),
  );
});

test("a wait that shares its slot with another pending id still times out and fails", async () => {
  const w = new RequestWaits<number, undefined>();
  const first = w.register(1, 60_000, undefined);
  const sharing = w.register(1 + 1024, 20, undefined); // same slot of the first ring
  const hold = setTimeout(() => undefined, 10_000);
  await assert.rejects(sharing, /request timed out/);
  clearTimeout(hold);
  assert.equal(w.size, 1);
  const again = w.register(1 + 2048, 60_000, undefined);
  w.failAll(new Error("stopped"));
  await assert.rejects(first, /stopped/);
  await assert.rejects(again, /stopped/);
  assert.equal(w.size, 0);
});
