/**
 * etcd's grpc-gateway (JSON over HTTP/1.1) and the ops endpoints, on node:http.
 *
 * Follows etcd 3.4: routes from the google.api.http options of rpc.proto, v3lock.proto and
 * v3election.proto under /v3/ (and /v3beta/, which 3.4 rewrites to /v3/); protobuf JSON with the
 * original field names, int64 as strings, bytes as base64, defaults omitted (gateway
 * JSONPb{OrigName: true}); errors as {"error", "message", "code"} with grpc-gateway's HTTP status
 * for the code; streaming calls (watch, lease keep-alive; Observe and Snapshot with one request)
 * answer with one JSON object per line, each {"result": …}, and end on an error with grpc-gateway's
 * {"error": StreamError} chunk. `/health`, `/version` and `/metrics` as etcdhttp.
 */
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from "node:http";
import type { Logger } from "pino";
import type { IMessageType } from "@protobuf-ts/runtime";
import * as rpc from "../proto/gen/etcdserverpb/rpc.js";
import * as v3lock from "../proto/gen/v3lockpb/v3lock.js";
import * as v3election from "../proto/gen/v3electionpb/v3election.js";
import { saturateJsonInt64 } from "../proto/int64.js";
import type { BidiStream, EtcdApi, ServerStream } from "./handlers.js";
import type { CallAuth } from "./auth.js";
import { authMethods } from "./auth-service.js";
import { httpStatusFromGrpc, toApiStatus, ApiError } from "./errors.js";
import { status as GrpcStatus } from "@grpc/grpc-js";
import { serverVersion, clusterVersion } from "../version/index.js";
import { FAILPOINTS_HTTP_PATH, serveFailpointHttp } from "../failpoint/index.js";
import { errNotSupportedForLearner } from "../server/errors.js";
import { servedByLearnerOnGateway } from "./learner.js";

interface JsonCodec<T> {
  /** protobuf-ts field infos, walked to saturate int64 number fields (lib/proto/int64.ts) */
  readonly fields: IMessageType<object>["fields"];
  fromJson(json: unknown, options?: { ignoreUnknownFields?: boolean }): T;
  toJson(msg: T, options?: { useProtoFieldName?: boolean }): unknown;
  toBinary(msg: T): Uint8Array;
}

interface UnaryRoute {
  kind: "unary";
  request: JsonCodec<unknown>;
  response: JsonCodec<unknown>;
  /** `signal` aborts when the HTTP client goes away (Lock and Campaign then give up their key) */
  call: (api: EtcdApi, req: unknown, auth: CallAuth, signal: AbortSignal) => Promise<unknown>;
}

/** A server-streaming call (Observe, Snapshot): one JSON request, a stream of JSON answers. */
interface ServerStreamRoute {
  kind: "serverStream";
  request: JsonCodec<unknown>;
  response: JsonCodec<unknown>;
  call: (api: EtcdApi, req: unknown, stream: ServerStream<unknown>, auth: CallAuth) => void;
}

interface StreamRoute {
  kind: "stream";
  request: JsonCodec<unknown>;
  response: JsonCodec<unknown>;
  call: (api: EtcdApi, stream: BidiStream<unknown, unknown>, auth: CallAuth) => void;
}

type Route = UnaryRoute | ServerStreamRoute | StreamRoute;

function unary<Req, Res>(
  request: JsonCodec<Req>,
  response: JsonCodec<Res>,
  call: (api: EtcdApi, req: Req, auth: CallAuth, signal: AbortSignal) => Promise<Res>,
): UnaryRoute {
  return {
    kind: "unary",
    request: request as JsonCodec<unknown>,
    response: response as JsonCodec<unknown>,
    call: call as UnaryRoute["call"],
  };
}

function serverStream<Req, Res>(
  request: JsonCodec<Req>,
  response: JsonCodec<Res>,
  call: (api: EtcdApi, req: Req, s: ServerStream<Res>, auth: CallAuth) => void,
): ServerStreamRoute {
  return {
    kind: "serverStream",
    request: request as JsonCodec<unknown>,
    response: response as JsonCodec<unknown>,
    call: call as ServerStreamRoute["call"],
  };
}

function stream<Req, Res>(
  request: JsonCodec<Req>,
  response: JsonCodec<Res>,
  call: (api: EtcdApi, s: BidiStream<Req, Res>, auth: CallAuth) => void,
): StreamRoute {
  return {
    kind: "stream",
    request: request as JsonCodec<unknown>,
    response: response as JsonCodec<unknown>,
    call: call as StreamRoute["call"],
  };
}

