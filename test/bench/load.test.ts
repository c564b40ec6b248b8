// The load generator (bench/load) against a member started here: every workload for a few hundred
// requests, over both transports, in one and in two processes; the hand-encoded requests match
// the generated protobuf codecs byte for byte; gRPC framing survives any chunking.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { startMember, repoRoot, testSeed, prng, type Member } from "../helpers/server.js";
import { TOOLS_TEST_TARGET } from "./target.js";
import {
  benchKey,
  defaultLoadOptions,
  formatLoadResult,
  framePut,
  frameRange,
  frameTxnPut,
  GrpcMessageParser,
  frameMessage,
  parseLoadArgs,
  runLoad,
  LoadUsageError,
  type LoadOptions,
} from "../../bench/load/index.js";
import { PutRequest, RangeRequest, TxnRequest } from "../../lib/proto/gen/etcdserverpb/rpc.js";

describe("bench/load encoding", () => {
  test("hand-encoded Put, Range and Txn bodies decode with the generated codecs", () => {
    const key = Buffer.from("k1");
    const value = Buffer.alloc(300, 7);
    const put = PutRequest.fromBinary(framePut(key, value, 5).subarray(5));
    assert.deepEqual(Buffer.from(put.key), key);
    assert.deepEqual(Buffer.from(put.value), value);
    assert.equal(put.lease, 5n);
    const range = RangeRequest.fromBinary(
      frameRange(Buffer.from("a"), Buffer.from("z"), true).subarray(5),
    );
    assert.equal(Buffer.from(range.rangeEnd).toString(), "z");
    assert.equal(range.serializable, true);
    assert.equal(
      RangeRequest.fromBinary(frameRange(Buffer.from("a"), Buffer.alloc(0), false).subarray(5))
        .serializable,
      false,
    );
    const txn = TxnRequest.fromBinary(
      frameTxnPut([
        { key, value },
        { key: Buffer.from("k2"), value },
      ]).subarray(5),
    );
    assert.equal(txn.success.length, 2);
    const op = txn.success[1]!.request;
    assert.equal(op.oneofKind, "requestPut");
    if (op.oneofKind === "requestPut")
      assert.equal(Buffer.from(op.requestPut.key).toString(), "k2");
  });

  test("benchKey writes Go's zig-zag varint into a zeroed key of key-size bytes", () => {
    assert.deepEqual([...benchKey(0, 4)], [0, 0, 0, 0]);
    assert.deepEqual([...benchKey(1, 4)], [2, 0, 0, 0]);
    assert.deepEqual([...benchKey(300, 4)], [0xd8, 0x04, 0, 0]);
    assert.equal(benchKey(1 << 30, 2).length, 5); // grows rather than truncating
  });

  test("gRPC message parser reassembles messages from any chunking", () => {
    const seed = testSeed();
    const rnd = prng(seed);
    const msgs = Array.from({ length: 50 }, (_, i) => Buffer.alloc(Math.floor(rnd() * 200), i));
    const wire = Buffer.concat(msgs.map((m) => frameMessage(m)));
    const p = new GrpcMessageParser();
    const out: Buffer[] = [];
    for (let off = 0; off < wire.length;) {
      const n = 1 + Math.floor(rnd() * 40);
      out.push(...p.push(wire.subarray(off, off + n)).map((b) => Buffer.from(b)));
      off += n;
    }
    assert.deepEqual(out, msgs, `SEED=${seed}`);
    assert.equal(p.pendingBytes, 0);
  });

  test("flags: etcd benchmark names, range positionals, and rejections", () => {
    const o = parseLoadArgs([
      "range",
      "foo",
      "fop",
      "--consistency=s",
      "--clients",
      "8",
      "--conns",
      "2",
      "--target-leader",
    ]);
    assert.equal(o.rangeKey, "foo");
    assert.equal(o.rangeEnd, "fop");
    assert.equal(o.consistency, "s");
    assert.equal(o.clients, 8);
    assert.equal(parseLoadArgs(["put", "--duration", "2m"]).durationSeconds, 120);
    assert.throws(() => parseLoadArgs(["put", "--bogus", "1"]), LoadUsageError);
    assert.throws(() => parseLoadArgs(["nope"]), LoadUsageError);
    assert.throws(() => parseLoadArgs(["put", "--clients", "0"]), LoadUsageError);
  });
});

