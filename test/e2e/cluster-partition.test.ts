// Partitions of a 3-member etcd-ts cluster (issue 14), made by TCP proxies in front of the peer
// ports (test/helpers/cluster.ts PeerProxy): a follower cut off refuses linearizable reads and
// writes with etcd's errors while the majority goes on, then catches up by snapshot after healing,
// its open watch seeing every event in order; a leader cut off steps down (check-quorum) and the
// majority elects another, and the put it took just after the cut, which can never commit, fails
// with "etcdserver: leader changed" once it rejoins (never applied; the next put on the same
// channel gets its own answer); a follower that hears its leader but cannot reach it has its write time
// out with etcd 3.4's "possibly due to connection lost". The failpoints of peer traffic and
// received snapshots are reached. A member killed right after applying a received snapshot
// restarts.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { Etcd3 } from "etcd3";
import { etcdctl, skipOnGrpcJsAuthority, waitFor } from "../helpers/server.js";
import { client, put } from "../helpers/grpc-calls.js";
import { failpointNames, failpointSpec } from "../../lib/failpoint/index.js";
import { type Cluster, etcdctlHashKVs, heal, partition, startCluster } from "../helpers/cluster.js";

const FAST = [
  "--heartbeat-interval",
  "50",
  "--election-timeout",
  "500",
  "--pre-vote",
  "--snapshot-count",
  "60",
  "--experimental-snapshot-catchup-entries",
  "20",
  "--experimental-failpoints-http",
];

// the failpoints only a cluster reaches (peer traffic, received snapshots), set to off: counted
const clusterPoints = failpointNames().filter((n) => failpointSpec(n).cluster === true);

