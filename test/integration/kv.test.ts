// KV service through the `etcd3` npm client against one spawned member (etcd-ts, or real etcd with
// ETCD_TS_TARGET=etcd): put/get/range options, delete with prev_kv, txn, compaction.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Etcd3, GRPCOutOfRangeError } from "etcd3";
import { startMember, type Member } from "../helpers/server.js";
import { closeClient, newClient } from "../helpers/client.js";

describe("etcd3 client: KV", { timeout: 60_000 }, () => {
  let member: Member;
  let client: Etcd3;

  before(async () => {
    member = await startMember();
    client = newClient(member);
  });
  after(async () => {
    closeClient(client);
    await member?.close();
  });

  /** The store's current revision, read from a range response header. */
  async function currentRevision(): Promise<number> {
    const r = await client.kv.range({ key: Buffer.from("\0") });
    return Number(r.header.revision);
  }

  test("put returns a header whose revision grows by one per put; get reads the value back", async () => {
    const r1 = await client.put("kv/a").value("1").exec();
    const r2 = await client.put("kv/b").value("2").exec();
    assert.equal(Number(r2.header.revision), Number(r1.header.revision) + 1);
    assert.ok(r1.header.cluster_id !== "0" && r1.header.member_id !== "0");
    assert.ok(Number(r1.header.raft_term) >= 1);
    assert.equal(await client.get("kv/a").string(), "1");
    assert.equal(await client.get("kv/missing").string(), null);
    assert.equal(await client.get("kv/b").exists(), true);
  });

  test("key metadata: create_revision, mod_revision and version follow etcd's model", async () => {
    const p1 = await client.put("kv/meta").value("x").exec();
    const p2 = await client.put("kv/meta").value("y").exec();
    const r = await client.get("kv/meta").exec();
    assert.equal(r.kvs.length, 1);
    const kv = r.kvs[0]!;
    assert.equal(kv.create_revision, p1.header.revision);
    assert.equal(kv.mod_revision, p2.header.revision);
    assert.equal(kv.version, "2");
    assert.equal(kv.lease, "0");
    assert.equal(r.count, "1");
    assert.equal(r.more, false);
  });

  test("put with prev_kv returns the previous key-value", async () => {
    await client.put("kv/prev").value("old").exec();
    const prev = await client.put("kv/prev").value("new").getPrevious();
    assert.equal(prev.value.toString(), "old");
    assert.equal(prev.key.toString(), "kv/prev");
    const res = await client.kv.put({
      key: Buffer.from("kv/prev-none"),
      value: Buffer.from("v"),
      prev_kv: true,
    });
    assert.equal(res.prev_kv, null);
  });

  test("put with ignore_value keeps the value and bumps version", async () => {
    await client.put("kv/iv").value("keep").exec();
    await client.kv.put({ key: Buffer.from("kv/iv"), ignore_value: true });
    const r = await client.get("kv/iv").exec();
    assert.equal(r.kvs[0]!.value.toString(), "keep");
    assert.equal(r.kvs[0]!.version, "2");
  });

  test("getAll with prefix returns exactly the keys under the prefix, in key order", async () => {
    for (const k of ["p/c", "p/a", "p/b", "pz", "o"])
      await client.put(k).value(k.toUpperCase()).exec();
    const got = await client.getAll().prefix("p/").strings();
    assert.deepEqual(got, { "p/a": "P/A", "p/b": "P/B", "p/c": "P/C" });
    assert.deepEqual(await client.getAll().prefix("p/").keys(), ["p/a", "p/b", "p/c"]);
  });

  test("range with limit returns the first keys and sets more=true with the full count", async () => {
    const r = await client.getAll().prefix("p/").limit(2).exec();
    assert.deepEqual(
      r.kvs.map((kv) => kv.key.toString()),
      ["p/a", "p/b"],
    );
    assert.equal(r.more, true);
    assert.equal(r.count, "3");
    const all = await client.getAll().prefix("p/").limit(3).exec();
    assert.equal(all.more, false);
  });

  test("range sort by key, value, version, create and mod revision, ascending and descending", async () => {
    // s/x written three times, s/y once, s/z twice: versions 3, 1, 2; mod order y < z < x.
    await client.put("s/x").value("3").exec();
    await client.put("s/z").value("1").exec();
    await client.put("s/x").value("3").exec();
    await client.put("s/y").value("2").exec();
    await client.put("s/z").value("1").exec();
    await client.put("s/x").value("3").exec();
    const keys = async (
      target: "Key" | "Value" | "Version" | "Create" | "Mod",
      order: "Ascend" | "Descend",
    ) =>
      (await client.getAll().prefix("s/").sort(target, order).exec()).kvs.map((kv) =>
        kv.key.toString(),
      );
    assert.deepEqual(await keys("Key", "Ascend"), ["s/x", "s/y", "s/z"]);
    assert.deepEqual(await keys("Key", "Descend"), ["s/z", "s/y", "s/x"]);
    assert.deepEqual(await keys("Value", "Ascend"), ["s/z", "s/y", "s/x"]);
    assert.deepEqual(await keys("Value", "Descend"), ["s/x", "s/y", "s/z"]);
    assert.deepEqual(await keys("Version", "Ascend"), ["s/y", "s/z", "s/x"]);
    assert.deepEqual(await keys("Version", "Descend"), ["s/x", "s/z", "s/y"]);
    assert.deepEqual(await keys("Create", "Ascend"), ["s/x", "s/z", "s/y"]);
    assert.deepEqual(await keys("Create", "Descend"), ["s/y", "s/z", "s/x"]);
    assert.deepEqual(await keys("Mod", "Ascend"), ["s/y", "s/z", "s/x"]);
    assert.deepEqual(await keys("Mod", "Descend"), ["s/x", "s/z", "s/y"]);
    // sort with limit: the limit applies after sorting.
    const top = await client.getAll().prefix("s/").sort("Key", "Descend").limit(1).exec();
    assert.deepEqual(
      top.kvs.map((kv) => kv.key.toString()),
      ["s/z"],
    );
    assert.equal(top.more, true);
  });

  test("keys-only returns keys with empty values; count-only returns the count and no kvs", async () => {
    const r = await client.kv.range({
      key: Buffer.from("p/"),
      range_end: Buffer.from("p0"),
      keys_only: true,
    });
    assert.equal(r.kvs.length, 3);
    for (const kv of r.kvs) assert.equal(kv.value.length, 0);
    assert.equal(await client.getAll().prefix("p/").count(), 3);
    const c = await client.kv.range({
      key: Buffer.from("p/"),
      range_end: Buffer.from("p0"),
      count_only: true,
    });
    assert.equal(c.kvs.length, 0);
    assert.equal(c.count, "3");
  });

  test("range_end \\0 means every key >= key (from-key)", async () => {
    const r = await client.kv.range({
      key: Buffer.from("s/"),
      range_end: Buffer.from([0]),
      keys_only: true,
    });
    const keys = r.kvs.map((kv) => kv.key.toString());
    assert.ok(keys.includes("s/x") && keys.includes("s/z"));
    assert.ok(!keys.includes("p/a") && !keys.includes("o"));
    assert.deepEqual([...keys].sort(), keys);
  });

  test("min/max mod and create revision filters", async () => {
    const base = await currentRevision();
    await client.put("f/a").value("1").exec(); // base+1
    await client.put("f/b").value("1").exec(); // base+2
    await client.put("f/a").value("2").exec(); // base+3
    const keys = async (b: ReturnType<Etcd3["getAll"]>) => (await b.keys()).sort();
    assert.deepEqual(
      await keys(
        client
          .getAll()
          .prefix("f/")
          .minModRevision(base + 3),
      ),
      ["f/a"],
    );
    assert.deepEqual(
      await keys(
        client
          .getAll()
          .prefix("f/")
          .maxModRevision(base + 2),
      ),
      ["f/b"],
    );
    assert.deepEqual(
      await keys(
        client
          .getAll()
          .prefix("f/")
          .minCreateRevision(base + 2),
      ),
      ["f/b"],
    );
    assert.deepEqual(
      await keys(
        client
          .getAll()
          .prefix("f/")
          .maxCreateRevision(base + 1),
      ),
      ["f/a"],
    );
  });

  test("reads at a past revision see the store as it was", async () => {
    const r1 = await client.put("rev/k").value("v1").exec();
    const r2 = await client.put("rev/k").value("v2").exec();
    await client.delete().key("rev/k").exec();
    assert.equal(await client.get("rev/k").revision(r1.header.revision).string(), "v1");
    assert.equal(await client.get("rev/k").revision(r2.header.revision).string(), "v2");
    assert.equal(await client.get("rev/k").string(), null);
    const old = await client.get("rev/k").revision(r1.header.revision).exec();
    // The header carries the current revision, not the requested one.
    assert.ok(Number(old.header.revision) > Number(r2.header.revision));
    // Serializable reads answer too.
    assert.equal(await client.get("kv/a").serializable(true).string(), "1");
  });

  test("delete returns deleted count and, with prev_kv, the deleted pairs", async () => {
    await client.put("d/1").value("a").exec();
    await client.put("d/2").value("b").exec();
    await client.put("d/3").value("c").exec();
    const prev = await client.delete().key("d/1").getPrevious();
    assert.deepEqual(
      prev.map((kv) => [kv.key.toString(), kv.value.toString()]),
      [["d/1", "a"]],
    );
    const res = await client.delete().prefix("d/").exec();
    assert.equal(res.deleted, "2");
    assert.equal(await client.getAll().prefix("d/").count(), 0);
    const none = await client.delete().key("d/none").exec();
    assert.equal(none.deleted, "0");
  });

  test("a delete of nothing does not bump the revision; a delete of keys bumps it once", async () => {
    const before = await currentRevision();
    await client.delete().key("d/none").exec();
    assert.equal(await currentRevision(), before);
    await client.put("d2/a").value("1").exec();
    await client.put("d2/b").value("1").exec();
    const del = await client.delete().prefix("d2/").exec();
    assert.equal(Number(del.header.revision), before + 3);
  });

  test("txn if().then().else(): the then branch runs when every compare holds", async () => {
    await client.put("t/k").value("1").exec();
    const res = await client
      .if("t/k", "Value", "==", "1")
      .and("t/k", "Version", ">", 0)
      .then(client.put("t/k").value("2"), client.get("t/other"))
      .else(client.put("t/k").value("else"))
      .commit();
    assert.equal(res.succeeded, true);
    assert.equal(res.responses.length, 2);
    assert.ok(res.responses[0]!.response_put);
    assert.ok(res.responses[1]!.response_range);
    assert.equal(await client.get("t/k").string(), "2");
  });

  test("txn: the else branch runs when a compare fails, and its range result is returned", async () => {
    const res = await client
      .if("t/k", "Value", "==", "nope")
      .then(client.put("t/k").value("then"))
      .else(client.get("t/k"), client.delete().key("t/gone"))
      .commit();
    assert.equal(res.succeeded, false);
    assert.equal(res.responses[0]!.response_range!.kvs[0]!.value.toString(), "2");
    assert.ok(res.responses[1]!.response_delete_range);
    assert.equal(await client.get("t/k").string(), "2");
  });

  test("txn compares on create and mod revision and on a missing key", async () => {
    const p = await client.put("t/rev").value("x").exec();
    const ok = await client
      .if("t/rev", "Mod", "==", Number(p.header.revision))
      .and("t/rev", "Create", "==", Number(p.header.revision))
      .and("t/absent", "Create", "==", 0)
      .then(client.put("t/rev").value("y"))
      .commit();
    assert.equal(ok.succeeded, true);
    const writes = await client.put("t/rev2").value("z").exec();
    // All puts of one txn share one revision.
    const multi = await client
      .if("t/rev2", "Value", "==", "z")
      .then(client.put("t/m1").value("1"), client.put("t/m2").value("2"))
      .commit();
    assert.equal(Number(multi.header.revision), Number(writes.header.revision) + 1);
    const m1 = await client.get("t/m1").exec();
    const m2 = await client.get("t/m2").exec();
    assert.equal(m1.kvs[0]!.mod_revision, m2.kvs[0]!.mod_revision);
  });

  test("compaction: reading a compacted revision fails with etcd's compacted error", async () => {
    const r1 = await client.put("c/k").value("1").exec();
    await client.put("c/k").value("2").exec();
    const r3 = await client.put("c/k").value("3").exec();
    const res = await client.kv.compact({ revision: r3.header.revision, physical: true });
    assert.ok(Number(res.header.revision) >= Number(r3.header.revision));
    await assert.rejects(client.get("c/k").revision(r1.header.revision).exec(), (err: Error) => {
      assert.ok(err instanceof GRPCOutOfRangeError, `got ${err.constructor.name}: ${err.message}`);
      assert.match(err.message, /etcdserver: mvcc: required revision has been compacted/);
      return true;
    });
    // The compacted revision itself is still readable.
    assert.equal(await client.get("c/k").revision(r3.header.revision).string(), "3");
    // Compacting again at or below the compacted revision fails too.
    await assert.rejects(
      client.kv.compact({ revision: r1.header.revision }),
      /required revision has been compacted/,
    );
  });
});
