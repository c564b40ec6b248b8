// Crash safety of a follower's periodic snapshot (issue 14): a follower applies committed entries
// while its own WAL write of them is still in flight, so a snapshot must never put a db in place
// that is ahead of its WAL (recovery refuses such a data dir: "consistent index … is ahead of the
// WAL"). The follower's save is held back (raftBeforeSave=sleep: a slow disk; its apply goes on,
// as etcd's applier while its raft loop sleeps) and it is killed (afterCommit=panic, as kill -9)
// the moment a snapshot's db is renamed into place; the restart must succeed and serve every
// acknowledged put, with HashKV equal on all three members.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { type Member, httpRequest, waitFor } from "../helpers/server.js";
import { closeClient, newClient } from "../helpers/client.js";
import { type Cluster, sameHashKV, startCluster } from "../helpers/cluster.js";

const FAST = [
  "--heartbeat-interval",
  "50",
  "--election-timeout",
  "1000",
  "--snapshot-count",
  "20",
  "--experimental-failpoints-http",
];

/** Sets a failpoint on a running member over gofail's HTTP interface. */
async function setFailpoint(m: Member, name: string, terms: string): Promise<void> {
  const r = await httpRequest(`${m.endpoint}/debug/failpoints/${name}`, {
    method: "PUT",
    body: terms,
  });
  assert.equal(r.status, 204, `${name}=${terms} on ${m.name}: ${r.status} ${r.body}`);
}

/** Puts `count` keys under `prefix` through `m` with `workers` concurrent callers; the acked keys. */
async function putKeys(m: Member, prefix: string, count: number, workers: number) {
  const client = newClient(m);
  const acked: string[] = [];
  try {
    await Promise.all(
      Array.from({ length: workers }, async (_, w) => {
        for (let i = w; i < count; i += workers) {
          const key = `${prefix}${String(i).padStart(3, "0")}`;
          await client.put(key).value("v".repeat(64));
          acked.push(key);
        }
      }),
    );
  } finally {
    closeClient(client);
  }
  return acked;
}

describe("follower snapshot durability", { timeout: 120_000 }, () => {
  let c: Cluster | undefined;
  after(async () => c?.close());

  test("a follower whose WAL save is slow never snapshots past it: killed right after the db rename, it restarts with every acknowledged put", async (t) => {
    c = await startCluster({ extraArgs: FAST });
    const lead = await c.leader();
    const f = c.members.find((m) => m !== lead)!;
    const acked = await putKeys(lead, "warm/", 5, 1);
    // every save of the follower waits 1.5 s; it dies as kill -9 once a snapshot's db is in place
    await setFailpoint(f, "raftBeforeSave", "sleep(1500)");
    await setFailpoint(f, "afterCommit", "panic");
    acked.push(...(await putKeys(lead, "load/", 60, 4)));
    await waitFor(
      "the follower to die right after its snapshot's rename",
      () => f.pid === 0,
      30_000,
    );
    assert.match(f.logTail(), /failpoint panic: afterCommit/);
    const snap = /"index":(\d+)[^\n]*"msg":"triggering snapshot"/.exec(f.logTail(20_000));
    t.diagnostic(`the follower's snapshot was at index ${snap?.[1] ?? "?"}`);
    // the failpoints were set at run time only: the restart runs without them
    await f.restart();
    const client = newClient(f);
    try {
      await waitFor(
        "the restarted follower holds every acknowledged put (serializable)",
        async () => {
          const keys = await client.getAll().prefix("").serializable(true).keys();
          const have = new Set(keys);
          return acked.every((k) => have.has(k));
        },
        20_000,
      );
    } finally {
      closeClient(client);
    }
    await waitFor("HashKV equal on every member", () => sameHashKV(c!.members), 20_000);
  });
});
