// Hostile clients against lib/h2 (issue 6): each attack ends with a GOAWAY or RST_STREAM for the
// attacker only, and a well-behaved client on another connection is still served. Plus flow
// control with a tiny client window, the concurrent-stream limit, graceful shutdown and a
// fast-check fuzz of the frame parser (no exception escapes).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Duplex } from "node:stream";
import fc from "fast-check";
import { H2ErrorCode, H2GrpcServer, frames } from "../../lib/h2/index.js";
import { encodeHeaderBlock } from "../../lib/h2/hpack.js";
import * as rpc from "../../lib/proto/gen/etcdserverpb/rpc.js";
import { startFake, type FakeService } from "./fixture.js";
import { RawClient, grpcMessage, requestHeaders } from "./raw-client.js";

const { FrameType, Flag, buildFrame, buildSettings, buildWindowUpdate, buildRstStream } = frames;
const seed = Number(process.env.SEED ?? Date.now() % 2 ** 31);

const headersFrame = (id: number, block: Buffer, flags: number = Flag.END_HEADERS) =>
  buildFrame(FrameType.HEADERS, flags, id, block);
const putBody = (k: string) =>
  grpcMessage(
    rpc.PutRequest.toBinary(
      rpc.PutRequest.create({ key: Buffer.from(k), value: Buffer.from("v") }),
    ),
  );
const rangeBody = (k: string) =>
  grpcMessage(rpc.RangeRequest.toBinary(rpc.RangeRequest.create({ key: Buffer.from(k) })));

/** A full Put on a fresh raw connection; resolves true when grpc-status 0 came back. */
async function healthyPut(port: number): Promise<boolean> {
  const c = new RawClient(port).hello();
  c.write(headersFrame(1, requestHeaders("/etcdserverpb.KV/Put")));
  c.write(buildFrame(FrameType.DATA, Flag.END_STREAM, 1, putBody("ok")));
  const ok = await c.waitFor((fs) =>
    fs.some((f) => f.type === FrameType.HEADERS && f.flags & Flag.END_STREAM),
  );
  c.destroy();
  return ok;
}

