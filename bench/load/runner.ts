/**
 * Runs one shard of a load (all of it when there is one process): opens this shard's share of
 * the connections, runs its share of the concurrent client loops over them (many streams per
 * HTTP/2 session, as etcd's benchmark tool shares --conns gRPC connections among --clients), and
 * returns its counts and histograms. Workloads follow etcd v3.4 tools/benchmark/cmd.
 */
import { randomBytes, randomInt } from "node:crypto";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import {
  LeaseGrantRequest,
  LeaseGrantResponse,
  LeaseKeepAliveRequest,
  WatchRequest,
  WatchResponse,
} from "../../lib/proto/gen/etcdserverpb/rpc.js";
import { AuthError, ConnectionLostError, GrpcCallError, LoadError } from "./errors.js";
import { ConnectionCredentials, frameAuthenticate } from "./auth.js";
import { AckToEventLatency } from "./watch-ack.js";
import { frameMessage } from "./grpc-frame.js";
import { H2GrpcConnection, type BidiStream } from "./h2-connection.js";
import { RawH2Connection } from "./raw-connection.js";
import { GrpcJsConnection } from "./grpcjs-connection.js";

/** Any transport: all offer unary, bidi, setToken and close with the same meaning. */
export type GrpcConnection = H2GrpcConnection | RawH2Connection | GrpcJsConnection;
import { encodeHistogram, newHistogram, recordMs, type LatencyHistogram } from "./histogram.js";
import { benchKey, framePut, frameRange, frameTxnPut, GrpcPath } from "./messages.js";
import { WATCH_VALUE_HEADER_BYTES, type LoadOptions } from "./options.js";

/** Which part of the load this process runs: shard `index` of `count`. */
export interface Shard {
  index: number;
  count: number;
}

/** Error counts keyed by a short description ("grpc-status 8: ...", "LOAD_CONNECTION_LOST"). */
export type ErrorCounts = Record<string, number>;

/** What one shard measured. Histograms are in µs, encoded (see histogram.ts). */
export interface ShardResult {
  shard: Shard;
  /** Requests completed (ok + failed); for watch: puts. */
  requests: number;
  errors: number;
  errorCounts: ErrorCounts;
  /** From the start barrier to the last response, ms. */
  elapsedMs: number;
  histogram: string;
  /** With --user: Authenticate calls made again after the server refused a token as stale. */
  reauthentications: number;
  /**
   * watch only: events received; latency from the put's send (`eventHistogram`, wall clock
   * carried in the value) and from its acknowledgement (`ackEventHistogram`, this shard's own
   * puts only, see watch-ack.ts); the wall-clock window.
   */
  watch?: {
    watchers: number;
    expectedEvents: number;
    events: number;
    eventHistogram: string;
    ackEventHistogram: string;
    eventsBeforeAck: number;
    firstPutWallMs: number;
    lastEventWallMs: number;
  };
}

/**
 * One unary call on a connection: `conn.unary`, or with --user the call that logs in again on a
 * stale token (auth.ts).
 */
export type UnaryCall = (conn: GrpcConnection, path: string, frame: Buffer) => Promise<Buffer>;

const plainUnary: UnaryCall = (conn, path, frame) => conn.unary(path, frame);

/** Callbacks from the shard to its driver. */
export interface ShardHooks {
  /** Called once set-up is done (connected, watchers created, leases granted); resolves at "go". */
  ready(): Promise<void>;
  /** About once a second: requests completed so far. */
  progress?(done: number): void;
  /** Ends the run early: no request is started after it fires (in-flight ones finish). */
  stop?: AbortSignal;
}

/** Interval of progress callbacks, ms. */
export const PROGRESS_INTERVAL_MS = 1000;
/** Distinct error descriptions kept per shard (the rest are counted under "other"). */
export const MAX_ERROR_KINDS = 32;

/** The part of `n` shard `s` gets: an even split, the first shards taking the remainder. */
export function shareOf(n: number, s: Shard): number {
  return Math.floor(n / s.count) + (s.index < n % s.count ? 1 : 0);
}

/** The first global index of shard `s`'s contiguous part of `n`. */
export function offsetOf(n: number, s: Shard): number {
  const base = Math.floor(n / s.count);
  return s.index * base + Math.min(s.index, n % s.count);
}

