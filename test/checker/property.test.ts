// Property tests: histories from a sequential reference store with random concurrent overlaps
// (lib/checker/generate.ts) are always accepted; the same histories with one read turned into a
// provably stale one are always rejected; a complete watch of those histories is accepted, and the
// same watch with one event lost or repeated is not. SEED=<n> replays a run (the seed is printed).
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  checkLinearizability,
  checkWatches,
  type KvOperation,
  type WatchEventRecord,
  type WatchRecord,
} from "../../lib/checker/index.js";
import { generateHistory, type GeneratedHistory } from "../../lib/checker/generate.js";
import { testSeed } from "../helpers/server.js";

const seed = testSeed();
console.log(`# checker property tests: SEED=${seed}`);

const shapeArb = fc.record({
  watched: fc.boolean(),
  seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
  operations: fc.integer({ min: 1, max: 80 }),
  clients: fc.integer({ min: 1, max: 6 }),
  keys: fc.constantFrom(["a"], ["a", "b"], ["p/a", "p/b", "q/a"], ["p/a", "p/b", "p/c", "q"]),
  spacingNs: fc.integer({ min: 1, max: 2000 }),
  overlapNs: fc.integer({ min: 0, max: 6000 }),
  revisions: fc.boolean(),
});

/** The generated store's events as a complete watch would deliver them, when `use` is set. */
function watchedOf(g: GeneratedHistory, use: boolean) {
  return use ? { watched: { events: g.events, completeRevision: g.finalRevision } } : {};
}

test("generated linearizable histories are accepted", () => {
  fc.assert(
    fc.property(shapeArb, (shape) => {
      const g = generateHistory(shape);
      const r = checkLinearizability(g.history, {
        timeBudgetMs: 20_000,
        ...watchedOf(g, shape.watched),
      });
      if (r.verdict !== "ok") {
        throw new Error(
          `verdict ${r.verdict}: ${r.verdict === "illegal" ? r.explanation : r.reason}`,
        );
      }
    }),
    { seed, numRuns: 150 },
  );
});

/**
 * Turns one completed get into a stale read: it returns version j of its key although version
 * j + 1's writer completed before the read was invoked and version j's writer completed before
 * that one was invoked (so every linearization orders old writer < new writer < read, and values
 * are unique). Undefined when the history has no such read.
 */
function staleRead(g: GeneratedHistory, pick: number): KvOperation[] | undefined {
  const byId = new Map(g.history.map((op) => [op.id!, op]));
  const candidates: {
    read: KvOperation;
    stale: { value: string; mod: number; create: number; version: number };
  }[] = [];
  for (const read of g.history) {
    if (read.input.type !== "get" || read.output === undefined) continue;
    const versions = g.versions.get(read.input.key)!;
    for (let j = 1; j + 1 < versions.length; j++) {
      const old = versions[j]!;
      const newer = byId.get(versions[j + 1]!.writerId)!;
      const oldWriter = byId.get(old.writerId)!;
      if (old.value === null) continue;
      if (!(newer.completeNs < read.invokeNs && oldWriter.completeNs < newer.invokeNs)) continue;
      candidates.push({
        read,
        stale: {
          value: old.value,
          mod: old.modRevision,
          create: old.createRevision,
          version: old.version,
        },
      });
    }
  }
  if (candidates.length === 0) return undefined;
  const { read, stale } = candidates[pick % candidates.length]!;
  const out = read.output!;
  const withRevisions = out.revision !== undefined;
  const kv = withRevisions
    ? {
        value: stale.value,
        modRevision: stale.mod,
        createRevision: stale.create,
        version: stale.version,
      }
    : { value: stale.value, version: stale.version };
  return g.history.map((op) => (op === read ? { ...op, output: { ...out, type: "get", kv } } : op));
}

test("a history with one stale read is rejected", () => {
  let mutated = 0;
  fc.assert(
    fc.property(shapeArb, fc.nat(), (shape, pick) => {
      const g = generateHistory({ ...shape, operations: Math.max(shape.operations, 20) });
      const bad = staleRead(g, pick);
      if (bad === undefined) return;
      mutated++;
      const r = checkLinearizability(bad, { timeBudgetMs: 20_000, ...watchedOf(g, shape.watched) });
      assert.equal(r.verdict, "illegal", JSON.stringify(r).slice(0, 500));
    }),
    { seed, numRuns: 150 },
  );
  assert.ok(mutated > 30, `only ${mutated} of 150 histories had a read to make stale`);
});

/** A watch on every key from revision 2 that got every event, in responses of whole revisions. */
function fullWatch(g: GeneratedHistory, cuts: number[]): WatchRecord {
  const revisions = [...new Set(g.events.map((e) => e.revision))].sort((a, b) => a - b);
  const responses: WatchRecord["responses"] = [];
  let current: WatchEventRecord[] = [];
  revisions.forEach((rev, i) => {
    for (const e of g.events.filter((x) => x.revision === rev)) {
      current.push({
        type: e.type,
        key: e.key,
        modRevision: rev,
        ...(e.value !== undefined ? { value: e.value } : {}),
      });
    }
    if (cuts[i % cuts.length]! % 3 === 0 || i === revisions.length - 1) {
      responses.push({ events: current, headerRevision: rev });
      current = [];
    }
  });
  return { id: "w", key: "", rangeEnd: "\u0000", startRevision: 2, responses };
}

test("complete watches of generated histories are accepted; one lost, repeated or reordered event is not", () => {
  fc.assert(
    fc.property(
      shapeArb,
      fc.array(fc.nat(), { minLength: 1, maxLength: 8 }),
      fc.nat(),
      (shape, cuts, pick) => {
        const g = generateHistory({ ...shape, operations: Math.max(shape.operations, 10) });
        const w = fullWatch(g, cuts);
        const history = { writes: g.events, watches: [w] };
        const ok = checkWatches(history);
        assert.equal(ok.verdict, "ok", JSON.stringify(ok).slice(0, 500));
        const events = w.responses.flatMap((r, ri) => r.events.map((e, ei) => ({ ri, ei, e })));
        const lastRev = events.length > 0 ? events[events.length - 1]!.e.modRevision : 0;
        const inner = events.filter((x) => x.e.modRevision < lastRev);
        if (inner.length === 0) return;
        const { ri, ei } = inner[pick % inner.length]!;
        const mutate = (f: (events: WatchEventRecord[][]) => void): WatchRecord => {
          const copy = w.responses.map((r) => [...r.events]);
          f(copy);
          return { ...w, responses: copy.map((events, i) => ({ ...w.responses[i]!, events })) };
        };
        const lost = mutate((rs) => rs[ri]!.splice(ei, 1));
        const repeated = mutate((rs) => rs[rs.length - 1]!.push(rs[ri]![ei]!));
        const bad = [lost, repeated];
        if (ri < w.responses.length - 1) {
          const moved = [...w.responses.filter((_, i) => i !== ri), w.responses[ri]!];
          bad.push({ ...w, responses: moved });
        }
        for (const x of bad) {
          assert.equal(checkWatches({ ...history, watches: [x] }).verdict, "violation");
        }
      },
    ),
    { seed, numRuns: 100 },
  );
});
