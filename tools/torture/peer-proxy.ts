/**
 * TCP proxies between members, for partitions without touching the processes (issue 14's
 * partition tests and `etcd-ts-util torture --faults partition`). A member listens on its real
 * peer port and advertises the proxy's (`--initial-advertise-peer-urls` and `--initial-cluster`
 * name the proxy), so every peer connection to it passes through its proxy.
 *
 * A proxy reads the first HELLO_BYTES bytes of each connection: an etcd-ts peer hello names its
 * sender (lib/transport hello.ts), so the proxy can refuse the members it is told to block. With
 * TLS peer URLs the hello is encrypted and names no one: such a connection (and any that is not a
 * hello, such as the peer HTTP endpoints) is forwarded byte for byte unless the member behind the
 * proxy is isolated, in which case it is refused. Loopback only.
 */
import { Buffer } from "node:buffer";
import * as net from "node:net";
import { HELLO_BYTES, HELLO_MAGIC } from "../../lib/transport/index.js";

/** How long a new connection may take to send its first bytes before it is closed, ms. */
const FIRST_BYTES_TIMEOUT_MS = 5_000;

/**
 * A TCP proxy in front of one member's peer port: `block(ids)` cuts those members off from this
 * one (in both directions when every member's proxy blocks the same set), closing their open
 * connections too; `unblock()` heals.
 */
export class PeerProxy {
  readonly #server: net.Server;
  readonly #target: number;
  readonly #self: bigint;
  #blocked = new Set<bigint>();
  #isolated = false;
  readonly #open = new Map<net.Socket, { from: bigint | undefined; peer: net.Socket }>();

  private constructor(server: net.Server, targetPort: number, self: bigint) {
    this.#server = server;
    this.#target = targetPort;
    this.#self = self;
  }

  /**
   * Listens on 127.0.0.1:`listenPort` and forwards to 127.0.0.1:`targetPort`, the peer port of
   * the member whose id is `self`. Rejects when the port cannot be bound.
   */
  static start(listenPort: number, targetPort: number, self: bigint): Promise<PeerProxy> {
    return new Promise((resolve, reject) => {
      const server = net.createServer();
      const proxy = new PeerProxy(server, targetPort, self);
      server.on("connection", (sock: net.Socket) => proxy.#accept(sock));
      server.once("error", reject);
      server.listen(listenPort, "127.0.0.1", () => resolve(proxy));
    });
  }

  /** True while this proxy blocks anyone. */
  get blocking(): boolean {
    return this.#isolated || this.#blocked.size > 0;
  }

  /**
   * Refuses traffic from `ids` to this member (and, with `isolate`, every connection that does
   * not name its sender, so this member is cut off from all). Open connections from them close.
   */
  block(ids: Iterable<bigint>, isolate = false): void {
    this.#blocked = new Set(ids);
    this.#isolated = isolate;
    for (const [s, c] of this.#open) {
      if (this.#refuses(c.from)) {
        s.destroy();
        c.peer.destroy();
      }
    }
  }

  /** Forwards everything again. */
  unblock(): void {
    this.#blocked = new Set();
    this.#isolated = false;
  }

  #refuses(from: bigint | undefined): boolean {
    if (from === undefined) return this.#isolated;
    return this.#blocked.has(from) || (this.#isolated && from !== this.#self);
  }

  #accept(s: net.Socket): void {
    s.on("error", () => {});
    let head = Buffer.alloc(0);
    const timer = setTimeout(() => s.destroy(), FIRST_BYTES_TIMEOUT_MS);
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const isHello = head.length >= 4 && head.readUInt32BE(0) === HELLO_MAGIC;
      if (isHello && head.length < HELLO_BYTES) return;
      clearTimeout(timer);
      s.removeListener("data", onData);
      s.pause();
      // the hello's sender member id is at bytes 16..24
      const from = isHello ? head.readBigUInt64BE(16) : undefined;
      if (this.#refuses(from)) {
        s.destroy();
        return;
      }
      const up = net.connect(this.#target, "127.0.0.1");
      up.on("error", () => s.destroy());
      s.on("close", () => up.destroy());
      up.on("close", () => s.destroy());
      this.#open.set(s, { from, peer: up });
      s.once("close", () => this.#open.delete(s));
      up.write(head);
      s.pipe(up);
      up.pipe(s);
      s.resume();
    };
    s.on("data", onData);
  }

  /** Closes every connection and the listening socket. */
  close(): void {
    for (const [s, c] of this.#open) {
      s.destroy();
      c.peer.destroy();
    }
    this.#server.close();
  }
}

/**
 * Cuts the members `cut` off from the rest: `proxies[i]` stands in front of the member `ids[i]`;
 * every proxy of the rest refuses the cut members and the proxies of the cut members refuse
 * everyone else (both directions).
 */
export function partitionProxies(
  proxies: readonly PeerProxy[],
  ids: readonly bigint[],
  cut: ReadonlySet<bigint>,
): void {
  const rest = new Set(ids.filter((id) => !cut.has(id)));
  proxies.forEach((p, i) => {
    if (cut.has(ids[i]!)) p.block(rest, true);
    else p.block(cut);
  });
}

/** Heals every partition made by partitionProxies. */
export function healProxies(proxies: readonly PeerProxy[]): void {
  for (const p of proxies) p.unblock();
}
