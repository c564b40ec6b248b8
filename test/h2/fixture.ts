// A tiny in-test gRPC service on lib/h2 built from the generated etcdserverpb types: a fake KV
// (Put stores in a Map, Range reads it), a Watch bidi echo and a LeaseKeepAlive echo, plus
// hooks for errors, slow calls and large responses. Listens on 127.0.0.1 only.
import net from "node:net";
import tls from "node:tls";
import { readFileSync } from "node:fs";
import {
  H2GrpcServer,
  GrpcCode,
  bidiMethod,
  unaryMethod,
  type H2GrpcServerOptions,
  type H2Limits,
  type MethodHandler,
} from "../../lib/h2/index.js";
import * as rpc from "../../lib/proto/gen/etcdserverpb/rpc.js";

export class FakeError extends Error {
  constructor(
    readonly grpcCode: number,
    message: string,
  ) {
    super(message);
  }
}

export interface FakeService {
  port: number;
  server: H2GrpcServer;
  store: Map<string, Buffer>;
  /** calls whose ctx saw cancellation */
  cancelledCalls: number;
  /** watch streams whose onClose fired */
  closedStreams: number;
  close(): Promise<void>;
}

const header = () =>
  rpc.ResponseHeader.create({ clusterId: 1n, memberId: 2n, revision: 3, raftTerm: 4 });

/** Starts the fake service; with `tlsFiles` it serves TLS with ALPN h2. */
export async function startFake(
  opts: {
    tlsFiles?: { cert: string; key: string };
    h2?: Partial<H2Limits>;
    onConnectionError?: H2GrpcServerOptions["onConnectionError"];
  } = {},
): Promise<FakeService> {
  const store = new Map<string, Buffer>();
  const svc = { cancelledCalls: 0, closedStreams: 0 } as FakeService;
  const methods = new Map<string, MethodHandler>();
  methods.set(
    "/etcdserverpb.KV/Put",
    unaryMethod(rpc.PutRequest, rpc.PutResponse, async (req) => {
      store.set(Buffer.from(req.key).toString("latin1"), Buffer.from(req.value));
      return rpc.PutResponse.create({ header: header() });
    }),
  );
  methods.set(
    "/etcdserverpb.KV/Range",
    unaryMethod(rpc.RangeRequest, rpc.RangeResponse, async (req, ctx) => {
      const key = Buffer.from(req.key).toString("latin1");
      if (key === "error")
        throw new FakeError(11, "etcdserver: mvcc: required revision has been compacted");
      if (key === "unicode-error") throw new FakeError(3, "bad ключ 100%\n");
      if (key === "throw") throw new TypeError("boom");
      if (key === "slow") {
        await new Promise<void>((resolve) => {
          const t = setInterval(() => {
            if (ctx.cancelled) {
              clearInterval(t);
              svc.cancelledCalls++;
              resolve();
            }
          }, 5);
        });
        return rpc.RangeResponse.create({ header: header() });
      }
      if (key.startsWith("big:")) {
        const n = Number(key.slice(4));
        return rpc.RangeResponse.create({
          header: header(),
          kvs: [
            {
              key: req.key,
              value: Buffer.alloc(n, 0x61),
              createRevision: 1,
              modRevision: 1,
              version: 1,
              lease: 0n,
            },
          ],
          count: 1,
        });
      }
      const v = store.get(key);
      return rpc.RangeResponse.create({
        header: header(),
        kvs:
          v === undefined
            ? []
            : [
                {
                  key: req.key,
                  value: v,
                  createRevision: 1,
                  modRevision: 1,
                  version: 1,
                  lease: 0n,
                },
              ],
        count: v === undefined ? 0 : 1,
      });
    }),
  );
  methods.set(
    "/etcdserverpb.Watch/Watch",
    bidiMethod(rpc.WatchRequest, rpc.WatchResponse, (stream) => {
      let next = 0;
      stream.onClose(() => svc.closedStreams++);
      stream.onMessage((req) => {
        if (req.requestUnion.oneofKind === "createRequest") {
          const key = Buffer.from(req.requestUnion.createRequest.key).toString("latin1");
          if (key === "fail") {
            stream.end(new FakeError(GrpcCode.INVALID_ARGUMENT, "etcdserver: no leader"));
            return;
          }
          const id = BigInt(next++);
          stream.send(rpc.WatchResponse.create({ header: header(), watchId: id, created: true }));
          // echo: one event carrying the key
          stream.send(
            rpc.WatchResponse.create({
              header: header(),
              watchId: id,
              events: [
                {
                  type: 0,
                  kv: {
                    key: req.requestUnion.createRequest.key,
                    value: Buffer.from("v"),
                    createRevision: 1,
                    modRevision: 1,
                    version: 1,
                    lease: 0n,
                  },
                },
              ],
            }),
          );
        } else if (req.requestUnion.oneofKind === "cancelRequest") {
          stream.send(
            rpc.WatchResponse.create({
              header: header(),
              watchId: req.requestUnion.cancelRequest.watchId,
              canceled: true,
            }),
          );
        }
      });
    }),
  );
  const server = new H2GrpcServer(methods, {
    h2: opts.h2,
    onConnectionError: opts.onConnectionError,
    mapError: (err) =>
      err instanceof FakeError
        ? { code: err.grpcCode, message: err.message }
        : { code: GrpcCode.INTERNAL, message: (err as Error).message },
  });
  let listener: net.Server;
  if (opts.tlsFiles !== undefined) {
    listener = tls.createServer(
      {
        cert: readFileSync(opts.tlsFiles.cert),
        key: readFileSync(opts.tlsFiles.key),
        ALPNProtocols: ["h2"],
      },
      (socket) => server.handleConnection(socket),
    );
  } else {
    listener = net.createServer((socket) => {
      socket.setNoDelay(true);
      server.handleConnection(socket);
    });
  }
  await new Promise<void>((r) => listener.listen(0, "127.0.0.1", r));
  svc.port = (listener.address() as net.AddressInfo).port;
  svc.server = server;
  svc.store = store;
  svc.close = async () => {
    await new Promise<void>((r) => {
      listener.close(() => r());
      server.forceClose();
    });
  };
  return svc;
}
