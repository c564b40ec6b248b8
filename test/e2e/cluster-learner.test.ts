// A learner refuses client requests as etcd 3.4 does (issue 14; etcd's api/v3rpc interceptor.go
// and util.go isRPCSupportedForLearner): it answers Maintenance.Status and serializable Range, and
// every other call and every stream fails UNAVAILABLE "etcdserver: rpc not supported for learner",
// through gRPC, etcdctl, the etcd3 npm client and the JSON gateway. The same probes run against
// real etcd 3.4 (a voter and a learner) and must answer the same.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import * as grpc from "@grpc/grpc-js";
import { Etcd3 } from "etcd3";
import * as rpc from "../../lib/proto/gen/etcdserverpb/rpc.js";
import * as v3lock from "../../lib/proto/gen/v3lockpb/v3lock.js";
import * as v3election from "../../lib/proto/gen/v3electionpb/v3election.js";
import {
  type Member,
  type Target,
  etcdctl,
  freePort,
  httpRequest,
  serverCommand,
  startMember,
} from "../helpers/server.js";

const FAST = ["--heartbeat-interval", "50", "--election-timeout", "500"];
const refused = "UNAVAILABLE: etcdserver: rpc not supported for learner";
const b = (s: string) => new TextEncoder().encode(s);

interface Codec<T> {
  toBinary(m: T): Uint8Array;
  fromBinary(b: Uint8Array): T;
  create(v?: object): T;
}

type Probe = (client: grpc.Client) => Promise<string>;

const deadline = () => ({ deadline: Date.now() + 3000 });
const ser =
  <T>(c: Codec<T>) =>
  (m: T) =>
    Buffer.from(c.toBinary(m));
const de =
  <T>(c: Codec<T>) =>
  (buf: Buffer) =>
    c.fromBinary(buf);
const failure = (e: grpc.ServiceError) => `${grpc.status[e.code]}: ${e.details}`;

function unary<Req, Res>(path: string, req: Codec<Req>, res: Codec<Res>, body: object): Probe {
  return (client) =>
    new Promise((resolve) => {
      const md = new grpc.Metadata();
      const msg = req.create(body);
      client.makeUnaryRequest(path, ser(req), de(res), msg, md, deadline(), (err) =>
        resolve(err === null ? "ok" : failure(err)),
      );
    });
}

/** A stream's outcome: "ok" at its first answer, or the status it ends with. */
function stream<Req, Res>(
  path: string,
  req: Codec<Req>,
  res: Codec<Res>,
  body: object,
  kind: "bidi" | "server",
): Probe {
  return (client) =>
    new Promise((resolve) => {
      const md = new grpc.Metadata();
      const msg = req.create(body);
      const call =
        kind === "bidi"
          ? client.makeBidiStreamRequest(path, ser(req), de(res), md, deadline())
          : client.makeServerStreamRequest(path, ser(req), de(res), msg, md, deadline());
      call.on("data", () => {
        resolve("ok");
        call.cancel();
      });
      call.on("error", (e: grpc.ServiceError) => resolve(failure(e)));
      call.on("end", () => resolve("ended"));
      if (kind === "bidi") (call as grpc.ClientDuplexStream<Req, Res>).write(msg);
    });
}

const kv = (m: string) => `/etcdserverpb.KV/${m}`;
const lease = (m: string) => `/etcdserverpb.Lease/${m}`;
const mt = (m: string) => `/etcdserverpb.Maintenance/${m}`;

