/**
 * The fast transport binding: lib/api's EtcdApi methods served through lib/h2 (issue 6), the same
 * handlers grpc.ts serves through @grpc/grpc-js. Methods not bound here (membership changes) answer
 * UNIMPLEMENTED, as with grpc-js. Maintenance.Snapshot streams the db file under
 * the client's flow-control window (lib/h2 holds DATA until the window opens; `send` returning
 * false pauses the handler until drain).
 */
import type { Logger } from "pino";
import {
  H2GrpcServer,
  type H2GrpcServerOptions,
  type MethodHandler,
  type CallContext,
  bidiMethod,
  serverStreamMethod,
  unaryMethod,
} from "../h2/index.js";
import * as rpc from "../proto/gen/etcdserverpb/rpc.js";
import * as v3lock from "../proto/gen/v3lockpb/v3lock.js";
import * as v3election from "../proto/gen/v3electionpb/v3election.js";
import { toApiStatus } from "./errors.js";
import { watchResponseCodec } from "./watch-codec.js";
import { putResponseCodec, rangeResponseCodec } from "./kv-codec.js";
import { grpcOverheadBytes } from "./grpc.js";
import type { EtcdApi } from "./handlers.js";
import type { CallAuth } from "./auth.js";
import { authMethods } from "./auth-service.js";
import { servedByLearner } from "./learner.js";
import { errNoLeader, errNotSupportedForLearner } from "../server/errors.js";
import { leaderMissingFor, requiresLeader } from "./require-leader.js";

/**
 * The method table: gRPC path → handler bound to `api`. `certCommonName` is the verified client
 * certificate's common name of the connection the table serves (--client-cert-auth identity);
 * without one the call context itself is the credentials (its metadata holds the token).
 */
