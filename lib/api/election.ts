/**
 * The `v3electionpb.Election` service, as etcd 3.4's etcdserver/api/v3election/election.go: leader
 * election run by the member on its own KV, with clientv3/concurrency/election.go's algorithm.
 *
 * A candidate's key is `<name>/<lease in hex>`, holding its value, on its lease; the leader is the
 * key under `<name>/` with the lowest create revision. Campaign waits, like Lock, until no key
 * created before the candidate's is left. Proclaim and Resign act only while the leader key still
 * has the create revision the caller was elected with (a compare in the same txn), so a candidate
 * whose lease expired cannot overwrite or delete its successor. Observe streams the leader's key
 * each time it is put, and the next leader's once the key is deleted.
 */
import type {
  CampaignRequest,
  CampaignResponse,
  LeaderKey,
  LeaderRequest,
  LeaderResponse,
  ProclaimRequest,
  ProclaimResponse,
  ResignRequest,
  ResignResponse,
} from "../proto/gen/v3electionpb/v3election.js";
import { Event_EventType, type KeyValue } from "../proto/gen/mvccpb/kv.js";
import type { ResponseHeader } from "../proto/gen/etcdserverpb/rpc.js";
import { status as GrpcStatus } from "@grpc/grpc-js";
import type { EtcdApi, ServerStream } from "./handlers.js";
import { type CallAuth, credentialsOnly } from "./auth.js";
import { ApiError } from "./errors.js";
import {
  InternalWatch,
  asServiceError,
  concatBytes,
  createRevisionIs,
  leaseHex,
  opDelete,
  opGet,
  opPut,
  prefixByCreateRequest,
  prefixRangeEnd,
  rangeAt,
  sessionLease,
  waitDeletes,
} from "./concurrency.js";

// etcd returns these as plain Go errors, which grpc-go answers with code Unknown
/** etcd's v3election ErrMissingLeaderKey. */
export const errMissingLeaderKey = () =>
  new ApiError(GrpcStatus.UNKNOWN, '"leader" field must be provided');
/** concurrency.ErrElectionNotLeader. */
export const errElectionNotLeader = () => new ApiError(GrpcStatus.UNKNOWN, "election: not leader");
/** concurrency.ErrElectionNoLeader. */
export const errElectionNoLeader = () => new ApiError(GrpcStatus.UNKNOWN, "election: no leader");

/** Runs `fn`, answering its errors as etcd's election server does (asServiceError). */
async function served<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw asServiceError(err);
  }
}

/** Observe's send side: waits for the transport to drain when its buffer is full. */
class ObserveSender {
  readonly #stream: ServerStream<LeaderResponse>;
  #drained: (() => void) | undefined;
  closed = false;

  constructor(stream: ServerStream<LeaderResponse>) {
    this.#stream = stream;
    stream.onDrain(() => {
      const d = this.#drained;
      this.#drained = undefined;
      d?.();
    });
    stream.onClose(() => {
      this.closed = true;
      const d = this.#drained;
      this.#drained = undefined;
      d?.();
    });
  }

  /** Sends one response; resolves once the transport can take the next. */
  async send(header: ResponseHeader, kv: KeyValue): Promise<void> {
    if (this.closed) return;
    if (this.#stream.send({ header, kv })) return;
    await new Promise<void>((resolve) => {
      this.#drained = resolve;
    });
  }
}

export class ElectionService {
  readonly #api: EtcdApi;

  constructor(api: EtcdApi) {
    this.#api = api;
  }

  /**
   * Campaign: puts the candidate's key (or finds it under the same lease, proclaiming the new
   * value when it differs) and resolves once it leads, with the leader key to pass to Proclaim and
   * Resign and the header of the campaign's txn. `signal` aborts when the client goes away: the
   * candidate then resigns. Every step runs with the caller's credentials `call`. Errors reach
   * the client as etcd's (gRPC UNKNOWN, etcd's string).
   */
  campaign(req: CampaignRequest, signal: AbortSignal, call?: CallAuth): Promise<CampaignResponse> {
    return served(async () => {
      const api = this.#api;
      const lease = await sessionLease(api, req.lease, call);
      const prefix = concatBytes(req.name, "/");
      const key = concatBytes(prefix, leaseHex(lease));
      const resp = await api.txn(
        {
          compare: [createRevisionIs(key, 0)],
          success: [opPut(key, req.value, lease)],
          failure: [opGet(key)],
        },
        call,
      );
      const header = resp.header ?? api.server.header();
      const leader: LeaderKey = { name: req.name, key, rev: header.revision, lease };
      if (!resp.succeeded) {
        const kv = rangeAt(resp.responses, 0).kvs[0]!;
        leader.rev = kv.createRevision;
        if (Buffer.compare(kv.value, req.value) !== 0) {
          try {
            await this.#proclaim(leader, req.value, call);
          } catch (err) {
            await this.#resign(leader, credentialsOnly(call)).catch(() => undefined);
            throw err;
          }
        }
      }
      try {
        await waitDeletes(api, prefix, leader.rev - 1, signal, call);
      } catch (err) {
        // etcd resigns when the caller's context ended; other errors leave the key
        if (signal.aborted)
          await this.#resign(leader, credentialsOnly(call)).catch(() => undefined);
        throw err;
      }
      return { header, leader };
    });
  }

