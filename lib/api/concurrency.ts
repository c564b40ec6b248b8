/**
 * The building blocks etcd's Lock and Election services share, as etcd 3.4's client-side recipes
 * in clientv3/concurrency (session.go, key.go) which its v3lock and v3election servers run against
 * their own member: the session lease, requests built like clientv3's ops, waiting for keys to be
 * deleted through a watch, and the error mapping of a server that is a client of itself.
 *
 * Everything here goes through EtcdApi's KV and Lease calls with the caller's credentials (as
 * etcd's servers pass the caller's context to their client: the same checks, auth included) and
 * the member's watch streams; nothing reaches into the store.
 */
import { status as GrpcStatus } from "@grpc/grpc-js";
import {
  type RangeResponse,
  type RequestOp,
  type ResponseOp,
  type ResponseHeader,
  RangeRequest,
  RangeRequest_SortOrder,
  RangeRequest_SortTarget,
  PutRequest,
  DeleteRangeRequest,
  Compare,
  Compare_CompareResult,
  Compare_CompareTarget,
  WatchCreateRequest,
  type WatchResponse,
} from "../proto/gen/etcdserverpb/rpc.js";
import { Event_EventType } from "../proto/gen/mvccpb/kv.js";
import type { WatchStream } from "../mvcc/index.js";
import type { EtcdApi } from "./handlers.js";
import type { CallAuth } from "./auth.js";
import { ApiError, toApiStatus } from "./errors.js";

/** clientv3/concurrency defaultSessionTTL: the lease a call without one gets, in seconds. */
export const defaultSessionTtlSeconds = 60;

/** The error a call gets when its client went away while it waited (Go's context.Canceled). */
export function errCanceled(): ApiError {
  return new ApiError(GrpcStatus.CANCELLED, "context canceled");
}

/**
 * etcd's v3lock and v3election servers call their member through clientv3, which turns a gRPC
 * status into a plain error; grpc-go then answers that error with code Unknown and the same text.
 * So every etcd error of these services reaches the client as UNKNOWN with etcd's string
 * (checked against etcd 3.4.23: Lock on a missing lease answers code 2 "etcdserver: requested
 * lease not found", HTTP 500 through the gateway). Unexpected failures stay INTERNAL.
 */
export function asServiceError(err: unknown): unknown {
  const s = toApiStatus(err);
  if (s.unexpected || s.code === GrpcStatus.CANCELLED || s.code === GrpcStatus.UNKNOWN) return err;
  return new ApiError(GrpcStatus.UNKNOWN, s.message);
}

/** Go's fmt %x of a LeaseID (int64): lower-case hex, no padding, a sign when negative. */
export function leaseHex(lease: bigint): string {
  return lease.toString(16);
}

/** The bytes of `a` then `b`. */
export function concatBytes(a: Uint8Array, b: Uint8Array | string): Buffer {
  return Buffer.concat([a, typeof b === "string" ? Buffer.from(b, "utf8") : b]);
}

/**
 * clientv3.GetPrefixRangeEnd: the smallest key greater than every key that starts with `prefix`
 * (the last byte below 0xff incremented, the rest cut); "\0" (every key) when there is none.
 */
export function prefixRangeEnd(prefix: Uint8Array): Buffer {
  for (let i = prefix.length - 1; i >= 0; i--) {
    if (prefix[i]! < 0xff) {
      const end = Buffer.from(prefix.subarray(0, i + 1));
      end[i]! += 1;
      return end;
    }
  }
  return Buffer.from([0]);
}

/** clientv3.Compare(CreateRevision(key), "=", rev). */
export function createRevisionIs(key: Uint8Array, rev: number): Compare {
  return Compare.create({
    key,
    result: Compare_CompareResult.EQUAL,
    target: Compare_CompareTarget.CREATE,
    targetUnion: { oneofKind: "createRevision", createRevision: rev },
  });
}

/** clientv3.OpPut(key, value, WithLease(lease)). */
export function opPut(key: Uint8Array, value: Uint8Array, lease: bigint): RequestOp {
  return {
    request: { oneofKind: "requestPut", requestPut: PutRequest.create({ key, value, lease }) },
  };
}

/** clientv3.OpGet(key). */
export function opGet(key: Uint8Array): RequestOp {
  return opRange(RangeRequest.create({ key }));
}

