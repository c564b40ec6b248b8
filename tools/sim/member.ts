/**
 * The member's real apply path inside the Raft simulator (cluster.ts, `member: true`): each
 * simulated node holds what an etcd-ts member holds behind its raft loop — lib/mvcc's MvccStore,
 * lib/lease's Lessor, the auth store, the member list (RaftCluster), the proposals and waits
 * (Proposals, whose encoder is lib/server's raft-request codec) — and applies its committed
 * entries with lib/server's Applier, as EtcdServer does, but with no network, WAL, db file on
 * disk or timer. Snapshots carry the member's state as a real etcd db file (db-file.ts), so a
 * restart or a snapshot from the leader loads the store, leases, members, alarms and auth the
 * way the server does.
 *
 * The workload (randomRequest) is what clients send: puts (with leases, prev_kv), delete ranges,
 * txns with compares on value / version / mod revision, lease grants and revokes, compactions,
 * NOSPACE alarms raised and cleared, auth roles and users.
 */
import pino from "pino";
import {
  InternalRaftRequest,
  type InternalRaftRequest as InternalRaftRequestType,
} from "../../lib/proto/gen/etcdserverpb/raft_internal.js";
import {
  AlarmRequest_AlarmAction,
  AlarmType,
  AuthRoleAddRequest,
  AuthStatusRequest,
  AuthUserAddRequest,
  AuthUserGrantRoleRequest,
  Compare,
  Compare_CompareResult,
  Compare_CompareTarget,
  DeleteRangeRequest,
  PutRequest,
  RangeRequest,
  type RequestOp,
  type ResponseHeader,
  TxnRequest,
} from "../../lib/proto/gen/etcdserverpb/rpc.js";
import type { ConfChange, ConfState, Entry } from "../../lib/proto/gen/raftpb/raft.js";
import { EntryType } from "../../lib/proto/gen/raftpb/raft.js";
import { MvccStore, type MvccHash } from "../../lib/mvcc/index.js";
import { Lessor } from "../../lib/lease/index.js";
import { BoltFileWriter } from "../../lib/btree/index.js";
import { MemberAuth } from "../../lib/server/apply-auth.js";
import { Applier } from "../../lib/server/apply.js";
import { RaftCluster } from "../../lib/server/cluster.js";
import { defaultConfig } from "../../lib/server/config.js";
import { captureDbFileState, etcdDbBuckets, parseEtcdDbFile } from "../../lib/server/db-file.js";
import { type DbLoadTarget, loadDbIntoMember } from "../../lib/server/db-load.js";
import { encodeMemberContext } from "../../lib/server/membership.js";
import { ServerMetrics } from "../../lib/server/metrics.js";
import { Proposals } from "../../lib/server/proposals.js";
import type { MemberRecord } from "../../lib/server/membership.js";
import type { AlarmMember } from "../../lib/proto/gen/etcdserverpb/rpc.js";
import type { Prng } from "./prng.js";

/**
 * Known-wrong member variants (the simulator must catch each): `skipOneApply` — the faulty member
 * skips the apply of one put (its applied index still moves on); `flipTxnCompare` — the faulty
 * member runs a txn's failure branch where the compare succeeded and vice versa;
 * `corruptOnePut` — the faulty member stores one put's value with a byte changed (same revision,
 * same answer: only the state differs); `snapshotWhileReplaying` — snapshots are taken while a
 * restarted member replays entries its db holds (Applier.replayingDb ignored, as the server's
 * snapshotter did before the simulator found it).
 */
export interface MemberKnobs {
  skipOneApply?: boolean;
  flipTxnCompare?: boolean;
  corruptOnePut?: boolean;
  /** every member snapshots while it replays entries its db holds (the server's rule ignored) */
  snapshotWhileReplaying?: boolean;
}

/** What the simulator gives a member: its raft node and the conf-change bookkeeping. */
export interface SimMemberHost {
  /** Applies a committed ConfChange to raft (RawNode.applyConfChange) and to the simulator. */
  applyRaftConfChange(cc: ConfChange): ConfState;
  /** The node's raft state, for the proposals' checks (term, commit index). */
  raft(): { term: number; committed: number } | undefined;
  propose(data: Uint8Array): void;
  proposeConfChange(cc: ConfChange): void;
}

