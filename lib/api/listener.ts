/**
 * The client port: gRPC (HTTP/2) and HTTP/1.1 (gateway, /health, /version, /metrics) on one socket,
 * as etcd's cmux does (DESIGN §2). Plain TCP connections are told apart by their first bytes (the
 * HTTP/2 connection preface starts with "PRI "); TLS connections by ALPN, falling back to the same
 * peek when the client offers none. HTTP/2 connections go to the gRPC transport, which hands
 * requests that are not gRPC calls to the gateway (h2-gateway.ts).
 */
import net from "node:net";
import tls from "node:tls";
import http from "node:http";
import { readFileSync } from "node:fs";
import { Duplex } from "node:stream";
import type { Logger } from "pino";
import type { TlsFiles } from "../server/config.js";

const h2PrefaceStart = Buffer.from("PRI ");

/** Bounds on connections that have not said which protocol they speak (slowloris, STYLE §2). */
const protocolSniffTimeoutMs = 10_000;

export interface ClientListenerOptions {
  url: string;
  tls: TlsFiles;
  logger: Logger;
  /** takes over an HTTP/2 connection; `head` holds bytes the sniffer already read from it */
  grpcConnection: (socket: Duplex, head?: Buffer) => void;
  httpServer: http.Server;
  /**
   * TLS: choose h2 by ALPN when the client offers both h2 and http/1.1, as etcd does (curl
   * --http2 then gets HTTP/2); needs the gateway served over HTTP/2. False: http/1.1 wins.
   */
  preferH2?: boolean;
}

/** A bound client listener; `port` is the actual port (useful with port 0 in tests). */
export interface ClientListener {
  url: string;
  port: number;
  close(): Promise<void>;
}

/** Thrown for a client URL the listener cannot serve. */
export class ListenUrlError extends Error {
  readonly code = "ErrListenUrl";
}

/**
 * Node's http2 session reads a net.Socket through its native handle, so bytes already read from
 * the socket (the sniffed preface) would be lost. Handing it a plain Duplex that replays `head`
 * and then relays the socket makes http2 read through JavaScript instead.
 */
export function relayDuplex(socket: Duplex, head: Buffer): Duplex {
  const relay = new Duplex({
    read() {
      socket.resume();
    },
    write(chunk: Buffer, _enc, cb) {
      socket.write(chunk, cb);
    },
    writev(chunks, cb) {
      socket.cork();
      for (const c of chunks) socket.write(c.chunk as Buffer);
      socket.uncork();
      cb();
    },
    final(cb) {
      socket.end(cb);
    },
    destroy(err, cb) {
      socket.destroy(err ?? undefined);
      cb(err);
    },
  });
  relay.push(head);
  socket.on("data", (chunk: Buffer) => {
    if (!relay.push(chunk)) socket.pause();
  });
  socket.on("end", () => relay.push(null));
  socket.on("error", (err) => relay.destroy(err));
  socket.on("close", () => relay.destroy());
  return relay;
}

function route(socket: Duplex & { destroy(): void }, opts: ClientListenerOptions): void {
  let buffered = Buffer.alloc(0);
  const timer = setTimeout(() => socket.destroy(), protocolSniffTimeoutMs);
  const onData = (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk]);
    const n = Math.min(buffered.length, h2PrefaceStart.length);
    const isH2 = buffered.subarray(0, n).equals(h2PrefaceStart.subarray(0, n));
    if (isH2 && buffered.length < h2PrefaceStart.length) return; // need more bytes to decide
    clearTimeout(timer);
    socket.removeListener("data", onData);
    if (isH2) {
      opts.grpcConnection(socket, buffered);
      return;
    }
    socket.pause();
    socket.unshift(buffered);
    opts.httpServer.emit("connection", socket);
    socket.resume();
  };
  socket.on("data", onData);
  socket.on("error", () => clearTimeout(timer));
  socket.on("close", () => clearTimeout(timer));
}

/**
 * Listens on one `--listen-client-urls` entry (http:// or https://). `localhost` binds 127.0.0.1,
 * which is where etcdctl's default endpoint points.
 */
export function listenClientUrl(opts: ClientListenerOptions): Promise<ClientListener> {
  const u = new URL(opts.url);
  const host = u.hostname === "localhost" ? "127.0.0.1" : u.hostname.replace(/^\[|\]$/g, "");
  const port = Number(u.port || (u.protocol === "https:" ? 2379 : 2379));
  let server: net.Server;
  if (u.protocol === "http:") {
    server = net.createServer((socket) => {
      socket.setNoDelay(true);
      route(socket, opts);
    });
  } else if (u.protocol === "https:") {
    const t = opts.tls;
    if (t.certFile === "" || t.keyFile === "") {
      throw new ListenUrlError(
        `TLS key/cert (--cert-file, --key-file) must be provided for ${opts.url}`,
      );
    }
    server = tls.createServer(
      {
        cert: readFileSync(t.certFile),
        key: readFileSync(t.keyFile),
        ca: t.trustedCaFile !== "" ? readFileSync(t.trustedCaFile) : undefined,
        // etcd 3.4 (pkg/transport): a trusted CA file alone also makes the server require and
        // verify client certificates, as --client-cert-auth does
        requestCert: t.clientCertAuth || t.trustedCaFile !== "",
        rejectUnauthorized: t.clientCertAuth || t.trustedCaFile !== "",
        // server preference, as etcd's Go server: h2 first when the gateway is served over
        // HTTP/2 too; else http/1.1 first so that clients offering both (curl) reach the gateway
        ALPNProtocols: opts.preferH2 === true ? ["h2", "http/1.1"] : ["http/1.1", "h2"],
        minVersion: "TLSv1.2",
      },
      (socket) => {
        socket.setNoDelay(true);
        if (socket.alpnProtocol === "h2") opts.grpcConnection(socket);
        else if (socket.alpnProtocol === "http/1.1") opts.httpServer.emit("connection", socket);
        else route(socket, opts);
      },
    );
    server.on("tlsClientError", (err) =>
      opts.logger.debug({ err: err.message }, "TLS handshake failed"),
    );
  } else {
    throw new ListenUrlError(`unsupported listen-client-urls scheme in ${opts.url}`);
  }
  server.on("error", (err) =>
    opts.logger.error({ err: err.message, url: opts.url }, "client listener error"),
  );
  // every open connection, so close() can end them at once (a shutdown must not wait for clients)
  const sockets = new Set<net.Socket>();
  server.on("connection", (socket: net.Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host, port }, () => {
      server.removeListener("error", reject);
      const addr = server.address() as net.AddressInfo;
      resolve({
        url: opts.url,
        port: addr.port,
        close: () =>
          new Promise<void>((r) => {
            server.close(() => r());
            for (const socket of sockets) socket.destroy();
          }),
      });
    });
  });
}
