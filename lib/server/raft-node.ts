/**
 * The member's raft loop (etcd 3.4's etcdserver/raft.go raftNode): owns the RawNode, raft's
 * in-memory log (MemoryStorage) and the WAL; takes each Ready, persists hardState + entries as ONE
 * WAL write and ONE fdatasync (group commit), hands committed entries and read states to the
 * member, then advances raft. Tracks the term, commit index, leader and role the Readys report.
 */
import type { Logger } from "pino";
import type { ConfState, Entry, HardState } from "../proto/gen/raftpb/raft.js";
import type { WAL } from "../wal/index.js";
import { MemoryStorage, RawNode, StateType, type ReadState } from "../raft/index.js";
import { failpoint } from "../failpoint/index.js";
import type { ServerMetrics } from "./metrics.js";

/**
 * Raft's in-memory log is trimmed once this many entries are applied, keeping the last
 * `raftLogKeepEntries` for slow followers (etcd's snapshotCatchUpEntries).
 */
const raftLogCompactEveryEntries = 1_000;
const raftLogKeepEntries = 5_000;

/** What the raft loop hands to (and needs of) its member. */
export interface RaftNodeHost {
  /** The role changed (leader or not); `wasLeader` is the role before. */
  onRoleChange(state: StateType, wasLeader: boolean): void;
  /** Committed entries to apply, in order (while their WAL write is in flight). */
  applyEntries(entries: Entry[]): void;
  /** ReadIndex answers. */
  onReadStates(states: ReadState[]): void;
  appliedIndex(): number;
  /** raft's conf state after the last applied ConfChange (for storage snapshots). */
  confState(): ConfState | undefined;
  isOnlyVoter(): boolean;
  /** A failed WAL write or a broken invariant: the member must stop. */
  fatal(err: Error): void;
}

/** Options of a RaftNode. */
export interface RaftNodeOptions {
  id: bigint;
  electionTick: number;
  preVote: boolean;
  /** raft's log, already holding what recovery found */
  storage: MemoryStorage;
  /** raft's applied index at start (the snapshot index) */
  applied: number;
  wal: WAL;
  /** term and vote of the hardState the WAL holds (0 / 0n for a new WAL) */
  writtenTerm: number;
  writtenVote: bigint;
  /** term and commit index at start */
  term: number;
  commitIndex: number;
  metrics: ServerMetrics;
  logger: Logger;
  host: RaftNodeHost;
}

/** The raft loop of one member (see the module comment). */
export class RaftNode {
  readonly raw: RawNode;
  readonly storage: MemoryStorage;
  readonly wal: WAL;
  readonly #host: RaftNodeHost;
  readonly #metrics: ServerMetrics;
  readonly #logger: Logger;

  #term: number;
  #commitIndex: number;
  #leaderId = 0n;
  #raftState: StateType = StateType.Follower;

  #readyScheduled = false;
  #inReady = false;
  #stopped = false;

  /** The newest hardState not yet written (its only change was the commit index). */
  #unwrittenHardState: HardState | undefined;
  #writtenTerm: number;
  #writtenVote: bigint;
  #lastRaftLogCompactIndex = 0;

  constructor(o: RaftNodeOptions) {
    this.storage = o.storage;
    this.wal = o.wal;
    this.#host = o.host;
    this.#metrics = o.metrics;
    this.#logger = o.logger;
    this.#term = o.term;
    this.#commitIndex = o.commitIndex;
    this.#writtenTerm = o.writtenTerm;
    this.#writtenVote = o.writtenVote;
    this.raw = new RawNode({
      id: o.id,
      electionTick: o.electionTick,
      heartbeatTick: 1,
      storage: o.storage,
      applied: o.applied,
      maxSizePerMsg: 1024 * 1024,
      maxInflightMsgs: 4096 / 8,
      maxUncommittedEntriesSize: 1 << 30,
      preVote: o.preVote,
      checkQuorum: true,
      random: Math.random,
      logger: {
        debug: (m) => o.logger.debug(m),
        info: (m) => o.logger.info(m),
        warn: (m) => o.logger.warn(m),
        error: (m) => o.logger.error(m),
      },
    });
  }

  get term(): number {
    return this.#term;
  }
  get commitIndex(): number {
    return this.#commitIndex;
  }
  get leaderId(): bigint {
    return this.#leaderId;
  }
  get isLeader(): boolean {
    return this.#raftState === StateType.Leader;
  }
  /** True while a Ready is being processed (its WAL write may be in flight). */
  get inReady(): boolean {
    return this.#inReady;
  }

