/** Unit tests of individual Raft rules, scenarios learnt from etcd-io/raft's raft_test.go and testdata. */
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import {
  ConfChange,
  ConfChangeType,
  EntryType,
  type Message,
  MessageType,
} from "../../lib/proto/gen/raftpb/raft.js";
import {
  ErrProposalDropped,
  ErrStepLocalMsg,
  ErrStepPeerNotFound,
  StateType,
} from "../../lib/raft/index.js";
import { newMessage } from "../../lib/raft/raft.js";
import { Network } from "./network.js";

const enc = (s: string) => new TextEncoder().encode(s);
const state = (net: Network, id: number) => net.get(id).node.raft.state;

describe("elections", () => {
  test("campaign in a 3-node cluster elects the candidate with a majority", () => {
    const net = new Network(3);
    net.campaign(1);
    assert.equal(state(net, 1), StateType.Leader);
    assert.equal(state(net, 2), StateType.Follower);
    assert.equal(net.get(2).node.raft.lead, 1n);
    assert.equal(net.get(1).node.raft.term, 2);
  });

  test("a follower campaigns after its randomised election timeout", () => {
    const net = new Network(3);
    net.tickAll(25);
    const leaders = [1, 2, 3].filter((i) => state(net, i) === StateType.Leader);
    assert.equal(leaders.length, 1);
  });

  test("a candidate with a shorter log loses (§5.4.1 election restriction)", () => {
    const net = new Network(3);
    net.campaign(1);
    net.isolate(3);
    net.propose(1, "a");
    net.heal();
    // 3 missed "a": its vote requests are rejected by 1 and 2.
    net.campaign(3);
    assert.notEqual(state(net, 3), StateType.Leader);
    assert.ok(net.log.some((m) => m.type === MessageType.MsgVoteResp && m.to === 3n && m.reject));
  });

  test("a node votes at most once per term", () => {
    const net = new Network(3);
    const r = net.get(3).node.raft;
    r.step(
      newMessage({ type: MessageType.MsgVote, from: 1n, to: 3n, term: 5, index: 10, logTerm: 5 }),
    );
    r.step(
      newMessage({ type: MessageType.MsgVote, from: 2n, to: 3n, term: 5, index: 10, logTerm: 5 }),
    );
    const resps = r.msgs.filter((m) => m.type === MessageType.MsgVoteResp);
    assert.deepEqual(
      resps.map((m) => [m.to, m.reject]),
      [
        [1n, false],
        [2n, true],
      ],
    );
    assert.equal(r.vote, 1n);
  });

  test("the vote is in the HardState handed out before the vote response", () => {
    const net = new Network(3);
    const tn = net.get(2);
    tn.node.step(
      newMessage({ type: MessageType.MsgVote, from: 1n, to: 2n, term: 5, index: 10, logTerm: 5 }),
    );
    const rd = tn.node.ready();
    assert.equal(rd.hardState?.vote, 1n);
    assert.equal(rd.mustSync, true);
    assert.ok(rd.messages.some((m) => m.type === MessageType.MsgVoteResp && !m.reject));
  });

  test("pre-vote: an isolated node does not raise its term", () => {
    const net = new Network(3, { preVote: true });
    net.campaign(1);
    net.isolate(3);
    const before = net.get(3).node.raft.term;
    net.tickAll(50);
    assert.equal(net.get(3).node.raft.term, before);
    assert.equal(state(net, 3), StateType.PreCandidate);
    net.heal();
    net.tickAll(5);
    assert.equal(state(net, 1), StateType.Leader, "rejoining node does not disrupt the leader");
  });

  test("without pre-vote an isolated node's higher term disrupts the leader on rejoin", () => {
    const net = new Network(3);
    net.campaign(1);
    net.isolate(3);
    net.tickAll(50);
    assert.ok(net.get(3).node.raft.term > net.get(1).node.raft.term);
  });

  test("check-quorum: a leader that cannot hear a quorum steps down", () => {
    const net = new Network(3, { checkQuorum: true });
    net.campaign(1);
    net.isolate(1);
    net.tick(1, 25);
    net.stabilize();
    assert.equal(state(net, 1), StateType.Follower);
  });

  test("check-quorum: followers in lease ignore a disruptive vote request", () => {
    const net = new Network(3, { checkQuorum: true });
    net.campaign(1);
    const r = net.get(2).node.raft;
    const term = r.term;
    r.step(
      newMessage({
        type: MessageType.MsgVote,
        from: 3n,
        to: 2n,
        term: term + 1,
        index: 100,
        logTerm: 100,
      }),
    );
    assert.equal(r.term, term);
    assert.equal(r.lead, 1n);
  });

  test("a stale leader steps down when it hears a higher term", () => {
    const net = new Network(3);
    net.campaign(1);
    net.isolate(1);
    net.campaign(2);
    net.heal();
    net.propose(2, "x");
    net.tickAll(3);
    assert.equal(state(net, 1), StateType.Follower);
    assert.equal(net.get(1).node.raft.lead, 2n);
  });
});

