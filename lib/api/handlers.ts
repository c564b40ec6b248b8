/**
 * The etcd v3 services without a transport: a decoded request in, a response (or a stream of them)
 * out. lib/api/grpc.ts serves these through @grpc/grpc-js and lib/api/gateway.ts through JSON;
 * the fast lib/h2 transport (its own issue) will call the same methods.
 *
 * Validation follows etcd's api/v3rpc (key.go checkRangeRequest/checkPutRequest/checkTxnRequest,
 * lease.go, maintenance.go); the work is lib/server's.
 */
import { LeaderStreamMonitor } from "./require-leader.js";
import type {
  AlarmRequest,
  AlarmResponse,
  CompactionRequest,
  CompactionResponse,
  DefragmentResponse,
  DeleteRangeRequest,
  DeleteRangeResponse,
  HashKVRequest,
  HashKVResponse,
  HashResponse,
  LeaseGrantRequest,
  LeaseGrantResponse,
  LeaseKeepAliveRequest,
  LeaseKeepAliveResponse,
  LeaseLeasesResponse,
  LeaseRevokeRequest,
  LeaseRevokeResponse,
  LeaseTimeToLiveRequest,
  LeaseTimeToLiveResponse,
  MemberAddRequest,
  MemberAddResponse,
  MemberListResponse,
  MemberPromoteRequest,
  MemberPromoteResponse,
  MemberRemoveRequest,
  MemberRemoveResponse,
  MemberUpdateRequest,
  MemberUpdateResponse,
  MoveLeaderRequest,
  MoveLeaderResponse,
  PutRequest,
  PutResponse,
  RangeRequest,
  RangeResponse,
  RequestOp,
  SnapshotResponse,
  StatusResponse,
  TxnRequest,
  TxnResponse,
  WatchRequest,
  WatchResponse,
} from "../proto/gen/etcdserverpb/rpc.js";
import { AlarmRequest_AlarmAction } from "../proto/gen/etcdserverpb/rpc.js";
import {
  checkDeleteRangeRequest,
  checkPutRequest,
  checkRangeRequest,
  checkTxnRequest,
  isTxnReadOnly,
} from "../mvcc/index.js";
import { ApiAuth, type CallAuth } from "./auth.js";
import type { EtcdServer } from "../server/index.js";
import { planDbFileInSteps, snapshotSendBufferBytes } from "../server/db-file.js";
import type { BoltFileWriter } from "../btree/index.js";
import { createHash } from "node:crypto";
import { errNotLeader } from "../server/errors.js";
import { LockService } from "./lock.js";
import { ElectionService } from "./election.js";

/**
 * One side of a bidirectional stream as lib/api sees it, whatever the transport.
 * `send` returns false when the transport's buffer is full; the transport then calls the
 * `onDrain` callback once it has room again.
 */
export interface BidiStream<Req, Res> {
  onMessage(fn: (req: Req) => void): void;
  /**
   * the client half-closed (it sends no more); the stream stays open until the handler ends it
   * or the client goes away (lib/h2 ends it at once when no such callback is registered)
   */
  onEnd(fn: () => void): void;
  /** the client half-closed, cancelled, or the connection went away */
  onClose(fn: () => void): void;
  onDrain(fn: () => void): void;
  send(res: Res): boolean;
  /** ends the stream with an error status (message is etcd's string) or cleanly */
  end(err?: Error): void;
}

/**
 * The server side of a server-streaming call (Maintenance.Snapshot), whatever the transport.
 * `send` returns false when the transport's buffer is full; it then calls `onDrain` callbacks.
 */
export interface ServerStream<Res> {
  /** the client cancelled or the connection went away */
  onClose(fn: () => void): void;
  onDrain(fn: () => void): void;
  send(res: Res): boolean;
  /** ends the stream with an error status (message is etcd's string) or cleanly */
  end(err?: Error): void;
}

