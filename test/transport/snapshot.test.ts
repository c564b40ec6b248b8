// Snapshots travel on their own connection in chunks with flow control (DESIGN §6): a large
// payload streams to a slow consumer while heartbeats keep arriving on the message connection;
// a MsgSnap given to send() arrives whole when there is no consumer; the sender's raft hears
// "finish" or "failure" (plus unreachable) as etcd's snapshot sender reports them.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { type Message, MessageType } from "../../lib/proto/gen/raftpb/raft.js";
import { freePort, prng, sleep, testSeed, waitFor } from "../helpers/server.js";
import { mesh, metricValue, msg, peerPool, snapMsg, waitConnected } from "./harness.js";

const start = peerPool();

/** `totalBytes` of seeded pseudo-random data in pieces of `pieceBytes`. */
function* payload(seed: number, totalBytes: number, pieceBytes: number): Generator<Uint8Array> {
  const rnd = prng(seed);
  for (let off = 0; off < totalBytes; off += pieceBytes) {
    const b = new Uint8Array(Math.min(pieceBytes, totalBytes - off));
    for (let i = 0; i < b.length; i += 4096) b[i] = Math.floor(rnd() * 256);
    yield b;
  }
}

function sha256(chunks: Iterable<Uint8Array>): string {
  const h = createHash("sha256");
  for (const c of chunks) h.update(c);
  return h.digest("hex");
}