describe("replication and commit", () => {
  test("proposals commit on a majority and apply in order everywhere", () => {
    const net = new Network(3);
    net.campaign(1);
    for (const s of ["a", "b", "c"]) net.propose(1, s);
    for (const id of [1, 2, 3]) assert.deepEqual(net.appliedData(id), ["a", "b", "c"]);
  });

  test("a follower forwards proposals to the leader", () => {
    const net = new Network(3);
    net.campaign(1);
    net.propose(2, "via-follower");
    assert.deepEqual(net.appliedData(1), ["via-follower"]);
  });

  test("proposal forwarding can be disabled", () => {
    const net = new Network(3, { disableProposalForwarding: true });
    net.campaign(1);
    assert.throws(() => net.get(2).node.propose(enc("x")), ErrProposalDropped);
  });

  test("a leader does not commit an entry of an earlier term by counting replicas (§5.4.2)", () => {
    const net = new Network(3);
    net.campaign(1);
    net.isolate(1);
    net.get(1).node.propose(enc("old")); // only on node 1, term 2
    net.stabilize();
    const r1 = net.get(1).node.raft;
    const oldIndex = r1.raftLog.lastIndex();
    const oldTerm = r1.term;
    // Node 1 wins a later term (its log is the most up to date) and appends its empty entry.
    r1.becomeFollower(r1.term, 0n);
    r1.becomeCandidate();
    r1.becomeLeader();
    assert.ok(r1.term > oldTerm);
    const pr2 = r1.trk.progress.get(2n)!;
    pr2.maybeUpdate(oldIndex); // a majority (1 and 2) now holds the old-term entry...
    r1.trk.progress.get(1n)!.maybeUpdate(r1.raftLog.lastIndex());
    assert.equal(r1.maybeCommit(), false, "...but counting replicas must not commit it");
    assert.ok(r1.raftLog.committed < oldIndex);
    pr2.maybeUpdate(oldIndex + 1); // once an entry of the current term is on a majority
    assert.equal(r1.maybeCommit(), true);
    assert.equal(r1.raftLog.committed, oldIndex + 1);
  });

  test("a follower's conflicting suffix is overwritten by the leader's log", () => {
    const net = new Network(3);
    net.campaign(1);
    net.isolate(1);
    net.get(1).node.propose(enc("lost1"));
    net.get(1).node.propose(enc("lost2"));
    net.stabilize();
    net.heal();
    net.isolate(1);
    net.campaign(2);
    net.propose(2, "kept");
    net.heal();
    net.tickAll(3);
    for (const id of [1, 2, 3]) assert.deepEqual(net.appliedData(id), ["kept"]);
    const l1 = net.get(1).node.raft.raftLog;
    const l2 = net.get(2).node.raft.raftLog;
    assert.equal(l1.lastIndex(), l2.lastIndex());
  });

  test("reject hints let the leader skip a whole divergent term in one round trip", () => {
    const net = new Network(3, { maxSizePerMsg: 1 << 20 });
    net.campaign(1);
    net.isolate(3);
    for (let i = 0; i < 30; i++) net.get(1).node.propose(enc(`e${i}`));
    net.stabilize();
    net.heal();
    net.log = [];
    net.tickAll(2);
    const rejects = net.log.filter(
      (m) => m.type === MessageType.MsgAppResp && m.from === 3n && m.reject,
    );
    assert.ok(rejects.length <= 1, `rejections: ${rejects.length}`);
    assert.equal(net.appliedData(3).length, 30);
  });

  test("maxSizePerMsg bounds the entries in one MsgApp", () => {
    const net = new Network(2, { maxSizePerMsg: 100 });
    net.campaign(1);
    net.isolate(2);
    for (let i = 0; i < 20; i++) net.get(1).node.propose(new Uint8Array(30));
    net.stabilize();
    net.heal();
    net.log = [];
    net.tickAll(3);
    const apps = net.log.filter((m) => m.type === MessageType.MsgApp && m.entries.length > 0);
    assert.ok(apps.length > 1);
    for (const m of apps)
      assert.ok(m.entries.length <= 2, `MsgApp with ${m.entries.length} entries`);
  });

  test("the inflights window pauses a Replicate follower until acks arrive", () => {
    const net = new Network(2, { maxInflightMsgs: 2 });
    net.campaign(1);
    const r1 = net.get(1).node.raft;
    net.dropTypes.add(MessageType.MsgAppResp);
    for (let i = 0; i < 5; i++) {
      net.get(1).node.propose(enc(`x${i}`));
      net.stabilize();
    }
    const pr = r1.trk.progress.get(2n)!;
    assert.equal(pr.state, 1 /* Replicate */);
    assert.equal(pr.inflights.count(), 2);
    assert.ok(pr.isPaused());
    net.heal();
    net.tickAll(3);
    assert.equal(net.appliedData(2).length, 5);
  });

  test("maxInflightBytes bounds the bytes in flight", () => {
    const net = new Network(2, { maxInflightBytes: 100, maxInflightMsgs: 100 });
    net.campaign(1);
    net.dropTypes.add(MessageType.MsgAppResp);
    for (let i = 0; i < 5; i++) {
      net.get(1).node.propose(new Uint8Array(60));
      net.stabilize();
    }
    const pr = net.get(1).node.raft.trk.progress.get(2n)!;
    assert.ok(pr.inflights.count() <= 2, `in flight ${pr.inflights.count()}`);
  });

  test("maxUncommittedEntriesSize drops proposals beyond the limit", () => {
    const net = new Network(3, { maxUncommittedEntriesSize: 100 });
    net.campaign(1);
    net.isolate(1);
    net.get(1).node.propose(new Uint8Array(60));
    assert.throws(() => net.get(1).node.propose(new Uint8Array(60)), ErrProposalDropped);
  });
});

