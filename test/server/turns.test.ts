/**
 * lib/server/turns.ts: background steps run several per event-loop turn, up to the turn budget,
 * and yield to the loop once it is spent; a stopped job ends with an error.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { runInTurns, TURN_BUDGET_MS } from "../../lib/server/turns.js";

function* steps(n: number, stepMs: number): Generator<void, string> {
  for (let i = 0; i < n; i++) {
    const until = performance.now() + stepMs;
    while (performance.now() < until); // a synchronous step of about stepMs
    yield;
  }
  return "done";
}

/** Counts turns of the event loop (setImmediate callbacks) while `p` runs. */
async function turnsDuring<T>(p: () => Promise<T>): Promise<{ value: T; turns: number }> {
  let turns = 0;
  let running = true;
  const tick = (): void => {
    turns++;
    if (running) setImmediate(tick);
  };
  setImmediate(tick);
  const value = await p();
  running = false;
  return { value, turns };
}

test("fast steps share turns: 200 steps of ~0.05 ms take a handful of turns, not 200", async () => {
  const r = await turnsDuring(() => runInTurns(steps(200, 0.05)));
  assert.equal(r.value, "done");
  assert.ok(r.turns < 40, `${r.turns} turns for 10 ms of steps`);
});

test("slow steps yield every turn: no turn runs much past the budget", async () => {
  const r = await turnsDuring(() => runInTurns(steps(10, TURN_BUDGET_MS)));
  assert.equal(r.value, "done");
  assert.ok(r.turns >= 9, `${r.turns} turns for 10 steps of the whole budget each`);
});

test("a job whose member stops ends with 'member stopping' at its next yield", async () => {
  let stopped = false;
  const job = runInTurns(steps(100, 1), () => stopped);
  stopped = true;
  await assert.rejects(job, /member stopping/);
});
