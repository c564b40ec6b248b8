// Interop of lib/h2 with real client stacks against the fake etcdserverpb service in fixture.ts:
// @grpc/grpc-js with the generated clients (unary, bidi, errors, cancellation, deadlines, large
// responses under flow control, many concurrent streams, TLS) and node:http2 (nghttp2's HPACK
// encoder: Huffman and dynamic table).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import http2 from "node:http2";
import { rmSync } from "node:fs";
import * as grpc from "@grpc/grpc-js";
import { KVClient, WatchClient } from "../../lib/proto/gen/etcdserverpb/rpc.grpc-client.js";
import * as rpc from "../../lib/proto/gen/etcdserverpb/rpc.js";
import { generateTls, type TlsFiles } from "../helpers/server.js";
import { startFake, type FakeService } from "./fixture.js";

function unary<Req, Res>(
  fn: (
    req: Req,
    md: grpc.Metadata,
    opts: grpc.CallOptions,
    cb: (err: grpc.ServiceError | null, res?: Res) => void,
  ) => unknown,
  req: Req,
  opts: grpc.CallOptions = {},
): Promise<Res> {
  return new Promise((resolve, reject) =>
    fn(req, new grpc.Metadata(), opts, (err, res) => (err ? reject(err) : resolve(res as Res))),
  );
}

