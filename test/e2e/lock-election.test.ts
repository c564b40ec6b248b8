// The v3lockpb.Lock and v3electionpb.Election gRPC services called directly (the generated
// @grpc/grpc-js clients) against a spawned member: mutual exclusion between two processes, waiting
// in create-revision order, a waiter that gives up leaving no key behind, leader failover when the
// leader's lease expires, Observe seeing each new leader, and etcd 3.4's errors (gRPC code
// Unknown, etcd's strings; checked against /usr/bin/etcd with ETCD_TS_TARGET=etcd).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { status as GrpcStatus } from "@grpc/grpc-js";
import {
  etcdctl,
  repoRoot,
  run,
  startMember,
  waitFor,
  within,
  type Member,
} from "../helpers/server.js";
import { ConcurrencyClient, rejectsWith, type CallError } from "../helpers/concurrency-client.js";
import type { LeaderResponse } from "../../lib/proto/gen/v3electionpb/v3election.js";

const text = (b: Uint8Array | undefined) => (b === undefined ? "" : Buffer.from(b).toString());

describe("Lock and Election services over gRPC", { timeout: 90_000 }, () => {
  let member: Member;
  let client: ConcurrencyClient;

  before(async () => {
    member = await startMember();
    client = new ConcurrencyClient(member.hostPort);
  });
  after(async () => {
    client?.close();
    await member?.close();
  });

  test("two processes taking the same lock 15 times each never overlap", async () => {
    const worker = join(repoRoot(), "dist", "test", "helpers", "lock-worker.js");
    const rounds = 15;
    const [a, b] = await Promise.all(
      ["a", "b"].map((id) =>
        run(process.execPath, [worker, member.hostPort, "mx", id, String(rounds)], {
          timeoutMs: 45_000,
        }),
      ),
    );
    for (const r of [a!, b!]) {
      assert.equal(r.code, 0, `worker failed: ${r.stderr}\n${member.logTail()}`);
      assert.equal((JSON.parse(r.stdout) as { overlaps: number }).overlaps, 0);
    }
    assert.equal(await client.get("mx-counter"), String(2 * rounds), "a lost update");
    assert.deepEqual(await client.keys("mx/"), [], "every ownership key is gone after unlock");
  });

  test("waiters get the lock in the order they asked; the key is <name>/<lease hex>", async () => {
    const leases = await Promise.all([client.grant(30), client.grant(30), client.grant(30)]);
    const first = await client.lock("q", leases[0]!);
    assert.equal(text(first.key), `q/${leases[0]!.toString(16)}`);
    assert.ok(first.header!.revision > 0);
    const order: number[] = [];
    const second = client.lock("q", leases[1]!).then((r) => (order.push(1), r));
    await waitFor("the second waiter's key", async () => (await client.keys("q/")).length === 2);
    const third = client.lock("q", leases[2]!).then((r) => (order.push(2), r));
    await waitFor("the third waiter's key", async () => (await client.keys("q/")).length === 3);
    assert.equal(await within(second, 300), undefined, "the lock is still held");
    await client.unlock(first.key);
    const s = await second;
    assert.equal(await within(third, 300), undefined, "the second waiter holds it now");
    await client.unlock(s.key);
    await third;
    assert.deepEqual(order, [1, 2]);
    // the lock header is the one of the read that found no earlier key
    assert.ok(s.header!.revision > first.header!.revision);
    for (const l of leases) await client.revoke(l);
    assert.deepEqual(await client.keys("q/"), []);
  });

  test("the same lease takes a lock it holds again at once", async () => {
    const lease = await client.grant(30);
    const a = await client.lock("re", lease);
    const b = await within(client.lock("re", lease), 5000);
    assert.ok(b !== undefined, "the second Lock on the same lease waited");
    assert.deepEqual(text(b.key), text(a.key));
    await client.revoke(lease);
  });

  test("a waiter whose call ends (deadline) leaves no key behind; the holder keeps the lock", async () => {
    const [holder, waiter] = await Promise.all([client.grant(30), client.grant(30)]);
    await client.lock("dl", holder);
    await assert.rejects(client.lock("dl", waiter, 500), (err: CallError) => {
      assert.equal(err.code, GrpcStatus.DEADLINE_EXCEEDED);
      return true;
    });
    await waitFor(
      "the waiter's key to be deleted",
      async () => (await client.keys("dl/")).length === 1,
      5000,
    );
    assert.deepEqual(await client.keys("dl/"), [`dl/${holder.toString(16)}`]);
    await client.revoke(holder);
    await client.revoke(waiter);
  });

  test("Lock without a lease runs on a new 60 s lease; on a missing lease it fails as etcd", async () => {
    const r = await client.lock("nolease", 0n);
    const lease = BigInt(`0x${text(r.key).slice("nolease/".length)}`);
    const ttl = await client.timeToLive(lease);
    assert.equal(ttl.grantedTTL, 60);
    await client.revoke(lease);
    await rejectsWith(
      client.lock("nolease", 0x7fff_0000_1234n),
      GrpcStatus.UNKNOWN,
      "etcdserver: requested lease not found",
    );
    await rejectsWith(
      client.unlock(new Uint8Array(0)),
      GrpcStatus.UNKNOWN,
      "etcdserver: key is not provided",
    );
  });

  test("Campaign, Leader, Proclaim and Resign; errors as etcd's election server", async () => {
    await rejectsWith(client.leader("e1"), GrpcStatus.UNKNOWN, "election: no leader");
    const lease = await client.grant(30);
    const c = await client.campaign("e1", lease, "v1");
    assert.equal(text(c.leader!.name), "e1");
    assert.equal(text(c.leader!.key), `e1/${lease.toString(16)}`);
    assert.equal(c.leader!.lease, lease);
    assert.equal(c.leader!.rev, c.header!.revision);
    const l = await client.leader("e1");
    assert.equal(text(l.kv!.value), "v1");
    assert.equal(l.kv!.createRevision, c.leader!.rev);
    const p = await client.proclaim(c.leader, "v2");
    assert.equal(text((await client.leader("e1")).kv!.value), "v2");
    assert.ok(p.header!.revision > c.header!.revision);
    // a stale leader key (another create revision) is not the leader
    const stale = { ...c.leader!, rev: c.leader!.rev - 1 };
    await rejectsWith(client.proclaim(stale, "v3"), GrpcStatus.UNKNOWN, "election: not leader");
    await rejectsWith(
      client.proclaim(undefined, "v3"),
      GrpcStatus.UNKNOWN,
      '"leader" field must be provided',
    );
    await rejectsWith(
      client.resign(undefined),
      GrpcStatus.UNKNOWN,
      '"leader" field must be provided',
    );
    // etcd's Resign ignores whether the compare held: a stale key resigns "successfully", nothing changes
    await client.resign(stale);
    assert.equal(text((await client.leader("e1")).kv!.value), "v2");
    // campaigning again on the same lease keeps the key and proclaims the new value
    const again = await client.campaign("e1", lease, "v4");
    assert.equal(again.leader!.rev, c.leader!.rev);
    assert.equal(text((await client.leader("e1")).kv!.value), "v4");
    await client.resign(c.leader);
    await rejectsWith(client.leader("e1"), GrpcStatus.UNKNOWN, "election: no leader");
    await client.revoke(lease);
  });

  test("Observe sees each leader and each proclaimed value; a leader whose lease expires is followed by the next candidate", async () => {
    const seen: LeaderResponse[] = [];
    const obs = client.observe("e2", (r) => seen.push(r));
    try {
      const values = () => seen.map((r) => text(r.kv!.value));
      // a short lease nobody keeps alive: the first leader fails over when it expires
      const short = await client.grant(2);
      const long = await client.grant(30);
      const a = await client.campaign("e2", short, "a1");
      await waitFor("Observe to see a1", () => values().includes("a1"), 5000);
      await client.proclaim(a.leader, "a2");
      const startedMs = Date.now();
      const b = client.campaign("e2", long, "b1");
      await waitFor("Observe to see a2", () => values().includes("a2"), 5000);
      const elected = await within(b, 10_000);
      assert.ok(elected !== undefined, "b was not elected after a's lease expired");
      assert.ok(Date.now() - startedMs >= 1000, "b was elected before a's lease could expire");
      await waitFor("Observe to see b1", () => values().includes("b1"), 5000);
      assert.deepEqual(values(), ["a1", "a2", "b1"]);
      assert.equal(seen[2]!.kv!.createRevision, elected.leader!.rev);
      assert.ok(seen[1]!.header!.revision < seen[2]!.header!.revision);
      await rejectsWith(
        client.proclaim(a.leader, "a3"),
        GrpcStatus.UNKNOWN,
        "election: not leader",
      );
      await client.resign(elected.leader);
      await client.revoke(long);
    } finally {
      obs.cancel();
      await obs.ended;
    }
  });

  test("a campaign whose call ends resigns: its key is deleted", async () => {
    const [leader, candidate] = await Promise.all([client.grant(30), client.grant(30)]);
    await client.campaign("e3", leader, "l");
    await assert.rejects(client.campaign("e3", candidate, "c", 500));
    await waitFor(
      "the candidate's key to go",
      async () => (await client.keys("e3/")).length === 1,
      5000,
    );
    await client.revoke(leader);
    await client.revoke(candidate);
  });
});

