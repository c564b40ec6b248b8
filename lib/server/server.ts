/**
 * One etcd-ts member (DESIGN §3): owns the raft node, the WAL, the ready loop with group commit,
 * the apply loop into mvcc and the lessor, request-id waits, linearizable reads through ReadIndex,
 * the backend quota and auto-compaction. The only part that wires I/O (files, timers).
 *
 * Follows etcd 3.4's etcdserver: server.go (run loop, apply), v3_server.go (proposals, linearizable
 * read loop, lease renew), apply.go (applierV3), quota.go (backend quota).
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import type { Logger } from "pino";

import {
  ConfChange,
  ConfChangeType,
  type ConfState,
  type Entry,
  EntryType,
  type HardState,
} from "../proto/gen/raftpb/raft.js";
import { InternalRaftRequest } from "../proto/gen/etcdserverpb/raft_internal.js";
import { Metadata } from "../proto/gen/etcdserverpb/etcdserver.js";
import {
  type AlarmMember,
  AlarmRequest_AlarmAction,
  AlarmType,
  type AlarmRequest,
  type AlarmResponse,
  type CompactionRequest,
  type CompactionResponse,
  type DeleteRangeRequest,
  type DeleteRangeResponse,
  type HashKVResponse,
  type LeaseGrantRequest,
  type LeaseGrantResponse,
  type LeaseLeasesResponse,
  type LeaseRevokeRequest,
  type LeaseRevokeResponse,
  type LeaseTimeToLiveRequest,
  type LeaseTimeToLiveResponse,
  type MemberListResponse,
  type PutRequest,
  type PutResponse,
  type RangeRequest,
  type RangeResponse,
  type RequestOp,
  type ResponseHeader,
  type StatusResponse,
  type TxnRequest,
  type TxnResponse,
} from "../proto/gen/etcdserverpb/rpc.js";
import { WAL, lockDataDir } from "../wal/index.js";
import { MemoryStorage, RawNode, StateType, type Ready } from "../raft/index.js";
import { MvccStore, isTxnReadOnly, type WatchSink, type WatchStream } from "../mvcc/index.js";
import { Lessor, computeMinLeaseTtlSeconds, maxLeaseTtlSeconds } from "../lease/index.js";
import { serverVersion } from "../version/index.js";
import { type ServerConfig, defaultQuotaBytes } from "./config.js";
import {
  ServerError,
  errLeaseTtlTooLarge,
  errNoLeader,
  errNoSpace,
  errRequestTooLarge,
  errStopped,
  errLeaseNotFound,
  errLeaseExists,
  errTooManyRequests,
} from "./errors.js";
import {
  type MemberRecord,
  computeClusterId,
  decodeMemberContext,
  encodeMemberContext,
  parseInitialCluster,
} from "./membership.js";
import { ServerMetrics } from "./metrics.js";
import { encodePutProposal, isPlainPutRequest } from "./raft-request-codec.js";
import { AppliedIndexWaits, RequestWaits } from "./wait.js";
import { AutoCompactor, parseRetention } from "./compactor.js";
import { leaseOverheadBytes, putCost, txnCost } from "./quota.js";
import { applyV2Request, decodeEntryData } from "./v2-request.js";
import { decodeV2StoreMembers } from "./v2-store.js";
import { recoverDataDir, type RecoveredDataDir } from "./recovery.js";
import { Snapshotter, snapshotCatchUpEntries } from "./snapshotter.js";
import { captureDbFileState } from "./db-file.js";
import { MemberAuth } from "./apply-auth.js";
import type { AuthInfo } from "../auth/index.js";

/** Request-id counters wrap at 2^48 (the low 48 bits of an id; etcd idutil's suffix). */
const requestIdCounterModulus = 2 ** 48;

/** A proposal of this member awaiting apply: the entry bytes, its request object, its waits key. */
interface LocalProposal {
  data: Uint8Array;
  request: InternalRaftRequest;
  waitKey: number;
  /** its wait ended (applied, failed, timed out): the apply loop skips it */
  settled: boolean;
}

/** Consumed local proposals at the head of the queue before it is compacted. */
const localQueueCompactAt = 1024;

/** What the apply loop hands back to a waiting proposer. */
type ApplyResult =
  { response: unknown; error?: undefined } | { response?: undefined; error: Error };

/** etcd: a lease is revoked at most this many times per second by the leader (leaseRevokeRate). */
const maxLeaseRevokesPerSecond = 1000;
/** etcd's request timeout: 5 s + 2 × election timeout (embed.Config.ReqTimeout). */
const requestTimeoutBaseMs = 5000;
/** etcd's maxGapBetweenApplyAndCommitIndex: proposals are refused with "too many requests" beyond it. */
const maxGapBetweenApplyAndCommitIndex = 5000;
/**
 * Raft's in-memory log is trimmed once this many entries are applied, keeping the last
 * `raftLogKeepEntries` for slow followers (etcd's snapshotCatchUpEntries). The WAL keeps everything
 * until db snapshots arrive with their issue.
 */
const raftLogCompactEveryEntries = 1_000;
const raftLogKeepEntries = 5_000;

export interface ServerOptions {
  config: ServerConfig;
  logger: Logger;
}

/**
 * A running member. Create with `EtcdServer.start(options)`; every client call is a method that
 * resolves with the response (header filled) or rejects with an error whose message is etcd's
 * exact string (lib/api maps it to the gRPC code).
 */
export class EtcdServer {
  readonly config: ServerConfig;
  readonly logger: Logger;
  readonly metrics = new ServerMetrics();
  readonly store: MvccStore;
  readonly lessor: Lessor;
  readonly members = new Map<bigint, MemberRecord>();
  /** users, roles, tokens; the permission checks on apply (apply-auth.ts) */
  readonly auth: MemberAuth;

  #memberId = 0n;
  #clusterId = 0n;
  #raft!: RawNode;
  #storage!: MemoryStorage;
  #wal!: WAL;
  #lock: { release(): void } | undefined;

  #term = 0;
  #commitIndex = 0;
  #appliedIndex = 0;
  #leaderId = 0n;
  #raftState: StateType = StateType.Follower;
  #confState: ConfState | undefined;
  readonly #alarms: AlarmMember[] = [];

  #readyScheduled = false;
  #inReady = false;
  #stopped = false;
  #fatalError: Error | undefined;

