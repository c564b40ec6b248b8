// Maintenance.Status reports the db file's real size, and Defragment rewrites it compactly
// without blocking writes (issue 13): after deletes and a compaction the db file shrinks to what
// the live data needs, dbSize/dbSizeInUse equal the file on disk, puts sent during the defragment
// all succeed (their worst latency is printed), and a restart serves every key.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { statSync } from "node:fs";
import { join } from "node:path";
import {
  endpointDbSizes as status,
  etcdctl,
  inBatches,
  startMember,
  type Member,
} from "../helpers/server.js";
import { closeClient, newClient } from "../helpers/client.js";

const KEYS = 300;
const KEPT = 10;
const VALUE = "x".repeat(2048);
const PUTS_DURING_DEFRAG = 200;

describe("Status db sizes and Defragment", { timeout: 120_000 }, () => {
  let m: Member;
  before(async () => {
    m = await startMember({ name: "defrag", extraArgs: ["--snapshot-count", "100"] });
  });
  after(async () => {
    await m?.close();
  });

  test("defragment shrinks the db file to the live data while puts go on", async () => {
    const client = newClient(m);
    const dbPath = join(m.dataDir, "member", "snap", "db");
    try {
      await inBatches(KEYS, 10, (i) =>
        client
          .put(`big/${String(i).padStart(4, "0")}`)
          .value(VALUE)
          .exec(),
      );
      const del = await etcdctl(["del", "big/0010", "big/9999"], { member: m });
      assert.equal(del.stdout.trim(), String(KEYS - KEPT), del.stderr);
      const rev = (await client.get("big/0000").exec()).header.revision;
      const c = await etcdctl(["compact", rev], { member: m });
      assert.equal(c.code, 0, c.stderr);

      const before1 = await status(m);
      assert.equal(before1.dbSize, statSync(dbPath).size, "dbSize is the db file's size");
      assert.ok(before1.dbSize > KEYS * VALUE.length * 0.5, `db holds the puts: ${before1.dbSize}`);

      // puts keep flowing while the db is rewritten
      let worstMs = 0;
      let done = 0;
      const writer = (async () => {
        for (let i = 0; i < PUTS_DURING_DEFRAG; i++) {
          const t0 = performance.now();
          await client.put(`during/${i}`).value("v").exec();
          worstMs = Math.max(worstMs, performance.now() - t0);
          done++;
        }
      })();
      const d = await etcdctl(["defrag"], { member: m });
      await writer;
      assert.equal(d.code, 0, d.stderr);
      assert.equal(d.stdout.trim(), `Finished defragmenting etcd member[${m.endpoint}]`);
      assert.equal(done, PUTS_DURING_DEFRAG);
      console.log(`# worst put latency while defragmenting: ${worstMs.toFixed(1)} ms`);

      const after1 = await status(m);
      assert.equal(after1.dbSize, statSync(dbPath).size);
      // Defragment writes a file with no free pages; a periodic snapshot since may have extended
      // it in place, freeing the few pages it rewrote (branch pages, the small buckets)
      assert.ok(after1.dbSizeInUse <= after1.dbSize, "in use is at most the size");
      assert.ok(
        after1.dbSize - after1.dbSizeInUse <= 16 * 4096,
        `few free pages after a defragment: ${after1.dbSize} - ${after1.dbSizeInUse}`,
      );
      assert.ok(
        after1.dbSize < before1.dbSize / 4,
        `defragment shrank the db: ${before1.dbSize} -> ${after1.dbSize}`,
      );
    } finally {
      closeClient(client);
    }
    await m.kill9();
    await m.restart();
    // own connections: grpc-js's shared subchannel to this address still backs off after the kill
    const c2 = newClient(m, { extra: { grpcOptions: { "grpc.use_local_subchannel_pool": 1 } } });
    try {
      assert.equal(Object.keys(await c2.getAll().prefix("big/").strings()).length, KEPT);
      assert.equal(
        Object.keys(await c2.getAll().prefix("during/").strings()).length,
        PUTS_DURING_DEFRAG,
      );
    } finally {
      closeClient(c2);
    }
  });
});
