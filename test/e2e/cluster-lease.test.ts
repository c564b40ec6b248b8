// Issue 14: leases across a leader failover, as etcd 3.4 runs them. Only the leader expires and
// revokes leases; a new leader first extends every lease's remaining TTL to its full TTL plus an
// election timeout (etcd's lessor.Promote), so a lease whose holder could not reach anyone during
// the election is not lost to it. A lease granted through a follower, with a key on it, is let run
// down to under half its TTL, then the leader is SIGKILLed: the new leader reports the TTL
// refreshed, the key outlives the lease's first deadline on every member (no follower revoked it
// on its own), and the new leader revokes it once the extended TTL runs out. Passes against
// /usr/bin/etcd with ETCD_TS_TARGET=etcd.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { type Cluster, startCluster, memberctl as ctl } from "../helpers/cluster.js";
import { sleep, waitFor, type Member } from "../helpers/server.js";

const electionTimeoutMs = 500;
const FAST = ["--heartbeat-interval", "50", "--election-timeout", String(electionTimeoutMs)];
const TTL_SECONDS = 4;

/** `etcdctl lease timetolive`: the remaining TTL in seconds (-1 once the lease is gone). */
async function remainingSeconds(m: Member, id: string): Promise<number> {
  const r = await ctl(m, ["lease", "timetolive", id]);
  assert.equal(r.code, 0, r.stderr);
  if (/already expired/.test(r.stdout)) return -1;
  const rem = /remaining\((-?\d+)s\)/.exec(r.stdout);
  assert.ok(rem !== null, r.stdout);
  return Number(rem[1]);
}

async function hasKey(m: Member, key: string): Promise<boolean> {
  const r = await ctl(m, ["get", key, "--consistency=s", "--print-value-only"]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.trim() !== "";
}

describe("leases across a leader failover", { timeout: 90_000 }, () => {
  let c: Cluster;
  before(async () => {
    c = await startCluster({ extraArgs: FAST });
  });
  after(async () => {
    await c?.close();
  });

  test("a new leader extends the remaining TTL (Promote); only the leader revokes", async (t) => {
    const lead = await c.leader();
    const follower = c.members.find((m) => m !== lead)!;
    const grant = await ctl(follower, ["lease", "grant", String(TTL_SECONDS)]);
    assert.equal(grant.code, 0, grant.stderr);
    const id = /lease ([0-9a-f]+) granted/.exec(grant.stdout)![1]!;
    const grantedAt = Date.now();
    const put = await ctl(follower, ["put", "leased", "v", `--lease=${id}`]);
    assert.equal(put.code, 0, put.stderr);
    // let it run down to under half its TTL, then kill the leader
    await waitFor(
      "the lease ran down",
      async () => (await remainingSeconds(follower, id)) <= TTL_SECONDS / 2 - 1,
      (TTL_SECONDS + 2) * 1000,
    );
    const firstDeadline = grantedAt + TTL_SECONDS * 1000;
    await lead.kill9();
    const killedAt = Date.now();
    const rest = c.members.filter((m) => m !== lead);
    const next = await c.leader(20_000, rest);
    t.diagnostic(`new leader ${next.name} ${Date.now() - killedAt} ms after SIGKILL`);
    // Promote: the remaining TTL is back to the full TTL (plus an election timeout)
    const after = await remainingSeconds(next, id);
    assert.ok(after >= TTL_SECONDS - 1, `remaining ${after}s after the failover`);
    // past the lease's first deadline, with margin: no member revoked it
    await sleep(Math.max(0, firstDeadline + 1_000 - Date.now()));
    for (const m of rest) assert.ok(await hasKey(m, "leased"), `${m.name} lost the key early`);
    // the new leader revokes it when the extended TTL runs out, and every member applies that
    await waitFor(
      "the lease expires under the new leader",
      async () =>
        !(await hasKey(next, "leased")) &&
        !(await hasKey(
          rest.find((m) => m !== next)!,
          "leased",
        )),
      (TTL_SECONDS + 5) * 1000,
    );
    assert.equal(await remainingSeconds(next, id), -1);
    await lead.restart();
  });
});
