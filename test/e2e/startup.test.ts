// Issue 12 (start-up): a lone voter campaigns as soon as its log is applied instead of waiting out
// a randomised election timeout (etcd fast-forwards a single-member cluster's ticks to the last one
// before the election; a lone voter cannot split a vote, so etcd-ts campaigns at once). With an
// election timeout of 100 s, a member that waited for it would never pass startMember's 20 s bound.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { etcdctl, startMember, type Member } from "../helpers/server.js";

describe("start-up of a single member", { timeout: 90_000 }, () => {
  let member: Member | undefined;
  after(async () => {
    await member?.close();
  });

  test("a fresh member and a restarted one elect themselves without an election timeout", async () => {
    const slowElection = ["--heartbeat-interval", "1000", "--election-timeout", "100000"];
    member = await startMember({ name: "startup", extraArgs: slowElection });
    const put = await etcdctl(["put", "k", "v"], { member });
    assert.equal(put.code, 0, put.stderr);
    await member.restart();
    const get = await etcdctl(["get", "k", "--print-value-only"], { member });
    assert.equal(get.stdout, "v\n");
    assert.doesNotMatch(member.logTail(), /cannot campaign/);
  });
});