/** Every client RPC a learner might be asked, and whether etcd 3.4 serves it there. */
const probes: { name: string; served: boolean; probe: Probe }[] = [
  {
    name: "Range serializable",
    served: true,
    probe: unary(kv("Range"), rpc.RangeRequest, rpc.RangeResponse, {
      key: b("a"),
      serializable: true,
    }),
  },
  {
    name: "Range",
    served: false,
    probe: unary(kv("Range"), rpc.RangeRequest, rpc.RangeResponse, { key: b("a") }),
  },
  {
    name: "Put",
    served: false,
    probe: unary(kv("Put"), rpc.PutRequest, rpc.PutResponse, { key: b("b"), value: b("2") }),
  },
  {
    name: "DeleteRange",
    served: false,
    probe: unary(kv("DeleteRange"), rpc.DeleteRangeRequest, rpc.DeleteRangeResponse, {
      key: b("a"),
    }),
  },
  { name: "Txn", served: false, probe: unary(kv("Txn"), rpc.TxnRequest, rpc.TxnResponse, {}) },
  {
    name: "Compact",
    served: false,
    probe: unary(kv("Compact"), rpc.CompactionRequest, rpc.CompactionResponse, { revision: 1n }),
  },
  {
    name: "LeaseGrant",
    served: false,
    probe: unary(lease("LeaseGrant"), rpc.LeaseGrantRequest, rpc.LeaseGrantResponse, {
      tTL: 10n,
    }),
  },
  {
    name: "LeaseTimeToLive",
    served: false,
    probe: unary(
      lease("LeaseTimeToLive"),
      rpc.LeaseTimeToLiveRequest,
      rpc.LeaseTimeToLiveResponse,
      { iD: 1n },
    ),
  },
  {
    name: "LeaseLeases",
    served: false,
    probe: unary(lease("LeaseLeases"), rpc.LeaseLeasesRequest, rpc.LeaseLeasesResponse, {}),
  },
  {
    name: "Status",
    served: true,
    probe: unary(mt("Status"), rpc.StatusRequest, rpc.StatusResponse, {}),
  },
  {
    name: "Alarm",
    served: false,
    probe: unary(mt("Alarm"), rpc.AlarmRequest, rpc.AlarmResponse, {}),
  },
  {
    name: "HashKV",
    served: false,
    probe: unary(mt("HashKV"), rpc.HashKVRequest, rpc.HashKVResponse, {}),
  },
  {
    name: "Defragment",
    served: false,
    probe: unary(mt("Defragment"), rpc.DefragmentRequest, rpc.DefragmentResponse, {}),
  },
  {
    name: "MemberList",
    served: false,
    probe: unary(
      "/etcdserverpb.Cluster/MemberList",
      rpc.MemberListRequest,
      rpc.MemberListResponse,
      {},
    ),
  },
  {
    name: "Authenticate",
    served: false,
    probe: unary(
      "/etcdserverpb.Auth/Authenticate",
      rpc.AuthenticateRequest,
      rpc.AuthenticateResponse,
      { name: "root", password: "x" },
    ),
  },
  {
    name: "Lock",
    served: false,
    probe: unary("/v3lockpb.Lock/Lock", v3lock.LockRequest, v3lock.LockResponse, {
      name: b("l"),
      lease: 1n,
    }),
  },
  {
    name: "Election.Leader",
    served: false,
    probe: unary(
      "/v3electionpb.Election/Leader",
      v3election.LeaderRequest,
      v3election.LeaderResponse,
      { name: b("e") },
    ),
  },
  {
    name: "Watch",
    served: false,
    probe: stream(
      "/etcdserverpb.Watch/Watch",
      rpc.WatchRequest,
      rpc.WatchResponse,
      { requestUnion: { oneofKind: "createRequest", createRequest: { key: b("a") } } },
      "bidi",
    ),
  },
  {
    name: "LeaseKeepAlive",
    served: false,
    probe: stream(
      lease("LeaseKeepAlive"),
      rpc.LeaseKeepAliveRequest,
      rpc.LeaseKeepAliveResponse,
      { iD: 1n },
      "bidi",
    ),
  },
  {
    name: "Snapshot",
    served: false,
    probe: stream(mt("Snapshot"), rpc.SnapshotRequest, rpc.SnapshotResponse, {}, "server"),
  },
];

/** A voter and a learner of `target` (the learner added with etcdctl, then started). */
async function startWithLearner(target: Target): Promise<{ voter: Member; learner: Member }> {
  const voter = await startMember({ target, name: "m1", extraArgs: FAST });
  try {
    const put = await etcdctl(["put", "a", "1"], { member: voter });
    assert.equal(put.code, 0, put.stderr);
    const peerPort = await freePort();
    const add = await etcdctl(
      ["member", "add", "m2", "--learner", `--peer-urls=http://127.0.0.1:${peerPort}`],
      { member: voter },
    );
    assert.equal(add.code, 0, add.stderr);
    const initialCluster = /ETCD_INITIAL_CLUSTER="([^"]+)"/.exec(add.stdout)![1]!;
    const learner = await startMember({
      target,
      name: "m2",
      peerPort,
      initialCluster,
      initialClusterState: "existing",
      extraArgs: FAST,
    });
    return { voter, learner };
  } catch (err) {
    await voter.close();
    throw err;
  }
}

