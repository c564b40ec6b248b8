// Restarts through the `etcd3` npm client: data and leases survive a restart, and a client's
// watcher reconnects after the member restarts and keeps receiving events without gaps.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import type { Etcd3, Watcher } from "etcd3";
import { startMember, waitFor, within, type Member } from "../helpers/server.js";
import { closeClient, newClient } from "../helpers/client.js";

describe("etcd3 client: restart", { timeout: 90_000 }, () => {
  let member: Member;
  let client: Etcd3;
  const opened: Watcher[] = [];

  before(async () => {
    member = await startMember();
    client = newClient(member);
  });
  after(async () => {
    await within(Promise.allSettled(opened.map((w) => w.cancel())), 2000);
    closeClient(client);
    await member?.close();
  });

  test("data written before a clean restart is read back with the same revisions", async () => {
    const p1 = await client.put("rs/a").value("1").exec();
    const p2 = await client.put("rs/b").value("2").exec();
    await client.delete().key("rs/a").exec();
    const before = await client.getAll().prefix("rs/").exec();
    await member.restart();
    const after = await client.getAll().prefix("rs/").exec();
    assert.deepEqual(after.kvs, before.kvs);
    assert.equal(after.header.revision, before.header.revision);
    assert.equal(await client.get("rs/a").revision(p1.header.revision).string(), "1");
    assert.equal(await client.get("rs/b").revision(p2.header.revision).string(), "2");
    const next = await client.put("rs/c").value("3").exec();
    assert.equal(Number(next.header.revision), Number(before.header.revision) + 1);
  });

  test("data acknowledged before kill -9 is there after restart", async () => {
    const acked: { key: string; rev: string }[] = [];
    for (let i = 0; i < 50; i++) {
      const r = await client.put(`rk/${i}`).value(`v${i}`).exec();
      acked.push({ key: `rk/${i}`, rev: r.header.revision });
    }
    await member.kill9();
    await member.restart();
    const got = await client.getAll().prefix("rk/").exec();
    assert.equal(got.kvs.length, acked.length);
    const byKey = new Map(got.kvs.map((kv) => [kv.key.toString(), kv]));
    for (const a of acked) {
      const kv = byKey.get(a.key);
      assert.ok(kv, `${a.key} lost`);
      assert.equal(kv.mod_revision, a.rev);
    }
  });

  test("a lease survives a restart and still expires afterwards", async () => {
    const g = await client.leaseClient.leaseGrant({ TTL: 3 });
    await client.put("rl/k").value("v").lease(g.ID).exec();
    await member.restart();
    const ttl = await client.leaseClient.leaseTimeToLive({ ID: g.ID, keys: true });
    assert.equal(ttl.grantedTTL, "3");
    assert.ok(Number(ttl.TTL) > 0, `TTL after restart ${ttl.TTL}`);
    assert.deepEqual(
      ttl.keys.map((k) => k.toString()),
      ["rl/k"],
    );
    await waitFor(
      "lease expiry after restart",
      async () => !(await client.get("rl/k").exists()),
      15_000,
      100,
    );
  });

  test("a watcher reconnects after the member restarts and receives later events without gaps", async () => {
    const w = await client.watch().prefix("rw/").create();
    opened.push(w);
    const seen: string[] = [];
    let reconnects = 0;
    w.on("put", (kv) => seen.push(kv.value.toString()));
    w.on("connected", () => reconnects++);
    const connectedBefore = reconnects;
    await client.put("rw/k").value("before").exec();
    await waitFor("event before restart", () => seen.length >= 1);

    await member.restart();
    // A second client writes at once, possibly before the watcher is back: the watcher resumes
    // from its last revision + 1, so it must still see every event.
    const other = newClient(member);
    try {
      await other.put("rw/k").value("after-1").exec();
      await other.put("rw/k").value("after-2").exec();
    } finally {
      closeClient(other);
    }
    await waitFor("events after restart", () => seen.length >= 3, 20_000);
    assert.deepEqual(seen, ["before", "after-1", "after-2"]);
    assert.ok(reconnects > connectedBefore, "the watcher reconnected");

    // And after a kill -9 too.
    await member.kill9();
    await member.restart();
    await client.put("rw/k").value("after-kill").exec();
    await waitFor("event after kill -9 restart", () => seen.length >= 4, 20_000);
    assert.deepEqual(seen, ["before", "after-1", "after-2", "after-kill"]);
  });
});