/** Bounds on what one client stream may hold in the server (STYLE §2). */
export interface StreamLimits {
  /** keep-alive requests queued per LeaseKeepAlive stream before the server stops reading */
  maxPendingKeepAlives: number;
  /**
   * Snapshot bytes one stream hands the transport per event-loop turn before it yields, so a
   * fast client does not hold the loop for a whole db file
   */
  snapshotBytesPerTurn: number;
}

const defaultStreamLimits: StreamLimits = {
  maxPendingKeepAlives: 1024,
  snapshotBytesPerTurn: 1 << 20,
};

/**
 * Every method takes the call's credentials (`call`, CallAuth: metadata and the client
 * certificate's name); while auth is off they are not looked at. While it is on, each call is
 * checked as etcd 3.4 checks it (auth.ts) and writes carry the caller into raft.
 */
export class EtcdApi {
  readonly #server: EtcdServer;
  readonly #limits: StreamLimits;
  /** credentials, the checks before raft, and the Auth service */
  readonly auth: ApiAuth;
  /** v3lockpb.Lock (lock.ts), run on this API's KV and Lease calls as etcd's v3lock server */
  readonly lockService: LockService;
  /** v3electionpb.Election (election.ts), likewise */
  readonly electionService: ElectionService;
  /** streams opened with `hasleader: true`, ended when the leader stays lost (require-leader.ts) */
  readonly leaderStreams: LeaderStreamMonitor;

  constructor(server: EtcdServer, limits: Partial<StreamLimits> = {}) {
    this.#server = server;
    this.#limits = { ...defaultStreamLimits, ...limits };
    this.auth = new ApiAuth(server);
    this.lockService = new LockService(this);
    this.electionService = new ElectionService(this);
    this.leaderStreams = new LeaderStreamMonitor(server, server.config.electionTimeoutMs);
  }

  get server(): EtcdServer {
    return this.#server;
  }

  // ------------------------------------------------------------------ KV

  /** KV.Range. Errors: empty key, compacted or future revision, no leader, timeout. */
  async range(req: RangeRequest, call?: CallAuth): Promise<RangeResponse> {
    checkRangeRequest(req);
    if (!this.auth.enabled) return this.#server.range(req);
    // etcd's Range waits for the ReadIndex before the permission check: on a follower a change of
    // permissions committed before the read is applied, and seen, by then
    if (!req.serializable) await this.#server.linearizableReadNotify();
    const local: RangeRequest = req.serializable ? req : { ...req, serializable: true };
    return this.auth.serialized(
      call,
      (ai) => this.auth.checkRange(ai, req),
      () => this.#server.range(local),
    );
  }