/** Every outcome on the learner, by name: raw gRPC, etcdctl, the etcd3 client, the gateway. */
async function outcomes(learner: Member): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const client = new grpc.Client(learner.hostPort, grpc.credentials.createInsecure());
  try {
    for (const p of probes) out.set(`grpc ${p.name}`, await p.probe(client));
  } finally {
    client.close();
  }
  const lastLine = (s: string) => s.trim().split("\n").pop() ?? "";
  // etcdctl retries a refused read until its deadline (which error it then shows depends on
  // timing), a refused write it does not: a put and a serializable get
  for (const args of [
    ["put", "b", "2"],
    ["get", "a", "--consistency=s"],
  ]) {
    const r = await etcdctl(["--command-timeout=3s", ...args], { member: learner });
    out.set(`etcdctl ${args.join(" ")}`, r.code === 0 ? r.stdout.trim() : lastLine(r.stderr));
  }
  // a client each: etcd3's circuit breaker opens on the first UNAVAILABLE answer
  for (const [name, call] of [
    ["put", (c: Etcd3) => c.put("b").value("2")],
    ["serializable get", (c: Etcd3) => c.get("a").serializable(true).string()],
  ] as const) {
    const npm = new Etcd3({ hosts: learner.endpoint, dialTimeout: 3000 });
    try {
      out.set(
        `etcd3 ${name}`,
        await call(npm).then(
          (v) => `ok ${v === undefined ? "" : JSON.stringify(v)}`,
          (e: Error) => `${e.constructor.name}: ${e.message}`,
        ),
      );
    } finally {
      npm.close();
    }
  }
  for (const [path, body] of [
    ["/v3/kv/put", { key: "Yg==", value: "Mg==" }],
    ["/v3/kv/range", { key: "YQ==" }],
    ["/v3/watch", { create_request: { key: "YQ==" } }],
  ] as const) {
    const r = await httpRequest(learner.endpoint + path, {
      method: "POST",
      body: JSON.stringify(body),
    });
    out.set(`gateway ${path}`, `${r.status} ${r.body.trim()}`);
  }
  for (const [path, body] of [
    ["/v3/kv/range", { key: "YQ==", serializable: true }],
    ["/v3/maintenance/status", {}],
  ] as const) {
    const r = await httpRequest(learner.endpoint + path, {
      method: "POST",
      body: JSON.stringify(body),
    });
    out.set(`gateway ${path} ${JSON.stringify(body)}`, String(r.status));
  }
  return out;
}

describe("a learner serves only what etcd 3.4's learner serves", { timeout: 120_000 }, () => {
  const started: Member[] = [];
  let ours: Map<string, string> | undefined;
  after(async () => {
    await Promise.all(started.map((m) => m.close()));
  });

  test("etcd-ts: Status and serializable Range answer, everything else is refused", async (t) => {
    const { voter, learner } = await startWithLearner("etcd-ts");
    started.push(voter, learner);
    ours = await outcomes(learner);
    for (const [k, v] of ours) t.diagnostic(`${k} -> ${v}`);
    for (const p of probes) {
      assert.equal(ours.get(`grpc ${p.name}`), p.served ? "ok" : refused, p.name);
    }
    assert.match(ours.get("etcdctl put b 2")!, /etcdserver: rpc not supported for learner/);
    assert.match(ours.get("etcdctl get a --consistency=s")!, /^a\n1$/);
    assert.equal(ours.get("etcd3 serializable get"), 'ok "1"');
    // nothing the learner refused changed anything on the cluster
    const get = await etcdctl(["get", "b"], { member: voter });
    assert.equal(get.stdout, "", "the refused put did not happen");
  });

  test(
    "real etcd 3.4 answers every probe the same",
    { skip: existsSync(serverCommand("etcd").cmd) ? false : "no /usr/bin/etcd" },
    async () => {
      assert.ok(ours !== undefined, "the etcd-ts test ran first");
      const { voter, learner } = await startWithLearner("etcd");
      started.push(voter, learner);
      const theirs = await outcomes(learner);
      assert.deepEqual(Object.fromEntries(ours), Object.fromEntries(theirs));
    },
  );
});
