// A raw HTTP/2 client socket for attack and protocol tests: writes hand-built frames and parses
// the server's frames, so tests can send what no well-behaved client would.
import net from "node:net";
import { frames } from "../../lib/h2/index.js";
import { encodeHeaderBlock } from "../../lib/h2/hpack.js";

export interface RawFrame {
  type: number;
  flags: number;
  streamId: number;
  payload: Buffer;
}

export class RawClient {
  readonly socket: net.Socket;
  readonly frames: RawFrame[] = [];
  closed = false;
  #buf = Buffer.alloc(0);
  #waiters: (() => void)[] = [];
  readonly closedPromise: Promise<void>;

  constructor(port: number) {
    this.socket = net.connect(port, "127.0.0.1");
    this.socket.on("data", (d: Buffer) => {
      this.#buf = Buffer.concat([this.#buf, d]);
      while (this.#buf.length >= 9) {
        const len = this.#buf.readUIntBE(0, 3);
        if (this.#buf.length < 9 + len) break;
        this.frames.push({
          type: this.#buf[3],
          flags: this.#buf[4],
          streamId: this.#buf.readUInt32BE(5) & 0x7fffffff,
          payload: this.#buf.subarray(9, 9 + len),
        });
        this.#buf = this.#buf.subarray(9 + len);
      }
      this.#wake();
    });
    this.socket.on("error", () => {});
    this.closedPromise = new Promise((r) =>
      this.socket.on("close", () => {
        this.closed = true;
        this.#wake();
        r();
      }),
    );
  }

  #wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const fn of w) fn();
  }

  /** preface + empty SETTINGS */
  hello(): this {
    this.write(Buffer.concat([frames.clientPreface, frames.buildSettings([])]));
    return this;
  }

  write(b: Buffer): void {
    if (!this.socket.destroyed) this.socket.write(b);
  }

  /** Waits until `pred` holds on the received frames (or the socket closed), at most `ms`. */
  async waitFor(pred: (fs: RawFrame[]) => boolean, ms = 3000): Promise<boolean> {
    const end = Date.now() + ms;
    while (!pred(this.frames)) {
      if (this.closed || Date.now() > end) return pred(this.frames);
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.max(1, end - Date.now()));
        this.#waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
    return true;
  }

  goaway(): RawFrame | undefined {
    return this.frames.find((f) => f.type === frames.FrameType.GOAWAY);
  }

  goawayCode(): number | undefined {
    const g = this.goaway();
    return g === undefined ? undefined : g.payload.readUInt32BE(4);
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** A gRPC request header block for `path` (plain literals). */
export function requestHeaders(path: string, extra: [string, string][] = []): Buffer {
  return encodeHeaderBlock([
    [":method", "POST"],
    [":scheme", "http"],
    [":path", path],
    [":authority", "localhost"],
    ["content-type", "application/grpc"],
    ["te", "trailers"],
    ...extra,
  ]);
}

/** A length-prefixed gRPC message. */
export function grpcMessage(body: Uint8Array): Buffer {
  const out = Buffer.alloc(5 + body.length);
  out.writeUInt32BE(body.length, 1);
  out.set(body, 5);
  return out;
}
