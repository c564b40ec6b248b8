// Requests made while a member knows no leader (issue 14), as etcd 3.4 answers them (a 3-member
// cluster, its leader killed and another member paused with SIGSTOP): a put waits for the
// election and succeeds once a leader exists, one whose client gave up first is never applied;
// with clientv3.WithRequireLeader's metadata (`hasleader: true`) a put, a serializable read and a
// watch fail at once with `etcdserver: no leader` (UNAVAILABLE), `etcdctl watch` (which sets it)
// ends at once, and a watch opened with it while a leader existed is ended so once the leader
// stays lost; with no quorum ever, a put ends at the request timeout with the context's own error
// (Unknown "context deadline exceeded") and a linearizable read with "etcdserver: request timed
// out". Passes against real etcd too (ETCD_TS_TARGET=etcd), which is where those answers were
// taken from.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import { type Outcome, client, metadata, put, unary } from "../helpers/grpc-calls.js";
import * as rpc from "../../lib/proto/gen/etcdserverpb/rpc.js";
import { type Member, etcdctl, skipOnGrpcJsAuthority, waitFor } from "../helpers/server.js";
import { type Cluster, startCluster } from "../helpers/cluster.js";

const electionTimeoutMs = 300;
const FAST = ["--heartbeat-interval", "30", "--election-timeout", String(electionTimeoutMs)];
/** The server's request timeout: etcd's 5 s + 2 election timeouts. */
const requestTimeoutMs = 5_000 + 2 * electionTimeoutMs;

const get = (c: grpc.Client, key: string, serializable: boolean, requireLeader: boolean) =>
  unary(
    c,
    "/etcdserverpb.KV/Range",
    rpc.RangeRequest,
    rpc.RangeResponse,
    { key: Buffer.from(key), serializable },
    requireLeader,
    requestTimeoutMs + 3_000,
  );

/** A watch on `key`: `created` resolves at its created response, `ended` with its final status. */
function watch(c: grpc.Client, key: string, requireLeader: boolean) {
  const started = Date.now();
  const call = c.makeBidiStreamRequest(
    "/etcdserverpb.Watch/Watch",
    (m: rpc.WatchRequest) => Buffer.from(rpc.WatchRequest.toBinary(m)),
    (b: Buffer) => rpc.WatchResponse.fromBinary(b),
    metadata(requireLeader),
    { deadline: Date.now() + 30_000 },
  );
  const created = new Promise<void>((resolve) => call.once("data", () => resolve()));
  const ended = new Promise<Outcome>((resolve) => {
    call.on("error", (e: grpc.ServiceError) =>
      resolve({ result: `${grpc.status[e.code]}: ${e.details}`, ms: Date.now() - started }),
    );
    call.on("end", () => resolve({ result: "ended", ms: Date.now() - started }));
  });
  call.on("data", () => undefined);
  call.write(
    rpc.WatchRequest.create({
      requestUnion: {
        oneofKind: "createRequest",
        createRequest: rpc.WatchCreateRequest.create({ key: Buffer.from(key) }),
      },
    }),
  );
  return { created, ended, cancel: () => call.cancel() };
}

const noLeader = "UNAVAILABLE: etcdserver: no leader";

describe("requests while no leader is known", { timeout: 90_000 }, () => {
  let c: Cluster;
  before(async () => {
    c = await startCluster({ extraArgs: FAST });
  });
  after(async () => {
    await c?.close();
  });

  test("wait for the election, or fail at once with hasleader, or time out without quorum", async (t) => {
    const lead = await c.leader();
    const [survivor, other] = c.members.filter((m) => m !== lead) as [Member, Member];
    const cl = client(survivor);
    let paused = false;
    try {
      assert.equal((await put(cl, "before", false, 5_000)).result, "ok");
      // a watch that requires a leader, opened while there is one
      const held = watch(cl, "w", true);
      await held.created;

      // the leader dies and the other follower is paused: the survivor knows no leader
      process.kill(other.pid, "SIGSTOP");
      paused = true;
      await lead.kill9();
      await waitFor(
        "the survivor has no leader",
        async () => (await c.status(survivor)).leader === 0n,
      );

      // with hasleader: refused at once, serializable reads and new watches included
      for (const r of [
        await put(cl, "k", true, 5_000),
        await get(cl, "k", true, true),
        await get(cl, "k", false, true),
      ]) {
        assert.equal(r.result, noLeader);
        assert.ok(r.ms < 1_000, `refused at once (${r.ms} ms)`);
      }
      const refused = watch(cl, "w", true);
      const refusal = await refused.ended;
      assert.equal(refusal.result, noLeader);
      assert.ok(refusal.ms < 1_000, `watch refused at once (${refusal.ms} ms)`);
      // etcdctl's watch asks for a leader (clientv3.WithRequireLeader): it ends at once
      if (skipOnGrpcJsAuthority === false) {
        const w = await etcdctl(["watch", "w"], { member: survivor, timeoutMs: 10_000 });
        assert.notEqual(w.code, 0);
        assert.match(w.stderr, /watch was canceled \(etcdserver: no leader\)/);
      }
      // without it, a serializable read is served
      assert.equal((await get(cl, "before", true, false)).result, "ok");

      // a put whose client gives up before any leader is known is never applied
      const abandoned = await put(cl, "abandoned", false, 300);
      assert.match(abandoned.result, /^DEADLINE_EXCEEDED/);
      // the watch that required a leader is ended once the leader stayed lost (3 checks, one per
      // election timeout); awaited while the other member is still paused, since the followers
      // elect a new leader within ms of its return (they forget a leader whose port refuses)
      const ended = await held.ended;
      t.diagnostic(`hasleader watch ended with ${ended.result} after ${ended.ms} ms`);
      assert.equal(ended.result, noLeader);
      // without it, a put waits for the election: the paused member back makes a quorum
      const waiting = put(cl, "during-election", false, requestTimeoutMs + 3_000);
      await new Promise((r) => setTimeout(r, 500));
      process.kill(other.pid, "SIGCONT");
      paused = false;
      const done = await waiting;
      t.diagnostic(`put sent during the election: ${done.result} after ${done.ms} ms`);
      assert.equal(done.result, "ok");
      assert.ok(done.ms > 500, "it waited for the election");
      const gone = await get(cl, "abandoned", false, false);
      assert.equal(gone.result, "ok");
      assert.equal(
        (gone.response as rpc.RangeResponse).count,
        0,
        "the abandoned put was not applied",
      );

      // no quorum ever: the put ends at its request timeout, a linearizable read likewise
      process.kill(other.pid, "SIGSTOP");
      paused = true;
      await waitFor(
        "the survivor has no leader",
        async () => (await c.status(survivor)).leader === 0n,
      );
      const [lost, read] = await Promise.all([
        put(cl, "lost", false, requestTimeoutMs + 3_000),
        get(cl, "k", false, false),
      ]);
      t.diagnostic(`put without quorum: ${lost.result} after ${lost.ms} ms`);
      t.diagnostic(`read without quorum: ${read.result} after ${read.ms} ms`);
      assert.equal(lost.result, "UNKNOWN: context deadline exceeded");
      assert.ok(lost.ms >= requestTimeoutMs - 200 && lost.ms < requestTimeoutMs + 2_000);
      assert.equal(read.result, "UNAVAILABLE: etcdserver: request timed out");
      assert.ok(read.ms >= requestTimeoutMs - 200 && read.ms < requestTimeoutMs + 2_000);
    } finally {
      cl.close();
      if (paused) process.kill(other.pid, "SIGCONT");
    }
  });
});
