/**
 * The torture workload: many clients spread over the members, each running a seeded mix of put,
 * get, prefix range, delete and txn (compare-and-swap on a mod revision or value, multi-key) on a
 * small key space so calls contend, and lease cycles (grant, put with the lease, keep-alive,
 * revoke, then a read that must not see the key); watchers on the whole key space that resume
 * where they stopped when their stream breaks. Every key-value call is recorded with its invoke
 * and complete times in lib/checker's HistoryRecorder; watches as lib/checker WatchRecords.
 *
 * Key space (under a per-run prefix so a shared cluster is not disturbed):
 * `<prefix>k/g<group>/<i>` for the checked keys (ranges and txns stay inside one group, so the
 * checker can split the history by group), `<prefix>l/<client>/<n>` for lease keys (outside the
 * watched and checked range: a revoke deletes them at a revision no client call names).
 */
import {
  HistoryRecorder,
  classifyEtcdError,
  prefixRangeEnd,
  type KvInput,
  type KvOutput,
  type TxnOp,
  type WatchRecord,
  type WatchResponseRecord,
} from "../../lib/checker/index.js";
import { seededRandom } from "../../lib/failpoint/index.js";
import type { WatchResponse } from "../../lib/proto/gen/etcdserverpb/rpc.js";
import { Event_EventType } from "../../lib/proto/gen/mvccpb/kv.js";
import { TortureClient, type WatchStream } from "./client.js";
import type { Timeline } from "./timeline.js";

/** Bound on recorded key-value operations (STYLE §2). */
export const MAX_RECORDED_OPERATIONS = 2_000_000;
/** Bound on lease cycles kept for the report. */
const MAX_LEASE_RECORDS = 100_000;
/** TTL of the workload's leases, s: an abandoned cycle's lease expires soon. */
const LEASE_TTL_SECONDS = 20;

/** The workload's parameters. */
export interface WorkloadOptions {
  seed: number;
  clients: number;
  watchers: number;
  keyGroups: number;
  keysPerGroup: number;
  /** Upper bound on calls per second over all clients. */
  maxOpsPerSecond: number;
  /** Deadline of every call, ms. */
  callDeadlineMs: number;
  /** Key prefix of this run (e.g. "torture/42/"). */
  prefix: string;
}

/** One lease cycle as a client saw it; `violation` says what broke, if anything. */
export interface LeaseRecord {
  client: number;
  lease: string;
  key: string;
  step: "granted" | "attached" | "kept-alive" | "revoked" | "checked";
  violation?: string;
}

/** Per-key memory of one client for its compare-and-swap txns. */
interface Seen {
  mod: number;
  value: string | null;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Runs the workload against `endpoints` (see the module comment). */
export class Workload {
  readonly recorder = new HistoryRecorder({
    maxOperations: MAX_RECORDED_OPERATIONS,
    classify: classifyEtcdError,
  });
  readonly watches: WatchRecord[] = [];
  readonly leases: LeaseRecord[] = [];
  readonly #o: WorkloadOptions;
  readonly #endpoints: string[];
  readonly #timeline: Timeline;
  readonly #clients: TortureClient[] = [];
  readonly #loops: Promise<void>[] = [];
  readonly #watchers: WatcherState[] = [];
  #stopping = false;
  #leaseSerial = 0;
  /** Successful key-value calls by endpoint (clients are spread over the members). */
  readonly okByEndpoint = new Map<string, number>();
  /** Revision of the store when the workload started (watches start after it). */
  startRevision = 0;

  constructor(o: WorkloadOptions, endpoints: string[], timeline: Timeline) {
    this.#o = o;
    this.#endpoints = endpoints;
    this.#timeline = timeline;
  }

  /** Key `i` of group `g`. */
  key(g: number, i: number): string {
    return `${this.#o.prefix}k/g${g}/${i}`;
  }

  /** The prefix every checked key has (the watchers' range). */
  get keyPrefix(): string {
    return `${this.#o.prefix}k/`;
  }