describe("hostile clients", () => {
  let svc: FakeService;
  before(async () => {
    svc = await startFake({
      h2: {
        maxResetsPerWindow: 100,
        maxSettingsPerWindow: 50,
        maxContinuationFrames: 16,
        maxHeaderBlockBytes: 32 * 1024,
        maxHeaderListBytes: 16 * 1024,
        maxConcurrentStreams: 5,
        handshakeTimeoutMs: 300,
        headersTimeoutMs: 300,
        idleTimeoutMs: 600,
        floodWindowMs: 10_000,
      },
    });
  });
  after(async () => svc.close());

  test("rapid reset (CVE-2023-44487): HEADERS+RST_STREAM bursts get GOAWAY ENHANCE_YOUR_CALM", async () => {
    const c = new RawClient(svc.port).hello();
    const parts: Buffer[] = [];
    for (let i = 0; i < 200; i++) {
      const id = 1 + 2 * i;
      parts.push(
        headersFrame(id, requestHeaders("/etcdserverpb.KV/Range")),
        buildRstStream(id, H2ErrorCode.CANCEL),
      );
    }
    c.write(Buffer.concat(parts));
    await c.waitFor(() => c.closed);
    assert.equal(c.goawayCode(), H2ErrorCode.ENHANCE_YOUR_CALM);
    assert.ok(await healthyPut(svc.port));
  });

  test("CONTINUATION flood: endless empty CONTINUATION frames get GOAWAY", async () => {
    const c = new RawClient(svc.port).hello();
    const parts = [headersFrame(1, requestHeaders("/etcdserverpb.KV/Put"), 0)];
    for (let i = 0; i < 1000; i++)
      parts.push(buildFrame(FrameType.CONTINUATION, 0, 1, Buffer.alloc(0)));
    c.write(Buffer.concat(parts));
    await c.waitFor(() => c.closed);
    assert.equal(c.goawayCode(), H2ErrorCode.ENHANCE_YOUR_CALM);
    assert.ok(await healthyPut(svc.port));
  });

  test("CONTINUATION flood: a header block beyond maxHeaderBlockBytes gets GOAWAY", async () => {
    const c = new RawClient(svc.port).hello();
    const parts = [headersFrame(1, requestHeaders("/etcdserverpb.KV/Put"), 0)];
    for (let i = 0; i < 10; i++)
      parts.push(buildFrame(FrameType.CONTINUATION, 0, 1, Buffer.alloc(16_000, 0x82)));
    c.write(Buffer.concat(parts));
    await c.waitFor(() => c.closed);
    assert.equal(c.goawayCode(), H2ErrorCode.ENHANCE_YOUR_CALM);
  });

  test("HPACK bomb: a huge decoded header list resets only that stream", async () => {
    const c = new RawClient(svc.port).hello();
    const big = "y".repeat(3000);
    // literal with incremental indexing, new name "b", 3000-byte value; then 100 references to it
    const lit = Buffer.concat([
      Buffer.from([0x40, 0x01, 0x62, 0x7f]),
      Buffer.from([((3000 - 127) % 128) | 0x80, Math.floor((3000 - 127) / 128)]),
      Buffer.from(big),
    ]);
    const block = Buffer.concat([
      requestHeaders("/etcdserverpb.KV/Put"),
      lit,
      Buffer.alloc(100, 0xbe),
    ]);
    c.write(headersFrame(1, block, Flag.END_HEADERS | Flag.END_STREAM));
    await c.waitFor((fs) => fs.some((f) => f.type === FrameType.RST_STREAM && f.streamId === 1));
    const rst = c.frames.find((f) => f.type === FrameType.RST_STREAM && f.streamId === 1);
    assert.equal(rst?.payload.readUInt32BE(0), H2ErrorCode.ENHANCE_YOUR_CALM);
    // the connection lives on: the next stream is served
    c.write(headersFrame(3, requestHeaders("/etcdserverpb.KV/Put")));
    c.write(buildFrame(FrameType.DATA, Flag.END_STREAM, 3, putBody("after-bomb")));
    assert.ok(
      await c.waitFor((fs) =>
        fs.some(
          (f) => f.streamId === 3 && f.type === FrameType.HEADERS && f.flags & Flag.END_STREAM,
        ),
      ),
    );
    c.destroy();
  });

  test("window overflow on the connection gets GOAWAY FLOW_CONTROL_ERROR", async () => {
    const c = new RawClient(svc.port).hello();
    c.write(buildWindowUpdate(0, 2 ** 31 - 1));
    await c.waitFor(() => c.closed);
    assert.equal(c.goawayCode(), H2ErrorCode.FLOW_CONTROL_ERROR);
  });

  test("window overflow on a stream resets the stream", async () => {
    const c = new RawClient(svc.port).hello();
    c.write(headersFrame(1, requestHeaders("/etcdserverpb.KV/Range")));
    c.write(buildFrame(FrameType.DATA, Flag.END_STREAM, 1, rangeBody("slow")));
    c.write(buildWindowUpdate(1, 2 ** 31 - 1));
    await c.waitFor((fs) => fs.some((f) => f.type === FrameType.RST_STREAM));
    const rst = c.frames.find((f) => f.type === FrameType.RST_STREAM);
    assert.equal(rst?.payload.readUInt32BE(0), H2ErrorCode.FLOW_CONTROL_ERROR);
    assert.equal(c.closed, false);
    c.destroy();
  });

  test("SETTINGS flood gets GOAWAY ENHANCE_YOUR_CALM", async () => {
    const c = new RawClient(svc.port).hello();
    const parts = [];
    for (let i = 0; i < 200; i++)
      parts.push(buildSettings([[frames.SettingId.INITIAL_WINDOW_SIZE, 65535]]));
    c.write(Buffer.concat(parts));
    await c.waitFor(() => c.closed);
    assert.equal(c.goawayCode(), H2ErrorCode.ENHANCE_YOUR_CALM);
  });

  test("PING flood on an idle connection gets GOAWAY ENHANCE_YOUR_CALM too_many_pings", async () => {
    const c = new RawClient(svc.port).hello();
    const parts = [];
    for (let i = 0; i < 200; i++) parts.push(buildFrame(FrameType.PING, 0, 0, Buffer.alloc(8, i)));
    c.write(Buffer.concat(parts));
    await c.waitFor(() => c.closed);
    assert.equal(c.goawayCode(), H2ErrorCode.ENHANCE_YOUR_CALM);
    assert.equal(c.goaway()?.payload.subarray(8).toString(), "too_many_pings");
    // grpc-go's rule: the first PING is free, then two strikes are allowed, the third closes
    const acks = c.frames.filter((f) => f.type === FrameType.PING && f.flags & Flag.ACK);
    assert.equal(acks.length, 4);
  });

  test("slowloris: a client that never sends the preface is closed after handshakeTimeoutMs", async () => {
    const c = new RawClient(svc.port);
    const t0 = Date.now();
    await c.waitFor(() => c.closed, 3000);
    assert.ok(c.closed);
    assert.ok(Date.now() - t0 >= 250);
  });

  test("slowloris: a header block left open is closed after headersTimeoutMs", async () => {
    const c = new RawClient(svc.port).hello();
    c.write(headersFrame(1, requestHeaders("/etcdserverpb.KV/Put"), 0));
    await c.waitFor(() => c.closed, 3000);
    assert.equal(c.goawayCode(), H2ErrorCode.ENHANCE_YOUR_CALM);
  });

  test("an idle connection gets GOAWAY NO_ERROR after idleTimeoutMs", async () => {
    const c = new RawClient(svc.port).hello();
    await c.waitFor(() => c.closed, 3000);
    assert.equal(c.goawayCode(), H2ErrorCode.NO_ERROR);
  });

  test("a bad preface gets GOAWAY PROTOCOL_ERROR", async () => {
    const c = new RawClient(svc.port);
    c.write(Buffer.from("PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n"));
    await c.waitFor(() => c.closed);
    assert.equal(c.goawayCode(), H2ErrorCode.PROTOCOL_ERROR);
  });

  test("a frame larger than our SETTINGS_MAX_FRAME_SIZE gets FRAME_SIZE_ERROR", async () => {
    const c = new RawClient(svc.port).hello();
    c.write(buildFrame(FrameType.PING, 0, 0, Buffer.alloc(20_000)));
    await c.waitFor(() => c.closed);
    assert.equal(c.goawayCode(), H2ErrorCode.FRAME_SIZE_ERROR);
  });

  test("streams beyond SETTINGS_MAX_CONCURRENT_STREAMS are refused, the rest served", async () => {
    const c = new RawClient(svc.port).hello();
    for (let i = 0; i < 8; i++) {
      const id = 1 + 2 * i;
      c.write(headersFrame(id, requestHeaders("/etcdserverpb.KV/Range")));
      c.write(buildFrame(FrameType.DATA, Flag.END_STREAM, id, rangeBody("slow")));
    }
    await c.waitFor((fs) => fs.filter((f) => f.type === FrameType.RST_STREAM).length >= 3);
    const refused = c.frames.filter(
      (f) =>
        f.type === FrameType.RST_STREAM && f.payload.readUInt32BE(0) === H2ErrorCode.REFUSED_STREAM,
    );
    assert.deepEqual(
      refused.map((f) => f.streamId),
      [11, 13, 15],
    );
    c.destroy();
  });
});