export function etcdMethodTable(api: EtcdApi, certCommonName?: string): Map<string, MethodHandler> {
  const auth = (ctx: CallContext): CallAuth =>
    certCommonName === undefined
      ? ctx
      : {
          metadata: ctx.metadata,
          certCommonName,
          get cancelled() {
            return ctx.cancelled;
          },
        };
  const m = new Map<string, MethodHandler>();
  m.set(
    "/etcdserverpb.KV/Range",
    unaryMethod(rpc.RangeRequest, rangeResponseCodec, (r, c) => api.range(r, auth(c))),
  );
  m.set(
    "/etcdserverpb.KV/Put",
    unaryMethod(rpc.PutRequest, putResponseCodec, (r, c) => api.put(r, auth(c))),
  );
  m.set(
    "/etcdserverpb.KV/DeleteRange",
    unaryMethod(rpc.DeleteRangeRequest, rpc.DeleteRangeResponse, (r, c) =>
      api.deleteRange(r, auth(c)),
    ),
  );
  m.set(
    "/etcdserverpb.KV/Txn",
    unaryMethod(rpc.TxnRequest, rpc.TxnResponse, (r, c) => api.txn(r, auth(c))),
  );
  m.set(
    "/etcdserverpb.KV/Compact",
    unaryMethod(rpc.CompactionRequest, rpc.CompactionResponse, (r, c) => api.compact(r, auth(c))),
  );
  m.set(
    "/etcdserverpb.Watch/Watch",
    bidiMethod(rpc.WatchRequest, watchResponseCodec, (s, c) => api.watch(s, auth(c))),
  );
  m.set(
    "/etcdserverpb.Lease/LeaseGrant",
    unaryMethod(rpc.LeaseGrantRequest, rpc.LeaseGrantResponse, (r, c) =>
      api.leaseGrant(r, auth(c)),
    ),
  );
  m.set(
    "/etcdserverpb.Lease/LeaseRevoke",
    unaryMethod(rpc.LeaseRevokeRequest, rpc.LeaseRevokeResponse, (r, c) =>
      api.leaseRevoke(r, auth(c)),
    ),
  );
  m.set(
    "/etcdserverpb.Lease/LeaseKeepAlive",
    bidiMethod(rpc.LeaseKeepAliveRequest, rpc.LeaseKeepAliveResponse, (s, c) =>
      api.leaseKeepAlive(s, auth(c)),
    ),
  );
  m.set(
    "/etcdserverpb.Lease/LeaseTimeToLive",
    unaryMethod(rpc.LeaseTimeToLiveRequest, rpc.LeaseTimeToLiveResponse, (r, c) =>
      api.leaseTimeToLive(r, auth(c)),
    ),
  );
  m.set(
    "/etcdserverpb.Lease/LeaseLeases",
    unaryMethod(rpc.LeaseLeasesRequest, rpc.LeaseLeasesResponse, (_r, c) =>
      api.leaseLeases(auth(c)),
    ),
  );
  m.set(
    "/etcdserverpb.Maintenance/Alarm",
    unaryMethod(rpc.AlarmRequest, rpc.AlarmResponse, (r, c) => api.alarm(r, auth(c))),
  );
  m.set(
    "/etcdserverpb.Maintenance/Status",
    unaryMethod(rpc.StatusRequest, rpc.StatusResponse, () => api.status()),
  );
  m.set(
    "/etcdserverpb.Maintenance/Defragment",
    unaryMethod(rpc.DefragmentRequest, rpc.DefragmentResponse, (_r, c) => api.defragment(auth(c))),
  );
  m.set(
    "/etcdserverpb.Maintenance/Hash",
    unaryMethod(rpc.HashRequest, rpc.HashResponse, (_r, c) => api.hash(auth(c))),
  );
  m.set(
    "/etcdserverpb.Maintenance/HashKV",
    unaryMethod(rpc.HashKVRequest, rpc.HashKVResponse, (r, c) => api.hashKV(r, auth(c))),
  );
  m.set(
    "/etcdserverpb.Maintenance/MoveLeader",
    unaryMethod(rpc.MoveLeaderRequest, rpc.MoveLeaderResponse, (r) => api.moveLeader(r)),
  );
  m.set(
    "/etcdserverpb.Maintenance/Snapshot",
    serverStreamMethod(rpc.SnapshotRequest, rpc.SnapshotResponse, (_req, s, c) =>
      api.snapshot(s, auth(c)),
    ),
  );
  m.set(
    "/etcdserverpb.Cluster/MemberList",
    unaryMethod(rpc.MemberListRequest, rpc.MemberListResponse, () => api.memberList()),
  );
  m.set(
    "/etcdserverpb.Cluster/MemberAdd",
    unaryMethod(rpc.MemberAddRequest, rpc.MemberAddResponse, (r, c) => api.memberAdd(r, auth(c))),
  );
  m.set(
    "/etcdserverpb.Cluster/MemberRemove",
    unaryMethod(rpc.MemberRemoveRequest, rpc.MemberRemoveResponse, (r, c) =>
      api.memberRemove(r, auth(c)),
    ),
  );
  m.set(
    "/etcdserverpb.Cluster/MemberUpdate",
    unaryMethod(rpc.MemberUpdateRequest, rpc.MemberUpdateResponse, (r, c) =>
      api.memberUpdate(r, auth(c)),
    ),
  );
  m.set(
    "/etcdserverpb.Cluster/MemberPromote",
    unaryMethod(rpc.MemberPromoteRequest, rpc.MemberPromoteResponse, (r, c) =>
      api.memberPromote(r, auth(c)),
    ),
  );
  for (const a of authMethods) {
    m.set(
      a.path,
      unaryMethod(a.request, a.response, (r, c) => a.call(api, r, auth(c))),
    );
  }
  const locks = api.lockService;
  m.set(
    "/v3lockpb.Lock/Lock",
    unaryMethod(v3lock.LockRequest, v3lock.LockResponse, (r, c) =>
      withCallSignal(c, (signal) => locks.lock(r, signal, auth(c))),
    ),
  );
  m.set(
    "/v3lockpb.Lock/Unlock",
    unaryMethod(v3lock.UnlockRequest, v3lock.UnlockResponse, (r, c) => locks.unlock(r, auth(c))),
  );
  const elections = api.electionService;
  m.set(
    "/v3electionpb.Election/Campaign",
    unaryMethod(v3election.CampaignRequest, v3election.CampaignResponse, (r, c) =>
      withCallSignal(c, (signal) => elections.campaign(r, signal, auth(c))),
    ),
  );
  m.set(
    "/v3electionpb.Election/Proclaim",
    unaryMethod(v3election.ProclaimRequest, v3election.ProclaimResponse, (r, c) =>
      elections.proclaim(r, auth(c)),
    ),
  );
  m.set(
    "/v3electionpb.Election/Leader",
    unaryMethod(v3election.LeaderRequest, v3election.LeaderResponse, (r, c) =>
      elections.leader(r, auth(c)),
    ),
  );
  m.set(
    "/v3electionpb.Election/Observe",
    serverStreamMethod(v3election.LeaderRequest, v3election.LeaderResponse, (r, s, c) =>
      elections.observe(r, s, auth(c)),
    ),
  );
  m.set(
    "/v3electionpb.Election/Resign",
    unaryMethod(v3election.ResignRequest, v3election.ResignResponse, (r, c) =>
      elections.resign(r, auth(c)),
    ),
  );
  for (const [path, h] of m) m.set(path, behindInterceptors(api, path, h));
  return m;
}