/** A txn op that reads `req`. */
export function opRange(req: RangeRequest): RequestOp {
  return { request: { oneofKind: "requestRange", requestRange: req } };
}

/** clientv3.OpDelete(key). */
export function opDelete(key: Uint8Array): RequestOp {
  return {
    request: {
      oneofKind: "requestDeleteRange",
      requestDeleteRange: DeleteRangeRequest.create({ key }),
    },
  };
}

/**
 * clientv3.OpGet(prefix, WithFirstCreate()...) (or WithLastCreate): the key under `prefix` with
 * the lowest (highest) create revision, at most `maxCreateRevision` when that is not 0.
 */
export function prefixByCreateRequest(
  prefix: Uint8Array,
  order: "first" | "last",
  maxCreateRevision = 0,
): RangeRequest {
  return RangeRequest.create({
    key: prefix,
    rangeEnd: prefixRangeEnd(prefix),
    sortTarget: RangeRequest_SortTarget.CREATE,
    sortOrder: order === "first" ? RangeRequest_SortOrder.ASCEND : RangeRequest_SortOrder.DESCEND,
    limit: 1,
    maxCreateRevision,
  });
}

/** The range answer of op `i` of a txn response (the recipes only put ranges where they read). */
export function rangeAt(responses: ResponseOp[], i: number): RangeResponse {
  const r = responses[i]?.response;
  if (r?.oneofKind !== "responseRange") throw new Error(`txn response ${i} is not a range`);
  return r.responseRange;
}

/**
 * concurrency.NewSession's lease: `lease` itself when given, else a new lease of
 * defaultSessionTtlSeconds, which etcd's servers then orphan (never kept alive, so it expires).
 * `lease` -1 (Leader, Observe) never grants one.
 */
export async function sessionLease(
  api: EtcdApi,
  lease: bigint,
  call: CallAuth | undefined,
): Promise<bigint> {
  if (lease !== 0n) return lease;
  const g = await api.leaseGrant({ tTL: defaultSessionTtlSeconds, iD: 0n }, call);
  return g.iD;
}

/**
 * One watcher on the member's watch hub, read as a queue of responses: `next()` resolves with the
 * next response that carries events or cancels the watch. The queue holds at most one response:
 * while it is full the sink tells mvcc to hold back (the watcher goes unsynced and is caught up
 * from the store once read), so a slow reader costs no memory.
 */
export class InternalWatch {
  readonly #api: EtcdApi;
  readonly #stream: WatchStream;
  /** responses not yet read: at most the one that paused mvcc (and what mvcc still owed then) */
  #queue: WatchResponse[] = [];
  #paused = false;
  #waiter: ((r: WatchResponse | undefined) => void) | undefined;
  #closed = false;

  /**
   * The cancel response when the caller may not watch the range (auth on): the watch was not
   * created and next() resolves undefined.
   */
  readonly refused: WatchResponse | undefined;

  /**
   * Watches `key` (to `rangeEnd` when given) from `startRevision` (etcd's WithRev), checked with
   * the caller's credentials as a client's watch is (etcd isWatchPermitted).
   */
  static async open(
    api: EtcdApi,
    call: CallAuth | undefined,
    key: Uint8Array,
    startRevision: number,
    rangeEnd?: Uint8Array,
  ): Promise<InternalWatch> {
    const create = WatchCreateRequest.create({ key, rangeEnd, startRevision });
    const refused = api.auth.enabled ? await api.auth.refuseWatch(call, create) : undefined;
    return new InternalWatch(api, create, refused);
  }

  private constructor(
    api: EtcdApi,
    create: WatchCreateRequest,
    refused: WatchResponse | undefined,
  ) {
    this.#api = api;
    this.refused = refused;
    this.#stream = api.server.newWatchStream({ send: (resp) => this.#onResponse(resp) });
    if (refused !== undefined) {
      this.close();
      return;
    }
    this.#stream.handle({ requestUnion: { oneofKind: "createRequest", createRequest: create } });
  }

  #onResponse(resp: WatchResponse): boolean {
    if (this.#closed) return true;
    if (resp.events.length === 0 && !resp.canceled) return true; // created, progress
    const waiter = this.#waiter;
    if (waiter !== undefined) {
      this.#waiter = undefined;
      waiter(resp);
      return true;
    }
    this.#queue.push(resp);
    this.#paused = true;
    return false;
  }

