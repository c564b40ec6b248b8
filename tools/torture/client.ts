/**
 * The torture tool's etcd v3 client: @grpc/grpc-js with the generated etcdserverpb clients, one
 * channel per client to one endpoint, no retries (a retried write could apply twice and the
 * history would show one call where the store saw two), a deadline on every call, and a fast
 * reconnect after a member comes back. Speaks to etcd-ts and to any etcd v3 server.
 *
 * Keys and values are ASCII strings here (Buffer.from / toString): the checker compares strings.
 */
import * as grpc from "@grpc/grpc-js";
import {
  KVClient,
  LeaseClient,
  MaintenanceClient,
  WatchClient,
} from "../../lib/proto/gen/etcdserverpb/rpc.grpc-client.js";
import {
  Compare,
  Compare_CompareResult,
  Compare_CompareTarget,
  DeleteRangeRequest,
  HashKVRequest,
  LeaseGrantRequest,
  LeaseKeepAliveRequest,
  LeaseRevokeRequest,
  PutRequest,
  RangeRequest,
  RequestOp,
  TxnRequest,
  type RangeResponse,
  type ResponseOp,
  type WatchResponse,
  WatchRequest,
} from "../../lib/proto/gen/etcdserverpb/rpc.js";
import type { KeyValue } from "../../lib/proto/gen/mvccpb/kv.js";
import {
  prefixRangeEnd,
  type KeyedKvRecord,
  type KvInput,
  type KvOutput,
  type KvRecord,
  type TxnCompare,
  type TxnOp,
  type TxnOpResult,
} from "../../lib/checker/index.js";

type Callback<Res> = (err: grpc.ServiceError | null, res?: Res) => void;
type UnaryMethod<Req, Res> = (req: Req, opts: grpc.CallOptions, cb: Callback<Res>) => unknown;

/** Channel options: no retries, reconnect within a second of a member coming back. */
const channelOptions: grpc.ChannelOptions = {
  "grpc.enable_retries": 0,
  "grpc.initial_reconnect_backoff_ms": 100,
  "grpc.max_reconnect_backoff_ms": 1000,
  "grpc.use_local_subchannel_pool": 1,
  "grpc.max_receive_message_length": 64 * 1024 * 1024,
};

function unary<Req, Res>(fn: UnaryMethod<Req, Res>, req: Req, deadlineMs: number): Promise<Res> {
  return new Promise((resolve, reject) => {
    fn(req, { deadline: Date.now() + deadlineMs }, (err, res) => {
      if (err !== null) reject(err);
      else resolve(res as Res);
    });
  });
}

const enc = (s: string): Uint8Array => Buffer.from(s);
const dec = (b: Uint8Array): string => Buffer.from(b).toString();

function keyed(kv: KeyValue): KeyedKvRecord {
  return {
    key: dec(kv.key),
    value: dec(kv.value),
    modRevision: kv.modRevision,
    createRevision: kv.createRevision,
    version: kv.version,
  };
}

function single(kvs: KeyValue[]): KvRecord | null {
  if (kvs.length === 0) return null;
  const { key: _key, ...rest } = keyed(kvs[0]!);
  return rest;
}

function rangeOf(op: { key: string } | { prefix: string }): RangeRequest {
  if ("key" in op) return RangeRequest.create({ key: enc(op.key) });
  return RangeRequest.create({ key: enc(op.prefix), rangeEnd: enc(prefixRangeEnd(op.prefix)) });
}

function requestOp(op: TxnOp): RequestOp {
  switch (op.type) {
    case "put":
      return RequestOp.create({
        request: {
          oneofKind: "requestPut",
          requestPut: PutRequest.create({ key: enc(op.key), value: enc(op.value) }),
        },
      });
    case "get":
      return RequestOp.create({
        request: { oneofKind: "requestRange", requestRange: rangeOf({ key: op.key }) },
      });
    case "range":
      return RequestOp.create({
        request: { oneofKind: "requestRange", requestRange: rangeOf({ prefix: op.prefix }) },
      });
    case "delete":
      return RequestOp.create({
        request: {
          oneofKind: "requestDeleteRange",
          requestDeleteRange: DeleteRangeRequest.create({ key: enc(op.key) }),
        },
      });
  }
}

function kvsOf(r: ResponseOp | undefined): KeyValue[] {
  return r?.response.oneofKind === "responseRange" ? r.response.responseRange.kvs : [];
}

