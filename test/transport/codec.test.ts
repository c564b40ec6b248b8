// The wire pieces on their own: the hand-written message encoder writes exactly protobuf-ts's
// bytes (fast-check over random messages; the seed is printed and SEED=<n> replays it), the send
// queue keeps its bounds and frames what it holds, and the frame decoder finds the same frames
// however the bytes are split across reads.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { type Message, Message as MessageCodec } from "../../lib/proto/gen/raftpb/raft.js";
import {
  FRAME_HEADER_BYTES,
  FrameDecoder,
  PING_WORD,
  encodeControlFrame,
  encodeFrames,
} from "../../lib/transport/frame.js";
import { handEncodable, messageSize, putMessage } from "../../lib/transport/message-codec.js";
import { SendQueue } from "../../lib/transport/send-queue.js";
import { testSeed } from "../helpers/server.js";

const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
const u53 = fc.oneof(fc.constant(0), fc.nat(300), fc.maxSafeNat());
const bytes = fc.oneof(fc.constant(new Uint8Array(0)), fc.uint8Array({ maxLength: 300 }));
const entry = fc.record({
  type: fc.integer({ min: 0, max: 2 }),
  term: u53,
  index: u53,
  data: bytes,
});
const message: fc.Arbitrary<Message> = fc.record({
  type: fc.integer({ min: 0, max: 18 }),
  to: u64,
  from: u64,
  term: u53,
  logTerm: u53,
  index: u53,
  entries: fc.array(entry, { maxLength: 4 }),
  commit: u53,
  reject: fc.boolean(),
  rejectHint: u53,
  context: bytes,
});

test("the hand encoder writes exactly protobuf-ts's bytes", (t) => {
  const seed = testSeed();
  t.diagnostic(`SEED=${seed}`);
  fc.assert(
    fc.property(message, (m) => {
      assert.ok(handEncodable(m));
      const want = MessageCodec.toBinary(m);
      assert.equal(messageSize(m), want.length);
      const buf = new Uint8Array(want.length + 3);
      assert.equal(putMessage(buf, 3, m), 3 + want.length);
      assert.deepEqual(buf.subarray(3), want);
    }),
    { seed, numRuns: 500 },
  );
});

test("the send queue bounds messages and bytes, and frames what it holds in batches", () => {
  const m = (index: number): Message =>
    MessageCodec.create({ type: 8, to: 2n, from: 1n, term: 3, index });
  const q = new SendQueue(5, 1000);
  for (let i = 1; i <= 5; i++) assert.ok(q.push(m(i), messageSize(m(i))));
  assert.equal(q.push(m(6), messageSize(m(6))), false, "count bound");
  const raw = MessageCodec.toBinary(m(7));
  const first = q.takeBatch(2 * (FRAME_HEADER_BYTES + messageSize(m(1))));
  assert.ok(first !== undefined);
  assert.ok(q.push(raw, raw.length), "room again after a batch");
  const rest = q.takeBatch(1 << 20)!;
  assert.equal(q.takeBatch(1 << 20), undefined);
  const d = new FrameDecoder(1 << 20, true);
  d.push(first);
  d.push(rest);
  const got: number[] = [];
  for (let f = d.next(); f !== undefined; f = d.next())
    if (f.kind === "data") got.push(MessageCodec.fromBinary(f.body).index);
  assert.deepEqual(got, [1, 2, 3, 4, 5, 7]);
  const big = new SendQueue(100, 50);
  assert.equal(big.push(new Uint8Array(60), 60), false, "byte bound");
  assert.equal(big.length, 0);
});

test("frames are found however the bytes are split", (t) => {
  const seed = testSeed();
  t.diagnostic(`SEED=${seed}`);
  fc.assert(
    fc.property(
      fc.array(fc.uint8Array({ maxLength: 40 }), { maxLength: 8 }),
      fc.array(fc.nat(), { maxLength: 10 }),
      (bodies, cuts) => {
        const total = bodies.reduce((n, b) => n + FRAME_HEADER_BYTES + b.length, 0);
        const wire = Buffer.concat([
          encodeFrames(bodies, 0, bodies.length, total),
          encodeControlFrame(PING_WORD, 12.5),
        ]);
        const points = [...new Set(cuts.map((c) => c % (wire.length + 1)))].sort((a, b) => a - b);
        const d = new FrameDecoder(1 << 20, false);
        const out: Uint8Array[] = [];
        let pings = 0;
        let prev = 0;
        for (const p of [...points, wire.length]) {
          d.push(wire.subarray(prev, p));
          prev = p;
          for (let f = d.next(); f !== undefined; f = d.next()) {
            if (f.kind === "data") out.push(Uint8Array.from(f.body));
            else if (f.kind === "ping" && f.stampMs === 12.5) pings++;
          }
        }
        assert.deepEqual(
          out,
          bodies.map((b) => Uint8Array.from(b)),
        );
        assert.equal(pings, 1);
        assert.equal(d.bufferedBytes, 0);
      },
    ),
    { seed, numRuns: 300 },
  );
});

test("a length word over the limit is refused before its body arrives", () => {
  const d = new FrameDecoder(100, true);
  const head = Buffer.alloc(4);
  head.writeUInt32BE(101, 0);
  d.push(head);
  assert.throws(
    () => d.next(),
    (e: Error & { code?: string }) => e.code === "frame-too-large",
  );
});
