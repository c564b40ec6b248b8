// End to end: concurrent `etcd3` clients run a mixed workload (put, get, delete, compare-and-swap
// on value and on mod revision, txn with reads, prefix range) against one spawned member through
// HistoryRecorder, while a prefix watch is recorded; the history must be linearizable and the
// watch must keep etcd's guarantees. Bounded: TARGET_CALLS calls or MAX_WORKLOAD_MS, then a
// bounded wait for the watch to catch up. SEED=<n> replays the op choices.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import type { Etcd3 } from "etcd3";
import {
  casModRevision,
  casValue,
  checkLinearizability,
  checkWatches,
  etcd3Call,
  HistoryRecorder,
  prefixRangeEnd,
  recordEtcd3Watch,
  writesOfHistory,
  type Etcd3Kv,
  type Etcd3Watcher,
  type KvInput,
  type KvOperation,
} from "../../lib/checker/index.js";
import { prng, startMember, testSeed, waitFor, within, type Member } from "../helpers/server.js";
import { closeClient, newClient } from "../helpers/client.js";

/** The clients stop after this many calls in all... */
const TARGET_CALLS = 600;
/** ...or after this long, ms, whichever comes first (a loaded machine makes fewer calls). */
const MAX_WORKLOAD_MS = 6000;
/** Fewest calls that make the check meaningful. */
const MIN_CALLS = 40;
/** Concurrent clients, each with its own connection. */
const CLIENTS = 4;
const PREFIX = "lin/";
const KEYS = ["lin/a", "lin/b", "lin/c"];

describe("recorded history of a member", { timeout: 60_000 }, () => {
  let member: Member;
  const clients: Etcd3[] = [];

  before(async () => {
    member = await startMember();
    // No retries for the recorded calls: a retried write could be applied twice. The watch
    // client keeps etcd3's defaults (it resumes a broken watch, which the record captures).
    for (let i = 0; i < CLIENTS; i++) clients.push(newClient(member, { noRetry: true }));
    clients.push(newClient(member));
  });
  after(async () => {
    for (const c of clients) closeClient(c);
    await member?.close();
  });

  test("concurrent put/get/delete/cas/txn/range is linearizable and the watch is reliable", async () => {
    const seed = testSeed();
    console.log(`# recorded history: SEED=${seed}`);
    const rand = prng(seed);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
    const kvOf = (c: Etcd3) => (c as unknown as { kv: Etcd3Kv }).kv;

    const start = await etcd3Call(kvOf(clients[0]!), { type: "get", key: KEYS[0]! });
    const startRevision = start.revision! + 1;
    const watcher = await clients[CLIENTS]!.watch()
      .prefix(PREFIX)
      .startRevision(String(startRevision))
      .create();
    watcher.on("error", () => {}); // a stream error shows up as a violation below, not a crash
    const watch = recordEtcd3Watch(watcher as unknown as Etcd3Watcher, {
      id: "w",
      key: PREFIX,
      rangeEnd: prefixRangeEnd(PREFIX),
      startRevision,
    });

    const recorder = new HistoryRecorder();
    const lastSeen = new Map<string, { value: string; mod: number }>();
    let n = 0;
    const nextInput = (): KvInput => {
      const key = pick(KEYS);
      const value = `v${n++}`;
      const seen = lastSeen.get(key);
      switch (pick(["put", "put", "get", "delete", "casValue", "casMod", "txn", "range"])) {
        case "put":
          return { type: "put", key, value };
        case "get":
          return { type: "get", key };
        case "delete":
          return { type: "delete", key };
        case "casValue":
          return casValue(key, seen?.value ?? "none", value);
        case "casMod":
          return casModRevision(key, seen?.mod ?? 0, value);
        case "txn":
          return {
            type: "txn",
            compare: [{ key, target: "version", result: "less", value: 3 }],
            success: [
              { type: "get", key },
              { type: "put", key, value },
            ],
            failure: [{ type: "delete", key }],
          };
        default:
          return { type: "range", prefix: PREFIX };
      }
    };
    let failures = 0;
    const deadline = Date.now() + MAX_WORKLOAD_MS;
    let calls = 0;
    await Promise.all(
      clients.slice(0, CLIENTS).map(async (client, id) => {
        while (calls < TARGET_CALLS && Date.now() < deadline) {
          calls++;
          const input = nextInput();
          try {
            const out = await recorder.record(id, input, () => etcd3Call(kvOf(client), input));
            if (out.type === "get" && out.kv !== null && input.type === "get") {
              lastSeen.set(input.key, { value: out.kv.value, mod: out.kv.modRevision! });
            }
          } catch {
            failures++;
          }
        }
      }),
    );
    const history = recorder.history();
    const stats = recorder.stats();
    console.log(`# ${stats.recorded} calls recorded, ${stats.pending} pending, ${failures} failed`);
    assert.ok(stats.recorded >= MIN_CALLS, `only ${stats.recorded} calls in ${MAX_WORKLOAD_MS} ms`);

    const lin = checkLinearizability(history, { timeBudgetMs: 10_000 });
    assert.equal(
      lin.verdict,
      "ok",
      lin.verdict === "illegal" ? lin.explanation : JSON.stringify(lin),
    );

    // Wait (bounded) until the watch delivered the last write, then check it.
    const { writes, possibleWrites } = writesOfHistory(history);
    const lastWrite = Math.max(startRevision - 1, ...writes.map((w) => w.revision));
    await waitFor(
      "the watch to reach the last write",
      () => watch.records.some((r) => r.responses.some((x) => x.headerRevision! >= lastWrite)),
      5000,
    );
    await within(watcher.cancel(), 2000);
    const w = checkWatches({ writes, possibleWrites, watches: watch.records });
    assert.equal(w.verdict, "ok", JSON.stringify(w, null, 1).slice(0, 3000));
    assert.ok(w.verdict === "ok" && w.events >= writes.length, "every write was delivered");

    // The watch, now checked, resolves lost writes (if any) for the linearizability check.
    const responses = watch.records.flatMap((r) => r.responses);
    const watched = {
      events: responses.flatMap((r) => r.events.map((e) => ({ ...e, revision: e.modRevision }))),
      completeRevision: Math.max(...responses.map((r) => r.headerRevision!)),
    };
    const withWatch = checkLinearizability(history, { timeBudgetMs: 10_000, watched });
    assert.equal(withWatch.verdict, "ok", JSON.stringify(withWatch).slice(0, 3000));
  });
});
