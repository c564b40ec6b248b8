// Issue 12: lib/h2's defences (keepalive enforcement, rapid reset, SETTINGS and control-frame
// floods, slow readers) spare every real client under heavy load, not only grpc-go (see
// go-clients.test.ts and etcd-benchmark.test.ts): python grpcio (python3-etcd3: C-core, which
// sends BDP pings as grpc-go does), grpc-js (the etcd3 npm client) and nghttp2's h2load, each with
// a watcher or many concurrent streams on one connection. The member must close no connection
// for an error (etcd_ts_grpc_connection_errors_total stays empty) and every request succeeds.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Etcd3 } from "etcd3";
import * as rpc from "../../lib/proto/gen/etcdserverpb/rpc.js";
import { connectionErrorLines, python3, run, startMember, type Member } from "../helpers/server.js";

describe("real clients under load keep their connections", { timeout: 240_000 }, () => {
  let member: Member;
  before(async () => {
    member = await startMember({ name: "load-clients" });
  });
  after(async () => {
    await member?.close();
  });

  test("python3-etcd3 (grpcio): 4 threads put 3,000 keys on one channel while it watches them", async () => {
    const script = `\
import sys, threading
import etcd3
THREADS, PER = 4, 750
client = etcd3.client(host='127.0.0.1', port=${member.clientPort}, timeout=30)
events, done = [], threading.Event()
def on_events(resp):
    for ev in resp.events:
        events.append(ev.mod_revision)
    if len(events) >= THREADS * PER:
        done.set()
watch_id = client.add_watch_prefix_callback('/py/', on_events)
errors = []
def writer(t):
    try:
        for j in range(PER):
            client.put('/py/%d/%d' % (t, j), 'v')
    except Exception as e:
        errors.append(repr(e))
threads = [threading.Thread(target=writer, args=(t,)) for t in range(THREADS)]
for t in threads: t.start()
for t in threads: t.join(120)
done.wait(60)
client.cancel_watch(watch_id)
revs = sorted(events)
contiguous = all(b == a + 1 for a, b in zip(revs, revs[1:]))
print(len(events), len(set(events)), contiguous, len(errors), errors[:3])
sys.stdout.flush()
`;
    const r = await python3(script, { timeoutMs: 180_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), "3000 3000 True 0 []");
  });

  test("etcd3 npm (grpc-js): 3,000 puts 256 at a time on one client while it watches them", async () => {
    const client = new Etcd3({ hosts: member.endpoint });
    try {
      const total = 3_000;
      const seen = new Set<string>();
      const watcher = await client.watch().prefix("/js/").create();
      const all = new Promise<void>((resolve) =>
        watcher.on("put", (kv) => {
          seen.add(kv.mod_revision);
          if (seen.size === total) resolve();
        }),
      );
      for (let base = 0; base < total; base += 256) {
        const n = Math.min(256, total - base);
        await Promise.all(
          Array.from({ length: n }, (_, i) => client.put(`/js/${base + i}`).value("v")),
        );
      }
      await Promise.race([all, new Promise((r) => setTimeout(r, 60_000))]);
      assert.equal(seen.size, total);
      await watcher.cancel();
    } finally {
      client.close();
    }
  });

  test(
    "h2load (nghttp2): 20,000 Range calls, 100 concurrent streams on each of 4 connections",
    { skip: existsSync("/usr/bin/h2load") ? false : "nghttp2-client not installed" },
    async () => {
      const dir = mkdtempSync(join(tmpdir(), "load-h2load-"));
      try {
        const body = join(dir, "range.bin");
        const msg = rpc.RangeRequest.toBinary(
          rpc.RangeRequest.create({ key: Buffer.from("/js/1") }),
        );
        const framed = Buffer.alloc(5 + msg.length);
        framed.writeUInt32BE(msg.length, 1);
        framed.set(msg, 5);
        writeFileSync(body, framed);
        const r = await run(
          "/usr/bin/h2load",
          [
            "-n",
            "20000",
            "-c",
            "4",
            "-m",
            "100",
            "-d",
            body,
            "-H",
            "content-type: application/grpc",
            "-H",
            "te: trailers",
            `http://127.0.0.1:${member.clientPort}/etcdserverpb.KV/Range`,
          ],
          { timeoutMs: 120_000 },
        );
        assert.equal(r.code, 0, r.stderr + r.stdout);
        assert.match(r.stdout, /20000 succeeded, 0 failed, 0 errored/);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );

  test("the member closed no client connection for an error", async () => {
    assert.deepEqual(await connectionErrorLines(member), []);
    assert.doesNotMatch(member.logTail(1024 * 1024), /closed a client connection/);
  });
});
