// Crash test: a spawned member under bounded concurrent puts (etcd3 client, N workers) is SIGKILLed
// at seeded random moments, several rounds; after each restart every acknowledged put must be
// there with its value and its mod revision. Every key is written once, so the check is exact.
// SEED=<n> replays a run's kill schedule and value sizes; CRASH_ROUNDS overrides the round count.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import type { Etcd3 } from "etcd3";
import { prng, sleep, startMember, testSeed, within, type Member } from "../helpers/server.js";
import { closeClient, newClient } from "../helpers/client.js";

/** Crash rounds per run. */
const ROUNDS = Number(process.env.CRASH_ROUNDS ?? 5);
/** Concurrent put loops. */
const WORKERS = 16;
/** Bound on puts one worker issues in one round (it normally stops at the kill first). */
const MAX_PUTS_PER_WORKER_PER_ROUND = 400;
/** The kill comes this many ms after the load starts: uniform in [min, max). */
const KILL_DELAY_MIN_MS = 30;
const KILL_DELAY_MAX_MS = 900;
/** Values are 1..MAX_VALUE_BYTES long (seeded). */
const MAX_VALUE_BYTES = 2048;
/** Per-put deadline, so no call can hang on a dead member. */
const PUT_DEADLINE_MS = 5000;
/** Bound on waiting for the workers to notice the kill. */
const WORKERS_SETTLE_MS = 15_000;
/** Keys read back per range page when verifying. */
const VERIFY_PAGE_KEYS = 1000;

interface Acked {
  value: string;
  revision: string;
}

describe("crash: kill -9 loses nothing acknowledged", { timeout: 180_000 }, () => {
  const seed = testSeed();
  const rand = prng(seed);
  let member: Member;
  /** key → what the member acknowledged for it. */
  const acked = new Map<string, Acked>();

  before(async () => {
    console.log(`# crash test SEED=${seed} (replay with SEED=${seed})`);
    member = await startMember();
  });
  after(async () => {
    await member?.close();
  });

  /** Reads every key under `prefix` (paged, bounded) into a map. */
  async function readAll(
    client: Etcd3,
    prefix: string,
  ): Promise<Map<string, { value: string; mod: string }>> {
    const out = new Map<string, { value: string; mod: string }>();
    let from = Buffer.from(prefix);
    const end = Buffer.from(
      prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1),
    );
    for (let page = 0; page < 10_000; page++) {
      const r = await client.kv.range({ key: from, range_end: end, limit: VERIFY_PAGE_KEYS });
      for (const kv of r.kvs)
        out.set(kv.key.toString(), { value: kv.value.toString(), mod: kv.mod_revision });
      if (!r.more || r.kvs.length === 0) return out;
      from = Buffer.concat([r.kvs[r.kvs.length - 1]!.key, Buffer.from([0])]);
    }
    throw new Error("readAll: page bound reached");
  }

  for (let round = 0; round < ROUNDS; round++) {
    test(`round ${round}: puts acknowledged before a seeded SIGKILL survive the restart`, async (t) => {
      const killDelayMs =
        KILL_DELAY_MIN_MS + Math.floor(rand() * (KILL_DELAY_MAX_MS - KILL_DELAY_MIN_MS));
      const sizes = Array.from({ length: 64 }, () => 1 + Math.floor(rand() * MAX_VALUE_BYTES));
      const client = newClient(member, { noRetry: true });
      let stop = false;
      let ackedThisRound = 0;
      let failedThisRound = 0;

      const worker = async (w: number): Promise<void> => {
        for (let i = 0; i < MAX_PUTS_PER_WORKER_PER_ROUND && !stop; i++) {
          const key = `crash/r${round}/w${String(w).padStart(2, "0")}/${String(i).padStart(4, "0")}`;
          const size = sizes[(w * 31 + i) % sizes.length]!;
          const value = `${seed}:${round}:${w}:${i}:`.padEnd(
            size,
            String.fromCharCode(97 + ((w + i) % 26)),
          );
          try {
            const res = await client
              .put(key)
              .value(value)
              .options({ deadline: Date.now() + PUT_DEADLINE_MS })
              .exec();
            acked.set(key, { value, revision: res.header.revision });
            ackedThisRound++;
          } catch {
            failedThisRound++;
            return; // the member is gone; an unacknowledged put may or may not be there
          }
        }
      };

      const workers = Array.from({ length: WORKERS }, (_, w) => worker(w));
      await sleep(killDelayMs);
      await member.kill9();
      stop = true;
      const settled = await within(Promise.allSettled(workers), WORKERS_SETTLE_MS);
      closeClient(client);
      assert.ok(settled !== undefined, "workers did not stop after the kill");
      t.diagnostic(
        `seed=${seed} round=${round} killDelayMs=${killDelayMs} acked=${ackedThisRound} failed=${failedThisRound}`,
      );

      await member.restart();
      const reader = newClient(member);
      try {
        const got = await readAll(reader, "crash/");
        let maxAckedRevision = 0;
        for (const [key, a] of acked) {
          const kv = got.get(key);
          assert.ok(
            kv,
            `SEED=${seed} round ${round}: acknowledged ${key} (rev ${a.revision}) lost\n${member.logTail(2000)}`,
          );
          assert.equal(
            kv.value,
            a.value,
            `SEED=${seed} round ${round}: ${key} has a different value`,
          );
          assert.equal(
            kv.mod,
            a.revision,
            `SEED=${seed} round ${round}: ${key} mod_revision differs`,
          );
          maxAckedRevision = Math.max(maxAckedRevision, Number(a.revision));
        }
        // Keys that were never acknowledged may exist (the put reached the log but the answer was
        // lost), but only keys some worker really tried to write.
        for (const key of got.keys()) assert.match(key, /^crash\/r\d+\/w\d{2}\/\d{4}$/);
        // The store's revision never goes back below what was acknowledged.
        const head = await reader.get("crash/none").exec();
        assert.ok(Number(head.header.revision) >= maxAckedRevision);
        // And the member takes writes again (this key joins the checked set for later rounds).
        const probe = `crash/r${round}/w99/9999`;
        const res = await reader.put(probe).value("ok").exec();
        acked.set(probe, { value: "ok", revision: res.header.revision });
      } finally {
        closeClient(reader);
      }
    });
  }
});