describe(`bench/load against ${TOOLS_TEST_TARGET}`, { timeout: 120_000 }, () => {
  let m: Member;
  before(async () => {
    m = await startMember({ target: TOOLS_TEST_TARGET });
  });
  after(async () => {
    await m?.close();
  });

  const opts = (patch: Partial<LoadOptions>): LoadOptions => ({
    ...defaultLoadOptions(patch.workload ?? "put"),
    endpoints: [m.hostPort],
    ...patch,
  });

  for (const transport of ["raw", "http2", "grpc-js"] as const) {
    test(`put: 300 requests from 20 clients over 2 connections (${transport})`, async () => {
      const r = await runLoad(
        opts({
          workload: "put",
          total: 300,
          clients: 20,
          conns: 2,
          keySpaceSize: 1000,
          valSizeBytes: 64,
          transport,
        }),
      );
      assert.equal(r.errors, 0, formatLoadResult(r));
      assert.equal(r.requests, 300);
      assert.equal(r.latencyMs.count, 300);
      assert.ok(r.requestsPerSecond > 0);
      assert.ok(
        r.latencyMs.min <= r.latencyMs.p50 &&
          r.latencyMs.p50 <= r.latencyMs.p99 &&
          r.latencyMs.p99 <= r.latencyMs.max,
      );
    });
  }

  test("put with sequential keys writes exactly key-space-size distinct keys", async () => {
    const r = await runLoad(
      opts({
        workload: "put",
        total: 200,
        clients: 4,
        keySpaceSize: 50,
        sequentialKeys: true,
        keySizeBytes: 16,
      }),
    );
    assert.equal(r.errors, 0);
    const rr = await runLoad(
      opts({ workload: "range", total: 1, rangeKey: "\0", rangeEnd: "\x7f", consistency: "s" }),
    );
    assert.equal(rr.errors, 0);
  });

  test("range linearizable and serializable", async () => {
    for (const consistency of ["l", "s"] as const) {
      const r = await runLoad(
        opts({ workload: "range", total: 300, clients: 10, rangeKey: "foo", consistency }),
      );
      assert.equal(r.errors, 0);
      assert.equal(r.latencyMs.count, 300);
    }
  });

  test("txn-put with 3 puts per txn", async () => {
    const r = await runLoad(
      opts({ workload: "txn-put", total: 200, clients: 10, txnOps: 3, keySpaceSize: 100 }),
    );
    assert.equal(r.errors, 0, formatLoadResult(r));
    assert.equal(r.latencyMs.count, 200);
  });

  test("lease-keepalive: 300 keep-alives on 10 leases", async () => {
    const r = await runLoad(opts({ workload: "lease-keepalive", total: 300, clients: 10 }));
    assert.equal(r.errors, 0, formatLoadResult(r));
    assert.equal(r.latencyMs.count, 300);
  });

  test("watch: every put reaches every watcher of its key, with latency", async () => {
    const r = await runLoad(
      opts({
        workload: "watch",
        streams: 4,
        watchPerStream: 25,
        watchedKeyTotal: 5,
        putTotal: 200,
        clients: 4,
      }),
    );
    assert.equal(r.errors, 0, formatLoadResult(r));
    assert.ok(r.watch !== undefined);
    // 100 watchers over 5 keys = 20 per key; 200 puts over 5 keys: every put is seen 20 times.
    assert.equal(r.watch.expectedEvents, 200 * 20);
    assert.equal(r.watch.events, 200 * 20);
    assert.equal(r.latencyMs.count, 4000);
    assert.ok(r.watch.eventsPerSecond > 0);
  });

  test("--procs 2 merges both workers' histograms", async () => {
    const r = await runLoad(
      opts({ workload: "put", total: 400, clients: 10, conns: 2, procs: 2, keySpaceSize: 100 }),
    );
    assert.equal(r.procs, 2);
    assert.equal(r.errors, 0, formatLoadResult(r));
    assert.equal(r.requests, 400);
    assert.equal(r.latencyMs.count, 400);
    const w = await runLoad(
      opts({
        workload: "watch",
        streams: 4,
        watchPerStream: 10,
        watchedKeyTotal: 4,
        putTotal: 100,
        clients: 2,
        procs: 2,
      }),
    );
    assert.equal(w.errors, 0, formatLoadResult(w));
    assert.equal(w.watch?.events, 100 * 10);
  });

  test("--duration bounds a run by time", async () => {
    const t0 = Date.now();
    const r = await runLoad(
      opts({ workload: "range", durationSeconds: 1, clients: 4, consistency: "s" }),
    );
    const ms = Date.now() - t0;
    assert.ok(ms < 5000, `took ${ms} ms`);
    assert.ok(r.elapsedSeconds >= 0.9 && r.elapsedSeconds < 3, String(r.elapsedSeconds));
    assert.ok(r.requests > 0);
  });

  test("--rate paces requests", async () => {
    const r = await runLoad(opts({ workload: "put", total: 50, clients: 5, rate: 100 }));
    assert.ok(r.elapsedSeconds >= 0.4, `50 requests at 100/s took ${r.elapsedSeconds} s`);
  });

  test("CLI: --json output and exit 0; bad flag exits 1", async () => {
    const bin = join(repoRoot(), "dist", "tools", "etcd-ts-bench.js");
    const run = (args: string[]): Promise<{ code: number | null; out: string }> =>
      new Promise((resolve) => {
        const c = spawn(process.execPath, [bin, ...args], { stdio: ["ignore", "pipe", "pipe"] });
        let out = "";
        c.stdout.on("data", (d: Buffer) => (out += d.toString()));
        const t = setTimeout(() => c.kill("SIGKILL"), 30_000);
        c.on("close", (code) => {
          clearTimeout(t);
          resolve({ code, out });
        });
      });
    const ok = await run([
      "put",
      "--endpoints",
      m.hostPort,
      "--total",
      "100",
      "--clients",
      "5",
      "--json",
    ]);
    assert.equal(ok.code, 0);
    const j = JSON.parse(ok.out) as { requests: number; latencyMs: { p99: number } };
    assert.equal(j.requests, 100);
    assert.ok(j.latencyMs.p99 > 0);
    const text = await run(["range", "foo", "--endpoints", m.hostPort, "--total", "50"]);
    assert.equal(text.code, 0);
    assert.match(text.out, /Requests\/sec:/);
    assert.equal((await run(["put", "--nope"])).code, 1);
  });
});
