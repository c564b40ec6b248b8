// etcd 3.4's v2 Request entries (v2-request.ts): the fallback decode etcd's applyEntryNormal does,
// the InternalRaftRequest.v2 form, and what applying them changes (member attributes, cluster
// version) or leaves alone (any other v2 path). The v2 store JSON of a .snap reads back the
// members it was written with.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { InternalRaftRequest } from "../../lib/proto/gen/etcdserverpb/raft_internal.js";
import { Request as V2Request } from "../../lib/proto/gen/etcdserverpb/etcdserver.js";
import { EntryType } from "../../lib/proto/gen/raftpb/raft.js";
import { WAL } from "../../lib/wal/index.js";
import { applyV2Request, decodeEntryData } from "../../lib/server/v2-request.js";
import { decodeV2StoreMembers, encodeV2StoreSnapshot } from "../../lib/server/v2-store.js";
import type { MemberRecord } from "../../lib/server/membership.js";
import { repoRoot } from "../helpers/server.js";

function v2(method: string, path: string, val: string): V2Request {
  return V2Request.create({ iD: 7n, method, path, val });
}

function target(members: MemberRecord[]) {
  const map = new Map(members.map((m) => [m.id, { ...m }]));
  const out = { members: map, version: "", ignored: [] as string[] };
  return {
    out,
    t: {
      members: map,
      setClusterVersion: (v: string) => (out.version = v),
      ignored: (r: V2Request, why: string) => out.ignored.push(`${r.path}: ${why}`),
    },
  };
}

const member: MemberRecord = {
  id: 0x866e9665bbc7041fn,
  name: "",
  peerUrls: ["http://127.0.0.1:2380"],
  clientUrls: [],
  isLearner: false,
};

test("the etcd 3.4 fixture's normal entries decode: v2 Requests fall back, client requests are v3", async () => {
  const dir = join(repoRoot(), "test", "fixtures", "etcd-3.4-wal");
  const r = await WAL.read(dir);
  const kinds = r.entries
    .filter((e) => e.type === EntryType.EntryNormal && e.data.length > 0)
    .map((e) => {
      const d = decodeEntryData(e.data);
      return d.kind === "v2" ? `v2 ${d.request.method} ${d.request.path}` : "v3";
    });
  assert.equal(kinds.filter((k) => k === "v3").length, 4);
  assert.ok(
    kinds.some((k) => /^v2 PUT \/0\/members\/[0-9a-f]+\/attributes$/.test(k)),
    kinds.join(),
  );
  assert.ok(kinds.includes("v2 PUT /0/version"), kinds.join());
});

test("InternalRaftRequest.v2 is taken as the v2 request; garbage is an error naming both types", () => {
  const inner = v2("PUT", "/0/version", "3.4.0");
  const d = decodeEntryData(
    InternalRaftRequest.toBinary(InternalRaftRequest.create({ v2: inner })),
  );
  assert.equal(d.kind, "v2");
  assert.throws(
    () => decodeEntryData(Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0xff])),
    /neither an InternalRaftRequest .* nor a v2 Request/,
  );
});

test("applying: attributes set a member's name and client URLs, /0/version the cluster version", () => {
  const { out, t } = target([member]);
  applyV2Request(
    v2(
      "PUT",
      `/0/members/${member.id.toString(16)}/attributes`,
      '{"name":"m1","clientURLs":["http://127.0.0.1:2379"]}',
    ),
    t,
  );
  applyV2Request(v2("PUT", "/0/version", "3.4.0"), t);
  assert.deepEqual(out.members.get(member.id), {
    ...member,
    name: "m1",
    clientUrls: ["http://127.0.0.1:2379"],
  });
  assert.equal(out.version, "3.4.0");
  assert.deepEqual(out.ignored, []);
});

test("applying: other paths, methods, unknown members and bad JSON change nothing and are reported", () => {
  const { out, t } = target([member]);
  applyV2Request(v2("PUT", "/1/foo", "bar"), t);
  applyV2Request(v2("DELETE", "/0/version", ""), t);
  applyV2Request(v2("PUT", "/0/members/abc/attributes", '{"name":"x"}'), t);
  applyV2Request(v2("PUT", `/0/members/${member.id.toString(16)}/attributes`, "{"), t);
  assert.equal(out.ignored.length, 4);
  assert.deepEqual(out.members.get(member.id), member);
  assert.equal(out.version, "");
});

test("the .snap v2 store JSON reads back its members", () => {
  const members: MemberRecord[] = [
    { ...member, name: "m1", clientUrls: ["http://127.0.0.1:2379"] },
    { id: 0x10n, name: "", peerUrls: ["http://127.0.0.1:3380"], clientUrls: [], isLearner: true },
  ];
  const json = encodeV2StoreSnapshot(members, [0x99n], "3.4.0");
  const parsed = JSON.parse(json.toString()) as {
    WatcherHub: { EventHistory: { Queue: { Events: unknown[]; Capacity: number } } };
    Root: { Children: { "0": { Children: { version: { Value: string } } } } };
  };
  assert.equal(parsed.WatcherHub.EventHistory.Queue.Events.length, 1000);
  assert.equal(parsed.Root.Children["0"].Children.version.Value, "3.4.0");
  const back = decodeV2StoreMembers(json)!;
  assert.deepEqual(
    back.sort((a, b) => (a.id < b.id ? -1 : 1)),
    [...members].sort((a, b) => (a.id < b.id ? -1 : 1)),
  );
  assert.equal(decodeV2StoreMembers(Buffer.from("not json")), undefined);
});
