/**
 * Raft.forgetLeader (etcd-io/raft's ForgetLeader, learnt from its testdata/forget_leader*.txt): a
 * follower drops its leader without campaigning, so with PreVote+CheckQuorum it grants votes at
 * once instead of refusing them inside the leader's lease.
 */
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { MessageType } from "../../lib/proto/gen/raftpb/raft.js";
import { None, StateType } from "../../lib/raft/index.js";
import { Network } from "./network.js";

const raftOf = (net: Network, id: number) => net.get(id).node.raft;
const opts = { preVote: true, checkQuorum: true };

/** A 3-node cluster with PreVote+CheckQuorum whose leader is 1 and whose followers just heard from it. */
function cluster(): Network {
  const net = new Network(3, opts);
  net.campaign(1);
  net.tick(1); // a heartbeat round: both followers are inside 1's lease
  net.stabilize();
  assert.equal(raftOf(net, 1).state, StateType.Leader);
  return net;
}

describe("forgetLeader", () => {
  test("without it, followers inside the lease refuse a campaign while the leader is dead", () => {
    const net = cluster();
    const term = raftOf(net, 1).term;
    net.isolate(1);
    net.campaign(3);
    assert.notEqual(raftOf(net, 3).state, StateType.Leader);
    assert.equal(raftOf(net, 2).lead, 1n);
    assert.equal(raftOf(net, 3).term, term);
  });

  test("a quorum of followers forgetting the dead leader lets a pre-vote campaign win at once", () => {
    const net = cluster();
    const term = raftOf(net, 1).term;
    net.isolate(1);
    assert.equal(net.get(2).node.forgetLeader(), true);
    assert.equal(net.get(3).node.forgetLeader(), true);
    for (const id of [2, 3]) {
      assert.equal(raftOf(net, id).state, StateType.Follower, "forgetting does not campaign");
      assert.equal(raftOf(net, id).lead, None);
      assert.equal(raftOf(net, id).term, term, "forgetting keeps the term");
    }
    const rd = net.get(2).node.ready();
    assert.equal(rd.softState?.lead, None, "the Ready reports no leader");
    net.get(2).node.advance(rd);
    net.campaign(3); // no tick: nobody waited out an election timeout
    assert.equal(raftOf(net, 3).state, StateType.Leader);
    assert.equal(raftOf(net, 3).term, term + 1);
    assert.equal(raftOf(net, 2).lead, 3n);
    // the election went through pre-vote first
    assert.ok(net.log.some((m) => m.type === MessageType.MsgPreVote && m.from === 3n));
  });

  test("the campaigner alone need not forget: one other follower forgetting is a quorum", () => {
    const net = cluster();
    net.isolate(1);
    net.get(2).node.forgetLeader();
    net.campaign(3);
    assert.equal(raftOf(net, 3).state, StateType.Leader);
  });

  test("a single follower forgetting a live leader does not disrupt it", () => {
    const net = cluster();
    const term = raftOf(net, 1).term;
    net.get(2).node.forgetLeader();
    net.campaign(2);
    // 1 (the leader) and 3 (inside the lease) ignore 2's pre-vote: no new term anywhere
    assert.equal(raftOf(net, 1).state, StateType.Leader);
    for (const id of [1, 2, 3]) assert.equal(raftOf(net, id).term, term);
    net.tick(1);
    net.stabilize();
    assert.equal(raftOf(net, 2).state, StateType.Follower);
    assert.equal(raftOf(net, 2).lead, 1n);
    net.propose(1, "still-leading");
    for (const id of [1, 2, 3]) assert.deepEqual(net.appliedData(id), ["still-leading"]);
  });

  test("hearing from the leader again restores the follower", () => {
    const net = cluster();
    net.get(2).node.forgetLeader();
    assert.equal(raftOf(net, 2).lead, None);
    net.tick(1); // heartbeat
    net.stabilize();
    assert.equal(raftOf(net, 2).lead, 1n);
    assert.equal(raftOf(net, 2).state, StateType.Follower);
    assert.equal(net.get(2).node.status().softState.lead, 1n);
  });

  test("forgetting again, or on a leader or a candidate, does nothing", () => {
    const net = cluster();
    assert.equal(net.get(2).node.forgetLeader(), true);
    assert.equal(net.get(2).node.forgetLeader(), false);
    assert.equal(net.get(1).node.forgetLeader(), false);
    assert.equal(raftOf(net, 1).lead, 1n);
    assert.equal(raftOf(net, 1).state, StateType.Leader);
    net.isolate(3);
    net.get(3).node.campaign();
    const before = { state: raftOf(net, 3).state, term: raftOf(net, 3).term };
    assert.equal(before.state, StateType.PreCandidate);
    assert.equal(net.get(3).node.forgetLeader(), false);
    assert.deepEqual({ state: raftOf(net, 3).state, term: raftOf(net, 3).term }, before);
  });

  test("a forgetting follower still refuses a candidate whose log is behind", () => {
    const net = cluster();
    net.isolate(2);
    net.propose(1, "x"); // 1 and 3 have it, 2 does not
    net.heal();
    net.isolate(1);
    net.get(3).node.forgetLeader();
    net.campaign(2);
    assert.notEqual(raftOf(net, 2).state, StateType.Leader);
  });

  test("the election timeout runs on unchanged", () => {
    const net = cluster();
    net.isolate(1);
    const r = raftOf(net, 2);
    net.tick(2, 3);
    const elapsed = r.electionElapsed;
    net.get(2).node.forgetLeader();
    assert.equal(r.electionElapsed, elapsed);
  });

  test("ignored with lease-based reads", () => {
    const net = new Network(3, { ...opts, readOnlyOption: "lease-based" });
    net.campaign(1);
    assert.equal(net.get(2).node.forgetLeader(), false);
    assert.equal(raftOf(net, 2).lead, 1n);
  });
});