describe("flow control and shutdown", () => {
  let svc: FakeService;
  before(async () => {
    svc = await startFake();
  });
  after(async () => svc.close());

  test("a large response waits for the client's window (1000-byte stream window)", async () => {
    const c = new RawClient(svc.port);
    c.write(
      Buffer.concat([
        frames.clientPreface,
        buildSettings([[frames.SettingId.INITIAL_WINDOW_SIZE, 1000]]),
      ]),
    );
    c.write(buildWindowUpdate(0, 1_000_000)); // the connection window is not what this test limits
    c.write(headersFrame(1, requestHeaders("/etcdserverpb.KV/Range")));
    c.write(buildFrame(FrameType.DATA, Flag.END_STREAM, 1, rangeBody("big:100000")));
    const dataBytes = () =>
      c.frames.filter((f) => f.type === FrameType.DATA).reduce((n, f) => n + f.payload.length, 0);
    await c.waitFor(() => dataBytes() >= 1000);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(dataBytes(), 1000, "no DATA beyond the stream window");
    // open the window in steps; the rest arrives, then the trailers
    for (
      let i = 0;
      i < 20 && !c.frames.some((f) => f.type === FrameType.HEADERS && f.flags & Flag.END_STREAM);
      i++
    ) {
      c.write(buildWindowUpdate(1, 10_000));
      await c.waitFor(() => false, 20);
    }
    assert.ok(dataBytes() > 100_000);
    assert.ok(c.frames.some((f) => f.type === FrameType.HEADERS && f.flags & Flag.END_STREAM));
    c.destroy();
  });

  test("with a zero stream window a unary reply waits: headers now, DATA and trailers after WINDOW_UPDATE", async () => {
    const c = new RawClient(svc.port);
    c.write(
      Buffer.concat([
        frames.clientPreface,
        buildSettings([[frames.SettingId.INITIAL_WINDOW_SIZE, 0]]),
      ]),
    );
    c.write(headersFrame(1, requestHeaders("/etcdserverpb.KV/Put")));
    c.write(buildFrame(FrameType.DATA, Flag.END_STREAM, 1, putBody("zero-window")));
    await c.waitFor((fs) => fs.some((f) => f.type === FrameType.HEADERS && f.streamId === 1));
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(c.frames.filter((f) => f.streamId === 1).length, 1, "only the response headers");
    c.write(buildWindowUpdate(1, 100));
    assert.ok(
      await c.waitFor((fs) =>
        fs.some(
          (f) => f.type === FrameType.HEADERS && f.streamId === 1 && f.flags & Flag.END_STREAM,
        ),
      ),
    );
    const kinds = c.frames.filter((f) => f.streamId === 1).map((f) => f.type);
    assert.deepEqual(kinds, [FrameType.HEADERS, FrameType.DATA, FrameType.HEADERS]);
    c.destroy();
  });

  test("the connection window bounds DATA across streams too", async () => {
    const c = new RawClient(svc.port);
    // stream windows large, connection window stays at the default 65,535
    c.write(
      Buffer.concat([
        frames.clientPreface,
        buildSettings([[frames.SettingId.INITIAL_WINDOW_SIZE, 1_000_000]]),
      ]),
    );
    for (const id of [1, 3]) {
      c.write(headersFrame(id, requestHeaders("/etcdserverpb.KV/Range")));
      c.write(buildFrame(FrameType.DATA, Flag.END_STREAM, id, rangeBody("big:100000")));
    }
    const dataBytes = () =>
      c.frames.filter((f) => f.type === FrameType.DATA).reduce((n, f) => n + f.payload.length, 0);
    await c.waitFor(() => dataBytes() >= 65_535);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(dataBytes(), 65_535);
    c.write(buildWindowUpdate(0, 1_000_000));
    assert.ok(
      await c.waitFor(
        (fs) =>
          fs.filter((f) => f.type === FrameType.HEADERS && f.flags & Flag.END_STREAM).length === 2,
      ),
    );
    c.destroy();
  });

  test("server close() sends GOAWAY NO_ERROR and lets an in-flight call finish", async () => {
    const own = await startFake();
    const c = new RawClient(own.port).hello();
    c.write(headersFrame(1, requestHeaders("/etcdserverpb.KV/Put")));
    c.write(buildFrame(FrameType.DATA, 0, 1, putBody("late")));
    await c.waitFor((fs) => fs.some((f) => f.type === FrameType.SETTINGS && f.flags & Flag.ACK));
    const closing = own.server.close();
    await c.waitFor((fs) => fs.some((f) => f.type === FrameType.GOAWAY));
    assert.equal(c.goawayCode(), H2ErrorCode.NO_ERROR);
    c.write(buildFrame(FrameType.DATA, Flag.END_STREAM, 1, Buffer.alloc(0)));
    assert.ok(
      await c.waitFor((fs) =>
        fs.some(
          (f) => f.streamId === 1 && f.type === FrameType.HEADERS && f.flags & Flag.END_STREAM,
        ),
      ),
    );
    await closing;
    assert.equal(own.store.get("late")?.toString(), "v");
    await own.close();
  });
});

