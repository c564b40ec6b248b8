// onPeerRefusing, the transport's failure detector for a dead leader: a lost connection whose
// immediate redial is refused (ECONNREFUSED, nothing listens on the peer's port) is reported once;
// a connection cut by a partition (a proxy that keeps accepting and closing) never is.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { PeerProxy } from "../../tools/torture/peer-proxy.js";
import { freePort, sleep, waitFor } from "../helpers/server.js";
import { mesh, peerPool, waitConnected } from "./harness.js";

const start = peerPool();

describe("peer transport: onPeerRefusing", { timeout: 30_000 }, () => {
  test("a peer whose port stops listening is reported once per lost connection", async () => {
    const a = await start(1n);
    const b = await start(2n);
    mesh([a, b]);
    await waitConnected([a, b]);
    await sleep(50); // the connection has been up longer than the first backoff (20 ms)
    assert.deepEqual(a.refusing, []);
    await b.transport.stop();
    await waitFor("a told that 2 refuses", () => a.refusing.length > 0, 5_000);
    assert.deepEqual(a.refusing, [2n]);
    // the backoff dials that follow are refused too, and say nothing more
    await sleep(400);
    assert.deepEqual(a.refusing, [2n]);
    assert.equal(a.transport.peerStatus(2n)?.lastError?.code, "dial-failed");
    assert.ok(
      a.log.entries.some((e) => e.msg === "lost TCP streaming connection with remote peer"),
    );
  });

  test("a partition (a proxy that closes the connection and keeps listening) is no refusal", async () => {
    const a = await start(1n);
    const b = await start(2n);
    const proxyPort = await freePort();
    const proxy = await PeerProxy.start(proxyPort, Number(new URL(b.url).port), 2n);
    try {
      a.transport.addPeer(2n, [`http://127.0.0.1:${proxyPort}`]);
      b.transport.addPeer(1n, [a.url]);
      await waitConnected([a, b]);
      await sleep(50);
      proxy.block([1n]);
      await waitFor("a notices", () => a.transport.peerStatus(2n)?.connected === false);
      await sleep(400); // several redials, each accepted by the proxy and closed
      assert.equal(a.transport.peerStatus(2n)?.connected, false);
      assert.deepEqual(a.refusing, []);
    } finally {
      proxy.close();
    }
  });
});
