// Maintenance and Cluster services through the `etcd3` npm client: Status with real figures,
// Alarm list, MemberList. (etcd3 1.1.2 cannot call HashKV: its method lookup fails, so HashKV is
// covered by `etcdctl endpoint hashkv` in test/e2e.)
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import type { Etcd3 } from "etcd3";
import { startMember, type Member } from "../helpers/server.js";
import { closeClient, newClient } from "../helpers/client.js";

describe("etcd3 client: Maintenance and Cluster", { timeout: 60_000 }, () => {
  let member: Member;
  let client: Etcd3;

  before(async () => {
    member = await startMember({ name: "maint-1" });
    client = newClient(member);
  });
  after(async () => {
    closeClient(client);
    await member?.close();
  });

  test("status reports version 3.4.x, a leader equal to this member, raft index and db size", async () => {
    await client.put("st/a").value("x").exec();
    const s = await client.maintenance.status();
    assert.match(s.version, /^3\.4\.\d+/);
    assert.equal(s.leader, s.header.member_id, "a single member leads itself");
    assert.ok(Number(s.dbSize) > 0);
    assert.ok(Number(s.raftIndex) >= 1);
    assert.ok(Number(s.raftTerm) >= 1);
    assert.equal(s.raftTerm, s.header.raft_term);
    const s2 = await (async () => {
      await client.put("st/b").value("y").exec();
      return client.maintenance.status();
    })();
    assert.ok(Number(s2.raftIndex) > Number(s.raftIndex), "a put advances the raft index");
    assert.ok(Number(s2.header.revision) === Number(s.header.revision) + 1);
  });

  test("alarm list is empty on a fresh member", async () => {
    const r = await client.maintenance.alarm({ action: "Get", memberID: 0, alarm: "None" });
    assert.deepEqual(r.alarms, []);
  });

  test("member list has this one member with its name and URLs", async () => {
    const r = await client.cluster.memberList({});
    assert.equal(r.members.length, 1);
    const m = r.members[0]!;
    assert.equal(m.name, "maint-1");
    assert.equal(m.ID, r.header.member_id);
    assert.deepEqual(m.clientURLs, [member.endpoint]);
    assert.deepEqual(m.peerURLs, [`http://127.0.0.1:${member.peerPort}`]);
    assert.equal(m.isLearner, false);
  });
});