/** An in-memory socket: what the server writes is dropped, reads are pushed with emit("data"). */
class NullSocket extends Duplex {
  override _read(): void {}
  override _write(_c: Buffer, _e: BufferEncoding, cb: () => void): void {
    cb();
  }
}

describe("frame parser fuzz", () => {
  test(`random frames after a valid preface never throw out of the server (SEED=${seed})`, async () => {
    const server = new H2GrpcServer(new Map(), { h2: { maxResetsPerWindow: 50 } });
    const frame = fc.record({
      type: fc.integer({ min: 0, max: 11 }),
      flags: fc.integer({ min: 0, max: 255 }),
      streamId: fc.oneof(fc.constantFrom(0, 1, 3, 5), fc.integer({ min: 0, max: 2 ** 31 - 1 })),
      payload: fc.oneof(
        fc.uint8Array({ maxLength: 64 }),
        fc.constant(
          encodeHeaderBlock([
            [":method", "POST"],
            [":path", "/x"],
            ["content-type", "application/grpc"],
          ]),
        ),
      ),
    });
    let failure: unknown;
    const onUncaught = (err: unknown) => (failure = err);
    process.on("uncaughtException", onUncaught);
    try {
      fc.assert(
        fc.property(
          fc.array(frame, { maxLength: 30 }),
          fc.integer({ min: 1, max: 50 }),
          (fs, chunk) => {
            const sock = new NullSocket();
            server.handleConnection(sock);
            const bytes = Buffer.concat([
              frames.clientPreface,
              buildSettings([]),
              ...fs.map((f) => buildFrame(f.type, f.flags, f.streamId, f.payload)),
            ]);
            // split into arbitrary reads: frames straddle read boundaries
            for (let i = 0; i < bytes.length; i += chunk)
              sock.emit("data", bytes.subarray(i, i + chunk));
            sock.destroy();
          },
        ),
        { seed, numRuns: 500 },
      );
      await new Promise((r) => setImmediate(r));
      await new Promise((r) => setTimeout(r, 20));
    } finally {
      process.off("uncaughtException", onUncaught);
      server.forceClose();
    }
    assert.equal(failure, undefined, `SEED=${seed}: ${String(failure)}`);
  });
});

