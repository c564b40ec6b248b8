/**
 * lib/checker micro-benchmarks (issue 16, "operations per second the checker handles"):
 * checkLinearizability on seeded linearizable histories from lib/checker/generate.ts (all op
 * kinds, revisions recorded, 5 % of writes losing their response after taking effect and 3 %
 * without), and checkWatches on the event streams of those writes.
 *
 *   npx tsc -p . && node dist/bench/checker.bench.js
 *
 * Workloads: 10k ops over 10 keys from 8 clients (the figure), the same over 1 key
 * (one partition: the search's worst case), each also with the lost writes resolved from a
 * complete watch (as a torture run has one), and 10k ops over 10 keys with no revisions (values
 * only, as Porcupine's register model). Printed: ops/s from a plain timed loop, then mitata's
 * per-check times.
 */
import { bench, do_not_optimize, group, run } from "mitata";
import { checkLinearizability, checkWatches } from "../lib/checker/index.js";
import type { WatchEventRecord, WatchRecord, WatchWrite } from "../lib/checker/index.js";
import { generateHistory, type GenerateOptions } from "../lib/checker/generate.js";

const keys10 = Array.from({ length: 10 }, (_, i) => `k${i}`);
const workloads: { name: string; options: GenerateOptions; watched?: boolean }[] = [
  {
    name: "10k ops, 10 keys, 8 clients",
    options: { seed: 1, operations: 10_000, clients: 8, keys: keys10 },
  },
  {
    name: "10k ops, 10 keys, 8 clients, lost writes resolved by a watch",
    options: { seed: 1, operations: 10_000, clients: 8, keys: keys10 },
    watched: true,
  },
  {
    name: "10k ops, 1 key, 8 clients",
    options: { seed: 2, operations: 10_000, clients: 8, keys: ["k0"] },
  },
  {
    name: "10k ops, 1 key, 8 clients, lost writes resolved by a watch",
    options: { seed: 2, operations: 10_000, clients: 8, keys: ["k0"] },
    watched: true,
  },
  {
    name: "10k ops, 10 keys, 8 clients, no revisions",
    options: { seed: 3, operations: 10_000, clients: 8, keys: keys10, revisions: false },
  },
];

/**
 * Plain timed loop: ops/s over `rounds` checks (after one warm-up check), by wall time and by
 * this process's CPU time (the CPU figure holds up better on a shared machine).
 */
function timed(name: string, options: GenerateOptions, watched: boolean, rounds: number): void {
  const g = generateHistory(options);
  const history = g.history;
  const opts = {
    timeBudgetMs: 60_000,
    ...(watched ? { watched: { events: g.events, completeRevision: g.finalRevision } } : {}),
  };
  const first = checkLinearizability(history, opts);
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < rounds; i++) checkLinearizability(history, opts);
  const wallMs = (performance.now() - t0) / rounds;
  const cpu = process.cpuUsage(c0);
  const cpuMs = (cpu.user + cpu.system) / 1000 / rounds;
  const pending = history.filter((op) => op.output === undefined).length;
  const rate = (ms: number) => Math.round((history.length / ms) * 1000);
  console.log(
    `linearizability, ${name} (${pending} pending): ${first.verdict} in ${first.steps} model steps; ` +
      `${wallMs.toFixed(0)} ms wall (${rate(wallMs)} ops/s), ${cpuMs.toFixed(0)} ms CPU ` +
      `(${rate(cpuMs)} ops/s) per check`,
  );
}

/** A watch over every key that saw every acknowledged write, one response per revision. */
function watchHistory(n: number): { writes: WatchWrite[]; watches: WatchRecord[] } {
  const writes: WatchWrite[] = [];
  const responses: { events: WatchEventRecord[]; headerRevision: number }[] = [];
  for (let rev = 2; rev < n + 2; rev++) {
    const key = keys10[rev % 10]!;
    writes.push({ revision: rev, key, type: "put", value: `v${rev}` });
    responses.push({
      events: [{ type: "put", key, modRevision: rev, value: `v${rev}` }],
      headerRevision: rev,
    });
  }
  const watches = Array.from({ length: 8 }, (_, i) => ({
    id: `w${i}`,
    key: "",
    rangeEnd: "\u0000",
    startRevision: 2,
    responses,
  }));
  return { writes, watches };
}

for (const w of workloads) timed(w.name, w.options, w.watched ?? false, 2);
{
  const h = watchHistory(10_000);
  checkWatches(h);
  const c0 = process.cpuUsage();
  const r = checkWatches(h);
  const cpu = process.cpuUsage(c0);
  const ms = (cpu.user + cpu.system) / 1000;
  console.log(
    `watch: 8 watchers x 10k events: ${r.verdict}, ${ms.toFixed(0)} ms CPU per check, ` +
      `${Math.round((80_000 / ms) * 1000)} events/s`,
  );
}

group("checkLinearizability", () => {
  for (const w of workloads.slice(0, 1)) {
    const { history } = generateHistory(w.options);
    bench(w.name, () => do_not_optimize(checkLinearizability(history)));
  }
  const { history } = generateHistory({ seed: 4, operations: 1000, clients: 8, keys: keys10 });
  bench("1k ops, 10 keys, 8 clients", () => do_not_optimize(checkLinearizability(history)));
});

group("checkWatches", () => {
  const h = watchHistory(10_000);
  bench("8 watchers x 10k events", () => do_not_optimize(checkWatches(h)));
});

await run();
