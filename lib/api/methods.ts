/**
 * Every gRPC method etcd-ts serves, listed once for both gRPC transports: h2.ts (lib/h2) and
 * grpc.ts (@grpc/grpc-js) build their tables from `etcdMethods`, so a method is added or changed in
 * one place. Each entry names the method's path (etcd's rpc.proto, v3lock.proto and
 * v3election.proto), its shape, its request and response codecs (the hand-written encoders of
 * kv-codec.ts and watch-codec.ts for the hot responses, the generated types for the rest) and
 * the EtcdApi call with the caller's credentials. The transports add what is theirs: turning a
 * call into CallAuth, etcd's interceptors (learner, hasleader), errors and cancellation.
 */
import * as rpc from "../proto/gen/etcdserverpb/rpc.js";
import * as v3lock from "../proto/gen/v3lockpb/v3lock.js";
import * as v3election from "../proto/gen/v3electionpb/v3election.js";
import type { BidiStream, EtcdApi, ServerStream } from "./handlers.js";
import type { CallAuth } from "./auth.js";
import { authMethods } from "./auth-service.js";
import { watchResponseCodec } from "./watch-codec.js";
import { putRequestCodec, putResponseCodec, rangeResponseCodec } from "./kv-codec.js";

/** A message's binary form (a generated type or a hand-written encoder). */
export interface MethodCodec<T> {
  fromBinary(bytes: Uint8Array): T;
  toBinary(message: T): Uint8Array;
}

interface MethodBase {
  /** the gRPC path, e.g. "/etcdserverpb.KV/Put" */
  path: string;
  request: MethodCodec<unknown>;
  response: MethodCodec<unknown>;
}

/** One method; `call` is typed loosely here, exactly by the helpers that build the entries. */
export type EtcdMethod =
  | (MethodBase & {
      kind: "unary";
      call(api: EtcdApi, req: unknown, auth: CallAuth): Promise<unknown>;
    })
  | (MethodBase & {
      /** a unary call that may wait long (Lock, Campaign): `signal` aborts when the client goes */
      kind: "waitingUnary";
      call(api: EtcdApi, req: unknown, signal: AbortSignal, auth: CallAuth): Promise<unknown>;
    })
  | (MethodBase & {
      kind: "serverStream";
      call(api: EtcdApi, req: unknown, stream: ServerStream<unknown>, auth: CallAuth): void;
    })
  | (MethodBase & {
      kind: "bidi";
      call(api: EtcdApi, stream: BidiStream<unknown, unknown>, auth: CallAuth): void;
    });

function unary<Req, Res>(
  path: string,
  request: MethodCodec<Req>,
  response: MethodCodec<Res>,
  call: (api: EtcdApi, req: Req, auth: CallAuth) => Promise<Res>,
): EtcdMethod {
  return { kind: "unary", path, request, response, call } as EtcdMethod;
}

function waitingUnary<Req, Res>(
  path: string,
  request: MethodCodec<Req>,
  response: MethodCodec<Res>,
  call: (api: EtcdApi, req: Req, signal: AbortSignal, auth: CallAuth) => Promise<Res>,
): EtcdMethod {
  return { kind: "waitingUnary", path, request, response, call } as EtcdMethod;
}

function serverStream<Req, Res>(
  path: string,
  request: MethodCodec<Req>,
  response: MethodCodec<Res>,
  call: (api: EtcdApi, req: Req, stream: ServerStream<Res>, auth: CallAuth) => void,
): EtcdMethod {
  return { kind: "serverStream", path, request, response, call } as EtcdMethod;
}

function bidi<Req, Res>(
  path: string,
  request: MethodCodec<Req>,
  response: MethodCodec<Res>,
  call: (api: EtcdApi, stream: BidiStream<Req, Res>, auth: CallAuth) => void,
): EtcdMethod {
  return { kind: "bidi", path, request, response, call } as EtcdMethod;
}

const kv = (m: string) => `/etcdserverpb.KV/${m}`;
const lease = (m: string) => `/etcdserverpb.Lease/${m}`;
const maintenance = (m: string) => `/etcdserverpb.Maintenance/${m}`;
const cluster = (m: string) => `/etcdserverpb.Cluster/${m}`;
const election = (m: string) => `/v3electionpb.Election/${m}`;

