// A seeded mix of grpc-js calls over several connections: unary Puts, slow calls cancelled or
// timed out at random points, Watch streams cancelled or half-closed, handler errors. Every call
// ends as expected and, once the clients are quiet, the server holds no streams (no leaks).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import { KVClient, WatchClient } from "../../lib/proto/gen/etcdserverpb/rpc.grpc-client.js";
import * as rpc from "../../lib/proto/gen/etcdserverpb/rpc.js";
import { prng } from "../helpers/server.js";
import { startFake, type FakeService } from "./fixture.js";

const seed = Number(process.env.SEED ?? Date.now() % 2 ** 31);

let svc: FakeService;
before(async () => {
  svc = await startFake();
});
after(async () => svc.close());

test(`random mix of calls, cancels and deadlines leaves no open streams (SEED=${seed})`, async () => {
  const rand = prng(seed);
  const conns = 4;
  // distinct channel options give distinct connections
  const kvs = Array.from(
    { length: conns },
    (_, i) =>
      new KVClient(`127.0.0.1:${svc.port}`, grpc.credentials.createInsecure(), {
        "grpc.h2-test": i,
      }),
  );
  const ws = Array.from(
    { length: conns },
    (_, i) =>
      new WatchClient(`127.0.0.1:${svc.port}`, grpc.credentials.createInsecure(), {
        "grpc.h2-test": i,
      }),
  );
  const calls: Promise<string>[] = [];
  for (let i = 0; i < 400; i++) {
    const kv = kvs[Math.floor(rand() * conns)];
    const w = ws[Math.floor(rand() * conns)];
    const r = rand();
    if (r < 0.5) {
      calls.push(
        new Promise((res) =>
          kv.put(
            rpc.PutRequest.create({ key: Buffer.from(`c${i}`), value: Buffer.from("v") }),
            (e) => res(e ? `put-err ${e.code}` : "ok"),
          ),
        ),
      );
    } else if (r < 0.6) {
      calls.push(
        new Promise((res) =>
          kv.range(rpc.RangeRequest.create({ key: Buffer.from("error") }), (e) =>
            res(e?.code === grpc.status.OUT_OF_RANGE ? "ok" : `bad ${e?.code}`),
          ),
        ),
      );
    } else if (r < 0.75) {
      calls.push(
        new Promise((res) => {
          const c = kv.range(rpc.RangeRequest.create({ key: Buffer.from("slow") }), (e) =>
            res(e?.code === grpc.status.CANCELLED ? "ok" : `bad ${e?.code}`),
          );
          setTimeout(() => c.cancel(), Math.floor(rand() * 50));
        }),
      );
    } else if (r < 0.85) {
      calls.push(
        new Promise((res) =>
          kv.range(
            rpc.RangeRequest.create({ key: Buffer.from("slow") }),
            new grpc.Metadata(),
            { deadline: Date.now() + 10 + Math.floor(rand() * 50) },
            (e) => res(e?.code === grpc.status.DEADLINE_EXCEEDED ? "ok" : `bad ${e?.code}`),
          ),
        ),
      );
    } else {
      const cancel = rand() < 0.5;
      const delay = Math.floor(rand() * 40);
      calls.push(
        new Promise((res) => {
          const call = w.watch();
          call.on("data", () => {});
          call.on("error", (e: grpc.ServiceError) =>
            res(cancel && e.code === grpc.status.CANCELLED ? "ok" : `bad ${e.code}`),
          );
          call.on("end", () => res(cancel ? "bad end" : "ok"));
          call.write(
            rpc.WatchRequest.create({
              requestUnion: {
                oneofKind: "createRequest",
                createRequest: rpc.WatchCreateRequest.create({ key: Buffer.from(`w${i}`) }),
              },
            }),
          );
          setTimeout(() => (cancel ? call.cancel() : call.end()), delay);
        }),
      );
    }
  }
  const results = await Promise.all(calls);
  const bad = results.filter((x) => x !== "ok");
  assert.deepEqual(bad, [], `SEED=${seed}`);
  for (let i = 0; i < 100 && svc.server.openStreams > 0; i++)
    await new Promise((r) => setTimeout(r, 10));
  assert.equal(svc.server.openStreams, 0, `SEED=${seed}: streams left open`);
  assert.ok(svc.server.connections >= 1);
  for (const c of [...kvs, ...ws]) c.close();
});
