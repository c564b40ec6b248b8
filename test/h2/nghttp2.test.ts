// nghttp2's own clients (Debian nghttp2-client: nghttp, h2load) against lib/h2: a large response
// under tiny stream and connection windows, and many concurrent streams on few connections; then
// against a spawned member's client port, both its JSON gateway and ops endpoints over HTTP/2 and
// its gRPC methods (either transport, ETCD_TS_GRPC_TRANSPORT). Skipped when the binaries are not
// installed.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as rpc from "../../lib/proto/gen/etcdserverpb/rpc.js";
import { TARGET, httpRequest, run, startMember, type Member } from "../helpers/server.js";
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

describe(
  "nghttp2 clients against a member's client port (gateway and gRPC)",
  {
    skip: !haveTools
      ? "nghttp2-client not installed"
      : TARGET === "etcd"
        ? "real etcd 3.4 resets non-gRPC HTTP/2 streams on cleartext (cmux hands them to grpc-go)"
        : false,
    timeout: 90_000,
  },
  () => {
    let member: Member;
    let dir: string;
    const b64 = (b: string | Buffer) => Buffer.from(b).toString("base64");
    /** value size of the large key read through tiny windows */
    const bigValueBytes = 300_000;
    before(async () => {
      member = await startMember();
      dir = mkdtempSync(join(tmpdir(), "h2-nghttp-member-"));
      writeFileSync(join(dir, "range-big.json"), JSON.stringify({ key: b64("nghttp-big") }));
      writeFileSync(
        join(dir, "put.json"),
        JSON.stringify({ key: b64("h2load-gw"), value: b64("v") }),
      );
      writeFileSync(
        join(dir, "put.bin"),
        grpcMessage(
          rpc.PutRequest.toBinary(
            rpc.PutRequest.create({ key: Buffer.from("h2load-grpc"), value: Buffer.from("g") }),
          ),
        ),
      );
      const put = await httpRequest(member.endpoint + "/v3/kv/put", {
        method: "POST",
        body: JSON.stringify({
          key: b64("nghttp-big"),
          value: b64(Buffer.alloc(bigValueBytes, 7)),
        }),
      });
      assert.equal(put.status, 200, put.body);
    });
    after(async () => {
      await member?.close();
      if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    });

    test("nghttp: GET /health and /version answer over HTTP/2", async () => {
      for (const [path, want] of [
        ["/health", /\{"health":"true"\}/],
        ["/version", /"etcdserver":"3\.4\.\d+"/],
      ] as const) {
        const r = await run("/usr/bin/nghttp", ["-v", member.endpoint + path], {
          timeoutMs: 10_000,
        });
        assert.equal(r.code, 0, r.stderr + r.stdout.slice(-2000));
        assert.match(r.stdout, /recv \(stream_id=\d+\) :status: 200/);
        assert.match(r.stdout, want);
      }
    });

    test("nghttp: a 400 KB gateway answer through a 1 KiB stream window and 32 KiB connection window", async () => {
      const r = await run(
        "/usr/bin/nghttp",
        [
          "-v",
          "-n",
          "-w",
          "10",
          "-W",
          "15",
          "-H",
          "content-type: application/json",
          "-d",
          join(dir, "range-big.json"),
          member.endpoint + "/v3/kv/range",
        ],
        { timeoutMs: 20_000 },
      );
      assert.equal(r.code, 0, r.stderr + r.stdout.slice(-2000));
      assert.match(r.stdout, /recv \(stream_id=\d+\) :status: 200/);
      const sizes = [...r.stdout.matchAll(/recv DATA frame <length=(\d+)/g)].map((m) =>
        Number(m[1]),
      );
      assert.ok(sizes.length > 0);
      assert.ok(Math.max(...sizes) <= 1023, `largest DATA ${Math.max(...sizes)}`);
      // the value is base64 in the JSON answer: 4/3 of its size
      assert.ok(sizes.reduce((a, b) => a + b, 0) > (bigValueBytes * 4) / 3);
    });

    test("h2load: 2000 gateway puts, 4 connections x 16 concurrent streams, all 2xx", async () => {
      const r = await run(
        "/usr/bin/h2load",
        [
          "-n",
          "2000",
          "-c",
          "4",
          "-m",
          "16",
          "-d",
          join(dir, "put.json"),
          "-H",
          "content-type: application/json",
          member.endpoint + "/v3/kv/put",
        ],
        { timeoutMs: 60_000 },
      );
      assert.equal(r.code, 0, r.stderr);
      assert.match(
        r.stdout,
        /requests: 2000 total, 2000 started, 2000 done, 2000 succeeded, 0 failed, 0 errored/,
      );
      assert.match(r.stdout, /status codes: 2000 2xx, 0 3xx, 0 4xx, 0 5xx/);
      const got = await httpRequest(member.endpoint + "/v3/kv/range", {
        method: "POST",
        body: JSON.stringify({ key: b64("h2load-gw") }),
      });
      assert.equal((JSON.parse(got.body) as { count: string }).count, "1");
    });

    test("h2load: 2000 gRPC Put calls on the same port, all succeed", async () => {
      const r = await run(
        "/usr/bin/h2load",
        [
          "-n",
          "2000",
          "-c",
          "4",
          "-m",
          "16",
          "-d",
          join(dir, "put.bin"),
          "-H",
          "content-type: application/grpc",
          "-H",
          "te: trailers",
          member.endpoint + "/etcdserverpb.KV/Put",
        ],
        { timeoutMs: 60_000 },
      );
      assert.equal(r.code, 0, r.stderr);
      assert.match(
        r.stdout,
        /requests: 2000 total, 2000 started, 2000 done, 2000 succeeded, 0 failed, 0 errored/,
      );
      const got = await httpRequest(member.endpoint + "/v3/kv/range", {
        method: "POST",
        body: JSON.stringify({ key: b64("h2load-grpc") }),
      });
      const kvs = (JSON.parse(got.body) as { kvs: { value: string }[] }).kvs;
      assert.equal(Buffer.from(kvs[0].value, "base64").toString(), "g");
    });
  },
);
