/**
 * Fan-out writes on libuv's thread pool.
 *
 * When one job streams data to several connections (a put's event to the watchers on ten
 * connections), lib/h2 writes each connection's bytes at the end of the job, one socket write per
 * connection (H2Connection._flushSoon). On loopback each write delivers the bytes to the client
 * and wakes the client's thread inside the write call. Linux treats a socket wake-up as a
 * synchronous one and places the woken thread on the writer's core, expecting the writer to
 * sleep soon. A Node member does not sleep: it goes on to write the next connections and the
 * put's response on the same core. So the client's threads wait on that core while the member
 * finishes its burst. etcd writes each watch stream from a goroutine of its own, which parks
 * right after its write.
 *
 * Measured with etcd's tool (`benchmark watch-latency`, 100 watchers on 10 connections, 100
 * puts/s, 2 cores): `perf sched` showed the tool's reader threads waking on the member's core and
 * waiting 160-170 µs there. The tool's p50 was 1.38x etcd's. With the writes of such bursts made
 * by pool threads, which sleep after their write, it was 0.60-0.67x (bench/README.md, "Watch
 * latency: the writes of a fan-out on the thread pool").
 *
 * A write goes to the pool only when all of these hold:
 * - it is the end-of-job flush of a burst that writes to two connections or more;
 * - the socket is plain TCP (a TLS socket's bytes are encrypted on the main thread) with nothing
 *   queued in it;
 * - fewer than maxInFlight pool writes are running, so WAL jobs queue behind at most a few
 *   short writes;
 * - over the last window the event loop was busy at most maxEventLoopUtilization of the time
 *   (under load the main thread's writes cost less CPU, and latency is queueing);
 * - no pool write of the last window took longer than maxWriteMs, and none still running is
 *   older than that (the pool is held by bcrypt hashes or the fsyncs of a stalled disk).
 *
 * While a connection's pool write runs, its other writes wait in order, and its socket is not
 * closed: the fd must not be reused by a file the pool thread would then write into.
 *
 * Two Node internals are relied on (Node 20): a net.Socket's `_handle.fd`, and `_destroy` as the
 * method every `destroy()` of a stream goes through (the stream implementer's API). A socket
 * without a numeric fd gets no offload.
 */
import { write as fsWrite } from "node:fs";
import type { Socket } from "node:net";
import { performance, type EventLoopUtilization } from "node:perf_hooks";
import { TLSSocket } from "node:tls";
import type { Duplex } from "node:stream";

/** When the pool takes writes (see the module comment). */
export interface WriteOffloadOptions {
  /** turns the offload off entirely; env ETCD_TS_H2_WRITE_OFFLOAD=0 sets it at start-up */
  enabled: boolean;
  /** pool writes running at once over all connections (each holds a pool thread) */
  maxInFlight: number;
  /** the pool takes writes only while the event loop was busy at most this fraction (0-1) */
  maxEventLoopUtilization: number;
  /**
   * a pool write slower than this, from submit until its completion runs on the main thread,
   * closes the pool to writes for a window; so does one still running after this long (a pool
   * held by fsyncs of a stalled disk or bcrypt hashes). A main-thread job longer than this also
   * delays completions and closes it, which is wanted: such a loop is busy.
   */
  maxWriteMs: number;
  /** the window over which the last two are judged, in ms */
  windowMs: number;
}

export const defaultWriteOffloadOptions: WriteOffloadOptions = {
  enabled: process.env.ETCD_TS_H2_WRITE_OFFLOAD !== "0",
  maxInFlight: 4,
  maxEventLoopUtilization: 0.5,
  maxWriteMs: 2,
  windowMs: 100,
};

/**
 * The process's gate for pool writes: counts the writes in flight and judges each window's event
 * loop utilization and write times. One per process (`writeOffload`), as the pool is.
 */
export class WriteOffload {
  options: WriteOffloadOptions;
  /** pool writes started (for tests and benchmarks) */
  started = 0;
  /** socket closes that waited for a pool write (for tests) */
  deferredCloses = 0;
  /** submit times (performance.now()) of the pool writes running, oldest first */
  #running: number[] = [];
  #open = true;
  #slowInWindow = false;
  #timer: NodeJS.Timeout | undefined;
  #lastElu: EventLoopUtilization | undefined;

  constructor(options: WriteOffloadOptions = defaultWriteOffloadOptions) {
    this.options = { ...options };
  }

  get inFlight(): number {
    return this.#running.length;
  }

