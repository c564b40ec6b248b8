// Lease service through the `etcd3` npm client: grant, put with lease, keep-alive, TimeToLive,
// Leases, revoke deleting keys, expiry deleting keys after a short TTL, unknown leases.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { EtcdLeaseInvalidError, type Etcd3, type Lease } from "etcd3";
import { startMember, waitFor, sleep, type Member } from "../helpers/server.js";
import { closeClient, newClient } from "../helpers/client.js";

describe("etcd3 client: Lease", { timeout: 60_000 }, () => {
  let member: Member;
  let client: Etcd3;
  /** High-level leases (they run keep-alive timers), released in `after` even on failure. */
  const leases: Lease[] = [];

  before(async () => {
    member = await startMember();
    client = newClient(member);
  });
  after(async () => {
    for (const l of leases) l.release();
    closeClient(client);
    await member?.close();
  });

  test("grant returns an id and the TTL; TimeToLive and Leases report it", async () => {
    const g = await client.leaseClient.leaseGrant({ TTL: 30 });
    assert.notEqual(g.ID, "0");
    assert.equal(g.TTL, "30");
    assert.equal(g.error, "");
    const ttl = await client.leaseClient.leaseTimeToLive({ ID: g.ID });
    assert.equal(ttl.ID, g.ID);
    assert.equal(ttl.grantedTTL, "30");
    assert.ok(Number(ttl.TTL) > 25 && Number(ttl.TTL) <= 30, `TTL ${ttl.TTL}`);
    const list = await client.leaseClient.leaseLeases();
    assert.ok(list.leases.some((l) => l.ID === g.ID));
    await client.leaseClient.leaseRevoke({ ID: g.ID });
    const after = await client.leaseClient.leaseLeases();
    assert.ok(!after.leases.some((l) => l.ID === g.ID));
  });

  test("a client-chosen lease id is used; granting it twice fails with etcd's error", async () => {
    const id = "7340032"; // 0x700000
    const g = await client.leaseClient.leaseGrant({ TTL: 30, ID: id });
    assert.equal(g.ID, id);
    await assert.rejects(
      client.leaseClient.leaseGrant({ TTL: 30, ID: id }),
      /etcdserver: lease already exists/,
    );
    await client.leaseClient.leaseRevoke({ ID: id });
  });

  test("put with a lease attaches the key; TimeToLive with keys lists it", async () => {
    const g = await client.leaseClient.leaseGrant({ TTL: 30 });
    await client.put("l/a").value("1").lease(g.ID).exec();
    await client.put("l/b").value("2").lease(g.ID).exec();
    const r = await client.get("l/a").exec();
    assert.equal(r.kvs[0]!.lease, g.ID);
    const ttl = await client.leaseClient.leaseTimeToLive({ ID: g.ID, keys: true });
    assert.deepEqual(ttl.keys.map((k) => k.toString()).sort(), ["l/a", "l/b"]);
    await client.leaseClient.leaseRevoke({ ID: g.ID });
  });

  test("revoke deletes every attached key in one revision", async () => {
    const g = await client.leaseClient.leaseGrant({ TTL: 30 });
    await client.put("lr/a").value("1").lease(g.ID).exec();
    const last = await client.put("lr/b").value("2").lease(g.ID).exec();
    await client.put("lr/keep").value("3").exec();
    const w = await client.watch().prefix("lr/").create();
    const deletes: number[] = [];
    w.on("delete", (kv) => deletes.push(Number(kv.mod_revision)));
    try {
      const rv = await client.leaseClient.leaseRevoke({ ID: g.ID });
      assert.ok(Number(rv.header.revision) >= Number(last.header.revision) + 2);
      assert.deepEqual(await client.getAll().prefix("lr/").keys(), ["lr/keep"]);
      await waitFor("2 delete events", () => deletes.length >= 2);
      assert.equal(deletes[0], deletes[1], "both keys deleted at one revision");
      const ttl = await client.leaseClient.leaseTimeToLive({ ID: g.ID });
      assert.equal(ttl.TTL, "-1");
    } finally {
      await w.cancel();
    }
  });

  test("keep-alive once renews the lease to its full TTL", async () => {
    const lease = client.lease(20, { autoKeepAlive: false });
    leases.push(lease);
    await lease.grant();
    await sleep(1100);
    const before = await client.leaseClient.leaseTimeToLive({ ID: await lease.grant() });
    assert.ok(Number(before.TTL) < 20);
    const ka = await lease.keepaliveOnce();
    assert.equal(ka.TTL, "20");
    assert.equal(ka.ID, await lease.grant());
    await lease.revoke();
  });

  test("a lease kept alive outlives its TTL while an unrefreshed one expires and deletes its keys", async () => {
    // etcd's minimum TTL is ceil(1.5 × election timeout) = 2 s with default flags.
    const kept = client.lease(2);
    leases.push(kept);
    await kept.put("le/kept").value("k").exec();
    const g = await client.leaseClient.leaseGrant({ TTL: 2 });
    assert.ok(Number(g.TTL) >= 2);
    await client.put("le/x").value("1").lease(g.ID).exec();
    await client.put("le/y").value("2").lease(g.ID).exec();
    const t0 = Date.now();
    await waitFor(
      "expired keys deleted",
      async () => (await client.getAll().prefix("le/").keys()).length === 1,
      15_000,
      100,
    );
    const elapsedMs = Date.now() - t0;
    assert.ok(elapsedMs >= 1000, `keys went after ${elapsedMs} ms, before the TTL`);
    assert.deepEqual(await client.getAll().prefix("le/").keys(), ["le/kept"]);
    const ttl = await client.leaseClient.leaseTimeToLive({ ID: g.ID });
    assert.equal(ttl.TTL, "-1");
    // The kept-alive lease is still there after more than its TTL.
    await sleep(Math.max(0, 2500 - elapsedMs));
    assert.equal(await client.get("le/kept").string(), "k");
    await kept.revoke();
    assert.equal(await client.get("le/kept").string(), null);
  });

  test("unknown lease: put, revoke and keep-alive fail or report expiry as etcd does", async () => {
    const unknown = "123456789";
    const before = await client.get("nothing").exec();
    await assert.rejects(client.put("lu/k").value("v").lease(unknown).exec(), (err: Error) => {
      assert.ok(
        err instanceof EtcdLeaseInvalidError,
        `got ${err.constructor.name}: ${err.message}`,
      );
      assert.match(err.message, /etcdserver: requested lease not found/);
      return true;
    });
    await assert.rejects(
      client.leaseClient.leaseRevoke({ ID: unknown }),
      /etcdserver: requested lease not found/,
    );
    const ttl = await client.leaseClient.leaseTimeToLive({ ID: unknown });
    assert.equal(ttl.TTL, "-1");
    const stream = await client.leaseClient.leaseKeepAlive();
    const ka = await new Promise<{ ID: string; TTL: string }>((resolve, reject) => {
      stream.on("data", resolve);
      stream.on("error", reject);
      stream.write({ ID: unknown });
    });
    stream.end();
    assert.equal(ka.TTL, "0");
    // Nothing changed.
    const afterRead = await client.get("nothing").exec();
    assert.equal(afterRead.header.revision, before.header.revision);
    assert.equal(await client.get("lu/k").exists(), false);
  });
});