/** Path (after the version prefix) → route, from etcd 3.4's rpc.proto http options. */
const routes = new Map<string, Route>([
  ["kv/range", unary(rpc.RangeRequest, rpc.RangeResponse, (a, r, c) => a.range(r, c))],
  ["kv/put", unary(rpc.PutRequest, rpc.PutResponse, (a, r, c) => a.put(r, c))],
  [
    "kv/deleterange",
    unary(rpc.DeleteRangeRequest, rpc.DeleteRangeResponse, (a, r, c) => a.deleteRange(r, c)),
  ],
  ["kv/txn", unary(rpc.TxnRequest, rpc.TxnResponse, (a, r, c) => a.txn(r, c))],
  [
    "kv/compaction",
    unary(rpc.CompactionRequest, rpc.CompactionResponse, (a, r, c) => a.compact(r, c)),
  ],
  ["watch", stream(rpc.WatchRequest, rpc.WatchResponse, (a, s, c) => a.watch(s, c))],
  [
    "lease/grant",
    unary(rpc.LeaseGrantRequest, rpc.LeaseGrantResponse, (a, r, c) => a.leaseGrant(r, c)),
  ],
  [
    "lease/revoke",
    unary(rpc.LeaseRevokeRequest, rpc.LeaseRevokeResponse, (a, r, c) => a.leaseRevoke(r, c)),
  ],
  [
    "kv/lease/revoke",
    unary(rpc.LeaseRevokeRequest, rpc.LeaseRevokeResponse, (a, r, c) => a.leaseRevoke(r, c)),
  ],
  [
    "lease/keepalive",
    stream(rpc.LeaseKeepAliveRequest, rpc.LeaseKeepAliveResponse, (a, s, c) =>
      a.leaseKeepAlive(s, c),
    ),
  ],
  [
    "lease/timetolive",
    unary(rpc.LeaseTimeToLiveRequest, rpc.LeaseTimeToLiveResponse, (a, r, c) =>
      a.leaseTimeToLive(r, c),
    ),
  ],
  [
    "kv/lease/timetolive",
    unary(rpc.LeaseTimeToLiveRequest, rpc.LeaseTimeToLiveResponse, (a, r, c) =>
      a.leaseTimeToLive(r, c),
    ),
  ],
  [
    "lease/leases",
    unary(rpc.LeaseLeasesRequest, rpc.LeaseLeasesResponse, (a, _r, c) => a.leaseLeases(c)),
  ],
  [
    "kv/lease/leases",
    unary(rpc.LeaseLeasesRequest, rpc.LeaseLeasesResponse, (a, _r, c) => a.leaseLeases(c)),
  ],
  [
    "cluster/member/list",
    unary(rpc.MemberListRequest, rpc.MemberListResponse, (a) => a.memberList()),
  ],
  ["maintenance/alarm", unary(rpc.AlarmRequest, rpc.AlarmResponse, (a, r, c) => a.alarm(r, c))],
  ["maintenance/status", unary(rpc.StatusRequest, rpc.StatusResponse, (a) => a.status())],
  [
    "maintenance/defragment",
    unary(rpc.DefragmentRequest, rpc.DefragmentResponse, (a, _r, c) => a.defragment(c)),
  ],
  // etcd 3.4's rpc.proto maps both Hash and HashKV to /v3/maintenance/hash; its gateway answers
  // Hash there. /hashkv is etcd 3.5's path for HashKV, served here too.
  ["maintenance/hash", unary(rpc.HashRequest, rpc.HashResponse, (a, _r, c) => a.hash(c))],
  ["maintenance/hashkv", unary(rpc.HashKVRequest, rpc.HashKVResponse, (a, r, c) => a.hashKV(r, c))],
  [
    "maintenance/snapshot",
    serverStream(rpc.SnapshotRequest, rpc.SnapshotResponse, (a, _r, s, c) => a.snapshot(s, c)),
  ],
  [
    "maintenance/transfer-leadership",
    unary(rpc.MoveLeaderRequest, rpc.MoveLeaderResponse, (a, r) => a.moveLeader(r)),
  ],
  [
    "cluster/member/add",
    unary(rpc.MemberAddRequest, rpc.MemberAddResponse, (a, r, c) => a.memberAdd(r, c)),
  ],
  [
    "cluster/member/remove",
    unary(rpc.MemberRemoveRequest, rpc.MemberRemoveResponse, (a, r, c) => a.memberRemove(r, c)),
  ],
  [
    "cluster/member/update",
    unary(rpc.MemberUpdateRequest, rpc.MemberUpdateResponse, (a, r, c) => a.memberUpdate(r, c)),
  ],
  [
    "cluster/member/promote",
    unary(rpc.MemberPromoteRequest, rpc.MemberPromoteResponse, (a, r, c) => a.memberPromote(r, c)),
  ],
  // v3lock.proto and v3election.proto
  [
    "lock/lock",
    unary(v3lock.LockRequest, v3lock.LockResponse, (a, r, c, signal) =>
      a.lockService.lock(r, signal, c),
    ),
  ],
  [
    "lock/unlock",
    unary(v3lock.UnlockRequest, v3lock.UnlockResponse, (a, r, c) => a.lockService.unlock(r, c)),
  ],
  [
    "election/campaign",
    unary(v3election.CampaignRequest, v3election.CampaignResponse, (a, r, c, signal) =>
      a.electionService.campaign(r, signal, c),
    ),
  ],
  [
    "election/proclaim",
    unary(v3election.ProclaimRequest, v3election.ProclaimResponse, (a, r, c) =>
      a.electionService.proclaim(r, c),
    ),
  ],
  [
    "election/leader",
    unary(v3election.LeaderRequest, v3election.LeaderResponse, (a, r, c) =>
      a.electionService.leader(r, c),
    ),
  ],
  [
    "election/observe",
    serverStream(v3election.LeaderRequest, v3election.LeaderResponse, (a, r, s, c) =>
      a.electionService.observe(r, s, c),
    ),
  ],
  [
    "election/resign",
    unary(v3election.ResignRequest, v3election.ResignResponse, (a, r, c) =>
      a.electionService.resign(r, c),
    ),
  ],
]);

