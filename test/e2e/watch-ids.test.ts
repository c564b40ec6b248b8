// Client-chosen watch ids over all of int64, as etcd 3.4 takes them: a watch created with an id
// past 2^53 (or a negative one) is answered, fed and cancelled under exactly that id, over gRPC
// and over the gateway's JSON (where int64 is a string). Passes against /usr/bin/etcd too.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import { WatchClient } from "../../lib/proto/gen/etcdserverpb/rpc.grpc-client.js";
import * as rpc from "../../lib/proto/gen/etcdserverpb/rpc.js";
import { curl, startMember, waitFor, type Member } from "../helpers/server.js";
import { b64 } from "../helpers/gateway-json.js";

const bigId = (1n << 60n) + 1n;
const maxId = (1n << 63n) - 1n;

describe("watch ids past 2^53", { timeout: 30_000 }, () => {
  let member: Member;

  before(async () => {
    member = await startMember();
  });
  after(async () => {
    await member?.close();
  });

  async function put(key: string): Promise<void> {
    const r = await curl([
      "-X",
      "POST",
      "-d",
      JSON.stringify({ key: b64(key), value: b64("v") }),
      member.endpoint + "/v3/kv/put",
    ]);
    assert.equal(r.code, 0, r.stderr);
  }

  test("gRPC: created, events and cancel carry the client's id exactly", async () => {
    const client = new WatchClient(member.hostPort, grpc.credentials.createInsecure());
    const call = client.watch();
    const got: rpc.WatchResponse[] = [];
    call.on("data", (r: rpc.WatchResponse) => got.push(r));
    call.on("error", () => undefined);
    try {
      const create = (key: string, watchId: bigint) =>
        call.write(
          rpc.WatchRequest.create({
            requestUnion: {
              oneofKind: "createRequest",
              createRequest: rpc.WatchCreateRequest.create({ key: Buffer.from(key), watchId }),
            },
          }),
        );
      create("g1", bigId);
      create("g2", -5n);
      create("g3", maxId);
      await waitFor("three created answers", () => got.filter((r) => r.created).length === 3);
      assert.deepEqual(
        got.map((r) => r.watchId),
        [bigId, -5n, maxId],
      );
      await put("g1");
      await put("g2");
      await waitFor("two events", () => got.filter((r) => r.events.length > 0).length === 2);
      assert.deepEqual(
        got.filter((r) => r.events.length > 0).map((r) => r.watchId),
        [bigId, -5n],
      );
      call.write(
        rpc.WatchRequest.create({
          requestUnion: { oneofKind: "cancelRequest", cancelRequest: { watchId: bigId } },
        }),
      );
      await waitFor("the cancel answer", () => got.some((r) => r.canceled));
      assert.equal(got.find((r) => r.canceled)!.watchId, bigId);
      await put("g1");
      await put("g3");
      await waitFor("the event of g3", () => got.filter((r) => r.events.length > 0).length === 3);
      assert.equal(got.at(-1)!.watchId, maxId, "the cancelled watch got no event");
    } finally {
      call.cancel();
      client.close();
    }
  });

  test("gateway: watch_id as a JSON string in and out", async () => {
    // from the next revision, so the put below is seen however late curl's watches start
    const r = await curl([
      "-X",
      "POST",
      "-d",
      JSON.stringify({ key: b64("j1") }),
      member.endpoint + "/v3/kv/range",
    ]);
    const from = String(
      Number((JSON.parse(r.stdout) as { header: { revision: string } }).header.revision) + 1,
    );
    const body =
      JSON.stringify({
        create_request: { key: b64("j1"), watch_id: String(bigId), start_revision: from },
      }) +
      JSON.stringify({ create_request: { key: b64("j1"), watch_id: "-7", start_revision: from } });
    const watch = curl(["-N", "-X", "POST", "-d", body, member.endpoint + "/v3/watch"], {
      timeoutMs: 10_000,
      until: (out) => (out.match(/"events"/g) ?? []).length >= 2,
    });
    await put("j1");
    const out = await watch;
    const ids = out.stdout
      .split("\n")
      .filter((l) => l.includes('"events"'))
      .map((l) => (JSON.parse(l) as { result: { watch_id: string } }).result.watch_id)
      .sort();
    assert.deepEqual(ids, ["-7", String(bigId)]);
  });
});
