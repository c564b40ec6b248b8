/**
 * The reference transport: lib/api's handlers served through @grpc/grpc-js (DESIGN §2). The
 * listener (listener.ts) hands HTTP/2 connections to this server through
 * `createConnectionInjector`, so gRPC and HTTP share the client port as etcd's cmux does.
 */
import * as grpc from "@grpc/grpc-js";
import type { Logger } from "pino";
import {
  clusterDefinition,
  kVDefinition,
  leaseDefinition,
  maintenanceDefinition,
  watchDefinition,
} from "../proto/gen/etcdserverpb/rpc.grpc-server.js";
import type * as rpc from "../proto/gen/etcdserverpb/rpc.js";
import type { EtcdApi, BidiStream, ServerStream } from "./handlers.js";
import { toApiStatus } from "./errors.js";
import { encodeWatchResponse } from "./watch-codec.js";

/** etcd's grpcOverheadBytes: the gRPC receive limit is --max-request-bytes plus this (embed/serve.go). */
export const grpcOverheadBytes = 512 * 1024;

type UnaryCall<Req, Res> = (
  call: grpc.ServerUnaryCall<Req, Res>,
  callback: grpc.sendUnaryData<Res>,
) => void;

/**
 * Builds the grpc-js Server with the KV, Watch, Lease, Maintenance and Cluster services.
 * Methods we do not serve (Auth, membership changes, MoveLeader) answer UNIMPLEMENTED, which is
 * grpc-js's answer for a method missing from the implementation. Maintenance.Snapshot streams the
 * db file, pausing while grpc-js's write buffer is full (write() false until 'drain').
 */
export function createGrpcServer(
  api: EtcdApi,
  logger: Logger,
  maxRequestBytes: number,
): grpc.Server {
  const server = new grpc.Server({
    "grpc.max_receive_message_length": maxRequestBytes + grpcOverheadBytes,
    "grpc.max_send_message_length": 2 ** 31 - 1,
    // etcd's default --max-concurrent-streams is math.MaxUint32
    "grpc.max_concurrent_streams": 2 ** 31 - 1,
  });

  const unary =
    <Req, Res>(fn: (req: Req) => Promise<Res>, name: string): UnaryCall<Req, Res> =>
    (call, callback) => {
      let p: Promise<Res>;
      try {
        p = fn(call.request);
      } catch (err) {
        p = Promise.reject(err);
      }
      p.then(
        (res) => callback(null, res),
        (err: unknown) => {
          const s = toApiStatus(err);
          if (s.unexpected)
            logger.error({ method: name, err: (err as Error)?.stack }, "request failed");
          callback(
            {
              code: s.code,
              details: s.message,
              metadata: new grpc.Metadata(),
            } as grpc.ServiceError,
            null,
          );
        },
      );
    };

  /**
   * The sending side every streaming call shares: close callbacks fired once (cancel, error or
   * close), drain, send that stops after the end, and end with etcd's status for an error.
   */
  const sendSide = <Res>(
    call: grpc.ServerWritableStream<unknown, Res> | grpc.ServerDuplexStream<unknown, Res>,
    method: string,
  ): ServerStream<Res> => {
    let ended = false;
    const closeFns: (() => void)[] = [];
    const fireClose = () => {
      if (ended) return;
      ended = true;
      for (const fn of closeFns) fn();
    };
    call.on("cancelled", fireClose);
    call.on("error", fireClose);
    call.on("close", fireClose);
    return {
      onClose: (fn) => closeFns.push(fn),
      onDrain: (fn) => call.on("drain", fn),
      send: (res) => {
        if (ended) return true;
        return call.write(res);
      },
      end: (err) => {
        if (ended) return;
        if (err === undefined) call.end();
        else {
          const s = toApiStatus(err);
          if (s.unexpected) logger.error({ method, err: err.stack }, "request failed");
          // grpc-js sends an error status when the stream emits 'error'
          call.emit("error", { code: s.code, details: s.message, metadata: new grpc.Metadata() });
        }
        fireClose();
      },
    };
  };

  // A client that half-closes a bidi stream keeps its watches (etcd's recvLoop returns, the send
  // side stays open); the stream ends when the call is cancelled or the connection goes.
  const bidi = <Req, Res>(
    call: grpc.ServerDuplexStream<Req, Res>,
    method: string,
  ): BidiStream<Req, Res> => ({
    ...sendSide<Res>(call as grpc.ServerDuplexStream<unknown, Res>, method),
    onMessage: (fn) => call.on("data", fn),
  });

  const serverStream = <Req, Res>(
    call: grpc.ServerWritableStream<Req, Res>,
    method: string,
  ): ServerStream<Res> => sendSide<Res>(call as grpc.ServerWritableStream<unknown, Res>, method);

  server.addService(kVDefinition, {
    range: unary((r) => api.range(r), "Range"),
    put: unary((r) => api.put(r), "Put"),
    deleteRange: unary((r) => api.deleteRange(r), "DeleteRange"),
    txn: unary((r) => api.txn(r), "Txn"),
    compact: unary((r) => api.compact(r), "Compact"),
  });
  // the shared-event encoder (watch-codec.ts) instead of the generated serializer
  const watchDef = {
    ...watchDefinition,
    watch: {
      ...watchDefinition.watch,
      responseSerialize: (v: rpc.WatchResponse) => {
        const b = encodeWatchResponse(v);
        return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
      },
    },
  };
  server.addService(watchDef, {
    watch: (call: grpc.ServerDuplexStream<rpc.WatchRequest, rpc.WatchResponse>) =>
      api.watch(bidi(call, "Watch")),
  });
  server.addService(leaseDefinition, {
    leaseGrant: unary((r) => api.leaseGrant(r), "LeaseGrant"),
    leaseRevoke: unary((r) => api.leaseRevoke(r), "LeaseRevoke"),
    leaseKeepAlive: (
      call: grpc.ServerDuplexStream<rpc.LeaseKeepAliveRequest, rpc.LeaseKeepAliveResponse>,
    ) => api.leaseKeepAlive(bidi(call, "LeaseKeepAlive")),
    leaseTimeToLive: unary((r) => api.leaseTimeToLive(r), "LeaseTimeToLive"),
    leaseLeases: unary(() => api.leaseLeases(), "LeaseLeases"),
  });
  server.addService(maintenanceDefinition, {
    alarm: unary((r: rpc.AlarmRequest) => api.alarm(r), "Alarm"),
    status: unary(() => api.status(), "Status"),
    defragment: unary(() => api.defragment(), "Defragment"),
    hash: unary(() => api.hash(), "Hash"),
    hashKV: unary((r: rpc.HashKVRequest) => api.hashKV(r), "HashKV"),
    snapshot: (call: grpc.ServerWritableStream<rpc.SnapshotRequest, rpc.SnapshotResponse>) =>
      api.snapshot(serverStream(call, "Snapshot")),
  } as unknown as grpc.UntypedServiceImplementation as never);
  server.addService(clusterDefinition, {
    memberList: unary(() => api.memberList(), "MemberList"),
  } as unknown as grpc.UntypedServiceImplementation as never);
  return server;
}
