// Peer TLS with etcd's flags (--peer-cert-file, --peer-key-file, --peer-trusted-ca-file,
// --peer-client-cert-auth, --peer-cert-allowed-cn): three members over mutual TLS, a certificate
// from another CA or none at all refused, the allowed CN enforced in both directions (etcd checks
// it on the server and the client side), https:// URLs without certificates refused with a clear
// error, and a snapshot over TLS. Certificates are generated with openssl for the test.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, rmSync } from "node:fs";
import tls from "node:tls";
import { MessageType } from "../../lib/proto/gen/raftpb/raft.js";
import { type PeerTlsFiles, PeerTlsConfigError, PeerTransport } from "../../lib/transport/index.js";
import { sleep, waitFor } from "../helpers/server.js";
import {
  type PeerPki,
  type TestPeer,
  captureLogger,
  generatePeerPki,
  mesh,
  msg,
  peerPool,
  peerTlsFiles,
  sendToAll,
  snapMsg,
  waitConnected,
} from "./harness.js";

let pki: PeerPki;
const startPeerOf = peerPool();

before(() => {
  pki = generatePeerPki(["m1", "m2", "m3"]);
});
after(() => {
  if (pki !== undefined) rmSync(pki.dir, { recursive: true, force: true });
});

async function start(id: bigint, files: PeerTlsFiles): Promise<TestPeer> {
  return startPeerOf(id, { tls: files });
}

