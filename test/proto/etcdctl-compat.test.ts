// The generated @grpc/grpc-js service definitions serve etcd's own Go client: a stub server on
// 127.0.0.1 answers fixed responses built with our messages, and the real `etcdctl` 3.4 (skipped
// when not installed) must decode them — including a 63-bit lease id and a large revision.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import * as grpc from "@grpc/grpc-js";
import * as rpc from "../../lib/proto/gen/etcdserverpb/rpc.js";
import {
  kVDefinition,
  leaseDefinition,
  watchDefinition,
  maintenanceDefinition,
  type IKV,
  type ILease,
  type IWatch,
  type IMaintenance,
} from "../../lib/proto/gen/etcdserverpb/rpc.grpc-server.js";
import { lockDefinition, type ILock } from "../../lib/proto/gen/v3lockpb/v3lock.grpc-server.js";
import * as v3lock from "../../lib/proto/gen/v3lockpb/v3lock.js";
import { LockClient } from "../../lib/proto/gen/v3lockpb/v3lock.grpc-client.js";

const run = promisify(execFile);
const etcdctlTimeoutMs = 10_000;

async function haveEtcdctl(): Promise<boolean> {
  try {
    await run("etcdctl", ["version"], { timeout: etcdctlTimeoutMs });
    return true;
  } catch {
    return false;
  }
}

const clusterId = 14841639068965178418n;
const memberId = 10276657743932975437n;
const leaseId = 7587869412893622801n;
const bigRevision = 2 ** 40 + 7;
const header = (): rpc.ResponseHeader =>
  rpc.ResponseHeader.create({ clusterId, memberId, revision: bigRevision, raftTerm: 3 });
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

const unimplemented = (_call: unknown, cb: grpc.sendUnaryData<never>): void =>
  cb({ code: grpc.status.UNIMPLEMENTED, details: "stub" }, null);

const seen: { puts: rpc.PutRequest[]; grants: rpc.LeaseGrantRequest[] } = { puts: [], grants: [] };

const kv: IKV = {
  range: (call, cb) => {
    const key = Buffer.from(call.request.key).toString();
    cb(null, {
      header: header(),
      kvs: [
        {
          key: utf8(key),
          value: utf8("v"),
          createRevision: 5,
          modRevision: bigRevision,
          version: 2,
          lease: leaseId,
        },
      ],
      more: false,
      count: 1,
    });
  },
  put: (call, cb) => {
    seen.puts.push(call.request);
    cb(null, rpc.PutResponse.create({ header: header() }));
  },
  deleteRange: unimplemented,
  txn: unimplemented,
  compact: unimplemented,
};
const lease: ILease = {
  leaseGrant: (call, cb) => {
    seen.grants.push(call.request);
    cb(
      null,
      rpc.LeaseGrantResponse.create({ header: header(), iD: leaseId, tTL: call.request.tTL }),
    );
  },
  leaseRevoke: unimplemented,
  leaseKeepAlive: (call) => call.end(),
  leaseTimeToLive: unimplemented,
  leaseLeases: unimplemented,
};
const watch: IWatch = {
  watch: (call) => {
    call.on("data", (req: rpc.WatchRequest) => {
      if (req.requestUnion.oneofKind !== "createRequest") return;
      const key = req.requestUnion.createRequest.key;
      call.write(rpc.WatchResponse.create({ header: header(), watchId: 0n, created: true }));
      call.write(
        rpc.WatchResponse.create({
          header: header(),
          watchId: 0n,
          events: [
            {
              kv: {
                key,
                value: utf8("w"),
                createRevision: 5,
                modRevision: bigRevision,
                version: 1,
                lease: 0n,
              },
            },
          ],
        }),
      );
    });
    call.on("end", () => call.end());
  },
};
const maintenance: IMaintenance = {
  alarm: unimplemented,
  status: (_call, cb) =>
    cb(
      null,
      rpc.StatusResponse.create({
        header: header(),
        version: "3.4.23",
        dbSize: 20480,
        leader: memberId,
        raftIndex: 99,
        raftTerm: 3,
        raftAppliedIndex: 99,
        dbSizeInUse: 16384,
      }),
    ),
  defragment: unimplemented,
  hash: unimplemented,
  hashKV: unimplemented,
  snapshot: (call) => call.end(),
  moveLeader: unimplemented,
};
const lock: ILock = {
  lock: (call, cb) =>
    cb(
      null,
      v3lock.LockResponse.create({
        header: header(),
        key: utf8(Buffer.from(call.request.name).toString() + "/694d7a3c4b1b2a01"),
      }),
    ),
  unlock: (_call, cb) => cb(null, v3lock.UnlockResponse.create({ header: header() })),
};