/** What one applied normal entry produced on one member (compared across members). */
export interface AppliedRecord {
  index: number;
  /** store revision after the entry */
  revision: number;
  /** the applier's answer (response or error), canonical text */
  answer: string;
}

/** Request ids one start of a simulated member may use (far more than a seed proposes). */
const requestIdsPerStart = 2 ** 32;

/** One metrics registry for every simulated member (the counters play no part in the state). */
let sharedMetrics: ServerMetrics | undefined;
const silentLogger = pino({ level: "silent" });

/** A store that runs each txn's other branch (the flipTxnCompare knob). */
class FlippedTxnStore extends MvccStore {
  override txn(req: TxnRequest): ReturnType<MvccStore["txn"]> {
    return super.txn({ ...req, success: req.failure, failure: req.success });
  }
}

/** A store that changes the value of one put with a value (the corruptOnePut knob). */
class CorruptingStore extends MvccStore {
  #done = false;
  override put(req: PutRequest): ReturnType<MvccStore["put"]> {
    if (this.#done || req.value.length === 0 || this.currentRevision < 4) return super.put(req);
    this.#done = true;
    const value = Uint8Array.from(req.value);
    value[0] = value[0]! ^ 1;
    return super.put({ ...req, value });
  }
}

/** Proposals that also report every answer the applier gives, a foreign entry's included. */
class RecordingProposals extends Proposals {
  /** the applier's answer to the entry being applied */
  answer: { response?: unknown; error?: Error } | undefined;
  /** answers to this incarnation's own proposals (the proposer's side of the comparison) */
  ownAnswers = 0;
  /** the first request counter of this incarnation: lower ones are an earlier incarnation's */
  firstCounter = Number.MAX_SAFE_INTEGER;

  /** A foreign entry (another member's proposal) gets this key: answered here, never waited on. */
  static readonly foreignKey = -1;

  override waitKeyOf(id: bigint): number | undefined {
    return super.waitKeyOf(id) ?? RecordingProposals.foreignKey;
  }
  override trigger(waitKey: number, response: unknown): void {
    this.answer = { response };
    if (waitKey === RecordingProposals.foreignKey) return;
    if (waitKey > this.firstCounter) this.ownAnswers++;
    super.trigger(waitKey, response);
  }
  override fail(waitKey: number, err: Error, completed = false): void {
    if (completed) this.answer = { error: err };
    if (waitKey === RecordingProposals.foreignKey) return;
    if (completed && waitKey > this.firstCounter) this.ownAnswers++;
    super.fail(waitKey, err, completed);
  }
}

/** Canonical text of a response: bigints and bytes spelled out, keys in order. */
export function canonicalAnswer(v: unknown): string {
  if (v === undefined) return "undefined";
  if (v === null) return "null";
  if (typeof v === "bigint") return `${v}n`;
  if (v instanceof Uint8Array) return `0x${Buffer.from(v).toString("hex")}`;
  if (Array.isArray(v)) return `[${v.map(canonicalAnswer).join(",")}]`;
  if (typeof v === "object") {
    const o = v as Record<string, unknown>;
    const keys = Object.keys(o)
      .filter((k) => o[k] !== undefined)
      .sort();
    return `{${keys.map((k) => `${k}:${canonicalAnswer(o[k])}`).join(",")}}`;
  }
  return JSON.stringify(v);
}

/** The member record a simulated node joins with (its ConfChange context). */
export function simMemberRecord(id: bigint, isLearner: boolean): MemberRecord {
  return { id, name: `n${id}`, peerUrls: [`http://n${id}:2380`], clientUrls: [], isLearner };
}

/** ConfChange context of a new member (etcd's ConfigChangeContext). */
export function simMemberContext(id: bigint, isLearner: boolean): Uint8Array {
  return encodeMemberContext(simMemberRecord(id, isLearner));
}

/**
 * One simulated member's state machine: the real applier over real parts (see the module
 * comment), known-wrong as `knobs` say.
 */
export class SimMember {
  readonly id: bigint;
  readonly store: MvccStore;
  readonly lessor: Lessor;
  readonly auth: MemberAuth;
  readonly cluster: RaftCluster;
  readonly proposals: RecordingProposals;
  readonly applier: Applier;
  readonly #knobs: MemberKnobs;
  #skipped = false;

