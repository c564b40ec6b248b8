// Real clients' lock and election recipes against a spawned member. They run on the client side
// (txns on create revisions, leases, watches), so they test the KV, Lease and Watch semantics
// those recipes rely on: the `etcd3` npm client's Lock and Election, python3-etcd3's Lock, and
// `etcdctl lock` / `etcdctl elect` (client-side in etcd 3.4's etcdctl).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { EtcdLockFailedError, type Etcd3 } from "etcd3";
import { etcdctl, python3, startMember, waitFor, within, type Member } from "../helpers/server.js";
import { closeClient, newClient } from "../helpers/client.js";

describe("client-side lock and election recipes", { timeout: 90_000 }, () => {
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

  test("etcd3 npm: a held lock refuses a second acquire until it is released", async () => {
    const first = client.lock("npm-lock").ttl(10);
    await first.acquire();
    const leaseId = await first.leaseId();
    assert.ok(leaseId !== null && leaseId !== "");
    await assert.rejects(client.lock("npm-lock").ttl(10).acquire(), EtcdLockFailedError);
    await first.release();
    const result = await client
      .lock("npm-lock")
      .ttl(10)
      .do(async () => "ran under the lock");
    assert.equal(result, "ran under the lock");
    assert.equal(await client.get("npm-lock").string(), null, "do() released the lock");
  });

  test("etcd3 npm: election campaign, leader, observe, proclaim and resign", async () => {
    const election = client.election("npm-election", 5);
    const observer = await election.observe();
    const changes: (string | undefined)[] = [];
    observer.on("change", (v) => changes.push(v));
    try {
      const a = election.campaign("a");
      await a.wait();
      assert.equal(await election.leader(), "a");
      const b = election.campaign("b");
      assert.equal(await within(b.wait(), 300), undefined, "b is elected while a leads");
      await a.proclaim("a2");
      await waitFor("the observer to see a2", () => changes.includes("a2"), 5000);
      await a.resign();
      await within(b.wait(), 10_000);
      assert.equal(await election.leader(), "b");
      await waitFor("the observer to see b", () => changes.includes("b"), 5000);
      await b.resign();
    } finally {
      await observer.cancel();
    }
  });

  test("python3-etcd3: lock acquire, contention, release, context manager", async () => {
    // Debian's python3-etcd3 0.12 passes tenacity 8 an old-style wait function, so an acquire
    // that has to wait dies in the client (TypeError) against any server: contention is tried
    // with timeout=0, which gives up before waiting.
    const script = `\
import json, etcd3
c = etcd3.client(host='127.0.0.1', port=${member.clientPort})
out = {}
l1 = c.lock('py-lock', ttl=10)
out['first'] = l1.acquire(timeout=2)
out['held'] = l1.is_acquired()
l2 = c.lock('py-lock', ttl=10)
out['second_while_held'] = l2.acquire(timeout=0)
out['release'] = l1.release()
out['second_after_release'] = l2.acquire(timeout=0)
l2.release()
with c.lock('py-ctx', ttl=10) as l3:
    out['ctx_held'] = l3.is_acquired()
out['ctx_after'] = l3.is_acquired()
print(json.dumps(out))
`;
    const r = await python3(script, { timeoutMs: 30_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), {
      first: true,
      held: true,
      second_while_held: false,
      release: true,
      second_after_release: true,
      ctx_held: true,
      ctx_after: false,
    });
  });

  test("etcdctl lock: two commands under the same lock run one after the other", async () => {
    const cmd = "date +%s%N; sleep 0.5; date +%s%N";
    const [a, b] = await Promise.all(
      [0, 1].map(() =>
        etcdctl(["lock", "ctl-lock", "--", "sh", "-c", cmd], { member, timeoutMs: 20_000 }),
      ),
    );
    const spans = [a!, b!].map((r) => {
      assert.equal(r.code, 0, r.stderr);
      const [start, end] = r.stdout.trim().split("\n").map(BigInt);
      return { start: start!, end: end! };
    });
    spans.sort((x, y) => (x.start < y.start ? -1 : 1));
    assert.ok(spans[0]!.end <= spans[1]!.start, "the two critical sections overlapped");
    const keys = await client.getAll().prefix("ctl-lock/").keys();
    assert.deepEqual(keys, [], "etcdctl released its key");
  });

  test("etcdctl elect: a proposal leads and `elect -l` observes it", async () => {
    const leader = etcdctl(["elect", "ctl-elect", "p1"], {
      member,
      timeoutMs: 15_000,
      until: (out) => out.includes("p1"),
    });
    const led = await leader;
    assert.match(led.stdout, /^ctl-elect\/[0-9a-f]+\np1\n/);
    // etcdctl was killed while leading: its lease (60 s) keeps the key; a listener sees it
    const listen = await etcdctl(["elect", "-l", "ctl-elect"], {
      member,
      timeoutMs: 15_000,
      until: (out) => out.includes("p1"),
    });
    assert.match(listen.stdout, /^ctl-elect\/[0-9a-f]+\np1\n/);
  });
});
