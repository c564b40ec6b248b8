// Server streaming with backpressure (a Snapshot-like stream of 64 KiB chunks read slowly by a
// grpc-js client), a socket handed over with the sniffed first bytes, and the gRPC helpers.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import * as grpc from "@grpc/grpc-js";
import {
  H2GrpcServer,
  parseGrpcTimeoutMs,
  percentEncodeGrpcMessage,
  serverStreamMethod,
  unaryMethod,
} from "../../lib/h2/index.js";
import { MaintenanceClient, KVClient } from "../../lib/proto/gen/etcdserverpb/rpc.grpc-client.js";
import * as rpc from "../../lib/proto/gen/etcdserverpb/rpc.js";

const chunkBytes = 64 * 1024;
const chunks = 256; // 16 MiB in all

describe("server streaming through lib/h2", () => {
  let server: H2GrpcServer;
  let listener: net.Server;
  let port: number;
  let drains = 0;
  let maxInFlightSends = 0;
  before(async () => {
    server = new H2GrpcServer(
      new Map([
        [
          "/etcdserverpb.Maintenance/Snapshot",
          serverStreamMethod(rpc.SnapshotRequest, rpc.SnapshotResponse, (_req, stream) => {
            let i = 0;
            let closed = false;
            stream.onClose(() => (closed = true));
            const pump = () => {
              let sentSinceDrain = 0;
              while (!closed && i < chunks) {
                const ok = stream.send({
                  blob: Buffer.alloc(chunkBytes, i % 256),
                  remainingBytes: (chunks - i - 1) * chunkBytes,
                });
                i++;
                sentSinceDrain++;
                maxInFlightSends = Math.max(maxInFlightSends, sentSinceDrain);
                if (!ok) return; // wait for onDrain
              }
              if (i === chunks) stream.end();
            };
            stream.onDrain(() => {
              drains++;
              pump();
            });
            pump();
          }),
        ],
        [
          "/etcdserverpb.KV/Put",
          unaryMethod(rpc.PutRequest, rpc.PutResponse, async () => rpc.PutResponse.create({})),
        ],
      ]),
      { h2: { streamHighWaterBytes: 256 * 1024 } },
    );
    // a sniffer like lib/api/listener.ts: reads the first bytes, then hands them over with the socket
    listener = net.createServer((socket) => {
      socket.once("data", (first: Buffer) => server.handleConnection(socket, first));
    });
    await new Promise<void>((r) => listener.listen(0, "127.0.0.1", r));
    port = (listener.address() as net.AddressInfo).port;
  });
  after(() => {
    listener.close();
    server.forceClose();
  });

  test("a 16 MiB stream read slowly arrives whole and in order; send() applied backpressure", async () => {
    const client = new MaintenanceClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    const call = client.snapshot(rpc.SnapshotRequest.create({}));
    let n = 0;
    let bytes = 0;
    await new Promise<void>((resolve, reject) => {
      call.on("data", (r: rpc.SnapshotResponse) => {
        assert.equal(r.blob[0], n % 256);
        n++;
        bytes += r.blob.length;
        // a slow reader: pause now and then so the server's window closes
        if (n % 32 === 0) {
          call.pause();
          setTimeout(() => call.resume(), 30);
        }
      });
      call.on("end", resolve);
      call.on("error", reject);
    });
    client.close();
    assert.equal(n, chunks);
    assert.equal(bytes, chunks * chunkBytes);
    assert.ok(drains > 0, "the handler saw onDrain");
    assert.ok(
      maxInFlightSends < chunks,
      "send() returned false before the whole stream was queued",
    );
  });

  test("a socket handed over with its sniffed first bytes serves unary calls", async () => {
    const kv = new KVClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    await new Promise<void>((resolve, reject) =>
      kv.put(rpc.PutRequest.create({ key: Buffer.from("a") }), (err) =>
        err ? reject(err) : resolve(),
      ),
    );
    kv.close();
  });
});

describe("gRPC helpers", () => {
  test("grpc-timeout units parse to ms; malformed values are ignored", () => {
    assert.equal(parseGrpcTimeoutMs("100m"), 100);
    assert.equal(parseGrpcTimeoutMs("5S"), 5000);
    assert.equal(parseGrpcTimeoutMs("2M"), 120_000);
    assert.equal(parseGrpcTimeoutMs("1H"), 3_600_000);
    assert.equal(parseGrpcTimeoutMs("3000u"), 3);
    assert.equal(parseGrpcTimeoutMs("123456789S"), undefined);
    assert.equal(parseGrpcTimeoutMs("10x"), undefined);
    assert.equal(parseGrpcTimeoutMs(undefined), undefined);
  });

  test("grpc-message percent-encoding keeps printable ASCII and escapes the rest", () => {
    assert.equal(
      percentEncodeGrpcMessage("etcdserver: key not found"),
      "etcdserver: key not found",
    );
    assert.equal(percentEncodeGrpcMessage("100%"), "100%25");
    assert.equal(percentEncodeGrpcMessage("a\nb"), "a%0Ab");
    assert.equal(percentEncodeGrpcMessage("ü"), "%C3%BC");
  });
});
