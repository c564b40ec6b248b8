// nghttp2's own clients (Debian nghttp2-client: nghttp, h2load) against lib/h2: a large response
// under tiny stream and connection windows, and many concurrent streams on few connections.
// Skipped when the binaries are not installed.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as rpc from "../../lib/proto/gen/etcdserverpb/rpc.js";
import { run } from "../helpers/server.js";
import { startFake, type FakeService } from "./fixture.js";
import { grpcMessage } from "./raw-client.js";

const haveTools = existsSync("/usr/bin/nghttp") && existsSync("/usr/bin/h2load");

describe(
  "nghttp2 clients against lib/h2",
  { skip: haveTools ? false : "nghttp2-client not installed" },
  () => {
    let svc: FakeService;
    let dir: string;
    before(async () => {
      svc = await startFake();
      dir = mkdtempSync(join(tmpdir(), "h2-nghttp-"));
      writeFileSync(
        join(dir, "range.bin"),
        grpcMessage(
          rpc.RangeRequest.toBinary(rpc.RangeRequest.create({ key: Buffer.from("big:300000") })),
        ),
      );
      writeFileSync(
        join(dir, "put.bin"),
        grpcMessage(
          rpc.PutRequest.toBinary(
            rpc.PutRequest.create({ key: Buffer.from("h2load"), value: Buffer.from("v") }),
          ),
        ),
      );
    });
    after(async () => {
      await svc.close();
      rmSync(dir, { recursive: true, force: true });
    });

    test("nghttp: a 300 KB response through a 1 KiB stream window and 32 KiB connection window", async () => {
      const r = await run(
        "/usr/bin/nghttp",
        [
          "-v",
          "-n", // verbose frames, discard the body
          "-w",
          "10", // SETTINGS_INITIAL_WINDOW_SIZE 2^10 - 1
          "-W",
          "15", // connection window 2^15 - 1
          "-H",
          "content-type: application/grpc",
          "-H",
          "te: trailers",
          "-d",
          join(dir, "range.bin"),
          `http://127.0.0.1:${svc.port}/etcdserverpb.KV/Range`,
        ],
        { timeoutMs: 20_000 },
      );
      assert.equal(r.code, 0, r.stderr + r.stdout.slice(-2000));
      assert.match(r.stdout, /grpc-status: 0/);
      // DATA frames never exceed the 1023-byte stream window before a WINDOW_UPDATE
      const sizes = [...r.stdout.matchAll(/recv DATA frame <length=(\d+)/g)].map((m) =>
        Number(m[1]),
      );
      assert.ok(sizes.length > 0);
      assert.ok(Math.max(...sizes) <= 1023, `largest DATA ${Math.max(...sizes)}`);
      assert.ok(sizes.reduce((a, b) => a + b, 0) > 300_000);
    });

    test("h2load: 4000 Put calls, 8 connections x 32 concurrent streams, all succeed", async () => {
      const r = await run(
        "/usr/bin/h2load",
        [
          "-n",
          "4000",
          "-c",
          "8",
          "-m",
          "32",
          "-d",
          join(dir, "put.bin"),
          "-H",
          "content-type: application/grpc",
          "-H",
          "te: trailers",
          `http://127.0.0.1:${svc.port}/etcdserverpb.KV/Put`,
        ],
        { timeoutMs: 30_000 },
      );
      assert.equal(r.code, 0, r.stderr);
      assert.match(
        r.stdout,
        /requests: 4000 total, 4000 started, 4000 done, 4000 succeeded, 0 failed, 0 errored/,
      );
      assert.equal(svc.store.get("h2load")?.toString(), "v");
    });
  },
);