  scheduleReady(): void {
    if (this.#readyScheduled || this.#inReady || this.#stopped) return;
    this.#readyScheduled = true;
    setImmediate(() => {
      this.#readyScheduled = false;
      void this.#runReady();
    });
  }

  /**
   * The ready loop (etcd's raftNode.start): take a Ready, start persisting hardState + entries as
   * ONE WAL write and ONE fdatasync, apply the committed entries while that fsync runs (they are
   * already durable on a quorum), then append to raft storage, send messages and advance.
   * Everything proposed during the fsync rides the next one: that is the group commit.
   */
  async #runReady(): Promise<void> {
    if (this.#inReady || this.#stopped) return;
    this.#inReady = true;
    try {
      while (!this.#stopped && this.raw.hasReady()) {
        const rd = this.raw.ready();
        if (rd.softState !== undefined)
          this.#onSoftState(rd.softState.lead, rd.softState.raftState);
        const hs = rd.hardState;
        failpoint("raftBeforeSave");
        const persist = this.#persist(hs, rd.entries);
        if (rd.committedEntries.length > 0) this.#host.applyEntries(rd.committedEntries);
        if (rd.readStates.length > 0) this.#host.onReadStates(rd.readStates);
        if (persist !== undefined) await persist;
        failpoint("raftAfterSave");
        if (hs !== undefined) {
          this.storage.setHardState(hs);
          this.#term = hs.term;
          this.#commitIndex = hs.commit;
          this.#metrics.proposalsCommittedTotal.set(hs.commit);
        }
        if (rd.entries.length > 0) this.storage.append(rd.entries);
        // Peers arrive with the cluster issue; a single member has no messages to send.
        failpoint("raftBeforeAdvance");
        this.raw.advance(rd);
        this.#maybeCompactRaftLog();
      }
    } catch (err) {
      this.#host.fatal(err as Error);
    } finally {
      this.#inReady = false;
    }
    if (!this.#stopped && this.raw.hasReady()) this.scheduleReady();
  }

  /**
   * Writes hardState + entries as one WAL save. A hardState whose only change is the commit index
   * is not written on its own: it rides the next save that has entries (or the clean stop).
   * Raft does not need the commit index durable (MustSync ignores it; a restarted leader
   * re-commits its log, Raft §5.4.2), so this saves a WAL write per applied batch without
   * weakening durability: term, vote and entries are always written, and fdatasynced, before
   * anything that depends on them is sent or acknowledged.
   */
  #persist(hs: HardState | undefined, entries: Entry[]): Promise<void> | undefined {
    if (
      hs !== undefined &&
      entries.length === 0 &&
      hs.term === this.#writtenTerm &&
      hs.vote === this.#writtenVote
    ) {
      this.#unwrittenHardState = hs;
      return undefined;
    }
    const toWrite = hs ?? this.#unwrittenHardState;
    if (toWrite === undefined && entries.length === 0) return undefined;
    this.#unwrittenHardState = undefined;
    if (toWrite !== undefined) {
      this.#writtenTerm = toWrite.term;
      this.#writtenVote = toWrite.vote;
    }
    return this.wal.save(toWrite, entries);
  }

  #onSoftState(lead: bigint, state: StateType): void {
    if (lead !== this.#leaderId) {
      if (lead !== 0n) this.#metrics.leaderChangesSeenTotal.inc();
      this.#logger.info({ leader: lead.toString(16), term: this.#term }, "leader changed");
    }
    const wasLeader = this.#raftState === StateType.Leader;
    this.#leaderId = lead;
    this.#raftState = state;
    this.#metrics.hasLeader.set(lead !== 0n ? 1 : 0);
    this.#metrics.isLeader.set(state === StateType.Leader ? 1 : 0);
    this.#host.onRoleChange(state, wasLeader);
  }

  /** Keeps raft's in-memory log bounded (STYLE §2): entries well behind applied are dropped. */
  #maybeCompactRaftLog(): void {
    const applied = this.#host.appliedIndex();
    if (applied - this.#lastRaftLogCompactIndex < raftLogCompactEveryEntries) return;
    // a lone voter has no follower to catch up: it keeps only what it has not applied
    const keep = this.#host.isOnlyVoter() ? 0 : raftLogKeepEntries;
    const compactTo = applied - keep;
    if (compactTo <= this.storage.firstIndex()) return;
    if (applied > this.storage.lastIndex()) return;
    this.compactRaftLogTo(compactTo);
  }

  /**
   * Compacts raft's in-memory log to `compactTo` (no-op at or below its first index). Storage.compact
   * needs the applied index covered by a storage snapshot; its data stays empty (the db file is the
   * snapshot a follower would be sent, with the cluster issue).
   */
  compactRaftLogTo(compactTo: number): void {
    const applied = this.#host.appliedIndex();
    if (compactTo <= this.storage.firstIndex()) return;
    if (applied > this.storage.lastIndex()) return;
    if (applied > snapshotIndexOf(this.storage)) {
      this.storage.createSnapshot(applied, this.#host.confState(), new Uint8Array(0));
    }
    this.storage.compact(Math.min(compactTo, applied));
    this.#lastRaftLogCompactIndex = applied;
  }

  /**
   * Writes the newest hardState (if only its commit index changed since the last write) and a
   * WAL snapshot record at (index, term), fsynced. The commit index rides along: etcd 3.4 trusts
   * only snapshot records at or below the WAL's last commit (ValidSnapshotEntries), and
   * commit-only hardStates are not written.
   */
  async saveWalSnapshot(index: number, term: number): Promise<void> {
    const hs = this.#unwrittenHardState;
    this.#unwrittenHardState = undefined;
    const save = hs !== undefined ? this.wal.save(hs, []) : undefined;
    await Promise.all([save, this.wal.saveSnapshot({ index, term })]);
  }

  /** Stops the loop: no Ready is taken after the one in flight. */
  stop(): void {
    this.#stopped = true;
  }

  /**
   * Waits (bounded) for an in-flight Ready's fsync, writes the last commit-only hardState unless
   * the member stopped on a fatal error, and closes the WAL.
   */
  async close(fatal: boolean): Promise<void> {
    // let an in-flight ready finish its fsync before closing the file
    for (let i = 0; i < 1000 && this.#inReady; i++) await new Promise((r) => setTimeout(r, 2));
    if (this.#unwrittenHardState !== undefined && !fatal) {
      await this.wal.save(this.#unwrittenHardState, []);
      this.#unwrittenHardState = undefined;
    }
    await this.wal.close();
  }
}

function snapshotIndexOf(storage: MemoryStorage): number {
  return storage.snapshot().metadata?.index ?? 0;
}