describe("flow control", () => {
  test("reportUnreachable drops a Replicate follower back to Probe", () => {
    const net = new Network(2);
    net.campaign(1);
    net.propose(1, "a");
    const pr = net.get(1).node.raft.trk.progress.get(2n)!;
    assert.equal(pr.state, 1 /* Replicate */);
    net.get(1).node.reportUnreachable(2n);
    assert.equal(pr.state, 0 /* Probe */);
  });

  test("heartbeats never carry a commit index beyond the follower's match", () => {
    const net = new Network(3);
    net.campaign(1);
    net.isolate(3);
    net.propose(1, "a");
    net.heal();
    net.dropTypes.add(MessageType.MsgApp);
    net.log = [];
    net.tickAll(2);
    const hb = net.log.filter((m) => m.type === MessageType.MsgHeartbeat && m.to === 3n);
    assert.ok(hb.length > 0);
    const match3 = net.get(1).node.raft.trk.progress.get(3n)!.match;
    for (const m of hb) assert.ok(m.commit <= match3);
  });
});

describe("read index", () => {
  test("a leader answers ReadIndex after a heartbeat quorum, with its commit index", () => {
    const net = new Network(3);
    net.campaign(1);
    net.propose(1, "a");
    net.get(1).node.readIndex(enc("ctx1"));
    net.stabilize();
    const rs = net.get(1).readStates;
    assert.equal(rs.length, 1);
    assert.equal(rs[0]!.index, net.get(1).node.raft.raftLog.committed);
  });

  test("a follower's ReadIndex is forwarded to the leader and answered to it", () => {
    const net = new Network(3);
    net.campaign(1);
    net.get(2).node.readIndex(enc("ctx2"));
    net.stabilize();
    assert.equal(net.get(2).readStates.length, 1);
    assert.deepEqual(net.get(2).readStates[0]!.requestCtx, enc("ctx2"));
  });

  test("a partitioned leader cannot answer ReadIndex (safe mode)", () => {
    const net = new Network(3);
    net.campaign(1);
    net.isolate(1);
    net.get(1).node.readIndex(enc("ctx3"));
    net.stabilize();
    assert.equal(net.get(1).readStates.length, 0);
  });

  test("a new leader delays ReadIndex until it commits an entry of its term (thesis §6.4)", () => {
    const net = new Network(3);
    net.campaign(1);
    net.dropTypes.add(MessageType.MsgAppResp);
    net.get(2).node.campaign();
    net.stabilize();
    assert.equal(state(net, 2), StateType.Leader);
    net.get(2).node.readIndex(enc("ctx4"));
    net.stabilize();
    assert.equal(net.get(2).readStates.length, 0);
    net.heal();
    net.tickAll(2);
    assert.equal(net.get(2).readStates.length, 1);
  });

  test("lease-based reads are answered by the leader without a heartbeat round", () => {
    const net = new Network(3, { checkQuorum: true, readOnlyOption: "lease-based" });
    net.campaign(1);
    net.log = [];
    net.get(1).node.readIndex(enc("lease"));
    net.stabilize();
    assert.equal(net.get(1).readStates.length, 1);
    assert.ok(!net.log.some((m) => m.type === MessageType.MsgHeartbeat));
  });

  test("lease-based reads require check-quorum", () => {
    assert.throws(() => new Network(1, { readOnlyOption: "lease-based" }));
  });
});