function wallMs(): number {
  return performance.timeOrigin + performance.now();
}

class ErrorTally {
  count = 0;
  readonly kinds: ErrorCounts = {};
  add(err: unknown): void {
    this.count++;
    let k: string;
    if (err instanceof GrpcCallError) k = `grpc-status ${err.grpcStatus}: ${err.grpcMessage}`;
    else if (err instanceof LoadError) k = err.code;
    else k = err instanceof Error ? err.message : String(err);
    if (!(k in this.kinds) && Object.keys(this.kinds).length >= MAX_ERROR_KINDS) k = "other";
    this.kinds[k] = (this.kinds[k] ?? 0) + 1;
  }
}

/**
 * Hands out request slots to client loops: stops at `total` (or the deadline) and spaces slots
 * `1000/rate` ms apart when a rate is set (a leaky bucket started at `start()`).
 */
class Pacer {
  issued = 0;
  #t0 = 0;
  #deadline = Infinity;
  readonly #total: number;
  readonly #rate: number;
  readonly #durationMs: number;
  readonly #stop: AbortSignal | undefined;
  constructor(total: number, rate: number, durationSeconds: number, stop?: AbortSignal) {
    this.#total = durationSeconds > 0 ? Number.MAX_SAFE_INTEGER : total;
    this.#rate = rate;
    this.#durationMs = durationSeconds * 1000;
    this.#stop = stop;
  }
  start(): void {
    this.#t0 = performance.now();
    if (this.#durationMs > 0) this.#deadline = this.#t0 + this.#durationMs;
  }
  /** The slot number, or -1 when the run is over. */
  async take(): Promise<number> {
    if (this.issued >= this.#total) return -1;
    const i = this.issued++;
    if (this.#rate > 0) {
      const wait = this.#t0 + (i * 1000) / this.#rate - performance.now();
      if (wait > 1) await sleep(wait);
    }
    if (performance.now() >= this.#deadline || this.#stop?.aborted === true) return -1;
    return i;
  }
}

/** Opens this shard's share of `total` connections (at least one), endpoints round-robin. */
async function connectAll(o: LoadOptions, shard: Shard, total: number): Promise<GrpcConnection[]> {
  const n = Math.max(1, shareOf(total, shard));
  const first = offsetOf(total, shard);
  const conns: GrpcConnection[] = [];
  const connect: (e: string) => Promise<GrpcConnection> =
    o.transport === "http2"
      ? H2GrpcConnection.connect
      : o.transport === "grpc-js"
        ? GrpcJsConnection.connect
        : RawH2Connection.connect;
  try {
    for (let j = 0; j < n; j++) {
      conns.push(await connect(o.endpoints[(first + j) % o.endpoints.length]!));
    }
  } catch (err) {
    await Promise.all(conns.map((c) => c.close()));
    throw err;
  }
  return conns;
}

/** Picks the key number for slot `i` as etcd's benchmark does (sequential or uniform random). */
function keyNumber(o: LoadOptions, globalSlot: number): number {
  return o.sequentialKeys
    ? globalSlot % o.keySpaceSize
    : randomInt(0, Math.min(o.keySpaceSize, 2 ** 48 - 1));
}

/**
 * Runs a unary workload: `clients` loops, each taking a slot, building the framed request for it
 * and awaiting the response on its connection.
 */
async function runUnary(
  o: LoadOptions,
  shard: Shard,
  conns: GrpcConnection[],
  hooks: ShardHooks,
  call: UnaryCall,
  path: string,
  build: (globalSlot: number) => Buffer,
): Promise<ShardResult> {
  const clients = shareOf(o.clients, shard);
  const total = shareOf(o.total, shard);
  const slotBase = offsetOf(o.total, shard);
  const pacer = new Pacer(total, o.rate / shard.count, o.durationSeconds, hooks.stop);
  const hist = newHistogram();
  const errors = new ErrorTally();
  let done = 0;
  const loop = async (conn: GrpcConnection): Promise<void> => {
    for (;;) {
      const i = await pacer.take();
      if (i < 0) return;
      const frame = build(slotBase + i);
      const t0 = performance.now();
      try {
        await call(conn, path, frame);
        recordMs(hist, performance.now() - t0);
      } catch (err) {
        errors.add(err);
        if (err instanceof ConnectionLostError) return; // every later call would fail at once
      } finally {
        done++;
      }
    }
  };
  await hooks.ready();
  const timer = startProgress(hooks, () => done);
  const t0 = performance.now();
  pacer.start();
  const loops: Promise<void>[] = [];
  for (let c = 0; c < clients; c++) loops.push(loop(conns[c % conns.length]!));
  await Promise.all(loops);
  const elapsedMs = performance.now() - t0;
  if (timer !== null) clearInterval(timer);
  return {
    shard,
    requests: done,
    errors: errors.count,
    errorCounts: errors.kinds,
    elapsedMs,
    histogram: encodeHistogram(hist),
    reauthentications: 0,
  };
}

function startProgress(hooks: ShardHooks, done: () => number): NodeJS.Timeout | null {
  if (hooks.progress === undefined) return null;
  const cb = hooks.progress;
  const t = setInterval(() => cb(done()), PROGRESS_INTERVAL_MS);
  t.unref();
  return t;
}

/** etcd's benchmark uses one random value for the whole run. */
function benchValue(o: LoadOptions): Buffer {
  return randomBytes(o.valSizeBytes);
}

async function runPut(
  o: LoadOptions,
  shard: Shard,
  conns: GrpcConnection[],
  hooks: ShardHooks,
  call: UnaryCall,
): Promise<ShardResult> {
  const value = benchValue(o);
  return runUnary(o, shard, conns, hooks, call, GrpcPath.put, (slot) =>
    framePut(benchKey(keyNumber(o, slot), o.keySizeBytes), value),
  );
}

async function runRange(
  o: LoadOptions,
  shard: Shard,
  conns: GrpcConnection[],
  hooks: ShardHooks,
  call: UnaryCall,
): Promise<ShardResult> {
  // The same request every time: one buffer, shared read-only by all streams.
  const frame = frameRange(Buffer.from(o.rangeKey), Buffer.from(o.rangeEnd), o.consistency === "s");
  return runUnary(o, shard, conns, hooks, call, GrpcPath.range, () => frame);
}

/**
 * authenticate: `clients` loops of Auth/Authenticate with --user/--password, the same request
 * every time (the server checks the password's bcrypt hash, then commits the token through raft).
 */
async function runAuthenticate(
  o: LoadOptions,
  shard: Shard,
  conns: GrpcConnection[],
  hooks: ShardHooks,
): Promise<ShardResult> {
  const frame = frameAuthenticate(o.user, o.password);
  return runUnary(o, shard, conns, hooks, plainUnary, GrpcPath.authenticate, () => frame);
}

async function runTxnPut(
  o: LoadOptions,
  shard: Shard,
  conns: GrpcConnection[],
  hooks: ShardHooks,
  call: UnaryCall,
): Promise<ShardResult> {
  const value = benchValue(o);
  return runUnary(o, shard, conns, hooks, call, GrpcPath.txn, (slot) => {
    // Distinct keys within one txn (etcd rejects a txn that puts one key twice).
    const first = keyNumber(o, slot * o.txnOps);
    const puts = [];
    for (let j = 0; j < o.txnOps; j++) {
      puts.push({ key: benchKey((first + j) % o.keySpaceSize, o.keySizeBytes), value });
    }
    return frameTxnPut(puts);
  });
}

/** Lease TTL granted for keep-alive runs, seconds (etcd's benchmark: 100). */
export const KEEPALIVE_LEASE_TTL_SECONDS = 100;

async function runLeaseKeepAlive(
  o: LoadOptions,
  shard: Shard,
  conns: GrpcConnection[],
  hooks: ShardHooks,
  call: UnaryCall,
): Promise<ShardResult> {
  const clients = shareOf(o.clients, shard);
  const pacer = new Pacer(
    shareOf(o.total, shard),
    o.rate / shard.count,
    o.durationSeconds,
    hooks.stop,
  );
  const hist = newHistogram();
  const errors = new ErrorTally();
  let done = 0;
  // Set-up: one lease and one keep-alive stream per client.
  const grantFrame = frameMessage(
    LeaseGrantRequest.toBinary(LeaseGrantRequest.create({ tTL: KEEPALIVE_LEASE_TTL_SECONDS })),
  );
  const clientsState: {
    stream: BidiStream;
    frame: Buffer;
    waiter: ((err: Error | null) => void) | null;
  }[] = [];
  for (let c = 0; c < clients; c++) {
    const conn = conns[c % conns.length]!;
    const resp = LeaseGrantResponse.fromBinary(await call(conn, GrpcPath.leaseGrant, grantFrame));
    const st: (typeof clientsState)[number] = {
      stream: null as unknown as BidiStream,
      frame: frameMessage(
        LeaseKeepAliveRequest.toBinary(LeaseKeepAliveRequest.create({ iD: resp.iD })),
      ),
      waiter: null,
    };
    st.stream = conn.bidi(GrpcPath.leaseKeepAlive, {
      onMessage: () => {
        const w = st.waiter;
        st.waiter = null;
        w?.(null);
      },
      onEnd: (err) => {
        const w = st.waiter;
        st.waiter = null;
        w?.(err ?? new ConnectionLostError(conn.endpoint, "keep-alive stream ended"));
      },
    });
    clientsState.push(st);
  }
  const loop = async (st: (typeof clientsState)[number]): Promise<void> => {
    for (;;) {
      const i = await pacer.take();
      if (i < 0) return;
      const t0 = performance.now();
      const err = await new Promise<Error | null>((resolve) => {
        st.waiter = resolve;
        st.stream.write(st.frame);
      });
      done++;
      if (err === null) recordMs(hist, performance.now() - t0);
      else {
        errors.add(err);
        return;
      }
    }
  };
  await hooks.ready();
  const timer = startProgress(hooks, () => done);
  const t0 = performance.now();
  pacer.start();
  await Promise.all(clientsState.map(loop));
  const elapsedMs = performance.now() - t0;
  if (timer !== null) clearInterval(timer);
  for (const st of clientsState) st.stream.cancel();
  return {
    shard,
    requests: done,
    errors: errors.count,
    errorCounts: errors.kinds,
    elapsedMs,
    histogram: encodeHistogram(hist),
    reauthentications: 0,
  };
}

/**
 * watch: `streams` watch streams with `watchPerStream` watchers each, watcher w of stream s on
 * key (s·watchPerStream + w) mod watchedKeyTotal; then `putTotal` puts, put i on key
 * i mod watchedKeyTotal with its wall-clock send time and i (float64 LE each) in the value's
 * first 16 bytes, from `clients` loops on `putConns` (the watchers' connections when it is
 * empty). Each event has two latencies: from its put's send (receive wall time minus the send
 * time in the value) and from its put's acknowledgement (etcd's watch-latency definition; see
 * watch-ack.ts). Shards split streams and puts; each knows how many events its watchers must see,
 * so no shard waits on another.
 */
async function runWatch(
  o: LoadOptions,
  shard: Shard,
  conns: GrpcConnection[],
  putConns: GrpcConnection[],
  hooks: ShardHooks,
  call: UnaryCall,
): Promise<ShardResult> {
  const K = o.watchedKeyTotal;
  const keys: Buffer[] = [];
  for (let k = 0; k < K; k++) keys.push(benchKey(k, o.keySizeBytes));
  const nStreams = shareOf(o.streams, shard);
  const firstStream = offsetOf(o.streams, shard);
  const watchersOnKey = new Array<number>(K).fill(0);
  /** This shard's own watchers per key: the events each of its puts makes here. */
  const localWatchersOnKey = new Array<number>(K).fill(0);
  // Puts: this shard's contiguous part of [0, putTotal).
  const putTotal = shareOf(o.putTotal, shard);
  const putBase = offsetOf(o.putTotal, shard);
  const acks = new AckToEventLatency(putBase, putTotal, (i) => localWatchersOnKey[i % K]!);
  const eventHist = newHistogram();
  const errors = new ErrorTally();
  let events = 0;
  let lastEventWallMs = 0;
  let created = 0;
  let onCreated: (() => void) | null = null;
  let onEvent: (() => void) | null = null;
  const streams: BidiStream[] = [];
  for (let s = 0; s < nStreams; s++) {
    const gs = firstStream + s;
    const conn = conns[s % conns.length]!;
    const stream = conn.bidi(GrpcPath.watch, {
      onMessage: (m) => {
        const r = WatchResponse.fromBinary(m);
        if (r.created) {
          created++;
          onCreated?.();
        }
        if (r.events.length > 0) {
          const nowPerf = performance.now();
          const now = performance.timeOrigin + nowPerf;
          for (const ev of r.events) {
            const v = ev.kv?.value;
            if (v !== undefined && v.length >= WATCH_VALUE_HEADER_BYTES) {
              const head = Buffer.from(v.buffer, v.byteOffset, WATCH_VALUE_HEADER_BYTES);
              recordMs(eventHist, now - head.readDoubleLE(0));
              acks.onEvent(head.readDoubleLE(8), nowPerf);
            }
          }
          events += r.events.length;
          lastEventWallMs = now;
          onEvent?.();
        }
      },
      onEnd: (err) => {
        if (err !== null && !(err instanceof GrpcCallError && err.grpcStatus === 1))
          errors.add(err);
      },
    });
    for (let w = 0; w < o.watchPerStream; w++) {
      const k = (gs * o.watchPerStream + w) % K;
      watchersOnKey[k]!++;
      localWatchersOnKey[k]!++;
      const req = WatchRequest.create({
        requestUnion: {
          oneofKind: "createRequest",
          createRequest: {
            key: keys[k]!,
            rangeEnd: new Uint8Array(0),
            startRevision: 0,
            progressNotify: false,
            filters: [],
            prevKv: false,
            watchId: 0n,
            fragment: false,
          },
        },
      });
      stream.write(frameMessage(WatchRequest.toBinary(req)));
    }
    streams.push(stream);
  }
  const watchers = nStreams * o.watchPerStream;
  await waitUntil(
    () => created >= watchers,
    (f) => (onCreated = f),
    30_000,
    "watchers created",
  );
  onCreated = null;
  let expectedEvents = 0;
  for (let k = 0; k < K; k++) {
    const putsOnKey = Math.floor(o.putTotal / K) + (k < o.putTotal % K ? 1 : 0);
    expectedEvents += watchersOnKey[k]! * putsOnKey;
  }
  const putClients = Math.max(1, shareOf(o.clients, shard));
  const pacer = new Pacer(putTotal, o.putRate / shard.count, 0, hooks.stop);
  const putHist = newHistogram();
  let puts = 0;
  const pad = Buffer.alloc(Math.max(o.valSizeBytes, WATCH_VALUE_HEADER_BYTES));
  const loop = async (conn: GrpcConnection): Promise<void> => {
    for (;;) {
      const i = await pacer.take();
      if (i < 0) return;
      const value = Buffer.from(pad);
      const g = putBase + i;
      const t0 = performance.now();
      value.writeDoubleLE(performance.timeOrigin + t0, 0);
      value.writeDoubleLE(g, 8);
      try {
        await call(conn, GrpcPath.put, framePut(keys[g % K]!, value));
        const tAck = performance.now();
        recordMs(putHist, tAck - t0);
        acks.onAck(g, tAck);
      } catch (err) {
        errors.add(err);
        if (err instanceof ConnectionLostError) return;
      } finally {
        puts++;
      }
    }
  };
  await hooks.ready();
  const timer = startProgress(hooks, () => events);
  const firstPutWallMs = wallMs();
  const t0 = performance.now();
  pacer.start();
  const loops: Promise<void>[] = [];
  const putPool = putConns.length > 0 ? putConns : conns;
  for (let c = 0; c < (putTotal > 0 ? putClients : 0); c++)
    loops.push(loop(putPool[c % putPool.length]!));
  await Promise.all(loops);
  // Wait for the events, giving up after watchWaitSeconds without a new one.
  for (;;) {
    if (events >= expectedEvents) break;
    const before = events;
    await waitUntil(
      () => events >= expectedEvents,
      (f) => (onEvent = f),
      o.watchWaitSeconds * 1000,
      null,
    );
    if (events === before) break;
  }
  onEvent = null;
  const elapsedMs = performance.now() - t0;
  if (timer !== null) clearInterval(timer);
  for (const s of streams) s.cancel();
  if (events < expectedEvents)
    errors.add(
      new LoadError("LOAD_WATCH_EVENTS_MISSING", `missing ${expectedEvents - events} events`),
    );
  return {
    shard,
    requests: puts,
    errors: errors.count,
    errorCounts: errors.kinds,
    elapsedMs,
    histogram: encodeHistogram(putHist),
    reauthentications: 0,
    watch: {
      watchers,
      expectedEvents,
      events,
      eventHistogram: encodeHistogram(eventHist),
      ackEventHistogram: encodeHistogram(acks.histogram),
      eventsBeforeAck: acks.eventsBeforeAck,
      firstPutWallMs,
      lastEventWallMs: lastEventWallMs === 0 ? firstPutWallMs : lastEventWallMs,
    },
  };
}

/**
 * Resolves when `done()` holds, re-checking whenever the callback given to `arm` fires; after
 * `timeoutMs` it resolves anyway (what === null) or rejects with LoadError naming `what`.
 */
function waitUntil(
  done: () => boolean,
  arm: (f: () => void) => void,
  timeoutMs: number,
  what: string | null,
): Promise<void> {
  return new Promise((resolve, reject) => {
    if (done()) {
      resolve();
      return;
    }
    const t = setTimeout(() => {
      arm(() => {});
      if (what === null) resolve();
      else
        reject(
          new LoadError("LOAD_TIMEOUT", `timed out after ${timeoutMs} ms waiting for ${what}`),
        );
    }, timeoutMs);
    arm(() => {
      if (done()) {
        clearTimeout(t);
        arm(() => {});
        resolve();
      }
    });
  });
}

/**
 * Runs shard `shard` of the load `o` in this process and returns what it measured. Rejects with
 * ConnectionLostError when it cannot connect, AuthError when --user cannot log in, LoadError on a
 * set-up timeout.
 */
export async function runShard(
  o: LoadOptions,
  shard: Shard,
  hooks: ShardHooks,
): Promise<ShardResult> {
  const conns = await connectAll(o, shard, o.conns);
  const putConns: GrpcConnection[] = [];
  try {
    if (o.workload === "watch" && o.putConns > 0)
      putConns.push(...(await connectAll(o, shard, o.putConns)));
    // The authenticate workload sends the credentials in every request; the others log in once
    // per connection (in parallel: each login costs the server a bcrypt check).
    const creds =
      o.user !== "" && o.workload !== "authenticate"
        ? new ConnectionCredentials(o.user, o.password)
        : null;
    if (creds !== null)
      await Promise.all(
        [...conns, ...putConns].map((c) =>
          creds.login(c).catch((err: unknown) => {
            throw new AuthError(c.endpoint, err instanceof Error ? err.message : String(err));
          }),
        ),
      );
    const call: UnaryCall =
      creds === null ? plainUnary : (conn, path, frame) => creds.unary(conn, path, frame);
    const r = await runWorkload(o, shard, conns, putConns, hooks, call);
    r.reauthentications = creds?.reauthentications ?? 0;
    return r;
  } finally {
    await Promise.all([...conns, ...putConns].map((c) => c.close()));
  }
}

function runWorkload(
  o: LoadOptions,
  shard: Shard,
  conns: GrpcConnection[],
  putConns: GrpcConnection[],
  hooks: ShardHooks,
  call: UnaryCall,
): Promise<ShardResult> {
  switch (o.workload) {
    case "put":
      return runPut(o, shard, conns, hooks, call);
    case "range":
      return runRange(o, shard, conns, hooks, call);
    case "txn-put":
      return runTxnPut(o, shard, conns, hooks, call);
    case "lease-keepalive":
      return runLeaseKeepAlive(o, shard, conns, hooks, call);
    case "watch":
      return runWatch(o, shard, conns, putConns, hooks, call);
    case "authenticate":
      return runAuthenticate(o, shard, conns, hooks);
  }
}

export type { LatencyHistogram };
