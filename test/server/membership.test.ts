import { test } from "node:test";
import assert from "node:assert/strict";
import {
  computeClusterId,
  computeMemberId,
  parseInitialCluster,
} from "../../lib/server/membership.js";

test("member id of etcd's default single member matches real etcd (8e9e05c52164694d)", () => {
  // `etcd` with no flags reports member 8e9e05c52164694d in cluster cdf818194e3a8c32
  const id = computeMemberId(["http://localhost:2380"], "etcd-cluster");
  assert.equal(id.toString(16), "8e9e05c52164694d");
  assert.equal(computeClusterId([id]).toString(16), "cdf818194e3a8c32");
});

test("parseInitialCluster groups several URLs per name and sorts them for the id", () => {
  const members = parseInitialCluster(
    "a=http://127.0.0.1:2380,b=http://127.0.0.1:2381,a=http://127.0.0.1:2382",
    "tok",
  );
  assert.equal(members.length, 2);
  assert.deepEqual(members[0].peerUrls, ["http://127.0.0.1:2380", "http://127.0.0.1:2382"]);
  assert.equal(
    members[0].id,
    computeMemberId(["http://127.0.0.1:2382", "http://127.0.0.1:2380"], "tok"),
  );
});

test("parseInitialCluster rejects an entry without a name", () => {
  assert.throws(() => parseInitialCluster("=http://x:1", "t"), /invalid initial-cluster entry/);
});
