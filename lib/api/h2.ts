/**
 * The fast transport binding: lib/api's EtcdApi methods served through lib/h2 (issue 6), the same
 * handlers grpc.ts serves through @grpc/grpc-js. Methods not bound here (Auth, membership changes,
 * MoveLeader) answer UNIMPLEMENTED, as with grpc-js. Maintenance.Snapshot streams the db file under
 * the client's flow-control window (lib/h2 holds DATA until the window opens; `send` returning
 * false pauses the handler until drain).
 */
import type { Logger } from "pino";
import {
  H2GrpcServer,
  type H2GrpcServerOptions,
  type MethodHandler,
  bidiMethod,
  serverStreamMethod,
  unaryMethod,
} from "../h2/index.js";
import * as rpc from "../proto/gen/etcdserverpb/rpc.js";
import { toApiStatus } from "./errors.js";
import { watchResponseCodec } from "./watch-codec.js";
import { putResponseCodec, rangeResponseCodec } from "./kv-codec.js";
import { grpcOverheadBytes } from "./grpc.js";
import type { EtcdApi } from "./handlers.js";

/** The method table: gRPC path → handler bound to `api`. */
export function etcdMethodTable(api: EtcdApi): Map<string, MethodHandler> {
  const m = new Map<string, MethodHandler>();
  m.set(
    "/etcdserverpb.KV/Range",
    unaryMethod(rpc.RangeRequest, rangeResponseCodec, (r) => api.range(r)),
  );
  m.set(
    "/etcdserverpb.KV/Put",
    unaryMethod(rpc.PutRequest, putResponseCodec, (r) => api.put(r)),
  );
  m.set(
    "/etcdserverpb.KV/DeleteRange",
    unaryMethod(rpc.DeleteRangeRequest, rpc.DeleteRangeResponse, (r) => api.deleteRange(r)),
  );
  m.set(
    "/etcdserverpb.KV/Txn",
    unaryMethod(rpc.TxnRequest, rpc.TxnResponse, (r) => api.txn(r)),
  );
  m.set(
    "/etcdserverpb.KV/Compact",
    unaryMethod(rpc.CompactionRequest, rpc.CompactionResponse, (r) => api.compact(r)),
  );
  m.set(
    "/etcdserverpb.Watch/Watch",
    bidiMethod(rpc.WatchRequest, watchResponseCodec, (s) => api.watch(s)),
  );
  m.set(
    "/etcdserverpb.Lease/LeaseGrant",
    unaryMethod(rpc.LeaseGrantRequest, rpc.LeaseGrantResponse, (r) => api.leaseGrant(r)),
  );
  m.set(
    "/etcdserverpb.Lease/LeaseRevoke",
    unaryMethod(rpc.LeaseRevokeRequest, rpc.LeaseRevokeResponse, (r) => api.leaseRevoke(r)),
  );
  m.set(
    "/etcdserverpb.Lease/LeaseKeepAlive",
    bidiMethod(rpc.LeaseKeepAliveRequest, rpc.LeaseKeepAliveResponse, (s) => api.leaseKeepAlive(s)),
  );
  m.set(
    "/etcdserverpb.Lease/LeaseTimeToLive",
    unaryMethod(rpc.LeaseTimeToLiveRequest, rpc.LeaseTimeToLiveResponse, (r) =>
      api.leaseTimeToLive(r),
    ),
  );
  m.set(
    "/etcdserverpb.Lease/LeaseLeases",
    unaryMethod(rpc.LeaseLeasesRequest, rpc.LeaseLeasesResponse, () => api.leaseLeases()),
  );
  m.set(
    "/etcdserverpb.Maintenance/Alarm",
    unaryMethod(rpc.AlarmRequest, rpc.AlarmResponse, (r) => api.alarm(r)),
  );
  m.set(
    "/etcdserverpb.Maintenance/Status",
    unaryMethod(rpc.StatusRequest, rpc.StatusResponse, () => api.status()),
  );
  m.set(
    "/etcdserverpb.Maintenance/Defragment",
    unaryMethod(rpc.DefragmentRequest, rpc.DefragmentResponse, () => api.defragment()),
  );
  m.set(
    "/etcdserverpb.Maintenance/Hash",
    unaryMethod(rpc.HashRequest, rpc.HashResponse, () => api.hash()),
  );
  m.set(
    "/etcdserverpb.Maintenance/HashKV",
    unaryMethod(rpc.HashKVRequest, rpc.HashKVResponse, (r) => api.hashKV(r)),
  );
  m.set(
    "/etcdserverpb.Maintenance/Snapshot",
    serverStreamMethod(rpc.SnapshotRequest, rpc.SnapshotResponse, (_req, s) => api.snapshot(s)),
  );
  m.set(
    "/etcdserverpb.Cluster/MemberList",
    unaryMethod(rpc.MemberListRequest, rpc.MemberListResponse, () => api.memberList()),
  );
  return m;
}

/**
 * Builds the lib/h2 gRPC server for `api`: receive limit --max-request-bytes plus etcd's gRPC
 * overhead (embed/serve.go), errors mapped by toApiStatus (etcd's codes and strings), unexpected
 * failures logged. Hand it sockets with `handleConnection(socket)`.
 */
export function createH2Server(
  api: EtcdApi,
  logger: Logger,
  maxRequestBytes: number,
  options: Omit<H2GrpcServerOptions, "mapError" | "onHandlerError"> = {},
): H2GrpcServer {
  return new H2GrpcServer(etcdMethodTable(api), {
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
