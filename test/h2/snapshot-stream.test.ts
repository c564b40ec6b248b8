// Maintenance.Snapshot through lib/h2 under a small client window (issue 6): a raw HTTP/2 client
// that advertises a 1 KiB stream window and hands back only what it has read gets the member's
// whole db file, never more DATA than its windows allow, in etcd's framing (32 KiB messages with
// remaining_bytes, then the sha256), as of the call (puts and a compaction mid-transfer do not
// show), and a reset mid-stream ends the call without hurting the connection. The grpc-js
// reference transport is held to the same window check.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { EtcdServer, defaultConfig } from "../../lib/server/index.js";
import { EtcdApi } from "../../lib/api/index.js";
import { createH2Server } from "../../lib/api/h2.js";
import { createGrpcServer } from "../../lib/api/grpc.js";
import * as grpc from "@grpc/grpc-js";
import { HpackDecoder, frames, type H2GrpcServer } from "../../lib/h2/index.js";
import { BoltFile } from "../../lib/btree/index.js";
import * as rpc from "../../lib/proto/gen/etcdserverpb/rpc.js";
import { KeyValue } from "../../lib/proto/gen/mvccpb/kv.js";
import { freePort } from "../helpers/server.js";
import { RawClient, grpcMessage, requestHeaders } from "./raw-client.js";

const { FrameType, Flag, SettingId, buildFrame, buildSettings, buildWindowUpdate, buildRstStream } =
  frames;

const KEYS = 600;
const VALUE_BYTES = 1500;
const STREAM_WINDOW_BYTES = 1024;
/** Bound on client round trips (each hands back at most one window's worth). */
const MAX_ROUNDS = 20_000;

const snapshotPath = "/etcdserverpb.Maintenance/Snapshot";

function valueOf(i: number): Buffer {
  return Buffer.alloc(VALUE_BYTES, i & 0xff);
}

