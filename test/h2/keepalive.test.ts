// Issue 12: lib/h2 enforces client PINGs as grpc-go's server does (keepalive EnforcementPolicy):
// a PING after a response never counts, so grpc-go's BDP pings on a busy connection are always
// fine; PINGs with nothing sent in between count as strikes when they come faster than the
// policy allows, and the third strike closes the connection with too_many_pings. Every close is
// reported with its reason (logged and counted by lib/api's connectionErrorReporter).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import client from "prom-client";
import pino from "pino";
import { Writable } from "node:stream";
import { type H2ConnectionErrorInfo, H2ErrorCode, frames } from "../../lib/h2/index.js";
import { connectionErrorReporter } from "../../lib/api/connection-errors.js";
import * as rpc from "../../lib/proto/gen/etcdserverpb/rpc.js";
import { startFake, type FakeService } from "./fixture.js";
import { RawClient, grpcMessage, requestHeaders } from "./raw-client.js";

const { FrameType, Flag, buildFrame } = frames;

const ping = (i: number) => buildFrame(FrameType.PING, 0, 0, Buffer.alloc(8, i & 0xff));
const pingAcks = (c: RawClient) =>
  c.frames.filter((f) => f.type === FrameType.PING && f.flags & Flag.ACK).length;
const endedStreams = (c: RawClient) =>
  c.frames.filter((f) => f.type === FrameType.HEADERS && f.flags & Flag.END_STREAM).length;

function putRequest(id: number): Buffer {
  const body = rpc.PutRequest.toBinary(
    rpc.PutRequest.create({ key: Buffer.from(`k${id}`), value: Buffer.from("v") }),
  );
  return Buffer.concat([
    buildFrame(FrameType.HEADERS, Flag.END_HEADERS, id, requestHeaders("/etcdserverpb.KV/Put")),
    buildFrame(FrameType.DATA, Flag.END_STREAM, id, grpcMessage(body)),
  ]);
}