// etcdctl with http:// endpoints (the checks below) cannot reach the grpc-js reference transport
describe(
  "3-member cluster under partitions",
  { timeout: 180_000, skip: skipOnGrpcJsAuthority },
  () => {
    let c: Cluster;
    /** The member that caught up by snapshot in the first test. */
    let caughtUp: Cluster["members"][number] | undefined;

    before(async () => {
      c = await startCluster({
        proxies: true,
        extraArgs: FAST,
        env: { ETCD_TS_FAILPOINTS: clusterPoints.map((n) => `${n}=off`).join(";") },
      });
    });
    after(async () => {
      heal(c);
      await c?.close();
    });

    async function sameHistory(): Promise<boolean> {
      const rows = await etcdctlHashKVs(c);
      if (typeof rows === "string") return false;
      return rows.length === 3 && new Set(rows.map((e) => `${e.hash}`)).size === 1;
    }

    test("a follower cut off refuses linearizable reads and writes, then catches up by snapshot", async () => {
      const lead = await c.leader();
      const cut = c.members.find((m) => m !== lead)!;
      const watcher = new Etcd3({ hosts: cut.endpoint });
      const seen: string[] = [];
      const watch = await watcher.watch().prefix("p/").create();
      watch.on("put", (kv) => seen.push(kv.key.toString()));
      const writer = new Etcd3({ hosts: lead.endpoint });
      try {
        partition(c, [cut]);
        await waitFor(
          "the cut member has no leader",
          async () => (await c.status(cut)).leader === 0n,
          15_000,
        );
        // as etcd 3.4 (cluster-election-wait.test.ts took these answers from real etcd): both wait
        // for a leader until the member's request timeout (5 s plus two election timeouts), longer
        // than the client's usual deadline, then the put ends with the server's own context error
        // (Unknown "context deadline exceeded") and the read with "etcdserver: request timed out"
        const [put, get] = await Promise.all([
          etcdctl(["put", "x", "y", "--command-timeout=15s"], { endpoint: cut.endpoint }),
          etcdctl(["get", "x", "--command-timeout=15s"], { endpoint: cut.endpoint }),
        ]);
        assert.notEqual(put.code, 0);
        assert.match(put.stderr, /code = Unknown desc = context deadline exceeded/);
        assert.notEqual(get.code, 0);
        assert.match(get.stderr, /etcdserver: request timed out/);
        // a serializable read is still served, from the member's own (stale) state
        const ser = await etcdctl(["get", "x", "--consistency=s"], { endpoint: cut.endpoint });
        assert.equal(ser.code, 0, ser.stderr);
        // the majority goes on, far past the cut member's log
        for (let i = 0; i < 100; i++)
          await writer.put(`p/${String(i).padStart(3, "0")}`).value("v");
        heal(c);
        await waitFor("every member has the same history", sameHistory, 30_000);
        assert.match(readFileSync(cut.logFile, "utf8"), /applied snapshot from the leader/);
        await waitFor(
          "the watch on the cut member saw every put",
          () => seen.length >= 100,
          15_000,
        );
        assert.deepEqual(
          seen,
          Array.from({ length: 100 }, (_, i) => `p/${String(i).padStart(3, "0")}`),
        );
        const r = await etcdctl(["get", "p/099", "--print-value-only"], { endpoint: cut.endpoint });
        assert.equal(r.stdout.trim(), "v");
        caughtUp = cut;
      } finally {
        await watch.cancel().catch(() => {});
        watcher.close();
        writer.close();
        heal(c);
      }
    });

    test("the peer send / receive and received-snapshot failpoints were reached", async () => {
      const unreached: string[] = [];
      for (const n of clusterPoints) {
        let total = 0;
        for (const m of c.members) {
          const r = await m.httpGet(`/debug/failpoints/${n}/count`);
          assert.equal(r.status, 200, `${n} on ${m.name}: ${r.body}`);
          total += Number(r.body);
        }
        if (total === 0) unreached.push(n);
      }
      assert.deepEqual(unreached, []);
    });

    test("the member that caught up by snapshot survives a kill -9 and restarts", async () => {
      // with no write since the snapshot, its WAL record is valid only with a hardState whose
      // commit reaches it written with it (a commit-only hardState is otherwise held back): else
      // this restart finds the received db ahead of the WAL and refuses to start
      assert.ok(caughtUp !== undefined, "the first test did not get that far");
      await caughtUp.kill9();
      await caughtUp.restart();
      await waitFor("every member has the same history after the restart", sameHistory, 30_000);
    });

    test("a follower that cannot reach its leader: the write times out 'possibly due to connection lost'", async () => {
      const lead = await c.leader();
      const f = c.members.find((m) => m !== lead)!;
      // one way only: the leader's proxy refuses the follower's connections, the leader's
      // heartbeats still reach it, so it keeps its leader and forwards the put into the void
      c.proxies[c.members.indexOf(lead)]!.block([c.ids[c.members.indexOf(f)]!]);
      try {
        await waitFor(
          "the follower still follows the leader",
          async () => (await c.status(f)).leader === c.ids[c.members.indexOf(lead)],
          5_000,
        );
        const put = await etcdctl(["put", "lost", "v", "--command-timeout=15s"], {
          endpoint: f.endpoint,
          timeoutMs: 20_000,
        });
        assert.notEqual(put.code, 0);
        assert.match(put.stderr, /etcdserver: request timed out, possibly due to connection lost/);
      } finally {
        heal(c);
      }
      await waitFor("every member has the same history", sameHistory, 30_000);
    });

    test("a leader cut off steps down and the majority elects another; its lost put fails with 'leader changed'", async (t) => {
      const old = await c.leader();
      const rest = c.members.filter((m) => m !== old);
      const raw = client(old);
      // the channel is up before the cut, so the put reaches the old leader at once
      assert.equal((await put(raw, "warm-up", false, 5_000)).result, "ok");
      const started = Date.now();
      partition(c, [old]);
      // proposed while it still leads (check-quorum steps it down an election timeout or two
      // later): it can never commit, and the new leader's log replaces it once the cut heals
      const lost = put(raw, "lost", false, 30_000);
      try {
        const lead = await c.leader(15_000, rest);
        t.diagnostic(`new leader ${lead.name} after ${Date.now() - started} ms`);
        await waitFor(
          "the old leader stepped down",
          async () => (await c.status(old)).leader !== c.ids[c.members.indexOf(old)],
          15_000,
        );
        const put = await etcdctl(["put", "after", "cut"], { endpoint: lead.endpoint });
        assert.equal(put.code, 0, put.stderr);
      } finally {
        heal(c);
      }
      await waitFor("every member has the same history", sameHistory, 30_000);
      // the old leader applied the new leader's first entry: its proposal of the old term fails
      // at once with etcd's error (not at the request timeout), it was never applied anywhere, and
      // the next request on the same channel is answered as its own
      const outcome = await lost;
      t.diagnostic(`the lost put ended after ${outcome.ms} ms: ${outcome.result}`);
      assert.equal(outcome.result, "UNAVAILABLE: etcdserver: leader changed");
      for (const m of c.members) {
        const r = await etcdctl(["get", "lost", "--consistency=s"], { endpoint: m.endpoint });
        assert.equal(r.stdout, "", `${m.name} applied the lost put`);
      }
      const next = await put(raw, "next", false, 10_000);
      assert.equal(next.result, "ok");
      const rev = (next.response as { header?: { revision: bigint } }).header?.revision ?? 0n;
      const got = await etcdctl(["get", "next", "-w", "json"], { endpoint: old.endpoint });
      assert.match(got.stdout, new RegExp(`"mod_revision":${rev}`));
      raw.close();
    });
  },
);