  readonly #waits = new RequestWaits<unknown, LocalProposal>((local, ok) =>
    this.#onWaitSettled(local, ok),
  );
  /**
   * Proposals of this member in the order they went to raft: the apply loop takes the request
   * object from the head instead of decoding the entry when the entry is the very bytes proposed
   * (see #applyNormal). Raft appends a leader's proposals in order, so the head is the next one
   * to apply; settled ones (failed, timed out) are skipped. A proposal raft dropped without an
   * error (it cannot on a lone member) only makes later entries take the decoding path until its
   * wait times out. A queue, not a Map by entry bytes: the Map's hash table grew and shrank with
   * every group-commit wave.
   */
  #localQueue: LocalProposal[] = [];
  #localHead = 0;
  readonly #appliedWaits = new AppliedIndexWaits();
  /**
   * Request ids (etcd's idutil layout): a random 16-bit prefix for this run, then a 48-bit counter
   * started from the clock. Held as numbers so the put path makes no BigInt: the counter alone is
   * the waits key, and the id's two 32-bit words are what the proposal encoder writes.
   */
  #requestIdCounter = 0;
  readonly #requestIdPrefix16: number;

  // linearizable reads: requests that arrive while a ReadIndex is in flight join the next batch
  #readBatchPending: { resolve: () => void; reject: (e: Error) => void }[] = [];
  #readInFlight: Map<string, { resolve: () => void; reject: (e: Error) => void }[]> = new Map();
  #readCounter = 0n;

  #tickTimer: NodeJS.Timeout | undefined;
  #progressTimer: NodeJS.Timeout | undefined;
  #compactor: AutoCompactor | undefined;
  #snapshotter: Snapshotter | undefined;
  /** the db file's consistent index at start: normal entries at or below it are in the store already */
  #dbConsistentIndex = 0;
  /** term of the entry at #appliedIndex (a snapshot's term) */
  #appliedTerm = 0;
  #lastLeaseRevokeMs = 0;
  #quotaBytes: number;
  #nospaceProposed = false;

  private constructor(opts: ServerOptions) {
    this.config = opts.config;
    this.logger = opts.logger;
    this.auth = new MemberAuth(this.config);
    this.lessor = new Lessor({
      // etcd: minTTL = ceil(3 * electionTicks / 2) heartbeats (lease.NewLessor's MinLeaseTTL)
      minLeaseTtlSeconds: computeMinLeaseTtlSeconds(
        Math.max(1, Math.round(this.config.electionTimeoutMs / this.config.heartbeatIntervalMs)),
        this.config.heartbeatIntervalMs,
      ),
    });
    this.store = new MvccStore({
      // catch-up responses of at most this many revisions: a client that stops reading holds
      // at most one such response in the transport (etcd batches 1000; smaller batches are
      // equally valid watch responses and bound the memory a slow watcher pins)
      maxEventsPerWatchResponse: 100,
      maxRequestBytes: this.config.maxRequestBytes,
      leaseHooks: {
        exists: (id) => this.lessor.has(id),
        attach: (id, key) => this.lessor.attach(id, key),
        detach: (id, key) => this.lessor.detach(id, key),
      },
    });
    // etcd quota.go: 0 means the default quota, a negative value disables the quota
    this.#quotaBytes =
      this.config.quotaBackendBytes > 0
        ? this.config.quotaBackendBytes
        : this.config.quotaBackendBytes < 0
          ? Number.POSITIVE_INFINITY
          : defaultQuotaBytes;
    this.#requestIdPrefix16 = randomBytes(2).readUInt16BE(0);
    this.#requestIdCounter = (Date.now() * 256) % requestIdCounterModulus;
  }

  /**
   * Opens (or creates) the data dir, replays the WAL, starts raft and the timers, and resolves once
   * every entry committed before the restart is applied and the member has a leader.
   * Throws DataDirLockedError if another process holds the data dir, WalCorruptError on a damaged
   * WAL (never silently used), InitialClusterError on a bad --initial-cluster.
   */
  static async start(opts: ServerOptions): Promise<EtcdServer> {
    const s = new EtcdServer(opts);
    try {
      await s.#open();
    } catch (err) {
      // a refused data dir (corrupt file, locked) must not keep the lock or timers
      await s.stop().catch(() => s.#lock?.release());
      throw err;
    }
    return s;
  }

  get memberId(): bigint {
    return this.#memberId;
  }
  get clusterId(): bigint {
    return this.#clusterId;
  }
  get leaderId(): bigint {
    return this.#leaderId;
  }
  get term(): number {
    return this.#term;
  }
  get appliedIndex(): number {
    return this.#appliedIndex;
  }
  get commitIndex(): number {
    return this.#commitIndex;
  }
  get isLeader(): boolean {
    return this.#raftState === StateType.Leader;
  }
  /** Index of the newest db snapshot written or started from (0 for none). */
  get snapshotIndex(): number {
    return this.#snapshotter?.snapshotIndex ?? 0;
  }
  get alarms(): readonly AlarmMember[] {
    return this.#alarms;
  }

  async #open(): Promise<void> {
    const c = this.config;
    mkdirSync(c.dataDir, { recursive: true, mode: 0o700 });
    this.#lock = lockDataDir(c.dataDir);
    const walDir = c.walDir !== "" ? c.walDir : join(c.dataDir, "member", "wal");
    mkdirSync(join(c.dataDir, "member", "snap"), { recursive: true, mode: 0o700 });
    this.#storage = new MemoryStorage();
    const walOptions = {
      segmentSizeBytes: c.walSegmentSizeBytes,
      syncWriteMaxEntries: c.walSyncWriteMaxEntries,
      maxWalFiles: c.maxWals,
      logger: {
        info: (obj: object, msg?: string) => this.logger.info(obj, msg),
        warn: (obj: object, msg?: string) => this.logger.warn(obj, msg),
      },
    };
    let bootstrapPeers: MemberRecord[] | undefined;
    let startIndex = 0;
    let dbSize = { dbSizeBytes: 0, dbSizeInUseBytes: 0 };
    if (WAL.exists(walDir)) {
      const r = await recoverDataDir(c.dataDir, walDir, walOptions, this.logger);
      this.#wal = r.wal;
      startIndex = this.#restoreFrom(r);
      dbSize = { dbSizeBytes: r.dbSizeBytes, dbSizeInUseBytes: r.dbSizeInUseBytes };
      const md = Metadata.fromBinary(r.metadata);
      this.#memberId = md.nodeID;
      this.#clusterId = md.clusterID;
      if (r.hardState.term > 0 || r.hardState.commit > 0) this.#storage.setHardState(r.hardState);
      this.#storage.append(r.entries);
      this.#term = r.hardState.term;
      this.#writtenTerm = r.hardState.term;
      this.#writtenVote = r.hardState.vote;
      this.#commitIndex = r.hardState.commit;
      this.logger.info(
        {
          memberId: this.#memberId.toString(16),
          clusterId: this.#clusterId.toString(16),
          term: r.hardState.term,
          commitIndex: r.hardState.commit,
          entries: r.entries.length,
          snapshotIndex: startIndex,
          consistentIndex: r.consistentIndex,
        },
        "restarting member from db and WAL",
      );
    } else {
      const peers = parseInitialCluster(c.initialCluster, c.initialClusterToken);
      const self = peers.find((p) => p.name === c.name);
      if (self === undefined) {
        throw new ServerError(
          "ErrInitialCluster",
          `couldn't find local name "${c.name}" in the initial cluster configuration`,
        );
      }
      self.clientUrls = c.advertiseClientUrls;
      this.#memberId = self.id;
      this.#clusterId = computeClusterId(peers.map((p) => p.id));
      const metadata = Metadata.toBinary(
        Metadata.create({ nodeID: this.#memberId, clusterID: this.#clusterId }),
      );
      mkdirSync(join(walDir, ".."), { recursive: true, mode: 0o700 });
      this.#wal = await WAL.create(walDir, metadata, walOptions);
      bootstrapPeers = peers;
      this.logger.info(
        { memberId: this.#memberId.toString(16), clusterId: this.#clusterId.toString(16) },
        "starting new member",
      );
    }
    this.#wal.onSync = (info) => {
      this.metrics.walFsyncDurationSeconds.observe(info.durationSeconds);
      // a segment cut syncs its header with no entries: not a group-commit batch
      if (info.entries > 0) {
        this.metrics.walEntriesPerFsync.observe(info.entries);
        this.metrics.walBytesPerFsync.observe(info.bytes);
      }
      this.metrics.walWriteBytesTotal.inc(info.bytes);
      this.metrics.walFsyncsTotal.inc();
      this.metrics.walEntriesTotal.inc(info.entries);
      // etcd warns when a WAL sync takes longer than 1 s (wal.warnSyncDuration)
      if (info.durationSeconds > 1) {
        this.logger.warn(
          { tookSeconds: info.durationSeconds, entries: info.entries, bytes: info.bytes },
          "slow fdatasync",
        );
      }
    };
    const electionTick = Math.max(1, Math.round(c.electionTimeoutMs / c.heartbeatIntervalMs));
    this.#raft = new RawNode({
      id: this.#memberId,
      electionTick,
      heartbeatTick: 1,
      storage: this.#storage,
      applied: startIndex,
      maxSizePerMsg: 1024 * 1024,
      maxInflightMsgs: 4096 / 8,
      maxUncommittedEntriesSize: 1 << 30,
      preVote: c.preVote,
      checkQuorum: true,
      random: Math.random,
      logger: {
        debug: (m) => this.logger.debug(m),
        info: (m) => this.logger.info(m),
        warn: (m) => this.logger.warn(m),
        error: (m) => this.logger.error(m),
      },
    });
    if (bootstrapPeers !== undefined) {
      this.#raft.bootstrap(
        bootstrapPeers.map((p) => ({ id: p.id, context: encodeMemberContext(p) })),
      );
    }
    this.#snapshotter = new Snapshotter({
      dataDir: c.dataDir,
      snapshotCount: c.snapshotCount,
      maxSnapshots: c.maxSnapshots,
      logger: this.logger,
      startIndex,
      ...dbSize,
      host: {
        capture: () => ({
          state: captureDbFileState(this),
          term: this.#appliedTerm,
          confState: this.#confState ?? this.#storage.initialState().confState,
        }),
        appliedIndex: () => this.#appliedIndex,
        saveWalSnapshot: async (index, term) => {
          // the commit index rides along: etcd 3.4 trusts only snapshot records at or below the
          // WAL's last commit (ValidSnapshotEntries), and commit-only hardStates are not written
          const hs = this.#unwrittenHardState;
          this.#unwrittenHardState = undefined;
          const save = hs !== undefined ? this.#wal.save(hs, []) : undefined;
          await Promise.all([save, this.#wal.saveSnapshot({ index, term })]);
        },
        releaseTo: async (index) => {
          this.#compactRaftLogTo(index - snapshotCatchUpEntries);
          await this.#wal.releaseLockTo(index);
        },
      },
    });
    // Replay: wait until every entry committed before the restart has been applied, and on a
    // fresh start the bootstrap ConfChanges (committed by bootstrap(), not yet in #commitIndex),
    // so that the membership below is known.
    const commitAtStart = Math.max(this.#commitIndex, this.#raft.status().hardState.commit);
    this.#scheduleReady();
    await this.#appliedWaits.wait(commitAtStart, this.#appliedIndex);
    // A lone voter need not wait an election timeout: etcd's adjustTicks fast-forwards a
    // single-member cluster to its last tick before the election (electionTicks - 1), so it still
    // waits 1 to 10 ticks of its randomised timeout; a lone voter cannot split a vote, so it
    // campaigns at once. Raft refuses to campaign while it has not itself applied the bootstrap
    // ConfChanges (it learns that at advance()), so the ready round that applied them ends first.
    while (this.#inReady && !this.#stopped) await new Promise((r) => setImmediate(r));
    if (this.#isOnlyVoter()) this.#raft.campaign();
    this.#scheduleReady();
    this.#tickTimer = setInterval(() => this.#tick(), c.heartbeatIntervalMs);
    this.#progressTimer = setInterval(
      () => this.store.progressNotify(),
      Math.max(100, c.watchProgressNotifyIntervalMs),
    );
    const retention = parseRetention(c.autoCompactionMode, c.autoCompactionRetention);
    if (retention > 0) {
      this.#compactor = new AutoCompactor(c.autoCompactionMode, retention, {
        currentRevision: () => this.store.currentRevision,
        compactRevision: () => this.store.compactRevision,
        compact: async (revision) => {
          try {
            await this.compact({ revision, physical: false });
            this.logger.info({ revision }, "auto compaction done");
          } catch (err) {
            this.logger.warn({ revision, err: (err as Error).message }, "auto compaction failed");
          }
        },
        isLeader: () => this.isLeader,
      });
      this.#compactor.start();
    }
    await this.#waitForLeader(requestTimeoutBaseMs + 2 * c.electionTimeoutMs);
    // etcd serves clients only after its ReadyNotify; here: once a read index of the new term is
    // applied, i.e. every entry written before a restart is applied (Raft thesis §6.4)
    if (this.#leaderId !== 0n) {
      try {
        await this.linearizableReadNotify();
      } catch (err) {
        this.logger.warn({ err: (err as Error).message }, "first read index after start failed");
      }
    }
  }

  #isOnlyVoter(): boolean {
    const voters = [...this.members.values()].filter((m) => !m.isLearner);
    return voters.length === 1 && voters[0].id === this.#memberId;
  }

  async #waitForLeader(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.#leaderId === 0n && Date.now() < deadline && !this.#stopped) {
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  // ---------------------------------------------------------------- ready loop

  #scheduleReady(): void {
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
      while (!this.#stopped && this.#raft.hasReady()) {
        const rd = this.#raft.ready();
        if (rd.softState !== undefined)
          this.#onSoftState(rd.softState.lead, rd.softState.raftState);
        const hs = rd.hardState;
        const persist = this.#persist(hs, rd.entries);
        if (rd.committedEntries.length > 0) this.#applyEntries(rd.committedEntries);
        if (rd.readStates.length > 0) this.#onReadStates(rd.readStates);
        if (persist !== undefined) await persist;
        if (hs !== undefined) {
          this.#storage.setHardState(hs);
          this.#term = hs.term;
          this.#commitIndex = hs.commit;
          this.metrics.proposalsCommittedTotal.set(hs.commit);
        }
        if (rd.entries.length > 0) this.#storage.append(rd.entries);
        // Peers arrive with the cluster issue; a single member has no messages to send.
        this.#raft.advance(rd);
        this.#maybeCompactRaftLog();
      }
    } catch (err) {
      this.#fatal(err as Error);
    } finally {
      this.#inReady = false;
    }
    if (!this.#stopped && this.#raft.hasReady()) this.#scheduleReady();
  }

  /** The newest hardState not yet written (its only change was the commit index). */
  #unwrittenHardState: HardState | undefined;
  #writtenTerm = 0;
  #writtenVote = 0n;

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
    return this.#wal.save(toWrite, entries);
  }

  /**
   * A failed WAL write or a broken invariant stops the member (etcd panics): continuing could
   * acknowledge writes that are not durable.
   */
  #fatal(err: Error): void {
    if (this.#fatalError !== undefined) return;
    this.#fatalError = err;
    this.logger.fatal({ err: err.message, stack: err.stack }, "member stopping on a fatal error");
    this.#waits.failAll(errStopped());
    void this.stop().finally(() => this.onFatal?.(err));
  }

  /**
   * Called once the member has stopped on a fatal error (a failed WAL write, a broken invariant).
   * The process entry point closes the listeners and exits non-zero, as etcd exits on such errors.
   */
  onFatal: ((err: Error) => void) | undefined;

  #onSoftState(lead: bigint, state: StateType): void {
    if (lead !== this.#leaderId) {
      if (lead !== 0n) this.metrics.leaderChangesSeenTotal.inc();
      this.logger.info({ leader: lead.toString(16), term: this.#term }, "leader changed");
    }
    const wasLeader = this.#raftState === StateType.Leader;
    this.#leaderId = lead;
    this.#raftState = state;
    this.metrics.hasLeader.set(lead !== 0n ? 1 : 0);
    this.metrics.isLeader.set(state === StateType.Leader ? 1 : 0);
    if (state === StateType.Leader && !wasLeader) {
      // etcd: lessor.Promote(electionTimeout) — leases get their full TTL again on a new leader
      this.lessor.promote(Date.now(), this.config.electionTimeoutMs);
    } else if (state !== StateType.Leader && wasLeader) {
      this.lessor.demote();
    }
  }

  // ---------------------------------------------------------------- apply

  #applyEntries(entries: Entry[]): void {
    for (const e of entries) {
      if (e.index <= this.#appliedIndex) continue;
      if (e.index !== this.#appliedIndex + 1) {
        throw new Error(
          `apply: entry index ${e.index} does not follow applied index ${this.#appliedIndex}`,
        );
      }
      // etcd's applier skips entries the db already holds (index <= its consistent index)
      if (e.type === EntryType.EntryNormal) {
        if (e.index > this.#dbConsistentIndex) this.#applyNormal(e);
      } else if (e.type === EntryType.EntryConfChange) this.#applyConfChange(e);
      this.#appliedIndex = e.index;
      this.#appliedTerm = e.term;
    }
    this.metrics.proposalsAppliedTotal.set(this.#appliedIndex);
    this.#appliedWaits.appliedTo(this.#appliedIndex);
    this.#snapshotter?.maybeTrigger(this.#appliedIndex);
  }

  #lastRaftLogCompactIndex = 0;

  /** Keeps raft's in-memory log bounded (STYLE §2): entries well behind applied are dropped. */
  #maybeCompactRaftLog(): void {
    if (this.#appliedIndex - this.#lastRaftLogCompactIndex < raftLogCompactEveryEntries) return;
    // a lone voter has no follower to catch up: it keeps only what it has not applied
    const keep = this.#isOnlyVoter() ? 0 : raftLogKeepEntries;
    const compactTo = this.#appliedIndex - keep;
    if (compactTo <= this.#storage.firstIndex()) return;
    if (this.#appliedIndex > this.#storage.lastIndex()) return;
    this.#compactRaftLogTo(compactTo);
  }

  /**
   * Compacts raft's in-memory log to `compactTo` (no-op at or below its first index). Storage.compact
   * needs the applied index covered by a storage snapshot; its data stays empty (the db file is the
   * snapshot a follower would be sent, with the cluster issue).
   */
  #compactRaftLogTo(compactTo: number): void {
    if (compactTo <= this.#storage.firstIndex()) return;
    if (this.#appliedIndex > this.#storage.lastIndex()) return;
    if (this.#appliedIndex > snapshotIndexOf(this.#storage)) {
      this.#storage.createSnapshot(this.#appliedIndex, this.#confState, new Uint8Array(0));
    }
    this.#storage.compact(Math.min(compactTo, this.#appliedIndex));
    this.#lastRaftLogCompactIndex = this.#appliedIndex;
  }

  /**
   * Loads what recovery found: raft's snapshot, hardState and log tail into raft storage, the db's
   * leases, keys, members, alarms and auth store into the member. Returns the snapshot index (raft's applied).
   */
  #restoreFrom(r: RecoveredDataDir): number {
    const snap = r.snapshot;
    if (snap !== undefined) {
      this.#storage.applySnapshot(snap);
      this.#confState = snap.metadata!.confState;
    }
    const startIndex = snap?.metadata?.index ?? 0;
    this.#appliedIndex = startIndex;
    this.#appliedTerm = snap?.metadata?.term ?? 0;
    this.#dbConsistentIndex = r.consistentIndex;
    const db = r.db;
    if (db !== undefined) {
      // leases first: restoring the keys re-attaches them through the store's lease hooks
      this.lessor.restore(db.leases);
      this.store.restore(db.keyRecords(), db.compactRevision);
      // etcd's kvstore.restore finishes a compaction that was scheduled but not finished
      if (db.scheduledCompactRevision > db.compactRevision) {
        this.store.compact(db.scheduledCompactRevision);
      }
      // etcd 3.4 reads members from the snapshot's v2 store; the db's bucket otherwise
      const fromSnap = snap !== undefined ? decodeV2StoreMembers(snap.data) : undefined;
      for (const m of fromSnap ?? db.members) this.members.set(m.id, { ...m });
      for (const a of db.alarms) this.#alarms.push({ memberID: a.memberID, alarm: a.alarm });
      this.auth.store.restore(db.auth);
      this.#pinSelfClientUrls();
    }
    return startIndex;
  }

  #applyConfChange(e: Entry): void {
    const cc = ConfChange.fromBinary(e.data);
    this.#confState = this.#raft.applyConfChange(cc);
    if (
      cc.type === ConfChangeType.ConfChangeAddNode ||
      cc.type === ConfChangeType.ConfChangeAddLearnerNode
    ) {
      const m = decodeMemberContext(cc.nodeID, cc.context);
      m.isLearner = cc.type === ConfChangeType.ConfChangeAddLearnerNode;
      if (m.id === this.#memberId && m.clientUrls.length === 0) {
        m.clientUrls = this.config.advertiseClientUrls;
      }
      this.members.set(cc.nodeID, m);
    } else if (cc.type === ConfChangeType.ConfChangeRemoveNode) {
      this.members.delete(cc.nodeID);
    }
    this.#pinSelfClientUrls();
    const ccKey = this.#waitKeyOf(cc.iD);
    if (ccKey !== undefined) this.#waits.trigger(ccKey, undefined);
  }

  /** The advertised client URLs of this member follow its flags, as etcd's publish step does. */
  #pinSelfClientUrls(): void {
    const self = this.members.get(this.#memberId);
    if (self !== undefined) {
      self.clientUrls = this.config.advertiseClientUrls;
      if (self.name === "") self.name = this.config.name;
    }
  }

  /**
   * The local proposal whose bytes `data` are, if it is the next one in proposal order; undefined
   * for an entry another member proposed (or replayed from the WAL), which is then decoded.
   */
  #takeLocalProposal(data: Uint8Array): LocalProposal | undefined {
    const q = this.#localQueue;
    let head = this.#skipSettledLocal();
    let found: LocalProposal | undefined;
    if (head < q.length && q[head]!.data === data) found = q[head++];
    this.#localHead = head;
    return found;
  }

  /** Moves the queue head past settled proposals, compacting the queue; returns the head. */
  #skipSettledLocal(): number {
    const q = this.#localQueue;
    let head = this.#localHead;
    while (head < q.length && q[head]!.settled) head++;
    if (head >= localQueueCompactAt && head * 2 >= q.length) {
      q.splice(0, head);
      head = 0;
    }
    this.#localHead = head;
    return head;
  }

  #applyNormal(e: Entry): void {
    if (e.data.length === 0) return; // the empty entry a new leader appends (Raft §5.4.2)
    // An entry this member proposed carries the very bytes #propose encoded from the request
    // object it still holds: that object is the decoded entry, so skip decoding it again.
    const local = this.#takeLocalProposal(e.data);
    let r: InternalRaftRequest;
    let waitKey: number | undefined;
    if (local !== undefined) {
      r = local.request;
      waitKey = local.waitKey;
    } else {
      let d: ReturnType<typeof decodeEntryData>;
      try {
        d = decodeEntryData(e.data);
      } catch (err) {
        // Entries were validated before they were proposed; one that does not decode means the
        // log is damaged, which must stop the member rather than diverge.
        throw new Error(`apply: entry ${e.index} does not decode: ${(err as Error).message}`);
      }
      if (d.kind === "v2") {
        // etcd 3.4's member-attribute and cluster-version entries (v2-request.ts)
        applyV2Request(d.request, {
          members: this.members,
          setClusterVersion: () => {},
          ignored: (req, why) =>
            this.logger.info({ index: e.index, path: req.path, why }, "v2 request not applied"),
        });
        this.#pinSelfClientUrls();
        return;
      }
      r = d.request;
      waitKey = this.#waitKeyOf(r.header?.iD ?? r.iD);
    }
    const started = performance.now();
    let result: ApplyResult;
    let op = "unknown";
    try {
      const out = this.#applyRequest(r, e.index);
      op = out.op;
      result = { response: out.response };
    } catch (err) {
      result = { error: err as Error };
    }
    const seconds = (performance.now() - started) / 1000;
    this.metrics.applyDurationSeconds.observe(op, result.error === undefined, seconds);
    // etcd warns on applies over 100 ms (warnApplyDuration)
    if (seconds > 0.1) this.metrics.slowApplyTotal.inc();
    if (waitKey !== undefined) {
      // an apply error is an answer, not a failed proposal (etcd counts proposals_failed_total
      // only for proposals that time out or are dropped)
      if (result.error !== undefined) this.#waits.fail(waitKey, result.error, true);
      else this.#waits.trigger(waitKey, result.response);
    }
  }

  /** etcd's applierV3 (apply.go) behind the capped applier (apply NOSPACE rule). */
  #applyRequest(r: InternalRaftRequest, index: number): { op: string; response: unknown } {
    this.auth.checkApply(r, this.lessor);
    const noSpace = this.#alarms.some((a) => a.alarm === AlarmType.NOSPACE);
    if (r.put !== undefined) {
      if (noSpace) throw errNoSpace();
      this.metrics.counts.puts++;
      const resp = this.store.put(r.put);
      resp.header = this.header();
      return { op: "Put", response: resp };
    }
    if (r.deleteRange !== undefined) {
      this.metrics.counts.deletes++;
      const resp = this.store.deleteRange(r.deleteRange);
      resp.header = this.header();
      return { op: "DeleteRange", response: resp };
    }
    if (r.txn !== undefined) {
      if (noSpace && txnCost(r.txn) > 0) throw errNoSpace();
      this.metrics.counts.txns++;
      const resp = this.store.txn(r.txn);
      resp.header = this.header();
      return { op: "Txn", response: resp };
    }
    if (r.compaction !== undefined) {
      this.store.compact(r.compaction.revision);
      const resp: CompactionResponse = { header: this.header() };
      return { op: "Compaction", response: resp };
    }
    if (r.leaseGrant !== undefined) {
      if (noSpace) throw errNoSpace();
      if (this.lessor.has(r.leaseGrant.iD)) throw errLeaseExists();
      const l = this.lessor.grant(r.leaseGrant.iD, r.leaseGrant.tTL, Date.now());
      const resp: LeaseGrantResponse = {
        header: this.header(),
        iD: l.id,
        tTL: l.ttlSeconds,
        error: "",
      };
      return { op: "LeaseGrant", response: resp };
    }
    if (r.leaseRevoke !== undefined) {
      if (!this.lessor.has(r.leaseRevoke.iD)) throw errLeaseNotFound();
      const keys = this.lessor.revoke(r.leaseRevoke.iD);
      if (keys.length > 0) this.store.deleteKeys(keys);
      const resp: LeaseRevokeResponse = { header: this.header() };
      return { op: "LeaseRevoke", response: resp };
    }
    if (r.leaseCheckpoint !== undefined) {
      for (const cp of r.leaseCheckpoint.checkpoints) {
        this.lessor.applyCheckpoint(cp.iD, cp.remainingTTL);
      }
      return { op: "LeaseCheckpoint", response: { header: this.header() } };
    }
    if (r.alarm !== undefined) {
      return { op: "Alarm", response: this.#applyAlarm(r.alarm) };
    }
    const authOut = this.auth.apply(r, index, () => this.header(), Date.now());
    if (authOut !== undefined) return authOut;
    throw new ServerError("ErrUnsupported", "etcdserver: request not supported by etcd-ts yet");
  }

  #applyAlarm(req: AlarmRequest): AlarmResponse {
    const resp: AlarmResponse = { header: this.header(), alarms: [] };
    // etcd apply.go Alarm GET lists every alarm, whatever member id or type the request names
    const matches = (_a: AlarmMember) => true;
    if (req.action === AlarmRequest_AlarmAction.GET) {
      resp.alarms = this.#alarms.filter(matches).map((a) => ({ ...a }));
    } else if (req.action === AlarmRequest_AlarmAction.ACTIVATE) {
      if (req.alarm === AlarmType.NONE) return resp;
      const exists = this.#alarms.some((a) => a.memberID === req.memberID && a.alarm === req.alarm);
      const m = { memberID: req.memberID, alarm: req.alarm };
      if (!exists) {
        this.#alarms.push(m);
        this.logger.warn(
          { alarm: AlarmType[req.alarm], memberId: req.memberID.toString(16) },
          "alarm raised",
        );
      }
      resp.alarms = [m];
    } else if (req.action === AlarmRequest_AlarmAction.DEACTIVATE) {
      for (let i = this.#alarms.length - 1; i >= 0; i--) {
        const a = this.#alarms[i];
        if (a.memberID === req.memberID && a.alarm === req.alarm) {
          resp.alarms.push(a);
          this.#alarms.splice(i, 1);
          if (a.alarm === AlarmType.NOSPACE) this.#nospaceProposed = false;
        }
      }
    }
    return resp;
  }

  // ---------------------------------------------------------------- proposals

  /** Advances the 48-bit request counter and returns it (the waits key of the new id). */
  #nextRequestCounter(): number {
    this.#requestIdCounter = (this.#requestIdCounter + 1) % requestIdCounterModulus;
    return this.#requestIdCounter;
  }

  /** The 64-bit request id of counter value `counter`. */
  #requestIdOf(counter: number): bigint {
    return (BigInt(this.#requestIdPrefix16) << 48n) | BigInt(counter);
  }

  #nextRequestId(): bigint {
    return this.#requestIdOf(this.#nextRequestCounter());
  }

  /** The waits key of a request id this member made; undefined for another member's (or 0). */
  #waitKeyOf(id: bigint): number | undefined {
    if (id === 0n || Number(id >> 48n) !== this.#requestIdPrefix16) return undefined;
    return Number(BigInt.asUintN(48, id));
  }

  #requestTimeoutMs(): number {
    return requestTimeoutBaseMs + 2 * this.config.electionTimeoutMs;
  }

  /**
   * Proposes an InternalRaftRequest and waits until it is applied. Throws ErrRequestTooLarge when
   * the encoded request exceeds --max-request-bytes (etcd's processInternalRaftRequestOnce),
   * ErrNoLeader, ErrTimeout, ErrStopped, or the error the apply produced.
   */
  #propose<T>(r: InternalRaftRequest, ai?: AuthInfo): Promise<T> {
    if (this.#stopped) return Promise.reject(errStopped());
    if (this.#commitIndex - this.#appliedIndex > maxGapBetweenApplyAndCommitIndex) {
      return Promise.reject(new ServerError("ErrTooManyRequests", "etcdserver: too many requests"));
    }
    const waitKey = this.#nextRequestCounter();
    let data: Uint8Array;
    if (r.put !== undefined && r.iD === 0n && ai === undefined && isPlainPutRequest(r.put)) {
      // the header is only in the bytes: the apply loop finds this request by them (LocalProposal)
      const hi = this.#requestIdPrefix16 * 0x10000 + Math.floor(waitKey / 0x100000000);
      data = encodePutProposal(hi, waitKey % 0x100000000, r.put);
    } else {
      // etcd's processInternalRaftRequestOnce: the caller's user and auth revision ride along
      r.header = {
        iD: this.#requestIdOf(waitKey),
        username: ai?.username ?? "",
        authRevision: ai?.revision ?? 0,
      };
      data = InternalRaftRequest.toBinary(r);
    }
    if (data.length > this.config.maxRequestBytes) return Promise.reject(errRequestTooLarge());
    if (this.#leaderId === 0n) return Promise.reject(errNoLeader());
    // settled by the apply loop (or a failure, timeout or stop); #onWaitSettled cleans up
    const local: LocalProposal = { data, request: r, waitKey, settled: false };
    const done = this.#waits.register(waitKey, this.#requestTimeoutMs(), local) as Promise<T>;
    this.#localQueue.push(local);
    this.metrics.counts.proposalsPending++;
    try {
      this.#raft.propose(data);
    } catch {
      // raft drops a proposal it cannot take (no leader)
      this.#waits.fail(waitKey, errNoLeader());
    }
    this.#scheduleReady();
    return done;
  }

  /**
   * Proposes any InternalRaftRequest (the auth calls) on behalf of `ai` and resolves with what
   * its apply answered. Errors as #propose.
   */
  proposeRequest<T>(r: InternalRaftRequest, ai?: AuthInfo): Promise<T> {
    return this.#propose<T>({ ...r, iD: 0n }, ai);
  }

  /** Resolves once entry `index` is applied (a simple token names the entry that made it). */
  waitApplied(index: number): Promise<void> {
    return this.#appliedWaits.wait(index, this.#appliedIndex);
  }

  /**
   * Bookkeeping when a proposal's wait settles, however it ends (RequestWaits' onSettled); `ok` is
   * false for a proposal that timed out, was dropped or was cut short by a stop.
   */
  #onWaitSettled(local: LocalProposal, ok: boolean): void {
    local.settled = true;
    this.metrics.counts.proposalsPending--;
    if (!ok) {
      this.metrics.proposalsFailedTotal.inc();
      // proposals that never reach apply must not pile up at the head of the queue
      this.#skipSettledLocal();
    }
  }

  /**
   * etcd's quota check (quota.go backendQuota.Available, costs from quota.ts): a write that would
   * take the store to the quota raises the NOSPACE alarm (once, through raft) and fails with
   * ErrNoSpace. While the alarm is raised it fails at once: the capped applier would refuse it.
   */
  #checkQuota(costBytes: number): void {
    const noSpace = this.#alarms.some((a) => a.alarm === AlarmType.NOSPACE);
    if (noSpace) throw errNoSpace();
    const used = this.store.stats().approximateBytes;
    if (used + costBytes < this.#quotaBytes) return;
    if (!this.#nospaceProposed) {
      this.#nospaceProposed = true;
      this.logger.warn({ usedBytes: used, quotaBytes: this.#quotaBytes }, "backend quota exceeded");
      void this.#propose<AlarmResponse>({
        iD: 0n,
        alarm: {
          action: AlarmRequest_AlarmAction.ACTIVATE,
          memberID: this.#memberId,
          alarm: AlarmType.NOSPACE,
        },
      } as InternalRaftRequest).catch(() => {
        this.#nospaceProposed = false;
      });
    }
    throw errNoSpace();
  }

  // ---------------------------------------------------------------- reads

  /**
   * etcd's linearizableReadNotify: joins the next ReadIndex batch and resolves once the member has
   * applied up to the read index that batch got (Raft thesis §6.4).
   */
  linearizableReadNotify(): Promise<void> {
    if (this.#stopped) return Promise.reject(errStopped());
    return new Promise((resolve, reject) => {
      this.#readBatchPending.push({ resolve, reject });
      if (this.#readBatchPending.length === 1) setImmediate(() => this.#issueReadIndex());
    });
  }

  #issueReadIndex(): void {
    const batch = this.#readBatchPending;
    if (batch.length === 0) return;
    this.#readBatchPending = [];
    if (this.#leaderId === 0n) {
      for (const w of batch) w.reject(errNoLeader());
      return;
    }
    this.#readCounter += 1n;
    const ctx = Buffer.alloc(8);
    ctx.writeBigUInt64BE(this.#readCounter);
    const key = ctx.toString("hex");
    this.#readInFlight.set(key, batch);
    const timer = setTimeout(() => {
      const waiting = this.#readInFlight.get(key);
      if (waiting === undefined) return;
      this.#readInFlight.delete(key);
      this.#readTimers.delete(key);
      for (const w of waiting)
        w.reject(new ServerError("ErrTimeout", "etcdserver: request timed out"));
    }, this.#requestTimeoutMs());
    timer.unref();
    this.#readTimers.set(key, timer);
    try {
      this.#raft.readIndex(ctx);
    } catch {
      // raft refuses reads while too many wait for the leader's first commit in its term
      clearTimeout(timer);
      this.#readInFlight.delete(key);
      this.#readTimers.delete(key);
      for (const w of batch) w.reject(errTooManyRequests());
      return;
    }
    this.#scheduleReady();
  }

  readonly #readTimers = new Map<string, NodeJS.Timeout>();

  #onReadStates(states: { index: number; requestCtx: Uint8Array }[]): void {
    for (const rs of states) {
      const key = Buffer.from(rs.requestCtx).toString("hex");
      const waiting = this.#readInFlight.get(key);
      if (waiting === undefined) continue;
      this.#readInFlight.delete(key);
      clearTimeout(this.#readTimers.get(key));
      this.#readTimers.delete(key);
      this.#appliedWaits.wait(rs.index, this.#appliedIndex).then(
        () => {
          for (const w of waiting) w.resolve();
        },
        (err: Error) => {
          for (const w of waiting) w.reject(err);
        },
      );
    }
  }

  // ---------------------------------------------------------------- client API

  /** The ResponseHeader etcd attaches to every response (etcdserver/api/v3rpc/header.go). */
  header(): ResponseHeader {
    return {
      clusterId: this.#clusterId,
      memberId: this.#memberId,
      revision: this.store.currentRevision,
      raftTerm: this.#term,
    };
  }

  /** KV.Range: linearizable unless `serializable` (etcd v3_server.go Range). */
  async range(req: RangeRequest): Promise<RangeResponse> {
    if (!req.serializable) await this.linearizableReadNotify();
    this.metrics.counts.ranges++;
    const resp = this.store.range(req);
    resp.header = this.header();
    return resp;
  }

  /** KV.Put through raft. Errors: ErrNoSpace, ErrRequestTooLarge, ErrLeaseNotFound, ErrKeyNotFound. */
  put(req: PutRequest, ai?: AuthInfo): Promise<PutResponse> {
    try {
      this.#checkQuota(putCost(req));
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#propose<PutResponse>({ iD: 0n, put: req } as InternalRaftRequest, ai);
  }

  /** KV.DeleteRange through raft. */
  async deleteRange(req: DeleteRangeRequest, ai?: AuthInfo): Promise<DeleteRangeResponse> {
    return this.#propose<DeleteRangeResponse>(
      { iD: 0n, deleteRange: req } as InternalRaftRequest,
      ai,
    );
  }

  /**
   * KV.Txn: a txn without writes is served as a read (linearizable unless every range in it is
   * serializable), as etcd's v3_server.go Txn does; others go through raft.
   */
  async txn(req: TxnRequest, ai?: AuthInfo): Promise<TxnResponse> {
    if (isTxnReadOnly(req)) {
      if (!isTxnSerializable(req)) await this.linearizableReadNotify();
      const resp = this.store.txn(req);
      resp.header = this.header();
      return resp;
    }
    // etcd's quota check passes a txn that costs nothing (no puts of its own)
    const cost = txnCost(req);
    if (cost > 0) this.#checkQuota(cost);
    return this.#propose<TxnResponse>({ iD: 0n, txn: req } as InternalRaftRequest, ai);
  }

  /** KV.Compact through raft (etcd applies it on every member). */
  async compact(req: CompactionRequest, ai?: AuthInfo): Promise<CompactionResponse> {
    // `physical` needs no wait: compaction of the in-memory store is done once applied
    return this.#propose<CompactionResponse>(
      { iD: 0n, compaction: req } as InternalRaftRequest,
      ai,
    );
  }

  /** Lease.LeaseGrant: picks an id when the client gave 0 (etcd: reqIDGen.Next() & MaxInt64). */
  async leaseGrant(req: LeaseGrantRequest, ai?: AuthInfo): Promise<LeaseGrantResponse> {
    if (req.tTL > maxLeaseTtlSeconds) throw errLeaseTtlTooLarge();
    let id = req.iD;
    while (id === 0n || this.lessor.has(id)) {
      if (id !== 0n) throw errLeaseExists();
      id = this.#nextRequestId() & ((1n << 63n) - 1n);
    }
    this.#checkQuota(leaseOverheadBytes);
    return this.#propose<LeaseGrantResponse>(
      { iD: 0n, leaseGrant: { tTL: req.tTL, iD: id } } as InternalRaftRequest,
      ai,
    );
  }

  /** Lease.LeaseRevoke through raft; the keys attached go in one revision. */
  async leaseRevoke(req: LeaseRevokeRequest, ai?: AuthInfo): Promise<LeaseRevokeResponse> {
    return this.#propose<LeaseRevokeResponse>(
      { iD: 0n, leaseRevoke: req } as InternalRaftRequest,
      ai,
    );
  }

  /**
   * Lease keep-alive on the leader (not through raft, as etcd's LeaseRenew): returns the new TTL.
   * Throws ErrLeaseNotFound; ErrNotLeader-like ErrNoLeader when this member is not the leader.
   */
  async leaseRenew(id: bigint): Promise<number> {
    if (!this.isLeader) throw errNoLeader();
    // etcd waits for the applied index to catch up with the commit index first, so a lease
    // revoked by an entry not yet applied is not renewed.
    await this.#appliedWaits.wait(this.#commitIndex, this.#appliedIndex);
    try {
      return this.lessor.renew(id, Date.now());
    } catch (err) {
      // etcd's Renew of an expired lease waits for its revoke, then answers "not found"
      const code = (err as { code?: string }).code;
      if (code === "LEASE_NOT_FOUND" || code === "LEASE_EXPIRED") throw errLeaseNotFound();
      if (code === "LEASE_NOT_PRIMARY") throw errNoLeader();
      throw err;
    }
  }

  /** Lease.LeaseTimeToLive (linearizable, as etcd's). TTL -1 for an unknown lease. */
  async leaseTimeToLive(req: LeaseTimeToLiveRequest): Promise<LeaseTimeToLiveResponse> {
    await this.linearizableReadNotify();
    const t = this.lessor.timeToLive(req.iD, Date.now(), req.keys);
    if (t === undefined) throw errLeaseNotFound();
    return {
      header: this.header(),
      iD: t.id,
      tTL: t.ttlSeconds,
      grantedTTL: t.grantedTtlSeconds,
      keys: t.keys,
    };
  }

  /** Lease.LeaseLeases. */
  async leaseLeases(): Promise<LeaseLeasesResponse> {
    await this.linearizableReadNotify();
    return { header: this.header(), leases: this.lessor.leases().map((id) => ({ iD: id })) };
  }

  /** Maintenance.Alarm: GET is answered locally, ACTIVATE/DEACTIVATE go through raft. */
  async alarm(req: AlarmRequest, ai?: AuthInfo): Promise<AlarmResponse> {
    if (req.action === AlarmRequest_AlarmAction.GET) {
      return this.#applyAlarm(req);
    }
    return this.#propose<AlarmResponse>({ iD: 0n, alarm: req } as InternalRaftRequest, ai);
  }

  /**
   * The db file's size and bytes in use (Status dbSize / dbSizeInUse, etcd_mvcc_db_total_size_*):
   * member/snap/db as last written or found; before a member's first snapshot, the estimate of
   * the bytes its bbolt file would take.
   */
  #dbSizes(): { size: number; inUse: number } {
    const s = this.#snapshotter;
    if (s !== undefined && s.dbSizeBytes > 0) {
      return { size: s.dbSizeBytes, inUse: s.dbSizeInUseBytes };
    }
    const approx = this.store.stats().approximateBytes;
    return { size: approx, inUse: approx };
  }

  /**
   * Maintenance.Defragment: rewrites member/snap/db compactly now (a snapshot: written from an
   * O(1) capture in steps, so writes are not blocked, unlike etcd's defrag). Resolves when the new
   * file is in place.
   */
  async defragment(): Promise<void> {
    if (this.#snapshotter === undefined) throw errStopped();
    await this.#snapshotter.rewriteNow();
  }

  /** Maintenance.Status with the member's real figures. */
  status(): StatusResponse {
    const stats = this.store.stats();
    const db = this.#dbSizes();
    return {
      header: this.header(),
      version: serverVersion,
      dbSize: db.size,
      leader: this.#leaderId,
      raftIndex: this.#commitIndex,
      raftTerm: this.#term,
      raftAppliedIndex: this.#appliedIndex,
      errors: [
        ...this.#alarms.map((a) => `memberID:${a.memberID} alarm:${AlarmType[a.alarm]} `),
        // etcd maintenance.go Status: a member without a leader says so
        ...(this.#leaderId === 0n ? [errNoLeader().message] : []),
      ],
      dbSizeInUse: db.inUse,
      isLearner: false,
    };
  }

  /** Maintenance.HashKV (etcd's hash over the kvs up to `revision`, 0 = current). */
  hashKV(revision: number): HashKVResponse {
    const h = this.store.hashKV(revision);
    return { header: this.header(), hash: h.hash, compactRevision: h.compactRevision };
  }

  /** Cluster.MemberList. */
  memberList(): MemberListResponse {
    return {
      header: this.header(),
      members: [...this.members.values()].map((m) => ({
        iD: m.id,
        name: m.name,
        peerURLs: m.peerUrls,
        clientURLs: m.clientUrls,
        isLearner: m.isLearner,
      })),
    };
  }

  /** A Watch stream bound to this member's store; the caller fills headers via `header()`. */
  newWatchStream(sink: WatchSink): WatchStream {
    return this.store.newWatchStream(sink);
  }

  /**
   * The member's own health (etcd etcdhttp checkHealth without its raft round trip, which the
   * caller adds): running, a leader known, and no alarm other than the `excludedAlarms` names
   * (e.g. "NOSPACE", from /health?exclude=NOSPACE). A member stopped on a fatal error is stopped.
   */
  health(excludedAlarms: ReadonlySet<string> = new Set()): { health: boolean; reason: string } {
    if (this.#stopped) return { health: false, reason: "STOPPED" };
    const raised = this.#alarms
      .map((a) => AlarmType[a.alarm])
      .filter((n) => !excludedAlarms.has(n));
    if (raised.length > 0) return { health: false, reason: `ALARM ${raised.join(",")}` };
    if (this.#leaderId === 0n) return { health: false, reason: "RAFT NO LEADER" };
    return { health: true, reason: "" };
  }

  /** Gauges read at scrape time. */
  refreshMetrics(): void {
    const stats = this.store.stats();
    const db = this.#dbSizes();
    this.metrics.dbTotalSizeInBytes.set(db.size);
    this.metrics.dbTotalSizeInUseInBytes.set(db.inUse);
    this.metrics.keysTotal.set(stats.keys);
    this.metrics.watcherTotal.set(this.store.watcherCount);
  }

  // ---------------------------------------------------------------- timers

  #tick(): void {
    if (this.#stopped) return;
    try {
      this.#raft.tick();
      if (this.isLeader) this.#revokeExpiredLeases();
      // unsynced watchers (slow clients, watches from a past revision) catch up in bounded steps
      this.store.syncWatchers();
    } catch (err) {
      // raft, lessor and mvcc throw here only on a broken invariant: stop rather than limp on
      this.#fatal(err as Error);
      return;
    }
    this.#scheduleReady();
  }

  /** etcd's run loop: the leader proposes a revoke for each expired lease, rate-limited. */
  #revokeExpiredLeases(): void {
    const now = Date.now();
    const elapsedMs = Math.min(1000, now - this.#lastLeaseRevokeMs);
    this.#lastLeaseRevokeMs = now;
    const limit = Math.max(1, Math.floor((maxLeaseRevokesPerSecond * elapsedMs) / 1000));
    for (const id of this.lessor.expired(now, limit)) {
      // as root while auth is on (etcd's WithRoot): an expired lease goes whoever holds keys on it
      void this.leaseRevoke({ iD: id }, this.auth.rootInfo()).catch((err: Error) => {
        if (err.message !== errLeaseNotFound().message) {
          this.logger.warn(
            { lease: id.toString(16), err: err.message },
            "failed to revoke expired lease",
          );
        }
      });
    }
  }

  /** Stops timers, fails waiting requests with ErrStopped, closes the WAL and releases the lock. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#tickTimer !== undefined) clearInterval(this.#tickTimer);
    if (this.#progressTimer !== undefined) clearInterval(this.#progressTimer);
    this.#compactor?.stop();
    this.#waits.failAll(errStopped());
    for (const w of this.#readBatchPending) w.reject(errStopped());
    this.#readBatchPending = [];
    for (const ws of this.#readInFlight.values()) for (const w of ws) w.reject(errStopped());
    this.#readInFlight.clear();
    for (const t of this.#readTimers.values()) clearTimeout(t);
    this.#readTimers.clear();
    this.#appliedWaits.failAll(errStopped());
    await this.#snapshotter?.stop();
    // let an in-flight ready finish its fsync before closing the file
    for (let i = 0; i < 1000 && this.#inReady; i++) await new Promise((r) => setTimeout(r, 2));
    try {
      if (this.#unwrittenHardState !== undefined && this.#fatalError === undefined) {
        await this.#wal.save(this.#unwrittenHardState, []);
        this.#unwrittenHardState = undefined;
      }
      await this.#wal?.close();
    } finally {
      this.#lock?.release();
    }
  }
}

function snapshotIndexOf(storage: MemoryStorage): number {
  return storage.snapshot().metadata?.index ?? 0;
}

/** etcd's isTxnSerializable, for a read-only (flat) txn: every range in it is serializable. */
function isTxnSerializable(req: TxnRequest): boolean {
  const ser = (op: RequestOp) =>
    op.request.oneofKind !== "requestRange" || op.request.requestRange.serializable;
  return req.success.every(ser) && req.failure.every(ser);
}

export type { Ready, HardState };