/** Opens a Watch stream (HEADERS + a create request, no END_STREAM) and waits for its events. */
async function openWatch(c: RawClient, id: number): Promise<void> {
  const req = rpc.WatchRequest.toBinary(
    rpc.WatchRequest.create({
      requestUnion: {
        oneofKind: "createRequest",
        createRequest: rpc.WatchCreateRequest.create({ key: Buffer.from("w") }),
      },
    }),
  );
  c.write(
    Buffer.concat([
      buildFrame(
        FrameType.HEADERS,
        Flag.END_HEADERS,
        id,
        requestHeaders("/etcdserverpb.Watch/Watch"),
      ),
      buildFrame(FrameType.DATA, 0, id, grpcMessage(req)),
    ]),
  );
  const got = await c.waitFor(
    (fs) => fs.filter((f) => f.type === FrameType.DATA && f.streamId === id).length >= 2,
  );
  assert.ok(got, "watch stream answered");
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

describe("keepalive enforcement as grpc-go's server", () => {
  let strict: FakeService; // keepaliveMinTimeMs 10 s: any PING pair without a response is a strike
  let lenient: FakeService; // keepaliveMinTimeMs 40 ms
  const reported: H2ConnectionErrorInfo[] = [];
  before(async () => {
    strict = await startFake({
      h2: { keepaliveMinTimeMs: 10_000 },
      onConnectionError: (info) => reported.push(info),
    });
    lenient = await startFake({ h2: { keepaliveMinTimeMs: 40 } });
  });
  after(async () => {
    await strict.close();
    await lenient.close();
  });

  test("a busy connection with a PING after every response stays up (grpc-go BDP pings)", async () => {
    const c = new RawClient(strict.port).hello();
    const rounds = 300;
    for (let i = 0; i < rounds; i++) {
      const id = 1 + 2 * i;
      c.write(putRequest(id));
      assert.ok(await c.waitFor(() => endedStreams(c) === i + 1), `response ${i}`);
      c.write(ping(i));
    }
    assert.ok(await c.waitFor(() => pingAcks(c) === rounds));
    assert.equal(c.closed, false);
    assert.equal(c.goaway(), undefined);
    c.destroy();
  });

  test("PINGs with responses between them never strike, even in bursts of two", async () => {
    const c = new RawClient(strict.port).hello();
    for (let i = 0; i < 100; i++) {
      const id = 1 + 2 * i;
      c.write(putRequest(id));
      assert.ok(await c.waitFor(() => endedStreams(c) === i + 1));
      // two PINGs back to back after one response: the first resets, the second is one strike
      c.write(Buffer.concat([ping(2 * i), ping(2 * i + 1)]));
    }
    assert.ok(await c.waitFor(() => pingAcks(c) === 200));
    assert.equal(c.goaway(), undefined);
    c.destroy();
  });

  test("PINGs on an open but silent stream faster than the minimum time get too_many_pings", async () => {
    const before = reported.length;
    const c = new RawClient(strict.port).hello();
    await openWatch(c, 1);
    for (let i = 0; i < 10 && !c.closed; i++) {
      c.write(ping(i));
      await c.waitFor(() => pingAcks(c) > i || c.goaway() !== undefined, 1000);
    }
    await c.waitFor(() => c.closed);
    assert.equal(c.goawayCode(), H2ErrorCode.ENHANCE_YOUR_CALM);
    assert.equal(c.goaway()?.payload.subarray(8).toString(), "too_many_pings");
    // the PING after the watch's events resets, then two strikes pass and the third closes
    assert.equal(pingAcks(c), 4);
    assert.deepEqual(reported.slice(before), [
      {
        reason: "too_many_pings",
        h2Code: H2ErrorCode.ENHANCE_YOUR_CALM,
        message: "too_many_pings",
      },
    ]);
  });

  test("PINGs on an open stream spaced by the minimum time are never strikes", async () => {
    const c = new RawClient(lenient.port).hello();
    await openWatch(c, 1);
    for (let i = 0; i < 8; i++) {
      c.write(ping(i));
      assert.ok(await c.waitFor(() => pingAcks(c) > i));
      await sleep(60);
    }
    assert.equal(c.goaway(), undefined);
    assert.equal(c.closed, false);
    c.destroy();
  });

  test("without open streams a client may not ping again within 2 hours (PermitWithoutStream false)", async () => {
    const c = new RawClient(lenient.port).hello();
    for (let i = 0; i < 10 && !c.closed; i++) {
      c.write(ping(i));
      await c.waitFor(() => pingAcks(c) > i || c.closed, 1000);
      await sleep(60);
    }
    await c.waitFor(() => c.closed);
    assert.equal(c.goaway()?.payload.subarray(8).toString(), "too_many_pings");
    assert.equal(pingAcks(c), 4);
  });
});

describe("PING ACKs share the next response's write (H2Limits.pingAckDelayMs)", () => {
  let held: FakeService; // 10 s: an ACK waits for a response
  let short: FakeService; // 100 ms
  let prompt: FakeService; // 0: at once
  before(async () => {
    held = await startFake({ h2: { pingAckDelayMs: 10_000 } });
    short = await startFake({ h2: { pingAckDelayMs: 100 } });
    prompt = await startFake({ h2: { pingAckDelayMs: 0 } });
  });
  after(async () => {
    await held.close();
    await short.close();
    await prompt.close();
  });
  const settled = (c: RawClient) =>
    c.waitFor((fs) => fs.some((f) => f.type === FrameType.SETTINGS && f.flags & Flag.ACK));

  test("an ACK held for a response goes out first with it, long before the delay", async () => {
    const c = new RawClient(held.port).hello();
    try {
      await settled(c);
      c.write(ping(1));
      await sleep(50);
      assert.equal(pingAcks(c), 0, "held while nothing else is written");
      c.write(putRequest(1));
      assert.ok(await c.waitFor(() => endedStreams(c) === 1, 3000));
      const ack = c.frames.findIndex((f) => f.type === FrameType.PING && f.flags & Flag.ACK);
      const headers = c.frames.findIndex((f) => f.type === FrameType.HEADERS && f.streamId === 1);
      assert.ok(ack >= 0 && ack < headers, "the ACK comes before the response's frames");
      assert.deepEqual(c.frames[ack]!.payload, Buffer.alloc(8, 1), "the PING's payload");
    } finally {
      c.destroy();
    }
  });

  test("with nothing to write, the ACK goes out alone when the delay runs out", async () => {
    const c = new RawClient(short.port).hello();
    try {
      await settled(c);
      c.write(ping(2));
      assert.ok(await c.waitFor(() => pingAcks(c) === 1, 3000));
      assert.equal(c.closed, false);
    } finally {
      c.destroy();
    }
  });

  test("after two held ACKs went out alone, the next ones are sent at once", async () => {
    const slow = await startFake({ h2: { pingAckDelayMs: 600 } });
    const c = new RawClient(slow.port).hello();
    try {
      await settled(c);
      for (let i = 1; i <= 2; i++) {
        const t0 = Date.now();
        c.write(ping(10 + i));
        assert.ok(await c.waitFor(() => pingAcks(c) === i, 5000));
        assert.ok(Date.now() - t0 >= 500, `ACK ${i} was held for the delay`);
      }
      const t0 = Date.now();
      c.write(ping(13));
      assert.ok(await c.waitFor(() => pingAcks(c) === 3, 5000));
      assert.ok(Date.now() - t0 < 400, `the third ACK came at once, not after 600 ms`);
    } finally {
      c.destroy();
      await slow.close();
    }
  });

  test("with delay 0 every ACK is sent at once", async () => {
    const c = new RawClient(prompt.port).hello();
    try {
      await settled(c);
      c.write(ping(3));
      assert.ok(await c.waitFor(() => pingAcks(c) === 1, 1000));
    } finally {
      c.destroy();
    }
  });
});

describe("connectionErrorReporter", () => {
  function setup() {
    const lines: {
      level: number;
      msg: string;
      reason?: string;
      closedSinceLastWarning?: number;
    }[] = [];
    const sink = new Writable({
      write(chunk, _enc, cb) {
        lines.push(JSON.parse(String(chunk)));
        cb();
      },
    });
    const logger = pino({ level: "debug" }, sink);
    const registry = new client.Registry();
    const counter = new client.Counter({
      name: "test_connection_errors_total",
      help: "test",
      labelNames: ["reason"],
      registers: [registry],
    });
    let now = 0;
    const report = connectionErrorReporter(logger, counter, 10_000, () => now);
    return { lines, counter, report, setNow: (ms: number) => (now = ms) };
  }
  const tooManyPings: H2ConnectionErrorInfo = {
    reason: "too_many_pings",
    h2Code: H2ErrorCode.ENHANCE_YOUR_CALM,
    message: "too_many_pings",
  };

  test("counts by reason, warns about a defence once per interval with the closes in between", async () => {
    const { lines, counter, report, setNow } = setup();
    report(tooManyPings, "127.0.0.1:1");
    setNow(5_000);
    report(tooManyPings, "127.0.0.1:2");
    report(tooManyPings, "127.0.0.1:3");
    setNow(10_001);
    report(tooManyPings, "127.0.0.1:4");
    report(
      { reason: "protocol_error", h2Code: H2ErrorCode.PROTOCOL_ERROR, message: "bad preface" },
      "127.0.0.1:5",
    );
    report({ reason: "socket_error", h2Code: undefined, message: "ECONNRESET" }, "127.0.0.1:6");
    await new Promise((r) => setImmediate(r));
    const values = (await counter.get()).values.map((v) => [v.labels.reason, v.value]);
    assert.deepEqual(values.sort(), [
      ["protocol_error", 1],
      ["too_many_pings", 4],
    ]);
    const warns = lines.filter((l) => l.level === 40);
    assert.equal(warns.length, 2);
    assert.equal(warns[0].closedSinceLastWarning, 0);
    assert.equal(warns[1].closedSinceLastWarning, 2);
    assert.match(warns[0].msg, /too_many_pings/);
    // every error, the socket error included, is logged at debug
    assert.equal(lines.filter((l) => l.level === 20).length, 6);
  });
});