  /**
   * Takes a slot for one pool write; false when the pool is not to be used now. The caller must
   * then call write() at once.
   */
  tryStart(): boolean {
    const running = this.#running;
    if (!this.options.enabled || running.length >= this.options.maxInFlight) return false;
    this.#watch();
    if (!this.#open) return false;
    if (running.length > 0 && performance.now() - running[0]! > this.options.maxWriteMs) {
      // a write waits in a held pool: no more until a window without slow writes
      this.#open = false;
      this.#slowInWindow = true;
      return false;
    }
    running.push(performance.now());
    this.started++;
    return true;
  }

  /**
   * Writes `buf` to `fd` on a pool thread (one write(2), which may write part of it or fail with
   * EAGAIN on a full socket), then calls `done` on the main thread with the bytes written.
   * Call only after tryStart() returned true.
   */
  write(
    fd: number,
    buf: Buffer,
    done: (err: NodeJS.ErrnoException | null, n: number) => void,
  ): void {
    const startMs = this.#running[this.#running.length - 1]!;
    const end = (err: NodeJS.ErrnoException | null, n: number): void => {
      this.#running.splice(this.#running.indexOf(startMs), 1);
      if (performance.now() - startMs > this.options.maxWriteMs) this.#slowInWindow = true;
      done(err, n);
    };
    try {
      fsWrite(fd, buf, 0, buf.length, null, end);
    } catch (err) {
      // not submitted (bad arguments): the caller writes it through the socket instead
      queueMicrotask(() => end(err as NodeJS.ErrnoException, 0));
    }
  }

  /** Starts the window timer on first use (unref'd: it never keeps the process up). */
  #watch(): void {
    if (this.#timer !== undefined) return;
    this.#lastElu = performance.eventLoopUtilization();
    this.#timer = setInterval(() => this.judge(), this.options.windowMs);
    this.#timer.unref();
  }

  /**
   * Judges the window since the last judgement: open when the event loop was busy at most
   * maxEventLoopUtilization of it and no pool write was slow. The window timer calls it; tests
   * call it directly.
   */
  judge(): void {
    if (this.#lastElu === undefined) {
      this.#lastElu = performance.eventLoopUtilization();
      return;
    }
    const now = performance.eventLoopUtilization();
    const u = performance.eventLoopUtilization(now, this.#lastElu).utilization;
    this.#lastElu = now;
    // an empty window (NaN) counts as idle
    this.#open = !(u > this.options.maxEventLoopUtilization) && !this.#slowInWindow;
    this.#slowInWindow = false;
  }

  /** Opens the gate now (tests: the judged window may have been a busy test's). */
  reset(): void {
    this.#open = true;
    this.#slowInWindow = false;
  }
}

/** The process's offload gate, shared by every connection. */
export const writeOffload = new WriteOffload();

/**
 * One connection's pool writes: at most one at a time; writes asked for meanwhile wait in order
 * and go out through the socket when it ends; a close asked for meanwhile (from any code: ours,
 * the listener's, Node's own on a read error) waits too, so the fd stays this socket's until the
 * pool thread is done with it.
 */
export class SocketWriteOffload {
  readonly #socket: Socket;
  readonly #fd: number;
  readonly #gate: WriteOffload;
  #busy = false;
  #waiting: Buffer[] = [];
  #waitingBytes = 0;
  #endWhenDone = false;
  #closeWhenDone: (() => void) | undefined;

  /**
   * An offload for `socket` when it is a plain TCP socket with an fd, else undefined. Wraps the
   * socket's _destroy (the stream method every destroy() goes through) to hold the close.
   */
  static for(socket: Duplex, gate: WriteOffload = writeOffload): SocketWriteOffload | undefined {
    if (socket instanceof TLSSocket) return undefined;
    const fd = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
    if (typeof fd !== "number" || fd < 0) return undefined;
    return new SocketWriteOffload(socket as Socket, fd, gate);
  }

  private constructor(socket: Socket, fd: number, gate: WriteOffload) {
    this.#socket = socket;
    this.#fd = fd;
    this.#gate = gate;
    type Destroy = (err: Error | null, cb: (err?: Error | null) => void) => void;
    const s = socket as unknown as { _destroy: Destroy };
    const destroy = s._destroy;
    s._destroy = (err, cb) => {
      if (this.#busy) {
        gate.deferredCloses++;
        this.#closeWhenDone = () => destroy.call(socket, err, cb);
        return;
      }
      destroy.call(socket, err, cb);
    };
  }

  /** A pool write is running: every write must go through queue() until it ends. */
  get busy(): boolean {
    return this.#busy;
  }

  /** Bytes waiting behind the running pool write. */
  get waitingBytes(): number {
    return this.#waitingBytes;
  }

  /** Starts a pool write of `buf` if the gate allows and the socket has nothing queued. */
  tryWrite(buf: Buffer): boolean {
    const s = this.#socket;
    if (this.#busy || s.destroyed || s.writableEnded || s.writableLength > 0) return false;
    if (!this.#gate.tryStart()) return false;
    this.#busy = true;
    this.#gate.write(this.#fd, buf, (err, n) => this.#done(buf, err, n));
    return true;
  }

  /** Queues `buf` behind the running pool write. */
  queue(buf: Buffer): void {
    this.#waiting.push(buf);
    this.#waitingBytes += buf.length;
  }

  /** socket.end(), after the running pool write and what waits behind it. */
  end(): void {
    if (this.#busy) this.#endWhenDone = true;
    else this.#socket.end();
  }

  #done(buf: Buffer, err: NodeJS.ErrnoException | null, n: number): void {
    this.#busy = false;
    const close = this.#closeWhenDone;
    if (close !== undefined) {
      this.#closeWhenDone = undefined;
      this.#waiting = [];
      this.#waitingBytes = 0;
      close();
      return;
    }
    const s = this.#socket;
    // what the pool thread did not write (EAGAIN on a full socket, a short write, an error the
    // socket then reports itself) goes first, through the socket's own queue
    const rest = err !== null ? buf : n < buf.length ? buf.subarray(n) : undefined;
    const waiting = this.#waiting;
    this.#waiting = [];
    this.#waitingBytes = 0;
    if (!s.destroyed && !s.writableEnded && (rest !== undefined || waiting.length > 0)) {
      s.cork();
      if (rest !== undefined) s.write(rest);
      for (const b of waiting) s.write(b);
      s.uncork();
    }
    if (this.#endWhenDone) {
      this.#endWhenDone = false;
      s.end();
    }
  }
}
