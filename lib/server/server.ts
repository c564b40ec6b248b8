/**
 * One etcd-ts member (DESIGN §3): opens the data dir, starts raft and the timers, and serves the
 * client calls. Its parts follow etcd 3.4's etcdserver: raft-node.ts is the raft loop (raft.go:
 * ready loop, WAL, group commit), apply.ts the applier (server.go apply, apply.go applierV3),
 * proposals.ts and read-index.ts the request waits and linearizable reads (v3_server.go),
 * cluster.ts the member list (membership/), bootstrap.ts opening the data dir (NewServer's
 * start), lease-requests.ts the lease calls and the leader's expiry loop (v3_server.go, leasehttp),
 * reconfigure.ts the membership calls. This file is server.go's EtcdServer (start, timers, stop)
 * and v3_server.go's other client calls; quota.go's backend quota is here too.
 */
import { statSync } from "node:fs";
import type { Logger } from "pino";

import type { HardState, Message, Snapshot } from "../proto/gen/raftpb/raft.js";
import type { InternalRaftRequest } from "../proto/gen/etcdserverpb/raft_internal.js";
import { Request as V2Request } from "../proto/gen/etcdserverpb/etcdserver.js";
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
  type Member,
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
import type { WAL } from "../wal/index.js";
import { MemoryStorage, StateType, type Ready } from "../raft/index.js";
import { MvccStore, isTxnReadOnly, type WatchSink, type WatchStream } from "../mvcc/index.js";
import { Lessor, computeMinLeaseTtlSeconds } from "../lease/index.js";
import { serverVersion } from "../version/index.js";
import { type ServerConfig, defaultQuotaBytes } from "./config.js";
import { errNoLeader, errNoSpace, errStopped, errMemberRemoved } from "./errors.js";
import { type MemberRecord, encodeMemberContext } from "./membership.js";
import { ServerMetrics } from "./metrics.js";
import { AutoCompactor, parseRetention } from "./compactor.js";
import { readDbFile, type OpenDbFile, type RecoveredDataDir, dbFilePath } from "./recovery.js";
import { DbValueFile } from "./value-file.js";
import { failpoint } from "../failpoint/index.js";
import { Snapshotter, type LoadedDbFile } from "./snapshotter.js";
import { proposalTimeoutError } from "./timeout-cause.js";
import { captureDbFileState, type ParsedDbFile } from "./db-file.js";
import { type DbLoadTarget, loadDbIntoMember } from "./db-load.js";
import { MemberAuth } from "./apply-auth.js";
import type { AuthInfo } from "../auth/index.js";
import { Applier } from "./apply.js";
import { putCost, txnCost } from "./quota.js";
import { decodeV2StoreMembers } from "./v2-store.js";
import { RaftCluster, type MemberChange } from "./cluster.js";
import { openDataDir, type BootstrapPlan } from "./bootstrap.js";
import { PeerNet } from "./peer-net.js";
import { Reconfigure } from "./reconfigure.js";
import { installReceivedDb, receivedDbPath, removeStaleReceivedDbs } from "./snapshot-transfer.js";
import { TURN_BUDGET_MS } from "./turns.js";
import { writeSnapFile } from "./snap-file.js";
import { encodeV2StoreSnapshot } from "./v2-store.js";
import { snapDirPath } from "./recovery.js";
import { Proposals, type RequestCaller } from "./proposals.js";
import { RaftNode } from "./raft-node.js";
import { ReadIndexLoop } from "./read-index.js";
import { LeaseRequests } from "./lease-requests.js";
import type { LeaderCallHost } from "./leader-call.js";

/** etcd's request timeout: 5 s + 2 × election timeout (embed.Config.ReqTimeout). */
const requestTimeoutBaseMs = 5000;

export interface ServerOptions {
  config: ServerConfig;
  logger: Logger;
  /**
   * Listen on --listen-peer-urls and talk to the other members (the process entry point sets it;
   * in-process tests of a lone member leave it off and open no peer port).
   */
  servePeers?: boolean;
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
  /** users, roles, tokens; the permission checks on apply (apply-auth.ts) */
  readonly auth: MemberAuth;
  readonly #cluster: RaftCluster;
  readonly #proposals: Proposals;
  readonly #applier: Applier;
  readonly #reads: ReadIndexLoop;
  readonly #reconfigure: Reconfigure;
  readonly #leases: LeaseRequests;
  readonly #servePeers: boolean;
  #peers: PeerNet | undefined;
  /** A received snapshot's db, read while its .snap file was written (applySnapshot loads it). */
  #receivedDb: { index: number; db: OpenDbFile } | undefined;
  #removedFromCluster = false;

  #memberId = 0n;
  /** Date.now() when this member last became leader (0: never), for proposalTimeoutError. */
  #leaderElectedAtMs = 0;
  #clusterId = 0n;
  /** the raft loop, once the data dir is open */
  #node: RaftNode | undefined;
  #storage!: MemoryStorage;
  #wal: WAL | undefined;
  #lock: { release(): void } | undefined;