  /**
   * `incarnation` numbers the member's starts: each start's request ids begin past the last's
   * (a real member's counter starts from the clock), so an entry proposed before a restart is
   * never taken for a proposal of this start.
   */
  constructor(id: bigint, incarnation: number, host: SimMemberHost, knobs: MemberKnobs = {}) {
    this.id = id;
    this.#knobs = knobs;
    sharedMetrics ??= new ServerMetrics();
    const metrics = sharedMetrics;
    this.auth = new MemberAuth(defaultConfig());
    this.lessor = new Lessor({ minLeaseTtlSeconds: 1 });
    const storeOptions = {
      // simulated stores hold a few hundred records: small arena chunks keep a member cheap
      keyArenaChunkBytes: 4096,
      valueArenaChunkBytes: 16 * 1024,
      leaseHooks: {
        exists: (lease: bigint) => this.lessor.has(lease),
        attach: (lease: bigint, key: Buffer) => this.lessor.attach(lease, key),
        detach: (lease: bigint, key: Buffer) => this.lessor.detach(lease, key),
      },
    };
    this.store = knobs.flipTxnCompare
      ? new FlippedTxnStore(storeOptions)
      : knobs.corruptOnePut
        ? new CorruptingStore(storeOptions)
        : new MvccStore(storeOptions);
    this.cluster = new RaftCluster({ localId: () => id, name: `n${id}`, advertiseClientUrls: [] });
    this.proposals = new RecordingProposals({
      metrics,
      maxRequestBytes: 1.5 * 1024 * 1024,
      requestTimeoutMs: () => 1e9,
      stopped: () => false,
      commitIndex: () => host.raft()?.committed ?? 0,
      appliedIndex: () => this.applier.appliedIndex,
      // never hold a proposal for a leader (that wait is released by a real-time poll, which
      // would make runs differ): raft drops one made without a leader and it fails at once
      knowsLeader: () => true,
      leaderPollMs: 1_000,
      term: () => host.raft()?.term ?? 0,
      propose: (data) => host.propose(data),
      proposeConfChange: (cc) => host.proposeConfChange(cc),
      scheduleReady: () => {},
      timeoutError: () => new Error("request timed out"),
      // the member id as the prefix: ids differ between members, and are the same on every run
      requestIdStart: { prefix16: Number(id) & 0xffff, counter: incarnation * requestIdsPerStart },
    });
    this.proposals.firstCounter = incarnation * requestIdsPerStart;
    this.applier = new Applier({
      store: this.store,
      lessor: this.lessor,
      auth: this.auth,
      metrics,
      logger: silentLogger,
      cluster: this.cluster,
      proposals: this.proposals,
      // member-independent, so answers compare across members
      header: (): ResponseHeader => ({
        clusterId: 0n,
        memberId: 0n,
        revision: this.store.currentRevision,
        raftTerm: 0,
      }),
      applyRaftConfChange: (cc) => host.applyRaftConfChange(cc),
      onNoSpaceCleared: () => {},
      afterApply: () => {},
    });
  }

  // DbFileSource (db-file.ts): what captureDbFileState reads
  get appliedIndex(): number {
    return this.applier.appliedIndex;
  }
  get members(): Map<bigint, MemberRecord> {
    return this.cluster.members;
  }
  get alarms(): readonly AlarmMember[] {
    return this.applier.alarms;
  }

  /** Proposes a client request through the member's real proposal path; the answer is ignored. */
  propose(r: InternalRaftRequestType): void {
    this.proposals.propose(r).catch(() => {});
  }

  /** Proposes a membership change (etcd's configure); the answer is ignored. */
  proposeConfChange(cc: ConfChange): void {
    this.proposals.proposeConfChange(cc).catch(() => {});
  }

  /**
   * Applies one committed entry with the real applier; for a normal entry with data, returns
   * what it did (revision, answer). A faulty member (skipOneApply) drops one put's data.
   */
  apply(e: Entry): AppliedRecord | undefined {
    let entry = e;
    const normal = e.type === EntryType.EntryNormal && e.data.length > 0;
    if (this.#knobs.skipOneApply && !this.#skipped && normal && e.index > 12) {
      const r = InternalRaftRequest.fromBinary(e.data);
      if (r.put !== undefined) {
        this.#skipped = true;
        entry = { ...e, data: new Uint8Array(0) };
      }
    }
    // an entry the loaded db holds already: the applier skips it (no answer, no new revision)
    const held = this.applier.replayingDb;
    this.proposals.answer = undefined;
    this.applier.applyEntries([entry]);
    if (!normal || held) return undefined;
    const a = this.proposals.answer as { response?: unknown; error?: Error } | undefined;
    const answer =
      a === undefined
        ? "none"
        : a.error !== undefined
          ? `error ${a.error.message}`
          : canonicalAnswer(a.response);
    return { index: e.index, revision: this.store.currentRevision, answer };
  }