describe("Snapshot stream through lib/h2 under a small client window", { timeout: 120_000 }, () => {
  let server: EtcdServer;
  let h2: H2GrpcServer;
  let listener: net.Server;
  let port: number;
  let grpcServer: grpc.Server;
  let grpcPort: number;
  let dataDir: string;

  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), "h2-snapshot-"));
    const peerUrl = `http://127.0.0.1:${await freePort()}`;
    const logger = pino({ level: "silent" });
    const config = {
      ...defaultConfig(),
      name: "snap",
      dataDir,
      listenPeerUrls: [peerUrl],
      initialAdvertisePeerUrls: [peerUrl],
      initialCluster: `snap=${peerUrl}`,
      listenClientUrls: ["http://127.0.0.1:0"],
      advertiseClientUrls: ["http://127.0.0.1:0"],
    };
    server = await EtcdServer.start({ config, logger });
    for (let i = 0; i < KEYS; i++) {
      await server.put(
        rpc.PutRequest.create({
          key: Buffer.from(`k/${String(i).padStart(5, "0")}`),
          value: valueOf(i),
        }),
      );
    }
    h2 = createH2Server(new EtcdApi(server), logger, config.maxRequestBytes);
    listener = net.createServer((s) => h2.handleConnection(s));
    await new Promise<void>((r) => listener.listen(0, "127.0.0.1", r));
    port = (listener.address() as net.AddressInfo).port;
    // the reference transport on its own port, for the same check
    grpcServer = createGrpcServer(new EtcdApi(server), logger, config.maxRequestBytes);
    grpcPort = await new Promise<number>((resolve, reject) =>
      grpcServer.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) =>
        err ? reject(err) : resolve(p),
      ),
    );
  });
  after(async () => {
    grpcServer?.forceShutdown();
    listener?.close();
    h2?.forceClose();
    await server?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  /** Opens a client with a small stream window and starts a Snapshot call on stream 1. */
  function startSnapshot(serverPort = port): RawClient {
    const c = new RawClient(serverPort);
    c.write(
      Buffer.concat([
        frames.clientPreface,
        buildSettings([[SettingId.INITIAL_WINDOW_SIZE, STREAM_WINDOW_BYTES]]),
        buildFrame(FrameType.HEADERS, Flag.END_HEADERS, 1, requestHeaders(snapshotPath)),
        buildFrame(
          FrameType.DATA,
          Flag.END_STREAM,
          1,
          grpcMessage(rpc.SnapshotRequest.toBinary(rpc.SnapshotRequest.create({}))),
        ),
      ]),
    );
    return c;
  }

  test("the whole db file arrives within the windows, in etcd's messages, with its sha256", async () => {
    await wholeFileUnderSmallWindow(port);
  });

  test("the same through the grpc-js reference transport", async () => {
    await wholeFileUnderSmallWindow(grpcPort);
  });

  let writeRounds = 0;
  /** New keys, an overwrite and a compaction to the newest revision, while a transfer runs. */
  async function writeDuringTransfer(): Promise<void> {
    const round = writeRounds++;
    for (let i = 0; i < 20; i++) {
      await server.put(
        rpc.PutRequest.create({ key: Buffer.from(`z/${round}/${i}`), value: Buffer.from("new") }),
      );
    }
    await server.put(
      rpc.PutRequest.create({ key: Buffer.from(`z/${round}/0`), value: Buffer.from("again") }),
    );
    await server.compact(rpc.CompactionRequest.create({ revision: server.store.currentRevision }));
  }

  /** Fetches a Snapshot with a 1 KiB stream window, checking every DATA frame and the result. */
  async function wholeFileUnderSmallWindow(serverPort: number): Promise<void> {
    // the key bucket as of the call; writes and a compaction during the transfer must not show
    const expected = [...server.store.snapshot().records()].map(([k, v]) => [
      Buffer.from(k),
      Buffer.from(v),
    ]);
    let writesDuring: Promise<void> | undefined;
    const c = startSnapshot(serverPort);
    const decoder = new HpackDecoder({
      maxTableSizeBytes: 4096,
      maxHeaderListBytes: 1 << 20,
      maxStringBytes: 1 << 20,
    });
    let streamWindow = STREAM_WINDOW_BYTES;
    let connWindow = 65_535;
    let seen = 0;
    let maxDataFrame = 0;
    const data: Buffer[] = [];
    const headerBlocks: [string, string][][] = [];
    let ended = false;
    try {
      for (let round = 0; !ended; round++) {
        assert.ok(round < MAX_ROUNDS, "too many rounds");
        const got = await c.waitFor((fs) => fs.length > seen, 10_000);
        assert.ok(got, `no frame from the server (stream window ${streamWindow})`);
        let consumed = 0;
        for (; seen < c.frames.length; seen++) {
          const f = c.frames[seen]!;
          if (f.type === FrameType.HEADERS && f.streamId === 1) {
            headerBlocks.push(decoder.decode(f.payload));
            if (f.flags & Flag.END_STREAM) ended = true;
          } else if (f.type === FrameType.DATA && f.streamId === 1) {
            assert.ok(
              f.payload.length <= streamWindow,
              `DATA of ${f.payload.length} bytes with a stream window of ${streamWindow}`,
            );
            assert.ok(f.payload.length <= connWindow, "DATA beyond the connection window");
            streamWindow -= f.payload.length;
            connWindow -= f.payload.length;
            maxDataFrame = Math.max(maxDataFrame, f.payload.length);
            consumed += f.payload.length;
            data.push(f.payload);
            writesDuring ??= writeDuringTransfer();
          } else if (f.type === FrameType.RST_STREAM || f.type === FrameType.GOAWAY) {
            assert.fail(`server sent frame type ${f.type}`);
          }
        }
        // the server waits for our window: the writes land mid-transfer, deterministically
        if (writesDuring !== undefined) await writesDuring;
        if (consumed > 0 && !ended) {
          // hand back exactly what was read: the windows stay small for the whole transfer
          c.write(Buffer.concat([buildWindowUpdate(1, consumed), buildWindowUpdate(0, consumed)]));
          streamWindow += consumed;
          connWindow += consumed;
        }
      }
    } finally {
      c.destroy();
    }
    assert.ok(maxDataFrame <= STREAM_WINDOW_BYTES);
    assert.equal(headerBlocks.length, 2, "response headers, then trailers");
    assert.deepEqual(
      headerBlocks[1]!.find(([n]) => n === "grpc-status"),
      ["grpc-status", "0"],
    );

    // gRPC messages out of the DATA bytes
    const body = Buffer.concat(data);
    const messages: rpc.SnapshotResponse[] = [];
    for (let off = 0; off < body.length;) {
      assert.equal(body[off], 0, "uncompressed message");
      const len = body.readUInt32BE(off + 1);
      messages.push(rpc.SnapshotResponse.fromBinary(body.subarray(off + 5, off + 5 + len)));
      off += 5 + len;
    }
    assert.ok(messages.length > 10, `only ${messages.length} messages`);
    const blobs = messages.slice(0, -1);
    const file = Buffer.concat(blobs.map((m) => Buffer.from(m.blob)));
    // etcd's framing: 32 KiB blobs but the last, remaining_bytes counts down to 0, then the sha
    let remaining = file.length;
    blobs.forEach((m, i) => {
      if (i < blobs.length - 1) assert.equal(m.blob.length, 32 * 1024);
      remaining -= m.blob.length;
      assert.equal(m.remainingBytes, remaining, `remaining_bytes of message ${i}`);
    });
    const last = messages[messages.length - 1]!;
    assert.equal(last.remainingBytes, 0);
    assert.deepEqual(Buffer.from(last.blob), createHash("sha256").update(file).digest());

    // the file is the member's state
    const f = BoltFile.open(file);
    f.check();
    await writesDuring;
    const records = [...f.bucket("key")!.entries()];
    assert.deepEqual(records, expected, "the key bucket is the store as of the call");
    const kvs = records
      .map(([, v]) => KeyValue.fromBinary(v))
      .filter((kv) => Buffer.from(kv.key).toString().startsWith("k/"));
    assert.equal(kvs.length, KEYS);
    kvs.forEach((kv, i) => {
      assert.equal(Buffer.from(kv.key).toString(), `k/${String(i).padStart(5, "0")}`);
      assert.ok(Buffer.from(kv.value).equals(valueOf(i)));
    });
  }

  test("a client that resets the stream mid-transfer ends the call; the connection serves on", async () => {
    const c = startSnapshot();
    try {
      const got = await c.waitFor((fs) => fs.some((f) => f.type === FrameType.DATA), 10_000);
      assert.ok(got);
      c.write(buildRstStream(1, 0x8));
      c.write(
        Buffer.concat([
          buildWindowUpdate(0, 1 << 20),
          buildFrame(
            FrameType.HEADERS,
            Flag.END_HEADERS,
            3,
            requestHeaders("/etcdserverpb.KV/Range"),
          ),
          buildFrame(
            FrameType.DATA,
            Flag.END_STREAM,
            3,
            grpcMessage(
              rpc.RangeRequest.toBinary(rpc.RangeRequest.create({ key: Buffer.from("k/00001") })),
            ),
          ),
          // the answer (one 1.5 KiB value) is larger than the small stream window
          buildWindowUpdate(3, 1 << 16),
        ]),
      );
      const done = await c.waitFor(
        (fs) =>
          fs.some(
            (f) =>
              f.streamId === 3 && f.type === FrameType.HEADERS && (f.flags & Flag.END_STREAM) !== 0,
          ),
        10_000,
      );
      assert.ok(done, "the Range on the same connection completed");
      const rangeData = Buffer.concat(
        c.frames.filter((f) => f.streamId === 3 && f.type === FrameType.DATA).map((f) => f.payload),
      );
      const r = rpc.RangeResponse.fromBinary(rangeData.subarray(5));
      assert.equal(r.kvs.length, 1);
      assert.equal(c.goaway(), undefined);
      // nothing more for the reset stream once the reset was read (in-flight frames aside)
      const before = c.frames.filter((f) => f.streamId === 1 && f.type === FrameType.DATA).length;
      await new Promise((r) => setTimeout(r, 100));
      const after = c.frames.filter((f) => f.streamId === 1 && f.type === FrameType.DATA).length;
      assert.equal(after, before);
    } finally {
      c.destroy();
    }
  });
});