  #stopped = false;
  #fatalError: Error | undefined;
  /** The next step of the store's physical compaction, when one is pending. */
  #compactionStepImmediate: NodeJS.Immediate | undefined;
  /** Physical compaction requests waiting for the store's pending compaction to finish. */
  #compactionWaiters: (() => void)[] = [];

  #tickTimer: NodeJS.Timeout | undefined;
  #progressTimer: NodeJS.Timeout | undefined;
  #compactor: AutoCompactor | undefined;
  #snapshotter: Snapshotter | undefined;
  /** The db file this member started from, for its first snapshot (Snapshotter LoadedDbFile). */
  #loadedDb: LoadedDbFile | undefined;
  #quotaBytes: number;
  #nospaceProposed = false;

  private constructor(opts: ServerOptions) {
    this.config = opts.config;
    this.logger = opts.logger;
    this.#servePeers = opts.servePeers === true;
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
      // a compaction applied from raft is logical at once; its copy into a new log runs in
      // steps between other work (#scheduleCompactionStep), so puts never wait for all of it
      physicalCompaction: "stepped",
      onCompactionPending: () => this.#scheduleCompactionStep(),
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
    this.#cluster = new RaftCluster({
      localId: () => this.#memberId,
      name: this.config.name,
      advertiseClientUrls: this.config.advertiseClientUrls,
    });
    this.#proposals = new Proposals({
      metrics: this.metrics,
      maxRequestBytes: this.config.maxRequestBytes,
      requestTimeoutMs: () => this.#requestTimeoutMs(),
      stopped: () => this.#stopped,
      commitIndex: () => this.commitIndex,
      appliedIndex: () => this.appliedIndex,
      knowsLeader: () => this.#raftKnowsLeader(),
      leaderPollMs: this.config.heartbeatIntervalMs,
      term: () => this.#node?.raw.term ?? 0,
      propose: (data) => this.#node!.raw.propose(data),
      proposeConfChange: (cc) => this.#node!.raw.proposeConfChange(cc),
      scheduleReady: () => this.#node?.scheduleReady(),
      timeoutError: (startedMs) => this.#proposalTimeoutError(startedMs),
    });
    this.#applier = new Applier({
      store: this.store,
      lessor: this.lessor,
      auth: this.auth,
      metrics: this.metrics,
      logger: this.logger,
      cluster: this.#cluster,
      proposals: this.#proposals,
      header: () => this.header(),
      applyRaftConfChange: (cc) => this.#node!.raw.applyConfChange(cc),
      onNoSpaceCleared: () => {
        this.#nospaceProposed = false;
      },
      afterApply: (index, bytes) => this.#snapshotter?.maybeTrigger(index, bytes),
    });
    this.#reads = new ReadIndexLoop({
      stopped: () => this.#stopped,
      knowsLeader: () => this.#raftKnowsLeader(),
      requestTimeoutMs: () => this.#requestTimeoutMs(),
      readIndex: (ctx) => this.#node!.raw.readIndex(ctx),
      scheduleReady: () => this.#node?.scheduleReady(),
      waitApplied: (index) => this.#applier.waitApplied(index),
    });
    this.#reconfigure = new Reconfigure({
      cluster: this.#cluster,
      proposals: this.#proposals,
      raw: () => this.#node!.raw,
      scheduleReady: () => this.#node?.scheduleReady(),
      tickMs: this.config.heartbeatIntervalMs,
      ...this.#leaderCallHost(),
    });
    this.#leases = new LeaseRequests({
      lessor: this.lessor,
      proposals: this.#proposals,
      logger: this.logger,
      checkQuota: (costBytes) => this.#checkQuota(costBytes),
      commitIndex: () => this.commitIndex,
      waitApplied: (index) => this.#applier.waitApplied(index),
      linearizableReadNotify: () => this.linearizableReadNotify(),
      header: () => this.header(),
      rootInfo: () => this.auth.rootInfo(),
      ...this.#leaderCallHost(),
    });
    this.#cluster.onChange = (change) => this.#onMemberChange(change);
  }

  /** What a forward to the leader's peer endpoint needs (leader-call.ts). */
  #leaderCallHost(): LeaderCallHost {
    return {
      peers: () => this.#peers,
      members: () => this.members,
      memberId: () => this.#memberId,
      leaderId: () => this.leaderId,
      isLeader: () => this.isLeader,
      requestTimeoutMs: () => this.#requestTimeoutMs(),
      stopped: () => this.#stopped,
    };
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
    return this.#node?.leaderId ?? 0n;
  }
  get term(): number {
    return this.#node?.term ?? 0;
  }

  /** Raft knows a leader right now (its own view; `leaderId` is the last Ready's). */
  #raftKnowsLeader(): boolean {
    return (this.#node?.raw.raft.lead ?? 0n) !== 0n;
  }
  get appliedIndex(): number {
    return this.#applier.appliedIndex;
  }
  get commitIndex(): number {
    return this.#node?.commitIndex ?? 0;
  }
  get isLeader(): boolean {
    return this.#node?.isLeader ?? false;
  }
  /** Index of the newest db snapshot written or started from (0 for none). */
  get snapshotIndex(): number {
    return this.#snapshotter?.snapshotIndex ?? 0;
  }
  get alarms(): readonly AlarmMember[] {
    return this.#applier.alarms;
  }
  /** The cluster's members by id (applied ConfChanges and attribute publishes). */
  get members(): Map<bigint, MemberRecord> {
    return this.#cluster.members;
  }

  async #open(): Promise<void> {
    const c = this.config;
    const opened = await openDataDir(c, this.logger);
    this.#lock = opened.lock;
    this.#memberId = opened.memberId;
    this.#clusterId = opened.clusterId;
    this.#storage = new MemoryStorage();
    const { wal, plan, recovered: r } = opened;
    let startIndex = 0;
    let hardState: HardState = { term: 0, vote: 0n, commit: 0 };
    let dbSize = { dbSizeBytes: 0, dbSizeInUseBytes: 0 };
    if (r !== undefined) {
      startIndex = this.#restoreFrom(r);
      dbSize = { dbSizeBytes: r.dbSizeBytes, dbSizeInUseBytes: r.dbSizeInUseBytes };
      if (r.hardState.term > 0 || r.hardState.commit > 0) this.#storage.setHardState(r.hardState);
      this.#storage.append(r.entries);
      hardState = r.hardState;
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
    }
    this.#wal = wal;
    this.metrics.observeWal(wal, this.logger);
    const node = new RaftNode({
      id: this.#memberId,
      electionTick: Math.max(1, Math.round(c.electionTimeoutMs / c.heartbeatIntervalMs)),
      preVote: c.preVote,
      storage: this.#storage,
      applied: startIndex,
      wal,
      writtenTerm: hardState.term,
      writtenVote: hardState.vote,
      term: hardState.term,
      commitIndex: hardState.commit,
      metrics: this.metrics,
      logger: this.logger,
      keepEntries: c.snapshotCatchUpEntries,
      campaignAfterForgetStaggerMs: c.heartbeatIntervalMs,
      maxSavesInFlight: c.walMaxWritesInFlight,
      syncWriteMaxEntries: {
        cluster: c.walSyncWriteMaxEntries,
        loneVoter: c.walLoneVoterSyncWriteMaxEntries,
      },
      host: {
        onRoleChange: (state, wasLeader) => this.#onRoleChange(state, wasLeader),
        applyEntries: (entries) => this.#applier.applyEntries(entries),
        onReadStates: (states) => this.#reads.onReadStates(states),
        onDurable: (index) => this.#snapshotter?.durableAdvanced(index),
        appliedIndex: () => this.#applier.appliedIndex,
        confState: () => this.#applier.confState,
        isOnlyVoter: () => this.#cluster.isOnlyVoter(),
        backgroundWriteActive: () => this.#snapshotter?.busy === true,
        fatal: (err) => this.#fatal(err),
        onLeaderChange: (lead) => {
          this.#reads.onLeaderChange(lead);
          this.#proposals.onLeaderChange(lead);
        },
        send: (messages) => this.#peers?.send(messages),
        sendSnapshot: (m) => this.#sendSnapshot(m),
        saveSnapshotFile: (snap) => this.#saveReceivedSnapshot(snap),
        applySnapshot: (snap) => this.#applyReceivedSnapshot(snap),
      },
    });
    this.#node = node;
    if (this.#servePeers) await this.#startPeers(plan);
    if (plan?.bootstrapRaft === true) {
      node.raw.bootstrap(plan.members.map((p) => ({ id: p.id, context: encodeMemberContext(p) })));
    }
    await removeStaleReceivedDbs(c.dataDir, this.#applier.appliedIndex);
    this.#snapshotter = new Snapshotter({
      dataDir: c.dataDir,
      snapshotCount: c.snapshotCount,
      maxBusyPercent: c.snapshotMaxBusyPercent,
      walPercentOfDb: c.snapshotWalPercentOfDb,
      maxSnapshots: c.maxSnapshots,
      logger: this.logger,
      startIndex,
      ...dbSize,
      loadedDb: this.#loadedDb,
      onDone: (st) => {
        this.metrics.snapshotDurationSeconds.observe(st.durationSeconds);
        this.metrics.snapshotDbWriteDurationSeconds.observe(st.dbWriteSeconds);
        this.metrics.snapSaveTotalDurationSeconds.observe(st.snapSaveSeconds);
        this.metrics.snapshotDbWrittenBytesTotal.inc(st.dbWrittenBytes);
        if (st.inPlace) this.metrics.snapshotDbInPlaceTotal.inc();
      },
      // values read from the db files: a failed read stops the member (never a wrong answer)
      onValueFileError: (err) => this.#fatal(err),
      host: {
        capture: () => ({
          state: captureDbFileState(this),
          term: this.#applier.appliedTerm,
          confState: this.#applier.confState ?? this.#storage.initialState().confState,
        }),
        appliedIndex: () => this.#applier.appliedIndex,
        replayingDb: () => this.#applier.replayingDb,
        durableIndex: () => node.durableIndex,
        saveWalSnapshot: (index, term) => node.saveWalSnapshot(index, term),
        releaseTo: async (index) => {
          node.compactRaftLogTo(index - c.snapshotCatchUpEntries);
          await wal.releaseLockTo(index);
        },
      },
    });
    // Replay: wait until every entry committed before the restart has been applied, and on a
    // fresh start the bootstrap ConfChanges (committed by bootstrap(), not yet in the commit
    // index), so that the membership below is known.
    const commitAtStart = Math.max(this.commitIndex, node.raw.status().hardState.commit);
    node.scheduleReady();
    await this.#applier.waitApplied(commitAtStart);
    // A lone voter need not wait an election timeout: etcd's adjustTicks fast-forwards a
    // single-member cluster to its last tick before the election (electionTicks - 1), so it still
    // waits 1 to 10 ticks of its randomised timeout; a lone voter cannot split a vote, so it
    // campaigns at once. Raft refuses to campaign while it has not itself applied the bootstrap
    // ConfChanges (it learns that at advance()), so the ready round that applied them ends first.
    while (node.inReady && !this.#stopped) await new Promise((r) => setImmediate(r));
    if (this.#cluster.isOnlyVoter()) node.raw.campaign();
    node.scheduleReady();
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
    if (this.leaderId !== 0n) {
      try {
        await this.linearizableReadNotify();
      } catch (err) {
        this.logger.warn({ err: (err as Error).message }, "first read index after start failed");
      }
    }
    if (this.#servePeers) void this.#publish();
  }

  // ---------------------------------------------------------------- peers

  /**
   * Starts the peer network (PeerNet) and adds the peers known so far: the members restored from
   * the data dir, the --initial-cluster members of a new cluster, or the running members a joining
   * member was told about. Later ConfChanges keep them in step (#onMemberChange).
   */
  async #startPeers(plan: BootstrapPlan | undefined): Promise<void> {
    const c = this.config;
    this.#peers = await PeerNet.start(
      {
        memberId: this.#memberId,
        clusterId: this.#clusterId,
        dataDir: c.dataDir,
        logger: this.logger,
        registry: this.metrics.registry,
        step: (m) => this.#node?.step(m),
        reportUnreachable: (id) => this.#node?.reportUnreachable(id),
        reportSnapshot: (id, status) => this.#node?.reportSnapshot(id, status),
        peerRefusing: (id) => this.#node?.peerRefusing(id),
        captureForSnapshot: () => this.#captureForSnapshot(),
        onRemoved: () => this.#onRemovedFromCluster(),
        http: {
          logger: this.logger,
          clusterId: () => this.#clusterId,
          members: () => [...this.members.values()],
          promoteMember: async (id) => {
            await this.#reconfigure.promoteMember(id);
            return [...this.members.values()];
          },
          leaseRenewLocal: (id) => this.#leases.renewLocal(id),
          leaseTimeToLiveLocal: (id, keys) => this.#leases.timeToLiveLocal({ iD: id, keys }),
        },
      },
      { listenPeerUrls: c.listenPeerUrls, peerTls: c.peerTls },
    );
    const known = plan !== undefined ? plan.members : [...this.members.values()];
    for (const m of known) this.#peers.onMemberChange({ kind: "added", member: m });
  }

  #onMemberChange(change: MemberChange): void {
    this.#peers?.onMemberChange(change);
    if (change.kind === "removed" && change.id === this.#memberId) this.#onRemovedFromCluster();
  }

  /**
   * This member was removed (its own RemoveNode applied, or a peer refused it as removed): it
   * stops itself, as etcd does ("the member has been permanently removed from the cluster").
   */
  #onRemovedFromCluster(): void {
    if (this.#removedFromCluster || this.#stopped) return;
    this.#removedFromCluster = true;
    this.logger.warn(
      { memberId: this.#memberId.toString(16) },
      "the member has been permanently removed from the cluster; stopping",
    );
    setImmediate(() => {
      this.#proposals.failAll(errMemberRemoved());
      void this.stop().finally(() => this.onRemoved?.());
    });
  }

  /**
   * Called once the member has stopped because it was removed from the cluster; the process entry
   * point closes its listeners and exits (etcd exits 0).
   */
  onRemoved: (() => void) | undefined;

  /** The state a MsgSnap carries: a capture at the applied index (its term and conf state). */
  #captureForSnapshot() {
    return {
      state: captureDbFileState(this),
      term: this.#applier.appliedTerm,
      confState: this.#applier.confState ?? this.#storage.initialState().confState,
    };
  }

  #sendSnapshot(m: Message): void {
    // a capture now would say an index below its contents (Applier.replayingDb): raft sends the
    // snapshot again later
    if (this.#peers === undefined || this.#applier.replayingDb) {
      this.#node?.reportSnapshot(m.to, "failure");
      return;
    }
    this.#peers.sendSnapshot(m);
  }

  /**
   * A snapshot from the leader is about to be persisted: local snapshots are held off (one in
   * flight would rename an older db over the received one), the received db file is read and
   * checked, and the .snap file written with its members (etcd's SaveSnap).
   */
  async #saveReceivedSnapshot(snap: Snapshot): Promise<void> {
    const md = snap.metadata!;
    await this.#snapshotter?.holdOff();
    const db = readDbFile(receivedDbPath(this.config.dataDir, md.index));
    this.#receivedDb = { index: md.index, db };
    await writeSnapFile(snapDirPath(this.config.dataDir), {
      data: encodeV2StoreSnapshot(db.members, db.removedMemberIds, db.clusterVersion),
      metadata: md,
    });
  }

  /**
   * A received snapshot is durable: its db goes in place of member/snap/db and the member's state
   * is loaded from it (etcd's applySnapshot: the backend, the lessor, the member list, alarms,
   * auth); watchers catch up from the new history.
   */
  #applyReceivedSnapshot(snap: Snapshot): void {
    const md = snap.metadata!;
    const received = this.#receivedDb;
    this.#receivedDb = undefined;
    if (received === undefined || received.index !== md.index) {
      throw new Error(`apply snapshot ${md.index}: its db file was not read first`);
    }
    const db = received.db;
    failpoint("applyBeforeOpenSnapshot");
    // the rename and the state swap happen before any later entry applies
    void installReceivedDb(this.config.dataDir, md.index).then(
      () => this.#snapshotter?.restoredTo(md.index, dbFileSize(this.config.dataDir)),
      (err: Error) => this.#fatal(err),
    );
    loadDbIntoMember(this.#dbLoadTarget(), db, {
      replace: true,
      members: db.members,
      valueFile: this.#valueFileOf(db, dbFilePath(this.config.dataDir)),
    });
    this.#applier.restoredFromSnapshot(md.index, md.term, md.confState);
    this.logger.info({ index: md.index, term: md.term }, "applied snapshot from the leader");
  }

  /**
   * etcd's publish: this member's name and client URLs go through raft (etcd 3.4's v2 PUT of
   * /0/members/<id>/attributes), so every member lists them. Retried until it applies or the
   * member stops; skipped when the list already says so.
   */
  async #publish(): Promise<void> {
    const attrs = JSON.stringify({
      name: this.config.name,
      clientURLs: this.config.advertiseClientUrls,
    });
    for (let attempt = 0; attempt < 100 && !this.#stopped; attempt++) {
      try {
        const v2 = V2Request.create({
          method: "PUT",
          path: `/0/members/${this.#memberId.toString(16)}/attributes`,
          val: attrs,
        });
        await this.#propose({ iD: 0n, v2 } as InternalRaftRequest);
        this.logger.info({ attributes: attrs }, "published local member to cluster through raft");
        return;
      } catch (err) {
        if (this.#stopped) return;
        this.logger.warn({ err: (err as Error).message }, "publish failed; retrying");
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }

  async #waitForLeader(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.leaderId === 0n && Date.now() < deadline && !this.#stopped) {
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  /**
   * Loads what recovery found: raft's snapshot, hardState and log tail into raft storage, the db's
   * leases, keys, members, alarms and auth store into the member. Returns the snapshot index (raft's applied).
   */
  #restoreFrom(r: RecoveredDataDir): number {
    const snap = r.snapshot;
    if (snap !== undefined) this.#storage.applySnapshot(snap);
    const startIndex = snap?.metadata?.index ?? 0;
    this.#applier.restore(
      startIndex,
      snap?.metadata?.term ?? 0,
      r.consistentIndex,
      snap?.metadata?.confState,
    );
    const db = r.db;
    if (db !== undefined) {
      // etcd 3.4 reads members from the snapshot's v2 store (ConfChanges after the snapshot are
      // applied again on replay); the db's bucket when the .snap has none; with no snapshot at
      // all the WAL replays from index 0 and rebuilds the list
      const fromSnap = snap !== undefined ? decodeV2StoreMembers(snap.data) : undefined;
      const path = dbFilePath(this.config.dataDir);
      const valueFile = this.#valueFileOf(db, path);
      loadDbIntoMember(this.#dbLoadTarget(), db, {
        replace: false,
        members: fromSnap ?? (snap !== undefined ? db.members : []),
        valueFile,
      });
      // what the first snapshot needs to extend this file in place (Snapshotter LoadedDbFile):
      // the records loaded are the key bucket's entries, in order (a compaction the db's writer
      // left unfinished, run again by the load, drops some: the counts then differ, and the first
      // snapshot rewrites the file)
      const loaded = this.store.snapshot();
      this.#loadedDb = {
        history: loaded.history,
        recordCount: loaded.recordCount,
        valueFile,
        ino: statSync(path).ino,
      };
    }
    return startIndex;
  }

  /**
   * The db file being loaded (durable: fsynced before it was renamed into place, or as received)
   * as the file the store reads its values from (value-file.ts): its descriptor stays open while
   * any record points into it. A failed read stops the member.
   */
  #valueFileOf(db: OpenDbFile, path: string): DbValueFile {
    return new DbValueFile(db.takeFd(), path, (err) => this.#fatal(err));
  }

  /** The parts of this member a db file fills (db-load.ts). */
  #dbLoadTarget(): DbLoadTarget {
    return {
      store: this.store,
      lessor: this.lessor,
      cluster: this.#cluster,
      alarms: this.#applier.alarms,
      auth: this.auth,
    };
  }

  /**
   * A failed WAL write or a broken invariant stops the member (etcd panics): continuing could
   * acknowledge writes that are not durable.
   */
  #fatal(err: Error): void {
    if (this.#fatalError !== undefined) return;
    this.#fatalError = err;
    this.logger.fatal({ err: err.message, stack: err.stack }, "member stopping on a fatal error");
    this.#proposals.failAll(errStopped());
    void this.stop().finally(() => this.onFatal?.(err));
  }

  /**
   * Called once the member has stopped on a fatal error (a failed WAL write, a broken invariant).
   * The process entry point closes the listeners and exits non-zero, as etcd exits on such errors.
   */
  onFatal: ((err: Error) => void) | undefined;

  #onRoleChange(state: StateType, wasLeader: boolean): void {
    if (state === StateType.Leader && !wasLeader) {
      this.#leaderElectedAtMs = Date.now();
      // etcd: lessor.Promote(electionTimeout) — leases get their full TTL again on a new leader
      this.lessor.promote(Date.now(), this.config.electionTimeoutMs);
    } else if (state !== StateType.Leader && wasLeader) {
      this.lessor.demote();
    }
  }

  // ---------------------------------------------------------------- proposals

  /** A proposal made at `startedMs` (performance.now()) timed out: etcd's parseProposeCtxErr. */
  #proposalTimeoutError(startedMs: number): Error {
    const peers = this.#peers;
    return proposalTimeoutError(
      {
        electionTimeoutMs: this.config.electionTimeoutMs,
        leaderElectedAtMs: this.#leaderElectedAtMs,
        leaderId: this.leaderId,
        selfId: this.#memberId,
        memberIds: [...this.members.keys()],
        activeSinceMs: (id) => peers?.transport.peerStatus(id)?.activeSinceMs ?? 0,
      },
      Date.now() - (performance.now() - startedMs),
    );
  }

  #requestTimeoutMs(): number {
    return requestTimeoutBaseMs + 2 * this.config.electionTimeoutMs;
  }

  #propose<T>(r: InternalRaftRequest, ai?: AuthInfo, caller?: RequestCaller): Promise<T> {
    return this.#proposals.propose<T>(r, ai, caller);
  }

  /**
   * Proposes any InternalRaftRequest (the auth calls) on behalf of `ai` and resolves with what
   * its apply answered. Errors as Proposals.propose.
   */
  proposeRequest<T>(r: InternalRaftRequest, ai?: AuthInfo): Promise<T> {
    return this.#propose<T>({ ...r, iD: 0n }, ai);
  }

  /** Resolves once entry `index` is applied (a simple token names the entry that made it). */
  waitApplied(index: number): Promise<void> {
    return this.#applier.waitApplied(index);
  }

  /**
   * etcd's quota check (quota.go backendQuota.Available, costs from quota.ts): a write that would
   * take the store to the quota raises the NOSPACE alarm (once, through raft) and fails with
   * ErrNoSpace. While the alarm is raised it fails at once: the capped applier would refuse it.
   */
  #checkQuota(costBytes: number): void {
    const noSpace = this.alarms.some((a) => a.alarm === AlarmType.NOSPACE);
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
    return this.#reads.notify();
  }

  // ---------------------------------------------------------------- client API

  /** The ResponseHeader etcd attaches to every response (etcdserver/api/v3rpc/header.go). */
  header(): ResponseHeader {
    return {
      clusterId: this.#clusterId,
      memberId: this.#memberId,
      revision: this.store.currentRevision,
      raftTerm: this.term,
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
  put(req: PutRequest, ai?: AuthInfo, caller?: RequestCaller): Promise<PutResponse> {
    try {
      this.#checkQuota(putCost(req));
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#propose<PutResponse>({ iD: 0n, put: req } as InternalRaftRequest, ai, caller);
  }

  /** KV.DeleteRange through raft. */
  async deleteRange(
    req: DeleteRangeRequest,
    ai?: AuthInfo,
    caller?: RequestCaller,
  ): Promise<DeleteRangeResponse> {
    return this.#propose<DeleteRangeResponse>(
      { iD: 0n, deleteRange: req } as InternalRaftRequest,
      ai,
      caller,
    );
  }

  /**
   * KV.Txn: a txn without writes is served as a read (linearizable unless every range in it is
   * serializable), as etcd's v3_server.go Txn does; others go through raft.
   */
  async txn(req: TxnRequest, ai?: AuthInfo, caller?: RequestCaller): Promise<TxnResponse> {
    if (isTxnReadOnly(req)) {
      if (!isTxnSerializable(req)) await this.linearizableReadNotify();
      const resp = this.store.txn(req);
      resp.header = this.header();
      return resp;
    }
    // etcd's quota check passes a txn that costs nothing (no puts of its own)
    const cost = txnCost(req);
    if (cost > 0) this.#checkQuota(cost);
    return this.#propose<TxnResponse>({ iD: 0n, txn: req } as InternalRaftRequest, ai, caller);
  }

  /**
   * KV.Compact through raft (etcd applies it on every member). Once applied, reads below the
   * revision fail; with `physical` the answer also waits until this member's store has dropped
   * the compacted records (etcd waits for its backend's compaction the same way).
   */
  async compact(req: CompactionRequest, ai?: AuthInfo): Promise<CompactionResponse> {
    const resp = await this.#propose<CompactionResponse>(
      { iD: 0n, compaction: req } as InternalRaftRequest,
      ai,
    );
    if (req.physical && this.store.compactionPending) {
      await new Promise<void>((resolve) => this.#compactionWaiters.push(resolve));
    }
    return resp;
  }

  /**
   * Runs MvccStore.compactionStep in a later turn of the event loop (after pending I/O) for up to
   * TURN_BUDGET_MS (turns.ts; and at least one step), and so on until the store's physical
   * compaction is done; then answers the waiting physical compactions. A step is bounded
   * (MvccStoreOptions.compactionStepUnits); writes go on between turns. Several steps a turn: a
   * turn of a lone voter's loop can take tens of ms (its WAL's blocking fdatasync), one step each
   * made a 100k-key compaction take seconds.
   */
  #scheduleCompactionStep(): void {
    if (this.#compactionStepImmediate !== undefined || this.#stopped) return;
    this.#compactionStepImmediate = setImmediate(() => {
      this.#compactionStepImmediate = undefined;
      if (this.#stopped) return;
      let more: boolean;
      try {
        const until = performance.now() + TURN_BUDGET_MS;
        do more = this.store.compactionStep();
        while (more && performance.now() < until);
      } catch (err) {
        // a broken store invariant (mvccAssert): nothing may be served from it
        this.#fatal(err as Error);
        return;
      }
      if (more) {
        this.#scheduleCompactionStep();
        return;
      }
      const waiters = this.#compactionWaiters;
      this.#compactionWaiters = [];
      for (const w of waiters) w();
    });
  }

  /** Lease.LeaseGrant through raft (LeaseRequests.grant). */
  leaseGrant(
    req: LeaseGrantRequest,
    ai?: AuthInfo,
    caller?: RequestCaller,
  ): Promise<LeaseGrantResponse> {
    return this.#leases.grant(req, ai, caller);
  }

  /** Lease.LeaseRevoke through raft; the keys attached go in one revision. */
  leaseRevoke(
    req: LeaseRevokeRequest,
    ai?: AuthInfo,
    caller?: RequestCaller,
  ): Promise<LeaseRevokeResponse> {
    return this.#leases.revoke(req, ai, caller);
  }

  /** Lease keep-alive on the leader or forwarded to it; the new TTL (LeaseRequests.renew). */
  leaseRenew(id: bigint): Promise<number> {
    return this.#leases.renew(id);
  }

  /** Lease.LeaseTimeToLive, answered by the leader (LeaseRequests.timeToLive). */
  leaseTimeToLive(req: LeaseTimeToLiveRequest): Promise<LeaseTimeToLiveResponse> {
    return this.#leases.timeToLive(req);
  }

  /** Lease.LeaseLeases. */
  leaseLeases(): Promise<LeaseLeasesResponse> {
    return this.#leases.leases();
  }

  /** Maintenance.Alarm: GET is answered locally, ACTIVATE/DEACTIVATE go through raft. */
  async alarm(req: AlarmRequest, ai?: AuthInfo): Promise<AlarmResponse> {
    if (req.action === AlarmRequest_AlarmAction.GET) {
      return this.#applier.applyAlarm(req);
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
    const started = performance.now();
    await this.#snapshotter.rewriteNow();
    this.metrics.backendDefragDurationSeconds.observe((performance.now() - started) / 1000);
  }

  /** Maintenance.Status with the member's real figures. */
  status(): StatusResponse {
    const db = this.#dbSizes();
    return {
      header: this.header(),
      version: serverVersion,
      dbSize: db.size,
      leader: this.leaderId,
      raftIndex: this.commitIndex,
      raftTerm: this.term,
      raftAppliedIndex: this.appliedIndex,
      errors: [
        ...this.alarms.map((a) => `memberID:${a.memberID} alarm:${AlarmType[a.alarm]} `),
        // etcd maintenance.go Status: a member without a leader says so
        ...(this.leaderId === 0n ? [errNoLeader().message] : []),
      ],
      dbSizeInUse: db.inUse,
      isLearner: this.isLearner,
    };
  }

  /** Maintenance.HashKV (etcd's hash over the kvs up to `revision`, 0 = current). */
  hashKV(revision: number): HashKVResponse {
    const h = this.store.hashKV(revision);
    return { header: this.header(), hash: h.hash, compactRevision: h.compactRevision };
  }

  /** Cluster.MemberList. */
  memberList(): MemberListResponse {
    return { header: this.header(), members: this.#cluster.memberList() };
  }

  /** Cluster.MemberAdd (see Reconfigure.addMember): the new member and the member list. */
  memberAdd(
    peerUrls: string[],
    isLearner: boolean,
  ): Promise<{ member: Member; members: Member[] }> {
    return this.#reconfigure.addMember(peerUrls, isLearner).then(({ member, members }) => ({
      member: { iD: member.id, name: "", peerURLs: member.peerUrls, clientURLs: [], isLearner },
      members,
    }));
  }

  /** Cluster.MemberRemove (see Reconfigure.removeMember): the member list after. */
  memberRemove(id: bigint): Promise<Member[]> {
    return this.#reconfigure.removeMember(id);
  }

  /** Cluster.MemberUpdate: new peer URLs. */
  memberUpdate(id: bigint, peerUrls: string[]): Promise<Member[]> {
    return this.#reconfigure.updateMember(id, peerUrls);
  }

  /** Cluster.MemberPromote (see Reconfigure.promoteMember). */
  memberPromote(id: bigint): Promise<Member[]> {
    return this.#reconfigure.promoteMember(id);
  }

  /** Maintenance.MoveLeader on the leader (see Reconfigure.moveLeader). */
  moveLeader(targetId: bigint): Promise<void> {
    return this.#reconfigure.moveLeader(targetId);
  }

  /** True when this member is a learner (etcd refuses most client calls on a learner). */
  get isLearner(): boolean {
    return this.members.get(this.#memberId)?.isLearner === true;
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
    const raised = this.alarms.map((a) => AlarmType[a.alarm]).filter((n) => !excludedAlarms.has(n));
    if (raised.length > 0) return { health: false, reason: `ALARM ${raised.join(",")}` };
    if (this.leaderId === 0n) return { health: false, reason: "RAFT NO LEADER" };
    return { health: true, reason: "" };
  }

  /** Gauges read at scrape time. */
  refreshMetrics(): void {
    const stats = this.store.stats();
    const db = this.#dbSizes();
    this.metrics.dbTotalSizeInBytes.set(db.size);
    this.metrics.dbTotalSizeInUseInBytes.set(db.inUse);
    this.metrics.keysTotal.set(stats.keys);
    const values = this.store.valueMemory();
    this.metrics.valueArenaBytes.set(values.arenaBytes);
    this.metrics.valueFiles.set(values.files);
    this.metrics.watcherTotal.set(this.store.watcherCount);
  }

  // ---------------------------------------------------------------- timers

  #tick(): void {
    if (this.#stopped) return;
    try {
      this.#node!.raw.tick();
      if (this.isLeader) this.#leases.revokeExpired();
      // unsynced watchers (slow clients, watches from a past revision) catch up in bounded steps
      this.store.syncWatchers();
    } catch (err) {
      // raft, lessor and mvcc throw here only on a broken invariant: stop rather than limp on
      this.#fatal(err as Error);
      return;
    }
    this.#node!.scheduleReady();
  }

  /** Stops timers, fails waiting requests with ErrStopped, closes the WAL and releases the lock. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#tickTimer !== undefined) clearInterval(this.#tickTimer);
    if (this.#progressTimer !== undefined) clearInterval(this.#progressTimer);
    this.#compactor?.stop();
    if (this.#compactionStepImmediate !== undefined) {
      clearImmediate(this.#compactionStepImmediate);
      this.#compactionStepImmediate = undefined;
    }
    this.store.close();
    for (const w of this.#compactionWaiters.splice(0)) w();
    this.#node?.stop();
    await this.#peers?.stop();
    this.#proposals.failAll(errStopped());
    this.#reads.stop();
    this.#applier.appliedWaits.failAll(errStopped());
    await this.#snapshotter?.stop();
    try {
      if (this.#node !== undefined) await this.#node.close(this.#fatalError !== undefined);
      else await this.#wal?.close();
    } finally {
      this.#lock?.release();
    }
  }
}

/** Size of member/snap/db now (0 when absent). */
function dbFileSize(dataDir: string): number {
  try {
    return statSync(dbFilePath(dataDir)).size;
  } catch {
    return 0;
  }
}

/** etcd's isTxnSerializable, for a read-only (flat) txn: every range in it is serializable. */
function isTxnSerializable(req: TxnRequest): boolean {
  const ser = (op: RequestOp) =>
    op.request.oneofKind !== "requestRange" || op.request.requestRange.serializable;
  return req.success.every(ser) && req.failure.every(ser);
}

export type { Ready, HardState };
