// Issue 14: alarms, compaction and the quota apply cluster-wide through raft. A 3-member cluster
// with a small --quota-backend-bytes is filled through one follower until a put is refused with
// NOSPACE; then, as etcd 3.4 does it: the NOSPACE alarm is listed alike by every member, puts
// through every member are refused with etcd's error while reads still work, and after a
// compaction (proposed through one member, applied by all), a defragment of each member and an
// `etcdctl alarm disarm`, puts through every member succeed again and the members agree on HashKV.
// Passes against /usr/bin/etcd with ETCD_TS_TARGET=etcd.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  type Cluster,
  etcdctlHashKVs,
  startCluster,
  memberctl as ctl,
} from "../helpers/cluster.js";
import { skipOnGrpcJsAuthority } from "../helpers/server.js";

/** Small enough to fill with a few dozen puts of FILL_VALUE_BYTES (as nospace-txn.test.ts). */
const QUOTA_BYTES = 300_000;
const FILL_VALUE_BYTES = 20_000;
/** Bound on puts while filling the quota. */
const MAX_FILL_PUTS = 200;
const NOSPACE = "etcdserver: mvcc: database space exceeded";

// etcdctl with http:// endpoints (every check below) cannot reach the grpc-js reference transport
describe(
  "alarms, quota and compaction across a 3-member cluster",
  { timeout: 120_000, skip: skipOnGrpcJsAuthority },
  () => {
    let c: Cluster;
    before(async () => {
      c = await startCluster({ extraArgs: ["--quota-backend-bytes", String(QUOTA_BYTES)] });
    });
    after(async () => {
      await c?.close();
    });

    test("NOSPACE raised through one follower refuses puts on every member until disarmed", async (t) => {
      const lead = await c.leader();
      const follower = c.members.find((m) => m !== lead)!;
      const value = "x".repeat(FILL_VALUE_BYTES);
      let refused = "";
      let filled = 0;
      for (; filled < MAX_FILL_PUTS && refused === ""; filled++) {
        const r = await ctl(follower, ["put", `fill${filled}`], value);
        if (r.code !== 0) refused = r.stderr;
      }
      t.diagnostic(`refused after ${filled} puts of ${FILL_VALUE_BYTES} B`);
      assert.match(refused, new RegExp(NOSPACE), "the quota was never exceeded");

      // the alarm went through raft: every member lists the same alarms, NOSPACE among them
      const lists = await Promise.all(c.members.map((m) => ctl(m, ["alarm", "list"])));
      for (const r of lists) {
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, /alarm:NOSPACE/);
      }
      assert.equal(new Set(lists.map((r) => r.stdout)).size, 1, JSON.stringify(lists));

      // every member refuses a put with etcd's error and still serves reads
      for (const m of c.members) {
        const put = await ctl(m, ["put", `after-${m.name}`, "v"]);
        assert.notEqual(put.code, 0, `${m.name} took a put under NOSPACE`);
        assert.match(put.stderr, new RegExp(NOSPACE), m.name);
        const get = await ctl(m, ["get", "fill0", "--print-value-only"]);
        assert.equal(get.code, 0, get.stderr);
        assert.equal(get.stdout.trim().length, FILL_VALUE_BYTES, m.name);
      }

      // free the space: delete the fill keys, compact through one member (raft applies it on all),
      // defragment each member, then disarm
      const del = await ctl(follower, ["del", "fill", "--prefix"]);
      assert.equal(del.code, 0, del.stderr);
      const head = await ctl(lead, ["get", "after-delete", "-w", "json"]);
      const revision = Number(/"revision":(\d+)/.exec(head.stdout)?.[1]);
      assert.ok(revision > 0, head.stdout + head.stderr);
      const compact = await ctl(lead, ["compact", String(revision), "--physical"]);
      assert.equal(compact.code, 0, compact.stderr);
      for (const m of c.members) {
        // every member applied the compaction: a read below it is refused there
        const old = await ctl(m, ["get", "fill0", `--rev=${revision - 1}`, "--consistency=s"]);
        assert.notEqual(old.code, 0, `${m.name} served a revision below the compaction`);
        assert.match(old.stderr, /required revision has been compacted/, m.name);
        const defrag = await ctl(m, ["defrag"]);
        assert.equal(defrag.code, 0, defrag.stderr);
      }
      const disarm = await ctl(follower, ["alarm", "disarm"]);
      assert.equal(disarm.code, 0, disarm.stderr);
      for (const m of c.members) {
        const list = await ctl(m, ["alarm", "list"]);
        assert.equal(list.code, 0, list.stderr);
        assert.equal(list.stdout.trim(), "", `${m.name} still lists ${list.stdout}`);
        const put = await ctl(m, ["put", `after-${m.name}`, "v"]);
        assert.equal(put.code, 0, `${m.name}: ${put.stderr}`);
      }
      const hashes = await etcdctlHashKVs(c);
      assert.ok(typeof hashes !== "string", String(hashes));
      assert.equal(new Set(hashes.map((h) => `${h.revision}:${h.hash}`)).size, 1);
    });
  },
);