describe("snapshots on their own connection", { timeout: 120_000 }, () => {
  test("a large snapshot streams to a slow consumer while heartbeats keep arriving", async (t) => {
    const seed = testSeed();
    t.diagnostic(`SEED=${seed}`);
    const totalBytes = 48 * 1024 * 1024;
    const heartbeatsAt: number[] = [];
    let consumed = createHash("sha256");
    let consumedBytes = 0;
    let consumerStartMs = 0;
    let consumerEndMs = 0;
    let received: Message | undefined;
    // How far the sender's reads of its payload ran ahead of the consumer: flow control keeps
    // this to socket buffers plus the receiver's bound, not the whole payload.
    let generatedBytes = 0;
    let maxLeadBytes = 0;
    function* counted(chunks: Iterable<Uint8Array>): Generator<Uint8Array> {
      for (const c of chunks) {
        generatedBytes += c.length;
        yield c;
      }
    }
    const a = await start(1n);
    const b = await start(2n, {
      onMessage: (m) => {
        if (m.type === MessageType.MsgHeartbeat) heartbeatsAt.push(performance.now());
      },
      onSnapshot: async (m, chunks) => {
        received = m;
        consumerStartMs = performance.now();
        consumed = createHash("sha256");
        let sinceSleep = 0;
        for await (const c of chunks) {
          consumed.update(c);
          consumedBytes += c.length;
          maxLeadBytes = Math.max(maxLeadBytes, generatedBytes - consumedBytes);
          sinceSleep += c.length;
          // A slow disk: 5 ms per MiB, so the sender must wait for the consumer.
          if (sinceSleep >= 1024 * 1024) {
            sinceSleep = 0;
            await sleep(5);
          }
        }
        consumerEndMs = performance.now();
      },
    });
    mesh([a, b]);
    await waitConnected([a, b]);
    const heartbeat = setInterval(
      () => a.transport.send([msg(1n, 2n, MessageType.MsgHeartbeat)]),
      10,
    );
    try {
      a.transport.sendSnapshot(snapMsg(1n, 2n, 42), counted(payload(seed, totalBytes, 256 * 1024)));
      await waitFor("snapshot reported", () => a.snapshots.length === 1, 90_000);
    } finally {
      clearInterval(heartbeat);
    }
    assert.deepEqual(a.snapshots, [{ id: 2n, status: "finish" }]);
    assert.equal(consumedBytes, totalBytes);
    assert.equal(consumed.digest("hex"), sha256(payload(seed, totalBytes, 256 * 1024)));
    assert.equal(received?.snapshot?.metadata?.index, 42);
    assert.equal(received?.snapshot?.data.length, 0, "the payload is not in the message");
    // Heartbeats kept arriving while the snapshot was streaming. No timing is asserted; the
    // largest gap is printed for the reader.
    const during = heartbeatsAt.filter((x) => x >= consumerStartMs && x <= consumerEndMs);
    let maxGapMs = 0;
    for (let i = 1; i < during.length; i++)
      maxGapMs = Math.max(maxGapMs, during[i]! - during[i - 1]!);
    t.diagnostic(
      `snapshot ${totalBytes} bytes in ${Math.round(consumerEndMs - consumerStartMs)} ms; ` +
        `${during.length} heartbeats during it, largest gap ${maxGapMs.toFixed(1)} ms; ` +
        `sender at most ${(maxLeadBytes / 1048576).toFixed(1)} MiB ahead of the consumer`,
    );
    assert.ok(maxLeadBytes < totalBytes / 2, `sender ran ${maxLeadBytes} bytes ahead`);
    assert.ok(during.length >= 5, `only ${during.length} heartbeats arrived during the snapshot`);
    assert.equal(await metricValue(a, "etcd_network_snapshot_send_success", { To: "2" }), 1);
    assert.equal(await metricValue(b, "etcd_network_snapshot_receive_success", { From: "1" }), 1);
    assert.equal(
      await metricValue(a, "etcd_network_snapshot_send_inflights_total", { To: "2" }),
      0,
    );
  });

  test("a MsgSnap given to send() arrives whole in onMessage when there is no consumer", async () => {
    const a = await start(1n, { limits: { snapshotChunkBytes: 1000 } });
    const b = await start(2n);
    mesh([a, b]);
    const data = new Uint8Array(100_000).map((_, i) => i % 251);
    a.transport.send([snapMsg(1n, 2n, 7, data)]);
    await waitFor("snapshot delivered", () => b.received.length === 1);
    const m = b.received[0]!;
    assert.equal(m.type, MessageType.MsgSnap);
    assert.equal(m.snapshot?.metadata?.index, 7);
    assert.deepEqual(m.snapshot?.data, data);
    await waitFor("finish reported", () => a.snapshots.length === 1);
    assert.deepEqual(a.snapshots, [{ id: 2n, status: "finish" }]);
  });

  test("a consumer that fails makes the sender report failure and unreachable", async () => {
    const a = await start(1n);
    const b = await start(2n, {
      onSnapshot: async (_m, chunks) => {
        for await (const _c of chunks) throw new Error("disk full");
      },
    });
    mesh([a, b]);
    const totalBytes = 64 * 1024 * 1024;
    let readBytes = 0;
    function* counted(): Generator<Uint8Array> {
      for (const c of payload(1, totalBytes, 64 * 1024)) {
        readBytes += c.length;
        yield c;
      }
    }
    a.transport.sendSnapshot(snapMsg(1n, 2n, 9), counted());
    await waitFor("failure reported", () => a.snapshots.length === 1);
    // The sender stopped soon after the receiver said no, not after the whole payload.
    assert.ok(readBytes < totalBytes / 2, `sender read ${readBytes} bytes of its payload`);
    assert.deepEqual(a.snapshots, [{ id: 2n, status: "failure" }]);
    assert.ok(a.unreachable.includes(2n));
    assert.ok(
      a.log.entries.some(
        (e) =>
          e.msg === "failed to send database snapshot" && /disk full/.test(String(e.fields.error)),
      ),
    );
    assert.ok(b.log.entries.some((e) => /disk full/.test(String(e.fields.error))));
    assert.equal(await metricValue(a, "etcd_network_snapshot_send_failures", { To: "2" }), 1);
    // The message connection is unaffected.
    a.transport.send([msg(1n, 2n, MessageType.MsgHeartbeat)]);
    await waitFor("heartbeat after the failed snapshot", () => b.received.length === 1);
  });

  test("a consumer that stops reading early still finishes the exchange", async () => {
    const a = await start(1n);
    const b = await start(2n, {
      onSnapshot: async (_m, chunks) => {
        for await (const _c of chunks) break;
      },
    });
    mesh([a, b]);
    a.transport.sendSnapshot(snapMsg(1n, 2n, 9), payload(2, 8 * 1024 * 1024, 64 * 1024));
    await waitFor("reported", () => a.snapshots.length === 1);
    assert.deepEqual(a.snapshots, [{ id: 2n, status: "finish" }]);
  });

  test("a second snapshot while one is in flight is refused at once", async () => {
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => (release = r));
    const a = await start(1n);
    const b = await start(2n, {
      onSnapshot: async (_m, chunks) => {
        await gate;
        for await (const _c of chunks);
      },
    });
    mesh([a, b]);
    a.transport.sendSnapshot(snapMsg(1n, 2n, 1), payload(3, 1024 * 1024, 64 * 1024));
    a.transport.sendSnapshot(snapMsg(1n, 2n, 2), payload(4, 1024, 1024));
    assert.deepEqual(a.snapshots, [{ id: 2n, status: "failure" }]);
    release();
    await waitFor("first snapshot finishes", () => a.snapshots.length === 2);
    assert.deepEqual(a.snapshots[1], { id: 2n, status: "finish" });
  });

  test("a snapshot to a peer that is down fails and is reported", async () => {
    const a = await start(1n);
    a.transport.addPeer(2n, [`http://127.0.0.1:${await freePort()}`]);
    a.transport.sendSnapshot(snapMsg(1n, 2n, 3), new Uint8Array(10));
    await waitFor("failure reported", () => a.snapshots.length === 1);
    assert.deepEqual(a.snapshots, [{ id: 2n, status: "failure" }]);
    assert.ok(a.unreachable.includes(2n));
  });

  test("a payload over the receiver's bound fails the snapshot", async () => {
    const a = await start(1n);
    const b = await start(2n, { limits: { maxInlineSnapshotBytes: 100_000 } });
    mesh([a, b]);
    a.transport.send([snapMsg(1n, 2n, 5, new Uint8Array(200_000))]);
    await waitFor("failure reported", () => a.snapshots.length === 1);
    assert.deepEqual(a.snapshots, [{ id: 2n, status: "failure" }]);
    assert.equal(b.received.length, 0);
  });
});