  /**
   * KV.Put. Errors: empty key, value/lease given with ignore_*, quota, request too large. Not an
   * async function: it hands back the server's promise itself (an async function returning a
   * promise adds a promise, a thenable job and two microtask turns to every put).
   */
  put(req: PutRequest, call?: CallAuth): Promise<PutResponse> {
    try {
      checkPutRequest(req);
    } catch (err) {
      return Promise.reject(err);
    }
    if (!this.auth.enabled) return this.#server.put(req, undefined, call);
    return this.auth.authInfo(call).then((ai) => this.#server.put(req, ai, call));
  }

  /** KV.DeleteRange. */
  async deleteRange(req: DeleteRangeRequest, call?: CallAuth): Promise<DeleteRangeResponse> {
    checkDeleteRangeRequest(req);
    return this.#server.deleteRange(req, await this.auth.authInfo(call), call);
  }

  /** KV.Txn. Errors: more than --max-txn-ops ops, duplicate key, each op's own checks. */
  async txn(req: TxnRequest, call?: CallAuth): Promise<TxnResponse> {
    checkTxnRequest(req, this.#server.config.maxTxnOps);
    if (!this.auth.enabled) return this.#server.txn(req, undefined, call);
    if (!isTxnReadOnly(req)) return this.#server.txn(req, await this.auth.authInfo(call), call);
    // as Range: the ReadIndex first, then the check, then a local read
    const local = serializableTxn(req);
    if (local !== req) await this.#server.linearizableReadNotify();
    return this.auth.serialized(
      call,
      (ai) => this.auth.checkTxn(ai, req),
      () => this.#server.txn(local),
    );
  }

  /** KV.Compact. */
  async compact(req: CompactionRequest, call?: CallAuth): Promise<CompactionResponse> {
    return this.#server.compact(req, await this.auth.authInfo(call));
  }

  // ------------------------------------------------------------------ Lease

  async leaseGrant(req: LeaseGrantRequest, call?: CallAuth): Promise<LeaseGrantResponse> {
    return this.#server.leaseGrant(req, await this.auth.requireAuthInfo(call), call);
  }

  async leaseRevoke(req: LeaseRevokeRequest, call?: CallAuth): Promise<LeaseRevokeResponse> {
    return this.#server.leaseRevoke(req, await this.auth.requireAuthInfo(call), call);
  }

  /** etcd checks the lease's keys are readable only when `keys` is asked for. */
  async leaseTimeToLive(
    req: LeaseTimeToLiveRequest,
    call?: CallAuth,
  ): Promise<LeaseTimeToLiveResponse> {
    if (this.auth.enabled) {
      const ai = await this.auth.requireAuthInfo(call);
      if (req.keys) {
        return this.auth.serialized(
          call,
          () => this.auth.checkLeaseKeys(ai, req.iD, "range"),
          () => this.#leaseTimeToLive(req),
        );
      }
    }
    return this.#leaseTimeToLive(req);
  }

  async #leaseTimeToLive(req: LeaseTimeToLiveRequest): Promise<LeaseTimeToLiveResponse> {
    try {
      return await this.#server.leaseTimeToLive(req);
    } catch (err) {
      // etcd answers TimeToLive of an unknown lease with TTL -1, not an error (v3rpc/lease.go)
      if ((err as Error).message === "etcdserver: requested lease not found") {
        return { header: this.#server.header(), iD: req.iD, tTL: -1, grantedTTL: 0, keys: [] };
      }
      throw err;
    }
  }

  /** etcd checkLeaseLeases: unless root, the keys of every lease must be readable. */
  async leaseLeases(call?: CallAuth): Promise<LeaseLeasesResponse> {
    if (!this.auth.enabled) return this.#server.leaseLeases();
    const ai = await this.auth.requireAuthInfo(call);
    return this.auth.serialized(
      call,
      () => {
        for (const id of this.#server.lessor.leases()) this.auth.checkLeaseKeys(ai, id, "range");
      },
      () => this.#server.leaseLeases(),
    );
  }

  /**
   * Lease.LeaseKeepAlive: each request renews one lease and gets one response, in order.
   * An unknown lease answers TTL 0 (etcd v3rpc/lease.go leaseKeepAlive). Requests are renewed one
   * at a time; when the client does not read its responses the stream stops taking requests.
   */
  leaseKeepAlive(
    stream: BidiStream<LeaseKeepAliveRequest, LeaseKeepAliveResponse>,
    call?: CallAuth,
  ): void {
    const queue: bigint[] = [];
    let running = false;
    let closed = false;
    let waitingDrain = false;
    // the client half-closed: once what it sent is answered the stream ends (etcd's
    // leaseKeepAlive returns at io.EOF; python3-etcd3's refresh reads until then)
    let halfClosed = false;
    const pump = async () => {
      if (running) return;
      running = true;
      try {
        while (!closed && !waitingDrain && queue.length > 0) {
          const id = queue.shift() as bigint;
          let ttl: number;
          try {
            // etcd checkLeaseRenew: the caller must be able to write every key on the lease
            if (this.auth.enabled) {
              this.auth.checkLeaseKeys(await this.auth.authInfo(call), id, "put");
            }
            ttl = await this.#server.leaseRenew(id);
          } catch (err) {
            const msg = (err as Error).message;
            if (msg === "etcdserver: requested lease not found") ttl = 0;
            else {
              stream.end(err as Error);
              closed = true;
              return;
            }
          }
          if (closed) return;
          const ok = stream.send({ header: this.#server.header(), iD: id, tTL: ttl });
          if (!ok) waitingDrain = true;
        }
      } finally {
        running = false;
      }
      if (halfClosed && !closed && queue.length === 0) {
        closed = true;
        stream.end();
      }
    };
    stream.onMessage((req) => {
      if (closed) return;
      if (queue.length >= this.#limits.maxPendingKeepAlives) {
        // a client that floods keep-alives without reading replies does not grow our memory
        return;
      }
      queue.push(req.iD);
      void pump();
    });
    stream.onEnd(() => {
      halfClosed = true;
      void pump();
    });
    stream.onDrain(() => {
      waitingDrain = false;
      void pump();
    });
    stream.onClose(() => {
      closed = true;
    });
  }

  // ------------------------------------------------------------------ Watch

  /**
   * Watch: many watchers per stream (mvcc's WatchStream does create/cancel/progress and catch-up).
   * Every response gets the header; event responses keep the revision mvcc put in them.
   */
  watch(stream: BidiStream<WatchRequest, WatchResponse>, call?: CallAuth): void {
    const server = this.#server;
    const ws = server.newWatchStream({
      send: (resp: WatchResponse) => {
        const h = server.header();
        if (resp.header !== undefined && resp.header.revision > 0)
          h.revision = resp.header.revision;
        resp.header = h;
        return stream.send(resp);
      },
    });
    const handle = (req: WatchRequest) => {
      try {
        ws.handle(req);
      } catch (err) {
        stream.end(err as Error);
        ws.close();
      }
    };
    // While auth is on, each create is checked (etcd isWatchPermitted) before the stream sees
    // it; requests wait their turn so a create and a later cancel stay in order.
    let queued: Promise<void> | undefined;
    let queuedCount = 0;
    stream.onMessage((req) => {
      if (queuedCount === 0 && !this.auth.enabled) return handle(req);
      queuedCount++;
      queued = (queued ?? Promise.resolve()).then(async () => {
        const u = req.requestUnion;
        const refused =
          u.oneofKind === "createRequest"
            ? await this.auth.refuseWatch(call, u.createRequest)
            : undefined;
        queuedCount--;
        if (refused !== undefined) stream.send(refused);
        else handle(req);
      });
    });
    stream.onDrain(() => ws.resume());
    stream.onClose(() => ws.close());
  }

  // ------------------------------------------------------------------ Maintenance

  // etcd's authMaintenanceServer: Defragment, Snapshot, Hash, HashKV and Alarm changes are for
  // root only (the first four answer with auth's unmapped error, code Unknown, as etcd 3.4.23
  // does); Alarm GET needs credentials (etcd release-3.4's newest rule; 3.4.23 checked no
  // alarm call). Status is open to every caller, as in etcd 3.4.23 (the reference binary).

  async status(): Promise<StatusResponse> {
    return this.#server.status();
  }

  /** Maintenance.Alarm. etcd 3.4's applier answers it without a header (apply.go Alarm). */
  async alarm(req: AlarmRequest, call?: CallAuth): Promise<AlarmResponse> {
    let ai;
    if (this.auth.enabled) {
      ai =
        req.action === AlarmRequest_AlarmAction.GET
          ? await this.auth.requireAuthInfo(call)
          : await this.auth.requireAdmin(call);
    }
    const resp = await this.#server.alarm(req, ai);
    return { alarms: resp.alarms };
  }

  /** Maintenance.Hash: etcd hashes the whole backend; we hash every kv held (HashKV at 0). */
  async hash(call?: CallAuth): Promise<HashResponse> {
    if (this.auth.enabled) await this.auth.requireAdminUnmapped(call);
    await this.#server.linearizableReadNotify();
    const h = this.#server.hashKV(0);
    return { header: h.header, hash: h.hash };
  }

  async hashKV(req: HashKVRequest, call?: CallAuth): Promise<HashKVResponse> {
    if (this.auth.enabled) await this.auth.requireAdminUnmapped(call);
    return this.#server.hashKV(req.revision);
  }

  /**
   * Maintenance.Snapshot, as etcd 3.4's v3rpc maintenance.go: the member's db file (a bbolt file
   * with etcd's buckets, lib/server/db-file.ts) as of the call, in messages of 32 KiB
   * (`remaining_bytes` = bytes still to come after this one), then one message whose blob is
   * the sha256 of the file and remaining_bytes 0, which `etcdctl snapshot restore` checks.
   * The state is captured when the call arrives (mvcc's O(1) snapshot); the file is planned in
   * steps of dbFilePlanEntriesPerStep records per loop turn, then sent waiting for the
   * transport's window (onDrain) and yielding the event loop every `snapshotBytesPerTurn` bytes.
   * A client that goes away stops the work.
   */
  snapshot(stream: ServerStream<SnapshotResponse>, call?: CallAuth): void {
    if (this.auth.enabled) {
      this.auth.requireAdminUnmapped(call).then(
        () => this.#snapshot(stream),
        (err: Error) => stream.end(err),
      );
      return;
    }
    this.#snapshot(stream);
  }

  #snapshot(stream: ServerStream<SnapshotResponse>): void {
    // the state is captured now; planning the file walks every record, a step per loop turn
    let planner: Generator<void, BoltFileWriter, void>;
    let closed = false;
    try {
      planner = planDbFileInSteps(this.#server);
    } catch (err) {
      stream.end(err as Error);
      return;
    }
    stream.onClose(() => {
      closed = true;
    });
    const plan = (): void => {
      if (closed) {
        void planner.return(undefined as never);
        return;
      }
      let r: IteratorResult<void, BoltFileWriter>;
      try {
        r = planner.next();
      } catch (err) {
        closed = true;
        stream.end(err as Error);
        return;
      }
      if (r.done === true) this.#sendDbFile(r.value, stream);
      else setImmediate(plan);
    };
    plan();
  }

  /** Streams a planned db file as etcd's Snapshot does (see snapshot()). */
  #sendDbFile(writer: BoltFileWriter, stream: ServerStream<SnapshotResponse>): void {
    const total = writer.sizeBytes;
    const chunks = writer.chunks();
    const sha = createHash("sha256");
    const perTurn = this.#limits.snapshotBytesPerTurn;
    let sent = 0;
    let pending: Buffer = Buffer.alloc(0);
    let closed = false;
    let waitingDrain = false;
    let scheduled = false;
    // the next message's bytes: exactly snapshotSendBufferBytes (etcd's io.ReadFull) but the last
    const nextBlob = (): Buffer | undefined => {
      const want = Math.min(snapshotSendBufferBytes, total - sent);
      if (want === 0) return undefined;
      if (pending.length >= want) {
        const b = pending.subarray(0, want);
        pending = pending.subarray(want);
        return b;
      }
      const parts: Buffer[] = [pending];
      let have = pending.length;
      while (have < want) {
        const r = chunks.next();
        if (r.done === true)
          throw new Error(`snapshot: db file ended at ${sent + have} of ${total} bytes`);
        parts.push(r.value);
        have += r.value.length;
      }
      const all = Buffer.concat(parts, have);
      pending = all.subarray(want);
      return all.subarray(0, want);
    };
    const pump = (): void => {
      scheduled = false;
      let bytesThisTurn = 0;
      try {
        while (!closed && !waitingDrain) {
          if (bytesThisTurn >= perTurn) {
            scheduled = true;
            setImmediate(pump);
            return;
          }
          const blob = nextBlob();
          if (blob === undefined) {
            closed = true;
            stream.send({ remainingBytes: 0, blob: sha.digest() });
            stream.end();
            return;
          }
          sent += blob.length;
          bytesThisTurn += blob.length;
          sha.update(blob);
          if (!stream.send({ remainingBytes: total - sent, blob })) waitingDrain = true;
        }
      } catch (err) {
        closed = true;
        void chunks.return(undefined);
        stream.end(err as Error);
      }
    };
    stream.onDrain(() => {
      waitingDrain = false;
      if (!scheduled && !closed) pump();
    });
    stream.onClose(() => {
      closed = true;
      void chunks.return(undefined);
    });
    pump();
  }

  /**
   * Maintenance.MoveLeader, as etcd 3.4's maintenance server and EtcdServer.MoveLeader (no auth
   * check in 3.4.23): only the leader takes it ("etcdserver: not leader"), the target must be a
   * voting member ("etcdserver: bad leader transferee"); answers once the target leads, with an
   * empty response (etcd sets no header).
   */
  async moveLeader(req: MoveLeaderRequest): Promise<MoveLeaderResponse> {
    const server = this.#server;
    if (!server.isLeader) throw errNotLeader();
    await server.moveLeader(req.targetID);
    return {};
  }

  /**
   * Maintenance.Defragment: the member rewrites its db file compactly without blocking writes
   * (EtcdServer.defragment); answers like etcd 3.4, whose response has no header.
   */
  async defragment(call?: CallAuth): Promise<DefragmentResponse> {
    if (this.auth.enabled) await this.auth.requireAdminUnmapped(call);
    await this.#server.defragment();
    return {};
  }

  // ------------------------------------------------------------------ Cluster

  /** Cluster.MemberList. etcd 3.4's cluster server's header has no revision (cluster.go header). */
  async memberList(): Promise<MemberListResponse> {
    const resp = this.#server.memberList();
    if (resp.header !== undefined) resp.header.revision = 0;
    return resp;
  }

  /** etcd's cluster server header: cluster id, member id and raft term, no revision. */
  #clusterHeader() {
    const h = this.#server.header();
    return { ...h, revision: 0 };
  }

  /**
   * Cluster.MemberAdd (etcd 3.4's ClusterServer.MemberAdd + EtcdServer.AddMember): admin only
   * while auth is on; the new member has no name or client URLs until it starts and publishes them.
   */
  async memberAdd(req: MemberAddRequest, call?: CallAuth): Promise<MemberAddResponse> {
    if (this.auth.enabled) await this.auth.requireAdmin(call);
    const r = await this.#server.memberAdd(req.peerURLs, req.isLearner);
    return { header: this.#clusterHeader(), member: r.member, members: r.members };
  }

  /** Cluster.MemberRemove: admin only while auth is on. */
  async memberRemove(req: MemberRemoveRequest, call?: CallAuth): Promise<MemberRemoveResponse> {
    if (this.auth.enabled) await this.auth.requireAdmin(call);
    const members = await this.#server.memberRemove(req.iD);
    return { header: this.#clusterHeader(), members };
  }

  /** Cluster.MemberUpdate: new peer URLs; admin only while auth is on. */
  async memberUpdate(req: MemberUpdateRequest, call?: CallAuth): Promise<MemberUpdateResponse> {
    if (this.auth.enabled) await this.auth.requireAdmin(call);
    const members = await this.#server.memberUpdate(req.iD, req.peerURLs);
    return { header: this.#clusterHeader(), members };
  }

  /** Cluster.MemberPromote: a learner that caught up becomes a voter; admin only while auth is on. */
  async memberPromote(req: MemberPromoteRequest, call?: CallAuth): Promise<MemberPromoteResponse> {
    if (this.auth.enabled) await this.auth.requireAdmin(call);
    const members = await this.#server.memberPromote(req.iD);
    return { header: this.#clusterHeader(), members };
  }
}

/**
 * A read-only txn whose ranges are all serializable (served from local state): `req` itself when
 * they already are, else a copy. For a caller that has waited for the ReadIndex already.
 */
function serializableTxn(req: TxnRequest): TxnRequest {
  const local = (ops: RequestOp[]): RequestOp[] =>
    ops.map((op) =>
      op.request.oneofKind === "requestRange" && !op.request.requestRange.serializable
        ? {
            request: {
              oneofKind: "requestRange",
              requestRange: { ...op.request.requestRange, serializable: true },
            },
          }
        : op,
    );
  const ser = (op: RequestOp) =>
    op.request.oneofKind !== "requestRange" || op.request.requestRange.serializable;
  if (req.success.every(ser) && req.failure.every(ser)) return req;
  return { ...req, success: local(req.success), failure: local(req.failure) };
}
