/**
 * Random batches against a model: saves (some issued concurrently, so the queue merges them),
 * raft-style overwrites of the log tail, snapshots, releaseLockTo purges, and reopen from the
 * latest snapshot or from the start; after every reopen the WAL must hand back exactly the
 * model's hardState and entries. Small segments make cuts frequent.
 */
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import type { Entry, HardState } from "../../lib/proto/gen/raftpb/raft.js";
import { WAL } from "../../lib/wal/index.js";
import type { WalSnapshot } from "../../lib/wal/index.js";
import { plain, runSeed, tempDataDir } from "./harness.js";

type Cmd =
  | {
      op: "save";
      from: number;
      count: number;
      dataBytes: number;
      hs: boolean;
      bumpTerm: boolean;
      vote: number;
      commitFrac: number;
    }
  | { op: "burst"; saves: Array<{ count: number; dataBytes: number }> }
  | { op: "snapshot"; frac: number }
  | { op: "release" }
  | { op: "reopen"; fromSnapshot: boolean };

const cmdArb: fc.Arbitrary<Cmd> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      op: fc.constant("save" as const),
      from: fc.double({ min: 0, max: 1, noNaN: true }),
      count: fc.integer({ min: 0, max: 6 }),
      dataBytes: fc.integer({ min: 0, max: 300 }),
      hs: fc.boolean(),
      bumpTerm: fc.boolean(),
      vote: fc.integer({ min: 0, max: 3 }),
      commitFrac: fc.double({ min: 0, max: 1, noNaN: true }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant("burst" as const),
      saves: fc.array(
        fc.record({
          count: fc.integer({ min: 1, max: 4 }),
          dataBytes: fc.integer({ min: 0, max: 200 }),
        }),
        {
          minLength: 2,
          maxLength: 8,
        },
      ),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant("snapshot" as const),
      frac: fc.double({ min: 0, max: 1, noNaN: true }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("release" as const) }) },
  {
    weight: 2,
    arbitrary: fc.record({ op: fc.constant("reopen" as const), fromSnapshot: fc.boolean() }),
  },
);

function mkEntry(index: number, term: number, dataBytes: number, salt: number): Entry {
  const data = new Uint8Array(dataBytes);
  for (let i = 0; i < dataBytes; i++) data[i] = (index * 7 + i + salt) & 0xff;
  return { type: index % 5 === 0 ? 1 : 0, term, index, data } as Entry;
}

describe("WAL against a model", () => {
  test("random batches, overwrites, snapshots, purges and reopens match the model", async () => {
    const seed = runSeed("wal model");
    let salt = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(cmdArb, { minLength: 1, maxLength: 30 }), async (cmds) => {
        const t = tempDataDir("wal-model-");
        const opts = { segmentSizeBytes: 1024, maxWalFiles: 3 };
        let wal = await WAL.create(t.walDir, Buffer.from("model-meta"), opts);
        const log: Entry[] = []; // log[i] has index i + 1
        let hs: HardState = { term: 0, vote: 0n, commit: 0 };
        let term = 1;
        let snap: WalSnapshot = { index: 0, term: 0 };
        let released = false;
        const check = (r: Awaited<ReturnType<typeof WAL.open>>, from: WalSnapshot) => {
          assert.deepEqual(r.hardState, hs);
          assert.deepEqual(plain(r.entries), plain(log.slice(from.index)));
          assert.equal(Buffer.from(r.metadata).toString(), "model-meta");
        };
        try {
          for (const c of cmds) {
            switch (c.op) {
              case "save": {
                // Raft overwrites only above the last snapshot (which is at or below commit).
                const low = snap.index + 1;
                const k = low + Math.floor(c.from * (log.length + 1 - low + 1));
                const start = Math.min(Math.max(k, low), log.length + 1);
                if (c.bumpTerm) term++;
                const es = Array.from({ length: c.count }, (_, i) =>
                  mkEntry(start + i, term, c.dataBytes, ++salt),
                );
                if (es.length > 0) log.splice(start - 1, log.length, ...es);
                let h: HardState | undefined;
                if (c.hs) {
                  h = { term, vote: BigInt(c.vote), commit: Math.floor(c.commitFrac * log.length) };
                  if (h.term !== 0 || h.vote !== 0n || h.commit !== 0) hs = h;
                }
                await wal.save(h, es);
                break;
              }
              case "burst": {
                const ps = [];
                for (const s of c.saves) {
                  const start = log.length + 1;
                  const es = Array.from({ length: s.count }, (_, i) =>
                    mkEntry(start + i, term, s.dataBytes, ++salt),
                  );
                  log.push(...es);
                  hs = { term, vote: hs.vote, commit: Math.max(hs.commit, start - 1) };
                  ps.push(wal.save(hs, es));
                }
                await Promise.all(ps);
                break;
              }
              case "snapshot": {
                if (log.length <= snap.index) break;
                const index = snap.index + 1 + Math.floor(c.frac * (log.length - snap.index));
                const s = { index: Math.min(index, log.length), term: 0 };
                s.term = log[s.index - 1]!.term;
                await wal.saveSnapshot(s);
                snap = s;
                break;
              }
              case "release": {
                await wal.releaseLockTo(snap.index);
                released = true;
                break;
              }
              case "reopen": {
                await wal.close();
                const from = c.fromSnapshot || released ? snap : { index: 0, term: 0 };
                const r = await WAL.open(t.walDir, { ...opts, snapshot: from });
                check(r, from);
                wal = r.wal;
                break;
              }
            }
          }
          await wal.close();
          const r = await WAL.open(t.walDir, { ...opts, snapshot: snap });
          check(r, snap);
          await r.wal.close();
        } finally {
          await wal.close().catch(() => {});
          t.cleanup();
        }
      }),
      { seed, numRuns: 40 },
    );
  });
});
