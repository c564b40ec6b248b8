/**
 * Deterministic Raft simulator: N nodes of lib/raft over a simulated network (drop, delay,
 * duplicate, reorder, partition) and simulated disks (a crash loses everything not persisted),
 * with random proposals, conf changes, read-index requests, compactions and leader transfers,
 * all driven by one seed. Invariants are checked after every processed Ready:
 * election safety (one leader per term), log matching, leader completeness, state-machine
 * safety, committed entries never lost, ReadIndex linearizability; then a liveness phase.
 *
 * With `member: true` each node is also a member's state machine (member.ts): client requests
 * proposed through the member's real proposal path and encoder, committed entries applied by
 * lib/server's Applier into a real MvccStore, snapshots carrying real db files. Then also checked:
 * every member that applies an entry gets the same revision and the same answer as the first one
 * that did (the proposer's included, which took the local path without decoding); members at the
 * same applied index have the same HashKV; the applier's applied index follows raft's; a restart
 * or an installed snapshot rebuilds the same hash, and a db file's consistent index is its
 * snapshot's index.
 */
import {
  ConfChange,
  ConfChangeType,
  type ConfState,
  type Entry,
  EntryType,
  type Message,
  MessageType,
} from "../../lib/proto/gen/raftpb/raft.js";
import {
  coalesceMessages,
  ErrProposalDropped,
  ErrStepPeerNotFound,
  MemoryStorage,
  RawNode,
  StateType,
  type RaftTestingKnobs,
  type Ready,
} from "../../lib/raft/index.js";
import { Prng } from "./prng.js";
import {
  type AppliedRecord,
  type MemberKnobs,
  SimMember,
  type Workload,
  randomRequest,
  simMemberContext,
} from "./member.js";
import { encodePromoteContext } from "../../lib/server/cluster.js";
import { InternalRaftRequest } from "../../lib/proto/gen/etcdserverpb/raft_internal.js";

/** Counters of the Figure 8 nemesis (debugging its reach). */
export const fig8Stats = { started: 0, victims: 0, reelected: 0, crashed: 0, youngWon: 0 };

export class SimViolation extends Error {
  constructor(
    readonly invariant: string,
    detail: string,
  ) {
    super(`${invariant}: ${detail}`);
  }
}

export interface SimOptions {
  seed: number;
  /** Number of initial voters (1, 3 or 5); default derived from the seed. */
  nodes?: number;
  /** Ticks of the faulty phase. */
  ticks?: number;
  /** Ticks allowed for the liveness phase. */
  livenessTicks?: number;
  knobs?: RaftTestingKnobs;
  /** Fault intensity multiplier (1 = default). */
  faultiness?: number;
  /** Skip the liveness phase (known-wrong variants may legitimately stall). */
  skipLiveness?: boolean;
  /** Each node also runs the member's real apply path (member.ts). */
  member?: boolean;
  /** Known-wrong member variants, on the node with the highest initial id (member mode). */
  memberKnobs?: MemberKnobs;
}

export interface SimResult {
  seed: number;
  nodes: number;
  ticks: number;
  leadersElected: number;
  committedIndex: number;
  appliedEntries: number;
  readsChecked: number;
  confChanges: number;
  crashes: number;
  snapshotsSent: number;
  /** member mode: HashKV comparisons made between members (0 otherwise) */
  hashesCompared: number;
  /** member mode: answers the proposing member got (and the others compared) */
  proposerAnswers: number;
  /** member mode: states loaded from a db file (a restart from a snapshot, or one installed) */
  dbFilesLoaded: number;
  /** member mode: restarts whose db was ahead of the last snapshot (entries replayed, skipped) */
  dbAheadRestarts: number;
  /** member mode: snapshots taken while the member replayed entries its db holds */
  snapshotsWhileReplaying: number;
}

interface InFlight {
  m: Message;
  deliverAt: number;
}

interface SimNode {
  id: bigint;
  storage: MemoryStorage;
  node: RawNode | undefined; // undefined while crashed
  appliedIndex: number;
  confState: ConfState;
  knownCommit: number;
  removed: boolean;
  /** member mode: the state machine of this incarnation */
  member: SimMember | undefined;
  /** member mode: the member's db file (member/snap/db) and the applied index it was written at */
  db: { bytes: Uint8Array; index: number } | undefined;
}

const electionTick = 10;
const heartbeatTick = 2;
const maxReadyLoops = 64;
/** member mode: calm ticks allowed for every member to apply what the leader committed */
const convergeTicks = 300;
/** SIM_TRACE=<tick>: print every delivered message from that tick on (debugging a seed). */
const traceFromTick = Number(process.env.SIM_TRACE ?? -1);

function dataKey(e: Entry): string {
  let s = `${e.type}:`;
  for (let i = 0; i < e.data.length; i++) s += String.fromCharCode(e.data[i]!);
  return s;
}

function cloneMessage(m: Message): Message {
  // entry bytes are copied as a network would: a member recognises its own proposal only by
  // identity (Proposals.takeLocal), which must not survive a trip through another node
  return { ...m, entries: m.entries.map((e) => ({ ...e, data: e.data.slice() })) };
}

