// Server flags seen from real clients: --quota-backend-bytes raises the NOSPACE alarm and refuses
// writes with etcd's error (alarm list / disarm via etcdctl, survives a restart);
// --auto-compaction-mode periodic compacts old revisions; revision mode is accepted.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { GRPCResourceExhastedError } from "etcd3";
import {
  etcdctl,
  skipOnGrpcJsAuthority,
  startMember,
  waitFor,
  type Member,
} from "../helpers/server.js";
import { closeClient, newClient } from "../helpers/client.js";

/** A quota small enough to fill in a few dozen puts. */
const QUOTA_BYTES = 256 * 1024;
/** Bound on puts while filling the quota. */
const MAX_FILL_PUTS = 2000;
const FILL_VALUE_BYTES = 8 * 1024;

describe("--quota-backend-bytes: NOSPACE alarm", { timeout: 60_000 }, () => {
  let member: Member;

  before(async () => {
    member = await startMember({ extraArgs: ["--quota-backend-bytes", String(QUOTA_BYTES)] });
  });
  after(async () => {
    await member?.close();
  });

  test(
    "filling the quota fails puts with 'etcdserver: mvcc: database space exceeded' and raises NOSPACE",
    { skip: skipOnGrpcJsAuthority },
    async () => {
      const client = newClient(member, { noRetry: true });
      let failure: Error | undefined;
      let puts = 0;
      try {
        for (; puts < MAX_FILL_PUTS; puts++) {
          try {
            await client.put(`q/${puts}`).value(Buffer.alloc(FILL_VALUE_BYTES, "x")).exec();
          } catch (err) {
            failure = err as Error;
            break;
          }
        }
        assert.ok(failure, `no failure after ${puts} puts of ${FILL_VALUE_BYTES} bytes`);
        assert.ok(
          failure instanceof GRPCResourceExhastedError,
          `${failure.constructor.name}: ${failure.message}`,
        );
        assert.match(failure.message, /etcdserver: mvcc: database space exceeded/);
        // Reads and deletes still work; puts keep failing.
        assert.equal(await client.get("q/0").exists(), true);
        await assert.rejects(
          client.put("q/more").value("x").exec(),
          /etcdserver: mvcc: database space exceeded/,
        );
      } finally {
        closeClient(client);
      }
      const list = await etcdctl(["alarm", "list"], { member });
      assert.match(list.stdout, /^memberID:\d+ alarm:NOSPACE \n$/);
      const put = await etcdctl(["put", "x", "y"], { member });
      assert.notEqual(put.code, 0);
      assert.match(put.stderr, /Error: etcdserver: mvcc: database space exceeded/);
      const del = await etcdctl(["del", "q/0"], { member });
      assert.equal(del.stdout, "1\n");
      const status = await etcdctl(["endpoint", "status", "-w", "json"], { member });
      assert.match(status.stdout, /"errors":\["memberID:\d+ alarm:NOSPACE "\]/);
      // etcd 3.4's /health reports an active alarm as unhealthy.
      const health = await member.httpGet("/health");
      assert.equal(health.status, 503);
      assert.equal((JSON.parse(health.body) as { health: string }).health, "false");
    },
  );

  test(
    "the NOSPACE alarm survives a restart; disarm clears it",
    { skip: skipOnGrpcJsAuthority },
    async () => {
      // etcd's /health says false while an alarm is raised, so wait only for it to answer.
      await member.restart({ acceptUnhealthy: true });
      const list = await etcdctl(["alarm", "list"], { member });
      assert.match(list.stdout, /alarm:NOSPACE/);
      // Make room first (compact away history, delete the filler), then disarm.
      await etcdctl(["del", "--prefix", "q/"], { member });
      const rev = await etcdctl(["get", "x", "-w", "json"], { member });
      const revision = /"revision":(\d+)/.exec(rev.stdout)![1]!;
      assert.equal((await etcdctl(["compaction", "--physical", revision], { member })).code, 0);
      const defrag = await etcdctl(["defrag"], { member });
      assert.equal(defrag.code, 0, defrag.stderr);
      const disarm = await etcdctl(["alarm", "disarm"], { member });
      assert.equal(disarm.code, 0, disarm.stderr);
      assert.match(disarm.stdout, /^memberID:\d+ alarm:NOSPACE \n$/);
      assert.equal((await etcdctl(["alarm", "list"], { member })).stdout, "");
      const put = await etcdctl(["put", "x", "y"], { member });
      assert.equal(put.stdout, "OK\n", put.stderr);
      const health = await member.httpGet("/health");
      assert.deepEqual(JSON.parse(health.body), { health: "true" });
    },
  );
});

describe("--auto-compaction-mode", { timeout: 60_000 }, () => {
  const members: Member[] = [];
  after(async () => {
    for (const m of members) await m.close();
  });

  test("periodic with a 2s retention compacts revisions older than the window", async () => {
    const member = await startMember({
      extraArgs: ["--auto-compaction-mode", "periodic", "--auto-compaction-retention", "2s"],
    });
    members.push(member);
    const client = newClient(member);
    try {
      const first = await client.put("ac/k").value("1").exec();
      await client.put("ac/k").value("2").exec();
      await waitFor(
        "automatic compaction past the first put",
        async () => {
          await client.put("ac/tick").value("t").exec(); // keep revisions moving
          try {
            await client.get("ac/k").revision(first.header.revision).exec();
            return false;
          } catch (err) {
            assert.match(
              (err as Error).message,
              /etcdserver: mvcc: required revision has been compacted/,
            );
            return true;
          }
        },
        20_000,
        250,
      );
      assert.equal(await client.get("ac/k").string(), "2");
    } finally {
      closeClient(client);
    }
  });

  test("revision mode with a retention count is accepted and serves", async () => {
    const member = await startMember({
      extraArgs: ["--auto-compaction-mode", "revision", "--auto-compaction-retention", "100"],
    });
    members.push(member);
    const r = await etcdctl(["put", "k", "v"], { member });
    assert.equal(r.stdout, "OK\n", r.stderr);
  });
});
