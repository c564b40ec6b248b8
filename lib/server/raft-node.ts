/**
 * The member's raft loop (etcd 3.4's etcdserver/raft.go raftNode): owns the RawNode, raft's
 * in-memory log (MemoryStorage) and the WAL; takes each Ready, persists hardState + entries as ONE
 * WAL write and ONE fdatasync (group commit), hands committed entries and read states to the
 * member, then advances raft. Tracks the term, commit index, leader and role the Readys report.
 */
import type { Logger } from "pino";
import {
  type ConfState,
  type Entry,
  type HardState,
  type Message,
  MessageType,
  type Snapshot,
} from "../proto/gen/raftpb/raft.js";
import type { WAL } from "../wal/index.js";
import {
  coalesceMessages,
  ErrProposalDropped,
  ErrStepPeerNotFound,
  isForwardedRequest,
  MemoryStorage,
  RawNode,
  StateType,
  type Ready,
  type ReadState,
} from "../raft/index.js";
import { failpoint, failpointSleepMs } from "../failpoint/index.js";
import type { ServerMetrics } from "./metrics.js";

/** raft's maxSizePerMsg: entries per MsgApp, and per message merged by coalesceMessages. */
const maxSizePerMsgBytes = 1024 * 1024;

/** Campaigns a member makes again after forgetting a dead leader when the first brought none. */
const forgetCampaignRetries = 2;

/** Raft's in-memory log is trimmed once this many entries are applied. */
const raftLogCompactEveryEntries = 1_000;

/** What the raft loop hands to (and needs of) its member. */
export interface RaftNodeHost {
  /** The role changed (leader or not); `wasLeader` is the role before. */
  onRoleChange(state: StateType, wasLeader: boolean): void;
  /** The leader this member knows changed (0n: none known). */
  onLeaderChange(lead: bigint): void;
  /** Raft messages for peers (never MsgSnap). */
  send(messages: Message[]): void;
  /** A MsgSnap for a peer: the member sends its db file with it. */
  sendSnapshot(message: Message): void;
  /** A snapshot received from the leader: write its .snap file (its db file is already on disk). */
  saveSnapshotFile(snapshot: Snapshot): Promise<void>;
  /** A received snapshot is persisted: load its state (db file) before later entries apply. */
  applySnapshot(snapshot: Snapshot): void;
  /** Committed entries to apply, in order (while their WAL write is in flight). */
  applyEntries(entries: Entry[]): void;
  /** ReadIndex answers. */
  onReadStates(states: ReadState[]): void;
  /**
   * The local WAL now holds every entry up to `index` (fdatasynced) and nothing after it: called
   * once a Ready's save ends, before the next Ready is taken.
   */
  onDurable(index: number): void;
  appliedIndex(): number;
  /** raft's conf state after the last applied ConfChange (for storage snapshots). */
  confState(): ConfState | undefined;
  isOnlyVoter(): boolean;
  /**
   * True while the member writes a large file of its own in the background (a snapshot's db file,
   * a Defragment): the WAL's fdatasyncs then wait behind its flushes, and the background job needs
   * event-loop turns, so a lone voter's group commits go through the thread pool meanwhile.
   */
  backgroundWriteActive?(): boolean;
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
  /**
   * Entries kept behind the applied index for slow followers (etcd's snapshotCatchUpEntries,
   * --experimental-snapshot-catchup-entries); a follower further behind gets a snapshot.
   */
  keepEntries: number;
  /**
   * Once the followers have forgotten a dead leader (peerRefusing), they campaign one after the
   * other, this many ms apart (default 0: at once): see peerRefusing. The member passes its
   * heartbeat interval.
   */
  campaignAfterForgetStaggerMs?: number;
  /**
   * Readies whose WAL save may be in flight at once (default 1; a lone voter always uses 1). With
   * more, the next Ready is taken and its save started while earlier saves run (etcd-io/raft's
   * asynchronous storage writes): its leader messages go out and its committed entries apply at
   * once, and everything that needs its save (the leader's self-ack at advance, a follower's
   * acknowledgements, raft storage) happens after its save and every earlier one, in order.
   */
  maxSavesInFlight?: number;
  /**
   * WAL batches of at most this many entries are written with blocking calls (lib/wal
   * syncWriteMaxEntries), set on the WAL per Ready: `cluster` while other voters exist or a
   * background file write runs (RaftNodeHost.backgroundWriteActive), `loneVoter` otherwise. A
   * lone voter has one save in flight and nothing to overlap with it, so even large batches skip
   * the thread pool; in a cluster a blocking write would hold back the next Ready's save and the
   * peers' messages. Default: the WAL's own setting, unchanged.
   */
  syncWriteMaxEntries?: { cluster: number; loneVoter: number };
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
  #forwardScheduled = false;
  #inReady = false;
  #stopped = false;
  readonly #campaignAfterForgetStaggerMs: number;
  #campaignTimer: NodeJS.Timeout | undefined;
  /** raft's term when this follower forgot its leader. */
  #forgotAtTerm = 0;
  /** Campaigns left since this follower forgot its leader (see peerRefusing). */
  #forgetCampaignsLeft = 0;
  readonly #maxSavesInFlight: number;
  readonly #syncWriteMaxEntries: { cluster: number; loneVoter: number } | undefined;
  /** Readies taken whose save-and-advance has not finished. */
  #readiesInFlight = 0;
  /** Settles (never rejects) when the last Ready taken has been saved and advanced. */
  #lastReadyDone: Promise<void> = Promise.resolve();