for (const m of authMethods) {
  routes.set(
    m.gatewayPath,
    unary(m.request, m.response, (a, r, c) => m.call(a, r, c)),
  );
}

/** The gateway call's credentials: its Authorization header as etcd's "authorization" metadata. */
function callAuthOf(ex: GatewayExchange): CallAuth {
  const metadata = new Map<string, string>();
  if (ex.authorization !== undefined) metadata.set("authorization", ex.authorization);
  return { metadata };
}

/**
 * etcd 3.4 serves its gateway under /v3/ and rewrites /v3beta/ to it (embed/serve.go
 * accessController); /v3alpha/ is gone since 3.4.
 */
const versionPrefixes = ["/v3/", "/v3beta/"];

/** etcd's /health gives its QGET round trip one second. */
const healthReadTimeoutMs = 1000;

/** True when `p` settles successfully within `ms`. */
function readWithin(p: Promise<void>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    p.then(
      () => {
        clearTimeout(timer);
        resolve(true);
      },
      () => {
        clearTimeout(timer);
        resolve(false);
      },
    );
  });
}

/** etcd's gRPC receive limit, which its gateway's requests meet: --max-request-bytes + 512 KiB. */
function maxMessageBytes(api: EtcdApi): number {
  return api.server.config.maxRequestBytes + 512 * 1024;
}

/**
 * Upper bound on one gateway request body (or one streamed JSON value), in bytes: twice the
 * message limit, so that every message under the limit passes as JSON (bytes fields are base64,
 * 4/3 of their size) and its decoded size decides, as in etcd, whose gateway hands the decoded
 * message to its gRPC server. Only bodies no etcd request could fit are cut short.
 */
function maxBodyBytes(api: EtcdApi): number {
  return 2 * maxMessageBytes(api);
}

/** etcd's gRPC server refuses a decoded message over its receive limit with this status. */
function checkMessageSize(api: EtcdApi, codec: JsonCodec<unknown>, msg: unknown): void {
  const limit = maxMessageBytes(api);
  const size = codec.toBinary(msg).length;
  if (size > limit) {
    throw new ApiError(
      GrpcStatus.RESOURCE_EXHAUSTED,
      `grpc: received message larger than max (${size} vs. ${limit})`,
    );
  }
}

/**
 * CORS headers etcd's client handler adds to every answer when --cors is "*" (its default and the
 * only setting etcd-ts has), so that browsers may call the gateway (embed/serve.go
 * accessController).
 */
