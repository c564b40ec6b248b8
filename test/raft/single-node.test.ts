import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { ConfChange, EntryType, MessageType, Message } from "../../lib/proto/gen/raftpb/raft.js";
import {
  ErrProposalDropped,
  MemoryStorage,
  RawNode,
  StateType,
  type Ready,
} from "../../lib/raft/index.js";

function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The server's loop: persist, append, (send), apply, advance. */
function handle(node: RawNode, storage: MemoryStorage, applied: Uint8Array[], rd: Ready): void {
  if (rd.hardState) storage.setHardState(rd.hardState);
  storage.append(rd.entries);
  for (const e of rd.committedEntries) {
    if (e.type === EntryType.EntryConfChange) node.applyConfChange(ConfChange.fromBinary(e.data));
    else if (e.data.length > 0) applied.push(e.data);
  }
  node.advance(rd);
}

function drain(node: RawNode, storage: MemoryStorage, applied: Uint8Array[]): Ready[] {
  const out: Ready[] = [];
  for (let i = 0; i < 100 && node.hasReady(); i++) {
    const rd = node.ready();
    out.push(rd);
    handle(node, storage, applied, rd);
  }
  assert.equal(node.hasReady(), false, "ready loop did not settle");
  return out;
}

function newSingle(): { node: RawNode; storage: MemoryStorage; applied: Uint8Array[] } {
  const storage = new MemoryStorage();
  const node = new RawNode({
    id: 1n,
    electionTick: 10,
    heartbeatTick: 1,
    storage,
    random: seeded(1),
  });
  node.bootstrap([{ id: 1n }]);
  return { node, storage, applied: [] };
}

describe("raft single voter", () => {
  test("bootstrap commits the conf change entries and campaign makes it leader at once", () => {
    const { node, storage, applied } = newSingle();
    const rd = node.ready();
    assert.equal(rd.entries.length, 1);
    assert.equal(rd.committedEntries.length, 1);
    assert.deepEqual(rd.hardState, { term: 1, vote: 0n, commit: 1 });
    handle(node, storage, applied, rd);
    node.campaign();
    const rds = drain(node, storage, applied);
    assert.equal(rds[0]!.softState?.raftState, StateType.Leader);
    assert.equal(node.status().softState.lead, 1n);
    assert.equal(node.status().hardState.term, 2);
    assert.equal(node.status().hardState.commit, 2);
  });

  test("a proposal is committed only after advance reports it persisted", () => {
    const { node, storage, applied } = newSingle();
    drain(node, storage, applied);
    node.campaign();
    drain(node, storage, applied);
    node.propose(new TextEncoder().encode("x"));
    const rd1 = node.ready();
    assert.equal(rd1.entries.length, 1);
    assert.equal(rd1.committedEntries.length, 0);
    handle(node, storage, applied, rd1);
    assert.ok(node.hasReady());
    const rd2 = node.ready();
    assert.equal(rd2.entries.length, 0);
    assert.equal(rd2.committedEntries.length, 1);
    assert.equal(rd2.hardState?.commit, 3);
    handle(node, storage, applied, rd2);
    assert.deepEqual(
      applied.map((d) => new TextDecoder().decode(d)),
      ["x"],
    );
    assert.equal(node.status().applied, 3);
  });

  test("readIndex answers once the leader committed an entry of its term", () => {
    const { node, storage, applied } = newSingle();
    drain(node, storage, applied);
    node.campaign();
    const rd = node.ready(); // leader, empty entry not yet persisted
    node.readIndex(new Uint8Array([7]));
    assert.equal(node.ready().readStates.length, 0);
    handle(node, storage, applied, rd);
    const rds = drain(node, storage, applied);
    const rs = rds.flatMap((r) => r.readStates);
    assert.equal(rs.length, 1);
    assert.equal(rs[0]!.index, 2);
    assert.deepEqual(rs[0]!.requestCtx, new Uint8Array([7]));
    node.readIndex(new Uint8Array([8]));
    const rd3 = node.ready();
    assert.deepEqual(rd3.readStates, [{ index: 2, requestCtx: new Uint8Array([8]) }]);
    node.advance(rd3);
  });

  test("propose without a leader throws ErrProposalDropped", () => {
    const { node } = newSingle();
    assert.throws(() => node.propose(new Uint8Array([1])), ErrProposalDropped);
  });

  test("a restarted single voter elects itself by ticking and keeps its log", () => {
    const { node, storage, applied } = newSingle();
    drain(node, storage, applied);
    node.campaign();
    drain(node, storage, applied);
    node.propose(new Uint8Array([1]));
    drain(node, storage, applied);
    const node2 = new RawNode({
      id: 1n,
      electionTick: 10,
      heartbeatTick: 1,
      storage,
      random: seeded(2),
      applied: 3,
    });
    const applied2: Uint8Array[] = [];
    // conf state comes from snapshot; without one, re-apply the bootstrap entry's change
    node2.applyConfChange(ConfChange.create({ type: 0, nodeID: 1n }));
    for (let i = 0; i < 20 && node2.status().softState.raftState !== StateType.Leader; i++)
      node2.tick();
    assert.equal(node2.status().softState.raftState, StateType.Leader);
    drain(node2, storage, applied2);
    assert.equal(node2.status().hardState.term, 3);
    assert.equal(node2.status().hardState.commit, 4);
  });
});

describe("raft follower forwarding", () => {
  test("takeForwardedRequests hands out a follower's MsgProp / MsgReadIndex and leaves the rest to ready()", () => {
    const storage = new MemoryStorage();
    const node = new RawNode({
      id: 2n,
      electionTick: 10,
      heartbeatTick: 1,
      storage,
      random: seeded(2),
    });
    node.bootstrap([{ id: 1n }, { id: 2n }, { id: 3n }]);
    drain(node, storage, []);
    // a heartbeat from member 1 at term 1 makes it this follower's leader; it is answered
    node.step({ ...emptyMessage(), type: MessageType.MsgHeartbeat, from: 1n, to: 2n, term: 1 });
    assert.deepEqual(node.takeForwardedRequests(), [], "a heartbeat response is not forwarded");
    node.propose(new TextEncoder().encode("v"));
    node.readIndex(new TextEncoder().encode("ctx"));
    const taken = node.takeForwardedRequests();
    assert.deepEqual(
      taken.map((m) => [MessageType[m.type], m.to, m.term]),
      [
        ["MsgProp", 1n, 0],
        ["MsgReadIndex", 1n, 0],
      ],
    );
    assert.equal(taken[0]!.entries[0]!.data.length, 1);
    const rd = node.ready();
    assert.deepEqual(
      rd.messages.map((m) => MessageType[m.type]),
      ["MsgHeartbeatResp"],
      "ready() keeps what was not forwarded, and only that",
    );
    assert.deepEqual(node.takeForwardedRequests(), []);
  });
});

function emptyMessage(): Message {
  return Message.create();
}