describe("leader transfer", () => {
  test("transferLeader hands leadership to an up-to-date follower via MsgTimeoutNow", () => {
    const net = new Network(3);
    net.campaign(1);
    net.propose(1, "a");
    net.get(1).node.transferLeader(3n);
    net.stabilize();
    assert.equal(state(net, 3), StateType.Leader);
    assert.equal(state(net, 1), StateType.Follower);
    assert.ok(net.log.some((m) => m.type === MessageType.MsgTimeoutNow && m.to === 3n));
  });

  test("proposals are dropped while a transfer is in progress", () => {
    const net = new Network(3);
    net.campaign(1);
    net.isolate(3);
    net.get(1).node.transferLeader(3n);
    assert.throws(() => net.get(1).node.propose(enc("x")), ErrProposalDropped);
  });

  test("an unfinished transfer is aborted after an election timeout", () => {
    const net = new Network(3);
    net.campaign(1);
    net.isolate(3);
    net.get(1).node.transferLeader(3n);
    net.tickAll(12);
    assert.equal(net.get(1).node.raft.leadTransferee, 0n);
    net.propose(1, "after");
    assert.deepEqual(net.appliedData(1), ["after"]);
  });
});

describe("membership", () => {
  const cc = (type: ConfChangeType, id: bigint) => ConfChange.create({ type, nodeID: id });

  test("a learner receives the log but has no vote in the quorum and never campaigns", () => {
    const net = new Network(2);
    net.campaign(1);
    net.add(3n);
    net.get(1).node.proposeConfChange(cc(ConfChangeType.ConfChangeAddLearnerNode, 3n));
    net.stabilize();
    net.propose(1, "a");
    assert.deepEqual(net.appliedData(3), ["a"]);
    assert.equal(net.get(3).node.raft.isLearner, true);
    net.isolate(1);
    net.tick(3, 50);
    net.stabilize();
    assert.notEqual(state(net, 3), StateType.Candidate);
  });

  test("a learner is promoted to voter by ConfChangeAddNode", () => {
    const net = new Network(2);
    net.campaign(1);
    net.add(3n);
    net.get(1).node.proposeConfChange(cc(ConfChangeType.ConfChangeAddLearnerNode, 3n));
    net.stabilize();
    net.get(1).node.proposeConfChange(cc(ConfChangeType.ConfChangeAddNode, 3n));
    net.stabilize();
    assert.deepEqual(net.get(1).node.raft.trk.confState().voters, [1n, 2n, 3n]);
    assert.equal(net.get(3).node.raft.isLearner, false);
  });

  test("only one conf change may be pending: a second one becomes an empty entry", () => {
    const net = new Network(3);
    net.campaign(1);
    net.isolate(1);
    net.get(1).node.proposeConfChange(cc(ConfChangeType.ConfChangeAddLearnerNode, 4n));
    net.get(1).node.proposeConfChange(cc(ConfChangeType.ConfChangeAddLearnerNode, 5n));
    net.stabilize();
    const ents = net.get(1).node.raft.raftLog.allEntries();
    assert.equal(ents.filter((e) => e.type === EntryType.EntryConfChange && e.index > 3).length, 1);
  });

  test("removing a voter shrinks the quorum so commits go on", () => {
    const net = new Network(3);
    net.campaign(1);
    net.get(1).node.proposeConfChange(cc(ConfChangeType.ConfChangeRemoveNode, 3n));
    net.stabilize();
    assert.deepEqual(net.get(1).node.raft.trk.confState().voters, [1n, 2n]);
    // With 3 gone, 1 and 2 are a majority of the new configuration.
    net.isolate(3);
    net.propose(1, "after-remove");
    assert.deepEqual(net.appliedData(1), ["after-remove"]);
    assert.deepEqual(net.appliedData(2), ["after-remove"]);
  });

  test("a removed leader steps down", () => {
    const net = new Network(3);
    net.campaign(1);
    net.get(1).node.proposeConfChange(cc(ConfChangeType.ConfChangeRemoveNode, 1n));
    net.stabilize();
    assert.equal(state(net, 1), StateType.Follower);
  });

  test("removing the last voter is refused", () => {
    const net = new Network(1);
    net.campaign(1);
    net.get(1).node.proposeConfChange(cc(ConfChangeType.ConfChangeRemoveNode, 1n));
    net.stabilize();
    assert.deepEqual(net.get(1).node.raft.trk.confState().voters, [1n]);
  });
});