function resultOf(op: TxnOp, r: ResponseOp | undefined): TxnOpResult {
  switch (op.type) {
    case "put":
      return { type: "put" };
    case "get":
      return { type: "get", kv: single(kvsOf(r)) };
    case "range":
      return { type: "range", kvs: kvsOf(r).map(keyed) };
    case "delete": {
      const d =
        r?.response.oneofKind === "responseDeleteRange"
          ? r.response.responseDeleteRange
          : undefined;
      return { type: "delete", deleted: d?.deleted ?? 0 };
    }
  }
}

const compareTargets = {
  value: Compare_CompareTarget.VALUE,
  mod: Compare_CompareTarget.MOD,
  create: Compare_CompareTarget.CREATE,
  version: Compare_CompareTarget.VERSION,
} as const;
const compareResults = {
  equal: Compare_CompareResult.EQUAL,
  not_equal: Compare_CompareResult.NOT_EQUAL,
  greater: Compare_CompareResult.GREATER,
  less: Compare_CompareResult.LESS,
} as const;

function compareOf(c: TxnCompare): Compare {
  const target = compareTargets[c.target];
  const targetUnion: Compare["targetUnion"] =
    c.target === "value"
      ? { oneofKind: "value", value: enc(String(c.value)) }
      : c.target === "mod"
        ? { oneofKind: "modRevision", modRevision: Number(c.value) }
        : c.target === "create"
          ? { oneofKind: "createRevision", createRevision: Number(c.value) }
          : { oneofKind: "version", version: Number(c.value) };
  return Compare.create({ key: enc(c.key), target, result: compareResults[c.result], targetUnion });
}

/** One watch stream's events, as the tool records them. */
export interface WatchStreamHandlers {
  /** The created response: the header revision the watch started at. */
  onCreated(headerRevision: number): void;
  /** A response with events or a progress notification. */
  onResponse(res: WatchResponse): void;
  /** The stream ended or failed (the watch is gone; the caller may resume it). */
  onEnd(err: Error | undefined): void;
}

/** An open watch stream (one watch on it). */
export interface WatchStream {
  /** Asks for a progress notification (etcd's WatchProgressRequest). */
  requestProgress(): void;
  /** Ends the stream. */
  close(): void;
}

/** A client bound to one endpoint ("host:port"). Close with close(). */
export class TortureClient {
  readonly endpoint: string;
  readonly #kv: KVClient;
  readonly #lease: LeaseClient;
  readonly #watch: WatchClient;
  readonly #maintenance: MaintenanceClient;
  readonly #deadlineMs: number;

  /** `deadlineMs` bounds every unary call. */
  constructor(endpoint: string, deadlineMs: number) {
    this.endpoint = endpoint;
    const creds = grpc.credentials.createInsecure();
    this.#kv = new KVClient(endpoint, creds, channelOptions);
    this.#lease = new LeaseClient(endpoint, creds, channelOptions);
    this.#watch = new WatchClient(endpoint, creds, channelOptions);
    this.#maintenance = new MaintenanceClient(endpoint, creds, channelOptions);
    this.#deadlineMs = deadlineMs;
  }

  #unary<Req, Res>(fn: UnaryMethod<Req, Res>, req: Req): Promise<Res> {
    return unary(fn, req, this.#deadlineMs);
  }