describe("real etcdctl against the generated grpc-js definitions", async () => {
  const available = await haveEtcdctl();
  const server = new grpc.Server();
  let endpoint = "";

  before(async () => {
    if (!available) return;
    server.addService(kVDefinition, kv);
    server.addService(leaseDefinition, lease);
    server.addService(watchDefinition, watch);
    server.addService(maintenanceDefinition, maintenance);
    server.addService(lockDefinition, lock);
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) =>
        err ? reject(err) : resolve(p),
      ),
    );
    endpoint = `127.0.0.1:${port}`;
  });
  after(() => {
    server.forceShutdown();
  });

  async function etcdctl(...args: string[]): Promise<string> {
    const { stdout } = await run(
      "etcdctl",
      [`--endpoints=${endpoint}`, "--dial-timeout=3s", "--command-timeout=5s", ...args],
      { timeout: etcdctlTimeoutMs, env: { ...process.env, ETCDCTL_API: "3" } },
    );
    return stdout;
  }

  test(
    "get -w json decodes header ids, big revision and 63-bit lease id",
    { skip: !available },
    async () => {
      // etcdctl's JSON printer writes uint64/int64 as JSON numbers; keep the digits exact.
      const out = await etcdctl("get", "foo", "-w", "json");
      assert.match(out, new RegExp(`"cluster_id":${clusterId}\\b`));
      assert.match(out, new RegExp(`"member_id":${memberId}\\b`));
      assert.match(out, new RegExp(`"revision":${bigRevision}\\b`));
      assert.match(out, new RegExp(`"mod_revision":${bigRevision}\\b`));
      assert.match(out, new RegExp(`"lease":${leaseId}\\b`));
      assert.match(out, /"key":"Zm9v"/);
    },
  );

  test("put with --lease sends the lease id as bigint", { skip: !available }, async () => {
    const out = await etcdctl("put", "k1", "v1", `--lease=${leaseId.toString(16)}`);
    assert.equal(out.trim(), "OK");
    const put = seen.puts.at(-1)!;
    assert.equal(Buffer.from(put.key).toString(), "k1");
    assert.equal(put.lease, leaseId);
  });

  test("lease grant prints the id in hex", { skip: !available }, async () => {
    const out = await etcdctl("lease", "grant", "30");
    assert.match(out, new RegExp(`lease ${leaseId.toString(16)} granted with TTL\\(30s\\)`));
    assert.equal(seen.grants.at(-1)!.tTL, 30);
  });

  test("watch (bidi stream) prints the event", { skip: !available }, async () => {
    // etcdctl watch never exits on its own; the timeout ends it, and stdout is still returned.
    const out = await run("etcdctl", [`--endpoints=${endpoint}`, "watch", "wk"], {
      timeout: 4_000,
      env: { ...process.env, ETCDCTL_API: "3" },
    }).then(
      (r) => r.stdout,
      (e: { stdout?: string }) => e.stdout ?? "",
    );
    assert.match(out, /PUT\nwk\nw/);
  });

  test("endpoint status decodes StatusResponse", { skip: !available }, async () => {
    const out = await etcdctl("endpoint", "status", "-w", "json");
    assert.match(out, new RegExp(`"leader":${memberId}\\b`));
    assert.match(out, /"version":"3.4.23"/);
    assert.match(out, /"dbSize":20480/);
  });

  test("lock (v3lockpb) returns the ownership key", { skip: !available }, async () => {
    // `etcdctl lock` uses the client-side recipe (Txn) rather than the v3lock service, so the
    // generated grpc-js client stands in for it here.
    const client = new LockClient(endpoint, grpc.credentials.createInsecure());
    const res = await new Promise<v3lock.LockResponse>((resolve, reject) =>
      client.lock(v3lock.LockRequest.create({ name: utf8("L"), lease: leaseId }), (err, r) =>
        err || !r ? reject(err) : resolve(r),
      ),
    );
    client.close();
    assert.equal(Buffer.from(res.key).toString(), "L/694d7a3c4b1b2a01");
    assert.equal(res.header?.memberId, memberId);
  });
});