describe("grpc-js client against lib/h2", () => {
  let svc: FakeService;
  let kv: KVClient;
  before(async () => {
    svc = await startFake();
    kv = new KVClient(`127.0.0.1:${svc.port}`, grpc.credentials.createInsecure());
  });
  after(async () => {
    kv.close();
    await svc.close();
  });

  test("unary Put then Range returns the stored value and the header", async () => {
    await unary(
      kv.put.bind(kv),
      rpc.PutRequest.create({ key: Buffer.from("foo"), value: Buffer.from("bar") }),
    );
    const res = await unary<rpc.RangeRequest, rpc.RangeResponse>(
      kv.range.bind(kv),
      rpc.RangeRequest.create({ key: Buffer.from("foo") }),
    );
    assert.equal(res.count, 1);
    assert.equal(Buffer.from(res.kvs[0].value).toString(), "bar");
    assert.equal(res.header?.revision, 3);
    assert.equal(res.header?.memberId, 2n);
  });

  test("a handler error reaches the client with its gRPC code and etcd's string", async () => {
    await assert.rejects(
      unary(kv.range.bind(kv), rpc.RangeRequest.create({ key: Buffer.from("error") })),
      (err: grpc.ServiceError) => {
        assert.equal(err.code, grpc.status.OUT_OF_RANGE);
        assert.equal(err.details, "etcdserver: mvcc: required revision has been compacted");
        return true;
      },
    );
  });

  test("grpc-message is percent-encoded: non-ASCII, % and newline survive", async () => {
    await assert.rejects(
      unary(kv.range.bind(kv), rpc.RangeRequest.create({ key: Buffer.from("unicode-error") })),
      (err: grpc.ServiceError) => {
        assert.equal(err.code, grpc.status.INVALID_ARGUMENT);
        assert.equal(err.details, "bad ключ 100%\n");
        return true;
      },
    );
  });

  test("an unexpected exception fails that call with INTERNAL and the server goes on", async () => {
    await assert.rejects(
      unary(kv.range.bind(kv), rpc.RangeRequest.create({ key: Buffer.from("throw") })),
      (err: grpc.ServiceError) => err.code === grpc.status.INTERNAL,
    );
    await unary(
      kv.put.bind(kv),
      rpc.PutRequest.create({ key: Buffer.from("after"), value: Buffer.from("x") }),
    );
  });

  test("an unknown method answers UNIMPLEMENTED", async () => {
    await assert.rejects(
      unary(kv.deleteRange.bind(kv), rpc.DeleteRangeRequest.create({ key: Buffer.from("a") })),
      (err: grpc.ServiceError) => err.code === grpc.status.UNIMPLEMENTED,
    );
  });

  test("client cancellation reaches the handler (ctx.cancelled)", async () => {
    const before = svc.cancelledCalls;
    const call = kv.range(rpc.RangeRequest.create({ key: Buffer.from("slow") }), () => {});
    await new Promise((r) => setTimeout(r, 50));
    call.cancel();
    for (let i = 0; i < 100 && svc.cancelledCalls === before; i++)
      await new Promise((r) => setTimeout(r, 10));
    assert.equal(svc.cancelledCalls, before + 1);
  });

  test("grpc-timeout: a slow call ends DEADLINE_EXCEEDED", async () => {
    await assert.rejects(
      unary(kv.range.bind(kv), rpc.RangeRequest.create({ key: Buffer.from("slow") }), {
        deadline: Date.now() + 100,
      }),
      (err: grpc.ServiceError) => err.code === grpc.status.DEADLINE_EXCEEDED,
    );
  });

  test("a 20 MiB response flows through the client's window", async () => {
    const n = 20 * 1024 * 1024;
    const big = new KVClient(`127.0.0.1:${svc.port}`, grpc.credentials.createInsecure(), {
      "grpc.max_receive_message_length": -1,
    });
    try {
      const res = await unary<rpc.RangeRequest, rpc.RangeResponse>(
        big.range.bind(big),
        rpc.RangeRequest.create({ key: Buffer.from(`big:${n}`) }),
      );
      assert.equal(res.kvs[0].value.length, n);
    } finally {
      big.close();
    }
  });

  test("2000 concurrent unary calls on one connection all succeed", async () => {
    const calls = [];
    for (let i = 0; i < 2000; i++) {
      calls.push(
        unary(
          kv.put.bind(kv),
          rpc.PutRequest.create({ key: Buffer.from(`k${i}`), value: Buffer.from(`v${i}`) }),
        ),
      );
    }
    await Promise.all(calls);
    assert.equal(svc.store.get("k1999")?.toString(), "v1999");
  });

  test("Watch bidi stream: create, event, cancel, half-close ends the stream", async () => {
    const w = new WatchClient(`127.0.0.1:${svc.port}`, grpc.credentials.createInsecure());
    const call = w.watch();
    const got: rpc.WatchResponse[] = [];
    const ended = new Promise<void>((resolve, reject) => {
      call.on("data", (r: rpc.WatchResponse) => got.push(r));
      call.on("end", resolve);
      call.on("error", reject);
    });
    for (const k of ["a", "b"]) {
      call.write(
        rpc.WatchRequest.create({
          requestUnion: {
            oneofKind: "createRequest",
            createRequest: rpc.WatchCreateRequest.create({ key: Buffer.from(k) }),
          },
        }),
      );
    }
    call.write(
      rpc.WatchRequest.create({
        requestUnion: { oneofKind: "cancelRequest", cancelRequest: { watchId: 0n } },
      }),
    );
    await new Promise((r) => setTimeout(r, 50));
    call.end();
    await ended;
    w.close();
    assert.equal(got.length, 5);
    assert.deepEqual(
      got.map((r) => [Number(r.watchId), r.created, r.canceled, r.events.length]),
      [
        [0, true, false, 0],
        [0, false, false, 1],
        [1, true, false, 0],
        [1, false, false, 1],
        [0, false, true, 0],
      ],
    );
    assert.equal(Buffer.from(got[3].events[0].kv!.key).toString(), "b");
  });

  test("Watch stream ended by the server with an error status", async () => {
    const w = new WatchClient(`127.0.0.1:${svc.port}`, grpc.credentials.createInsecure());
    const call = w.watch();
    const err = await new Promise<grpc.ServiceError>((resolve) => {
      call.on("data", () => {});
      call.on("error", resolve);
      call.write(
        rpc.WatchRequest.create({
          requestUnion: {
            oneofKind: "createRequest",
            createRequest: rpc.WatchCreateRequest.create({ key: Buffer.from("fail") }),
          },
        }),
      );
    });
    w.close();
    assert.equal(err.code, grpc.status.INVALID_ARGUMENT);
    assert.equal(err.details, "etcdserver: no leader");
  });

  test("client cancel of a Watch stream fires the handler's onClose", async () => {
    const before = svc.closedStreams;
    const w = new WatchClient(`127.0.0.1:${svc.port}`, grpc.credentials.createInsecure());
    const call = w.watch();
    call.on("error", () => {});
    call.on("data", () => {});
    call.write(
      rpc.WatchRequest.create({
        requestUnion: {
          oneofKind: "createRequest",
          createRequest: rpc.WatchCreateRequest.create({ key: Buffer.from("x") }),
        },
      }),
    );
    await new Promise((r) => setTimeout(r, 50));
    call.cancel();
    for (let i = 0; i < 100 && svc.closedStreams === before; i++)
      await new Promise((r) => setTimeout(r, 10));
    w.close();
    assert.equal(svc.closedStreams, before + 1);
  });
});