  /** Runs a checker input as etcd calls and returns the checker's output for it. Rejects as gRPC does. */
  async kv(input: KvInput): Promise<KvOutput> {
    const kv = this.#kv;
    switch (input.type) {
      case "put": {
        const r = await this.#unary(
          kv.put.bind(kv),
          PutRequest.create({ key: enc(input.key), value: enc(input.value) }),
        );
        return { type: "put", revision: r.header?.revision };
      }
      case "get": {
        const r: RangeResponse = await this.#unary(kv.range.bind(kv), rangeOf(input));
        return { type: "get", revision: r.header?.revision, kv: single(r.kvs) };
      }
      case "range": {
        const r: RangeResponse = await this.#unary(kv.range.bind(kv), rangeOf(input));
        return { type: "range", revision: r.header?.revision, kvs: r.kvs.map(keyed) };
      }
      case "delete": {
        const r = await this.#unary(
          kv.deleteRange.bind(kv),
          DeleteRangeRequest.create({ key: enc(input.key) }),
        );
        return { type: "delete", revision: r.header?.revision, deleted: r.deleted };
      }
      case "txn": {
        const r = await this.#unary(
          kv.txn.bind(kv),
          TxnRequest.create({
            compare: input.compare.map(compareOf),
            success: input.success.map(requestOp),
            failure: input.failure.map(requestOp),
          }),
        );
        const branch = r.succeeded ? input.success : input.failure;
        return {
          type: "txn",
          revision: r.header?.revision,
          succeeded: r.succeeded,
          results: branch.map((op, i) => resultOf(op, r.responses[i])),
        };
      }
    }
  }

  /** Every key under `prefix` and the header revision (a linearizable range). */
  async rangePrefix(prefix: string): Promise<{ revision: number; kvs: KeyedKvRecord[] }> {
    const kv = this.#kv;
    const r: RangeResponse = await this.#unary(kv.range.bind(kv), rangeOf({ prefix }));
    return { revision: r.header?.revision ?? 0, kvs: r.kvs.map(keyed) };
  }

  /** LeaseGrant; resolves to the lease id. */
  async leaseGrant(ttlSeconds: number): Promise<bigint> {
    const l = this.#lease;
    const r = await this.#unary(
      l.leaseGrant.bind(l),
      LeaseGrantRequest.create({ tTL: ttlSeconds }),
    );
    if (r.error !== "") throw new Error(`lease grant: ${r.error}`);
    return r.iD;
  }

  /** A put attached to a lease; resolves to its revision. */
  async putWithLease(key: string, value: string, lease: bigint): Promise<number> {
    const kv = this.#kv;
    const r = await this.#unary(
      kv.put.bind(kv),
      PutRequest.create({ key: enc(key), value: enc(value), lease }),
    );
    return r.header?.revision ?? 0;
  }

  /** One keep-alive round trip on a LeaseKeepAlive stream; resolves to the TTL (0 = expired). */
  leaseKeepAliveOnce(id: bigint): Promise<number> {
    return new Promise((resolve, reject) => {
      const stream = this.#lease.leaseKeepAlive({ deadline: Date.now() + this.#deadlineMs });
      let done = false;
      const finish = (err: Error | undefined, ttl?: number) => {
        if (done) return;
        done = true;
        stream.cancel();
        if (err !== undefined) reject(err);
        else resolve(ttl ?? 0);
      };
      stream.on("data", (res: { tTL: number }) => finish(undefined, res.tTL));
      stream.on("error", (err: Error) => finish(err));
      stream.on("end", () => finish(new Error("lease keep-alive stream ended")));
      stream.write(LeaseKeepAliveRequest.create({ iD: id }));
    });
  }

  /** LeaseRevoke; resolves to the header revision. */
  async leaseRevoke(id: bigint): Promise<number> {
    const l = this.#lease;
    const r = await this.#unary(l.leaseRevoke.bind(l), LeaseRevokeRequest.create({ iD: id }));
    return r.header?.revision ?? 0;
  }

  /** Maintenance.HashKV at `revision` (0 = current). */
  async hashKV(
    revision: number,
  ): Promise<{ hash: number; revision: number; compactRevision: number }> {
    const m = this.#maintenance;
    const r = await this.#unary(m.hashKV.bind(m), HashKVRequest.create({ revision }));
    return { hash: r.hash, revision: r.header?.revision ?? 0, compactRevision: r.compactRevision };
  }

  /**
   * Opens a Watch stream with one watch on [key, rangeEnd) from `startRevision` (0 = now).
   * Handlers see the created response, then every response, then the end.
   */
  watch(
    spec: { key: string; rangeEnd: string; startRevision: number },
    h: WatchStreamHandlers,
  ): WatchStream {
    const stream = this.#watch.watch();
    let ended = false;
    const end = (err: Error | undefined) => {
      if (ended) return;
      ended = true;
      h.onEnd(err);
    };
    stream.on("data", (res: WatchResponse) => {
      if (res.created) h.onCreated(res.header?.revision ?? 0);
      else if (res.canceled) {
        stream.cancel();
        end(new Error(`watch canceled: ${res.cancelReason}`));
      } else h.onResponse(res);
    });
    stream.on("error", (err: Error) => end(err));
    stream.on("end", () => end(undefined));
    stream.write(
      WatchRequest.create({
        requestUnion: {
          oneofKind: "createRequest",
          createRequest: {
            key: enc(spec.key),
            rangeEnd: enc(spec.rangeEnd),
            startRevision: spec.startRevision,
            progressNotify: false,
            filters: [],
            prevKv: false,
            watchId: 0n,
            fragment: false,
          },
        },
      }),
    );
    return {
      requestProgress: () => {
        if (ended) return;
        stream.write(
          WatchRequest.create({
            requestUnion: { oneofKind: "progressRequest", progressRequest: {} },
          }),
        );
      },
      close: () => {
        stream.cancel();
        end(undefined);
      },
    };
  }

  /** Closes the channels. */
  close(): void {
    this.#kv.close();
    this.#lease.close();
    this.#watch.close();
    this.#maintenance.close();
  }
}
