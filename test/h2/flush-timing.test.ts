/**
 * When lib/h2 writes: a unary response waits for the loop's check phase (setImmediate), so the
 * responses of one turn leave in one write per connection; streamed DATA (watch events) leaves at
 * the end of the job that sent it (H2Connection._flushSoon), so a put's watchers get its event
 * before the put's own response leaves.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Duplex } from "node:stream";
import { H2Connection, defaultH2Limits, frames, type H2Stream } from "../../lib/h2/index.js";
import { requestHeaders } from "./raw-client.js";

const { FrameType, Flag, buildFrame, clientPreface } = frames;

/** A socket whose writes are logged in order with `marks` the test adds between them. */
class LoggingSocket extends Duplex {
  readonly log: string[] = [];
  override _read(): void {}
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.log.push(`write ${chunk.length}`);
    cb();
  }
}

/** A connection over a LoggingSocket with one open request stream; resolves with both. */
async function openStream(): Promise<{ socket: LoggingSocket; stream: H2Stream }> {
  const socket = new LoggingSocket();
  let resolveStream!: (s: H2Stream) => void;
  const opened = new Promise<H2Stream>((r) => (resolveStream = r));
  new H2Connection(
    socket,
    {
      onStream: (s) => {
        s.handler = { onData() {}, onEnd() {}, onReset() {} } as never;
        resolveStream(s);
      },
      onClose() {},
    },
    defaultH2Limits,
  );
  socket.push(
    Buffer.concat([
      clientPreface,
      buildFrame(FrameType.SETTINGS, 0, 0, Buffer.alloc(0)),
      buildFrame(FrameType.HEADERS, Flag.END_HEADERS, 1, requestHeaders("/x.Y/Z")),
    ]),
  );
  const stream = await opened;
  // let the handshake's own writes (SETTINGS, its ACK) go first
  await new Promise((r) => setImmediate(r));
  await new Promise((r) => setImmediate(r));
  socket.log.length = 0;
  return { socket, stream };
}

test("streamed DATA is written at the end of the job, before the check phase", async () => {
  const { socket, stream } = await openStream();
  setImmediate(() => socket.log.push("check phase"));
  stream.sendHeaders(requestHeaders("/ignored"), false);
  stream.sendData(Buffer.from([0, 0, 0, 0, 1, 7]));
  assert.equal(socket.log.length, 0, "nothing is written synchronously");
  await Promise.resolve();
  await new Promise((r) => setImmediate(r));
  assert.ok(socket.log.length >= 2, socket.log.join(", "));
  assert.match(socket.log[0]!, /^write /);
  assert.equal(socket.log.indexOf("check phase"), socket.log.length - 1, socket.log.join(", "));
});

test("headers alone wait for the check phase (a unary response's turn)", async () => {
  const { socket, stream } = await openStream();
  setImmediate(() => socket.log.push("check phase"));
  stream.sendHeaders(requestHeaders("/ignored"), true);
  await Promise.resolve();
  await new Promise((r) => setImmediate(r));
  assert.equal(socket.log[0], "check phase", socket.log.join(", "));
  assert.match(socket.log[1] ?? "", /^write /, socket.log.join(", "));
});