describe("node:http2 client (nghttp2 HPACK: Huffman, dynamic table) against lib/h2", () => {
  let svc: FakeService;
  before(async () => {
    svc = await startFake();
  });
  after(async () => svc.close());

  const grpcRequest = (
    session: http2.ClientHttp2Session,
    path: string,
    body: Buffer,
    extra: Record<string, string> = {},
  ): Promise<{
    headers: http2.IncomingHttpHeaders;
    trailers: http2.IncomingHttpHeaders;
    data: Buffer;
  }> =>
    new Promise((resolve, reject) => {
      const req = session.request({
        ":method": "POST",
        ":path": path,
        "content-type": "application/grpc",
        te: "trailers",
        ...extra,
      });
      let headers: http2.IncomingHttpHeaders = {};
      let trailers: http2.IncomingHttpHeaders = {};
      const chunks: Buffer[] = [];
      req.on("response", (h) => (headers = h));
      req.on("trailers", (t) => (trailers = t));
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => resolve({ headers, trailers, data: Buffer.concat(chunks) }));
      req.on("error", reject);
      const prefix = Buffer.alloc(5);
      prefix.writeUInt32BE(body.length, 1);
      req.end(Buffer.concat([prefix, body]));
    });

  test("100 sequential requests with long custom metadata decode correctly", async () => {
    const session = http2.connect(`http://127.0.0.1:${svc.port}`);
    try {
      for (let i = 0; i < 100; i++) {
        const body = Buffer.from(
          rpc.PutRequest.toBinary(
            rpc.PutRequest.create({ key: Buffer.from(`n${i}`), value: Buffer.from("x") }),
          ),
        );
        const r = await grpcRequest(session, "/etcdserverpb.KV/Put", body, {
          "x-custom-metadata": `value-${i}-${"z".repeat(i * 10)}`,
          "user-agent": "node-http2-test",
        });
        assert.equal(r.headers[":status"], 200);
        assert.equal(r.trailers["grpc-status"] ?? r.headers["grpc-status"], "0");
      }
      assert.equal(svc.store.get("n99")?.toString(), "x");
    } finally {
      session.close();
    }
  });

  test("grpc-encoding gzip is refused with UNIMPLEMENTED", async () => {
    const session = http2.connect(`http://127.0.0.1:${svc.port}`);
    try {
      const r = await grpcRequest(session, "/etcdserverpb.KV/Put", Buffer.alloc(0), {
        "grpc-encoding": "gzip",
      });
      assert.equal(r.headers["grpc-status"], "12");
    } finally {
      session.close();
    }
  });

  test("a non-gRPC content type gets HTTP 415", async () => {
    const session = http2.connect(`http://127.0.0.1:${svc.port}`);
    try {
      const status = await new Promise((resolve, reject) => {
        const req = session.request({
          ":method": "POST",
          ":path": "/etcdserverpb.KV/Put",
          "content-type": "text/plain",
        });
        req.on("response", (h) => resolve(h[":status"]));
        req.on("error", reject);
        req.end("hi");
      });
      assert.equal(status, 415);
    } finally {
      session.close();
    }
  });
});

describe("TLS (ALPN h2) with grpc-js", () => {
  let svc: FakeService;
  let files: TlsFiles;
  before(async () => {
    files = await generateTls();
    svc = await startFake({ tlsFiles: { cert: files.serverCert, key: files.serverKey } });
  });
  after(async () => {
    await svc.close();
    rmSync(files.dir, { recursive: true, force: true });
  });

  test("unary Put and Range over TLS", async () => {
    const { readFileSync } = await import("node:fs");
    const kv = new KVClient(
      `127.0.0.1:${svc.port}`,
      grpc.credentials.createSsl(readFileSync(files.caCert)),
    );
    try {
      await unary(
        kv.put.bind(kv),
        rpc.PutRequest.create({ key: Buffer.from("t"), value: Buffer.from("tls") }),
      );
      const res = await unary<rpc.RangeRequest, rpc.RangeResponse>(
        kv.range.bind(kv),
        rpc.RangeRequest.create({ key: Buffer.from("t") }),
      );
      assert.equal(Buffer.from(res.kvs[0].value).toString(), "tls");
    } finally {
      kv.close();
    }
  });
});
