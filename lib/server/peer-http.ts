/**
 * The HTTP endpoints etcd 3.4 serves on its peer port besides raft (etcdserver/api/etcdhttp/
 * peer.go, lease/leasehttp), on the same listeners as the peer transport (lib/transport hands a
 * connection that opens with an HTTP request line here), and the calls members make to them:
 *
 * - `GET /members`: the member list as etcd's JSON, with `X-Etcd-Cluster-ID` (a member joining
 *   with --initial-cluster-state existing learns the cluster id and its own id from it: etcd's
 *   GetClusterFromRemotePeers);
 * - `POST /members/promote/<id>`: MemberPromote forwarded to the leader, the only member that
 *   knows whether the learner caught up;
 * - `POST /leases`: a keep-alive forwarded to the leader (LeaseKeepAliveRequest in,
 *   LeaseKeepAliveResponse out, protobuf), `POST /leases/internal`: LeaseTimeToLive forwarded
 *   (leasepb.LeaseInternalRequest / LeaseInternalResponse);
 * - `GET /version`: etcd's version JSON.
 *
 * Peer TLS (and --peer-cert-allowed-cn) is checked by the listener before the request is read;
 * requests are bounded in size and time.
 */
import http from "node:http";
import https from "node:https";
import type net from "node:net";
import type tls from "node:tls";
import {
  LeaseKeepAliveRequest,
  LeaseKeepAliveResponse,
  type LeaseTimeToLiveResponse,
} from "../proto/gen/etcdserverpb/rpc.js";
import { LeaseInternalRequest, LeaseInternalResponse } from "../proto/gen/leasepb/lease.js";
import { clusterVersion, serverVersion } from "../version/index.js";
import {
  type MemberRecord,
  encodeMemberJson,
  memberFromJson,
  type MemberJson,
} from "./membership.js";
import { ServerError } from "./errors.js";

/** Largest request body a peer endpoint reads. */
const maxPeerRequestBytes = 64 * 1024;
/** Largest response body a peer call reads (a member list of many members fits). */
const maxPeerResponseBytes = 4 * 1024 * 1024;

/** What the peer endpoints answer from. */
export interface PeerHttpHost {
  clusterId(): bigint;
  members(): MemberRecord[];
  /** MemberPromote on this member (the leader decides). */
  promoteMember(id: bigint): Promise<MemberRecord[]>;
  /** A keep-alive on the leader: the new TTL. Throws ServerError (not found, not leader). */
  leaseRenewLocal(id: bigint): Promise<number>;
  /** LeaseTimeToLive on the leader. */
  leaseTimeToLiveLocal(id: bigint, keys: boolean): Promise<LeaseTimeToLiveResponse>;
  logger: { warn(obj: object, msg: string): void };
}

/** Status codes an error is answered with (etcd's peer handlers and leasehttp). */
function statusOf(err: Error): number {
  const code = (err as { code?: string }).code;
  if (code === "ErrMemberNotFound" || code === "ErrLeaseNotFound") return 404;
  if (code === "ErrMemberNotLearner" || code === "ErrLearnerNotReady") return 412;
  if (code === "ErrTimeout") return 408;
  return 500;
}

/** The members as etcd's peer /members JSON (a Go json array of membership.Member). */
export function encodeMembersJson(members: readonly MemberRecord[]): string {
  return `[${members.map((m) => encodeMemberJson(m).toString("utf8")).join(",")}]\n`;
}

/** Parses /members JSON; ids are Go's decimal numbers (read from the text, not as doubles). */
export function decodeMembersJson(text: string): MemberRecord[] {
  // JSON.parse would round 64-bit ids: quote them first
  const quoted = text.replace(/"id":\s*(\d+)/g, '"id":"$1"');
  const list = JSON.parse(quoted) as (MemberJson & { id: string })[];
  if (!Array.isArray(list)) throw new Error("members response is not a list");
  return list.map((j) => memberFromJson(BigInt(j.id), j));
}

/**
 * Makes the handler for HTTP connections on the peer listeners (PeerTransportOptions.
 * onHttpConnection): a node:http server that is never listened on, fed connections.
 */
export function createPeerHttpHandler(host: PeerHttpHost): {
  handle(socket: net.Socket): void;
  close(): void;
} {
  const server = http.createServer((req, res) => {
    void serve(host, req, res).catch((err: Error) => {
      host.logger.warn({ path: req.url, err: err.message }, "peer HTTP request failed");
      if (!res.headersSent) res.writeHead(statusOf(err), { "Content-Type": "text/plain" });
      res.end(`${err.message}\n`);
    });
  });
  server.requestTimeout = 30_000;
  server.headersTimeout = 10_000;
  server.keepAliveTimeout = 5_000;
  return {
    handle: (socket) => {
      // the listener paused the socket and put its first bytes back: let node:http read them
      server.emit("connection", socket);
      socket.resume();
    },
    close: () => server.closeAllConnections(),
  };
}

