// A Range answer of 50 MiB goes out whole through flow control (the client's HTTP/2 windows are
// far smaller than the response), on whichever gRPC transport the run uses.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import type { Etcd3 } from "etcd3";
import { startMember, type Member } from "../helpers/server.js";
import { closeClient, newClient } from "../helpers/client.js";

const VALUE_BYTES = 1024 * 1024;
const KEYS = 50;

describe("large Range response", { timeout: 120_000 }, () => {
  let member: Member;
  let client: Etcd3;

  before(async () => {
    member = await startMember();
    client = newClient(member);
  });
  after(async () => {
    closeClient(client);
    await member?.close();
  });

  test("a 50 MiB Range answer arrives complete and intact", async () => {
    const expected = createHash("sha256");
    for (let i = 0; i < KEYS; i++) {
      const value = Buffer.alloc(VALUE_BYTES, i + 1);
      expected.update(value);
      await client
        .put(`big/${String(i).padStart(3, "0")}`)
        .value(value)
        .exec();
    }
    // etcd3 (grpc-js) caps received messages at 4 MiB unless told otherwise
    const big = newClient(member, {
      extra: { grpcOptions: { "grpc.max_receive_message_length": -1 } },
    });
    try {
      const r = await big.getAll().prefix("big/").sort("Key", "Ascend").exec();
      assert.equal(r.kvs.length, KEYS);
      const got = createHash("sha256");
      let bytes = 0;
      for (const kv of r.kvs) {
        got.update(kv.value);
        bytes += kv.value.length;
      }
      assert.equal(bytes, KEYS * VALUE_BYTES);
      assert.equal(got.digest("hex"), expected.digest("hex"));
    } finally {
      closeClient(big);
    }
  });
});