  /**
   * The next response with events, or the one that cancels the watch (compacted history).
   * Resolves undefined once the watch is closed. Headers carry only `revision` (see withHeader).
   */
  next(): Promise<WatchResponse | undefined> {
    if (this.#closed) return Promise.resolve(undefined);
    const q = this.#queue.shift();
    if (q !== undefined) {
      if (this.#queue.length === 0 && this.#paused) {
        this.#paused = false;
        // mvcc holds what came after q until resumed; resuming may deliver into the waiter
        queueMicrotask(() => this.#stream.resume());
      }
      return Promise.resolve(q);
    }
    return new Promise((resolve) => {
      this.#waiter = resolve;
    });
  }

  /** The member's full response header with the watch response's revision. */
  withHeader(resp: WatchResponse): ResponseHeader {
    const h = this.#api.server.header();
    if (resp.header !== undefined && resp.header.revision > 0) h.revision = resp.header.revision;
    return h;
  }

  /** Removes the watcher; a pending next() resolves undefined. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#queue = [];
    const waiter = this.#waiter;
    this.#waiter = undefined;
    // never close the stream from inside its own send (mvcc may be delivering a write)
    queueMicrotask(() => this.#stream.close());
    waiter?.(undefined);
  }
}

/** The error of a watch response that cancelled its watch (etcd's clientv3 WatchResponse.Err). */
export function watchCanceledError(resp: WatchResponse): Error {
  if (resp.compactRevision > 0) {
    return new ApiError(
      GrpcStatus.UNKNOWN,
      "etcdserver: mvcc: required revision has been compacted",
    );
  }
  return new ApiError(
    GrpcStatus.UNKNOWN,
    resp.cancelReason === "" ? "etcdserver: watch canceled" : resp.cancelReason,
  );
}

/**
 * Resolves `p`, or rejects with errCanceled() as soon as `signal` aborts (then `onAbort` runs
 * first, e.g. to close the watch `p` waits on).
 */
export function untilAborted<T>(
  p: Promise<T>,
  signal: AbortSignal,
  onAbort: () => void,
): Promise<T> {
  if (signal.aborted) {
    onAbort();
    return Promise.reject(errCanceled());
  }
  return new Promise<T>((resolve, reject) => {
    const abort = () => {
      onAbort();
      reject(errCanceled());
    };
    signal.addEventListener("abort", abort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener("abort", abort);
        resolve(v);
      },
      (err: unknown) => {
        signal.removeEventListener("abort", abort);
        reject(err);
      },
    );
  });
}

/**
 * concurrency.waitDelete: resolves once `key` is deleted at or after `fromRevision`. Rejects with
 * the watch's error when its history was compacted or the caller may not watch the key (auth),
 * errCanceled() when `signal` aborts.
 */
export async function waitDelete(
  api: EtcdApi,
  key: Uint8Array,
  fromRevision: number,
  signal: AbortSignal,
  call: CallAuth | undefined,
): Promise<void> {
  const w = await InternalWatch.open(api, call, key, fromRevision);
  if (w.refused !== undefined) throw watchCanceledError(w.refused);
  try {
    // each pass reads one response; the loop ends at the delete, a cancel or the caller's abort
    for (;;) {
      const resp = await untilAborted(w.next(), signal, () => w.close());
      if (resp === undefined) throw errCanceled();
      if (resp.canceled) throw watchCanceledError(resp);
      if (resp.events.some((e) => e.type === Event_EventType.DELETE)) return;
    }
  } finally {
    w.close();
  }
}

/**
 * concurrency.waitDeletes: waits until no key under `prefix` has a create revision at most
 * `maxCreateRevision` (the waiters queued before the caller), watching the newest such key for
 * its delete each round. Returns the header of the read that found none. Terminates: every round
 * waits for one of those keys to go, and no new key can get a create revision that old.
 */
export async function waitDeletes(
  api: EtcdApi,
  prefix: Uint8Array,
  maxCreateRevision: number,
  signal: AbortSignal,
  call: CallAuth | undefined,
): Promise<ResponseHeader> {
  for (;;) {
    if (signal.aborted) throw errCanceled();
    const resp = await api.range(prefixByCreateRequest(prefix, "last", maxCreateRevision), call);
    const header = resp.header ?? api.server.header();
    const last = resp.kvs[0];
    if (last === undefined) return header;
    await waitDelete(api, last.key, header.revision, signal, call);
  }
}