  /** etcd's HashKV of the whole store (revision 0 = current). */
  hash(): MvccHash {
    return this.store.hashKV(0);
  }

  /** The member's state now as a real etcd db file (what a snapshot carries). */
  dbFile(): Buffer {
    const w = new BoltFileWriter(etcdDbBuckets(captureDbFileState(this)));
    return Buffer.concat([...w.chunks()]);
  }

  /**
   * A restart, as EtcdServer's: the state from the member's db file `db` (its consistent index
   * at or after the snapshot's), the member list from the last snapshot's db `snapDb` (ConfChanges
   * after it apply again; none without a snapshot: the log replays from index 1), the applier at
   * the snapshot's index, skipping the normal entries the db holds. Returns the db's consistent
   * index.
   */
  start(
    db: Uint8Array,
    snap: { index: number; term: number; confState: ConfState; snapDb: Uint8Array } | undefined,
  ): number {
    const parsed = parseEtcdDbFile(db);
    const members = snap === undefined ? [] : parseEtcdDbFile(snap.snapDb).members;
    loadDbIntoMember(this.#dbLoadTarget(), parsed, { replace: false, members });
    this.applier.restore(
      snap?.index ?? 0,
      snap?.term ?? 0,
      parsed.consistentIndex,
      snap?.confState,
    );
    return parsed.consistentIndex;
  }

  /**
   * A snapshot from the leader, as EtcdServer's: its db replaces the state, the applier stands at
   * the snapshot's index. Returns the db's consistent index.
   */
  installSnapshot(
    db: Uint8Array,
    snap: { index: number; term: number; confState: ConfState },
  ): number {
    const parsed = parseEtcdDbFile(db);
    loadDbIntoMember(this.#dbLoadTarget(), parsed, { replace: true, members: parsed.members });
    this.applier.restoredFromSnapshot(snap.index, snap.term, snap.confState);
    return parsed.consistentIndex;
  }

  #dbLoadTarget(): DbLoadTarget {
    return {
      store: this.store,
      lessor: this.lessor,
      cluster: this.cluster,
      alarms: this.applier.alarms,
      auth: this.auth,
    };
  }

  /** Ends the member's waits (the simulation is over). */
  stop(): void {
    this.proposals.failAll(new Error("simulation stopped"));
  }
}

/** The simulated clients' view: keys and leases they use (shared across members). */
export interface Workload {
  leaseSeq: number;
  leases: bigint[];
}

const keyCount = 6;

function key(rng: Prng): Uint8Array {
  return new TextEncoder().encode(`k${rng.int(keyCount)}`);
}

function value(rng: Prng, seq: number): Uint8Array {
  return new TextEncoder().encode(`v${seq}.${rng.int(1000)}`);
}

function randomOp(rng: Prng, seq: number, w: Workload): RequestOp {
  const c = rng.int(4);
  if (c === 0) {
    return {
      request: { oneofKind: "requestRange", requestRange: RangeRequest.create({ key: key(rng) }) },
    };
  }
  if (c === 1) {
    return {
      request: {
        oneofKind: "requestDeleteRange",
        requestDeleteRange: DeleteRangeRequest.create({ key: key(rng), prevKv: rng.chance(0.5) }),
      },
    };
  }
  return { request: { oneofKind: "requestPut", requestPut: randomPut(rng, seq, w) } };
}

function randomPut(rng: Prng, seq: number, w: Workload): PutRequest {
  const lease = w.leases.length > 0 && rng.chance(0.2) ? rng.pick(w.leases) : 0n;
  return PutRequest.create({
    key: key(rng),
    value: value(rng, seq),
    lease,
    prevKv: rng.chance(0.3),
  });
}

function randomCompare(rng: Prng, seq: number): Compare {
  const result = rng.pick([
    Compare_CompareResult.EQUAL,
    Compare_CompareResult.GREATER,
    Compare_CompareResult.LESS,
    Compare_CompareResult.NOT_EQUAL,
  ]);
  const t = rng.int(3);
  if (t === 0) {
    return Compare.create({
      result,
      target: Compare_CompareTarget.VERSION,
      key: key(rng),
      targetUnion: { oneofKind: "version", version: rng.int(4) },
    });
  }
  if (t === 1) {
    return Compare.create({
      result,
      target: Compare_CompareTarget.MOD,
      key: key(rng),
      targetUnion: { oneofKind: "modRevision", modRevision: rng.int(seq + 2) },
    });
  }
  return Compare.create({
    result,
    target: Compare_CompareTarget.VALUE,
    key: key(rng),
    targetUnion: { oneofKind: "value", value: value(rng, rng.int(seq + 1)) },
  });
}

/**
 * Auth requests on a few names (auth stays off): roles and users added (again: an error), roles
 * granted, the status read. Every one moves or reports the auth revision, which a member that
 * loaded a db file must have too.
 */
function randomAuthRequest(rng: Prng): InternalRaftRequestType {
  const user = `u${rng.int(3)}`;
  const role = `r${rng.int(3)}`;
  switch (rng.int(4)) {
    case 0:
      return InternalRaftRequest.create({ authRoleAdd: AuthRoleAddRequest.create({ name: role }) });
    case 1:
      return InternalRaftRequest.create({
        authUserAdd: AuthUserAddRequest.create({ name: user, options: { noPassword: true } }),
      });
    case 2:
      return InternalRaftRequest.create({
        authUserGrantRole: AuthUserGrantRoleRequest.create({ user, role }),
      });
    default:
      return InternalRaftRequest.create({ authStatus: AuthStatusRequest.create() });
  }
}

/**
 * A client request as the member would propose it: mostly puts (the hot path's hand-written
 * encoder), then txns, deletes, lease grants and revokes, compactions to a recent revision.
 * `seq` numbers proposals (values and revisions scale with it).
 */
export function randomRequest(rng: Prng, seq: number, w: Workload): InternalRaftRequestType {
  const c = rng.int(100);
  if (c < 42) return InternalRaftRequest.create({ put: randomPut(rng, seq, w) });
  if (c < 67) {
    const ops = (n: number) => Array.from({ length: n }, () => randomOp(rng, seq, w));
    return InternalRaftRequest.create({
      txn: TxnRequest.create({
        compare: Array.from({ length: 1 + rng.int(2) }, () => randomCompare(rng, seq)),
        success: ops(1 + rng.int(2)),
        failure: ops(rng.int(2)),
      }),
    });
  }
  if (c < 77) {
    const k = key(rng);
    const ranged = rng.chance(0.3);
    return InternalRaftRequest.create({
      deleteRange: DeleteRangeRequest.create({
        key: k,
        rangeEnd: ranged ? new TextEncoder().encode(`k${keyCount}`) : new Uint8Array(0),
        prevKv: rng.chance(0.5),
      }),
    });
  }
  if (c < 85) {
    const id = BigInt(++w.leaseSeq);
    w.leases.push(id);
    return InternalRaftRequest.create({ leaseGrant: { iD: id, tTL: 60 } });
  }
  if (c < 90) {
    const id = w.leases.length > 0 ? rng.pick(w.leases) : 1n;
    return InternalRaftRequest.create({ leaseRevoke: { iD: id } });
  }
  if (c < 96) return randomAuthRequest(rng);
  if (c < 98) {
    // the NOSPACE alarm: while it is raised, puts and lease grants are refused (a restarted
    // member or one that installed a snapshot must have it from the db file)
    // raised a quarter of the time, so it is off most of the run
    const action = rng.chance(0.25)
      ? AlarmRequest_AlarmAction.ACTIVATE
      : AlarmRequest_AlarmAction.DEACTIVATE;
    return InternalRaftRequest.create({
      alarm: { action, memberID: 1n, alarm: AlarmType.NOSPACE },
    });
  }
  // a compaction may name a revision not reached yet or compacted already: the applier's error
  // is then the answer, the same on every member
  return InternalRaftRequest.create({
    compaction: { revision: 1 + rng.int(Math.max(1, seq)), physical: rng.chance(0.5) },
  });
}
