// A 5-member etcd-ts cluster over peer and client TLS (issue 14): writes through every member; two
// members killed (the leader among them), the other three elect a leader and keep serving every
// acknowledged write; a third killed, the last two refuse writes and linearizable reads with
// etcd's errors while serializable reads still answer; the three restarted, every member holds
// the same history (HashKV) and every acknowledged write.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { type Member, type TlsFiles, etcdctl, generateTls, waitFor } from "../helpers/server.js";
import { type Cluster, sameHashKV, startCluster } from "../helpers/cluster.js";

const FAST = ["--heartbeat-interval", "50", "--election-timeout", "500"];
/** The server's request timeout with FAST: etcd's 5 s + 2 election timeouts. */
const requestTimeoutMs = 5_000 + 2 * 500;

function ctl(m: Member, args: string[], timeoutMs = 20_000) {
  return etcdctl(args, { member: m, timeoutMs });
}

describe("5-member cluster over TLS", { timeout: 180_000 }, () => {
  let tls: TlsFiles;
  let c: Cluster;

  before(async () => {
    tls = await generateTls();
    c = await startCluster({ size: 5, tls, extraArgs: FAST });
  });
  after(async () => {
    await c?.close();
    if (tls !== undefined) rmSync(tls.dir, { recursive: true, force: true });
  });

  test("survives two members down, refuses writes with three down, converges after restart", async (t) => {
    const acked = new Map<string, string>();
    const put = async (m: Member, key: string, value: string) => {
      const r = await ctl(m, ["put", key, value]);
      assert.equal(r.code, 0, `put ${key} on ${m.name}: ${r.stderr}`);
      acked.set(key, value);
    };
    /** Every acknowledged write, read linearizably (or serializably) through `m`. */
    const assertHasAcked = async (m: Member, consistency: "l" | "s" = "l") => {
      const r = await ctl(m, ["get", "k/", "--prefix", `--consistency=${consistency}`]);
      assert.equal(r.code, 0, `get on ${m.name}: ${r.stderr}`);
      const lines = r.stdout.trim().split("\n");
      const got = new Map<string, string>();
      for (let i = 0; i + 1 < lines.length; i += 2) got.set(lines[i]!, lines[i + 1]!);
      for (const [k, v] of acked) assert.equal(got.get(k), v, `${m.name}: ${k}`);
    };

    for (const m of c.members) await put(m, `k/${m.name}`, `through ${m.name}`);
    for (const m of c.members) await assertHasAcked(m);

    // two down, the leader among them: the other three elect and serve every acknowledged write
    const lead = await c.leader();
    const follower = c.members.find((m) => m !== lead)!;
    const killedAt = Date.now();
    await Promise.all([lead.kill9(), follower.kill9()]);
    const three = c.members.filter((m) => m !== lead && m !== follower);
    const lead3 = await c.leader(20_000, three);
    t.diagnostic(`${lead3.name} leads the three ${Date.now() - killedAt} ms after the kill`);
    for (const m of three) await put(m, `k/after2/${m.name}`, "v");
    for (const m of three) await assertHasAcked(m);

    // a third down (the new leader): no quorum; etcd's errors for writes and linearizable reads
    await lead3.kill9();
    const two = three.filter((m) => m !== lead3);
    await waitFor(
      "the last two have no leader",
      async () => (await Promise.all(two.map((m) => c.status(m)))).every((s) => s.leader === 0n),
      15_000,
    );
    // as etcd 3.4: a put waits for a leader until its request timeout and then fails with the
    // context's own error (Unknown "context deadline exceeded"); a linearizable read times out
    // ("etcdserver: request timed out", which etcdctl retries until its own deadline)
    const client = `--command-timeout=${Math.ceil(requestTimeoutMs / 1000) + 4}s`;
    const failedPut = await ctl(two[0]!, ["put", "k/lost", "x", client]);
    assert.notEqual(failedPut.code, 0, "a put without quorum failed");
    assert.match(failedPut.stderr, /code = Unknown desc = context deadline exceeded/);
    const failedGet = await ctl(two[1]!, ["get", "k/", "--prefix", client]);
    assert.notEqual(failedGet.code, 0, "a linearizable read without quorum failed");
    assert.match(failedGet.stderr, /etcdserver: request timed out/);
    for (const m of two) await assertHasAcked(m, "s");

    // the three back: one history on all five, with every acknowledged write
    await Promise.all([lead, follower, lead3].map((m) => m.restart()));
    await c.leader(20_000);
    await waitFor("HashKV equal on all five", () => sameHashKV(c.members), 30_000);
    for (const m of c.members) await assertHasAcked(m);
    const lost = await ctl(two[1]!, ["get", "k/lost", "--print-value-only"]);
    assert.equal(lost.code, 0, lost.stderr);
    t.diagnostic(`the put refused without quorum: ${lost.stdout.trim() || "(not applied)"}`);
  });
});