export class Simulation {
  readonly seed: number;
  readonly rng: Prng;
  readonly n: number;
  readonly knobs: RaftTestingKnobs;
  readonly faultiness: number;
  nodes = new Map<bigint, SimNode>();
  net: InFlight[] = [];
  now = 0;
  /** Partition: node id → group; messages between different groups are dropped. */
  partition = new Map<bigint, number>();
  // Canonical histories for the invariants.
  leaderOfTerm = new Map<number, bigint>();
  committedTerm: number[] = []; // index → term of the committed entry
  committedKey: string[] = [];
  appliedKey: string[] = []; // index → data key of the entry applied there (state machine safety)
  entryKey = new Map<string, string>(); // `${index}:${term}` → data key (log matching)
  maxCommitted = 0;
  pendingReads = new Map<string, { minIndex: number; node: bigint }>();
  nextId: bigint;
  readSeq = 0;
  propSeq = 0;
  stats = {
    leadersElected: 0,
    appliedEntries: 0,
    readsChecked: 0,
    confChanges: 0,
    crashes: 0,
    snapshotsSent: 0,
    hashesCompared: 0,
    proposerAnswers: 0,
    dbFilesLoaded: 0,
    dbAheadRestarts: 0,
    snapshotsWhileReplaying: 0,
  };
  readonly member: boolean;
  readonly memberKnobs: MemberKnobs;
  /** member mode: index → what the first member to apply it recorded */
  memberApplied: (AppliedRecord & { node: bigint })[] = [];
  /** member mode: applied index → HashKV and revision of the first member that applied it */
  memberHash = new Map<number, { hash: number; revision: number; node: bigint }>();
  workload: Workload = { leaseSeq: 0, leases: [] };
  /** member mode: members started so far (each start's request ids are its own) */
  #memberStarts = 0;
  /** Crashes scheduled for young leaders. */
  #doomed: { id: bigint; at: number }[] = [];
  #lastYoung: bigint | undefined;
  /** Figure 8 nemesis state (see #figure8Nemesis). */
  #fig8:
    | {
        phase: 1 | 2 | 3;
        old: bigint;
        young: bigint | undefined;
        deadline: number;
        commitAt: number;
      }
    | undefined;
  /** Liveness phase: no crashes. */
  #calm = false;
  #cfg: {
    preVote: boolean;
    checkQuorum: boolean;
    maxSizePerMsg: number;
    maxInflightMsgs: number;
    maxUncommitted: number;
    appendBeforePersist: boolean;
    maxCommittedSizePerReady: number | undefined;
    /** what a Ready sends one peer in a row is merged, as the server does (coalesceMessages) */
    coalesce: boolean;
  };

  constructor(opts: SimOptions) {
    this.seed = opts.seed;
    this.rng = new Prng(opts.seed);
    this.n = opts.nodes ?? this.rng.pick([1, 3, 3, 5, 5]);
    this.knobs = opts.knobs ?? {};
    this.faultiness = opts.faultiness ?? 1;
    this.member = opts.member === true;
    this.memberKnobs = opts.memberKnobs ?? {};
    this.#cfg = {
      preVote: this.rng.chance(0.5),
      checkQuorum: this.rng.chance(0.5),
      maxSizePerMsg: this.rng.pick([64, 256, 1 << 20]),
      maxInflightMsgs: this.rng.pick([1, 2, 4, 64]),
      maxUncommitted: this.rng.pick([0, 0, 512]),
      appendBeforePersist: this.rng.chance(0.5),
      // member mode: small Readys make a replay after a restart span several applied batches
      // (drawn only in member mode, so the plain simulator's seeds run as before)
      maxCommittedSizePerReady: this.member
        ? this.rng.pick([128, 1024, 64 * 1024 * 1024])
        : undefined,
      // even seeds: from the seed, not the rng, so odd seeds run exactly as before coalescing
      coalesce: opts.seed % 2 === 0,
    };
    const peers: { id: bigint; context?: Uint8Array }[] = [];
    for (let i = 1; i <= this.n; i++) {
      const id = BigInt(i);
      peers.push(this.member ? { id, context: simMemberContext(id, false) } : { id });
    }
    this.nextId = BigInt(this.n + 1);
    for (const p of peers) {
      const sn = this.#newSimNode(p.id);
      sn.node!.bootstrap(peers);
    }
    // Bootstrap state is written when the data dir is created, before the node runs (as etcd).
    this.#calm = true;
    for (const s of this.nodes.values()) this.#process(s, { drop: 0, dup: 0, maxDelay: 0 });
    this.#calm = false;
  }

  /** One line per node: role, term, log and config (for failure reports). */
  dump(): string {
    const out: string[] = [];
    for (const s of this.nodes.values()) {
      if (s.node === undefined) {
        out.push(`${s.id}:${s.removed ? "removed" : "down"}`);
        continue;
      }
      const r = s.node.raft;
      out.push(
        `${s.id}:${StateType[r.state]} t${r.term} v${r.vote} lead${r.lead} last${r.raftLog.lastIndex()}/t${r.raftLog.lastTerm()} commit${r.raftLog.committed} applied${r.raftLog.applied} voters[${[...r.trk.voters].join(",")}] learners[${[...r.trk.learners].join(",")}]` +
          (r.state === StateType.Leader
            ? ` prs{${[...r.trk.progress].map(([id, p]) => `${id}:${p.state}/m${p.match}/n${p.next}/ps${p.pendingSnapshot}/sent${p.probeSent}/act${p.recentActive}`).join(" ")}} first${r.raftLog.firstIndex()}`
            : ""),
      );
    }
    return out.join(" | ");
  }

  describe(): string {
    return `seed=${this.seed} nodes=${this.n} preVote=${this.#cfg.preVote} checkQuorum=${this.#cfg.checkQuorum} maxSizePerMsg=${this.#cfg.maxSizePerMsg} maxInflightMsgs=${this.#cfg.maxInflightMsgs} maxUncommitted=${this.#cfg.maxUncommitted} appendBeforePersist=${this.#cfg.appendBeforePersist} coalesce=${this.#cfg.coalesce}${this.member ? ` maxCommittedSizePerReady=${this.#cfg.maxCommittedSizePerReady}` : ""}`;
  }

  #newSimNode(id: bigint): SimNode {
    const sn: SimNode = {
      id,
      storage: new MemoryStorage(),
      node: undefined,
      appliedIndex: 0,
      confState: {
        voters: [],
        learners: [],
        votersOutgoing: [],
        learnersNext: [],
        autoLeave: false,
      },
      knownCommit: 0,
      removed: false,
      member: undefined,
      db: undefined,
    };
    this.nodes.set(id, sn);
    this.#start(sn);
    return sn;
  }

  #start(sn: SimNode): void {
    const snap = sn.storage.snapshot();
    const snapIndex = snap.metadata?.index ?? 0;
    // The state machine restarts from the snapshot; entries after it are re-applied.
    sn.appliedIndex = snapIndex;
    sn.confState = snap.metadata?.confState ?? sn.confState;
    sn.knownCommit = Math.max(snapIndex, 0);
    const raw = new RawNode({
      id: sn.id,
      electionTick,
      heartbeatTick,
      storage: sn.storage,
      applied: snapIndex,
      random: this.rng.fork(),
      preVote: this.#cfg.preVote,
      checkQuorum: this.#cfg.checkQuorum,
      maxSizePerMsg: this.#cfg.maxSizePerMsg,
      maxInflightMsgs: this.#cfg.maxInflightMsgs,
      maxUncommittedEntriesSize: this.#cfg.maxUncommitted,
      maxCommittedSizePerReady: this.#cfg.maxCommittedSizePerReady,
      testingKnobs: this.knobs,
    });
    sn.node = raw;
    if (this.member) this.#startMember(sn, raw);
  }

  /** member mode: a fresh state machine for this incarnation, loaded from the last snapshot. */
  #startMember(sn: SimNode, raw: RawNode): void {
    if (sn.member !== undefined) this.#stopMember(sn.member);
    const faulty = sn.id === BigInt(this.n);
    const m = new SimMember(
      sn.id,
      this.#memberStarts++,
      {
        applyRaftConfChange: (cc) => {
          const cs = raw.applyConfChange(cc);
          if (cc.nodeID !== 0n) this.#afterConfChange(sn, cc, cs);
          return cs;
        },
        raft: () =>
          sn.node === raw
            ? { term: raw.raft.term, committed: raw.raft.raftLog.committed }
            : undefined,
        propose: (data) => raw.propose(data),
        proposeConfChange: (cc) => raw.proposeConfChange(cc),
      },
      faulty ? this.memberKnobs : {},
    );
    sn.member = m;
    const snap = sn.storage.snapshot();
    const md = snap.metadata;
    const snapIndex = md?.index ?? 0;
    // a crash after a snapshot from the leader was persisted and before its db was put in place:
    // recovery installs the received db (recovery.ts installReceivedSnapshotDb)
    if (snapIndex > (sn.db?.index ?? 0)) sn.db = { bytes: snap.data, index: snapIndex };
    const db = sn.db;
    if (db === undefined) {
      if (snapIndex > 0) throw new Error(`node ${sn.id} has a snapshot at ${snapIndex} but no db`);
      return;
    }
    const ci = m.start(
      db.bytes,
      snapIndex === 0
        ? undefined
        : { index: snapIndex, term: md!.term, confState: md!.confState!, snapDb: snap.data },
    );
    this.#checkMemberLoaded(sn, db.index, ci, snapIndex, "restart");
    if (ci > snapIndex) this.stats.dbAheadRestarts++;
  }

  /**
   * member mode, after a restart or an installed snapshot: the db's consistent index is the
   * applied index it was written at (`writtenAt`), at or after the snapshot's, and the store's
   * hash and revision are what the other members had there.
   */
  #checkMemberLoaded(
    sn: SimNode,
    writtenAt: number,
    consistentIndex: number,
    snapIndex: number,
    what: string,
  ): void {
    this.stats.dbFilesLoaded++;
    if (consistentIndex !== writtenAt || consistentIndex < snapIndex) {
      throw new SimViolation(
        "member-consistent-index",
        `node ${sn.id} ${what}: db consistent index ${consistentIndex}, written at applied index ${writtenAt}, snapshot index ${snapIndex}`,
      );
    }
    this.#compareMemberHash(sn, consistentIndex);
  }

  /** member mode, raft applied up to `index`: so did the applier; the hash is compared there. */
  #checkMemberHash(sn: SimNode, index: number): void {
    const m = sn.member!;
    if (m.appliedIndex !== index) {
      throw new SimViolation(
        "member-applied-index",
        `node ${sn.id}: the applier stands at ${m.appliedIndex} but raft applied ${index}`,
      );
    }
    // replaying entries its db holds, the store is ahead of the applied index
    if (!m.applier.replayingDb) this.#compareMemberHash(sn, index);
  }

  /** The member's HashKV and revision against the first recorded at `index`. */
  #compareMemberHash(sn: SimNode, index: number): void {
    const h = sn.member!.hash();
    const known = this.memberHash.get(index);
    if (known === undefined) {
      this.memberHash.set(index, { hash: h.hash, revision: h.revision, node: sn.id });
      return;
    }
    if (known.node !== sn.id) this.stats.hashesCompared++;
    if (known.hash !== h.hash || known.revision !== h.revision) {
      throw new SimViolation(
        "member-hash",
        `at applied index ${index} node ${sn.id} has HashKV ${h.hash} at revision ${h.revision} but node ${known.node} had ${known.hash} at revision ${known.revision}`,
      );
    }
  }

  /** member mode: one applied entry's revision and answer against the first member's. */
  #checkMemberRecord(sn: SimNode, rec: AppliedRecord): void {
    const known = this.memberApplied[rec.index];
    if (known === undefined) {
      this.memberApplied[rec.index] = { ...rec, node: sn.id };
      return;
    }
    if (known.revision !== rec.revision) {
      throw new SimViolation(
        "member-revision",
        `entry ${rec.index}: node ${sn.id} is at revision ${rec.revision} after it but node ${known.node} was at ${known.revision}`,
      );
    }
    if (known.answer !== rec.answer) {
      throw new SimViolation(
        "member-answer",
        `entry ${rec.index}: node ${sn.id} answered ${rec.answer} but node ${known.node} answered ${known.answer}`,
      );
    }
  }

  alive(): SimNode[] {
    return [...this.nodes.values()].filter((s) => s.node !== undefined && !s.removed);
  }

  leader(): SimNode | undefined {
    let best: SimNode | undefined;
    for (const s of this.alive()) {
      const r = s.node!.raft;
      if (r.state === StateType.Leader && (best === undefined || r.term > best.node!.raft.term))
        best = s;
    }
    return best;
  }

  // ------------------------------------------------------------------ the run

  run(opts: SimOptions): SimResult {
    const ticks = opts.ticks ?? 400;
    for (let t = 0; t < ticks; t++) this.#faultyTick();
    if (!opts.skipLiveness) this.#liveness(opts.livenessTicks ?? 1000);
    if (!opts.skipLiveness && this.member) this.#converge(convergeTicks);
    return {
      seed: this.seed,
      nodes: this.n,
      ticks: this.now,
      leadersElected: this.stats.leadersElected,
      committedIndex: this.maxCommitted,
      appliedEntries: this.stats.appliedEntries,
      readsChecked: this.stats.readsChecked,
      confChanges: this.stats.confChanges,
      crashes: this.stats.crashes,
      snapshotsSent: this.stats.snapshotsSent,
      hashesCompared: this.stats.hashesCompared,
      proposerAnswers:
        this.stats.proposerAnswers +
        [...this.nodes.values()].reduce((n, s) => n + (s.member?.proposals.ownAnswers ?? 0), 0),
      dbFilesLoaded: this.stats.dbFilesLoaded,
      dbAheadRestarts: this.stats.dbAheadRestarts,
      snapshotsWhileReplaying: this.stats.snapshotsWhileReplaying,
    };
  }

  /** Ends every member's waits (member mode). */
  stop(): void {
    for (const s of this.nodes.values()) if (s.member !== undefined) this.#stopMember(s.member);
  }

  #stopMember(m: SimMember): void {
    this.stats.proposerAnswers += m.proposals.ownAnswers;
    m.proposals.ownAnswers = 0;
    m.stop();
  }

  #faultyTick(): void {
    const f = this.faultiness;
    const rng = this.rng;
    if (rng.chance(0.02 * f)) this.#crashOne();
    const doomed = this.#doomed.filter((d) => d.at <= this.now);
    this.#doomed = this.#doomed.filter((d) => d.at > this.now);
    for (const d of doomed) {
      const sn = this.nodes.get(d.id);
      if (sn !== undefined) this.#crash(sn);
    }
    if (rng.chance(0.05)) this.#restartOne();
    if (rng.chance(0.01 * f)) this.#partitionRandomly();
    if (rng.chance(0.03)) this.partition.clear();
    // Leader-targeted faults (Jepsen's "kill/isolate the leader") make elections over divergent logs common.
    if (rng.chance(0.01 * f)) this.#isolateLeader();
    this.#figure8Nemesis();
    if (rng.chance(0.01 * f)) {
      const l = this.leader();
      if (l !== undefined) this.#crash(l);
    }
    const props = rng.int(4);
    for (let i = 0; i < props; i++) this.#proposeRandom();
    if (rng.chance(0.2)) this.#readRandom();
    if (rng.chance(0.02)) this.#confChangeRandom();
    if (rng.chance(0.03)) this.#compactRandom();
    if (rng.chance(0.005)) this.#transferRandom();
    this.#tickAll({ drop: 0.05 * f, dup: 0.03 * f, maxDelay: 3 });
  }

  #tickAll(net: { drop: number; dup: number; maxDelay: number }): void {
    this.now++;
    for (const s of this.alive()) s.node!.tick();
    this.#processAll(net);
    const due: InFlight[] = [];
    const later: InFlight[] = [];
    for (const f of this.net) (f.deliverAt <= this.now ? due : later).push(f);
    this.net = later;
    this.rng.shuffle(due);
    for (const f of due) {
      if (this.rng.chance(net.drop)) {
        this.#reportSnapshot(f.m, false);
        continue;
      }
      if (this.rng.chance(net.dup))
        this.net.push({ m: f.m, deliverAt: this.now + 1 + this.rng.int(net.maxDelay + 1) });
      const delivered = this.#deliver(f.m, net);
      this.#reportSnapshot(f.m, delivered);
      // As etcd's transport: a peer that is down or cut off is reported unreachable.
      if (!delivered) this.nodes.get(f.m.from)?.node?.reportUnreachable(f.m.to);
    }
    this.#processAll(net);
    this.#checkLogMatching();
  }

  /** As etcd's transport: tell the sender whether its snapshot reached the follower. */
  #reportSnapshot(m: Message, delivered: boolean): void {
    if (m.type !== MessageType.MsgSnap) return;
    const from = this.nodes.get(m.from);
    if (from?.node === undefined) return;
    from.node.reportSnapshot(m.to, delivered ? "finish" : "failure");
  }

  /** Delivers m unless the receiver is down or partitioned away; returns whether it was delivered. */
  #deliver(m: Message, net: { drop: number; dup: number; maxDelay: number }): boolean {
    const to = this.nodes.get(m.to);
    if (to === undefined || to.node === undefined || to.removed) return false;
    const from = this.nodes.get(m.from);
    // etcd's transport refuses traffic from members removed from the cluster.
    if (from !== undefined && from.removed) return false;
    const ga = this.partition.get(m.from) ?? 0;
    const gb = this.partition.get(m.to) ?? 0;
    if (ga !== gb) return false;
    if (traceFromTick >= 0 && this.now >= traceFromTick) {
      console.log(
        `t${this.now} ${m.from}->${m.to} ${MessageType[m.type]} term${m.term} idx${m.index} lt${m.logTerm} n${m.entries.length} c${m.commit} rej${m.reject} hint${m.rejectHint}`,
      );
    }
    try {
      to.node.step(cloneMessage(m));
    } catch (e) {
      if (!(e instanceof ErrProposalDropped) && !(e instanceof ErrStepPeerNotFound)) throw e;
    }
    this.#process(to, net);
    return true;
  }

  #processAll(net: { drop: number; dup: number; maxDelay: number }): void {
    for (let loops = 0; loops < maxReadyLoops; loops++) {
      let any = false;
      for (const s of this.alive()) {
        if (s.node !== undefined && s.node.hasReady()) {
          any = true;
          this.#process(s, net);
        }
      }
      if (!any) return;
    }
  }

  /** One Ready of one node through the server loop: persist, (maybe crash), send, apply, advance. */
  #process(sn: SimNode, net: { drop: number; dup: number; maxDelay: number }): void {
    const node = sn.node;
    if (node === undefined || !node.hasReady()) return;
    const rd = node.ready();
    for (const e of rd.entries) this.#checkEntry(sn, e);
    // etcd's leader sends MsgApp before its own fsync (it counts itself only once persisted):
    // with appendBeforePersist those leave now, before any crash point below.
    const early = this.#cfg.appendBeforePersist;
    if (early)
      this.#send(
        rd.messages.filter((m) => m.type === MessageType.MsgApp),
        net,
      );
    // Crash in the middle of the write: a torn tail loses a suffix of entries and the hard state
    // (written after them), and nothing was sent.
    if (!this.#calm && this.rng.chance(0.002 * this.faultiness) && rd.entries.length > 0) {
      sn.storage.append(rd.entries.slice(0, this.rng.int(rd.entries.length)));
      this.#crash(sn);
      return;
    }
    if (rd.snapshot !== undefined) {
      sn.storage.applySnapshot(rd.snapshot);
    }
    if (rd.hardState !== undefined) sn.storage.setHardState(rd.hardState);
    sn.storage.append(rd.entries);
    // A brand-new leader that dies after writing its first entry but before sending it.
    const newLeader = rd.softState?.raftState === StateType.Leader && !this.#calm;
    const fig8Victim =
      newLeader && this.#fig8?.phase === 1 && sn.id !== this.#fig8.old && this.#fig8Victim(sn.id);
    const youngDeath = fig8Victim || (newLeader && this.rng.chance(0.1 * this.faultiness));
    if (youngDeath) this.#afterStep(sn);
    if (youngDeath || (!this.#calm && this.rng.chance(0.003 * this.faultiness))) {
      this.#crash(sn);
      return;
    }
    this.#send(early ? rd.messages.filter((m) => m.type !== MessageType.MsgApp) : rd.messages, net);
    for (const rs of rd.readStates) this.#checkRead(sn, rs.index, rs.requestCtx);
    if (rd.snapshot !== undefined) this.#applySnapshot(sn, rd);
    for (const e of rd.committedEntries) this.#apply(sn, e);
    if (this.member && rd.committedEntries.length > 0) this.#checkMemberHash(sn, sn.appliedIndex);
    node.advance(rd);
    this.#afterStep(sn);
    // member mode: the server's snapshotter may start a snapshot after any applied batch
    // (Applier afterApply → Snapshotter.maybeTrigger), a replay of entries the db holds included
    const applied = rd.committedEntries.length > 0 && sn.node === node;
    if (this.member && applied && !this.#calm && this.rng.chance(0.05)) this.#compact(sn);
  }

  #send(raftMsgs: Message[], net: { maxDelay: number }): void {
    const msgs = this.#cfg.coalesce
      ? coalesceMessages(raftMsgs, this.#cfg.maxSizePerMsg)
      : raftMsgs;
    for (const msg of msgs) {
      let m = msg;
      if (m.type === MessageType.MsgSnap) {
        if (this.member) {
          const merged = this.#memberSnapshotMessage(m);
          if (merged === undefined) continue;
          m = merged;
        }
        this.stats.snapshotsSent++;
      }
      this.net.push({ m, deliverAt: this.now + this.rng.int(net.maxDelay + 1) });
    }
  }

  /**
   * member mode: what the server sends for a MsgSnap (EtcdServer's #sendSnapshot, etcd's
   * createMergedSnapshotMessage): the member's db as of now, with the applied index, its term and
   * the applier's conf state as the snapshot's metadata; none while the member replays entries its
   * db holds (reported failed: raft tries again later).
   */
  #memberSnapshotMessage(m: Message): Message | undefined {
    const from = this.nodes.get(m.from)!;
    const member = from.member!;
    if (member.applier.replayingDb) {
      from.node?.reportSnapshot(m.to, "failure");
      return undefined;
    }
    return {
      ...m,
      snapshot: {
        data: member.dbFile(),
        metadata: {
          index: member.appliedIndex,
          term: member.applier.appliedTerm,
          confState: member.applier.confState ?? from.confState,
        },
      },
    };
  }

  #applySnapshot(sn: SimNode, rd: Ready): void {
    const md = rd.snapshot!.metadata!;
    const known = this.committedTerm[md.index];
    if (known !== undefined && known !== md.term) {
      throw new SimViolation(
        "state-machine-safety",
        `node ${sn.id} installed snapshot (${md.index},${md.term}) but committed term there is ${known}`,
      );
    }
    sn.appliedIndex = md.index;
    sn.confState = md.confState!;
    if (this.member) {
      const db = rd.snapshot!.data;
      const ci = sn.member!.installSnapshot(db, {
        index: md.index,
        term: md.term,
        confState: md.confState!,
      });
      // the received db goes in place of the member's (etcd's applySnapshot)
      sn.db = { bytes: db, index: ci };
      this.#checkMemberLoaded(sn, md.index, ci, md.index, "installed a snapshot");
    }
    if (
      sn.confState.voters.length + sn.confState.learners.length > 0 &&
      !sn.confState.voters.includes(sn.id) &&
      !sn.confState.learners.includes(sn.id)
    ) {
      this.#markRemoved(sn.id);
    }
  }

  #apply(sn: SimNode, e: Entry): void {
    if (e.index <= sn.appliedIndex) {
      throw new SimViolation(
        "state-machine-safety",
        `node ${sn.id} applied index ${e.index} again (applied ${sn.appliedIndex})`,
      );
    }
    if (e.index !== sn.appliedIndex + 1) {
      throw new SimViolation(
        "state-machine-safety",
        `node ${sn.id} applied ${e.index} after ${sn.appliedIndex} (gap)`,
      );
    }
    const key = dataKey(e) + `@${e.term}`;
    const prev = this.appliedKey[e.index];
    if (prev === undefined) this.appliedKey[e.index] = key;
    else if (prev !== key) {
      throw new SimViolation(
        "state-machine-safety",
        `index ${e.index}: node ${sn.id} applied ${key} but another node applied ${prev}`,
      );
    }
    sn.appliedIndex = e.index;
    this.stats.appliedEntries++;
    if (this.member) {
      // the applier applies conf changes too, through #afterConfChange
      const rec = sn.member!.apply(e);
      if (rec !== undefined) this.#checkMemberRecord(sn, rec);
      // the first member to apply an index records the hash there, so every other member's
      // hash at the end of any batch has something to be compared with
      if (!this.memberHash.has(e.index) && !sn.member!.applier.replayingDb)
        this.#checkMemberHash(sn, e.index);
      return;
    }
    if (e.type === EntryType.EntryConfChange) {
      const cc = ConfChange.fromBinary(e.data);
      this.#afterConfChange(sn, cc, sn.node!.applyConfChange(cc));
    }
  }

  /** A conf change applied to raft: the node's conf state, removals and new nodes. */
  #afterConfChange(sn: SimNode, cc: ConfChange, cs: ConfState): void {
    sn.confState = cs;
    if (cc.type === ConfChangeType.ConfChangeRemoveNode) this.#markRemoved(cc.nodeID);
    if (
      (cc.type === ConfChangeType.ConfChangeAddNode ||
        cc.type === ConfChangeType.ConfChangeAddLearnerNode) &&
      !this.nodes.has(cc.nodeID)
    ) {
      this.#newSimNode(cc.nodeID);
    }
  }

  #markRemoved(id: bigint): void {
    const sn = this.nodes.get(id);
    if (sn === undefined || sn.removed) return;
    // Like an etcd member that applied its own removal: it shuts down for good.
    sn.removed = true;
    sn.node = undefined;
  }

  // ------------------------------------------------------------------ invariants

  #checkEntry(sn: SimNode, e: Entry): void {
    const k = `${e.index}:${e.term}`;
    const dk = dataKey(e);
    const prev = this.entryKey.get(k);
    if (prev === undefined) this.entryKey.set(k, dk);
    else if (prev !== dk) {
      throw new SimViolation(
        "log-matching",
        `node ${sn.id} has entry (${e.index},${e.term}) with different data than another log`,
      );
    }
  }

  #afterStep(sn: SimNode): void {
    if (sn.node === undefined) return;
    const r = sn.node.raft;
    // Election safety.
    if (r.state === StateType.Leader) {
      const l = this.leaderOfTerm.get(r.term);
      if (l === undefined) {
        this.leaderOfTerm.set(r.term, sn.id);
        if (this.#lastYoung !== undefined) {
          if (this.#lastYoung === sn.id) fig8Stats.youngWon++;
          this.#lastYoung = undefined;
        }
        this.stats.leadersElected++;
        // A leader that dies young leaves its term's first entry on a minority: the raw
        // material of the Raft paper's Figure 8.
        if (!this.#calm && this.rng.chance(0.05 * this.faultiness))
          this.#doomed.push({ id: sn.id, at: this.now + this.rng.int(3) });
        this.#checkLeaderCompleteness(sn);
      } else if (l !== sn.id) {
        throw new SimViolation(
          "election-safety",
          `two leaders in term ${r.term}: ${l} and ${sn.id}`,
        );
      }
    }
    // Commit knowledge: entries up to commit are committed forever with these terms.
    const log = r.raftLog;
    const c = log.committed;
    for (let i = Math.max(sn.knownCommit + 1, log.firstIndex()); i <= c; i++) {
      const t = log.termOrZero(i);
      if (t === 0) continue;
      const known = this.committedTerm[i];
      if (known === undefined) this.committedTerm[i] = t;
      else if (known !== t) {
        throw new SimViolation(
          "committed-never-lost",
          `index ${i} committed with term ${known} but node ${sn.id} commits term ${t}`,
        );
      }
    }
    sn.knownCommit = Math.max(sn.knownCommit, c);
    if (c > this.maxCommitted) this.maxCommitted = c;
    this.#fig8Watch(sn);
  }

  #checkLeaderCompleteness(sn: SimNode): void {
    const log = sn.node!.raft.raftLog;
    const first = log.firstIndex();
    const last = log.lastIndex();
    for (let i = first; i < this.committedTerm.length; i++) {
      const t = this.committedTerm[i];
      if (t === undefined) continue;
      if (i > last || log.termOrZero(i) !== t) {
        throw new SimViolation(
          "leader-completeness",
          `leader ${sn.id} of term ${sn.node!.raft.term} lacks committed entry (${i},${t}) (has term ${i > last ? "none" : log.termOrZero(i)}, last ${last})`,
        );
      }
    }
  }

  #checkRead(sn: SimNode, index: number, ctx: Uint8Array): void {
    const key = new TextDecoder().decode(ctx);
    const req = this.pendingReads.get(key);
    if (req === undefined) return; // duplicate answer
    this.pendingReads.delete(key);
    this.stats.readsChecked++;
    if (index < req.minIndex) {
      throw new SimViolation(
        "read-index-linearizable",
        `read ${key} at node ${sn.id} got index ${index} but ${req.minIndex} was committed before it started`,
      );
    }
  }

  /** Pairwise log matching on the alive nodes' full logs (cheap at simulator sizes). */
  #checkLogMatching(): void {
    if (this.now % 5 !== 0) return;
    const logs = this.alive().map((s) => ({ id: s.id, log: s.node!.raft.raftLog }));
    for (let a = 0; a < logs.length; a++) {
      for (let b = a + 1; b < logs.length; b++) {
        const la = logs[a]!.log;
        const lb = logs[b]!.log;
        const lo = Math.max(la.firstIndex(), lb.firstIndex());
        const hi = Math.min(la.lastIndex(), lb.lastIndex());
        // Find the highest index with equal terms; everything below it must be equal too.
        let i = hi;
        while (i >= lo && la.termOrZero(i) !== lb.termOrZero(i)) i--;
        for (let j = i; j >= lo; j--) {
          if (la.termOrZero(j) !== lb.termOrZero(j)) {
            throw new SimViolation(
              "log-matching",
              `nodes ${logs[a]!.id} and ${logs[b]!.id} agree at ${i} but differ at ${j}`,
            );
          }
        }
      }
    }
  }

  // ------------------------------------------------------------------ faults and workload

  #crash(sn: SimNode): void {
    if (sn.node === undefined) return;
    sn.node = undefined;
    this.stats.crashes++;
  }

  #crashOne(): void {
    const alive = this.alive();
    if (alive.length === 0) return;
    this.#crash(this.rng.pick(alive));
  }

  #restartOne(): void {
    const down = [...this.nodes.values()].filter(
      (s) => s.node === undefined && !s.removed && s.id !== this.#fig8?.young,
    );
    if (down.length === 0) return;
    this.#start(this.rng.pick(down));
  }

  #partitionRandomly(): void {
    this.partition.clear();
    for (const id of this.nodes.keys()) this.partition.set(id, this.rng.int(2));
  }

  /**
   * A fault schedule aimed at the Raft paper's Figure 8 (a nemesis, as Jepsen's): isolate the
   * leader L; let the others elect D and kill D right after it writes its first entry; heal so
   * L can win again; kill L a few ticks into its catch-up round and bring D back. A correct
   * Raft survives it; one that commits earlier-term entries by counting does not.
   */
  #figure8Nemesis(): void {
    const f8 = this.#fig8;
    if (f8 === undefined) {
      if (this.nodes.size < 3 || !this.rng.chance(0.01 * this.faultiness)) return;
      const l = this.leader();
      if (l === undefined) return;
      fig8Stats.started++;
      this.#fig8 = { phase: 1, old: l.id, young: undefined, deadline: this.now + 200, commitAt: 0 };
      this.#isolateLeader();
      return;
    }
    const l = this.leader();
    if (this.now > f8.deadline) {
      this.#fig8 = undefined;
    } else if (f8.phase === 2) {
      if (l?.id === f8.old) {
        fig8Stats.reelected++;
        f8.phase = 3;
        f8.commitAt = l.node!.raft.raftLog.committed;
      }
    }
  }

  /** Phase 3 of the Figure 8 nemesis: kill the re-elected leader as soon as its commit index moves. */
  #fig8Watch(sn: SimNode): void {
    const f8 = this.#fig8;
    if (this.#calm || f8?.phase !== 3 || sn.id !== f8.old || sn.node === undefined) return;
    if (sn.node.raft.raftLog.committed <= f8.commitAt) return;
    fig8Stats.crashed++;
    this.#lastYoung = f8.young;
    this.#crash(sn);
    const young = f8.young !== undefined ? this.nodes.get(f8.young) : undefined;
    this.#fig8 = undefined;
    if (young !== undefined && young.node === undefined && !young.removed) this.#start(young);
  }

  /** Phase 1 of the Figure 8 nemesis: the new leader dies young; heal for the old one. */
  #fig8Victim(id: bigint): boolean {
    const f8 = this.#fig8!;
    fig8Stats.victims++;
    f8.young = id;
    f8.phase = 2;
    this.partition.clear();
    return true;
  }

  #isolateLeader(): void {
    const l = this.leader();
    if (l === undefined) return;
    this.partition.clear();
    for (const id of this.nodes.keys()) this.partition.set(id, id === l.id ? 1 : 0);
  }

  #proposeRandom(): void {
    const alive = this.alive();
    if (alive.length === 0) return;
    const sn = this.rng.chance(0.7)
      ? (this.leader() ?? this.rng.pick(alive))
      : this.rng.pick(alive);
    if (this.member) {
      sn.member!.propose(randomRequest(this.rng, this.propSeq++, this.workload));
    } else {
      const data = new TextEncoder().encode(`p${this.propSeq++}`);
      try {
        sn.node!.propose(data);
      } catch (e) {
        if (!(e instanceof ErrProposalDropped)) throw e;
      }
    }
    this.#process(sn, { drop: 0, dup: 0, maxDelay: 3 });
  }

  #readRandom(): void {
    const alive = this.alive();
    if (alive.length === 0) return;
    const sn = this.rng.pick(alive);
    const key = `r${this.readSeq++}`;
    // Linearizability: the answer must cover everything committed anywhere before the request.
    this.pendingReads.set(key, { minIndex: this.maxCommitted, node: sn.id });
    try {
      sn.node!.readIndex(new TextEncoder().encode(key));
    } catch (e) {
      if (!(e instanceof ErrProposalDropped)) throw e;
      this.pendingReads.delete(key);
    }
  }

  #confChangeRandom(): void {
    const l = this.leader();
    if (l === undefined) return;
    const cs = l.confState;
    const rng = this.rng;
    let cc: ConfChange | undefined;
    const choice = rng.int(3);
    if (choice === 0 && this.nodes.size < this.n + 3) {
      cc = ConfChange.create({
        type: ConfChangeType.ConfChangeAddLearnerNode,
        nodeID: this.nextId,
        context: this.member ? simMemberContext(this.nextId, true) : new Uint8Array(0),
      });
    } else if (choice === 1 && cs.learners.length > 0) {
      const id = rng.pick(cs.learners);
      cc = ConfChange.create({
        type: ConfChangeType.ConfChangeAddNode,
        nodeID: id,
        context: this.member ? encodePromoteContext(id) : new Uint8Array(0),
      });
    } else if (choice === 2 && cs.voters.length > 2) {
      cc = ConfChange.create({
        type: ConfChangeType.ConfChangeRemoveNode,
        nodeID: rng.pick(cs.voters),
      });
    }
    if (cc === undefined) return;
    if (this.member) {
      // etcd's configure: the member's proposals give the change its id and wait for its apply
      l.member!.proposeConfChange(cc);
      if (cc.nodeID === this.nextId) this.nextId++;
      this.stats.confChanges++;
      return;
    }
    try {
      l.node!.proposeConfChange(cc);
      if (cc.nodeID === this.nextId) this.nextId++;
      this.stats.confChanges++;
    } catch (e) {
      if (!(e instanceof ErrProposalDropped)) throw e;
    }
  }

  #compactRandom(): void {
    const alive = this.alive();
    if (alive.length === 0) return;
    this.#compact(this.rng.pick(alive));
  }

  /** A snapshot of what `sn` applied, and its log compacted behind it (keeping a few entries). */
  #compact(sn: SimNode): void {
    const snapIndex = sn.storage.snapshot().metadata?.index ?? 0;
    // Snapshot what is applied, keep a few entries for slow followers (as etcd's snapshot catch-up entries).
    if (sn.appliedIndex <= snapIndex + 2) return;
    if (sn.appliedIndex > sn.storage.lastIndex()) return;
    // member mode: the snapshot is the member's state as a db file, written first (the server's
    // snapshotter: db, then .snap, then the WAL record); a crash in between leaves the db ahead
    // of the last snapshot, and the restart replays the entries after the snapshot, skipping
    // those the db holds
    let data: Uint8Array;
    if (this.member) {
      // the server's snapshotter waits while the member replays entries its db holds
      // (Applier.replayingDb); the known-wrong member snapshotWhileReplaying does not
      if (sn.member!.applier.replayingDb) {
        if (!this.memberKnobs.snapshotWhileReplaying) return;
        this.stats.snapshotsWhileReplaying++;
      }
      data = sn.member!.dbFile();
      sn.db = { bytes: data, index: sn.appliedIndex };
      if (!this.#calm && this.rng.chance(0.1 * this.faultiness)) {
        this.#crash(sn);
        return;
      }
    } else {
      data = new TextEncoder().encode(`snap@${sn.appliedIndex}`);
    }
    sn.storage.createSnapshot(sn.appliedIndex, sn.confState, data);
    const keep = this.rng.int(4);
    const compactTo = sn.appliedIndex - keep;
    if (compactTo > snapIndex) sn.storage.compact(compactTo);
  }

  #transferRandom(): void {
    const l = this.leader();
    if (l === undefined || l.confState.voters.length < 2) return;
    const to = this.rng.pick(l.confState.voters.filter((v) => v !== l.id));
    l.node!.transferLeader(to);
  }

  /**
   * member mode, after the liveness phase: with the network calm, every member in the
   * configuration reaches the leader's commit index within `maxTicks`, and so the same state
   * (#checkMemberHash compares each at the index it stands at).
   */
  #converge(maxTicks: number): void {
    const calm = { drop: 0, dup: 0, maxDelay: 1 };
    let behind: SimNode[] = [];
    for (let t = 0; t < maxTicks; t++) {
      this.#tickAll(calm);
      const l = this.leader();
      if (l === undefined) continue;
      // the leader keeps snapshotting (see #liveness: a learner added after its last snapshot
      // can only start from a newer one)
      if (t % 20 === 0) this.#compact(l);
      const commit = l.node!.raft.raftLog.committed;
      const inConfig = new Set([...l.confState.voters, ...l.confState.learners]);
      behind = this.alive().filter((s) => inConfig.has(s.id) && s.member!.appliedIndex < commit);
      if (behind.length === 0) return;
    }
    throw new SimViolation(
      "member-convergence",
      `members ${behind.map((s) => s.id).join(",")} did not apply up to the leader's commit within ${maxTicks} calm ticks (${this.dump()})`,
    );
  }

  /** Heal everything; a leader must emerge and commit a fresh proposal within bounded ticks. */
  #liveness(maxTicks: number): void {
    this.#calm = true;
    this.#fig8 = undefined;
    this.partition.clear();
    for (const s of this.nodes.values()) if (s.node === undefined && !s.removed) this.#start(s);
    const calm = { drop: 0, dup: 0, maxDelay: 1 };
    const start = this.now;
    let proposedKey: string | undefined;
    let proposedAt = 0;
    while (this.now - start < maxTicks) {
      // Keep snapshotting as a server does: a member added after the last snapshot can only be
      // restored from a newer one (raft ignores a snapshot whose ConfState lacks the receiver).
      if (this.rng.chance(0.05)) this.#compactRandom();
      this.#tickAll(calm);
      const l = this.leader();
      if (l === undefined) continue;
      if (proposedKey === undefined || this.now - proposedAt > 3 * electionTick) {
        proposedKey = `<live${this.propSeq++}>`;
        proposedAt = this.now;
        const bytes = new TextEncoder().encode(proposedKey);
        if (this.member) {
          l.member!.propose(
            InternalRaftRequest.create({
              put: {
                key: bytes,
                value: bytes,
                lease: 0n,
                prevKv: false,
                ignoreValue: false,
                ignoreLease: false,
              },
            }),
          );
        } else {
          try {
            l.node!.propose(bytes);
          } catch (e) {
            if (!(e instanceof ErrProposalDropped)) throw e;
          }
        }
        this.#process(l, calm);
      }
      // a plain entry is the key itself; a member's put carries it as its key and value
      const want = proposedKey;
      if (this.appliedKey.some((k) => k !== undefined && k.startsWith("0:") && k.includes(want)))
        return;
    }
    throw new SimViolation(
      "liveness",
      `no leader committed a proposal within ${maxTicks} ticks of healing (leader: ${this.leader()?.id ?? "none"}; ${this.dump()})`,
    );
  }
}

/** Runs one seed; throws SimViolation (message includes the seed) on a broken invariant. */
export function runSeed(opts: SimOptions): SimResult {
  const sim = new Simulation(opts);
  try {
    return sim.run(opts);
  } catch (e) {
    if (e instanceof SimViolation) {
      const v = new SimViolation(
        e.invariant,
        `${e.message.slice(e.invariant.length + 2)} [${sim.describe()} at tick ${sim.now}]`,
      );
      throw v;
    }
    throw new Error(
      `simulator crashed [${sim.describe()} at tick ${sim.now}]: ${(e as Error).stack}`,
    );
  } finally {
    sim.stop();
  }
}
