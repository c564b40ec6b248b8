// Bad input through the `etcd3` npm client and raw gRPC: each request gets etcd's gRPC code and
// exact error string, changes nothing, and the member keeps serving.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import {
  EtcdLeaseInvalidError,
  GRPCInvalidArgumentError,
  GRPCOutOfRangeError,
  GRPCResourceExhastedError,
  type Etcd3,
} from "etcd3";
import { startMember, type Member } from "../helpers/server.js";
import { closeClient, newClient } from "../helpers/client.js";

/** --max-request-bytes for this member: small, so over-limit requests are cheap to build. */
const MAX_REQUEST_BYTES = 10 * 1024;
/** etcd lets gRPC accept this much over --max-request-bytes before gRPC itself refuses. */
const GRPC_OVERHEAD_BYTES = 512 * 1024;

describe("bad input gets etcd's errors and changes nothing", { timeout: 60_000 }, () => {
  let member: Member;
  let client: Etcd3;

  before(async () => {
    member = await startMember({ extraArgs: ["--max-request-bytes", String(MAX_REQUEST_BYTES)] });
    // No client-side retries: RESOURCE_EXHAUSTED counts as recoverable in etcd3, and its retries
    // would trip the client's circuit breaker for the rest of the file.
    client = newClient(member, { noRetry: true });
    await client.put("bad/existing").value("v").exec();
  });
  after(async () => {
    closeClient(client);
    await member?.close();
  });

  async function revision(): Promise<string> {
    return (await client.get("bad/existing").exec()).header.revision;
  }

  /** Asserts `p` rejects with class `ctor` and a message containing `text`, and that no write happened. */
  async function rejectsUnchanged(
    p: () => Promise<unknown>,
    ctor: new (...a: never[]) => Error,
    text: string,
  ) {
    const before = await revision();
    await assert.rejects(p(), (err: Error) => {
      assert.ok(
        err instanceof ctor,
        `expected ${ctor.name}, got ${err.constructor.name}: ${err.message}`,
      );
      assert.ok(err.message.includes(text), `expected "${text}" in "${err.message}"`);
      return true;
    });
    assert.equal(await revision(), before, "the failed request changed the store");
  }

  test("empty key: put, range and delete fail with 'etcdserver: key is not provided'", async () => {
    const msg = "etcdserver: key is not provided";
    await rejectsUnchanged(() => client.put("").value("v").exec(), GRPCInvalidArgumentError, msg);
    await rejectsUnchanged(
      () => client.kv.range({ key: Buffer.alloc(0) }),
      GRPCInvalidArgumentError,
      msg,
    );
    await rejectsUnchanged(
      () => client.kv.deleteRange({ key: Buffer.alloc(0) }),
      GRPCInvalidArgumentError,
      msg,
    );
  });

  test("a request over --max-request-bytes fails with 'etcdserver: request is too large'", async () => {
    const big = Buffer.alloc(MAX_REQUEST_BYTES + 1024, "x");
    await rejectsUnchanged(
      () => client.put("bad/big").value(big).exec(),
      GRPCInvalidArgumentError,
      "etcdserver: request is too large",
    );
    // Far over the limit gRPC itself refuses the message (RESOURCE_EXHAUSTED).
    const huge = Buffer.alloc(MAX_REQUEST_BYTES + GRPC_OVERHEAD_BYTES + 1024, "x");
    await rejectsUnchanged(
      () => client.put("bad/huge").value(huge).exec(),
      GRPCResourceExhastedError,
      "",
    );
    // Just under the limit is fine.
    await client
      .put("bad/ok")
      .value(Buffer.alloc(MAX_REQUEST_BYTES - 200, "y"))
      .exec();
    await client.delete().key("bad/ok").exec();
  });

  test("a txn with more than 128 ops fails with 'etcdserver: too many operations in txn request'", async () => {
    const ops = Array.from({ length: 129 }, (_, i) => client.put(`bad/t${i}`).value("v"));
    await rejectsUnchanged(
      () =>
        client
          .if("bad/existing", "Version", ">", 0)
          .then(...ops)
          .commit(),
      GRPCInvalidArgumentError,
      "etcdserver: too many operations in txn request",
    );
    // 128 is allowed.
    const ok = await client
      .if("bad/existing", "Version", ">", 0)
      .then(...ops.slice(0, 128))
      .commit();
    assert.equal(ok.succeeded, true);
    await client.delete().prefix("bad/t").exec();
  });

  test("a txn writing one key twice fails with 'etcdserver: duplicate key given in txn request'", async () => {
    const msg = "etcdserver: duplicate key given in txn request";
    await rejectsUnchanged(
      () =>
        client
          .if("bad/existing", "Version", ">", 0)
          .then(client.put("bad/d").value("1"), client.put("bad/d").value("2"))
          .commit(),
      GRPCInvalidArgumentError,
      msg,
    );
    // A put and a delete whose range covers it are duplicates too.
    await rejectsUnchanged(
      () =>
        client
          .if("bad/existing", "Version", ">", 0)
          .then(client.put("bad/d/x").value("1"), client.delete().prefix("bad/d/"))
          .commit(),
      GRPCInvalidArgumentError,
      msg,
    );
    // Reads of the same key do not count; the same key in then and else does not count.
    const ok = await client
      .if("bad/existing", "Version", ">", 0)
      .then(client.get("bad/d"), client.get("bad/d"), client.put("bad/d").value("1"))
      .else(client.put("bad/d").value("2"))
      .commit();
    assert.equal(ok.succeeded, true);
    await client.delete().key("bad/d").exec();
  });

  test("a read or compaction at a future revision fails with etcd's future-revision error", async () => {
    const future = Number(await revision()) + 1000;
    const msg = "etcdserver: mvcc: required revision is a future revision";
    await rejectsUnchanged(
      () => client.get("bad/existing").revision(future).exec(),
      GRPCOutOfRangeError,
      msg,
    );
    await rejectsUnchanged(() => client.kv.compact({ revision: future }), GRPCOutOfRangeError, msg);
    // Past 2^53 as well: etcd reads int64, so these are future revisions, not decoding errors.
    for (const huge of ["9223372036854775807", "9007199254740993"]) {
      await rejectsUnchanged(
        () => client.get("bad/existing").revision(huge).exec(),
        GRPCOutOfRangeError,
        msg,
      );
      await rejectsUnchanged(() => client.kv.compact({ revision: huge }), GRPCOutOfRangeError, msg);
    }
  });

  test("a put with an unknown lease fails with 'etcdserver: requested lease not found'", async () => {
    await rejectsUnchanged(
      () => client.put("bad/l").value("v").lease("987654321").exec(),
      EtcdLeaseInvalidError,
      "etcdserver: requested lease not found",
    );
  });

  test("a lease TTL over the maximum fails with 'etcdserver: too large lease TTL'", async () => {
    await rejectsUnchanged(
      () => client.leaseClient.leaseGrant({ TTL: 9_000_000_001 }),
      GRPCOutOfRangeError,
      "etcdserver: too large lease TTL",
    );
    await rejectsUnchanged(
      () => client.leaseClient.leaseGrant({ TTL: "9223372036854775807" }),
      GRPCOutOfRangeError,
      "etcdserver: too large lease TTL",
    );
  });

  test("a malformed protobuf request fails with a gRPC error and the member keeps serving", async () => {
    const before = await revision();
    const raw = new grpc.Client(member.hostPort, grpc.credentials.createInsecure());
    try {
      const call = (method: string, body: Buffer) =>
        new Promise<number>((resolve) => {
          raw.makeUnaryRequest(
            method,
            (b: Buffer) => b,
            (b: Buffer) => b,
            body,
            { deadline: Date.now() + 5000 },
            (err) => resolve(err?.code ?? grpc.status.OK),
          );
        });
      // Field 1 (key) says it is 100 bytes long, but 2 follow: not a valid message. etcd (grpc-go)
      // answers INTERNAL "grpc: error unmarshalling request: unexpected EOF".
      assert.equal(
        await call("/etcdserverpb.KV/Put", Buffer.from([0x0a, 0x64, 0x61, 0x62])),
        grpc.status.INTERNAL,
      );
      // An unknown method is UNIMPLEMENTED.
      assert.equal(
        await call("/etcdserverpb.KV/NoSuchMethod", Buffer.alloc(0)),
        grpc.status.UNIMPLEMENTED,
      );
    } finally {
      raw.close();
    }
    assert.equal(await revision(), before);
    const h = await member.httpGet("/health");
    assert.equal(JSON.parse(h.body).health, "true");
  });
});
