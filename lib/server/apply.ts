/**
 * The apply side of a member: committed entries, in log order, into mvcc, the lessor, auth, the
 * alarms and the member list, each answer handed to the proposal waiting for it. Follows etcd
 * 3.4's server.go applyEntries / applyEntryNormal / applyConfChange and apply.go's applierV3
 * (behind the capped applier's NOSPACE rule).
 */
import { ConfChange, type ConfState, type Entry, EntryType } from "../proto/gen/raftpb/raft.js";
import { ErrInvalidConfChange } from "../raft/index.js";
import type { InternalRaftRequest } from "../proto/gen/etcdserverpb/raft_internal.js";
import {
  type AlarmMember,
  AlarmRequest_AlarmAction,
  AlarmType,
  type AlarmRequest,
  type AlarmResponse,
  type CompactionResponse,
  type LeaseGrantResponse,
  type LeaseRevokeResponse,
  type ResponseHeader,
} from "../proto/gen/etcdserverpb/rpc.js";
import type { Logger } from "pino";
import type { MvccStore } from "../mvcc/index.js";
import type { Lessor } from "../lease/index.js";
import type { MemberAuth } from "./apply-auth.js";
import type { RaftCluster } from "./cluster.js";
import {
  ServerError,
  errLeaseExists,
  errLeaseNotFound,
  errNoSpace,
  errNotEnoughStartedMembers,
} from "./errors.js";
import type { ServerMetrics } from "./metrics.js";
import type { Proposals } from "./proposals.js";
import { txnCost } from "./quota.js";
import { applyV2Request, decodeEntryData, type V2Request } from "./v2-request.js";
import { AppliedIndexWaits } from "./wait.js";
import { failpoint } from "../failpoint/index.js";

/** What the apply loop hands back to a waiting proposer. */
type ApplyResult =
  { response: unknown; error?: undefined } | { response?: undefined; error: Error };

/** What the applier needs of its member. */
export interface ApplierHost {
  readonly store: MvccStore;
  readonly lessor: Lessor;
  readonly auth: MemberAuth;
  readonly metrics: ServerMetrics;
  readonly logger: Logger;
  readonly cluster: RaftCluster;
  readonly proposals: Proposals;
  /** The ResponseHeader of the member now. */
  header(): ResponseHeader;
  /** Applies a committed ConfChange to raft's configuration. */
  applyRaftConfChange(cc: ConfChange): ConfState;
  /** The NOSPACE alarm was cleared: the quota check may raise it again. */
  onNoSpaceCleared(): void;
  /**
   * Called after each applied batch with the new applied index and the bytes of entry data
   * applied since the member started (a running total).
   */
  afterApply(appliedIndex: number, appliedEntryBytes: number): void;
}

/**
 * Applies committed entries (see the module comment). Holds the applied index and its term, raft's
 * conf state after the last applied ConfChange, and the alarms.
 */
export class Applier {
  readonly #host: ApplierHost;
  readonly alarms: AlarmMember[] = [];
  /** Resolves waiters once the applied index reaches theirs (linearizable reads, start). */
  readonly appliedWaits = new AppliedIndexWaits();
  #appliedIndex = 0;
  /** term of the entry at the applied index (a snapshot's term) */
  #appliedTerm = 0;
  /** bytes of entry data applied since start (the snapshotter's spacing, snapshotter.ts) */
  #appliedEntryBytes = 0;
  /** the db file's consistent index at start: normal entries at or below it are in the store already */
  #dbConsistentIndex = 0;
  #confState: ConfState | undefined;

  constructor(host: ApplierHost) {
    this.#host = host;
  }

  get appliedIndex(): number {
    return this.#appliedIndex;
  }
  get appliedTerm(): number {
    return this.#appliedTerm;
  }
  get confState(): ConfState | undefined {
    return this.#confState;
  }

  /**
   * True while the member applies again the entries its db file already holds (a restart from a
   * db ahead of the last snapshot: a crash after the snapshotter renamed the db into place and
   * before it wrote the .snap). The state is then ahead of the applied index, so no db may be
   * captured: its consistent_index would be below its contents, and a restart from it, or a
   * follower that installs it, would apply those entries twice. (etcd keeps its consistent index
   * as the highest ever applied for the same reason.)
   */
  get replayingDb(): boolean {
    return this.#appliedIndex < this.#dbConsistentIndex;
  }

  /**
   * Starts from a snapshot or db file: `index`/`term` as applied, normal entries at or below
   * `dbConsistentIndex` skipped (the db holds them), raft's `confState`.
   */
  restore(index: number, term: number, dbConsistentIndex: number, confState?: ConfState): void {
    this.#appliedIndex = index;
    this.#appliedTerm = term;
    this.#dbConsistentIndex = dbConsistentIndex;
    if (confState !== undefined) this.#confState = confState;
  }

