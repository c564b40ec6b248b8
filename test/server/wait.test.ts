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
