// The permission matrix: every client call, made with no credentials, as a user whose role
// reads and writes only "ok/", and as root, against a member with auth on; each answer is
// success or etcd's gRPC code and exact error string (real etcd 3.4.23 gives the same with
// ETCD_TS_TARGET=etcd, but for the rows marked newer, where etcd-ts follows release-3.4's later
// lease and alarm checks).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import * as rpc from "../../lib/proto/gen/etcdserverpb/rpc.js";
import { TARGET, etcdctl, startMember, type Member } from "../helpers/server.js";

interface Codec<T> {
  toBinary(m: T): Uint8Array;
  fromBinary(b: Uint8Array): T;
  create(v?: object): T;
}
type Caller = "none" | "user" | "root";
/** "ok", or "<gRPC code name>: <message>" */
type Outcome = string;

const b = (s: string) => Buffer.from(s);
const denied = "PERMISSION_DENIED: etcdserver: permission denied";
const empty = "INVALID_ARGUMENT: etcdserver: user name is empty";
// etcd 3.4's Snapshot, Hash, HashKV and Defragment return auth's error unmapped
const rawEmpty = "UNKNOWN: auth: user name is empty";
const rawDenied = "UNKNOWN: auth: permission denied";

describe("auth permission matrix", { timeout: 120_000 }, () => {
  let member: Member;
  let client: grpc.Client;
  const tokens = new Map<Caller, string>();
  let secretLease = 0n;

  function unary<Req, Res>(
    path: string,
    reqType: Codec<Req>,
    resType: Codec<Res>,
    req: object,
    who: Caller,
  ): Promise<Res> {
    const md = new grpc.Metadata();
    const t = tokens.get(who);
    if (t !== undefined) md.set("token", t);
    return new Promise((resolve, reject) =>
      client.makeUnaryRequest(
        path,
        (m: Req) => Buffer.from(reqType.toBinary(m)),
        (buf: Buffer) => resType.fromBinary(buf),
        reqType.create(req),
        md,
        { deadline: Date.now() + 10_000 },
        (err, res) => (err ? reject(err) : resolve(res as Res)),
      ),
    );
  }

  async function outcome(p: Promise<unknown>): Promise<Outcome> {
    try {
      await p;
      return "ok";
    } catch (err) {
      const e = err as grpc.ServiceError;
      return `${grpc.status[e.code]}: ${e.details}`;
    }
  }

  before(async () => {
    member = await startMember({ name: "matrix", extraArgs: ["--bcrypt-cost", "4"] });
    for (const args of [
      ["user", "add", "root", "--new-user-password=rootpw"],
      ["role", "add", "root"],
      ["user", "grant-role", "root", "root"],
      ["role", "add", "r"],
      ["role", "grant-permission", "r", "readwrite", "ok/", "--prefix"],
      ["user", "add", "u", "--new-user-password=up"],
      ["user", "grant-role", "u", "r"],
      ["put", "secret", "s"],
      ["put", "ok/a", "1"],
      ["auth", "enable"],
    ]) {
      const r = await etcdctl(args, { member });
      assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
    }
    client = new grpc.Client(member.hostPort, grpc.credentials.createInsecure());
    for (const [who, name, password] of [
      ["user", "u", "up"],
      ["root", "root", "rootpw"],
    ] as const) {
      const r = await unary(
        "/etcdserverpb.Auth/Authenticate",
        rpc.AuthenticateRequest,
        rpc.AuthenticateResponse,
        { name, password },
        "none",
      );
      tokens.set(who, r.token);
    }
    const lease = await unary(
      "/etcdserverpb.Lease/LeaseGrant",
      rpc.LeaseGrantRequest,
      rpc.LeaseGrantResponse,
      { tTL: 600n },
      "root",
    );
    secretLease = lease.iD;
    await unary(
      "/etcdserverpb.KV/Put",
      rpc.PutRequest,
      rpc.PutResponse,
      { key: b("secret/l"), value: b("x"), lease: secretLease },
      "root",
    );
  });
  after(async () => {
    client?.close();
    await member?.close();
  });

  const kv = (m: string) => `/etcdserverpb.KV/${m}`;
  const put = (key: string) => ({
    request: { oneofKind: "requestPut", requestPut: { key: b(key), value: b("v") } },
  });
  /** name, call, expected for none / user / root; `newer`: etcd 3.4.23 answers differently */
  const rows: {
    name: string;
    call: (who: Caller) => Promise<unknown>;
    expect: [Outcome, Outcome, Outcome];
    newer?: boolean;
  }[] = [
    {
      name: "Range ok/a",
      call: (w) => unary(kv("Range"), rpc.RangeRequest, rpc.RangeResponse, { key: b("ok/a") }, w),
      expect: [empty, "ok", "ok"],
    },
    {
      name: "Range secret",
      call: (w) => unary(kv("Range"), rpc.RangeRequest, rpc.RangeResponse, { key: b("secret") }, w),
      expect: [empty, denied, "ok"],
    },
    {
      name: "Range ok/ prefix spilling past it",
      call: (w) =>
        unary(
          kv("Range"),
          rpc.RangeRequest,
          rpc.RangeResponse,
          { key: b("ok/"), rangeEnd: b("ok1") },
          w,
        ),
      expect: [empty, denied, "ok"],
    },
    {
      name: "Put ok/b",
      call: (w) =>
        unary(kv("Put"), rpc.PutRequest, rpc.PutResponse, { key: b("ok/b"), value: b("1") }, w),
      expect: [empty, "ok", "ok"],
    },
    {
      name: "Put secret",
      call: (w) =>
        unary(kv("Put"), rpc.PutRequest, rpc.PutResponse, { key: b("secret"), value: b("1") }, w),
      expect: [empty, denied, "ok"],
    },
    {
      name: "Put ok/c on the lease holding secret/l",
      call: (w) =>
        unary(
          kv("Put"),
          rpc.PutRequest,
          rpc.PutResponse,
          { key: b("ok/c"), value: b("1"), lease: secretLease },
          w,
        ),
      expect: [empty, denied, "ok"],
    },
    {
      name: "DeleteRange secret",
      call: (w) =>
        unary(
          kv("DeleteRange"),
          rpc.DeleteRangeRequest,
          rpc.DeleteRangeResponse,
          { key: b("secret-none") },
          w,
        ),
      expect: [empty, denied, "ok"],
    },
    {
      name: "Txn compare on secret",
      call: (w) =>
        unary(
          kv("Txn"),
          rpc.TxnRequest,
          rpc.TxnResponse,
          {
            compare: [
              {
                key: b("secret"),
                target: rpc.Compare_CompareTarget.VERSION,
                result: rpc.Compare_CompareResult.GREATER,
                targetUnion: { oneofKind: "version", version: 0 },
              },
            ],
            success: [put("ok/t")],
          },
          w,
        ),
      expect: [empty, denied, "ok"],
    },
    {
      name: "Txn nested put on secret in failure",
      call: (w) =>
        unary(
          kv("Txn"),
          rpc.TxnRequest,
          rpc.TxnResponse,
          {
            success: [put("ok/t")],
            failure: [
              {
                request: {
                  oneofKind: "requestTxn",
                  requestTxn: { compare: [], success: [put("secret")], failure: [] },
                },
              },
            ],
          },
          w,
        ),
      expect: [empty, denied, "ok"],
      newer: true, // 3.4.23 did not check nested txns
    },
    {
      name: "Txn read-only in ok/",
      call: (w) =>
        unary(
          kv("Txn"),
          rpc.TxnRequest,
          rpc.TxnResponse,
          {
            success: [{ request: { oneofKind: "requestRange", requestRange: { key: b("ok/a") } } }],
          },
          w,
        ),
      expect: [empty, "ok", "ok"],
    },
    {
      name: "LeaseGrant",
      call: (w) =>
        unary(
          "/etcdserverpb.Lease/LeaseGrant",
          rpc.LeaseGrantRequest,
          rpc.LeaseGrantResponse,
          { tTL: 60n },
          w,
        ),
      expect: [empty, "ok", "ok"],
      newer: true,
    },
    {
      name: "LeaseTimeToLive with keys of the secret lease",
      call: (w) =>
        unary(
          "/etcdserverpb.Lease/LeaseTimeToLive",
          rpc.LeaseTimeToLiveRequest,
          rpc.LeaseTimeToLiveResponse,
          { iD: secretLease, keys: true },
          w,
        ),
      expect: [empty, denied, "ok"],
      newer: true,
    },
    {
      name: "Status (open to all, as 3.4.23)",
      call: (w) =>
        unary("/etcdserverpb.Maintenance/Status", rpc.StatusRequest, rpc.StatusResponse, {}, w),
      expect: ["ok", "ok", "ok"],
    },
    {
      name: "Hash",
      call: (w) =>
        unary("/etcdserverpb.Maintenance/Hash", rpc.HashRequest, rpc.HashResponse, {}, w),
      expect: [rawEmpty, rawDenied, "ok"],
    },
    {
      name: "HashKV",
      call: (w) =>
        unary("/etcdserverpb.Maintenance/HashKV", rpc.HashKVRequest, rpc.HashKVResponse, {}, w),
      expect: [rawEmpty, rawDenied, "ok"],
    },
    {
      name: "Defragment",
      call: (w) =>
        unary(
          "/etcdserverpb.Maintenance/Defragment",
          rpc.DefragmentRequest,
          rpc.DefragmentResponse,
          {},
          w,
        ),
      expect: [rawEmpty, rawDenied, "ok"],
    },
    {
      name: "Alarm GET",
      call: (w) =>
        unary("/etcdserverpb.Maintenance/Alarm", rpc.AlarmRequest, rpc.AlarmResponse, {}, w),
      expect: [empty, "ok", "ok"],
      newer: true,
    },
    {
      name: "MemberList",
      call: (w) =>
        unary(
          "/etcdserverpb.Cluster/MemberList",
          rpc.MemberListRequest,
          rpc.MemberListResponse,
          {},
          w,
        ),
      expect: ["ok", "ok", "ok"],
    },
    {
      name: "UserList",
      call: (w) =>
        unary(
          "/etcdserverpb.Auth/UserList",
          rpc.AuthUserListRequest,
          rpc.AuthUserListResponse,
          {},
          w,
        ),
      expect: [empty, denied, "ok"],
    },
    {
      name: "UserGet of itself",
      call: (w) =>
        unary(
          "/etcdserverpb.Auth/UserGet",
          rpc.AuthUserGetRequest,
          rpc.AuthUserGetResponse,
          { name: "u" },
          w,
        ),
      expect: [empty, "ok", "ok"],
    },
    {
      name: "RoleAdd",
      call: (w) =>
        unary(
          "/etcdserverpb.Auth/RoleAdd",
          rpc.AuthRoleAddRequest,
          rpc.AuthRoleAddResponse,
          { name: `x-${w}` },
          w,
        ),
      expect: [empty, denied, "ok"],
    },
  ];

  for (const row of rows) {
    test(row.name, { skip: TARGET === "etcd" && row.newer === true }, async () => {
      const got = [
        await outcome(row.call("none")),
        await outcome(row.call("user")),
        await outcome(row.call("root")),
      ];
      assert.deepEqual(got, row.expect);
    });
  }

  test("Watch on secret is canceled for the user, created for root", async () => {
    const watch = (who: Caller) =>
      new Promise<rpc.WatchResponse>((resolve, reject) => {
        const md = new grpc.Metadata();
        const t = tokens.get(who);
        if (t !== undefined) md.set("token", t);
        const s = client.makeBidiStreamRequest(
          "/etcdserverpb.Watch/Watch",
          (m: rpc.WatchRequest) => Buffer.from(rpc.WatchRequest.toBinary(m)),
          (buf: Buffer) => rpc.WatchResponse.fromBinary(buf),
          md,
          { deadline: Date.now() + 10_000 },
        );
        s.on("data", (r: rpc.WatchResponse) => {
          resolve(r);
          s.cancel();
        });
        s.on("error", (e: grpc.ServiceError) => {
          if (e.code !== grpc.status.CANCELLED) reject(e);
        });
        s.write(
          rpc.WatchRequest.create({
            requestUnion: {
              oneofKind: "createRequest",
              createRequest: rpc.WatchCreateRequest.create({ key: b("secret") }),
            },
          }),
        );
      });
    const u = await watch("user");
    assert.equal(u.canceled, true);
    assert.equal(
      u.cancelReason,
      "rpc error: code = PermissionDenied desc = etcdserver: permission denied",
    );
    const n = await watch("none");
    assert.equal(
      n.cancelReason,
      "rpc error: code = InvalidArgument desc = etcdserver: user name is empty",
    );
    const r = await watch("root");
    assert.equal(r.created, true);
    assert.equal(r.canceled, false);
  });
});
