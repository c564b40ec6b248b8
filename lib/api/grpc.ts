/**
 * The reference transport: lib/api's handlers served through @grpc/grpc-js (DESIGN §2). The
 * listener (listener.ts) hands HTTP/2 connections to this server through
 * `createConnectionInjector`, so gRPC and HTTP share the client port as etcd's cmux does.
 */
import * as grpc from "@grpc/grpc-js";
import type { Logger } from "pino";
import {
  authDefinition,
  clusterDefinition,
  kVDefinition,
  leaseDefinition,
  maintenanceDefinition,
  watchDefinition,
} from "../proto/gen/etcdserverpb/rpc.grpc-server.js";
import { lockDefinition } from "../proto/gen/v3lockpb/v3lock.grpc-server.js";
import { electionDefinition } from "../proto/gen/v3electionpb/v3election.grpc-server.js";
import type { EtcdApi, BidiStream, ServerStream } from "./handlers.js";
import { toApiStatus } from "./errors.js";
import type { CallAuth } from "./auth.js";
import { etcdMethods, type EtcdMethod } from "./methods.js";
import { streamRefusal, unaryRefusal } from "./interceptors.js";

/** The generated definitions of every service served (methods.ts lists their methods). */
const serviceDefinitions = [
  kVDefinition,
  watchDefinition,
  leaseDefinition,
  maintenanceDefinition,
  authDefinition,
  clusterDefinition,
  lockDefinition,
  electionDefinition,
];

/** etcd's grpcOverheadBytes: the gRPC receive limit is --max-request-bytes plus this (embed/serve.go). */
export const grpcOverheadBytes = 512 * 1024;

/**
 * A grpc-js call's credentials (CallAuth): its metadata as a map of the text values, read on
 * first use, and the verified client certificate's common name when grpc-js has the TLS socket.
 */
type GrpcSurfaceCall = Pick<
  grpc.ServerUnaryCall<unknown, unknown>,
  "metadata" | "getAuthContext" | "cancelled"
>;

class GrpcJsCallAuth implements CallAuth {
  readonly #call: GrpcSurfaceCall;
  #metadata: Map<string, string> | undefined;

  constructor(call: GrpcSurfaceCall) {
    this.#call = call;
  }

  get metadata(): ReadonlyMap<string, string> {
    if (this.#metadata === undefined) {
      this.#metadata = new Map();
      // the first value of each key, as etcd reads metadata (md.Get(k)[0]); node:http2 hands
      // grpc-js a repeated header's values joined by ", " (grpcio sends python3-etcd3's token
      // twice), and no token, user name or etcd metadata value contains ", "
      for (const [k, v] of Object.entries(this.#call.metadata.getMap())) {
        if (typeof v !== "string") continue;
        const comma = v.indexOf(", ");
        this.#metadata.set(k, comma < 0 ? v : v.slice(0, comma));
      }
    }
    return this.#metadata;
  }

  get cancelled(): boolean {
    return this.#call.cancelled;
  }

  get certCommonName(): string | undefined {
    const cn = this.#call.getAuthContext?.()?.sslPeerCertificate?.subject?.CN;
    return typeof cn === "string" ? cn : undefined;
  }
}

type UnaryCall<Req, Res> = (
  call: grpc.ServerUnaryCall<Req, Res>,
  callback: grpc.sendUnaryData<Res>,
) => void;

/**
 * Builds the grpc-js Server with the KV, Watch, Lease, Maintenance, Cluster, Auth, Lock and
 * Election services, every method from methods.ts's list (the one h2.ts serves); a method missing
 * from it would answer UNIMPLEMENTED, grpc-js's answer for one without an implementation.
 * Maintenance.Snapshot streams the
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
    <Req, Res>(fn: (req: Req, auth: CallAuth) => Promise<Res>, name: string): UnaryCall<Req, Res> =>
    (call, callback) => {
      let p: Promise<Res>;
      try {
        const auth = new GrpcJsCallAuth(call);
        const refused = unaryRefusal(api.server, call.getPath(), call.request, auth);
        if (refused !== undefined) throw refused;
        p = fn(call.request, auth);
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

  /** A unary call that may wait (Lock, Campaign): `signal` aborts when the client cancels. */
  const waitingUnary =
    <Req, Res>(
      fn: (req: Req, signal: AbortSignal, auth: CallAuth) => Promise<Res>,
      name: string,
    ): UnaryCall<Req, Res> =>
    (call, callback) => {
      const ac = new AbortController();
      call.on("cancelled", () => ac.abort());
      unary((req: Req, auth) => fn(req, ac.signal, auth), name)(call, callback);
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
    onEnd: (fn) => call.on("end", fn),
  });

  const serverStream = <Req, Res>(
    call: grpc.ServerWritableStream<Req, Res>,
    method: string,
  ): ServerStream<Res> => sendSide<Res>(call as grpc.ServerWritableStream<unknown, Res>, method);

  /**
   * A streaming handler behind etcd 3.4's stream interceptor: a learner serves no stream, the call
   * ends at once with `etcdserver: rpc not supported for learner`; a call with `hasleader: true`
   * ends at once with `etcdserver: no leader` while no leader is known, and is tracked so that it
   * ends so when the leader stays lost (require-leader.ts).
   */
  const behindInterceptors =
    <C>(method: string, handle: (call: C) => void) =>
    (call: C): void => {
      const c = call as grpc.ServerWritableStream<unknown, unknown>;
      // a tracked stream's own send side ends the call; the handler's sees the 'error' and closes
      const err = streamRefusal(api.server, api.leaderStreams, new GrpcJsCallAuth(c).metadata, () =>
        sendSide(c, method),
      );
      if (err === undefined) return handle(call);
      sendSide(c, method).end(err);
    };

  /** `e` as a grpc-js handler, behind the interceptors when it streams. */
  const handlerOf = (e: EtcdMethod): unknown => {
    const name = e.path.slice(e.path.lastIndexOf("/") + 1);
    switch (e.kind) {
      case "unary":
        return unary((r, c) => e.call(api, r, c), name);
      case "waitingUnary":
        return waitingUnary((r, signal, c) => e.call(api, r, signal, c), name);
      case "serverStream":
        return behindInterceptors(name, (call: grpc.ServerWritableStream<unknown, unknown>) =>
          e.call(api, call.request, serverStream(call, name), new GrpcJsCallAuth(call)),
        );
      case "bidi":
        return behindInterceptors(name, (call: grpc.ServerDuplexStream<unknown, unknown>) =>
          e.call(api, bidi(call, name), new GrpcJsCallAuth(call)),
        );
    }
  };
  const byPath = new Map(etcdMethods.map((e) => [e.path, e]));
  for (const definition of serviceDefinitions) {
    // each method's response encoded by its codec in methods.ts (the hand-written encoders of the
    // hot responses), its implementation from the same entry
    const def: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
    const impl: grpc.UntypedServiceImplementation = {};
    const methods = definition as unknown as Record<
      string,
      grpc.MethodDefinition<unknown, unknown>
    >;
    for (const [key, md] of Object.entries(methods)) {
      const e = byPath.get(md.path);
      if (e === undefined) {
        def[key] = md; // no implementation: grpc-js answers UNIMPLEMENTED
        continue;
      }
      def[key] = {
        ...md,
        responseSerialize: (v: unknown) => {
          const b = e.response.toBinary(v);
          return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
        },
      };
      impl[key] = handlerOf(e) as grpc.UntypedHandleCall;
    }
    server.addService(def, impl);
  }
  return server;
}
