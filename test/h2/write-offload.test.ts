/**
 * Fan-out writes on the thread pool (lib/h2/write-offload.ts): a burst of streamed DATA to
 * several connections is written by pool threads; every byte still arrives, in order, with the
 * connection's other frames (PING ACKs) and through full sockets; a socket closed while its pool
 * write runs keeps its fd until the write is done; single-connection writes, TLS sockets and a
 * busy event loop stay on the main thread.
 */
import { after, before, beforeEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import tls from "node:tls";
import { fstatSync } from "node:fs";
import {
  H2Connection,
  SocketWriteOffload,
  WriteOffload,
  defaultH2Limits,
  frames,
  writeOffload,
  type H2Stream,
} from "../../lib/h2/index.js";
import { RawClient, requestHeaders } from "./raw-client.js";

const { FrameType, Flag, SettingId, buildFrame, buildSettings, buildWindowUpdate } = frames;

interface Served {
  socket: net.Socket;
  conn: H2Connection;
  stream: H2Stream;
}

/** A member-side H2Connection per accepted socket; resolves each once its stream 1 is open. */
class Server {
  readonly listener: net.Server;
  #waiting: ((s: Served) => void)[] = [];
  #ready: Served[] = [];
  port = 0;

  constructor() {
    this.listener = net.createServer((socket) => {
      let conn: H2Connection | undefined = undefined;
      conn = new H2Connection(
        socket,
        {
          onStream: (stream) => {
            stream.handler = { onData() {}, onEnd() {}, onReset() {} } as never;
            const served = { socket, conn: conn!, stream };
            const w = this.#waiting.shift();
            if (w !== undefined) w(served);
            else this.#ready.push(served);
          },
          onClose() {},
        },
        // the test's clients ping at random, not as grpc-go's keepalive policy allows
        { ...defaultH2Limits, maxPingStrikes: 1_000_000 },
      );
    });
  }

  async listen(): Promise<void> {
    await new Promise<void>((r) => this.listener.listen(0, "127.0.0.1", r));
    this.port = (this.listener.address() as net.AddressInfo).port;
  }

  next(): Promise<Served> {
    const s = this.#ready.shift();
    if (s !== undefined) return Promise.resolve(s);
    return new Promise((r) => this.#waiting.push(r));
  }
}

/** A client with windows wide open, stream 1 opened; resolves with the member's side of it. */
const clients: RawClient[] = [];

async function connect(server: Server): Promise<{ client: RawClient; served: Served }> {
  const client = new RawClient(server.port);
  clients.push(client);
  client.write(
    Buffer.concat([
      frames.clientPreface,
      buildSettings([[SettingId.INITIAL_WINDOW_SIZE, frames.maxWindowBytes]]),
      buildWindowUpdate(0, frames.maxWindowBytes - frames.defaultWindowBytes),
      buildFrame(FrameType.HEADERS, Flag.END_HEADERS, 1, requestHeaders("/x.Y/Z")),
    ]),
  );
  const served = await server.next();
  served.stream.sendHeaders(requestHeaders("/reply"), false);
  return { client, served };
}

/** Stream 1's DATA payloads as one buffer. */
function stream1Data(client: RawClient): Buffer {
  return Buffer.concat(
    client.frames
      .filter((f) => f.type === FrameType.DATA && f.streamId === 1)
      .map((f) => f.payload),
  );
}

/** A small deterministic generator (seeded; the seed is in every failure message). */
function lcg(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x / 2 ** 32;
  };
}

describe("lib/h2 fan-out writes on the thread pool", () => {
  const server = new Server();
  const saved = { ...writeOffload.options };

  before(() => server.listen());
  after(() => {
    writeOffload.options = saved;
    for (const c of clients) c.destroy();
    server.listener.close();
  });
  beforeEach(() => {
    // judge only what the tests do: a busy test process must not close the gate
    writeOffload.options = { ...saved, enabled: true, maxEventLoopUtilization: 1, maxWriteMs: 1e9 };
    writeOffload.reset();
  });

  test("a burst to several connections goes through pool threads; every byte arrives in order", async () => {
    const seed = Number(process.env.OFFLOAD_SEED ?? Date.now() % 100_000);
    const rand = lcg(seed);
    const msg = `seed ${seed} (replay: OFFLOAD_SEED=${seed})`;
    const n = 6;
    const pairs: { client: RawClient; served: Served }[] = [];
    for (let i = 0; i < n; i++) pairs.push(await connect(server));
    const expected: Buffer[][] = pairs.map(() => []);
    const pingsSent = pairs.map(() => 0);
    const startedBefore = writeOffload.started;
    for (let burst = 0; burst < 300; burst++) {
      // one job writes to every connection (a put's event to watchers on n connections)
      for (let i = 0; i < n; i++) {
        // mostly event-sized, now and then 200 KiB (one write of its 13 frames, under the 256 KiB
        // of a single-buffer flush) so paused clients' sockets fill: EAGAIN, short writes
        const size = rand() < 0.03 ? 200 * 1024 : 1 + Math.floor(rand() * 4000);
        const b = Buffer.alloc(size);
        for (let j = 0; j < size; j += 997) b[j] = Math.floor(rand() * 256);
        if (size >= 4) b.writeUInt32BE(burst, 0);
        expected[i]!.push(b);
        pairs[i]!.served.stream.sendData(b);
      }
      const r = rand();
      if (r < 0.3) {
        // the clients ping meanwhile: the ACKs are main-thread writes that must wait their turn
        pairs.forEach((p, i) => {
          p.client.write(buildFrame(FrameType.PING, 0, 0, Buffer.alloc(8, burst)));
          pingsSent[i]!++;
        });
      } else if (r < 0.35) {
        // a client stops reading for a while: its socket fills
        const p = pairs[Math.floor(rand() * n)]!;
        p.client.socket.pause();
        setTimeout(() => p.client.socket.resume(), 5);
      }
      if (rand() < 0.5) await new Promise((res) => setImmediate(res));
    }
    for (let i = 0; i < n; i++) {
      const want = Buffer.concat(expected[i]!);
      const ok = await pairs[i]!.client.waitFor(
        () => stream1Data(pairs[i]!.client).length >= want.length,
        20_000,
      );
      assert.ok(
        ok,
        `connection ${i}: ${stream1Data(pairs[i]!.client).length} of ${want.length} bytes, closed ${pairs[i]!.client.closed}, GOAWAY ${pairs[i]!.client.goaway()?.payload.toString("latin1")}; ${msg}`,
      );
      assert.ok(
        stream1Data(pairs[i]!.client).equals(want),
        `connection ${i}: bytes differ; ${msg}`,
      );
      const acks = () =>
        pairs[i]!.client.frames.filter(
          (f) => f.type === FrameType.PING && (f.flags & Flag.ACK) !== 0,
        ).length;
      await pairs[i]!.client.waitFor(() => acks() >= pingsSent[i]!);
      assert.equal(acks(), pingsSent[i], `connection ${i}: every PING answered once; ${msg}`);
    }
    // 300 bursts to 6 connections, at most 4 pool writes at once and one per connection: 395-558
    // of them went to the pool on an idle 2-core box; writes still running at the next burst's
    // flush make that connection's next write a main-thread one, so a loaded box pools fewer
    const pooled = writeOffload.started - startedBefore;
    assert.ok(pooled >= 100, `${pooled} writes went to the pool; ${msg}`);
    for (const p of pairs) p.client.destroy();
  });

  test("a socket destroyed while its pool write runs keeps its fd until the write is done", async () => {
    const a = await connect(server);
    const b = await connect(server);
    await new Promise((r) => setImmediate(r));
    const fd = (a.served.socket as unknown as { _handle: { fd: number } })._handle.fd;
    const deferredBefore = writeOffload.deferredCloses;
    const startedBefore = writeOffload.started;
    const payload = Buffer.alloc(1000, 7);
    let fdWasOpen: boolean | undefined;
    let closed = false;
    a.served.socket.on("close", () => (closed = true));
    a.served.stream.sendData(payload);
    b.served.stream.sendData(payload);
    // after the two end-of-job flushes (microtasks queued before this one) started their writes
    queueMicrotask(() => {
      a.served.socket.destroy();
      try {
        fdWasOpen = fstatSync(fd).isSocket();
      } catch {
        fdWasOpen = false;
      }
    });
    await new Promise((r) => setImmediate(r));
    assert.equal(writeOffload.started - startedBefore, 2, "both flushes went to the pool");
    assert.equal(fdWasOpen, true, "the fd was closed under a running pool write");
    assert.equal(writeOffload.deferredCloses - deferredBefore, 1);
    await Promise.race([a.client.closedPromise, new Promise((r) => setTimeout(r, 3000))]);
    assert.equal(a.client.closed, true, "the client saw the close");
    assert.ok(await b.client.waitFor(() => stream1Data(b.client).length === payload.length));
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(closed, true, "the close went ahead once the write was done");
    b.client.destroy();
  });

  test("a flush to one connection alone stays on the main thread", async () => {
    const a = await connect(server);
    await new Promise((r) => setImmediate(r));
    const startedBefore = writeOffload.started;
    for (let i = 0; i < 20; i++) {
      a.served.stream.sendData(Buffer.alloc(100, i));
      await new Promise((r) => setImmediate(r));
    }
    assert.ok(await a.client.waitFor(() => stream1Data(a.client).length === 2000));
    assert.equal(writeOffload.started, startedBefore);
    a.client.destroy();
  });

  test("TLS sockets and sockets without an fd get no offload", () => {
    assert.equal(SocketWriteOffload.for(new tls.TLSSocket(new net.Socket())), undefined);
    assert.equal(SocketWriteOffload.for(new net.Socket()), undefined);
  });

  for (const mode of ["short", "eagain"] as const) {
    test(`a pool write that ${mode === "short" ? "writes part of its buffer" : "meets a full socket (EAGAIN)"}: the rest and the writes queued behind it follow in order`, async () => {
      // a gate whose pool "write" writes a third of the buffer, or nothing and fails with EAGAIN
      class PartialGate extends WriteOffload {
        override write(
          fd: number,
          buf: Buffer,
          done: (err: NodeJS.ErrnoException | null, n: number) => void,
        ): void {
          super.write(
            fd,
            mode === "short" ? buf.subarray(0, Math.floor(buf.length / 3)) : Buffer.alloc(0),
            (err, n) => {
              if (mode === "eagain") {
                const e: NodeJS.ErrnoException = new Error(
                  "EAGAIN: resource temporarily unavailable",
                );
                e.code = "EAGAIN";
                done(e, 0);
              } else done(err, n);
            },
          );
        }
      }
      const gate = new PartialGate({ ...writeOffload.options });
      const got: Buffer[] = [];
      const l = net.createServer();
      await new Promise<void>((r) => l.listen(0, "127.0.0.1", r));
      const accepted = new Promise<net.Socket>((r) => l.once("connection", r));
      const client = net.connect((l.address() as net.AddressInfo).port, "127.0.0.1");
      client.on("data", (d: Buffer) => got.push(d));
      const socket = await accepted;
      try {
        const offload = SocketWriteOffload.for(socket, gate)!;
        assert.ok(offload !== undefined);
        const first = Buffer.alloc(30_000, 1);
        for (let i = 0; i < first.length; i += 7) first[i] = i % 251;
        assert.equal(offload.tryWrite(first), true);
        assert.equal(offload.busy, true);
        assert.equal(offload.tryWrite(Buffer.from("no")), false, "one pool write at a time");
        offload.queue(Buffer.from("second"));
        offload.queue(Buffer.from("third"));
        const want = Buffer.concat([first, Buffer.from("secondthird")]);
        const end = Date.now() + 5000;
        while (Buffer.concat(got).length < want.length && Date.now() < end)
          await new Promise((r) => setTimeout(r, 5));
        assert.ok(
          Buffer.concat(got).equals(want),
          `${Buffer.concat(got).length} of ${want.length} bytes, or out of order`,
        );
        assert.equal(offload.busy, false);
      } finally {
        // a failed assertion must not leave handles that keep the test process up
        client.destroy();
        socket.destroy();
        l.close();
      }
    });
  }

  test("the gate: off, full, closed after a busy window, and after a write held in the pool", async () => {
    const gate = new WriteOffload({
      enabled: false,
      maxInFlight: 2,
      maxEventLoopUtilization: 0.5,
      maxWriteMs: 1e9,
      windowMs: 60_000, // judged by hand below
    });
    assert.equal(gate.tryStart(), false, "disabled");
    gate.options.enabled = true;
    assert.equal(gate.tryStart(), true);
    assert.equal(gate.tryStart(), true);
    assert.equal(gate.tryStart(), false, "maxInFlight reached");

    // a window with the event loop busy throughout closes it; an idle one opens it again
    const gate2 = new WriteOffload({ ...gate.options });
    assert.equal(gate2.tryStart(), true);
    gate2.judge();
    const end = Date.now() + 60;
    while (Date.now() < end) {
      // busy
    }
    gate2.judge();
    assert.equal(gate2.tryStart(), false, "closed after a busy window");
    await new Promise((r) => setTimeout(r, 100));
    gate2.judge();
    assert.equal(gate2.tryStart(), true, "open again after an idle window");

    // a write that has not come back within maxWriteMs closes it at the next start
    const gate3 = new WriteOffload({ ...gate.options, maxWriteMs: 5 });
    assert.equal(gate3.tryStart(), true); // never written: it stays "running"
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(gate3.tryStart(), false, "a write held in the pool closes the gate");
  });
});
