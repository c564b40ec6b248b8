// Snapshots under a steady write load (issue 13): with a small --snapshot-count and small WAL
// segments the WAL directory stays bounded while far more is written through it, and a restart
// keeps every acknowledged put. Then kill -9 at every failpoint of a snapshot (ETCD_TS_FAILPOINTS
// `<point>=<N-1>*off->panic`, a panic at the Nth snapshot, N from the seed, at least 2 so values
// are already read from an earlier snapshot's db file): each restart serves every put
// acknowledged before the crash.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { prng, startMember, testSeed, waitFor, type Member } from "../helpers/server.js";
import { closeClient, newClient } from "../helpers/client.js";

const SNAPSHOT_COUNT = 40;
const SEGMENT_BYTES = 8192;
const MAX_WALS = 2;
const WORKERS = 4;
/** Bound on the puts of one load phase (each worker stops at its share). */
const MAX_PUTS_PER_PHASE = 1_500;
const PHASE_TIME_BOUND_MS = 30_000;

/** The snapshot's failpoints in the order a snapshot reaches them (lib/failpoint/points.ts). */
const crashPoints = [
  "commitAfterPreCommitHook",
  "snapshotDbMidWrite",
  "beforeCommit",
  "afterCommit",
  "snapshotAfterSnapFile",
  "raftAfterSaveSnap",
  "raftAfterWALRelease",
];

/**
 * Each client gets its own connections: grpc-js shares subchannels between channels to the same
 * address, and the one the killed member's clients used is still backing off after the restart.
 */
const ownSubchannels = { grpcOptions: { "grpc.use_local_subchannel_pool": 1 } };

const seed = testSeed();
const rand = prng(seed);

/** key -> value of every acknowledged put (keys are unique per put). */
const acked = new Map<string, string>();
let putSerial = 0;
/**
 * Load phases still running. A test that node:test ends early (a failed assertion elsewhere, an
 * unhandled rejection, its timeout) does not stop the async work it started: a phase left running
 * would go on putting through the next test's restarts, and puts it got acknowledged after
 * checkAcked's read would count as lost. checkAcked waits for them; load stops on its test's signal.
 */
const runningLoads = new Set<Promise<number>>();

/**
 * Puts from WORKERS concurrent clients until `puts` are acknowledged, the member dies (a failed
 * put while the process is gone ends the phase) or `signal` (the test's) aborts. Returns how many
 * were acknowledged.
 */
function load(member: Member, puts: number, signal: AbortSignal): Promise<number> {
  const p = loadPhase(member, puts, signal).finally(() => runningLoads.delete(p));
  runningLoads.add(p);
  return p;
}

async function loadPhase(member: Member, puts: number, signal: AbortSignal): Promise<number> {
  const client = newClient(member, { noRetry: true, extra: ownSubchannels });
  const deadline = Date.now() + PHASE_TIME_BOUND_MS;
  let done = 0;
  let dead = false;
  try {
    await Promise.all(
      Array.from({ length: WORKERS }, async (_, w) => {
        while (!dead && !signal.aborted && done < puts && Date.now() < deadline) {
          const key = `acked/${w}/${String(putSerial++).padStart(6, "0")}`;
          const value = `v-${seed}-${key}`;
          try {
            await client.put(key).value(value).exec();
          } catch {
            if (member.pid === 0) {
              dead = true;
              return;
            }
            await waitFor("member still alive or dead", () => true, 100);
            if (member.pid === 0) dead = true;
            continue;
          }
          acked.set(key, value);
          done++;
        }
      }),
    );
  } finally {
    closeClient(client);
  }
  return done;
}

/** Every acknowledged put is served, with its value (after every load phase has ended). */
async function checkAcked(member: Member, why: string): Promise<void> {
  await Promise.allSettled([...runningLoads]);
  const client = newClient(member, { extra: ownSubchannels });
  try {
    // a fresh connection to a just-restarted member may miss its dial timeout on a loaded box:
    // retried (bounded) while the process lives; a dead member fails with its log
    let got: Record<string, string> = {};
    for (let attempt = 1; ; attempt++) {
      try {
        got = await client.getAll().prefix("acked/").strings();
        break;
      } catch (err) {
        assert.ok(member.pid !== 0, `${why}: the member died: ${member.logTail()}`);
        if (attempt >= 3) throw err;
      }
    }
    let missing = 0;
    let first = "";
    for (const [k, v] of acked) {
      if (got[k] !== v) {
        missing++;
        if (first === "") first = `${k}: got ${got[k]}, want ${v}`;
      }
    }
    assert.equal(
      missing,
      0,
      `${why}: ${missing} of ${acked.size} acked puts lost (${first}); SEED=${seed}`,
    );
  } finally {
    closeClient(client);
  }
}

