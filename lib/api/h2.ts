/**
 * The fast transport binding: lib/api's EtcdApi methods served through lib/h2 (issue 6), the same
 * list (methods.ts) grpc.ts serves through @grpc/grpc-js; a path not in it answers UNIMPLEMENTED,
 * as with grpc-js. Maintenance.Snapshot streams the db file under
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
import { toApiStatus } from "./errors.js";
import { grpcOverheadBytes } from "./grpc.js";
import type { EtcdApi } from "./handlers.js";
import type { CallAuth } from "./auth.js";
import { etcdMethods, type EtcdMethod } from "./methods.js";
import { streamRefusal, unaryRefusal } from "./interceptors.js";

/**
 * The method table: gRPC path → handler bound to `api`, one per entry of methods.ts's
 * etcdMethods, each behind etcd 3.4's interceptors. `certCommonName` is the verified client
 * certificate's common name of the connection the table serves (--client-cert-auth identity);
 * without one the call context itself is the credentials (its metadata holds the token).
 */
export function etcdMethodTable(api: EtcdApi, certCommonName?: string): Map<string, MethodHandler> {
  const auth = (ctx: CallContext): CallAuth =>
    certCommonName === undefined ? ctx : { metadata: ctx.metadata, certCommonName };
  const m = new Map<string, MethodHandler>();
  for (const e of etcdMethods) m.set(e.path, behindInterceptors(api, e.path, bind(api, e, auth)));
  return m;
}

/** `e` as a lib/h2 handler: its codecs, and its call with the caller's credentials. */
function bind(api: EtcdApi, e: EtcdMethod, auth: (ctx: CallContext) => CallAuth): MethodHandler {
  switch (e.kind) {
    case "unary":
      return unaryMethod(e.request, e.response, (r, c) => e.call(api, r, auth(c)));
    case "waitingUnary":
      return unaryMethod(e.request, e.response, (r, c) =>
        withCallSignal(c, (signal) => e.call(api, r, signal, auth(c))),
      );
    case "serverStream":
      return serverStreamMethod(e.request, e.response, (r, s, c) => e.call(api, r, s, auth(c)));
    case "bidi":
      return bidiMethod(e.request, e.response, (s, c) => e.call(api, s, auth(c)));
  }
}

/** `h` behind etcd 3.4's gRPC interceptors (interceptors.ts: the learner check, then hasleader). */
function behindInterceptors(api: EtcdApi, path: string, h: MethodHandler): MethodHandler {
  const server = api.server;
  switch (h.kind) {
    case "unary": {
      const handle = h.handle;
      return unaryMethod(h.requestCodec, h.responseCodec, (req, ctx) => {
        const err = unaryRefusal(server, path, req, ctx);
        return err !== undefined ? Promise.reject(err) : handle(req, ctx);
      });
    }
    case "serverStream": {
      const handle = h.handle;
      return serverStreamMethod(h.requestCodec, h.responseCodec, (req, stream, ctx) => {
        const err = streamRefusal(server, api.leaderStreams, ctx.metadata, () => stream);
        if (err !== undefined) stream.end(err);
        else handle(req, stream, ctx);
      });
    }
    case "bidi": {
      const handle = h.handle;
      return bidiMethod(h.requestCodec, h.responseCodec, (stream, ctx) => {
        const err = streamRefusal(server, api.leaderStreams, ctx.metadata, () => stream);
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