describe("Lock and Election services with auth on", { timeout: 60_000 }, () => {
  let member: Member;
  let user: ConcurrencyClient;
  let anonymous: ConcurrencyClient;

  before(async () => {
    member = await startMember();
    const setup = [
      ["user", "add", "root:pw"],
      ["user", "add", "u:pw"],
      ["role", "add", "r"],
      ["role", "grant-permission", "r", "readwrite", "--prefix=true", "lk/"],
      ["user", "grant-role", "u", "r"],
      ["auth", "enable"],
    ];
    for (const args of setup) {
      const r = await etcdctl(args, { member });
      assert.equal(r.code, 0, `etcdctl ${args.join(" ")}: ${r.stderr}`);
    }
    user = new ConcurrencyClient(member.hostPort);
    await user.authenticate("u", "pw");
    anonymous = new ConcurrencyClient(member.hostPort);
  });
  after(async () => {
    user?.close();
    anonymous?.close();
    await member?.close();
  });

  test("each step runs with the caller's credentials, as etcd's servers pass them on", async () => {
    const lease = await user.grant(30);
    const held = await user.lock("lk", lease);
    assert.equal(text(held.key), `lk/${lease.toString(16)}`);
    const denied = "etcdserver: permission denied";
    await rejectsWith(user.lock("other", lease), GrpcStatus.UNKNOWN, denied);
    await rejectsWith(
      anonymous.lock("lk", lease),
      GrpcStatus.UNKNOWN,
      "etcdserver: user name is empty",
    );
    await rejectsWith(user.leader("other"), GrpcStatus.UNKNOWN, denied);
    await rejectsWith(user.unlock(Buffer.from("other/1")), GrpcStatus.UNKNOWN, denied);
    // a watch the user may not open ends Observe without an error, as etcd's observe loop does
    const obs = user.observe("other", () => assert.fail("no answer was expected"));
    const ended = await within(
      obs.ended.then(() => true),
      5000,
    );
    assert.equal(ended, true, "Observe did not end");
    await user.unlock(held.key);
  });
});
