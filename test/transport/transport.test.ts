// lib/transport over plain TCP on loopback: frames round trip between two and three members,
// hello checks refuse a wrong cluster, a wrong receiver, an unknown or removed member and another
// protocol version (seen on both sides), full queues drop and count, a restarted peer is
// reconnected (at once when it dials in during the backoff), and the etcd_network_* metrics are
// exposed.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { MessageType } from "../../lib/proto/gen/raftpb/raft.js";
import {
  HelloStatus,
  StreamKind,
  decodeHelloReplyHeader,
  encodeHello,
} from "../../lib/transport/hello.js";
import {
  PeerTlsConfigError,
  PeerIdError,
  PeerTransport,
  PeerUrlError,
} from "../../lib/transport/index.js";
import { freePort, sleep, waitFor } from "../helpers/server.js";
import {
  captureLogger,
  closedWithin,
  mesh,
  metricValue,
  msg,
  peerPool,
  rawConnect,
  sendToAll,
  waitConnected,
} from "./harness.js";

const start = peerPool();

describe("peer transport over TCP", { timeout: 60_000 }, () => {
  test("messages round trip between two members in order, many per event-loop turn", async () => {
    const a = await start(1n);
    const b = await start(2n);
    mesh([a, b]);
    const n = 2000;
    // One send() call of n messages, before the links are even up: they queue, then flow.
    a.transport.send(
      Array.from({ length: n }, (_, i) =>
        msg(1n, 2n, MessageType.MsgApp, {
          index: i + 1,
          entries: [{ type: 0, term: 1, index: i + 1, data: new Uint8Array([i & 255, i >> 8]) }],
        }),
      ),
    );
    b.transport.send(
      Array.from({ length: n }, (_, i) => msg(2n, 1n, MessageType.MsgAppResp, { index: i + 1 })),
    );
    await waitFor(
      "all messages delivered",
      () => b.received.length === n && a.received.length === n,
    );
    assert.deepEqual(
      b.received.map((m) => m.index),
      Array.from({ length: n }, (_, i) => i + 1),
    );
    for (const m of b.received) {
      assert.equal(m.from, 1n);
      assert.equal(m.to, 2n);
      assert.equal(m.type, MessageType.MsgApp);
      assert.deepEqual([...m.entries[0]!.data], [(m.index - 1) & 255, (m.index - 1) >> 8]);
    }
    assert.ok(a.received.every((m, i) => m.from === 2n && m.index === i + 1));
    // Bytes sent by one side are the bytes received by the other (frames and length words).
    const sent = await metricValue(a, "etcd_network_peer_sent_bytes_total", { To: "2" });
    const got = await metricValue(b, "etcd_network_peer_received_bytes_total", { From: "1" });
    assert.ok(sent !== undefined && sent > 0);
    assert.equal(sent, got);
  });

  test("three members exchange messages in every direction", async () => {
    const ps = [await start(1n), await start(2n), await start(3n)];
    mesh(ps);
    await waitConnected(ps);
    sendToAll(ps, 50, (from, to, i) => msg(from, to, MessageType.MsgHeartbeat, { commit: i }));
    await waitFor("100 messages at each member", () => ps.every((p) => p.received.length === 100));
    for (const p of ps) {
      for (const other of ps) {
        if (other === p) continue;
        const fromOther = p.received.filter((m) => m.from === other.id).map((m) => m.commit);
        assert.deepEqual(
          fromOther,
          Array.from({ length: 50 }, (_, i) => i),
        );
      }
      assert.ok(p.received.every((m) => m.to === p.id));
    }
  });

  test("a member of another cluster is refused, and both sides say why", async () => {
    const a = await start(1n, { clusterId: 0xaaaan });
    const b = await start(2n, { clusterId: 0xbbbbn });
    a.transport.addPeer(2n, [b.url]);
    b.transport.addPeer(1n, [a.url]);
    await waitFor(
      "a sees the refusal",
      () => a.transport.peerStatus(2n)?.lastError?.code === "cluster-id-mismatch",
    );
    assert.match(a.transport.peerStatus(2n)!.lastError!.message, /cluster ID mismatch/);
    assert.equal(a.transport.peerStatus(2n)!.connected, false);
    const refusal = b.log.entries.find((e) => e.msg === "rejected peer connection");
    assert.ok(refusal, "the acceptor logs the refusal");
    assert.match(
      String(refusal.fields.reason),
      /cluster ID mismatch: local cluster id=bbbb, remote cluster id=aaaa/,
    );
    a.transport.send([msg(1n, 2n, MessageType.MsgHeartbeat)]);
    await sleep(100);
    assert.equal(b.received.length, 0);
  });

  test("a hello meant for another member is refused as a wrong receiver", async () => {
    const a = await start(1n);
    const b = await start(2n);
    b.transport.addPeer(1n, [a.url]);
    // a believes member 3 lives at b's URL.
    a.transport.addPeer(3n, [b.url]);
    await waitFor(
      "a sees the refusal",
      () => a.transport.peerStatus(3n)?.lastError?.code === "wrong-receiver",
    );
    assert.match(a.transport.peerStatus(3n)!.lastError!.message, /to field mismatch/);
    assert.ok(
      b.log.entries.some(
        (e) =>
          e.msg === "rejected peer connection" && /to field mismatch/.test(String(e.fields.reason)),
      ),
    );
  });

  test("an unknown member is refused until it is added as a peer", async () => {
    const a = await start(1n);
    const b = await start(2n);
    a.transport.addPeer(2n, [b.url]);
    await waitFor(
      "a sees the refusal",
      () => a.transport.peerStatus(2n)?.lastError?.code === "unknown-member",
    );
    assert.ok(
      b.log.entries.some((e) => /member 1 is not a peer of member 2/.test(String(e.fields.reason))),
    );
    // A message queued while the peer refuses fails with the next refused dial.
    a.transport.send([msg(1n, 2n, MessageType.MsgHeartbeat, { commit: 7 })]);
    await waitFor("the queued message failed", async () => {
      const v = await metricValue(a, "etcd_network_peer_sent_failures_total", { To: "2" });
      return v === 1;
    });
    assert.ok(a.unreachable.includes(2n));
    b.transport.addPeer(1n, [a.url]);
    await waitConnected([a, b]);
    a.transport.send([msg(1n, 2n, MessageType.MsgHeartbeat, { commit: 8 })]);
    await waitFor("heartbeat delivered after b adds a", () => b.received.length === 1);
    assert.deepEqual(
      b.received.map((m) => m.commit),
      [8],
    );
  });

  test("a removed member is refused, told it was removed, and its stream is closed", async () => {
    const a = await start(1n);
    const b = await start(2n);
    mesh([a, b]);
    await waitConnected([a, b]);
    b.transport.removePeer(1n);
    await waitFor("a is told it was removed", () => a.removedBy.includes(2n));
    assert.equal(a.transport.peerStatus(2n)?.lastError?.code, "member-removed");
    assert.ok(
      b.log.entries.some(
        (e) => e.fields.reason === "the member has been permanently removed from the cluster",
      ),
    );
    assert.throws(() => b.transport.addPeer(1n, [a.url]), PeerIdError);
    a.transport.send([msg(1n, 2n, MessageType.MsgHeartbeat)]);
    await sleep(100);
    assert.equal(b.received.length, 0);
  });

  test("a hello with another protocol version or stream kind is refused", async () => {
    const b = await start(2n);
    b.transport.addPeer(1n, ["http://127.0.0.1:1"]);
    const raw = await rawConnect(b.url);
    raw.socket.write(
      encodeHello({ version: 2, kind: StreamKind.Message, clusterId: 0x1000n, from: 1n, to: 2n }),
    );
    assert.ok(await closedWithin(raw, 3000));
    const reply = Buffer.concat(raw.received);
    const header = decodeHelloReplyHeader(reply);
    assert.ok(typeof header !== "string");
    assert.equal(header.reply.status, HelloStatus.VersionMismatch);
    assert.match(reply.subarray(26).toString(), /protocol version 2 is not supported/);

    const raw2 = await rawConnect(b.url);
    const bad = encodeHello({
      version: 1,
      kind: StreamKind.Message,
      clusterId: 0x1000n,
      from: 1n,
      to: 2n,
    });
    bad.writeUInt8(9, 6);
    raw2.socket.write(bad);
    assert.ok(await closedWithin(raw2, 3000));
    const h2 = decodeHelloReplyHeader(Buffer.concat(raw2.received));
    assert.ok(typeof h2 !== "string");
    assert.equal(h2.reply.status, HelloStatus.BadHello);
  });

  test("a full queue drops new messages, counts them and reports the peer unreachable", async () => {
    const deadPort = await freePort();
    const a = await start(1n, {
      limits: {
        maxQueuedMessagesPerPeer: 10,
        reconnectBackoffInitialMs: 5000,
        reconnectBackoffMaxMs: 5000,
      },
    });
    a.transport.addPeer(2n, [`http://127.0.0.1:${deadPort}`]);
    a.transport.send(
      Array.from({ length: 25 }, (_, i) => msg(1n, 2n, MessageType.MsgApp, { index: i })),
    );
    assert.equal(a.transport.peerStatus(2n)!.queuedMessages, 10);
    await waitFor("unreachable reported", () => a.unreachable.includes(2n));
    assert.equal(
      await metricValue(a, "etcd_ts_network_peer_dropped_messages_total", { To: "2" }),
      15,
    );
    // The 15 dropped, then the 10 queued when the dial failed: all count as send failures.
    await waitFor("queued messages failed with the dial", async () => {
      const v = await metricValue(a, "etcd_network_peer_sent_failures_total", { To: "2" });
      return v === 25;
    });
    assert.equal(a.transport.peerStatus(2n)!.queuedMessages, 0);
    assert.ok(
      a.log.entries.some(
        (e) => e.msg === "dropped internal Raft message since sending buffer is full",
      ),
    );
  });

  test("a byte bound on the queue drops too", async () => {
    const deadPort = await freePort();
    const a = await start(1n, { limits: { maxQueuedBytesPerPeer: 10_000 } });
    a.transport.addPeer(2n, [`http://127.0.0.1:${deadPort}`]);
    const big = new Uint8Array(3000);
    a.transport.send(
      Array.from({ length: 5 }, (_, i) =>
        msg(1n, 2n, MessageType.MsgApp, {
          index: i,
          entries: [{ type: 0, term: 1, index: i, data: big }],
        }),
      ),
    );
    assert.equal(a.transport.peerStatus(2n)!.queuedMessages, 3);
    assert.equal(
      await metricValue(a, "etcd_ts_network_peer_dropped_messages_total", { To: "2" }),
      2,
    );
  });

  test("a peer that restarts is reconnected", async () => {
    const a = await start(1n);
    let b = await start(2n);
    mesh([a, b]);
    await waitConnected([a, b]);
    a.transport.send([msg(1n, 2n, MessageType.MsgHeartbeat, { commit: 1 })]);
    await waitFor("first heartbeat", () => b.received.length === 1);
    const url = b.url;
    await b.transport.stop();
    await waitFor("a notices", () => a.transport.peerStatus(2n)?.connected === false);
    assert.ok(a.unreachable.includes(2n), "losing the connection reports the peer unreachable");
    b = await start(2n, { listenUrl: url });
    b.transport.addPeer(1n, [a.url]);
    await waitConnected([a, b]);
    a.transport.send([msg(1n, 2n, MessageType.MsgHeartbeat, { commit: 2 })]);
    await waitFor("heartbeat after the restart delivered", () => b.received.length === 1);
    assert.equal(b.received[0]!.commit, 2);
    assert.ok(
      a.log.entries.some((e) => e.msg === "lost TCP streaming connection with remote peer"),
    );
    assert.ok(
      a.log.entries.filter((e) => e.msg === "established TCP streaming connection with remote peer")
        .length >= 2,
    );
    assert.equal(
      await metricValue(a, "etcd_network_disconnected_peers_total", { Local: "1", Remote: "2" }),
      1,
    );
  });

  test("a peer that comes back and dials in is dialed at once, not after the backoff", async () => {
    // a's first dial to 2 finds nothing listening: its next try is 4-6 s away
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const a = await start(1n, {
      limits: { reconnectBackoffInitialMs: 5_000, reconnectBackoffMaxMs: 5_000 },
    });
    a.transport.addPeer(2n, [url]);
    await waitFor(
      "a's first dial failed",
      () => a.transport.peerStatus(2n)?.lastError !== undefined,
    );
    const b = await start(2n, { listenUrl: url });
    b.transport.addPeer(1n, [a.url]);
    const upAt = Date.now();
    // b's stream into a tells a that 2 is up: a dials it now
    await waitFor("a connected to 2", () => a.transport.peerStatus(2n)?.connected === true, 2_000);
    assert.ok(Date.now() - upAt < 2_000);
    a.transport.send([msg(1n, 2n, MessageType.MsgHeartbeat, { commit: 3 })]);
    await waitFor("heartbeat delivered", () => b.received.length === 1);
  });

  test("a peer's URLs are tried in turn until one answers", async () => {
    const deadPort = await freePort();
    const a = await start(1n);
    const b = await start(2n);
    b.transport.addPeer(1n, [a.url]);
    a.transport.addPeer(2n, [`http://127.0.0.1:${deadPort}`, b.url]);
    await waitFor("a connected", () => a.transport.peerStatus(2n)?.connected === true);
    assert.equal(a.transport.peerStatus(2n)?.lastError?.code, "dial-failed");
    a.transport.send([msg(1n, 2n, MessageType.MsgHeartbeat)]);
    await waitFor("delivered through the second URL", () => b.received.length === 1);
  });

  test("round-trip time and active peers are measured under etcd's names", async () => {
    const a = await start(1n);
    const b = await start(2n);
    mesh([a, b]);
    await waitConnected([a, b]);
    await waitFor("a ping answered", async () => {
      const v = await metricValue(a, "etcd_network_peer_round_trip_time_seconds_count", {
        To: "2",
      });
      return v !== undefined && v > 0;
    });
    assert.equal(await metricValue(a, "etcd_network_active_peers", { Local: "1", Remote: "2" }), 1);
    const text = await a.transport.metrics.registry.metrics();
    for (const name of [
      "etcd_network_peer_sent_bytes_total",
      "etcd_network_peer_received_bytes_total",
      "etcd_network_peer_sent_failures_total",
      "etcd_network_peer_received_failures_total",
      "etcd_network_peer_round_trip_time_seconds",
      "etcd_ts_network_peer_dropped_messages_total",
      "etcd_network_snapshot_send_success",
    ])
      assert.match(text, new RegExp(`# TYPE ${name} `));
  });

  test("bad options are refused with typed errors", async () => {
    const logger = captureLogger();
    const base = {
      memberId: 1n,
      clusterId: 1n,
      listenUrls: ["http://127.0.0.1:0"],
      logger,
      onMessage: () => {},
      reportUnreachable: () => {},
      reportSnapshot: () => {},
    };
    assert.throws(() => new PeerTransport({ ...base, memberId: 0n }), PeerIdError);
    assert.throws(
      () => new PeerTransport({ ...base, listenUrls: ["ftp://127.0.0.1:1"] }),
      PeerUrlError,
    );
    assert.throws(
      () => new PeerTransport({ ...base, listenUrls: ["http://127.0.0.1"] }),
      PeerUrlError,
    );
    assert.throws(
      () => new PeerTransport({ ...base, listenUrls: ["https://127.0.0.1:0"] }),
      (err: unknown) =>
        err instanceof PeerTlsConfigError &&
        /--peer-cert-file and --peer-key-file/.test(err.message),
    );
    const a = await start(1n);
    assert.throws(() => a.transport.addPeer(2n, ["https://127.0.0.1:2380"]), PeerTlsConfigError);
    assert.throws(() => a.transport.addPeer(1n, ["http://127.0.0.1:2380"]), PeerIdError);
    assert.throws(() => a.transport.addPeer(2n, []), PeerIdError);
  });
});
