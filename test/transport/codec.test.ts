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
import {
  handEncodable,
  messageSize,
  putMessage,
  readMessage,
} from "../../lib/transport/message-codec.js";
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

/** protobuf-ts's decode as a plain object (its messages may lack an unset snapshot key). */
function plainMessage(m: Message): Message {
  return {
    type: m.type,
    to: m.to,
    from: m.from,
    term: m.term,
    logTerm: m.logTerm,
    index: m.index,
    entries: m.entries.map((e) => ({ type: e.type, term: e.term, index: e.index, data: e.data })),
    commit: m.commit,
    snapshot: m.snapshot,
    reject: m.reject,
    rejectHint: m.rejectHint,
    context: m.context,
  };
}

test("the hand decoder reads what protobuf-ts reads, on its link's ids", (t) => {
  const seed = testSeed();
  t.diagnostic(`SEED=${seed}`);
  fc.assert(
    fc.property(message, (m) => {
      const bytes = MessageCodec.toBinary(m);
      const got = readMessage(bytes, m.from, m.to);
      assert.ok(got !== undefined);
      assert.deepEqual(got, plainMessage(MessageCodec.fromBinary(bytes)));
      // another link's ids: left to protobuf-ts (and then refused by the id check)
      if (m.to !== 0n) assert.equal(readMessage(bytes, m.from, m.to ^ 1n), undefined);
      if (m.from !== 0n) assert.equal(readMessage(bytes, m.from ^ 1n, m.to), undefined);
    }),
    { seed, numRuns: 500 },
  );
});

test("on any bytes the hand decoder agrees with protobuf-ts or leaves them to it", (t) => {
  const seed = testSeed();
  t.diagnostic(`SEED=${seed}`);
  const ids = fc.constantFrom(0n, 1n, 0x79038a63fe07ddf1n);
  const mutated = fc
    .tuple(
      message,
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
    )
    .map(([m, edits]) => {
      const b = MessageCodec.toBinary(m);
      for (const [at, v] of edits) if (b.length > 0) b[at % b.length] = v;
      return { b: b.subarray(0, b.length - (edits.length % 3)), m };
    });
  fc.assert(
    fc.property(
      fc.oneof(
        fc.uint8Array({ maxLength: 64 }).map((b) => ({ b, m: undefined })),
        mutated,
      ),
      ids,
      (c, id) => {
        const from = c.m?.from ?? id;
        const to = c.m?.to ?? id;
        const got = readMessage(c.b, from, to);
        if (got === undefined) return;
        assert.deepEqual(got, plainMessage(MessageCodec.fromBinary(c.b)));
      },
    ),
    { seed, numRuns: 2000 },
  );
});

test("the hand decoder leaves snapshots, unknown fields and integers past 2^53 to protobuf-ts", () => {
  const base: Message = {
    type: 3,
    to: 2n,
    from: 1n,
    term: 5,
    logTerm: 5,
    index: 10,
    entries: [],
    commit: 9,
    reject: false,
    rejectHint: 0,
    context: new Uint8Array(0),
  };
  const snap = MessageCodec.toBinary({
    ...base,
    type: 7,
    snapshot: { data: new Uint8Array([1]), metadata: { index: 10, term: 5 } },
  });
  assert.equal(readMessage(snap, 1n, 2n), undefined);
  const unknown = Uint8Array.from([...MessageCodec.toBinary(base), 0x68, 0x01]); // field 13
  assert.equal(readMessage(unknown, 1n, 2n), undefined);
  const big = Uint8Array.from([0x20, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]); // term 2^63
  assert.equal(readMessage(big, 1n, 2n), undefined);
  assert.deepEqual(readMessage(MessageCodec.toBinary(base), 1n, 2n), plainMessage(base));
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

test("frames are found however the bytes are split, by next() and by nextInChunk()", (t) => {
  const seed = testSeed();
  t.diagnostic(`SEED=${seed}`);
  fc.assert(
    fc.property(
      fc.array(fc.uint8Array({ maxLength: 40 }), { maxLength: 8 }),
      fc.array(fc.nat(), { maxLength: 10 }),
      fc.nat(),
      fc.boolean(),
      (bodies, cuts, pingAt, inChunk) => {
        const k = pingAt % (bodies.length + 1);
        const framed = (from: number, to: number) => {
          let n = 0;
          for (let i = from; i < to; i++) n += FRAME_HEADER_BYTES + bodies[i]!.length;
          return encodeFrames(bodies, from, to, n);
        };
        const wire = Buffer.concat([
          framed(0, k),
          encodeControlFrame(PING_WORD, 12.5),
          framed(k, bodies.length),
        ]);
        const points = [...new Set(cuts.map((c) => c % (wire.length + 1)))].sort((a, b) => a - b);
        const d = new FrameDecoder(1 << 20, false);
        const out: Uint8Array[] = [];
        let pings = 0;
        let prev = 0;
        for (const p of [...points, wire.length]) {
          d.push(wire.subarray(prev, p));
          prev = p;
          for (;;) {
            const c = inChunk ? d.nextInChunk() : undefined;
            if (c !== undefined) {
              out.push(Uint8Array.from(c.subarray(d.bodyStart, d.bodyEnd)));
              continue;
            }
            const f = d.next();
            if (f === undefined) break;
            if (f.kind === "data") out.push(Uint8Array.from(f.body));
            else if (f.kind === "ping" && f.stampMs === 12.5) {
              assert.equal(out.length, k, "the ping comes where it was sent");
              pings++;
            }
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