  /** The newest hardState not yet written (its only change was the commit index). */
  #unwrittenHardState: HardState | undefined;
  #writtenTerm: number;
  #writtenVote: bigint;
  #lastRaftLogCompactIndex = 0;
  readonly #keepEntries: number;
  /**
   * Index of the last entry the local WAL holds, fdatasynced (or of the last snapshot record).
   * Committed entries may apply before it (a follower applies entries it is still writing), so
   * nothing may reach the disk as state past it: see durableIndex.
   */
  #durableIndex: number;

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
    this.#keepEntries = o.keepEntries;
    this.#maxSavesInFlight = o.maxSavesInFlight ?? 1;
    this.#campaignAfterForgetStaggerMs = o.campaignAfterForgetStaggerMs ?? 0;
    this.#syncWriteMaxEntries = o.syncWriteMaxEntries;
    // what recovery loaded into raft's log came from the WAL (or the snapshot it starts at)
    this.#durableIndex = o.storage.lastIndex();
    this.raw = new RawNode({
      id: o.id,
      electionTick: o.electionTick,
      heartbeatTick: 1,
      storage: o.storage,
      applied: o.applied,
      maxSizePerMsg: maxSizePerMsgBytes,
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
  /**
   * Index of the last entry the local WAL holds durably. The applied index may be ahead of it
   * while a Ready's save is in flight: a periodic snapshot must not capture state past it, or a
   * crash before the save ends leaves a db ahead of the WAL, which recovery refuses (etcd's
   * applyAll waits on the raft loop's notifyc before triggerSnapshot for the same reason).
   */
  get durableIndex(): number {
    return this.#durableIndex;
  }

  /** True while a Ready is being processed or its WAL write is in flight. */
  get inReady(): boolean {
    return this.#inReady || this.#readiesInFlight > 0;
  }

  /**
   * Asks for a Ready on a later turn. While a Ready's WAL save is in flight, a follower sends the
   * proposals and read requests it forwards to the leader on the next turn, not after the save: they need nothing of its disk,
   * and would otherwise wait for that fsync (a put through a follower by up to one fsync).
   */
  scheduleReady(): void {
    if (this.inReady && !this.#forwardScheduled && this.#raftState !== StateType.Leader) {
      // once per turn: what several requests forward in one turn leaves in one write
      this.#forwardScheduled = true;
      setImmediate(this.#onForwardTurn);
    }
    if (this.#readyScheduled || this.#inReady || this.#stopped) return;
    this.#readyScheduled = true;
    setImmediate(this.#onReadyTurn);
  }

  // the callbacks of scheduleReady, made once (it runs on every proposal and raft message)
  readonly #onForwardTurn = (): void => {
    this.#forwardScheduled = false;
    if (!this.#stopped) this.#send(this.raw.takeForwardedRequests());
  };
  readonly #onReadyTurn = (): void => {
    this.#readyScheduled = false;
    void this.#runReady();
  };

  /**
   * The ready loop (etcd's raftNode.start): take a Ready; a leader sends its messages first (it
   * may write to its disk in parallel with its followers, as etcd: it counts its own copy of an
   * entry only at advance()); start persisting hardState + entries as ONE WAL write and ONE
   * fdatasync, apply the committed entries while that fsync runs (they are already durable on a
   * quorum), then (#afterSave) append to raft storage; everyone else sends only now (a vote or an
   * append acknowledgement must be durable first); advance. Everything proposed during the fsync
   * rides the next Ready: that is the group commit. With maxSavesInFlight > 1 the next Ready is
   * taken while earlier saves run, and its #afterSave waits for theirs. A received snapshot waits
   * for every earlier Ready, is persisted (.snap file, WAL record) and loaded before any entry after
   * it applies.
   */
  async #runReady(): Promise<void> {
    if (this.#inReady || this.#stopped) return;
    this.#inReady = true;
    try {
      while (
        !this.#stopped &&
        this.#readiesInFlight < this.#savesAllowed() &&
        this.raw.hasReady()
      ) {
        const rd = this.raw.ready();
        if (rd.softState !== undefined)
          this.#onSoftState(rd.softState.lead, rd.softState.raftState);
        const isLeader = this.#raftState === StateType.Leader;
        let afterSave = rd.messages;
        if (isLeader) {
          // a drop loses this Ready's messages as a network would (raft retries)
          if (!failpoint("raftBeforeLeaderSend")) this.#send(rd.messages);
          afterSave = [];
        } else if (rd.messages.some(isForwardedRequest)) {
          this.#send(rd.messages.filter(isForwardedRequest));
          afterSave = rd.messages.filter((m) => !isForwardedRequest(m));
        }
        const hs = rd.hardState;
        // etcd's raftBeforeSave; a sleep holds back the save only, as a slow disk (apply goes on)
        const holdSaveMs = failpointSleepMs("raftBeforeSave");
        if (rd.snapshot !== undefined) {
          await this.#lastReadyDone;
          await this.#persistSnapshot(rd.snapshot);
        }
        // with a snapshot, the hardState (commit at or past the snapshot index) is written even
        // when only its commit moved: recovery ignores a WAL snapshot record past the written
        // commit (etcd's ValidSnapshotEntries), so a crash before the next write would fall back
        // to an older snapshot while the db is already the received one
        const withSnap = rd.snapshot !== undefined;
        const persist =
          holdSaveMs > 0
            ? delay(holdSaveMs).then(() => this.#persist(hs, rd.entries, withSnap))
            : this.#persist(hs, rd.entries, withSnap);
        if (rd.snapshot !== undefined) {
          if (persist !== undefined) await persist;
          failpoint("raftBeforeApplySnap");
          this.storage.applySnapshot(rd.snapshot);
          this.#host.applySnapshot(rd.snapshot);
          failpoint("raftAfterApplySnap");
        }
        if (rd.committedEntries.length > 0) this.#host.applyEntries(rd.committedEntries);
        if (rd.readStates.length > 0) this.#host.onReadStates(rd.readStates);
        this.#readiesInFlight++;
        const done = this.#afterSave(rd, hs, persist, isLeader, afterSave, this.#lastReadyDone);
        this.#lastReadyDone = done;
        if (this.#savesAllowed() === 1) await done;
      }
    } catch (err) {
      this.#host.fatal(err as Error);
    } finally {
      this.#inReady = false;
    }
    // at the limit, the oldest Ready's #afterSave schedules the next round
    if (!this.#stopped && this.#readiesInFlight < this.#savesAllowed() && this.raw.hasReady())
      this.scheduleReady();
  }

  /**
   * What a Ready does once its save and every earlier Ready's are done: the durable index, raft
   * storage, the messages that needed the save, advance(), raft log compaction. Never rejects (a
   * failure stops the member).
   */
  async #afterSave(
    rd: Ready,
    hs: HardState | undefined,
    persist: Promise<void> | undefined,
    isLeader: boolean,
    afterSave: Message[],
    earlier: Promise<void>,
  ): Promise<void> {
    try {
      if (persist !== undefined) await persist;
      await earlier;
      failpoint("raftAfterSave");
      const last = rd.entries[rd.entries.length - 1];
      if (last !== undefined) this.#durableIndex = last.index;
      if (last !== undefined || rd.snapshot !== undefined) this.#host.onDurable(this.#durableIndex);
      if (hs !== undefined) {
        this.storage.setHardState(hs);
        this.#term = hs.term;
        this.#commitIndex = hs.commit;
        this.#metrics.counts.proposalsCommitted = hs.commit;
      }
      if (rd.entries.length > 0) this.storage.append(rd.entries);
      if (!isLeader && failpoint("raftBeforeFollowerSend")) afterSave = [];
      this.#send(afterSave);
      failpoint("raftBeforeAdvance");
      this.raw.advance(rd);
      this.#maybeCompactRaftLog();
    } catch (err) {
      this.#host.fatal(err as Error);
    } finally {
      this.#readiesInFlight--;
    }
    // (in one-at-a-time mode #runReady is still running and goes on by itself)
    if (!this.#stopped && this.raw.hasReady()) this.scheduleReady();
  }

  /**
   * Readies whose save may be in flight now: maxSavesInFlight with peers, 1 for a lone voter. A
   * lone voter commits only on its own fsync, and two smaller saves in flight cost it more per put
   * than they save in waiting: puts with etcd's tool on the 2-core test box went 5-9 % slower at
   * 16 and 128 clients (CPU per put +3-10 µs), where a 3-member cluster went 5-8 % faster at 128.
   */
  #savesAllowed(): number {
    return this.#maxSavesInFlight > 1 && this.#host.isOnlyVoter() ? 1 : this.#maxSavesInFlight;
  }

  /**
   * Hands messages to the transport, what raft made for the same peer in a row merged
   * (coalesceMessages: one MsgApp per follower per Ready instead of one per proposal and per
   * commit advance); a MsgSnap goes with the member's db file.
   */
  #send(raftMessages: Message[]): void {
    if (raftMessages.length === 0) return;
    const messages = coalesceMessages(raftMessages, maxSizePerMsgBytes);
    let plain = messages;
    if (messages.some((m) => m.type === MessageType.MsgSnap)) {
      plain = [];
      for (const m of messages) {
        if (m.type === MessageType.MsgSnap) this.#host.sendSnapshot(m);
        else plain.push(m);
      }
    }
    this.#host.send(plain);
  }

  /**
   * A snapshot from the leader, before anything after it: its .snap file, then the WAL's snapshot
   * record (etcd's storage.SaveSnap), so a restart finds the db, the .snap and the WAL agreeing.
   */
  async #persistSnapshot(snap: Snapshot): Promise<void> {
    const md = snap.metadata!;
    await this.#host.saveSnapshotFile(snap);
    await this.wal.saveSnapshot({ index: md.index, term: md.term });
    // the received db is in place, its .snap and WAL record durable: the log restarts there
    this.#durableIndex = md.index;
  }

  /**
   * A raft message from a peer. Forwarded proposals raft drops and answers from members it no
   * longer tracks are ignored (etcd's Process logs and drops them too).
   */
  step(m: Message): void {
    if (this.#stopped) return;
    try {
      this.raw.step(m);
    } catch (err) {
      if (!(err instanceof ErrProposalDropped) && !(err instanceof ErrStepPeerNotFound)) throw err;
    }
    this.scheduleReady();
  }

  /** Messages to `id` could not be delivered (etcd's ReportUnreachable). */
  reportUnreachable(id: bigint): void {
    if (this.#stopped) return;
    this.raw.reportUnreachable(id);
    this.scheduleReady();
  }

  /**
   * A failure detector for a dead leader: our connection to peer `id` was lost and its peer port
   * refuses connections (lib/transport's onPeerRefusing), so its process is gone. If `id` is the
   * leader this follower follows, raft forgets it (RawNode.forgetLeader, after etcd-io/raft's
   * ForgetLeader: a leaderless follower grants (pre-)votes at once instead of refusing them for
   * the rest of the leader's lease) and this member campaigns soon after, through pre-vote when
   * it is on. A quorum must still agree: a live leader keeps the votes of the followers that hear
   * from it. Anything else (another peer, a member that is not a follower) changes nothing, and
   * without it the followers wait out their election timeout as before.
   *
   * Every follower sees the refusal within a few ms of the others, so they take turns instead of
   * campaigning at once (two candidates in one term split the vote, and the election then waits
   * for a randomised election timeout): the voters other than the dead leader, by ascending id,
   * campaign campaignAfterForgetStaggerMs apart, each a quarter to a half of it into its turn (so
   * that the others have forgotten the leader too, or they would ignore its vote request inside
   * the lease), and one that has meanwhile voted in a newer term or heard from a leader does not
   * campaign at all. A member whose campaign brought no leader (a vote request that came before
   * a follower forgot the leader is ignored, never answered) campaigns again two to three
   * stagger intervals later, up to forgetCampaignRetries times, unless it has voted for another
   * candidate or hears from a leader.
   */
  peerRefusing(id: bigint): void {
    if (this.#stopped) return;
    const r = this.raw.raft;
    if (id === 0n || r.lead !== id || r.state !== StateType.Follower) return;
    if (!this.raw.forgetLeader()) return;
    this.#logger.info(
      { "local-member-id": r.id.toString(16), "leader-id": id.toString(16), term: r.term },
      "leader's peer port refuses connections; forgetting leader",
    );
    this.#metrics.leaderForgottenTotal.inc();
    this.#forgotAtTerm = r.term;
    this.scheduleReady();
    const turn = r.trk
      .voterIds()
      .filter((v) => v !== id)
      .indexOf(r.id);
    if (turn < 0) return; // a learner does not campaign
    this.#forgetCampaignsLeft = 1 + forgetCampaignRetries;
    this.#scheduleForgetCampaign(
      (turn + 0.25 + Math.random() / 4) * this.#campaignAfterForgetStaggerMs,
    );
  }

  #scheduleForgetCampaign(delayMs: number): void {
    clearTimeout(this.#campaignTimer);
    this.#campaignTimer = setTimeout(this.#campaignAfterForget, delayMs);
    this.#campaignTimer.unref();
  }

  readonly #campaignAfterForget = (): void => {
    this.#campaignTimer = undefined;
    const r = this.raw.raft;
    const first = this.#forgetCampaignsLeft === 1 + forgetCampaignRetries;
    // heard from a leader meanwhile (the old one back, or another elected), or not a voter
    if (this.#stopped || r.lead !== 0n || r.state === StateType.Leader || !r.promotable()) return;
    if (first) {
      // voted for another candidate (a newer term), or already campaigned by itself
      if (r.state !== StateType.Follower || r.term !== this.#forgotAtTerm) return;
    } else if (r.vote !== 0n && r.vote !== r.id) {
      return; // voted for another candidate: let it win (or the election timeout decide)
    }
    this.#forgetCampaignsLeft--;
    try {
      this.raw.campaign();
    } catch (err) {
      this.#host.fatal(err as Error);
      return;
    }
    this.scheduleReady();
    if (this.#forgetCampaignsLeft > 0)
      this.#scheduleForgetCampaign((2 + Math.random()) * this.#campaignAfterForgetStaggerMs);
  };

  /** A snapshot sent to `id` was applied or failed (etcd's ReportSnapshot). */
  reportSnapshot(id: bigint, status: "finish" | "failure"): void {
    if (this.#stopped) return;
    this.raw.reportSnapshot(id, status);
    this.scheduleReady();
  }

  /**
   * Writes hardState + entries as one WAL save. A hardState whose only change is the commit index
   * is not written on its own: it rides the next save that has entries (or the clean stop).
   * Raft does not need the commit index durable (MustSync ignores it; a restarted leader
   * re-commits its log, Raft §5.4.2), so this saves a WAL write per applied batch without
   * weakening durability: term, vote and entries are always written, and fdatasynced, before
   * anything that depends on them is sent or acknowledged.
   */
  #persist(
    hs: HardState | undefined,
    entries: Entry[],
    withSnapshot = false,
  ): Promise<void> | undefined {
    if (
      !withSnapshot &&
      hs !== undefined &&
      entries.length === 0 &&
      hs.term === this.#writtenTerm &&
      hs.vote === this.#writtenVote
    ) {
      this.#unwrittenHardState = hs;
      return undefined;
    }
    // nothing new (a Ready of messages or committed entries only): a commit-only hardState held
    // back waits for the next save with entries, as documented above, not a write of its own
    if (hs === undefined && entries.length === 0 && !withSnapshot) return undefined;
    const toWrite = hs ?? this.#unwrittenHardState;
    if (toWrite === undefined && entries.length === 0) return undefined;
    this.#unwrittenHardState = undefined;
    if (toWrite !== undefined) {
      this.#writtenTerm = toWrite.term;
      this.#writtenVote = toWrite.vote;
    }
    const sw = this.#syncWriteMaxEntries;
    if (sw !== undefined) {
      const lone = this.#host.isOnlyVoter() && this.#host.backgroundWriteActive?.() !== true;
      this.wal.setSyncWriteMaxEntries(lone ? sw.loneVoter : sw.cluster);
    }
    return this.wal.save(toWrite, entries);
  }

  #onSoftState(lead: bigint, state: StateType): void {
    if (lead !== this.#leaderId) {
      if (lead !== 0n) this.#metrics.leaderChangesSeenTotal.inc();
      // etcd-io/raft's node.go words, with raft's term now (the Ready's hardState is not saved yet)
      const self = this.raw.raft.id.toString(16);
      const term = this.raw.term;
      const msg =
        lead !== 0n
          ? `raft.node: ${self} elected leader ${lead.toString(16)} at term ${term}`
          : `raft.node: ${self} lost leader ${this.#leaderId.toString(16)} at term ${term}`;
      this.#logger.info({ leader: lead.toString(16), term }, msg);
    }
    const wasLeader = this.#raftState === StateType.Leader;
    const leaderChanged = lead !== this.#leaderId;
    this.#leaderId = lead;
    this.#raftState = state;
    this.#metrics.hasLeader.set(lead !== 0n ? 1 : 0);
    this.#metrics.isLeader.set(state === StateType.Leader ? 1 : 0);
    this.#host.onRoleChange(state, wasLeader);
    if (leaderChanged) this.#host.onLeaderChange(lead);
  }

  /** Keeps raft's in-memory log bounded (STYLE §2): entries well behind applied are dropped. */
  #maybeCompactRaftLog(): void {
    const applied = this.#host.appliedIndex();
    const every = Math.min(raftLogCompactEveryEntries, Math.max(1, this.#keepEntries));
    if (applied - this.#lastRaftLogCompactIndex < every) return;
    // a lone voter has no follower to catch up: it keeps only what it has not applied
    const keep = this.#host.isOnlyVoter() ? 0 : this.#keepEntries;
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
    clearTimeout(this.#campaignTimer);
  }

  /**
   * Waits (bounded) for an in-flight Ready's fsync, writes the last commit-only hardState unless
   * the member stopped on a fatal error, and closes the WAL.
   */
  async close(fatal: boolean): Promise<void> {
    // let an in-flight ready finish its fsync before closing the file
    for (let i = 0; i < 1000 && this.inReady; i++) await new Promise((r) => setTimeout(r, 2));
    if (this.#unwrittenHardState !== undefined && !fatal) {
      await this.wal.save(this.#unwrittenHardState, []);
      this.#unwrittenHardState = undefined;
    }
    await this.wal.close();
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function snapshotIndexOf(storage: MemoryStorage): number {
  return storage.snapshot().metadata?.index ?? 0;
}