const corsHeaders: Readonly<Record<string, string>> = {
  "access-control-allow-headers": "accept, content-type, authorization",
  "access-control-allow-methods": "POST, GET, OPTIONS, PUT, DELETE",
  "access-control-allow-origin": "*",
};

/** Sends the status and `headers` with etcd's CORS headers. */
function writeHead(ex: GatewayExchange, httpStatus: number, headers: Record<string, string>): void {
  ex.writeHead(httpStatus, { ...corsHeaders, ...headers });
}

function writeJson(res: GatewayExchange, httpStatus: number, body: unknown): void {
  const text = JSON.stringify(body);
  writeHead(res, httpStatus, {
    "content-type": "application/json",
    "content-length": String(Buffer.byteLength(text)),
  });
  res.end(text);
}

/** A plain-text error answer, as Go's http.Error writes it (etcd's 404 and 405 answers). */
function writeTextError(
  ex: GatewayExchange,
  httpStatus: number,
  text: string,
  headers: Record<string, string> = {},
): void {
  writeHead(ex, httpStatus, {
    "content-type": "text/plain; charset=utf-8",
    "x-content-type-options": "nosniff",
    ...headers,
  });
  ex.end(text);
}

function errorBody(err: unknown): { status: number; body: unknown; unexpected: boolean } {
  const s = toApiStatus(err);
  return {
    status: httpStatusFromGrpc(s.code),
    body: { error: s.message, message: s.message, code: s.code },
    unexpected: s.unexpected,
  };
}

/** One answer of a streaming call as grpc-gateway writes it: {"result": message}. */
function resultLine(codec: JsonCodec<unknown>, msg: unknown): string {
  return JSON.stringify({ result: codec.toJson(msg, { useProtoFieldName: true }) });
}

/**
 * The chunk that ends a streaming call with an error, as grpc-gateway v1.11 (etcd 3.4's)
 * DefaultHTTPStreamErrorHandler builds it: {"error": StreamError} with the gRPC code, the HTTP
 * status it maps to, its text and the message; no line break follows it.
 */
function streamErrorChunk(err: unknown): { text: string; httpStatus: number; unexpected: boolean } {
  const s = toApiStatus(err);
  const httpStatus = httpStatusFromGrpc(s.code);
  const error = {
    grpc_code: s.code,
    http_code: httpStatus,
    message: s.message,
    http_status: STATUS_CODES[httpStatus] ?? "",
  };
  return { text: JSON.stringify({ error }), httpStatus, unexpected: s.unexpected };
}

/**
 * A streaming call refused before its first answer: the status grpc-gateway maps the gRPC code to,
 * and its stream error object as the whole body (etcd 3.4's gateway on a learner's /v3/watch).
 */
function writeStreamRefusal(ex: GatewayExchange, err: Error): void {
  const chunk = streamErrorChunk(err);
  writeHead(ex, chunk.httpStatus, {
    "content-type": "application/json",
    "content-length": String(Buffer.byteLength(chunk.text)),
  });
  ex.end(chunk.text);
}

/**
 * Go's ServeMux answer for a subtree path asked without its trailing slash (/v3): a 301 to the
 * path with the slash (query kept), with a small HTML body for GET and HEAD.
 */
function redirectToSlash(ex: GatewayExchange, url: URL): void {
  const location = `${url.pathname}/${url.search}`;
  if (ex.method !== "GET" && ex.method !== "HEAD") {
    writeHead(ex, 301, { location, "content-length": "0" });
    ex.end();
    return;
  }
  const body = `<a href="${location}">Moved Permanently</a>.\n\n`;
  writeHead(ex, 301, { location, "content-type": "text/html; charset=utf-8" });
  ex.end(body);
}

function readBody(req: GatewayExchange, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let refused = false;
    req.readBody(
      (c) => {
        if (refused) return;
        size += c.length;
        if (size > limit) {
          refused = true;
          reject(
            new ApiError(GrpcStatus.RESOURCE_EXHAUSTED, "grpc: received message larger than max"),
          );
          req.stopReading();
          return;
        }
        chunks.push(c);
      },
      () => {
        if (!refused) resolve(Buffer.concat(chunks));
      },
    );
  });
}

/**
 * Quotes integer literals too long for a JS number (more than 15 digits) outside strings, so that
 * 64-bit ids (lease ids sent as JSON numbers by clients such as python3-etcd3gw) keep every digit:
 * Go's decoder, which etcd's gateway uses, reads them exactly. protobuf JSON accepts int64 as
 * strings.
 */