/** Every method of etcd's KV, Watch, Lease, Maintenance, Cluster, Auth, Lock and Election. */
export const etcdMethods: readonly EtcdMethod[] = [
  unary(kv("Range"), rpc.RangeRequest, rangeResponseCodec, (a, r, c) => a.range(r, c)),
  unary(kv("Put"), putRequestCodec, putResponseCodec, (a, r, c) => a.put(r, c)),
  unary(kv("DeleteRange"), rpc.DeleteRangeRequest, rpc.DeleteRangeResponse, (a, r, c) =>
    a.deleteRange(r, c),
  ),
  unary(kv("Txn"), rpc.TxnRequest, rpc.TxnResponse, (a, r, c) => a.txn(r, c)),
  unary(kv("Compact"), rpc.CompactionRequest, rpc.CompactionResponse, (a, r, c) => a.compact(r, c)),
  bidi("/etcdserverpb.Watch/Watch", rpc.WatchRequest, watchResponseCodec, (a, s, c) =>
    a.watch(s, c),
  ),
  unary(lease("LeaseGrant"), rpc.LeaseGrantRequest, rpc.LeaseGrantResponse, (a, r, c) =>
    a.leaseGrant(r, c),
  ),
  unary(lease("LeaseRevoke"), rpc.LeaseRevokeRequest, rpc.LeaseRevokeResponse, (a, r, c) =>
    a.leaseRevoke(r, c),
  ),
  bidi(lease("LeaseKeepAlive"), rpc.LeaseKeepAliveRequest, rpc.LeaseKeepAliveResponse, (a, s, c) =>
    a.leaseKeepAlive(s, c),
  ),
  unary(
    lease("LeaseTimeToLive"),
    rpc.LeaseTimeToLiveRequest,
    rpc.LeaseTimeToLiveResponse,
    (a, r, c) => a.leaseTimeToLive(r, c),
  ),
  unary(lease("LeaseLeases"), rpc.LeaseLeasesRequest, rpc.LeaseLeasesResponse, (a, _r, c) =>
    a.leaseLeases(c),
  ),
  unary(maintenance("Alarm"), rpc.AlarmRequest, rpc.AlarmResponse, (a, r, c) => a.alarm(r, c)),
  unary(maintenance("Status"), rpc.StatusRequest, rpc.StatusResponse, (a) => a.status()),
  unary(maintenance("Defragment"), rpc.DefragmentRequest, rpc.DefragmentResponse, (a, _r, c) =>
    a.defragment(c),
  ),
  unary(maintenance("Hash"), rpc.HashRequest, rpc.HashResponse, (a, _r, c) => a.hash(c)),
  unary(maintenance("HashKV"), rpc.HashKVRequest, rpc.HashKVResponse, (a, r, c) => a.hashKV(r, c)),
  unary(maintenance("MoveLeader"), rpc.MoveLeaderRequest, rpc.MoveLeaderResponse, (a, r) =>
    a.moveLeader(r),
  ),
  serverStream(maintenance("Snapshot"), rpc.SnapshotRequest, rpc.SnapshotResponse, (a, _r, s, c) =>
    a.snapshot(s, c),
  ),
  unary(cluster("MemberList"), rpc.MemberListRequest, rpc.MemberListResponse, (a) =>
    a.memberList(),
  ),
  unary(cluster("MemberAdd"), rpc.MemberAddRequest, rpc.MemberAddResponse, (a, r, c) =>
    a.memberAdd(r, c),
  ),
  unary(cluster("MemberRemove"), rpc.MemberRemoveRequest, rpc.MemberRemoveResponse, (a, r, c) =>
    a.memberRemove(r, c),
  ),
  unary(cluster("MemberUpdate"), rpc.MemberUpdateRequest, rpc.MemberUpdateResponse, (a, r, c) =>
    a.memberUpdate(r, c),
  ),
  unary(cluster("MemberPromote"), rpc.MemberPromoteRequest, rpc.MemberPromoteResponse, (a, r, c) =>
    a.memberPromote(r, c),
  ),
  ...authMethods.map((m) =>
    unary(m.path, m.request, m.response, (a, r, c: CallAuth) => m.call(a, r, c)),
  ),
  waitingUnary("/v3lockpb.Lock/Lock", v3lock.LockRequest, v3lock.LockResponse, (a, r, s, c) =>
    a.lockService.lock(r, s, c),
  ),
  unary("/v3lockpb.Lock/Unlock", v3lock.UnlockRequest, v3lock.UnlockResponse, (a, r, c) =>
    a.lockService.unlock(r, c),
  ),
  waitingUnary(
    election("Campaign"),
    v3election.CampaignRequest,
    v3election.CampaignResponse,
    (a, r, s, c) => a.electionService.campaign(r, s, c),
  ),
  unary(election("Proclaim"), v3election.ProclaimRequest, v3election.ProclaimResponse, (a, r, c) =>
    a.electionService.proclaim(r, c),
  ),
  unary(election("Leader"), v3election.LeaderRequest, v3election.LeaderResponse, (a, r, c) =>
    a.electionService.leader(r, c),
  ),
  serverStream(
    election("Observe"),
    v3election.LeaderRequest,
    v3election.LeaderResponse,
    (a, r, s, c) => a.electionService.observe(r, s, c),
  ),
  unary(election("Resign"), v3election.ResignRequest, v3election.ResignResponse, (a, r, c) =>
    a.electionService.resign(r, c),
  ),
];