  /**
   * Proclaim: the leader puts a new value without a new election. Answers
   * `election: not leader` when the key is gone or was created again since (another create
   * revision), `"leader" field must be provided` without a leader key. A request whose leader key
   * names no lease runs on a new 60 s lease, as etcd's session does.
   */
  proclaim(req: ProclaimRequest, call?: CallAuth): Promise<ProclaimResponse> {
    return served(async () => {
      if (req.leader === undefined) throw errMissingLeaderKey();
      const lease = await sessionLease(this.#api, req.leader.lease, call);
      return { header: await this.#proclaim({ ...req.leader, lease }, req.value, call) };
    });
  }

  async #proclaim(
    leader: LeaderKey,
    value: Uint8Array,
    call: CallAuth | undefined,
  ): Promise<ResponseHeader | undefined> {
    const resp = await this.#api.txn(
      {
        compare: [createRevisionIs(leader.key, leader.rev)],
        success: [opPut(leader.key, value, leader.lease)],
        failure: [],
      },
      call,
    );
    if (!resp.succeeded) throw errElectionNotLeader();
    return resp.header;
  }

  /**
   * Resign: deletes the leader key if it still has the create revision it was elected with. A
   * caller that no longer leads gets a success all the same (etcd's Resign ignores the compare's
   * outcome), with the header of the txn.
   */
  resign(req: ResignRequest, call?: CallAuth): Promise<ResignResponse> {
    return served(async () => {
      if (req.leader === undefined) throw errMissingLeaderKey();
      // etcd opens a session on the leader's lease first: lease 0 grants one (unused)
      await sessionLease(this.#api, req.leader.lease, call);
      return { header: await this.#resign(req.leader, call) };
    });
  }

  async #resign(
    leader: LeaderKey,
    call: CallAuth | undefined,
  ): Promise<ResponseHeader | undefined> {
    const resp = await this.#api.txn(
      {
        compare: [createRevisionIs(leader.key, leader.rev)],
        success: [opDelete(leader.key)],
        failure: [],
      },
      call,
    );
    return resp.header;
  }

  /** Leader: the current leader's key-value; `election: no leader` when nobody campaigns. */
  leader(req: LeaderRequest, call?: CallAuth): Promise<LeaderResponse> {
    return served(async () => {
      const resp = await this.#api.range(
        prefixByCreateRequest(concatBytes(req.name, "/"), "first"),
        call,
      );
      const kv = resp.kvs[0];
      if (kv === undefined) throw errElectionNoLeader();
      return { header: resp.header, kv };
    });
  }

  /**
   * Observe: streams the leader's key-value now (or once a first candidate appears), again on
   * every put of that key (Proclaim), and the next leader's once it is deleted, until the client
   * goes away. Ends the stream without an error when a read fails or the watched history was
   * compacted, as etcd's observe goroutine closes its channel and the server returns nil.
   */
  observe(req: LeaderRequest, stream: ServerStream<LeaderResponse>, call?: CallAuth): void {
    const sender = new ObserveSender(stream);
    const watches = new Set<InternalWatch>();
    stream.onClose(() => {
      for (const w of watches) w.close();
    });
    /** A watch with the caller's credentials; undefined when refused or the client is gone. */
    const watch = async (key: Uint8Array, fromRevision: number, rangeEnd?: Uint8Array) => {
      const w = await InternalWatch.open(this.#api, call, key, fromRevision, rangeEnd);
      if (w.refused !== undefined || sender.closed) {
        w.close();
        return undefined;
      }
      watches.add(w);
      return w;
    };
    const unwatch = (w: InternalWatch) => {
      w.close();
      watches.delete(w);
    };
    this.#observeLoop(concatBytes(req.name, "/"), sender, call, watch, unwatch).then(
      () => stream.end(),
      () => stream.end(),
    );
  }

  /**
   * etcd's Election.observe: each round finds the leader (or waits for the first put under the
   * prefix), sends it, then follows its key until it is deleted. Returns when the client is gone
   * or a read or watch fails.
   */
  async #observeLoop(
    prefix: Buffer,
    sender: ObserveSender,
    call: CallAuth | undefined,
    watch: (
      key: Uint8Array,
      fromRevision: number,
      rangeEnd?: Uint8Array,
    ) => Promise<InternalWatch | undefined>,
    unwatch: (w: InternalWatch) => void,
  ): Promise<void> {
    // each round ends with the leader key's delete; the stream's life bounds the rounds
    while (!sender.closed) {
      const resp = await this.#api.range(prefixByCreateRequest(prefix, "first"), call);
      let header = resp.header ?? this.#api.server.header();
      let kv = resp.kvs[0];
      if (kv === undefined) {
        const w = await watch(prefix, header.revision, prefixRangeEnd(prefix));
        if (w === undefined) return;
        try {
          while (kv === undefined) {
            const wr = await w.next();
            if (wr === undefined || wr.canceled) return;
            const put = wr.events.find((e) => e.type === Event_EventType.PUT);
            if (put?.kv !== undefined) {
              kv = put.kv;
              // etcd: the header's revision is the put's, in case the response has several
              header = { ...w.withHeader(wr), revision: kv.modRevision };
            }
          }
        } finally {
          unwatch(w);
        }
      }
      await sender.send(header, kv);
      const w = await watch(kv.key, header.revision + 1);
      if (w === undefined) return;
      try {
        let deleted = false;
        while (!deleted && !sender.closed) {
          const wr = await w.next();
          if (wr === undefined || wr.canceled) return;
          for (const ev of wr.events) {
            if (ev.type === Event_EventType.DELETE) {
              deleted = true;
              break;
            }
            await sender.send(w.withHeader(wr), ev.kv!);
          }
        }
      } finally {
        unwatch(w);
      }
    }
  }
}