export function quoteBigIntegers(text: string): string {
  let out = "";
  let last = 0;
  let inString = false;
  let escaped = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    if (inString) {
      if (escaped) escaped = false;
      else if (ch === 0x5c) escaped = true;
      else if (ch === 0x22) inString = false;
      continue;
    }
    if (ch === 0x22) {
      inString = true;
      continue;
    }
    const isDigit = ch >= 0x30 && ch <= 0x39;
    if (!isDigit && ch !== 0x2d) continue;
    let j = i + (ch === 0x2d ? 1 : 0);
    while (j < text.length && text.charCodeAt(j) >= 0x30 && text.charCodeAt(j) <= 0x39) j++;
    const next = j < text.length ? text[j] : "";
    const digits = j - i - (ch === 0x2d ? 1 : 0);
    if (digits > 15 && next !== "." && next !== "e" && next !== "E") {
      out += `${text.slice(last, i)}"${text.slice(i, j)}"`;
      last = j;
    }
    i = j - 1;
  }
  return last === 0 ? text : out + text.slice(last);
}

function parseJson(text: string): unknown {
  if (text.trim() === "") return {};
  try {
    return JSON.parse(quoteBigIntegers(text));
  } catch (err) {
    throw new ApiError(
      GrpcStatus.INVALID_ARGUMENT,
      `invalid character in JSON body: ${(err as Error).message}`,
    );
  }
}

function decode(codec: JsonCodec<unknown>, json: unknown): unknown {
  try {
    return codec.fromJson(saturateJsonInt64(codec as IMessageType<object>, json), {
      ignoreUnknownFields: true,
    });
  } catch (err) {
    throw new ApiError(GrpcStatus.INVALID_ARGUMENT, (err as Error).message);
  }
}

/**
 * Splits a request stream of concatenated JSON values (as Go's json.Decoder reads them, which
 * etcd's gateway uses) into complete values. The scan state survives between chunks, so each byte is looked at once however the client slices its body (a byte-at-a-time
 * sender cannot make the member rescan a large unfinished value), and one value is capped at
 * `maxValueBytes`. Works on bytes: JSON's structural characters are ASCII, and UTF-8 continuation
 * bytes never equal them.
 */
export class JsonValueSplitter {
  #parts: Buffer[] = [];
  #partsBytes = 0;
  #depth = 0;
  #inString = false;
  #escaped = false;
  readonly #maxValueBytes: number;

  constructor(maxValueBytes: number) {
    this.#maxValueBytes = maxValueBytes;
  }

