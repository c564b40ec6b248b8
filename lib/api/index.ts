/**
 * lib/api's public face: serve a member's client API (gRPC through lib/h2 or @grpc/grpc-js; the JSON
 * gateway and ops endpoints over HTTP/1.1 through node:http and over HTTP/2 beside gRPC on the
 * same connection, h2-gateway.ts) on every `--listen-client-urls` entry.
 */
import http from "node:http";
import tls from "node:tls";
import type { H2GrpcServer } from "../h2/index.js";
import * as grpc from "@grpc/grpc-js";
import type { Logger } from "pino";
import type { EtcdServer } from "../server/index.js";
import { EtcdApi } from "./handlers.js";
import { Gateway } from "./gateway.js";
import { createGrpcServer } from "./grpc.js";
import { type ClientListener, listenClientUrl, relayDuplex } from "./listener.js";
import { createH2Server } from "./h2.js";
import { connectionErrorReporter } from "./connection-errors.js";
import { h2GatewayOption, serveGatewayBesideGrpcJs } from "./h2-gateway.js";
import type { Duplex } from "node:stream";

export { EtcdApi, type BidiStream } from "./handlers.js";
export { toApiStatus, ApiError, httpStatusFromGrpc } from "./errors.js";
export { Gateway, JsonValueSplitter, quoteBigIntegers, type GatewayExchange } from "./gateway.js";
export {
  H2StreamExchange,
  NodeHttp2Exchange,
  h2GatewayOption,
  serveGatewayBesideGrpcJs,
} from "./h2-gateway.js";
export { ListenUrlError } from "./listener.js";

/** Distinct client-certificate names served with their own identity (STYLE §2 bound). */
const maxCertIdentityServers = 1024;

/** What `serveClients` started; `close()` stops accepting and ends open calls. */
export interface ClientServing {
  listeners: ClientListener[];
  close(): Promise<void>;
}

/**
 * Starts the client API of `server` on each of its `--listen-client-urls`. Throws (rejects) if a
 * port cannot be bound or TLS files cannot be read.
 */
export async function serveClients(server: EtcdServer, logger: Logger): Promise<ClientServing> {
  const api = new EtcdApi(server);
  const grpcServer = createGrpcServer(api, logger, server.config.maxRequestBytes);
  const injector = grpcServer.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  const gateway = new Gateway(api, logger, { failpointsHttp: server.config.failpointsHttp });
  // HTTP/2 requests that are not gRPC (curl --http2, nghttp, browsers) reach the gateway too
  const newH2Server = (certCommonName?: string) =>
    createH2Server(
      api,
      logger,
      server.config.maxRequestBytes,
      {
        ...h2GatewayOption(gateway),
        h2: {
          keepaliveMinTimeMs: server.config.grpcKeepaliveMinTimeMs,
          pingAckDelayMs: server.config.grpcPingAckDelayMs,
        },
        onConnectionError: connectionErrorReporter(
          logger,
          server.metrics.grpcConnectionErrorsTotal,
        ),
      },
      certCommonName,
    );
  const h2Server = server.config.grpcTransport === "fast" ? newH2Server() : undefined;
  // --client-cert-auth: connections with a verified client certificate go to a server whose
  // calls carry the certificate's common name as the user when they carry no token (etcd's
  // AuthInfoFromTLS); one such server per name, at most maxCertIdentityServers of them.
  const certServers = new Map<string, H2GrpcServer>();
  const h2ServerOf = (socket: Duplex): H2GrpcServer | undefined => {
    if (h2Server === undefined || !server.config.clientTls.clientCertAuth) return h2Server;
    if (!(socket instanceof tls.TLSSocket) || !socket.authorized) return h2Server;
    const cn = socket.getPeerCertificate()?.subject?.CN;
    if (typeof cn !== "string" || cn === "") return h2Server;
    let s = certServers.get(cn);
    if (s === undefined) {
      if (certServers.size >= maxCertIdentityServers) return h2Server;
      s = newH2Server(cn);
      certServers.set(cn, s);
    }
    return s;
  };
  const gatewayOnH2 = h2Server !== undefined || serveGatewayBesideGrpcJs(grpcServer, gateway);
  if (!gatewayOnH2) {
    logger.warn("grpc-js internals changed: the gateway is served over HTTP/1.1 only");
  }
  const grpcConnection = (socket: Duplex, head?: Buffer) => {
    const h2 = h2ServerOf(socket);
    if (h2 !== undefined) h2.handleConnection(socket, head);
    else injector.injectConnection(head === undefined ? socket : relayDuplex(socket, head));
  };
  const httpServer = http.createServer({ keepAliveTimeout: 30_000 }, (req, res) =>
    gateway.handle(req, res),
  );
  httpServer.headersTimeout = 20_000;
  httpServer.requestTimeout = 0; // watch streams are long-lived
  const listeners: ClientListener[] = [];
  try {
    for (const url of server.config.listenClientUrls) {
      listeners.push(
        await listenClientUrl({
          url,
          tls: server.config.clientTls,
          logger,
          grpcConnection,
          httpServer,
          preferH2: gatewayOnH2,
        }),
      );
    }
  } catch (err) {
    await Promise.all(listeners.map((l) => l.close()));
    throw err;
  }
  return {
    listeners,
    close: async () => {
      await Promise.all(listeners.map((l) => l.close()));
      injector.destroy();
      grpcServer.forceShutdown();
      await h2Server?.close(100);
      await Promise.all([...certServers.values()].map((s) => s.close(100)));
      httpServer.closeAllConnections();
    },
  };
}
