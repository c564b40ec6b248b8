/**
 * The `v3lockpb.Lock` service, as etcd 3.4's etcdserver/api/v3lock/lock.go: a distributed mutex
 * run by the member on its own KV, with clientv3/concurrency/mutex.go's algorithm.
 *
 * Lock puts the ownership key `<name>/<lease in hex>` on the caller's lease (or on a new 60 s
 * lease nobody keeps alive when the request names none), unless the key already exists under that
 * lease. Waiters are ordered by create revision: the caller owns the lock once no key under
 * `<name>/` with a lower create revision is left, which it learns by watching the next-lower key
 * for its delete. A caller that goes away while waiting has its key deleted, so it never owns the
 * lock later. Unlock deletes the key.
 */
import {
  type LockRequest,
  type LockResponse,
  type UnlockRequest,
  type UnlockResponse,
} from "../proto/gen/v3lockpb/v3lock.js";
import { DeleteRangeRequest } from "../proto/gen/etcdserverpb/rpc.js";
import type { EtcdApi } from "./handlers.js";
import { type CallAuth, credentialsOnly } from "./auth.js";
import {
  asServiceError,
  concatBytes,
  createRevisionIs,
  leaseHex,
  opGet,
  opPut,
  opRange,
  prefixByCreateRequest,
  rangeAt,
  sessionLease,
  waitDeletes,
} from "./concurrency.js";

export class LockService {
  readonly #api: EtcdApi;

  constructor(api: EtcdApi) {
    this.#api = api;
  }

  /**
   * Lock: resolves once the caller owns `name`, with the ownership key and the header of the
   * request that made it owner. `signal` aborts when the client goes away: the key is then
   * deleted. Every step runs with the caller's credentials `call`. Errors reach the client as
   * etcd's (gRPC UNKNOWN, etcd's string: e.g. "etcdserver: requested lease not found" for a lease
   * that does not exist).
   */
  async lock(req: LockRequest, signal: AbortSignal, call?: CallAuth): Promise<LockResponse> {
    try {
      return await this.#lock(req, signal, call);
    } catch (err) {
      throw asServiceError(err);
    }
  }

  async #lock(
    req: LockRequest,
    signal: AbortSignal,
    call: CallAuth | undefined,
  ): Promise<LockResponse> {
    const api = this.#api;
    const lease = await sessionLease(api, req.lease, call);
    const prefix = concatBytes(req.name, "/");
    const key = concatBytes(prefix, leaseHex(lease));
    // one round trip on the uncontended path: claim the key (or find ours) and read the owner
    const owner = opRange(prefixByCreateRequest(prefix, "first"));
    const resp = await api.txn(
      {
        compare: [createRevisionIs(key, 0)],
        success: [opPut(key, new Uint8Array(0), lease), owner],
        failure: [opGet(key), owner],
      },
      call,
    );
    const header = resp.header ?? api.server.header();
    const myRevision = resp.succeeded
      ? header.revision
      : rangeAt(resp.responses, 0).kvs[0]!.createRevision;
    const first = rangeAt(resp.responses, 1).kvs[0];
    if (first === undefined || first.createRevision === myRevision) return { header, key };
    try {
      return { header: await waitDeletes(api, prefix, myRevision - 1, signal, call), key };
    } catch (err) {
      // etcd's Mutex.Lock releases the key when the wait fails (the client went away)
      await api
        .deleteRange(DeleteRangeRequest.create({ key }), credentialsOnly(call))
        .catch(() => undefined);
      throw err;
    }
  }

  /** Unlock: deletes the ownership key (etcd's Delete; an empty key is etcd's key error). */
  async unlock(req: UnlockRequest, call?: CallAuth): Promise<UnlockResponse> {
    try {
      const resp = await this.#api.deleteRange(DeleteRangeRequest.create({ key: req.key }), call);
      return { header: resp.header };
    } catch (err) {
      throw asServiceError(err);
    }
  }
}