  /** Feeds a chunk; returns the values it completed. Throws ApiError when a value is too large. */
  push(chunk: Buffer): string[] {
    const values: string[] = [];
    let start = 0;
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk[i];
      if (this.#inString) {
        if (this.#escaped) this.#escaped = false;
        else if (c === 0x5c) this.#escaped = true;
        else if (c === 0x22) this.#inString = false;
        continue;
      }
      if (c === 0x22) {
        this.#inString = this.#depth > 0;
      } else if (c === 0x7b || c === 0x5b) {
        if (this.#depth === 0) {
          start = i;
          this.#parts = [];
          this.#partsBytes = 0;
        }
        this.#depth++;
      } else if ((c === 0x7d || c === 0x5d) && this.#depth > 0) {
        this.#depth--;
        if (this.#depth === 0) {
          this.#parts.push(chunk.subarray(start, i + 1));
          values.push(Buffer.concat(this.#parts).toString("utf8"));
          this.#parts = [];
          this.#partsBytes = 0;
        }
      }
    }
    if (this.#depth > 0) {
      const rest = chunk.subarray(this.#parts.length === 0 && this.#partsBytes === 0 ? start : 0);
      this.#parts.push(rest);
      this.#partsBytes += rest.length;
      if (this.#partsBytes > this.#maxValueBytes) {
        throw new ApiError(GrpcStatus.RESOURCE_EXHAUSTED, "grpc: received message larger than max");
      }
    }
    return values;
  }
}

/**
 * One gateway or ops request and its answer, whatever carries it: HTTP/1.1 (node:http), an HTTP/2
 * stream of lib/h2 or of node:http2 (h2-gateway.ts). The gateway reads the method, the target and
 * the body, and answers with a status, headers and a body that may stream (watch, keep-alive).
 */
export interface GatewayExchange {
  /** request method, e.g. "POST" */
  readonly method: string;
  /** request target: path and query, e.g. "/health?exclude=NOSPACE" */
  readonly url: string;
  /** the Authorization header: an auth token, as etcd's gateway passes it to its gRPC server */
  readonly authorization: string | undefined;
  /** true once writeHead was called */
  readonly headersSent: boolean;
  /**
   * Starts reading the request body: `onData` gets each chunk in order, then `onEnd` once when
   * the client finished sending (not after stopReading). Call at most once.
   */
  readBody(onData: (chunk: Buffer) => void, onEnd: () => void): void;
  /** the body is refused (over a size limit): stop delivering it; the transport may drop the request */
  stopReading(): void;
  /** sends the status line / :status and headers (lower-case names) */
  writeHead(status: number, headers: Record<string, string>): void;
  /** a streaming response: sends the headers now rather than with the first body bytes */
  flushHeaders(): void;
  /** sends body bytes; false means the client is behind: wait for onDrain before sending more */
  write(chunk: string): boolean;
  /** ends the response, with optional last body bytes */
  end(chunk?: string): void;
  /** called when bytes held back after write returned false have gone */
  onDrain(fn: () => void): void;
  /** called once when the exchange is over: the response ended or the client went away */
  onClose(fn: () => void): void;
}

/** node:http's request and response as a GatewayExchange. */
class Http1Exchange implements GatewayExchange {
  readonly method: string;
  readonly url: string;
  readonly authorization: string | undefined;
  readonly #req: IncomingMessage;
  readonly #res: ServerResponse;
  #stopped = false;

  constructor(req: IncomingMessage, res: ServerResponse) {
    this.#req = req;
    this.#res = res;
    this.method = req.method ?? "GET";
    this.url = req.url ?? "/";
    this.authorization = req.headers.authorization;
  }

  get headersSent(): boolean {
    return this.#res.headersSent;
  }

  readBody(onData: (chunk: Buffer) => void, onEnd: () => void): void {
    this.#req.on("data", onData);
    this.#req.on("end", onEnd);
    this.#req.on("error", () => {});
  }

  stopReading(): void {
    // the refusal is still answered (as etcd does); the rest of the body is read and dropped,
    // and the connection closes after the answer so a client cannot keep it busy
    this.#stopped = true;
    this.#req.removeAllListeners("data");
    this.#req.resume();
  }

  writeHead(status: number, headers: Record<string, string>): void {
    if (this.#stopped) this.#res.setHeader("connection", "close");
    this.#res.writeHead(status, headers);
  }

  flushHeaders(): void {
    this.#res.flushHeaders();
  }

  write(chunk: string): boolean {
    return this.#res.write(chunk);
  }

  end(chunk?: string): void {
    if (chunk === undefined) this.#res.end();
    else this.#res.end(chunk);
  }

  onDrain(fn: () => void): void {
    this.#res.on("drain", fn);
  }

  onClose(fn: () => void): void {
    this.#res.on("close", fn);
  }
}

/**
 * Serves gateway and ops requests: the JSON gateway under /v3/ (and /v3beta/),
 * /health, /version and /metrics. Never throws: every failure becomes an HTTP answer.
 */
export class Gateway {
  readonly #api: EtcdApi;
  readonly #logger: Logger;
  readonly #failpointsHttp: boolean;

  /**
   * `options.failpointsHttp` serves lib/failpoint's endpoint under /debug/failpoints (a test
   * mode, `--experimental-failpoints-http`); otherwise that path is a 404 as any other.
   */
  constructor(api: EtcdApi, logger: Logger, options?: { failpointsHttp?: boolean }) {
    this.#api = api;
    this.#logger = logger;
    this.#failpointsHttp = options?.failpointsHttp === true;
  }

  /** Upper bound on one request body or one streamed request value, in bytes. */
  get maxBodyBytes(): number {
    return maxBodyBytes(this.#api);
  }

  /** Serves one HTTP/1.1 request (node:http's request listener). */
  handle(req: IncomingMessage, res: ServerResponse): void {
    this.serve(new Http1Exchange(req, res));
  }

  /** Serves one request on any transport (see GatewayExchange); never throws. */
  serve(ex: GatewayExchange): void {
    this.#handle(ex).catch((err: unknown) => {
      const e = errorBody(err);
      if (e.unexpected)
        this.#logger.error({ url: ex.url, err: (err as Error)?.stack }, "gateway request failed");
      if (!ex.headersSent) writeJson(ex, e.status, e.body);
      else ex.end();
    });
  }

  async #handle(ex: GatewayExchange): Promise<void> {
    const url = new URL(ex.url, "http://localhost");
    const path = url.pathname;
    if (ex.method === "OPTIONS") {
      // a CORS preflight: etcd answers 200 with its CORS headers on every path
      writeHead(ex, 200, {});
      ex.end();
      return;
    }
    if (path === "/health") return this.#health(ex, url);
    if (path === "/version") {
      if (ex.method !== "GET") {
        return writeTextError(ex, 405, "Method Not Allowed\n", { allow: "GET" });
      }
      return writeJson(ex, 200, { etcdserver: serverVersion, etcdcluster: clusterVersion });
    }
    if (path === "/metrics") return this.#metrics(ex);
    if (this.#failpointsHttp && path.startsWith(FAILPOINTS_HTTP_PATH))
      return this.#failpoints(ex, path);
    if (path === "/v3" || path === "/v3beta") return redirectToSlash(ex, url);
    const prefix = versionPrefixes.find((p) => path.startsWith(p));
    // Go's mux answers paths outside the gateway; grpc-gateway answers unknown ones under it
    if (prefix === undefined) return writeTextError(ex, 404, "404 page not found\n");
    const routeKey = path.slice(prefix.length);
    const route = routes.get(routeKey);
    if (route === undefined) return writeTextError(ex, 404, "Not Found\n");
    // etcd's grpc-gateway routes only POST; its 405 names no allowed method
    if (ex.method !== "POST") return writeTextError(ex, 405, "Method Not Allowed\n");
    // etcd's gateway calls its own gRPC server, whose interceptors refuse a learner (learner.ts)
    const learner = this.#api.server.isLearner;
    if (route.kind === "stream") {
      if (learner) return writeStreamRefusal(ex, errNotSupportedForLearner());
      return this.#stream(route, ex);
    }
    const body = await readBody(ex, maxBodyBytes(this.#api));
    const msg = decode(route.request, parseJson(body.toString("utf8")));
    checkMessageSize(this.#api, route.request, msg);
    if (learner && route.kind === "serverStream") {
      return writeStreamRefusal(ex, errNotSupportedForLearner());
    }
    if (learner && !servedByLearnerOnGateway(routeKey, msg)) throw errNotSupportedForLearner();
    if (route.kind === "serverStream") return this.#serverStream(route, msg, ex);
    const ac = new AbortController();
    ex.onClose(() => ac.abort());
    const out = await route.call(this.#api, msg, callAuthOf(ex), ac.signal);
    writeJson(ex, 200, route.response.toJson(out, { useProtoFieldName: true }));
  }

  /** lib/failpoint's endpoint; a PUT takes effect once its answer is handed to the socket. */
  async #failpoints(ex: GatewayExchange, path: string): Promise<void> {
    const body = ex.method === "PUT" ? await readBody(ex, maxBodyBytes(this.#api)) : undefined;
    const a = serveFailpointHttp(ex.method, path, body?.toString("utf8") ?? "");
    this.#logger.info({ method: ex.method, path, status: a.status }, "failpoint request");
    writeHead(ex, a.status, { ...a.headers, "content-length": String(Buffer.byteLength(a.body)) });
    ex.end(a.body);
    if (a.apply !== undefined) setImmediate(a.apply);
  }

  /**
   * A server-streaming call as grpc-gateway's ForwardResponseStream: the status line goes with the
   * first answer (none while, say, Observe waits for a first candidate), then one
   * {"result": …} line per answer; an error becomes a StreamError chunk, with the error's HTTP
   * status when nothing was sent yet.
   */
  #serverStream(route: ServerStreamRoute, req: unknown, ex: GatewayExchange): void {
    const onClose: (() => void)[] = [];
    const onDrain: (() => void)[] = [];
    let closed = false;
    const close = () => {
      if (closed) return;
      closed = true;
      for (const fn of onClose) fn();
    };
    ex.onDrain(() => {
      for (const fn of onDrain) fn();
    });
    ex.onClose(close);
    const head = (httpStatus: number) => {
      if (!ex.headersSent) {
        writeHead(ex, httpStatus, { "content-type": "application/json" });
        ex.flushHeaders();
      }
    };
    const s: ServerStream<unknown> = {
      onClose: (fn) => onClose.push(fn),
      onDrain: (fn) => onDrain.push(fn),
      send: (m) => {
        if (closed) return true;
        head(200);
        return ex.write(`${resultLine(route.response, m)}\n`);
      },
      end: (err) => {
        if (closed) return;
        if (err !== undefined) {
          const chunk = streamErrorChunk(err);
          if (chunk.unexpected) {
            this.#logger.error({ url: ex.url, err: err.stack }, "gateway stream failed");
          }
          head(chunk.httpStatus);
          ex.write(chunk.text);
        } else head(200);
        ex.end();
        close();
      },
    };
    route.call(this.#api, req, s, callAuthOf(ex));
  }

  #stream(route: StreamRoute, ex: GatewayExchange): void {
    const onMessage: ((m: unknown) => void)[] = [];
    const onEnd: (() => void)[] = [];
    const onClose: (() => void)[] = [];
    const onDrain: (() => void)[] = [];
    let closed = false;
    const close = () => {
      if (closed) return;
      closed = true;
      for (const fn of onClose) fn();
    };
    writeHead(ex, 200, { "content-type": "application/json" });
    ex.flushHeaders();
    ex.onDrain(() => {
      for (const fn of onDrain) fn();
    });
    ex.onClose(close);
    const s: BidiStream<unknown, unknown> = {
      onMessage: (fn) => onMessage.push(fn),
      onEnd: (fn) => onEnd.push(fn),
      onClose: (fn) => onClose.push(fn),
      onDrain: (fn) => onDrain.push(fn),
      send: (m) => {
        if (closed) return true;
        return ex.write(`${resultLine(route.response, m)}\n`);
      },
      end: (err) => {
        if (closed) return;
        if (err !== undefined) {
          const chunk = streamErrorChunk(err);
          if (chunk.unexpected) {
            this.#logger.error({ url: ex.url, err: err.stack }, "gateway stream failed");
          }
          ex.write(chunk.text);
        }
        ex.end();
        close();
      },
    };
    route.call(this.#api, s, callAuthOf(ex));
    const splitter = new JsonValueSplitter(maxBodyBytes(this.#api));
    let refused = false;
    ex.readBody(
      (chunk) => {
        if (refused || closed) return;
        let values: string[];
        try {
          values = splitter.push(chunk);
        } catch (err) {
          refused = true;
          s.end(err as Error);
          ex.stopReading();
          return;
        }
        for (const v of values) {
          let msg: unknown;
          try {
            msg = decode(route.request, parseJson(v));
            checkMessageSize(this.#api, route.request, msg);
          } catch (err) {
            refused = true;
            s.end(err as Error);
            return;
          }
          for (const fn of onMessage) fn(msg);
        }
      },
      // A client that finished sending keeps its watch: the response stream stays open until the
      // client goes away, as etcd's gateway does; a keep-alive stream ends once it has answered
      // (the gateway half-closes its gRPC stream, etcd's LeaseKeepAlive then returns).
      () => {
        if (refused || closed) return;
        for (const fn of onEnd) fn();
      },
    );
  }

  async #health(ex: GatewayExchange, url: URL): Promise<void> {
    if (ex.method !== "GET") {
      return writeTextError(ex, 405, "Method Not Allowed\n", { allow: "GET" });
    }
    const server = this.#api.server;
    let healthy = server.health(new Set(url.searchParams.getAll("exclude"))).health;
    // etcd's checkHealth also makes a round trip through raft (a QGET with a 1 s timeout); here a
    // linearizable read barrier with the same bound
    if (healthy) healthy = await readWithin(server.linearizableReadNotify(), healthReadTimeoutMs);
    const body = JSON.stringify({ health: healthy ? "true" : "false" });
    if (healthy) {
      writeHead(ex, 200, { "content-type": "text/plain; charset=utf-8" });
      ex.end(body);
    } else {
      // etcd answers with http.Error: text/plain and a trailing newline
      writeHead(ex, 503, {
        "content-type": "text/plain; charset=utf-8",
        "x-content-type-options": "nosniff",
      });
      ex.end(`${body}\n`);
    }
  }

  async #metrics(ex: GatewayExchange): Promise<void> {
    const server = this.#api.server;
    server.refreshMetrics();
    const text = await server.metrics.registry.metrics();
    writeHead(ex, 200, { "content-type": server.metrics.registry.contentType });
    ex.end(text);
  }
}
