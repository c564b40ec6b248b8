/**
 * Raft: the consensus rules as a pure state machine (etcd-io/raft's raft.go). It never does I/O:
 * time arrives through tick(), messages through step(), and the work it produces (messages,
 * entries to persist, committed entries, read states) is collected by RawNode into a Ready.
 * Per-role behaviour lives in stepLeader / stepCandidate / stepFollower (STYLE §1).
 */
import {
  ConfChange,
  ConfChangeType,
  type ConfState,
  type Entry,
  EntryType,
  type HardState,
  type Message,
  MessageType,
  type Snapshot,
} from "../proto/gen/raftpb/raft.js";
import {
  ErrCompacted,
  ErrInvalidConfChange,
  ErrInvalidConfig,
  ErrProposalDropped,
  ErrSnapshotTemporarilyUnavailable,
  ErrUnavailable,
  invariant,
} from "./errors.js";
import { entrySizeBytes, payloadSizeBytes } from "./entry-size.js";
import { RaftLog } from "./log.js";
import { VoteResult } from "./quorum/majority.js";
import { ReadOnly, type ReadOnlyOption } from "./read-only.js";
import { isEmptyHardState, snapshotIndex, snapshotTerm, type Storage } from "./storage.js";
import { Inflights } from "./tracker/inflights.js";
import { Progress, ProgressState } from "./tracker/progress.js";
import { ProgressTracker } from "./tracker/tracker.js";

/** The placeholder node id meaning "nobody" (no leader, no vote). */
export const None = 0n;

/** Logger used by lib/raft; defaults to a silent one. */
export interface RaftLogger {
  debug(msg: string): void;
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
}

/**
 * Test-only switches that turn on known-wrong behaviour so the simulator can prove it catches
 * them. Never set in production.
 */
export interface RaftTestingKnobs {
  /** Grant votes without the §5.4.1 log up-to-date check. */
  skipVoteLogCheck?: boolean;
  /** Commit an earlier term's entry by counting replicas (the Raft paper's Figure 8 bug). */
  commitPrevTermByCount?: boolean;
  /** Answer ReadIndex before the leader has committed an entry of its own term. */
  readIndexBeforeCommitInTerm?: boolean;
  /** Leave the vote out of the HardState handed to the application (so it is never persisted). */
  forgetPersistVote?: boolean;
}

/** Configuration of one raft node (etcd-io/raft's Config). Ticks are abstract time units. */
export interface RaftConfig {
  /** This node's id; must not be 0. */
  id: bigint;
  /** Ticks without hearing from a leader before a follower campaigns (randomised in [electionTick, 2*electionTick)). */
  electionTick: number;
  /** Ticks between leader heartbeats; must be < electionTick. */
  heartbeatTick: number;
  storage: Storage;
  /** Last applied index on restart (entries ≤ applied are not handed out again). */
  applied?: number;
  /** Max bytes of entries per MsgApp (at least one entry is always sent). Default 1 MiB. */
  maxSizePerMsg?: number;
  /** Max bytes of committed entries per Ready. Default 64 MiB. */
  maxCommittedSizePerReady?: number;
  /** Max MsgApp in flight per follower in Replicate state. Default 256. */
  maxInflightMsgs?: number;
  /** Max payload bytes in flight per follower (0 = unlimited). Default 0. */
  maxInflightBytes?: number;
  /** Max payload bytes of uncommitted entries the leader accepts (0 = unlimited). Default 0. */
  maxUncommittedEntriesSize?: number;
  /** Raft thesis §9.6 pre-vote. Default false. */
  preVote?: boolean;
  /** Leader steps down when it has not heard from a quorum within an election timeout. Default false. */
  checkQuorum?: boolean;
  /** Followers drop proposals instead of forwarding them to the leader. Default false. */
  disableProposalForwarding?: boolean;
  /** How ReadIndex confirms leadership. Default "safe". "lease-based" requires checkQuorum. */
  readOnlyOption?: ReadOnlyOption;
  /** Max pending ReadIndex requests at the leader. Default 4096. */
  maxPendingReadIndexRequests?: number;
  /** Seeded random source in [0, 1) for the election timeout. */
  random: () => number;
  logger?: RaftLogger;
  /** Test-only known-wrong variants; see RaftTestingKnobs. */
  testingKnobs?: RaftTestingKnobs;
}

/** Role of a node (etcd's StateType; numeric values as etcd). */
export enum StateType {
  Follower = 0,
  Candidate = 1,
  Leader = 2,
  PreCandidate = 3,
}

/** Volatile state shown to the application (not persisted). */
export interface SoftState {
  lead: bigint;
  raftState: StateType;
}

/** A ReadIndex answer: reads with requestCtx are linearizable once applied ≥ index. */
export interface ReadState {
  index: number;
  requestCtx: Uint8Array;
}

enum CampaignType {
  PreElection = 0,
  Election = 1,
  Transfer = 2,
}

/** MsgVote context marking a leader-transfer election (etcd's "CampaignTransfer"). */
const campaignTransferCtx = new TextEncoder().encode("CampaignTransfer");
const emptyBytes = new Uint8Array(0);
const silentLogger: RaftLogger = { debug() {}, info() {}, warn() {}, error() {} };

const MiB = 1024 * 1024;
export const defaultMaxSizePerMsgBytes = 1 * MiB;
export const defaultMaxCommittedSizePerReadyBytes = 64 * MiB;
export const defaultMaxInflightMsgs = 256;
export const defaultMaxPendingReadIndexRequests = 4096;

