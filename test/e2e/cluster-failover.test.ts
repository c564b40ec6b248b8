// Failover after the leader's process dies (issue 14's failover goal): SIGKILL the leader of a
// 3-member etcd-ts cluster with etcd's default timing (heartbeat 100 ms, election timeout 1000 ms);
// the followers' redial of its peer port is refused (ECONNREFUSED), they forget the leader
// (raft's forgetLeader, after etcd-io/raft's ForgetLeader) and one of them campaigns at once, so
// a new leader is elected without waiting out the randomised election timeout. The test asserts
// the new leader and the forgetting (log line, etcd_ts_leader_forgotten_total), not the time,
// which it only prints.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { type Member, TARGET, etcdctl, sleep } from "../helpers/server.js";
import { type Cluster, startCluster } from "../helpers/cluster.js";

const forgetLine = "leader's peer port refuses connections; forgetting leader";

async function forgottenTotal(m: Member): Promise<number> {
  const body = (await m.httpGet("/metrics")).body;
  const line = body.split("\n").find((l) => l.startsWith("etcd_ts_leader_forgotten_total "));
  return line === undefined ? 0 : Number(line.split(" ")[1]);
}

describe("failover: the leader SIGKILLed", { timeout: 60_000, skip: TARGET === "etcd" }, () => {
  let c: Cluster;

  before(async () => {
    c = await startCluster({ size: 3 });
  });
  after(async () => {
    await c?.close();
  });

  test("the followers forget the dead leader and elect another without waiting out the election timeout", async (t) => {
    const old = await c.leader();
    const followers = c.members.filter((m) => m !== old);
    // a write, so that every member has heard from the leader recently (inside its lease)
    const first = await etcdctl(["put", "failover/before", "1"], { member: followers[0]! });
    assert.equal(first.code, 0, first.stderr);
    await sleep(300); // the peer connections have been up for a while
    for (const m of followers) assert.equal(await forgottenTotal(m), 0);
    const killedAt = Date.now();
    await old.kill9();
    const lead = await c.leader(20_000, followers);
    const electedMs = Date.now() - killedAt;
    let putMs = -1;
    for (let i = 0; i < 100 && putMs < 0; i++) {
      const r = await etcdctl(["put", "failover/after", "2", "--command-timeout=3s"], {
        member: followers[i % 2]!,
      });
      if (r.code === 0) putMs = Date.now() - killedAt;
    }
    assert.ok(putMs >= 0, "a put succeeds after the failover");
    t.diagnostic(
      `new leader ${lead.name} agreed ${electedMs} ms and a put succeeded ${putMs} ms after SIGKILL (election timeout 1000 ms)`,
    );
    const counts = await Promise.all(followers.map(forgottenTotal));
    t.diagnostic(`etcd_ts_leader_forgotten_total per follower: ${counts.join(", ")}`);
    const logged = followers.filter((m) => readFileSync(m.logFile, "utf8").includes(forgetLine));
    if (!counts.some((n) => n >= 1) || logged.length === 0) {
      for (const m of followers) {
        // what each follower saw of the dead leader's peer port, for the diagnosis
        const seen = readFileSync(m.logFile, "utf8")
          .split("\n")
          .filter((l) => /remote peer|forgetting|elected leader|lost leader/.test(l));
        t.diagnostic(`${m.name}:\n${seen.slice(-12).join("\n")}`);
      }
    }
    assert.ok(
      counts.some((n) => n >= 1),
      "a follower forgot the leader",
    );
    assert.ok(logged.length >= 1, `"${forgetLine}" logged`);
    await old.restart();
    await c.leader(20_000);
  });
});
