// The Lock and Election services on a 3-member cluster over client and peer TLS (issue 15): the
// v3lockpb / v3electionpb gRPC services and etcdctl's lock and elect, with clients on different
// members; mutual exclusion between a client of one member and one of another; when the raft
// leader is SIGKILLed, the lock holder's lease (kept alive through a follower, which forwards
// keep-alives to the leader) and the election go on on the survivors, and once the holder lets
// its lease expire on the new leader the next waiter gets the lock and Observe on a follower sees
// the new election leader. ETCD_TS_TARGET=etcd runs the same file against etcd 3.4.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { type Member, etcdctl, repoRoot, run, sleep, waitFor, within } from "../helpers/server.js";
import { tlsClusterSuite } from "../helpers/cluster.js";
import type { LeaderResponse } from "../../lib/proto/gen/v3electionpb/v3election.js";

const FAST = ["--heartbeat-interval", "50", "--election-timeout", "500"];

const text = (b: Uint8Array | undefined) => (b === undefined ? "" : Buffer.from(b).toString());

describe("Lock and Election on a 3-member cluster", { timeout: 120_000 }, () => {
  const suite = tlsClusterSuite(() => FAST);
  const client = (m: Member) => suite.client(m);

  test("two processes on two members taking the same lock never overlap", async () => {
    const [a, b] = suite.cluster.members as [Member, Member];
    const worker = join(repoRoot(), "dist", "test", "helpers", "lock-worker.js");
    const rounds = 10;
    const results = await Promise.all(
      [a, b].map((m, i) =>
        run(process.execPath, [worker, m.hostPort, "cmx", `w${i}`, String(rounds), suite.tls.dir], {
          timeoutMs: 45_000,
        }),
      ),
    );
    for (const r of results) {
      assert.equal(r.code, 0, `worker failed: ${r.stderr}`);
      assert.equal((JSON.parse(r.stdout) as { overlaps: number }).overlaps, 0);
    }
    const third = client(suite.cluster.members[2]!);
    assert.equal(await third.get("cmx-counter"), String(2 * rounds), "a lost update");
    assert.deepEqual(await third.keys("cmx/"), [], "every ownership key is gone after unlock");
  });

  test("etcdctl lock on two members runs the two commands one after the other; elect -l on a third sees the leader", async () => {
    const [a, b, cc] = suite.cluster.members as [Member, Member, Member];
    const cmd = "date +%s%N; sleep 0.5; date +%s%N";
    const runs = await Promise.all(
      [a, b].map((m) =>
        etcdctl(["lock", "ctl-lock", "--", "sh", "-c", cmd], { member: m, timeoutMs: 20_000 }),
      ),
    );
    const spans = runs.map((r) => {
      assert.equal(r.code, 0, r.stderr);
      const [start, end] = r.stdout.trim().split("\n").map(BigInt);
      return { start: start!, end: end! };
    });
    spans.sort((x, y) => (x.start < y.start ? -1 : 1));
    assert.ok(spans[0]!.end <= spans[1]!.start, "the two critical sections overlapped");
    const led = await etcdctl(["elect", "ctl-elect", "p1"], {
      member: a,
      timeoutMs: 15_000,
      until: (out) => out.includes("p1"),
    });
    assert.match(led.stdout, /^ctl-elect\/[0-9a-f]+\np1\n/);
    // etcdctl was killed while leading: its 60 s lease keeps the key, seen through another member
    const listen = await etcdctl(["elect", "-l", "ctl-elect"], {
      member: cc,
      timeoutMs: 15_000,
      until: (out) => out.includes("p1"),
    });
    assert.match(listen.stdout, /^ctl-elect\/[0-9a-f]+\np1\n/);
    assert.deepEqual(await client(b).keys("ctl-lock/"), [], "etcdctl released its keys");
  });

  test("the raft leader SIGKILLed: the lock holder's lease and the election go on; then the next waiter takes over", async (t) => {
    const lead = await suite.cluster.leader();
    const [f1, f2] = suite.cluster.members.filter((m) => m !== lead) as [Member, Member];
    const holder = client(f1);
    const waiter = client(f2);
    const ttlSeconds = 3;
    const [lease1, lease2] = [await holder.grant(ttlSeconds), await waiter.grant(30)];
    // keep-alives more often than clientv3's TTL/3, so both survivors are forwarding one to the
    // dead leader when the election ends (the new leader then renews it itself)
    const keep = holder.keepAlive(lease1, 250);
    const keepWaiter = waiter.keepAlive(lease2, 250);
    const held = await holder.lock("fo", lease1);
    const led = await holder.campaign("fe", lease1, "v1");
    const pendingLock = waiter.lock("fo", lease2, 60_000);
    const pendingCampaign = waiter.campaign("fe", lease2, "v2", 60_000);
    // awaited below; a failed assertion before then must not leave them unhandled
    pendingLock.catch(() => undefined);
    pendingCampaign.catch(() => undefined);
    await waitFor("both waiters queued", async () => (await waiter.keys("fo/")).length === 2);
    await waitFor("both candidates queued", async () => (await waiter.keys("fe/")).length === 2);
    const seen: LeaderResponse[] = [];
    const obs = waiter.observe("fe", (r) => seen.push(r));
    try {
      await waitFor("Observe sees v1", () => seen.some((r) => text(r.kv?.value) === "v1"), 5000);
      await lead.kill9();
      const next = await suite.cluster.leader(15_000, [f1, f2]);
      t.diagnostic(`new leader ${next.name}`);
      // two TTLs without the old leader: the holder's keep-alives reach the new one
      await sleep(2 * ttlSeconds * 1000);
      for (const k of [keep, keepWaiter])
        assert.equal(k.error(), undefined, `keep-alive stream failed: ${k.error()?.message}`);
      assert.ok((await waiter.timeToLive(lease1)).tTL > 0, "the holder's lease expired");
      assert.deepEqual(
        (await waiter.keys("fo/")).sort(),
        [text(held.key), `fo/${lease2.toString(16)}`].sort(),
        "the holder's key is there",
      );
      assert.equal(await within(pendingLock, 10), undefined, "the waiter got a held lock");
      assert.equal(text((await waiter.leader("fe")).kv?.value), "v1");
      await holder.proclaim(led.leader, "v1b");
      await waitFor("Observe sees v1b", () => seen.some((r) => text(r.kv?.value) === "v1b"), 5000);
      // the holder goes silent: its lease expires on the new leader, the waiters take over
      keep.stop();
      const got = await within(pendingLock, 15_000);
      assert.ok(
        got !== undefined,
        "the waiter did not get the lock after the holder's lease expired",
      );
      assert.equal(text(got.key), `fo/${lease2.toString(16)}`);
      const elected = await within(pendingCampaign, 15_000);
      assert.ok(elected !== undefined, "the second candidate was not elected");
      await waitFor("Observe sees v2", () => seen.some((r) => text(r.kv?.value) === "v2"), 5000);
      assert.deepEqual(
        seen.map((r) => text(r.kv?.value)),
        ["v1", "v1b", "v2"],
      );
      assert.equal(text((await client(f1).leader("fe")).kv?.value), "v2");
      await waiter.unlock(got.key);
      await waiter.resign(elected.leader);
      await waiter.revoke(lease2);
    } finally {
      keep.stop();
      keepWaiter.stop();
      obs.cancel();
      await obs.ended;
    }
  });
});
