/**
 * Random op sequences against a simple model: a Map per revision (the whole state at each
 * revision) plus the list of events. Checked on every step: current state, a read at a random
 * past revision (or the compacted error), counts; at the end, what a watcher with a sink that
 * randomly stops reading received, in order, without loss.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { MvccStore, MvccCompactedError } from "../../lib/mvcc/index.js";
import {
  Compare_CompareResult as R,
  Compare_CompareTarget as T,
} from "../../lib/proto/gen/etcdserverpb/rpc.js";
import {
  b,
  cmp,
  createWatch,
  delReq,
  opDel,
  opPut,
  putReq,
  rangeReq,
  TestSink,
  testSeed,
  txnReq,
} from "./helpers.js";

interface MKv {
  value: string;
  create: number;
  mod: number;
  version: number;
}
type State = Map<string, MKv>;
interface MEvent {
  type: number;
  key: string;
  rev: number;
  value: string;
}

type Op =
  | { t: "put"; key: string; value: string }
  | { t: "del"; key: string }
  | { t: "delRange"; key: string; end: string }
  | { t: "txn"; key: string; version: number; puts: string[]; dels: string[]; value: string }
  | { t: "compact"; back: number }
  | { t: "read"; back: number; key: string; end: string }
  | { t: "full"; on: boolean };

const keyArb = fc.constantFrom("a", "b", "c", "d", "e", "aa", "ab", "ba");
const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      t: fc.constant("put" as const),
      key: keyArb,
      value: fc.string({ maxLength: 4 }),
    }),
  },
  { weight: 2, arbitrary: fc.record({ t: fc.constant("del" as const), key: keyArb }) },
  {
    weight: 1,
    arbitrary: fc.record({ t: fc.constant("delRange" as const), key: keyArb, end: keyArb }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      t: fc.constant("txn" as const),
      key: keyArb,
      version: fc.integer({ min: 0, max: 3 }),
      puts: fc.uniqueArray(fc.constantFrom("a", "b", "c"), { maxLength: 3 }),
      dels: fc.uniqueArray(fc.constantFrom("d", "e"), { maxLength: 2 }),
      value: fc.string({ maxLength: 3 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      t: fc.constant("compact" as const),
      back: fc.integer({ min: 0, max: 10 }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      t: fc.constant("read" as const),
      back: fc.integer({ min: 0, max: 15 }),
      key: keyArb,
      end: keyArb,
    }),
  },
  { weight: 1, arbitrary: fc.record({ t: fc.constant("full" as const), on: fc.boolean() }) },
);

function inRange(k: string, key: string, end: string): boolean {
  return Buffer.compare(b(k), b(key)) >= 0 && Buffer.compare(b(k), b(end)) < 0;
}

test("random op sequences agree with a Map-per-revision model, and a slow watcher loses nothing", () => {
  const seed = testSeed("mvcc model");
  fc.assert(
    fc.property(fc.array(opArb, { maxLength: 120 }), (ops) => {
      const store = new MvccStore({ maxEventsPerWatchResponse: 3 });
      const sink = new TestSink();
      const ws = store.newWatchStream(sink);
      ws.handle(createWatch({ key: Buffer.from([0]), rangeEnd: Buffer.from([0]) }));
      // a single-key watcher catches up from the key's history instead of the revision log
      ws.handle(createWatch({ key: b("a"), startRevision: 1 }));
      const states: State[] = [new Map(), new Map()]; // states[rev]
      const events: MEvent[] = [];
      let rev = 1;
      let compacted = -1;
      const cur = () => states[rev]!;
      const commit = (next: State, evs: MEvent[]) => {
        if (evs.length === 0) return;
        rev++;
        states[rev] = next;
        events.push(...evs);
      };
      const mput = (s: State, key: string, value: string, evs: MEvent[]) => {
        const p = s.get(key);
        s.set(key, {
          value,
          create: p ? p.create : rev + 1,
          mod: rev + 1,
          version: p ? p.version + 1 : 1,
        });
        evs.push({ type: 0, key, rev: rev + 1, value });
      };
      const mdel = (s: State, key: string, evs: MEvent[]) => {
        if (!s.has(key)) return;
        s.delete(key);
        evs.push({ type: 1, key, rev: rev + 1, value: "" });
      };
      for (const op of ops) {
        switch (op.t) {
          case "put": {
            const s = new Map(cur());
            const evs: MEvent[] = [];
            mput(s, op.key, op.value, evs);
            store.put(putReq(op.key, op.value));
            commit(s, evs);
            break;
          }
          case "del": {
            const s = new Map(cur());
            const evs: MEvent[] = [];
            mdel(s, op.key, evs);
            const r = store.deleteRange(delReq(op.key));
            assert.equal(r.deleted, evs.length);
            commit(s, evs);
            break;
          }
          case "delRange": {
            const s = new Map(cur());
            const evs: MEvent[] = [];
            const keys = [...s.keys()]
              .filter((k) => inRange(k, op.key, op.end))
              .sort((x, y) => Buffer.compare(b(x), b(y)));
            for (const k of keys) mdel(s, k, evs);
            const r = store.deleteRange(delReq(op.key, { rangeEnd: b(op.end) }));
            assert.equal(r.deleted, evs.length);
            commit(s, evs);
            break;
          }
          case "txn": {
            const s = new Map(cur());
            const evs: MEvent[] = [];
            const ok = (s.get(op.key)?.version ?? 0) === op.version;
            if (ok) {
              for (const k of op.puts) mput(s, k, op.value, evs);
            } else {
              for (const k of op.dels) mdel(s, k, evs);
            }
            const r = store.txn(
              txnReq({
                compare: [cmp(op.key, T.VERSION, R.EQUAL, op.version)],
                success: op.puts.map((k) => opPut(k, op.value)),
                failure: op.dels.map((k) => opDel(k)),
              }),
            );
            assert.equal(r.succeeded, ok);
            commit(s, evs);
            break;
          }
          case "compact": {
            const target = rev - op.back;
            if (target <= compacted || target < 1) break;
            store.compact(target);
            compacted = target;
            break;
          }
          case "read": {
            const at = rev - op.back;
            if (at < 1) break;
            const req = rangeReq(op.key, { rangeEnd: b(op.end), revision: at });
            if (at < compacted) {
              assert.throws(() => store.range(req), MvccCompactedError);
              break;
            }
            const want = [...states[at]!.entries()]
              .filter(([k]) => inRange(k, op.key, op.end))
              .sort(([x], [y]) => Buffer.compare(b(x), b(y)));
            const got = store.range(req);
            assert.deepEqual(
              got.kvs.map((kv) => [
                Buffer.from(kv.key).toString(),
                Buffer.from(kv.value).toString(),
                kv.createRevision,
                kv.modRevision,
                kv.version,
              ]),
              want.map(([k, v]) => [k, v.value, v.create, v.mod, v.version]),
            );
            break;
          }
          case "full":
            sink.full = op.on;
            if (!op.on) ws.resume();
            break;
        }
        store.checkInvariants();
        assert.equal(store.currentRevision, rev);
        assert.equal(store.stats().keys, cur().size);
      }
      sink.full = false;
      for (let i = 0; i < 1000 && store.syncWatchers(); i++);
      ws.resume();
      for (const [id, want] of [
        [0, events],
        [1, events.filter((e) => e.key === "a")],
      ] as const) {
        const got = sink.got
          .filter((r) => r.watchId === BigInt(id))
          .flatMap((r) => r.events)
          .map((e) => ({
            type: e.type,
            key: Buffer.from(e.kv!.key).toString(),
            rev: e.kv!.modRevision,
            value: Buffer.from(e.kv!.value).toString(),
          }));
        const compactedResp = sink.got.find(
          (r) => r.watchId === BigInt(id) && r.compactRevision > 0,
        );
        if (compactedResp === undefined) {
          assert.deepEqual(got, want);
        } else {
          // the watcher fell behind a compaction: what it got is a prefix, and it was told where
          assert.deepEqual(got, want.slice(0, got.length));
          assert.equal(compactedResp.canceled, true);
        }
      }
    }),
    { seed, numRuns: 300 },
  );
});
