/**
 * Failpoints in a running member (issue 16): every registered point is reached by an ordinary
 * workload (puts, periodic snapshots, WAL rollover and purge, the bootstrap ConfChange); the HTTP
 * endpoint (`--experimental-failpoints-http`, off by default) sets terms at run time with curl
 * as gofail's; a `sleep` there stalls a put and a `panic` kills the member as kill -9; the
 * restart serves every acknowledged put. The simulated power loss keeps every acknowledged put
 * across kill -9.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { curl, startMember, waitFor, type Member } from "../helpers/server.js";
import { closeClient, newClient } from "../helpers/client.js";
import { failpointNames, singleMemberFailpointNames } from "../../lib/failpoint/index.js";

const allOff = failpointNames()
  .map((n) => `${n}=off`)
  .join(";");

async function putMany(member: Member, prefix: string, n: number): Promise<void> {
  const client = newClient(member);
  try {
    for (let i = 0; i < n; i++) {
      await client
        .put(`${prefix}/${String(i).padStart(4, "0")}`)
        .value("v".repeat(100))
        .exec();
    }
  } finally {
    await closeClient(client);
  }
}

async function countOf(member: Member, name: string): Promise<number> {
  const r = await member.httpGet(`/debug/failpoints/${name}/count`);
  assert.equal(r.status, 200, `${name}: ${r.body}`);
  return Number(r.body);
}

async function keysUnder(member: Member, prefix: string): Promise<number> {
  const client = newClient(member);
  try {
    return (await client.getAll().prefix(prefix).keys()).length;
  } finally {
    await closeClient(client);
  }
}

describe("failpoints in a member", { timeout: 120_000 }, () => {
  let member: Member;
  const env: Record<string, string> = { ETCD_TS_FAILPOINTS: allOff };
  before(async () => {
    member = await startMember({
      env,
      extraArgs: [
        "--experimental-failpoints-http",
        "--snapshot-count",
        "20",
        "--experimental-wal-segment-size-bytes",
        "8192",
        "--max-wals",
        "1",
      ],
    });
  });
  after(() => member?.close());

  test("every single-member failpoint is reached by puts, snapshots and WAL rollover", async () => {
    await putMany(member, "reach", 150);
    // the peer and received-snapshot points: test/e2e/cluster-partition.test.ts
    const unreached = new Set(singleMemberFailpointNames());
    await waitFor(
      `every failpoint reached (missing: ${[...unreached].join(", ")})`,
      async () => {
        for (const n of [...unreached]) if ((await countOf(member, n)) > 0) unreached.delete(n);
        return unreached.size === 0;
      },
      15_000,
    );
    const list = await member.httpGet("/debug/failpoints");
    assert.equal(list.status, 200);
    assert.deepEqual(
      list.body.trimEnd().split("\n"),
      failpointNames().map((n) => `${n}=off`),
    );
  });

  test("curl sets, reads and clears terms at run time; bad terms are refused with 400", async () => {
    const url = `${member.endpoint}/debug/failpoints/walBeforeSync`;
    const put = await curl(["-X", "PUT", "-d", "1*sleep(400)", "-w", "%{http_code}", url]);
    assert.equal(put.stdout, "204");
    assert.equal((await curl([url])).stdout, "1*sleep(400)\n");
    const t0 = performance.now();
    await putMany(member, "slow", 1);
    assert.ok(performance.now() - t0 >= 380, "the put waited for the sleeping fdatasync");
    const bad = await curl(["-X", "PUT", "-d", "explode", "-w", " %{http_code}", url]);
    assert.match(bad.stdout, /could not parse terms "explode".* 400$/s);
    const del = await curl(["-X", "DELETE", "-w", "%{http_code}", url]);
    assert.equal(del.stdout, "204");
    assert.equal((await curl([url])).stdout, "\n");
  });

  test("panic set over HTTP kills the member at the point; the restart serves every acked put", async () => {
    await putMany(member, "before-panic", 30);
    const r = await curl([
      "-X",
      "PUT",
      "-d",
      "panic",
      "-w",
      "%{http_code}",
      `${member.endpoint}/debug/failpoints/raftBeforeSave`,
    ]);
    assert.equal(r.stdout, "204");
    await putMany(member, "doomed", 1).catch(() => {});
    await waitFor("the member to die at raftBeforeSave", () => member.pid === 0, 10_000);
    assert.match(member.logTail(), /failpoint panic: raftBeforeSave/);
    delete env.ETCD_TS_FAILPOINTS;
    await member.restart();
    assert.equal(await keysUnder(member, "before-panic/"), 30);
    assert.equal(await keysUnder(member, "doomed/"), 0, "the put never reached the WAL");
  });
});

test("the failpoint endpoint is off by default", async () => {
  const member = await startMember();
  try {
    const r = await member.httpGet("/debug/failpoints");
    assert.equal(r.status, 404);
  } finally {
    await member.close();
  }
});

test("simulated power loss: kill -9 keeps every acknowledged put, across snapshots", async () => {
  const member = await startMember({
    extraArgs: ["--experimental-simulate-power-loss", "--snapshot-count", "25"],
  });
  try {
    assert.match(member.logTail(), /TEST MODE: simulated power loss/);
    for (let round = 0; round < 3; round++) {
      await putMany(member, `round${round}`, 40);
      await member.kill9();
      await member.restart();
      for (let r = 0; r <= round; r++) assert.equal(await keysUnder(member, `round${r}/`), 40);
    }
  } finally {
    await member.close();
  }
});