/** A message with every field defaulted; `fields` override. */
export function newMessage(fields: Partial<Message> & { type: MessageType }): Message {
  return {
    type: fields.type,
    to: fields.to ?? 0n,
    from: fields.from ?? 0n,
    term: fields.term ?? 0,
    logTerm: fields.logTerm ?? 0,
    index: fields.index ?? 0,
    entries: fields.entries ?? [],
    commit: fields.commit ?? 0,
    snapshot: fields.snapshot,
    reject: fields.reject ?? false,
    rejectHint: fields.rejectHint ?? 0,
    context: fields.context ?? emptyBytes,
  };
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function voteRespMsgType(t: MessageType): MessageType {
  return t === MessageType.MsgVote ? MessageType.MsgVoteResp : MessageType.MsgPreVoteResp;
}

/** Message types only the local node generates (RawNode.step refuses them from the network). */
export function isLocalMsg(t: MessageType): boolean {
  return (
    t === MessageType.MsgHup ||
    t === MessageType.MsgBeat ||
    t === MessageType.MsgUnreachable ||
    t === MessageType.MsgSnapStatus ||
    t === MessageType.MsgCheckQuorum
  );
}

/** Response message types (RawNode.step drops them from unknown peers). */
export function isResponseMsg(t: MessageType): boolean {
  return (
    t === MessageType.MsgAppResp ||
    t === MessageType.MsgVoteResp ||
    t === MessageType.MsgHeartbeatResp ||
    t === MessageType.MsgUnreachable ||
    t === MessageType.MsgPreVoteResp
  );
}

function idName(id: bigint): string {
  return id.toString(16);
}

/** The raft state machine. Used through RawNode; exported for tests and the simulator. */
export class Raft {
  readonly id: bigint;
  term = 0;
  vote: bigint = None;
  readStates: ReadState[] = [];
  readonly raftLog: RaftLog;
  readonly maxMsgSizeBytes: number;
  readonly maxUncommittedSizeBytes: number;
  trk: ProgressTracker;
  state: StateType = StateType.Follower;
  /** This node is a learner (never campaigns or votes... except on request from a leader transfer, which is refused). */
  isLearner = false;
  /** Messages to send, collected into the next Ready. */
  msgs: Message[] = [];
  lead: bigint = None;
  /** Target of a leader transfer in progress (None if none). */
  leadTransferee: bigint = None;
  /** Index of the last conf change proposed; no new one is accepted until applied ≥ it. */
  pendingConfIndex = 0;
  /** Payload bytes of uncommitted entries appended by this leader. */
  uncommittedSizeBytes = 0;
  readOnly: ReadOnly;
  /** ReadIndex requests waiting for the leader's first commit in its term. */
  pendingReadIndexMessages: Message[] = [];
  electionElapsed = 0;
  heartbeatElapsed = 0;
  readonly checkQuorum: boolean;
  readonly preVote: boolean;
  readonly heartbeatTimeout: number;
  readonly electionTimeout: number;
  randomizedElectionTimeout = 0;
  readonly disableProposalForwarding: boolean;
  readonly logger: RaftLogger;
  readonly knobs: RaftTestingKnobs;
  readonly #random: () => number;
  #tick: () => void = () => this.tickElection();
  #step: (m: Message) => void = (m) => this.stepFollower(m);

  constructor(c: RaftConfig) {
    validateConfig(c);
    this.id = c.id;
    this.#random = c.random;
    this.logger = c.logger ?? silentLogger;
    this.knobs = c.testingKnobs ?? {};
    this.raftLog = new RaftLog(
      c.storage,
      c.maxCommittedSizePerReady ?? defaultMaxCommittedSizePerReadyBytes,
    );
    const { hardState, confState } = c.storage.initialState();
    this.maxMsgSizeBytes = c.maxSizePerMsg ?? defaultMaxSizePerMsgBytes;
    this.maxUncommittedSizeBytes = c.maxUncommittedEntriesSize ?? 0;
    this.trk = new ProgressTracker(
      c.maxInflightMsgs ?? defaultMaxInflightMsgs,
      c.maxInflightBytes ?? 0,
    );
    this.electionTimeout = c.electionTick;
    this.heartbeatTimeout = c.heartbeatTick;
    this.checkQuorum = c.checkQuorum ?? false;
    this.preVote = c.preVote ?? false;
    this.disableProposalForwarding = c.disableProposalForwarding ?? false;
    this.readOnly = new ReadOnly(
      c.readOnlyOption ?? "safe",
      c.maxPendingReadIndexRequests ?? defaultMaxPendingReadIndexRequests,
    );

    this.#restoreConfState(confState);
    if (!isEmptyHardState(hardState)) this.loadState(hardState);
    if (c.applied !== undefined && c.applied > 0) this.raftLog.appliedTo(c.applied);
    this.becomeFollower(this.term, None);
    this.logger.info(
      `newRaft ${idName(this.id)} [peers: [${[...this.trk.voters].map(idName).join(",")}], term: ${this.term}, ` +
        `commit: ${this.raftLog.committed}, applied: ${this.raftLog.applied}, lastindex: ${this.raftLog.lastIndex()}, lastterm: ${this.raftLog.lastTerm()}]`,
    );
  }

  // ---------------------------------------------------------------- state views

  softState(): SoftState {
    return { lead: this.lead, raftState: this.state };
  }

  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.raftLog.committed };
  }

  loadState(hs: HardState): void {
    invariant(
      hs.commit >= this.raftLog.committed && hs.commit <= this.raftLog.lastIndex(),
      () =>
        `${idName(this.id)} state.commit ${hs.commit} is out of range [${this.raftLog.committed}, ${this.raftLog.lastIndex()}]`,
    );
    this.raftLog.committed = hs.commit;
    this.term = hs.term;
    this.vote = hs.vote;
  }

  /** A voter that can campaign: in the config, not a learner, no snapshot pending. */
  promotable(): boolean {
    const pr = this.trk.progress.get(this.id);
    return pr !== undefined && !pr.isLearner && !this.raftLog.hasNextOrInProgressSnapshot();
  }

  // ---------------------------------------------------------------- sending

  /** Queues m for sending, stamping from and (for all but proposals/read-index) the current term. */
  send(m: Message): void {
    // Forwarded messages (a transfer request names the transferee in from) keep their sender.
    if (m.from === None) m.from = this.id;
    if (
      m.type === MessageType.MsgVote ||
      m.type === MessageType.MsgVoteResp ||
      m.type === MessageType.MsgPreVote ||
      m.type === MessageType.MsgPreVoteResp
    ) {
      // Vote messages carry the term of the election, set by the caller.
      invariant(m.term !== 0, () => `term should be set when sending ${MessageType[m.type]}`);
    } else {
      invariant(
        m.term === 0,
        () => `term should not be set when sending ${MessageType[m.type]} (was ${m.term})`,
      );
      // Proposals and read-index requests are forwarded as local messages (term 0).
      if (m.type !== MessageType.MsgProp && m.type !== MessageType.MsgReadIndex) m.term = this.term;
    }
    this.msgs.push(m);
  }

  /** Sends an append (or a snapshot) to `to` if it is not paused; see maybeSendAppend. */
  sendAppend(to: bigint): void {
    this.maybeSendAppend(to, true);
  }

  /**
   * Sends an append with the entries after pr.next (or a snapshot when they were compacted)
   * unless the follower is paused. With sendIfEmpty false, sends nothing when there is nothing new.
   * Returns true if a message was sent.
   */
  maybeSendAppend(to: bigint, sendIfEmpty: boolean): boolean {
    const pr = this.trk.progress.get(to);
    if (pr === undefined || pr.isPaused()) return false;
    const prevIndex = pr.next - 1;
    let prevTerm: number;
    let ents: Entry[];
    try {
      prevTerm = this.raftLog.term(prevIndex);
      ents = this.raftLog.entries(pr.next, this.maxMsgSizeBytes);
    } catch (e) {
      if (e instanceof ErrCompacted || e instanceof ErrUnavailable)
        return this.#maybeSendSnapshot(to, pr);
      throw e;
    }
    if (ents.length === 0 && !sendIfEmpty) return false;
    let bytes = 0;
    for (let i = 0; i < ents.length; i++) bytes += entrySizeBytes(ents[i]!);
    this.send(
      newMessage({
        type: MessageType.MsgApp,
        to,
        index: prevIndex,
        logTerm: prevTerm,
        entries: ents,
        commit: this.raftLog.committed,
      }),
    );
    pr.sentEntries(ents.length, ents.length > 0 ? ents[ents.length - 1]!.index : 0, bytes);
    return true;
  }

  #maybeSendSnapshot(to: bigint, pr: Progress): boolean {
    // Only send a (large) snapshot to a follower we have recently heard from.
    if (!pr.recentActive) {
      this.logger.debug(`ignore sending snapshot to ${idName(to)} since it is not recently active`);
      return false;
    }
    let snap: Snapshot;
    try {
      snap = this.raftLog.snapshot();
    } catch (e) {
      if (e instanceof ErrSnapshotTemporarilyUnavailable) {
        this.logger.debug(
          `${idName(this.id)} failed to send snapshot to ${idName(to)} because snapshot is temporarily unavailable`,
        );
        return false;
      }
      throw e;
    }
    invariant(snapshotIndex(snap) !== 0, "need non-empty snapshot");
    this.logger.debug(
      `${idName(this.id)} sent snapshot[index: ${snapshotIndex(snap)}, term: ${snapshotTerm(snap)}] to ${idName(to)}`,
    );
    pr.becomeSnapshot(snapshotIndex(snap));
    this.send(newMessage({ type: MessageType.MsgSnap, to, snapshot: snap }));
    return true;
  }

  /** Heartbeat to `to` carrying `ctx` (a pending ReadIndex context) and a commit it can apply safely. */
  sendHeartbeat(to: bigint, ctx: Uint8Array | undefined): void {
    // Never tell a follower to commit beyond what it is known to have (it may not have the entries).
    const commit = Math.min(this.trk.progress.get(to)!.match, this.raftLog.committed);
    this.send(
      newMessage({ type: MessageType.MsgHeartbeat, to, commit, context: ctx ?? emptyBytes }),
    );
  }

  /** Sends appends to every other member (voters then learners, ascending ids for determinism). */
  bcastAppend(): void {
    for (const id of this.#peerIds()) if (id !== this.id) this.sendAppend(id);
  }

  bcastHeartbeat(): void {
    const ctx = this.readOnly.lastPendingRequestCtx();
    for (const id of this.#peerIds()) if (id !== this.id) this.sendHeartbeat(id, ctx);
  }

  #peerIdsCache: bigint[] | undefined;
  #peerIds(): bigint[] {
    if (this.#peerIdsCache === undefined) {
      this.#peerIdsCache = [...this.trk.progress.keys()].sort((a, b) =>
        a < b ? -1 : a > b ? 1 : 0,
      );
    }
    return this.#peerIdsCache;
  }

  // ---------------------------------------------------------------- commit

  /** Advances commit to the quorum-acked index if it holds an entry of the current term. */
  maybeCommit(): boolean {
    const mci = this.trk.committed();
    if (this.knobs.commitPrevTermByCount) {
      // Known-wrong (test only): commit whatever a majority holds, whatever its term.
      const idx = Math.min(mci, this.raftLog.lastIndex());
      if (idx > this.raftLog.committed) {
        this.raftLog.commitTo(idx);
        return true;
      }
      return false;
    }
    return this.raftLog.maybeCommit(mci, this.term);
  }

  /**
   * The leader's own log is persisted up to (index, term) (RawNode.advance): count it as the
   * leader's ack, as etcd-io/raft's self-addressed MsgAppResp after a storage write.
   */
  selfAckPersisted(index: number, term: number): void {
    if (this.state !== StateType.Leader) return;
    if (!this.raftLog.matchTerm(index, term)) return;
    const pr = this.trk.progress.get(this.id);
    if (pr === undefined) return;
    if (pr.maybeUpdate(index) && this.maybeCommit()) {
      this.#onCommitAdvanced();
    }
  }

  #onCommitAdvanced(): void {
    this.releasePendingReadIndexMessages();
    this.bcastAppend();
  }

  // ---------------------------------------------------------------- role changes

  reset(term: number): void {
    if (this.term !== term) {
      this.term = term;
      this.vote = None;
    }
    this.lead = None;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.resetRandomizedElectionTimeout();
    this.abortLeaderTransfer();
    this.trk.resetVotes();
    const lastIndex = this.raftLog.lastIndex();
    for (const [id, pr] of this.trk.progress) {
      const fresh = new Progress(
        0,
        lastIndex + 1,
        new Inflights(this.trk.maxInflightMsgs, this.trk.maxInflightBytes),
        pr.isLearner,
      );
      if (id === this.id) fresh.match = lastIndex;
      this.trk.progress.set(id, fresh);
    }
    this.pendingConfIndex = 0;
    this.uncommittedSizeBytes = 0;
    this.readOnly = new ReadOnly(this.readOnly.option, this.readOnly.maxPendingRequests);
    this.pendingReadIndexMessages = [];
  }

  becomeFollower(term: number, lead: bigint): void {
    this.#step = (m) => this.stepFollower(m);
    this.reset(term);
    this.#tick = () => this.tickElection();
    this.lead = lead;
    this.state = StateType.Follower;
    this.logger.info(`${idName(this.id)} became follower at term ${this.term}`);
  }

  becomeCandidate(): void {
    invariant(this.state !== StateType.Leader, "invalid transition [leader -> candidate]");
    this.#step = (m) => this.stepCandidate(m);
    this.reset(this.term + 1);
    this.#tick = () => this.tickElection();
    this.vote = this.id;
    this.state = StateType.Candidate;
    this.logger.info(`${idName(this.id)} became candidate at term ${this.term}`);
  }

  becomePreCandidate(): void {
    invariant(this.state !== StateType.Leader, "invalid transition [leader -> pre-candidate]");
    // Pre-vote (thesis §9.6) changes neither term nor vote.
    this.#step = (m) => this.stepCandidate(m);
    this.trk.resetVotes();
    this.#tick = () => this.tickElection();
    this.lead = None;
    this.state = StateType.PreCandidate;
    this.logger.info(`${idName(this.id)} became pre-candidate at term ${this.term}`);
  }

  becomeLeader(): void {
    invariant(this.state !== StateType.Follower, "invalid transition [follower -> leader]");
    this.#step = (m) => this.stepLeader(m);
    this.reset(this.term);
    this.#tick = () => this.tickHeartbeat();
    this.lead = this.id;
    this.state = StateType.Leader;
    const self = this.trk.progress.get(this.id);
    // The leader's own progress is always Replicate (it has every entry it appends).
    if (self !== undefined) self.becomeReplicate();
    // Conservatively treat every uncommitted entry as a possible conf change: no new conf change
    // until they are applied (etcd's fix for the single-server membership-change bug).
    this.pendingConfIndex = this.raftLog.lastIndex();
    // Thesis §6.4 / §8: an empty entry of the new term lets the leader learn the commit index.
    const ok = this.appendEntry([
      { type: EntryType.EntryNormal, term: 0, index: 0, data: emptyBytes },
    ]);
    invariant(ok, "empty entry was dropped");
    this.logger.info(`${idName(this.id)} became leader at term ${this.term}`);
  }

  resetRandomizedElectionTimeout(): void {
    this.randomizedElectionTimeout =
      this.electionTimeout + Math.floor(this.#random() * this.electionTimeout);
  }

  pastElectionTimeout(): boolean {
    return this.electionElapsed >= this.randomizedElectionTimeout;
  }

  /**
   * Forgets the leader (etcd-io/raft's ForgetLeader, v3.6): a follower sets lead to None and stays
   * a follower in its term, without campaigning. With CheckQuorum a follower ignores (pre-)vote
   * requests while it has heard from a leader within the election timeout (the leader lease,
   * thesis §4.2.3); a leaderless one grants them at once, subject to the usual log check. So when a
   * quorum of followers have good reason to believe the leader is dead (an external failure
   * detector) and forget it, one of them is elected without waiting out the election timeout,
   * while a lone follower that is wrong cannot disrupt a live leader: the others still refuse.
   * The follower reverts to a normal one when it hears from the leader again (MsgApp,
   * MsgHeartbeat, MsgSnap set lead) and its election timeout runs on unchanged. No effect on a
   * leader, a candidate or a pre-candidate, nor with lease-based reads (a new leader could then be
   * elected while the old one still serves reads from its lease). Returns true when a leader was
   * forgotten.
   */
  forgetLeader(): boolean {
    if (this.state !== StateType.Follower) return false;
    if (this.readOnly.option === "lease-based") {
      this.logger.error("ignoring forgetLeader due to lease-based reads");
      return false;
    }
    if (this.lead === None) return false;
    this.logger.info(
      `${idName(this.id)} forgetting leader ${idName(this.lead)} at term ${this.term}`,
    );
    this.lead = None;
    return true;
  }

  abortLeaderTransfer(): void {
    this.leadTransferee = None;
  }

  // ---------------------------------------------------------------- log appends

  /**
   * Leader: assigns term/index to es and appends them. Returns false (nothing appended) if the
   * maxUncommittedEntriesSize limit would be exceeded. The leader's own ack comes later, when
   * RawNode.advance reports the entries persisted.
   */
  appendEntry(es: Entry[]): boolean {
    const li = this.raftLog.lastIndex();
    for (let i = 0; i < es.length; i++) {
      es[i]!.term = this.term;
      es[i]!.index = li + 1 + i;
    }
    if (!this.increaseUncommittedSize(es)) {
      this.logger.warn(
        `${idName(this.id)} appending new entries to log would exceed uncommitted entry size limit; dropping proposal`,
      );
      return false;
    }
    this.raftLog.append(es);
    return true;
  }

  increaseUncommittedSize(ents: Entry[]): boolean {
    const s = payloadSizeBytes(ents);
    // Always admit one proposal when nothing is uncommitted, however big (etcd's rule).
    if (
      this.maxUncommittedSizeBytes > 0 &&
      this.uncommittedSizeBytes > 0 &&
      s > 0 &&
      this.uncommittedSizeBytes + s > this.maxUncommittedSizeBytes
    ) {
      return false;
    }
    this.uncommittedSizeBytes += s;
    return true;
  }

  reduceUncommittedSize(s: number): void {
    this.uncommittedSizeBytes = s > this.uncommittedSizeBytes ? 0 : this.uncommittedSizeBytes - s;
  }

  // ---------------------------------------------------------------- ticks

  tick(): void {
    this.#tick();
  }

  tickElection(): void {
    this.electionElapsed++;
    if (this.promotable() && this.pastElectionTimeout()) {
      this.electionElapsed = 0;
      this.step(newMessage({ type: MessageType.MsgHup, from: this.id }));
    }
  }

  tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.electionTimeout) {
      this.electionElapsed = 0;
      if (this.checkQuorum)
        this.step(newMessage({ type: MessageType.MsgCheckQuorum, from: this.id }));
      // A transfer that has not finished within an election timeout is abandoned.
      if (this.state === StateType.Leader && this.leadTransferee !== None)
        this.abortLeaderTransfer();
    }
    if (this.state !== StateType.Leader) return;
    if (this.heartbeatElapsed >= this.heartbeatTimeout) {
      this.heartbeatElapsed = 0;
      this.step(newMessage({ type: MessageType.MsgBeat, from: this.id }));
    }
  }

  // ---------------------------------------------------------------- elections

  hup(t: CampaignType): void {
    if (this.state === StateType.Leader) {
      this.logger.debug(`${idName(this.id)} ignoring MsgHup because already leader`);
      return;
    }
    if (!this.promotable()) {
      this.logger.warn(`${idName(this.id)} is unpromotable and can not campaign`);
      return;
    }
    if (this.#hasUnappliedConfChanges()) {
      this.logger.warn(
        `${idName(this.id)} cannot campaign at term ${this.term} since there are still pending configuration changes to apply`,
      );
      return;
    }
    this.logger.info(`${idName(this.id)} is starting a new election at term ${this.term}`);
    this.campaign(t);
  }

  #hasUnappliedConfChanges(): boolean {
    if (this.raftLog.applied >= this.raftLog.committed) return false;
    let lo = this.raftLog.applied + 1;
    const hi = this.raftLog.committed + 1;
    // Scan in pages bounded by maxMsgSizeBytes.
    while (lo < hi) {
      let ents: Entry[];
      try {
        ents = this.raftLog.slice(lo, hi, this.maxMsgSizeBytes);
      } catch (e) {
        if (e instanceof ErrCompacted) return false;
        throw e;
      }
      for (const e of ents)
        if (e.type === EntryType.EntryConfChange || e.type === EntryType.EntryConfChangeV2)
          return true;
      lo += ents.length;
    }
    return false;
  }

  campaign(t: CampaignType): void {
    let term: number;
    let voteMsg: MessageType;
    if (t === CampaignType.PreElection) {
      this.becomePreCandidate();
      voteMsg = MessageType.MsgPreVote;
      // Pre-vote asks with the term we would use, without incrementing ours.
      term = this.term + 1;
    } else {
      this.becomeCandidate();
      voteMsg = MessageType.MsgVote;
      term = this.term;
    }
    // Our own vote counts at once (it is persisted with the next Ready before any reply reaches us).
    const res = this.poll(this.id, voteRespMsgType(voteMsg), true);
    if (res === VoteResult.Won) {
      if (t === CampaignType.PreElection) this.campaign(CampaignType.Election);
      else {
        this.becomeLeader();
        this.bcastAppend();
      }
      return;
    }
    const lastIndex = this.raftLog.lastIndex();
    const lastTerm = this.raftLog.lastTerm();
    for (const id of this.trk.voterIds()) {
      if (id === this.id) continue;
      this.logger.info(
        `${idName(this.id)} [logterm: ${lastTerm}, index: ${lastIndex}] sent ${MessageType[voteMsg]} request to ${idName(id)} at term ${this.term}`,
      );
      this.send(
        newMessage({
          type: voteMsg,
          to: id,
          term,
          index: lastIndex,
          logTerm: lastTerm,
          context: t === CampaignType.Transfer ? campaignTransferCtx : emptyBytes,
        }),
      );
    }
  }

  poll(id: bigint, t: MessageType, granted: boolean): VoteResult {
    this.logger.info(
      `${idName(this.id)} received ${MessageType[t]} ${granted ? "" : "rejection "}from ${idName(id)} at term ${this.term}`,
    );
    this.trk.recordVote(id, granted);
    return this.trk.tallyVotes().result;
  }

  // ---------------------------------------------------------------- step

  /**
   * Processes one message: term checks common to all roles (Raft §5.1, pre-vote §9.6,
   * check-quorum leases §6.2), votes, then the role's step function.
   * Throws ErrProposalDropped when a proposal cannot be accepted.
   */
  step(m: Message): void {
    if (m.term === 0) {
      // local message
    } else if (m.term > this.term) {
      if (m.type === MessageType.MsgVote || m.type === MessageType.MsgPreVote) {
        const force = bytesEqual(m.context, campaignTransferCtx);
        const inLease =
          this.checkQuorum && this.lead !== None && this.electionElapsed < this.electionTimeout;
        if (!force && inLease) {
          // Thesis §4.2.3: ignore a disruptive candidate while we have heard from a leader recently.
          this.logger.info(
            `${idName(this.id)} [term: ${this.term}] ignored ${MessageType[m.type]} from ${idName(m.from)} at term ${m.term}: lease is not expired`,
          );
          return;
        }
      }
      if (m.type === MessageType.MsgPreVote) {
        // A pre-vote never changes our term.
      } else if (m.type === MessageType.MsgPreVoteResp && !m.reject) {
        // Granted pre-votes carry the future term; we bump our term only on winning the pre-vote.
      } else {
        this.logger.info(
          `${idName(this.id)} [term: ${this.term}] received a ${MessageType[m.type]} message with higher term from ${idName(m.from)} [term: ${m.term}]`,
        );
        if (
          m.type === MessageType.MsgApp ||
          m.type === MessageType.MsgHeartbeat ||
          m.type === MessageType.MsgSnap
        ) {
          this.becomeFollower(m.term, m.from);
        } else {
          this.becomeFollower(m.term, None);
        }
      }
    } else if (m.term < this.term) {
      if (
        (this.checkQuorum || this.preVote) &&
        (m.type === MessageType.MsgHeartbeat || m.type === MessageType.MsgApp)
      ) {
        // A stale leader cut off by a partition: tell it our term so it steps down; otherwise with
        // check-quorum/pre-vote it could never learn of the newer term and we could stall.
        this.send(newMessage({ type: MessageType.MsgAppResp, to: m.from }));
      } else if (m.type === MessageType.MsgPreVote || m.type === MessageType.MsgVote) {
        // A candidate behind our term learns it from the rejection (Raft §5.1: a request with a
        // stale term is rejected and the reply carries currentTerm). etcd-io/raft answers only
        // pre-votes and ignores a stale MsgVote; without pre-vote that can stall an election for
        // good: a node that has not applied the conf change making the candidate a voter keeps
        // campaigning at higher terms among voters it cannot reach, while the candidate, which
        // never hears from it, stays below its term and is ignored (simulator seed 565182).
        this.send(
          newMessage({
            type:
              m.type === MessageType.MsgPreVote
                ? MessageType.MsgPreVoteResp
                : MessageType.MsgVoteResp,
            to: m.from,
            term: this.term,
            reject: true,
          }),
        );
      }
      // Otherwise ignore messages from older terms.
      return;
    }

    switch (m.type) {
      case MessageType.MsgHup:
        this.hup(this.preVote ? CampaignType.PreElection : CampaignType.Election);
        return;
      case MessageType.MsgVote:
      case MessageType.MsgPreVote: {
        // We can vote for m.from if we already did, or have not voted and know no leader this
        // term, or it is a pre-vote for a future term.
        const canVote =
          this.vote === m.from ||
          (this.vote === None && this.lead === None) ||
          (m.type === MessageType.MsgPreVote && m.term > this.term);
        const upToDate =
          this.knobs.skipVoteLogCheck === true || this.raftLog.isUpToDate(m.index, m.logTerm);
        if (canVote && upToDate) {
          this.logger.info(
            `${idName(this.id)} cast ${MessageType[m.type]} for ${idName(m.from)} at term ${this.term}`,
          );
          // Answer with the message's term: for a pre-vote it is the future term the candidate
          // will use, so the candidate recognises the answer.
          this.send(newMessage({ type: voteRespMsgType(m.type), to: m.from, term: m.term }));
          if (m.type === MessageType.MsgVote) {
            this.electionElapsed = 0;
            this.vote = m.from;
          }
        } else {
          this.logger.info(
            `${idName(this.id)} rejected ${MessageType[m.type]} from ${idName(m.from)} at term ${this.term}`,
          );
          this.send(
            newMessage({
              type: voteRespMsgType(m.type),
              to: m.from,
              term: this.term,
              reject: true,
            }),
          );
        }
        return;
      }
      default:
        this.#step(m);
    }
  }

  stepLeader(m: Message): void {
    switch (m.type) {
      case MessageType.MsgBeat:
        this.bcastHeartbeat();
        return;
      case MessageType.MsgCheckQuorum:
        if (!this.trk.quorumActive(this.id)) {
          this.logger.warn(
            `${idName(this.id)} stepped down to follower since quorum is not active`,
          );
          this.becomeFollower(this.term, None);
        }
        // A new round of activity tracking starts now.
        for (const [id, pr] of this.trk.progress) pr.recentActive = id === this.id;
        return;
      case MessageType.MsgProp:
        this.#leaderPropose(m);
        return;
      case MessageType.MsgReadIndex:
        this.#leaderReadIndex(m);
        return;
    }

    const pr = this.trk.progress.get(m.from);
    if (pr === undefined) {
      this.logger.debug(`${idName(this.id)} no progress available for ${idName(m.from)}`);
      return;
    }
    switch (m.type) {
      case MessageType.MsgAppResp:
        this.#leaderAppResp(m, pr);
        return;
      case MessageType.MsgHeartbeatResp:
        this.#leaderHeartbeatResp(m, pr);
        return;
      case MessageType.MsgSnapStatus:
        if (pr.state !== ProgressState.Snapshot) return;
        if (!m.reject) {
          pr.becomeProbe();
          this.logger.debug(
            `${idName(this.id)} snapshot succeeded, resumed sending replication messages to ${idName(m.from)}`,
          );
        } else {
          // The snapshot did not arrive: forget it and probe from match again.
          pr.pendingSnapshot = 0;
          pr.becomeProbe();
          this.logger.debug(
            `${idName(this.id)} snapshot failed, resumed sending replication messages to ${idName(m.from)}`,
          );
        }
        // Wait for a heartbeat response or MsgAppResp before probing, so a slow snapshot apply is not raced.
        pr.probeSent = true;
        return;
      case MessageType.MsgUnreachable:
        // Appends were probably lost: fall back to probing.
        if (pr.state === ProgressState.Replicate) pr.becomeProbe();
        this.logger.debug(
          `${idName(this.id)} failed to send message to ${idName(m.from)} because it is unreachable`,
        );
        return;
      case MessageType.MsgTransferLeader:
        this.#leaderTransfer(m, pr);
        return;
    }
  }

  #leaderPropose(m: Message): void {
    invariant(m.entries.length > 0, () => `${idName(this.id)} stepped empty MsgProp`);
    if (!this.trk.progress.has(this.id)) {
      // This leader was removed from the configuration; it should not propose.
      throw new ErrProposalDropped(
        "raft proposal dropped: leader was removed from the configuration",
      );
    }
    if (this.leadTransferee !== None) {
      throw new ErrProposalDropped("raft proposal dropped: leader transfer in progress");
    }
    for (let i = 0; i < m.entries.length; i++) {
      const e = m.entries[i]!;
      if (e.type !== EntryType.EntryConfChange) continue;
      // One conf change at a time: refuse a new one until the previous is applied.
      const alreadyPending = this.pendingConfIndex > this.raftLog.applied;
      let refused = "";
      if (alreadyPending) {
        refused = `possible unapplied conf change at index ${this.pendingConfIndex} (applied to ${this.raftLog.applied})`;
      } else {
        const err = this.#validateConfChange(ConfChange.fromBinary(e.data));
        if (err !== undefined) refused = err;
      }
      if (refused !== "") {
        this.logger.info(`${idName(this.id)} ignoring conf change: ${refused}`);
        m.entries[i] = { type: EntryType.EntryNormal, term: 0, index: 0, data: emptyBytes };
      } else {
        this.pendingConfIndex = this.raftLog.lastIndex() + i + 1;
      }
    }
    if (!this.appendEntry(m.entries))
      throw new ErrProposalDropped("raft proposal dropped: uncommitted entries size limit");
    this.bcastAppend();
  }

  /** Why the conf change cannot apply to the current configuration, or undefined if it can. */
  #validateConfChange(cc: ConfChange): string | undefined {
    if (
      cc.type === ConfChangeType.ConfChangeRemoveNode &&
      this.trk.voters.has(cc.nodeID) &&
      this.trk.voters.size === 1
    ) {
      return "removing the last voter";
    }
    if (
      cc.type === ConfChangeType.ConfChangeAddLearnerNode &&
      this.trk.voters.has(cc.nodeID) &&
      this.trk.voters.size === 1
    ) {
      return "demoting the last voter";
    }
    return undefined;
  }

  #leaderReadIndex(m: Message): void {
    // Thesis §6.4: the leader's commit index is only known to be current once it has committed
    // an entry of its own term; until then queue the request.
    if (!this.knobs.readIndexBeforeCommitInTerm && !this.committedEntryInCurrentTerm()) {
      if (this.pendingReadIndexMessages.length >= this.readOnly.maxPendingRequests) {
        throw new ErrProposalDropped("raft read index dropped: too many pending requests");
      }
      this.pendingReadIndexMessages.push(m);
      return;
    }
    this.sendMsgReadIndexResponse(m);
  }

  /** Answers (or starts confirming) a ReadIndex request at the current commit index. */
  sendMsgReadIndexResponse(m: Message): void {
    if (this.trk.isSingleton()) {
      // A single voter is always the leader of its quorum: no heartbeat round needed.
      this.#respondReadIndex(m, this.raftLog.committed);
      return;
    }
    if (this.readOnly.option === "safe") {
      if (!this.readOnly.addRequest(this.raftLog.committed, m)) {
        throw new ErrProposalDropped("raft read index dropped: too many pending requests");
      }
      const ctx = m.entries[0]!.data;
      this.readOnly.recvAck(this.id, ctx);
      for (const id of this.#peerIds()) if (id !== this.id) this.sendHeartbeat(id, ctx);
      return;
    }
    // Lease-based: rely on check-quorum's lease (clock-drift bounded) instead of a round trip.
    this.#respondReadIndex(m, this.raftLog.committed);
  }

  #respondReadIndex(req: Message, readIndex: number): void {
    if (req.from === None || req.from === this.id) {
      this.readStates.push({ index: readIndex, requestCtx: req.entries[0]!.data });
      return;
    }
    this.send(
      newMessage({
        type: MessageType.MsgReadIndexResp,
        to: req.from,
        index: readIndex,
        entries: req.entries,
      }),
    );
  }

  committedEntryInCurrentTerm(): boolean {
    return this.raftLog.termOrZero(this.raftLog.committed) === this.term;
  }

  releasePendingReadIndexMessages(): void {
    if (this.pendingReadIndexMessages.length === 0) return;
    if (!this.committedEntryInCurrentTerm()) return;
    const msgs = this.pendingReadIndexMessages;
    this.pendingReadIndexMessages = [];
    for (const m of msgs) {
      try {
        this.sendMsgReadIndexResponse(m);
      } catch (e) {
        if (!(e instanceof ErrProposalDropped)) throw e;
      }
    }
  }

  #leaderAppResp(m: Message, pr: Progress): void {
    pr.recentActive = true;
    if (m.reject) {
      this.logger.debug(
        `${idName(this.id)} received MsgAppResp(rejected, hint: (index ${m.rejectHint}, term ${m.logTerm})) from ${idName(m.from)} for index ${m.index}`,
      );
      // Fast back-tracking: the follower's hint (index, term) names the last entry it has at or
      // below the rejected index; skip every entry of ours with a higher term than its.
      let nextProbeIdx = m.rejectHint;
      if (m.logTerm > 0) nextProbeIdx = this.raftLog.findConflictByTerm(m.rejectHint, m.logTerm)[0];
      if (pr.maybeDecrTo(m.index, nextProbeIdx)) {
        if (pr.state === ProgressState.Replicate) pr.becomeProbe();
        this.sendAppend(m.from);
      }
      return;
    }
    const oldPaused = pr.isPaused();
    if (!pr.maybeUpdate(m.index)) {
      return;
    }
    switch (pr.state) {
      case ProgressState.Probe:
        pr.becomeReplicate();
        break;
      case ProgressState.Snapshot:
        // The follower caught up past the point where entries are available again.
        if (pr.match + 1 >= this.raftLog.firstIndex()) {
          pr.becomeProbe();
          pr.becomeReplicate();
        }
        break;
      case ProgressState.Replicate:
        pr.inflights.freeLE(m.index);
        break;
    }
    if (this.maybeCommit()) {
      this.#onCommitAdvanced();
    } else if (oldPaused) {
      // The follower was paused and may now accept more.
      this.sendAppend(m.from);
    }
    // Fill the window with whatever is left, bounded by the inflights limit.
    while (this.maybeSendAppend(m.from, false)) {
      // loop
    }
    if (m.from === this.leadTransferee && pr.match === this.raftLog.lastIndex()) {
      this.logger.info(
        `${idName(this.id)} sent MsgTimeoutNow to ${idName(m.from)} after received MsgAppResp`,
      );
      this.sendTimeoutNow(m.from);
    }
  }

  #leaderHeartbeatResp(m: Message, pr: Progress): void {
    pr.recentActive = true;
    pr.probeSent = false;
    // A full window with a live follower suggests lost appends: free a slot so we send again.
    if (pr.state === ProgressState.Replicate && pr.inflights.full()) pr.inflights.freeFirstOne();
    if (pr.match < this.raftLog.lastIndex()) this.sendAppend(m.from);
    if (this.readOnly.option !== "safe" || m.context.length === 0) return;
    const acks = this.readOnly.recvAck(m.from, m.context);
    if (acks === undefined) return;
    const votes = new Map<bigint, boolean>();
    for (const id of acks) votes.set(id, true);
    if (this.trk.tallyVotesFor(votes) !== VoteResult.Won) return;
    for (const rs of this.readOnly.advance(m.context)) this.#respondReadIndex(rs.req, rs.index);
  }

  #leaderTransfer(m: Message, pr: Progress): void {
    const leadTransferee = m.from;
    if (pr.isLearner) {
      this.logger.debug(`${idName(this.id)} is learner. Ignored transferring leadership`);
      return;
    }
    const last = this.leadTransferee;
    if (last !== None) {
      if (last === leadTransferee) return; // already in progress
      this.abortLeaderTransfer();
    }
    if (leadTransferee === this.id) return; // already leader
    this.logger.info(
      `${idName(this.id)} [term ${this.term}] starts to transfer leadership to ${idName(leadTransferee)}`,
    );
    // Must finish within one election timeout (tickHeartbeat aborts it otherwise).
    this.electionElapsed = 0;
    this.leadTransferee = leadTransferee;
    if (pr.match === this.raftLog.lastIndex()) {
      this.sendTimeoutNow(leadTransferee);
    } else {
      this.sendAppend(leadTransferee);
    }
  }

  sendTimeoutNow(to: bigint): void {
    this.send(newMessage({ type: MessageType.MsgTimeoutNow, to }));
  }

  stepCandidate(m: Message): void {
    // A pre-candidate counts pre-vote answers; a candidate counts vote answers.
    const myVoteRespType =
      this.state === StateType.PreCandidate ? MessageType.MsgPreVoteResp : MessageType.MsgVoteResp;
    switch (m.type) {
      case MessageType.MsgProp:
        throw new ErrProposalDropped("raft proposal dropped: no leader at term " + this.term);
      case MessageType.MsgApp:
        this.becomeFollower(m.term, m.from); // always m.term === this.term here
        this.handleAppendEntries(m);
        return;
      case MessageType.MsgHeartbeat:
        this.becomeFollower(m.term, m.from);
        this.handleHeartbeat(m);
        return;
      case MessageType.MsgSnap:
        this.becomeFollower(m.term, m.from);
        this.handleSnapshot(m);
        return;
      case myVoteRespType: {
        const res = this.poll(m.from, m.type, !m.reject);
        if (res === VoteResult.Won) {
          if (this.state === StateType.PreCandidate) {
            this.campaign(CampaignType.Election);
          } else {
            this.becomeLeader();
            this.bcastAppend();
          }
        } else if (res === VoteResult.Lost) {
          // A rejected pre-vote or vote: stay at our term (a higher one was handled in step()).
          this.becomeFollower(this.term, None);
        }
        return;
      }
      case MessageType.MsgTimeoutNow:
        this.logger.debug(
          `${idName(this.id)} [term ${this.term} state ${StateType[this.state]}] ignored MsgTimeoutNow from ${idName(m.from)}`,
        );
        return;
    }
  }

  stepFollower(m: Message): void {
    switch (m.type) {
      case MessageType.MsgProp:
        if (this.lead === None)
          throw new ErrProposalDropped(`raft proposal dropped: no leader at term ${this.term}`);
        if (this.disableProposalForwarding)
          throw new ErrProposalDropped("raft proposal dropped: proposal forwarding disabled");
        m.to = this.lead;
        this.send(m);
        return;
      case MessageType.MsgApp:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleAppendEntries(m);
        return;
      case MessageType.MsgHeartbeat:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleHeartbeat(m);
        return;
      case MessageType.MsgSnap:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleSnapshot(m);
        return;
      case MessageType.MsgTransferLeader:
        if (this.lead === None) {
          this.logger.info(
            `${idName(this.id)} no leader at term ${this.term}; dropping leader transfer msg`,
          );
          return;
        }
        m.to = this.lead;
        this.send(m);
        return;
      case MessageType.MsgTimeoutNow:
        // Leader transfer: campaign at once, skipping pre-vote and the lease check (thesis §3.10).
        this.logger.info(
          `${idName(this.id)} [term ${this.term}] received MsgTimeoutNow from ${idName(m.from)} and starts an election to get leadership`,
        );
        this.hup(CampaignType.Transfer);
        return;
      case MessageType.MsgReadIndex:
        if (this.lead === None)
          throw new ErrProposalDropped(`raft read index dropped: no leader at term ${this.term}`);
        m.to = this.lead;
        this.send(m);
        return;
      case MessageType.MsgReadIndexResp:
        if (m.entries.length !== 1) {
          this.logger.error(
            `${idName(this.id)} invalid format of MsgReadIndexResp from ${idName(m.from)}, entries count: ${m.entries.length}`,
          );
          return;
        }
        this.readStates.push({ index: m.index, requestCtx: m.entries[0]!.data });
        return;
    }
  }

  handleAppendEntries(m: Message): void {
    if (m.index < this.raftLog.committed) {
      // Everything up to committed is already ours; tell the leader where we are.
      this.send(
        newMessage({ type: MessageType.MsgAppResp, to: m.from, index: this.raftLog.committed }),
      );
      return;
    }
    const lastNew = this.raftLog.maybeAppend(m.index, m.logTerm, m.commit, m.entries);
    if (lastNew !== undefined) {
      this.send(newMessage({ type: MessageType.MsgAppResp, to: m.from, index: lastNew }));
      return;
    }
    // Reject with a hint: the last index ≤ m.index whose term ≤ m.logTerm, so the leader can
    // skip past every entry that cannot match (etcd's fast back-tracking).
    const hintIndex = Math.min(m.index, this.raftLog.lastIndex());
    const [idx, term] = this.raftLog.findConflictByTerm(hintIndex, m.logTerm);
    this.logger.debug(
      `${idName(this.id)} rejected MsgApp [logterm: ${m.logTerm}, index: ${m.index}] from ${idName(m.from)}`,
    );
    this.send(
      newMessage({
        type: MessageType.MsgAppResp,
        to: m.from,
        index: m.index,
        reject: true,
        rejectHint: idx,
        logTerm: term,
      }),
    );
  }

  handleHeartbeat(m: Message): void {
    this.raftLog.commitTo(Math.min(m.commit, this.raftLog.lastIndex()));
    this.send(newMessage({ type: MessageType.MsgHeartbeatResp, to: m.from, context: m.context }));
  }

  handleSnapshot(m: Message): void {
    const s = m.snapshot;
    if (s === undefined) return;
    const sindex = snapshotIndex(s);
    const sterm = snapshotTerm(s);
    if (this.restore(s)) {
      this.logger.info(
        `${idName(this.id)} [commit: ${this.raftLog.committed}] restored snapshot [index: ${sindex}, term: ${sterm}]`,
      );
      this.send(
        newMessage({ type: MessageType.MsgAppResp, to: m.from, index: this.raftLog.lastIndex() }),
      );
    } else {
      this.logger.info(
        `${idName(this.id)} [commit: ${this.raftLog.committed}] ignored snapshot [index: ${sindex}, term: ${sterm}]`,
      );
      this.send(
        newMessage({ type: MessageType.MsgAppResp, to: m.from, index: this.raftLog.committed }),
      );
    }
  }

  /**
   * Installs snapshot s if it is newer than our commit; returns false if ignored (stale, or our
   * log already has its last entry, in which case we just fast-forward commit).
   */
  restore(s: Snapshot): boolean {
    const sindex = snapshotIndex(s);
    const sterm = snapshotTerm(s);
    if (sindex <= this.raftLog.committed) return false;
    if (this.state !== StateType.Follower) {
      // Defensive (etcd): only a follower may receive a snapshot; become one in a newer term.
      this.logger.warn(
        `${idName(this.id)} attempted to restore snapshot as leader; should never happen`,
      );
      this.becomeFollower(this.term + 1, None);
      return false;
    }
    const cs = s.metadata?.confState;
    const found =
      cs !== undefined && (cs.voters.includes(this.id) || cs.learners.includes(this.id));
    if (!found) {
      this.logger.warn(
        `${idName(this.id)} attempted to restore snapshot but it is not in the ConfState; should never happen`,
      );
      return false;
    }
    if (this.raftLog.matchTerm(sindex, sterm)) {
      this.logger.info(
        `${idName(this.id)} fast-forwarded commit to snapshot [index: ${sindex}, term: ${sterm}]`,
      );
      this.raftLog.commitTo(sindex);
      return false;
    }
    this.raftLog.restore(s);
    this.trk = new ProgressTracker(this.trk.maxInflightMsgs, this.trk.maxInflightBytes);
    this.#restoreConfState(cs!);
    const pr = this.trk.progress.get(this.id)!;
    pr.maybeUpdate(pr.next - 1);
    return true;
  }

  // ---------------------------------------------------------------- configuration

  #restoreConfState(cs: ConfState): void {
    invariant(
      cs.votersOutgoing.length === 0 && cs.learnersNext.length === 0,
      "joint configurations are not supported",
    );
    this.trk.voters = new Set();
    this.trk.learners = new Set();
    this.trk.progress = new Map();
    const next = this.raftLog.lastIndex() + 1;
    for (const id of cs.voters) this.#addProgress(id, false, next);
    for (const id of cs.learners) this.#addProgress(id, true, next);
    this.#afterConfigChanged();
  }

  #addProgress(id: bigint, learner: boolean, next: number): void {
    if (learner) {
      this.trk.voters.delete(id);
      this.trk.learners.add(id);
    } else {
      this.trk.learners.delete(id);
      this.trk.voters.add(id);
    }
    let pr = this.trk.progress.get(id);
    if (pr === undefined) {
      pr = new Progress(
        0,
        next,
        new Inflights(this.trk.maxInflightMsgs, this.trk.maxInflightBytes),
        learner,
      );
      // A new member counts as active so check-quorum does not step the leader down before it
      // has had a chance to talk to it.
      pr.recentActive = true;
      this.trk.progress.set(id, pr);
    }
    pr.isLearner = learner;
  }

  #afterConfigChanged(): void {
    this.#peerIdsCache = undefined;
    const self = this.trk.progress.get(this.id);
    this.isLearner = self !== undefined && self.isLearner;
  }

  /**
   * Applies a committed single-step conf change (AddNode, AddLearnerNode, RemoveNode, UpdateNode)
   * and returns the new ConfState. NodeID 0 changes nothing (etcd's empty conf change).
   * Throws ErrInvalidConfChange if it would leave no voter.
   */
  applyConfChange(cc: ConfChange): ConfState {
    if (cc.nodeID === None) return this.trk.confState();
    const next = this.raftLog.lastIndex() + 1;
    switch (cc.type) {
      case ConfChangeType.ConfChangeAddNode:
        this.#addProgress(cc.nodeID, false, next);
        break;
      case ConfChangeType.ConfChangeAddLearnerNode:
        if (this.trk.voters.has(cc.nodeID) && this.trk.voters.size === 1)
          throw new ErrInvalidConfChange("removed all voters");
        this.#addProgress(cc.nodeID, true, next);
        break;
      case ConfChangeType.ConfChangeRemoveNode:
        if (this.trk.voters.has(cc.nodeID) && this.trk.voters.size === 1)
          throw new ErrInvalidConfChange("removed all voters");
        this.trk.voters.delete(cc.nodeID);
        this.trk.learners.delete(cc.nodeID);
        this.trk.progress.delete(cc.nodeID);
        this.trk.votes.delete(cc.nodeID);
        break;
      case ConfChangeType.ConfChangeUpdateNode:
        break;
    }
    this.#afterConfigChanged();
    const cs = this.trk.confState();
    const self = this.trk.progress.get(this.id);
    if ((self === undefined || self.isLearner) && this.state === StateType.Leader) {
      // Removed or demoted leader steps down (etcd's StepDownOnRemoval); the rest elect anew.
      this.becomeFollower(this.term, None);
      return cs;
    }
    if (this.state !== StateType.Leader || cs.voters.length === 0) return cs;
    // The quorum changed: commit may advance (e.g. a slow voter was removed).
    if (this.maybeCommit()) {
      this.#onCommitAdvanced();
    } else {
      for (const id of this.#peerIds()) if (id !== this.id) this.maybeSendAppend(id, false);
    }
    if (this.leadTransferee !== None && !this.trk.voters.has(this.leadTransferee))
      this.abortLeaderTransfer();
    return cs;
  }
}

/** Validates c; throws ErrInvalidConfig. */
export function validateConfig(c: RaftConfig): void {
  if (c.id === None) throw new ErrInvalidConfig("cannot use none as id");
  if (!(c.heartbeatTick > 0)) throw new ErrInvalidConfig("heartbeat tick must be greater than 0");
  if (!(c.electionTick > c.heartbeatTick))
    throw new ErrInvalidConfig("election tick must be greater than heartbeat tick");
  if (c.maxInflightMsgs !== undefined && !(c.maxInflightMsgs > 0))
    throw new ErrInvalidConfig("max inflight messages must be greater than 0");
  if (c.readOnlyOption === "lease-based" && !c.checkQuorum) {
    throw new ErrInvalidConfig("CheckQuorum must be enabled when ReadOnlyOption is lease-based");
  }
  if (typeof c.random !== "function") throw new ErrInvalidConfig("random source is required");
}