  /** Every checked key. */
  allKeys(): string[] {
    const out: string[] = [];
    for (let g = 0; g < this.#o.keyGroups; g++)
      for (let i = 0; i < this.#o.keysPerGroup; i++) out.push(this.key(g, i));
    return out;
  }

  /** A client on endpoint `n` modulo the endpoints (created on demand, closed by stop()). */
  client(n: number): TortureClient {
    const c = new TortureClient(
      this.#endpoints[n % this.#endpoints.length]!,
      this.#o.callDeadlineMs,
    );
    this.#clients.push(c);
    return c;
  }

  /** Starts the watchers (from `startRevision` + 1) and the client loops. */
  start(startRevision: number): void {
    this.startRevision = startRevision;
    for (let w = 0; w < this.#o.watchers; w++) {
      const state = new WatcherState(this, `w${w}`, w, startRevision + 1);
      this.#watchers.push(state);
      state.open();
    }
    for (let c = 0; c < this.#o.clients; c++) this.#loops.push(this.#clientLoop(c));
  }

  get stopping(): boolean {
    return this.#stopping;
  }

  /** Stops the client loops (each finishes its call in flight). */
  async stopClients(): Promise<void> {
    this.#stopping = true;
    await Promise.all(this.#loops);
  }

  /**
   * Runs one key-value call as client `clientId` and records it; resolves to the output or
   * undefined when it failed.
   */
  async call(
    client: TortureClient,
    clientId: number,
    input: KvInput,
  ): Promise<KvOutput | undefined> {
    const t0 = performance.now();
    try {
      const out = await this.recorder.record(clientId, input, () => client.kv(input));
      this.#timeline.op(true, performance.now() - t0);
      this.okByEndpoint.set(client.endpoint, (this.okByEndpoint.get(client.endpoint) ?? 0) + 1);
      return out;
    } catch (err) {
      this.#timeline.op(false, performance.now() - t0);
      this.#timeline.failure(err);
      return undefined;
    }
  }

  async #clientLoop(id: number): Promise<void> {
    const rand = seededRandom(this.#o.seed * 1009 + id);
    const client = this.client(id);
    const seen = new Map<string, Seen>();
    const intervalMs = (1000 * this.#o.clients) / this.#o.maxOpsPerSecond;
    let serial = 0;
    while (!this.#stopping) {
      const t0 = performance.now();
      const r = rand();
      let ok: boolean;
      if (r < 0.08) ok = await this.#leaseCycle(client, id);
      else ok = await this.#kvStep(client, id, rand, seen, `c${id}.${serial++}`);
      const spent = performance.now() - t0;
      // a failed call waits a little so a dead member is not hammered
      const wait = Math.max(intervalMs - spent, ok ? 0 : 50 + rand() * 100);
      if (wait > 0) await sleep(wait);
    }
  }

  async #kvStep(
    client: TortureClient,
    id: number,
    rand: () => number,
    seen: Map<string, Seen>,
    value: string,
  ): Promise<boolean> {
    const g = Math.floor(rand() * this.#o.keyGroups);
    const pick = () => this.key(g, Math.floor(rand() * this.#o.keysPerGroup));
    const k = pick();
    const r = rand();
    let input: KvInput;
    if (r < 0.3) input = { type: "put", key: k, value };
    else if (r < 0.48) input = { type: "get", key: k };
    else if (r < 0.56) input = { type: "range", prefix: `${this.#o.prefix}k/g${g}/` };
    else if (r < 0.66) input = { type: "delete", key: k };
    else if (r < 0.8) {
      // compare-and-swap on what this client last saw of k
      const s = seen.get(k);
      input = {
        type: "txn",
        compare: [{ key: k, target: "mod", result: "equal", value: s?.mod ?? 0 }],
        success: [{ type: "put", key: k, value }],
        failure: [{ type: "get", key: k }],
      };
    } else if (r < 0.88) {
      const s = seen.get(k);
      input = {
        type: "txn",
        compare: [{ key: k, target: "value", result: "equal", value: s?.value ?? "" }],
        success: [{ type: "delete", key: k }],
        failure: [{ type: "get", key: k }],
      };
    } else {
      // several keys of one group at one revision
      const keys = [...new Set([k, pick(), pick()])];
      const ops: TxnOp[] = keys
        .slice(1)
        .map((kk, i) => (i === 0 ? { type: "put", key: kk, value } : { type: "delete", key: kk }));
      input = {
        type: "txn",
        compare: [{ key: k, target: "version", result: "greater", value: 0 }],
        success: ops.length > 0 ? ops : [{ type: "put", key: k, value }],
        failure: [
          { type: "put", key: k, value },
          { type: "range", prefix: `${this.#o.prefix}k/g${g}/` },
        ],
      };
    }
    const out = await this.call(client, id, input);
    if (out !== undefined) learn(seen, input, out);
    return out !== undefined;
  }

  /** grant → put with the lease → keep-alive → revoke → the key must be gone. */
  async #leaseCycle(client: TortureClient, id: number): Promise<boolean> {
    const t0 = performance.now();
    const key = `${this.#o.prefix}l/${id}/${this.#leaseSerial++}`;
    const rec: LeaseRecord = { client: id, lease: "", key, step: "granted" };
    const done = (ok: boolean) => {
      if (this.leases.length < MAX_LEASE_RECORDS) this.leases.push(rec);
      this.#timeline.op(ok, performance.now() - t0);
      return ok;
    };
    try {
      const lease = await client.leaseGrant(LEASE_TTL_SECONDS);
      rec.lease = lease.toString(16);
      await client.putWithLease(key, "leased", lease);
      rec.step = "attached";
      const ttl = await client.leaseKeepAliveOnce(lease);
      if (ttl <= 0) rec.violation = `keep-alive of a granted, unrevoked lease answered TTL ${ttl}`;
      rec.step = "kept-alive";
      await client.leaseRevoke(lease);
      rec.step = "revoked";
      const after = await client.rangePrefix(key);
      if (after.kvs.length > 0) {
        rec.violation = `key ${key} of lease ${rec.lease} still present at revision ${after.revision} after the revoke was acknowledged`;
      }
      rec.step = "checked";
      return done(true);
    } catch (err) {
      this.#timeline.failure(err);
      return done(false);
    }
  }

  /** Watcher `i`'s records (its resumptions included). */
  watcherRecords(i: number): WatchRecord[] {
    return this.watches.filter((w) => w.id === `w${i}` || w.id.startsWith(`w${i}.`));
  }

  /**
   * Asks every watcher for a progress notification until each has covered `revision` (all
   * events up to it delivered), bounded by `timeoutMs`. Returns the watchers that did not.
   */
  async catchUpWatchers(revision: number, timeoutMs: number): Promise<string[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const behind = this.#watchers.filter((w) => w.coveredRevision() < revision);
      if (behind.length === 0 || Date.now() > deadline) return behind.map((w) => w.id);
      for (const w of behind) w.requestProgress();
      await sleep(200);
    }
  }

  /** Covered revision of watcher `i` (events and progress delivered up to it). */
  watcherCovered(i: number): number {
    return this.#watchers[i]?.coveredRevision() ?? 0;
  }

  /** Stops the watchers and closes every client. */
  close(): void {
    this.#stopping = true;
    for (const w of this.#watchers) w.close();
    for (const c of this.#clients) c.close();
  }

  /** Adds a watch record (bounded by the recorder's own bounds on responses). */
  addWatch(rec: WatchRecord): void {
    this.watches.push(rec);
  }

  get options(): WorkloadOptions {
    return this.#o;
  }

  get timeline(): Timeline {
    return this.#timeline;
  }
}

/** What a client learns from a call's answer for its next compare-and-swap. */
function learn(seen: Map<string, Seen>, input: KvInput, out: KvOutput): void {
  if (input.type === "get" && out.type === "get") {
    seen.set(input.key, { mod: out.kv?.modRevision ?? 0, value: out.kv?.value ?? null });
  } else if (input.type === "put" && out.type === "put" && out.revision !== undefined) {
    seen.set(input.key, { mod: out.revision, value: input.value });
  } else if (out.type === "txn" && input.type === "txn") {
    const branch = out.succeeded ? input.success : input.failure;
    branch.forEach((op, i) => {
      const r = out.results?.[i];
      if (op.type === "get" && r?.type === "get") {
        seen.set(op.key, { mod: r.kv?.modRevision ?? 0, value: r.kv?.value ?? null });
      }
    });
  }
}

/** Bound on the responses one watcher keeps over all its records. */
const MAX_WATCH_RESPONSES = 500_000;

/** One watcher: a chain of WatchRecords, each resuming the previous one after a broken stream. */
class WatcherState {
  readonly id: string;
  readonly #w: Workload;
  readonly #endpointIndex: number;
  #current: WatchRecord;
  #stream: WatchStream | undefined;
  #records = 0;
  #responses = 0;
  #lastEventRevision = 0;
  #bookmark = 0;
  #closed = false;
  #created = false;
  #client: TortureClient | undefined;

  constructor(w: Workload, id: string, endpointIndex: number, startRevision: number) {
    this.#w = w;
    this.id = id;
    this.#endpointIndex = endpointIndex;
    this.#current = this.#record(startRevision, undefined);
  }

  #record(startRevision: number, resumes: string | undefined): WatchRecord {
    const prefix = this.#w.keyPrefix;
    const id = this.#records === 0 ? this.id : `${this.id}.${this.#records}`;
    this.#records++;
    const rec: WatchRecord = {
      id,
      key: prefix,
      rangeEnd: prefixRangeEnd(prefix),
      startRevision,
      responses: [],
    };
    if (resumes !== undefined) rec.resumes = resumes;
    this.#w.addWatch(rec);
    return rec;
  }

  /** etcd's covered revision of the chain: the last revision every event up to which arrived. */
  coveredRevision(): number {
    return Math.max(this.#lastEventRevision, this.#bookmark, this.#current.startRevision - 1);
  }

  open(): void {
    if (this.#closed) return;
    // a resumption may go to another member (the first one may be down)
    this.#client ??= this.#w.client(this.#endpointIndex);
    const rec = this.#current;
    this.#created = false;
    this.#stream = this.#client.watch(
      { key: rec.key, rangeEnd: rec.rangeEnd!, startRevision: rec.startRevision },
      {
        onCreated: () => (this.#created = true),
        onResponse: (res) => this.#onResponse(rec, res),
        onEnd: () => this.#onEnd(rec),
      },
    );
  }

  #onResponse(rec: WatchRecord, res: WatchResponse): void {
    if (rec !== this.#current || this.#responses >= MAX_WATCH_RESPONSES) return;
    this.#responses++;
    const r: WatchResponseRecord = { headerRevision: res.header?.revision, events: [] };
    for (const e of res.events) {
      const kv = e.kv!;
      const type = e.type === Event_EventType.DELETE ? "delete" : "put";
      const ev = {
        type,
        key: Buffer.from(kv.key).toString(),
        modRevision: kv.modRevision,
      } as const;
      r.events.push(type === "put" ? { ...ev, value: Buffer.from(kv.value).toString() } : ev);
      this.#lastEventRevision = Math.max(this.#lastEventRevision, kv.modRevision);
    }
    if (res.events.length === 0) {
      // etcd's progress notification: an empty response whose header revision is covered
      r.progressNotify = true;
      this.#bookmark = Math.max(this.#bookmark, res.header?.revision ?? 0);
    }
    rec.responses.push(r);
  }

  #onEnd(rec: WatchRecord): void {
    if (rec !== this.#current || this.#closed) return;
    // a stream that never got its watch created (member down) is tried again as the same record;
    // one that ran is resumed exactly after what the chain has covered; after a short pause
    if (this.#created) this.#current = this.#record(this.coveredRevision() + 1, rec.id);
    setTimeout(() => this.open(), 200);
  }

  requestProgress(): void {
    this.#stream?.requestProgress();
  }

  close(): void {
    this.#closed = true;
    this.#stream?.close();
  }
}