/**
 * `h` behind etcd 3.4's gRPC interceptors: the learner check (learner.ts: while this member is a
 * learner, a unary call it does not serve and every stream end with `etcdserver: rpc not supported
 * for learner`), then the leader requirement (require-leader.ts: a call with `hasleader: true`
 * fails with `etcdserver: no leader` while no leader is known, and such a stream is ended when
 * the leader stays lost).
 */
function behindInterceptors(api: EtcdApi, path: string, h: MethodHandler): MethodHandler {
  const server = api.server;
  const refused = errNotSupportedForLearner;
  /** the stream's refusal, or undefined after tracking it when it requires a leader */
  const streamRefusal = (
    ctx: CallContext,
    stream: { end(err?: Error): void; onClose(fn: () => void): void },
  ): Error | undefined => {
    if (server.isLearner) return refused();
    if (!requiresLeader(ctx.metadata)) return undefined;
    if (server.leaderId === 0n) return errNoLeader();
    stream.onClose(api.leaderStreams.track(() => stream.end(errNoLeader())));
    return undefined;
  };
  switch (h.kind) {
    case "unary": {
      const handle = h.handle;
      return unaryMethod(h.requestCodec, h.responseCodec, (req, ctx) => {
        if (server.isLearner && !servedByLearner(path, req)) return Promise.reject(refused());
        if (leaderMissingFor(server, ctx)) return Promise.reject(errNoLeader());
        return handle(req, ctx);
      });
    }
    case "serverStream": {
      const handle = h.handle;
      return serverStreamMethod(h.requestCodec, h.responseCodec, (req, stream, ctx) => {
        const err = streamRefusal(ctx, stream);
        if (err !== undefined) stream.end(err);
        else handle(req, stream, ctx);
      });
    }
    case "bidi": {
      const handle = h.handle;
      return bidiMethod(h.requestCodec, h.responseCodec, (stream, ctx) => {
        const err = streamRefusal(ctx, stream);
        if (err !== undefined) stream.end(err);
        else handle(stream, ctx);
      });
    }
  }
}

/** How often a waiting unary call looks whether its client went away, in ms. */
const cancelPollIntervalMs = 100;

/**
 * Runs a unary handler that may wait for a long time (Lock, Campaign) with an AbortSignal that
 * aborts once lib/h2 marks the call cancelled (the client cancelled, its deadline passed or the
 * connection went). lib/h2 tells unary handlers through `ctx.cancelled` only, so it is looked at
 * every cancelPollIntervalMs while the call waits.
 */
function withCallSignal<T>(ctx: CallContext, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const ac = new AbortController();
  const timer = setInterval(() => {
    if (ctx.cancelled) ac.abort();
  }, cancelPollIntervalMs);
  timer.unref();
  return fn(ac.signal).finally(() => clearInterval(timer));
}

/**
 * Builds the lib/h2 gRPC server for `api`: receive limit --max-request-bytes plus etcd's gRPC
 * overhead (embed/serve.go), errors mapped by toApiStatus (etcd's codes and strings), unexpected
 * failures logged. Hand it sockets with `handleConnection(socket)`. With `certCommonName`, every call
 * it serves is from that client certificate's user (--client-cert-auth identity).
 */
export function createH2Server(
  api: EtcdApi,
  logger: Logger,
  maxRequestBytes: number,
  options: Omit<H2GrpcServerOptions, "mapError" | "onHandlerError"> = {},
  certCommonName?: string,
): H2GrpcServer {
  return new H2GrpcServer(etcdMethodTable(api, certCommonName), {
    ...options,
    grpc: { maxReceiveMessageBytes: maxRequestBytes + grpcOverheadBytes, ...options.grpc },
    mapError: (err) => {
      const s = toApiStatus(err);
      return { code: s.code, message: s.message };
    },
    onHandlerError: (path, err) => {
      if (toApiStatus(err).unexpected)
        logger.error({ method: path, err: (err as Error)?.stack }, "request failed");
    },
  });
}