/**
 * The WAL directory's segments now. The member purges released segments while this runs: a file
 * listed by readdir may be gone by its stat (ENOENT), and then it is not counted.
 */
function walFiles(dataDir: string): { count: number; bytes: number; maxSeq: number } {
  const dir = join(dataDir, "member", "wal");
  let count = 0;
  let bytes = 0;
  let maxSeq = 0;
  for (const n of readdirSync(dir)) {
    if (!n.endsWith(".wal")) continue;
    const st = statSync(join(dir, n), { throwIfNoEntry: false });
    if (st === undefined) continue; // purged since the readdir
    count++;
    bytes += st.size;
    maxSeq = Math.max(maxSeq, parseInt(n.slice(0, 16), 16));
  }
  return { count, bytes, maxSeq };
}

describe(
  `snapshots under load and kill -9 inside them (SEED=${seed})`,
  { timeout: 300_000 },
  () => {
    let member: Member;
    const env: Record<string, string> = {};

    before(async () => {
      member = await startMember({
        name: "crash",
        env,
        extraArgs: [
          "--snapshot-count",
          String(SNAPSHOT_COUNT),
          "--max-wals",
          String(MAX_WALS),
          "--max-snapshots",
          "2",
          "--experimental-wal-segment-size-bytes",
          String(SEGMENT_BYTES),
        ],
      });
    });
    after(async () => {
      await member?.close();
    });

    test("the WAL directory stays bounded under a steady load; a restart keeps every acked put", async (t) => {
      let maxCount = 0;
      let maxBytes = 0;
      let sampling = true;
      // the sampler never rejects while the load runs (an unhandled rejection would end this test
      // and leave its load running into the next ones): its error is kept and thrown after
      let samplerError: unknown;
      const sampler = (async () => {
        while (sampling) {
          try {
            const w = walFiles(member.dataDir);
            maxCount = Math.max(maxCount, w.count);
            maxBytes = Math.max(maxBytes, w.bytes);
          } catch (err) {
            samplerError ??= err;
          }
          await new Promise((r) => setTimeout(r, 20));
        }
      })();
      const n = await load(member, MAX_PUTS_PER_PHASE, t.signal);
      sampling = false;
      await sampler;
      if (samplerError !== undefined) throw samplerError;
      assert.ok(n >= MAX_PUTS_PER_PHASE, `${n} puts acknowledged`);
      const end = walFiles(member.dataDir);
      // far more segments were written than are kept: released ones are purged past --max-wals
      assert.ok(end.maxSeq >= 10, `only ${end.maxSeq + 1} segments were ever written`);
      // kept: up to --max-wals released ones, the one holding the snapshot, the tail
      assert.ok(maxCount <= MAX_WALS + 3, `WAL segments on disk peaked at ${maxCount}`);
      assert.ok(maxBytes <= (MAX_WALS + 3) * SEGMENT_BYTES * 2, `WAL bytes peaked at ${maxBytes}`);
      await member.kill9();
      await member.restart();
      await checkAcked(member, "restart after kill -9 under load");
    });

    for (const point of crashPoints) {
      test(`kill -9 at ${point}: the restart serves every acked put`, async (t) => {
        // from the 2nd snapshot on, the values of the 1st are read from its db file (lib/mvcc
        // RecordLog "Values in a db file"): the crash hits a member reading values from a file
        const nth = 2 + Math.floor(rand() * 2);
        env.ETCD_TS_FAILPOINTS = `${point}=${nth - 1}*off->panic`;
        await member.restart();
        await load(member, MAX_PUTS_PER_PHASE, t.signal);
        await waitFor(`the member to crash at ${point}`, () => member.pid === 0, 10_000);
        assert.match(member.logTail(4000), new RegExp(`failpoint panic: ${point}`));
        delete env.ETCD_TS_FAILPOINTS;
        await member.restart();
        await checkAcked(member, `restart after a crash at ${point} (snapshot ${nth})`);
      });
    }
  },
);