async function readBody(req: http.IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > maxPeerRequestBytes) throw new ServerError("ErrRequestTooLarge", "request too large");
    chunks.push(c);
  }
  return Buffer.concat(chunks);
}

async function serve(
  host: PeerHttpHost,
  req: http.IncomingMessage,
  res: http.ServerResponse,
): Promise<void> {
  const path = (req.url ?? "/").split("?")[0]!;
  res.setHeader("X-Etcd-Cluster-ID", host.clusterId().toString(16));
  if (path === "/members" && req.method === "GET") {
    res.writeHead(200, { "Content-Type": "application/json" });
    res.end(encodeMembersJson(host.members()));
    return;
  }
  if (path.startsWith("/members/promote/") && req.method === "POST") {
    const idText = path.slice("/members/promote/".length);
    if (!/^\d{1,20}$/.test(idText)) {
      res.writeHead(404, { "Content-Type": "text/plain" });
      res.end(`member ${idText} not found in cluster\n`);
      return;
    }
    const members = await host.promoteMember(BigInt(idText));
    res.writeHead(200, { "Content-Type": "application/json" });
    res.end(encodeMembersJson(members));
    return;
  }
  if (path === "/leases" && req.method === "POST") {
    const r = LeaseKeepAliveRequest.fromBinary(await readBody(req));
    const ttl = await host.leaseRenewLocal(r.iD);
    res.writeHead(200, { "Content-Type": "application/protobuf" });
    res.end(LeaseKeepAliveResponse.toBinary({ iD: r.iD, tTL: ttl }));
    return;
  }
  if (path === "/leases/internal" && req.method === "POST") {
    const r = LeaseInternalRequest.fromBinary(await readBody(req));
    const ttlReq = r.leaseTimeToLiveRequest;
    if (ttlReq === undefined) throw new ServerError("ErrBadRequest", "no LeaseTimeToLiveRequest");
    const resp = await host.leaseTimeToLiveLocal(ttlReq.iD, ttlReq.keys);
    res.writeHead(200, { "Content-Type": "application/protobuf" });
    res.end(LeaseInternalResponse.toBinary({ leaseTimeToLiveResponse: resp }));
    return;
  }
  if (path === "/version" && req.method === "GET") {
    res.writeHead(200, { "Content-Type": "application/json" });
    res.end(JSON.stringify({ etcdserver: serverVersion, etcdcluster: clusterVersion }));
    return;
  }
  res.writeHead(404, { "Content-Type": "text/plain" });
  res.end("404 page not found\n");
}

/** A peer endpoint's answer. */
export interface PeerHttpResponse {
  status: number;
  clusterId: bigint | undefined;
  body: Buffer;
}

/**
 * One request to a peer endpoint at `baseUrl` (a peer URL), with the member's peer TLS client
 * options for https://. Rejects on a connection error or after `timeoutMs`.
 */
export function peerHttpRequest(
  baseUrl: string,
  method: "GET" | "POST",
  path: string,
  body: Uint8Array | undefined,
  tlsOptions: tls.ConnectionOptions | undefined,
  timeoutMs: number,
): Promise<PeerHttpResponse> {
  const u = new URL(path, baseUrl);
  const secure = u.protocol === "https:";
  const mod = secure ? https : http;
  return new Promise((resolve, reject) => {
    const req = mod.request(
      u,
      {
        method,
        agent: false,
        timeout: timeoutMs,
        headers: body === undefined ? {} : { "Content-Type": "application/protobuf" },
        ...(secure ? (tlsOptions ?? {}) : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        let n = 0;
        res.on("data", (c: Buffer) => {
          n += c.length;
          if (n > maxPeerResponseBytes) {
            req.destroy(new Error(`peer response larger than ${maxPeerResponseBytes} bytes`));
            return;
          }
          chunks.push(c);
        });
        res.on("end", () => {
          const cid = res.headers["x-etcd-cluster-id"];
          resolve({
            status: res.statusCode ?? 0,
            clusterId:
              typeof cid === "string" && /^[0-9a-f]{1,16}$/.test(cid)
                ? BigInt(`0x${cid}`)
                : undefined,
            body: Buffer.concat(chunks),
          });
        });
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error(`peer request timed out after ${timeoutMs} ms`)));
    req.on("error", reject);
    req.end(body === undefined ? undefined : Buffer.from(body));
  });
}

/** The error a failed peer call answered with, as the ServerError its status and text mean. */
export function peerError(r: PeerHttpResponse, known: readonly (() => ServerError)[]): Error {
  const text = r.body.toString("utf8").trim();
  for (const make of known) {
    const e = make();
    if (text.includes(e.message)) return e;
  }
  return new Error(`peer answered ${r.status}: ${text}`);
}