  /** Resolves once entry `index` is applied; rejects with ErrStopped when the member stops. */
  waitApplied(index: number): Promise<void> {
    return this.appliedWaits.wait(index, this.#appliedIndex);
  }

  /**
   * Applies committed entries in order. Throws (a broken invariant that must stop the member) on
   * an index gap or an entry that does not decode.
   */
  applyEntries(entries: Entry[]): void {
    for (const e of entries) {
      if (e.index <= this.#appliedIndex) continue;
      if (e.index !== this.#appliedIndex + 1) {
        throw new Error(
          `apply: entry index ${e.index} does not follow applied index ${this.#appliedIndex}`,
        );
      }
      // The first entry of a newer term: whatever older terms will commit is applied by now
      if (e.term > this.#appliedTerm && this.#appliedTerm > 0) {
        this.#host.proposals.failProposedBefore(e.term);
      }
      // etcd's applier skips entries the db already holds (index <= its consistent index)
      if (e.type === EntryType.EntryNormal) {
        failpoint("beforeApplyOneEntryNormal");
        if (e.index > this.#dbConsistentIndex) this.#applyNormal(e);
      } else if (e.type === EntryType.EntryConfChange) {
        failpoint("beforeApplyOneConfChange");
        this.#applyConfChange(e);
      }
      this.#appliedIndex = e.index;
      this.#appliedTerm = e.term;
      this.#appliedEntryBytes += e.data.length;
      failpoint("afterApplyOneEntry");
    }
    this.#host.metrics.counts.proposalsApplied = this.#appliedIndex;
    this.appliedWaits.appliedTo(this.#appliedIndex);
    this.#host.afterApply(this.#appliedIndex, this.#appliedEntryBytes);
  }

  /**
   * etcd's applyConfChange: a change the member list refuses (ValidateConfigurationChange: a
   * removed id, an id or peer URL already in use, a promote of a non-learner, too many learners)
   * is applied to raft as a no-op and answered with its error; raft refuses to remove the last
   * voter the same way. Otherwise raft's configuration and the member list change, and the
   * proposer gets the member list.
   */
  #applyConfChange(e: Entry): void {
    const host = this.#host;
    const cc = ConfChange.fromBinary(e.data);
    let err: Error | undefined = host.cluster.validate(cc);
    if (err === undefined) {
      try {
        this.#confState = host.applyRaftConfChange(cc);
      } catch (x) {
        if (!(x instanceof ErrInvalidConfChange)) throw x;
        err = errNotEnoughStartedMembers();
      }
    }
    if (err !== undefined) {
      this.#confState = host.applyRaftConfChange({ ...cc, nodeID: 0n });
      host.logger.warn(
        { index: e.index, type: cc.type, member: cc.nodeID.toString(16), err: err.message },
        "configuration change refused",
      );
    } else {
      host.cluster.applyConfChange(cc);
    }
    const ccKey = host.proposals.waitKeyOf(cc.iD);
    if (ccKey === undefined) return;
    if (err !== undefined) host.proposals.fail(ccKey, err, true);
    else host.proposals.trigger(ccKey, host.cluster.memberList());
  }

  /**
   * A snapshot from the leader replaced the state (the caller loaded its db): the applied index
   * and term are the snapshot's, and so is raft's conf state. Proposals of older terms still
   * waiting fail as at a new term's first entry.
   */
  restoredFromSnapshot(index: number, term: number, confState: ConfState | undefined): void {
    if (term > this.#appliedTerm) this.#host.proposals.failProposedBefore(term);
    this.restore(index, term, index, confState);
    this.#host.metrics.counts.proposalsApplied = index;
    this.appliedWaits.appliedTo(index);
  }

  #applyNormal(e: Entry): void {
    if (e.data.length === 0) return; // the empty entry a new leader appends (Raft §5.4.2)
    const host = this.#host;
    // An entry this member proposed carries the very bytes the proposal encoded from the request
    // object it still holds: that object is the decoded entry, so skip decoding it again.
    const local = host.proposals.takeLocal(e.data);
    let r: InternalRaftRequest;
    let waitKey: number | undefined;
    if (local !== undefined) {
      if (local.request.v2 !== undefined) {
        this.#applyV2(local.request.v2, e.index);
        return;
      }
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
        this.#applyV2(d.request, e.index);
        return;
      }
      r = d.request;
      waitKey = host.proposals.waitKeyOf(r.header?.iD ?? r.iD);
    }
    const started = performance.now();
    let result: ApplyResult;
    let op = "unknown";
    try {
      const out = this.applyRequest(r, e.index);
      op = out.op;
      result = { response: out.response };
    } catch (err) {
      result = { error: err as Error };
    }
    const seconds = (performance.now() - started) / 1000;
    host.metrics.applyDurationSeconds.observe(op, result.error === undefined, seconds);
    // etcd warns on applies over 100 ms (warnApplyDuration)
    if (seconds > 0.1) host.metrics.slowApplyTotal.inc();
    if (waitKey !== undefined) {
      // an apply error is an answer, not a failed proposal (etcd counts proposals_failed_total
      // only for proposals that time out or are dropped)
      if (result.error !== undefined) host.proposals.fail(waitKey, result.error, true);
      else host.proposals.trigger(waitKey, result.response);
    }
  }

  /** etcd 3.4's member-attribute and cluster-version entries (v2-request.ts). */
  #applyV2(req: V2Request, index: number): void {
    const host = this.#host;
    applyV2Request(req, {
      members: host.cluster.members,
      setClusterVersion: () => {},
      ignored: (r, why) => host.logger.info({ index, path: r.path, why }, "v2 request not applied"),
    });
    host.cluster.pinSelfClientUrls();
    const key = host.proposals.waitKeyOf(req.iD);
    if (key !== undefined) host.proposals.trigger(key, undefined);
  }

  /** etcd's applierV3 (apply.go) behind the capped applier (apply NOSPACE rule). */
  applyRequest(r: InternalRaftRequest, index: number): { op: string; response: unknown } {
    const host = this.#host;
    host.auth.checkApply(r, host.lessor);
    const noSpace = this.alarms.some((a) => a.alarm === AlarmType.NOSPACE);
    if (r.put !== undefined) {
      if (noSpace) throw errNoSpace();
      host.metrics.counts.puts++;
      const resp = host.store.put(r.put);
      resp.header = host.header();
      return { op: "Put", response: resp };
    }
    if (r.deleteRange !== undefined) {
      host.metrics.counts.deletes++;
      const resp = host.store.deleteRange(r.deleteRange);
      resp.header = host.header();
      return { op: "DeleteRange", response: resp };
    }
    if (r.txn !== undefined) {
      if (noSpace && txnCost(r.txn) > 0) throw errNoSpace();
      host.metrics.counts.txns++;
      const resp = host.store.txn(r.txn);
      resp.header = host.header();
      return { op: "Txn", response: resp };
    }
    if (r.compaction !== undefined) {
      host.store.compact(r.compaction.revision);
      const resp: CompactionResponse = { header: host.header() };
      return { op: "Compaction", response: resp };
    }
    if (r.leaseGrant !== undefined) {
      if (noSpace) throw errNoSpace();
      if (host.lessor.has(r.leaseGrant.iD)) throw errLeaseExists();
      const l = host.lessor.grant(r.leaseGrant.iD, r.leaseGrant.tTL, Date.now());
      const resp: LeaseGrantResponse = {
        header: host.header(),
        iD: l.id,
        tTL: l.ttlSeconds,
        error: "",
      };
      return { op: "LeaseGrant", response: resp };
    }
    if (r.leaseRevoke !== undefined) {
      if (!host.lessor.has(r.leaseRevoke.iD)) throw errLeaseNotFound();
      const keys = host.lessor.revoke(r.leaseRevoke.iD);
      if (keys.length > 0) host.store.deleteKeys(keys);
      const resp: LeaseRevokeResponse = { header: host.header() };
      return { op: "LeaseRevoke", response: resp };
    }
    if (r.leaseCheckpoint !== undefined) {
      for (const cp of r.leaseCheckpoint.checkpoints) {
        host.lessor.applyCheckpoint(cp.iD, cp.remainingTTL);
      }
      return { op: "LeaseCheckpoint", response: { header: host.header() } };
    }
    if (r.alarm !== undefined) {
      return { op: "Alarm", response: this.applyAlarm(r.alarm) };
    }
    const authOut = host.auth.apply(r, index, () => host.header(), Date.now());
    if (authOut !== undefined) return authOut;
    throw new ServerError("ErrUnsupported", "etcdserver: request not supported by etcd-ts yet");
  }

  /** etcd's applierV3 Alarm (apply.go): GET lists, ACTIVATE raises, DEACTIVATE clears. */
  applyAlarm(req: AlarmRequest): AlarmResponse {
    const resp: AlarmResponse = { header: this.#host.header(), alarms: [] };
    // etcd apply.go Alarm GET lists every alarm, whatever member id or type the request names
    const matches = (_a: AlarmMember) => true;
    if (req.action === AlarmRequest_AlarmAction.GET) {
      resp.alarms = this.alarms.filter(matches).map((a) => ({ ...a }));
    } else if (req.action === AlarmRequest_AlarmAction.ACTIVATE) {
      if (req.alarm === AlarmType.NONE) return resp;
      const exists = this.alarms.some((a) => a.memberID === req.memberID && a.alarm === req.alarm);
      const m = { memberID: req.memberID, alarm: req.alarm };
      if (!exists) {
        this.alarms.push(m);
        this.#host.logger.warn(
          { alarm: AlarmType[req.alarm], memberId: req.memberID.toString(16) },
          "alarm raised",
        );
      }
      resp.alarms = [m];
    } else if (req.action === AlarmRequest_AlarmAction.DEACTIVATE) {
      for (let i = this.alarms.length - 1; i >= 0; i--) {
        const a = this.alarms[i]!;
        if (a.memberID === req.memberID && a.alarm === req.alarm) {
          resp.alarms.push(a);
          this.alarms.splice(i, 1);
          if (a.alarm === AlarmType.NOSPACE) this.#host.onNoSpaceCleared();
        }
      }
    }
    return resp;
  }
}
