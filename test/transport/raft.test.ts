// lib/raft RawNodes of three in-process members talking over real PeerTransports on loopback:
// they elect a leader, replicate entries proposed at the leader and forwarded from a follower,
// catch a wiped member up by MsgSnap on the snapshot connection after the leader compacted its
// log, and elect a new leader when the old one's transport stops. The ready loop is a minimal
// one (MemoryStorage, the applied log as the state machine), not lib/server's.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  ConfChange,
  type ConfState,
  EntryType,
  type Message,
} from "../../lib/proto/gen/raftpb/raft.js";
import {
  ErrProposalDropped,
  ErrStepPeerNotFound,
  MemoryStorage,
  RawNode,
} from "../../lib/raft/index.js";
import { prng, testSeed, waitFor } from "../helpers/server.js";
import { type TestPeer, peerPool } from "./harness.js";

const TICK_MS = 10;
const start = peerPool();

interface RaftMember {
  id: bigint;
  peer: TestPeer;
  node: RawNode;
  storage: MemoryStorage;
  confState: ConfState | undefined;
  applied: string[];
  appliedIndex: number;
  ticker: NodeJS.Timeout;
  stopped: boolean;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Persist, send, apply, advance — in the order RawNode's Ready asks for. */
function pump(m: RaftMember): void {
  while (!m.stopped && m.node.hasReady()) {
    const rd = m.node.ready();
    if (rd.snapshot !== undefined) {
      m.storage.applySnapshot(rd.snapshot);
      m.applied = JSON.parse(dec.decode(rd.snapshot.data)) as string[];
      m.appliedIndex = rd.snapshot.metadata!.index;
      m.confState = rd.snapshot.metadata!.confState;
    }
    if (rd.hardState !== undefined) m.storage.setHardState(rd.hardState);
    m.storage.append(rd.entries);
    m.peer.transport.send(rd.messages);
    for (const e of rd.committedEntries) {
      if (e.type === EntryType.EntryConfChange)
        m.confState = m.node.applyConfChange(ConfChange.fromBinary(e.data));
      else if (e.data.length > 0) m.applied.push(dec.decode(e.data));
      m.appliedIndex = e.index;
    }
    m.node.advance(rd);
  }
}

async function startMember(
  id: bigint,
  rnd: () => number,
  o: { bootstrap: boolean; listenUrl?: string },
): Promise<RaftMember> {
  let member: RaftMember | undefined;
  let scheduled = false;
  const schedule = (): void => {
    if (scheduled) return;
    scheduled = true;
    setImmediate(() => {
      scheduled = false;
      if (member !== undefined) pump(member);
    });
  };
  const peer = await start(id, {
    ...(o.listenUrl === undefined ? {} : { listenUrl: o.listenUrl }),
    onMessage: (msg: Message) => {
      if (member === undefined || member.stopped) return;
      try {
        member.node.step(msg);
      } catch (err) {
        // As a server does: dropped forwards and answers from unknown peers are not errors.
        if (!(err instanceof ErrProposalDropped) && !(err instanceof ErrStepPeerNotFound))
          throw err;
      }
      schedule();
    },
    onReportUnreachable: (to) => {
      member?.node.reportUnreachable(to);
      schedule();
    },
    onReportSnapshot: (to, status) => {
      member?.node.reportSnapshot(to, status);
      schedule();
    },
  });
  const storage = new MemoryStorage();
  const node = new RawNode({
    id,
    electionTick: 10,
    heartbeatTick: 1,
    storage,
    preVote: true,
    checkQuorum: true,
    random: rnd,
  });
  if (o.bootstrap) node.bootstrap([{ id: 1n }, { id: 2n }, { id: 3n }]);
  const ticker = setInterval(() => {
    if (member === undefined || member.stopped) return;
    member.node.tick();
    pump(member);
  }, TICK_MS);
  member = {
    id,
    peer,
    node,
    storage,
    confState: undefined,
    applied: [],
    appliedIndex: 0,
    ticker,
    stopped: false,
  };
  schedule();
  return member;
}

async function stopMember(m: RaftMember): Promise<void> {
  m.stopped = true;
  clearInterval(m.ticker);
  await m.peer.transport.stop();
}

function connect(ms: RaftMember[]): void {
  for (const a of ms) for (const b of ms) if (a !== b) a.peer.transport.addPeer(b.id, [b.peer.url]);
}

/** The leader all running members agree on, or undefined. */
function agreedLeader(ms: RaftMember[]): RaftMember | undefined {
  const leads = new Set(ms.map((m) => m.node.status().softState.lead));
  if (leads.size !== 1) return undefined;
  const lead = [...leads][0]!;
  return ms.find((m) => m.id === lead);
}

function propose(m: RaftMember, values: string[]): void {
  for (const v of values) m.node.propose(enc.encode(v));
  pump(m);
}

describe("raft over real peer transports", { timeout: 120_000 }, () => {
  test("three members elect, replicate, catch up by snapshot and fail over", async (t) => {
    const seed = testSeed();
    t.diagnostic(`SEED=${seed}`);
    const rnd = prng(seed);
    const ms = [
      await startMember(1n, rnd, { bootstrap: true }),
      await startMember(2n, rnd, { bootstrap: true }),
      await startMember(3n, rnd, { bootstrap: true }),
    ];
    try {
      connect(ms);
      await waitFor("a leader", () => agreedLeader(ms) !== undefined, 20_000);
      const leader = agreedLeader(ms)!;
      const follower = ms.find((m) => m !== leader)!;
      const first = Array.from({ length: 100 }, (_, i) => `e${i}`);
      propose(leader, first);
      // Proposals at a follower are forwarded to the leader (MsgProp over the transport).
      propose(follower, ["f0", "f1", "f2"]);
      await waitFor("all members applied 103 entries", () =>
        ms.every((m) => m.applied.length === 103),
      );
      for (const m of ms) assert.deepEqual(m.applied, ms[0]!.applied);
      assert.deepEqual(
        leader.applied.filter((v) => v.startsWith("e")),
        first,
      );

      // Wipe a follower: stop it, move on without it, compact the leader's log.
      const wiped = ms.find((m) => m !== leader && m !== follower)!;
      const wipedUrl = wiped.peer.url;
      await stopMember(wiped);
      const live = [leader, follower];
      propose(
        leader,
        Array.from({ length: 50 }, (_, i) => `g${i}`),
      );
      await waitFor("two members applied 153 entries", () =>
        live.every((m) => m.applied.length === 153),
      );
      const snapIndex = leader.appliedIndex;
      leader.storage.createSnapshot(
        snapIndex,
        leader.confState,
        enc.encode(JSON.stringify(leader.applied)),
      );
      leader.storage.compact(snapIndex);

      // It comes back empty on the same address; only a snapshot can catch it up.
      const fresh = await startMember(wiped.id, rnd, { bootstrap: false, listenUrl: wipedUrl });
      for (const m of live) fresh.peer.transport.addPeer(m.id, [m.peer.url]);
      ms[ms.indexOf(wiped)] = fresh;
      await waitFor("the wiped member caught up", () => fresh.applied.length === 153, 20_000);
      assert.deepEqual(fresh.applied, leader.applied);
      // The receiver answers after handing the snapshot to raft, so the report may trail.
      await waitFor("the leader's raft heard SnapshotFinish", () =>
        leader.peer.snapshots.some((s) => s.id === fresh.id && s.status === "finish"),
      );
      assert.ok(
        fresh.peer.log.entries.some((e) => e.msg === "received and saved database snapshot"),
      );

      // Fail over: the leader's transport stops; the other two elect a new leader.
      await stopMember(leader);
      const rest = ms.filter((m) => m !== leader);
      await waitFor(
        "a new leader",
        () => {
          const l = agreedLeader(rest);
          return l !== undefined && l !== leader;
        },
        20_000,
      );
      const next = agreedLeader(rest)!;
      propose(
        next,
        Array.from({ length: 20 }, (_, i) => `h${i}`),
      );
      await waitFor("the survivors applied 173 entries", () =>
        rest.every((m) => m.applied.length === 173),
      );
      for (const m of rest) assert.deepEqual(m.applied, rest[0]!.applied);
    } finally {
      for (const m of ms) await stopMember(m);
    }
  });
});
