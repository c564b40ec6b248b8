// A peer that speaks garbage is disconnected with a logged reason, never crashes the member
// (DESIGN §8): garbage instead of a hello, an oversized frame, an undecodable frame, a message
// from or to the wrong member, a local-only message type, and random bytes after a valid hello
// (fast-check; the seed is printed and SEED=<n> replays it). After all of it the member still
// serves its real peers.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { Message, MessageType } from "../../lib/proto/gen/raftpb/raft.js";
import { encodeFrame } from "../../lib/transport/frame.js";
import { StreamKind, encodeHello } from "../../lib/transport/hello.js";
import { testSeed, waitFor } from "../helpers/server.js";
import {
  type RawPeer,
  type TestPeer,
  closedWithin,
  mesh,
  metricValue,
  msg,
  rawConnect,
  startPeer,
  stopAll,
  waitConnected,
} from "./harness.js";

const CLUSTER = 0x1000n;
/** The raw connections below pretend to be member 3, a peer of the target with no transport. */
const IMPOSTOR = 3n;

const frame = encodeFrame;

function hello(from = IMPOSTOR, kind = StreamKind.Message): Buffer {
  return encodeHello({ version: 1, kind, clusterId: CLUSTER, from, to: 1n });
}

describe("hostile peer input", { timeout: 90_000 }, () => {
  let target: TestPeer;
  let friend: TestPeer;

  before(async () => {
    target = await startPeer(1n, { limits: { maxFrameBytes: 1024 * 1024 } });
    friend = await startPeer(2n);
    mesh([target, friend]);
    // Member 3 is a peer whose address answers nothing; raw sockets speak for it.
    target.transport.addPeer(IMPOSTOR, ["http://127.0.0.1:1"]);
    await waitConnected([target, friend]);
  });
  after(() => stopAll([target, friend]));

  /** The target still takes messages from a real peer. */
  async function stillServes(): Promise<void> {
    const before = target.received.filter((m) => m.from === 2n).length;
    friend.transport.send([msg(2n, 1n, MessageType.MsgHeartbeat)]);
    await waitFor(
      "a message from the real peer",
      () => target.received.filter((m) => m.from === 2n).length === before + 1,
    );
  }

  async function expectDisconnected(bytes: Buffer, reason: RegExp): Promise<RawPeer> {
    const logged = target.log.entries.length;
    const raw = await rawConnect(target.url);
    raw.socket.write(bytes);
    assert.ok(await closedWithin(raw, 3000), `connection closed for ${reason}`);
    await waitFor("the reason logged", () =>
      target.log.entries
        .slice(logged)
        .some((e) => reason.test(String(e.fields.error ?? e.fields.reason))),
    );
    return raw;
  }

  test("garbage instead of a hello is refused and logged", async () => {
    await expectDisconnected(Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), /bad magic/);
    await stillServes();
  });

  test("an oversized frame closes the connection before it is buffered", async () => {
    const head = Buffer.alloc(4);
    head.writeUInt32BE(1024 * 1024 + 1, 0);
    await expectDisconnected(Buffer.concat([hello(), head]), /exceeds the limit of 1048576 bytes/);
    const failures = await metricValue(target, "etcd_network_peer_received_failures_total", {
      From: "3",
    });
    assert.ok(failures !== undefined && failures >= 1);
    await stillServes();
  });

  test("a frame that is not a raft message closes the connection", async () => {
    await expectDisconnected(
      Buffer.concat([hello(), frame(Buffer.from([0xff, 0xff, 0xff]))]),
      /undecodable raft message/,
    );
    await stillServes();
  });

  test("a message claiming another sender or receiver closes the connection", async () => {
    const forged = Message.toBinary(msg(2n, 1n, MessageType.MsgHeartbeat));
    await expectDisconnected(
      Buffer.concat([hello(), frame(forged)]),
      /message from 2 on the connection of member 3/,
    );
    const misrouted = Message.toBinary(msg(IMPOSTOR, 9n, MessageType.MsgHeartbeat));
    await expectDisconnected(
      Buffer.concat([hello(), frame(misrouted)]),
      /message to 9 received by member 1/,
    );
    assert.ok(!target.received.some((m) => m.from !== 2n), "nothing forged was delivered");
    await stillServes();
  });

  test("a local-only message type closes the connection", async () => {
    const hup = Message.toBinary(msg(IMPOSTOR, 1n, MessageType.MsgHup));
    await expectDisconnected(Buffer.concat([hello(), frame(hup)]), /does not cross the network/);
    await stillServes();
  });

  test("a pong from the dialing side closes the connection", async () => {
    const pong = Buffer.alloc(12);
    pong.writeUInt32BE(0xfffffffe, 0);
    await expectDisconnected(Buffer.concat([hello(), pong]), /unexpected pong/);
  });

  test("a snapshot stream that opens with something other than MsgSnap is refused", async () => {
    const hb = Message.toBinary(msg(IMPOSTOR, 1n, MessageType.MsgHeartbeat));
    await expectDisconnected(
      Buffer.concat([hello(IMPOSTOR, StreamKind.Snapshot), frame(hb)]),
      /snapshot stream opened with message type 8/,
    );
    await stillServes();
  });

  test("random bytes after a valid hello never crash the member or deliver a forged message", async (t) => {
    const seed = testSeed();
    t.diagnostic(`SEED=${seed}`);
    console.log(`# garbage property seed: SEED=${seed}`);
    const valid = Message.toBinary(msg(IMPOSTOR, 1n, MessageType.MsgHeartbeat, { commit: 5 }));
    // Pieces: raw random bytes, random bodies with a correct length word, and valid messages
    // with a few bytes flipped, so both the framing and the decoder are exercised.
    const piece = fc.oneof(
      fc.uint8Array({ maxLength: 48 }),
      fc.uint8Array({ maxLength: 48 }).map((b) => frame(b)),
      fc
        .array(fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 0, max: 255 })), {
          maxLength: 3,
        })
        .map((flips) => {
          const b = Buffer.from(valid);
          for (const [i, v] of flips) b[i] = v;
          return frame(b);
        }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(piece, { minLength: 1, maxLength: 6 }), async (pieces) => {
        const raw = await rawConnect(target.url);
        raw.socket.write(Buffer.concat([hello(), ...pieces]));
        await closedWithin(raw, 30);
        raw.socket.destroy();
        // Whatever was delivered passed every check: from the impostor's id, to us, a network type.
        for (const m of target.received) {
          assert.equal(m.to, 1n);
          assert.ok(m.from === 2n || m.from === IMPOSTOR);
          assert.ok(
            ![MessageType.MsgHup, MessageType.MsgBeat, MessageType.MsgUnreachable].includes(m.type),
          );
        }
      }),
      { seed, numRuns: 60 },
    );
    await stillServes();
  });
});