describe("peer TLS", { timeout: 60_000 }, () => {
  test("three members exchange messages over mutual TLS", async () => {
    const ps = [
      await start(1n, peerTlsFiles(pki, "m1")),
      await start(2n, peerTlsFiles(pki, "m2")),
      await start(3n, peerTlsFiles(pki, "m3")),
    ];
    for (const p of ps) assert.match(p.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    mesh(ps);
    await waitConnected(ps);
    sendToAll(ps, 20, (from, to, i) => msg(from, to, MessageType.MsgApp, { index: i }));
    await waitFor("40 messages at each member", () => ps.every((p) => p.received.length === 40));
    for (const p of ps) assert.ok(p.received.every((m) => m.to === p.id));
  });

  test("a snapshot travels over TLS", async () => {
    const a = await start(1n, peerTlsFiles(pki, "m1"));
    const b = await start(2n, peerTlsFiles(pki, "m2"));
    mesh([a, b]);
    const data = new Uint8Array(3 * 1024 * 1024).map((_, i) => (i * 7) % 256);
    a.transport.send([snapMsg(1n, 2n, 11, data)]);
    await waitFor("snapshot delivered", () => b.received.length === 1);
    assert.deepEqual(b.received[0]!.snapshot?.data, data);
    await waitFor("finish", () => a.snapshots.length === 1);
    assert.deepEqual(a.snapshots, [{ id: 2n, status: "finish" }]);
  });

  test("a member with a certificate from another CA is refused in the TLS handshake", async () => {
    const b = await start(2n, peerTlsFiles(pki, "m2"));
    // The intruder trusts our CA (so it would accept b) but its own certificate is not ours.
    const intruder = await start(1n, {
      certFile: pki.otherCert,
      keyFile: pki.otherKey,
      trustedCaFile: pki.caCert,
      clientCertAuth: true,
      allowedCn: "",
    });
    b.transport.addPeer(1n, [intruder.url]);
    intruder.transport.addPeer(2n, [b.url]);
    intruder.transport.send([msg(1n, 2n, MessageType.MsgHeartbeat)]);
    await waitFor("b logs the failed handshake", () =>
      b.log.entries.some((e) => e.msg === "rejected peer connection: TLS handshake failed"),
    );
    await waitFor(
      "the intruder records the failure",
      () => intruder.transport.peerStatus(2n)?.lastError !== undefined,
    );
    // b does not trust the intruder's server certificate either.
    await waitFor(
      "b cannot dial the intruder",
      () => b.transport.peerStatus(1n)?.lastError?.code === "dial-failed",
    );
    await sleep(200);
    assert.equal(b.received.length, 0);
    assert.equal(intruder.transport.peerStatus(2n)?.connected, false);
  });

  test("--peer-client-cert-auth refuses a client without a certificate", async () => {
    const b = await start(2n, peerTlsFiles(pki, "m2"));
    const u = new URL(b.url);
    const outcome = await new Promise<string>((resolve) => {
      const s = tls.connect({
        host: "127.0.0.1",
        port: Number(u.port),
        ca: readFileSync(pki.caCert),
      });
      s.on("error", (err) => resolve(`error: ${err.message}`));
      s.on("close", () => resolve("closed"));
      s.on("secureConnect", () => s.write(Buffer.alloc(32)));
      s.setTimeout(5000, () => resolve("timeout"));
    });
    assert.notEqual(outcome, "timeout");
    await waitFor("b logs the failed handshake", () =>
      b.log.entries.some((e) => e.msg === "rejected peer connection: TLS handshake failed"),
    );
  });

  test("--peer-cert-allowed-cn admits only that CN, in both directions", async () => {
    const b = await start(2n, peerTlsFiles(pki, "m2", { allowedCn: "m1" }));
    const good = await start(1n, peerTlsFiles(pki, "m1"));
    const other = await start(3n, peerTlsFiles(pki, "m3"));
    mesh([b, good, other]);
    good.transport.send([msg(1n, 2n, MessageType.MsgHeartbeat)]);
    other.transport.send([msg(3n, 2n, MessageType.MsgHeartbeat)]);
    await waitFor("m1's heartbeat arrives", () => b.received.some((m) => m.from === 1n));
    // m3's certificate is valid but its CN is not allowed: b's listener refuses it with a reason
    // m3 sees, and b will not dial m3 either (etcd applies the check to both sides).
    await waitFor(
      "m3 told why",
      () => other.transport.peerStatus(2n)?.lastError?.code === "certificate-cn-not-allowed",
    );
    assert.match(
      other.transport.peerStatus(2n)!.lastError!.message,
      /certificate CN "m3" is not the allowed CN "m1"/,
    );
    await waitFor(
      "b refuses to dial m3",
      () => b.transport.peerStatus(3n)?.lastError?.code === "certificate-cn-not-allowed",
    );
    assert.ok(
      b.log.entries.some(
        (e) =>
          e.msg === "rejected peer connection" &&
          /not the allowed CN/.test(String(e.fields.reason)),
      ),
    );
    assert.equal(b.transport.peerStatus(1n)?.connected, true);
    assert.ok(!b.received.some((m) => m.from === 3n));
  });

  test("https:// peer URLs without --peer-cert-file/--peer-key-file are refused clearly", () => {
    const logger = captureLogger();
    const base = {
      memberId: 1n,
      clusterId: 1n,
      logger,
      onMessage: () => {},
      reportUnreachable: () => {},
      reportSnapshot: () => {},
    };
    assert.throws(
      () => new PeerTransport({ ...base, listenUrls: ["https://127.0.0.1:0"] }),
      (err: unknown) =>
        err instanceof PeerTlsConfigError &&
        /cannot use TLS for peer listener https:\/\/127\.0\.0\.1:0: KeyFile and CertFile are not presented/.test(
          err.message,
        ),
    );
    assert.throws(
      () =>
        new PeerTransport({
          ...base,
          listenUrls: ["https://127.0.0.1:0"],
          tls: { ...peerTlsFiles(pki, "m1"), keyFile: "" },
        }),
      (err: unknown) =>
        err instanceof PeerTlsConfigError &&
        /KeyFile and CertFile must both be present/.test(err.message),
    );
    assert.throws(
      () =>
        new PeerTransport({
          ...base,
          listenUrls: ["https://127.0.0.1:0"],
          tls: { ...peerTlsFiles(pki, "m1"), certFile: `${pki.dir}/missing.crt` },
        }),
      (err: unknown) =>
        err instanceof PeerTlsConfigError && /cannot read --peer-cert-file/.test(err.message),
    );
    assert.throws(
      () =>
        new PeerTransport({
          ...base,
          listenUrls: ["https://127.0.0.1:0"],
          tls: { ...peerTlsFiles(pki, "m1"), keyFile: pki.members.m2!.key },
        }),
      (err: unknown) => err instanceof PeerTlsConfigError && /do not load/.test(err.message),
    );
  });
});