// Issue 12: a grpc-go client sends a connection WINDOW_UPDATE before each BDP ping, so one per
// response it reads. Counted as control frames, a connection past maxControlFramesPerWindow
// responses per window was closed as a flood (etcd's benchmark tool, range at 1 client, 10,600/s).
describe("control-frame flood: WINDOW_UPDATEs that give back credit are spared", () => {
  let svc: FakeService;
  const reasons: string[] = [];
  before(async () => {
    svc = await startFake({
      h2: { maxControlFramesPerWindow: 50, floodWindowMs: 60_000 },
      onConnectionError: (info) => reasons.push(info.reason),
    });
  });
  after(async () => svc.close());

  const ended = (c: RawClient) =>
    c.frames.filter((f) => f.type === FrameType.HEADERS && f.flags & Flag.END_STREAM).length;

  test("a WINDOW_UPDATE on the connection and the stream plus a PING after every response stays up", async () => {
    const c = new RawClient(svc.port).hello();
    const rounds = 200; // 400 WINDOW_UPDATEs in one window, 8x the limit
    for (let i = 0; i < rounds; i++) {
      const id = 1 + 2 * i;
      c.write(headersFrame(id, requestHeaders("/etcdserverpb.KV/Put")));
      c.write(buildFrame(FrameType.DATA, Flag.END_STREAM, id, putBody(`k${i}`)));
      assert.ok(await c.waitFor(() => ended(c) === i + 1), `response ${i}`);
      c.write(
        Buffer.concat([
          buildWindowUpdate(0, 64),
          buildWindowUpdate(id, 64),
          buildFrame(FrameType.PING, 0, 0, Buffer.alloc(8, i & 0xff)),
        ]),
      );
    }
    assert.ok(
      await c.waitFor(
        (fs) => fs.filter((f) => f.type === FrameType.PING && f.flags & Flag.ACK).length === rounds,
      ),
    );
    assert.equal(c.closed, false);
    assert.equal(c.goaway(), undefined);
    assert.deepEqual(reasons, []);
    c.destroy();
  });

  /** A fresh connection that has had one Put answered (one DATA frame sent to it), then n
   * connection WINDOW_UPDATEs of 1 byte. */
  async function afterOneResponse(key: string, windowUpdates: number): Promise<RawClient> {
    const c = new RawClient(svc.port).hello();
    c.write(headersFrame(1, requestHeaders("/etcdserverpb.KV/Put")));
    c.write(buildFrame(FrameType.DATA, Flag.END_STREAM, 1, putBody(key)));
    assert.ok(await c.waitFor(() => ended(c) === 1));
    c.write(Buffer.concat(Array.from({ length: windowUpdates }, () => buildWindowUpdate(0, 1))));
    return c;
  }

  test("WINDOW_UPDATEs with no data sent since are a flood: GOAWAY ENHANCE_YOUR_CALM", async () => {
    // the response's DATA frame earns two WINDOW_UPDATEs; the other 51 count, one past the limit
    const c = await afterOneResponse("one", 53);
    assert.ok(await c.waitFor(() => c.closed));
    assert.equal(c.goawayCode(), H2ErrorCode.ENHANCE_YOUR_CALM);
    assert.deepEqual(reasons, ["control_frame_flood"]);
    assert.ok(await healthyPut(svc.port));
  });

  test("52 WINDOW_UPDATEs after one response stay within the limit (2 credited, 50 counted)", async () => {
    const c = await afterOneResponse("two", 52);
    c.write(buildFrame(FrameType.PING, 0, 0, Buffer.alloc(8, 7)));
    assert.ok(
      await c.waitFor((fs) => fs.some((f) => f.type === FrameType.PING && f.flags & Flag.ACK)),
    );
    assert.equal(c.closed, false);
    c.destroy();
  });
});