describe("snapshots", () => {
  test("a follower behind the compacted log is restored from a snapshot, then replicates", () => {
    const net = new Network(3);
    net.campaign(1);
    net.isolate(3);
    for (let i = 0; i < 10; i++) net.propose(1, `s${i}`);
    const l = net.get(1);
    const applied = l.node.raft.raftLog.applied;
    l.storage.createSnapshot(applied, l.node.raft.trk.confState(), enc("state"));
    l.storage.compact(applied);
    net.heal();
    net.tickAll(3);
    // Snapshot status report, as the transport does after sending.
    net.get(1).node.reportSnapshot(3n, "finish");
    net.tickAll(3);
    net.propose(1, "after-snap");
    assert.equal(net.get(3).storage.snapshot().metadata?.index, applied);
    assert.deepEqual(net.appliedData(3), ["after-snap"]);
  });

  test("a failed snapshot send falls back to probing", () => {
    const net = new Network(2);
    net.campaign(1);
    const r = net.get(1).node.raft;
    const pr = r.trk.progress.get(2n)!;
    pr.becomeSnapshot(10);
    net.get(1).node.reportSnapshot(2n, "failure");
    assert.equal(pr.state, 0 /* Probe */);
    assert.equal(pr.pendingSnapshot, 0);
  });
});

describe("RawNode.step guards", () => {
  test("local message types are refused", () => {
    const net = new Network(1);
    for (const t of [
      MessageType.MsgHup,
      MessageType.MsgBeat,
      MessageType.MsgCheckQuorum,
      MessageType.MsgUnreachable,
      MessageType.MsgSnapStatus,
    ]) {
      assert.throws(() => net.get(1).node.step(newMessage({ type: t, from: 1n })), ErrStepLocalMsg);
    }
  });

  test("responses from unknown peers are refused", () => {
    const net = new Network(1);
    const m: Message = newMessage({ type: MessageType.MsgAppResp, from: 9n, to: 1n, term: 1 });
    assert.throws(() => net.get(1).node.step(m), ErrStepPeerNotFound);
  });
});
