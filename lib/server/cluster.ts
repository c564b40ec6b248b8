/**
 * The member list as the raft log makes it (etcd 3.4's membership.RaftCluster): members are added,
 * promoted, updated and removed by applied ConfChange entries, their attributes by etcd 3.4's v2
 * publish entries (v2-request.ts); the list is what Cluster.MemberList reports and the db file
 * keeps. A removed member's id is remembered and never accepted again (members_removed).
 */
import { ConfChangeType, type ConfChange } from "../proto/gen/raftpb/raft.js";
import type { Member } from "../proto/gen/etcdserverpb/rpc.js";
import { type MemberRecord, decodeMemberContext } from "./membership.js";
import {
  type ServerError,
  errMemberExist,
  errMemberNotFound,
  errMemberNotLearner,
  errPeerUrlExist,
  errTooManyLearners,
} from "./errors.js";

/** etcd 3.4's maxLearners: at most one learner in the cluster. */
export const maxLearners = 1;

/** What the cluster needs of its member. */
export interface RaftClusterHost {
  /** This member's id (0 until the data dir is opened). */
  localId(): bigint;
  /** This member's --name and --advertise-client-urls. */
  readonly name: string;
  readonly advertiseClientUrls: string[];
}

/** How a member changed, for whoever keeps peer links in step (the transport). */
export type MemberChange =
  | { kind: "added"; member: MemberRecord }
  | { kind: "updated"; member: MemberRecord }
  | { kind: "promoted"; member: MemberRecord }
  | { kind: "removed"; id: bigint };

/** The members of the cluster, keyed by member id. */
export class RaftCluster {
  readonly members = new Map<bigint, MemberRecord>();
  /** Ids of removed members (etcd's members_removed): never added again. */
  readonly removed = new Set<bigint>();
  readonly #host: RaftClusterHost;
  /** Called after every applied change (and for every member on a restore). */
  onChange: ((change: MemberChange) => void) | undefined;

  constructor(host: RaftClusterHost) {
    this.#host = host;
  }

  /**
   * etcd's ValidateConfigurationChange: the error a committed ConfChange is refused with on apply
   * (every member decides the same from the same log), or undefined when it applies.
   */
  validate(cc: ConfChange): ServerError | undefined {
    const id = cc.nodeID;
    if (this.removed.has(id)) return errMemberNotFound();
    switch (cc.type) {
      case ConfChangeType.ConfChangeAddNode:
      case ConfChangeType.ConfChangeAddLearnerNode: {
        const ctx = decodeChangeContext(id, cc.context);
        if (ctx.isPromote) {
          const m = this.members.get(id);
          if (m === undefined) return errMemberNotFound();
          if (!m.isLearner) return errMemberNotLearner();
          return undefined;
        }
        if (this.members.has(id)) return errMemberExist();
        if (this.#peerUrlsTaken(ctx.member.peerUrls, undefined)) return errPeerUrlExist();
        if (
          cc.type === ConfChangeType.ConfChangeAddLearnerNode &&
          this.learnerCount() >= maxLearners
        )
          return errTooManyLearners();
        return undefined;
      }
      case ConfChangeType.ConfChangeRemoveNode:
        return this.members.has(id) ? undefined : errMemberNotFound();
      case ConfChangeType.ConfChangeUpdateNode: {
        if (!this.members.has(id)) return errMemberNotFound();
        const m = decodeMemberContext(id, cc.context);
        return this.#peerUrlsTaken(m.peerUrls, id) ? errPeerUrlExist() : undefined;
      }
      default:
        return undefined;
    }
  }

  #peerUrlsTaken(urls: readonly string[], except: bigint | undefined): boolean {
    for (const m of this.members.values()) {
      if (m.id === except) continue;
      if (m.peerUrls.some((u) => urls.includes(u))) return true;
    }
    return false;
  }

  /** Learners in the cluster now. */
  learnerCount(): number {
    let n = 0;
    for (const m of this.members.values()) if (m.isLearner) n++;
    return n;
  }

  /** Applies the membership side of a validated, committed ConfChange (raft's side is the caller's). */
  applyConfChange(cc: ConfChange): void {
    const id = cc.nodeID;
    let change: MemberChange | undefined;
    if (
      cc.type === ConfChangeType.ConfChangeAddNode ||
      cc.type === ConfChangeType.ConfChangeAddLearnerNode
    ) {
      const ctx = decodeChangeContext(id, cc.context);
      const existing = this.members.get(id);
      if (ctx.isPromote) {
        if (existing !== undefined) {
          existing.isLearner = false;
          change = { kind: "promoted", member: existing };
        }
      } else {
        const m = ctx.member;
        m.isLearner = cc.type === ConfChangeType.ConfChangeAddLearnerNode;
        if (m.id === this.#host.localId() && m.clientUrls.length === 0) {
          m.clientUrls = this.#host.advertiseClientUrls;
        }
        // a replayed bootstrap AddNode keeps the attributes a later publish set
        if (existing !== undefined && m.clientUrls.length === 0) m.clientUrls = existing.clientUrls;
        if (existing !== undefined && m.name === "") m.name = existing.name;
        this.members.set(id, m);
        change = { kind: "added", member: m };
      }
    } else if (cc.type === ConfChangeType.ConfChangeRemoveNode) {
      this.members.delete(id);
      this.removed.add(id);
      change = { kind: "removed", id };
    } else if (cc.type === ConfChangeType.ConfChangeUpdateNode) {
      const m = this.members.get(id);
      if (m !== undefined) {
        // etcd's UpdateRaftAttributes: only the peer URLs change
        m.peerUrls = decodeMemberContext(id, cc.context).peerUrls;
        change = { kind: "updated", member: m };
      }
    }
    this.pinSelfClientUrls();
    if (change !== undefined) this.onChange?.(change);
  }

  /** Replaces the list (a restart or a received snapshot): members and removed ids. */
  restore(members: readonly MemberRecord[], removed: readonly bigint[]): void {
    const before = [...this.members.keys()];
    this.members.clear();
    for (const m of members) this.members.set(m.id, { ...m });
    for (const id of removed) this.removed.add(id);
    this.pinSelfClientUrls();
    for (const id of before) {
      if (!this.members.has(id)) this.onChange?.({ kind: "removed", id });
    }
    for (const m of this.members.values()) this.onChange?.({ kind: "added", member: m });
  }

  /** The advertised client URLs of this member follow its flags, as etcd's publish step does. */
  pinSelfClientUrls(): void {
    const self = this.members.get(this.#host.localId());
    if (self !== undefined) {
      self.clientUrls = this.#host.advertiseClientUrls;
      if (self.name === "") self.name = this.#host.name;
    }
  }

  /** True when this member is the only voting member. */
  isOnlyVoter(): boolean {
    let voters = 0;
    let self = false;
    for (const m of this.members.values()) {
      if (m.isLearner) continue;
      voters++;
      if (m.id === this.#host.localId()) self = true;
    }
    return voters === 1 && self;
  }

  /** Voting members. */
  voters(): MemberRecord[] {
    return [...this.members.values()].filter((m) => !m.isLearner);
  }

  /** The members as Cluster.MemberList reports them. */
  memberList(): Member[] {
    return [...this.members.values()].map((m) => ({
      iD: m.id,
      name: m.name,
      peerURLs: m.peerUrls,
      clientURLs: m.clientUrls,
      isLearner: m.isLearner,
    }));
  }
}

/**
 * etcd's ConfigChangeContext: a member's JSON with an `isPromote` flag (a promote ConfChange
 * carries only the id and the flag).
 */
function decodeChangeContext(
  id: bigint,
  ctx: Uint8Array,
): { member: MemberRecord; isPromote: boolean } {
  const member = decodeMemberContext(id, ctx);
  const raw = JSON.parse(Buffer.from(ctx).toString("utf8")) as { isPromote?: unknown };
  return { member, isPromote: raw.isPromote === true };
}

/** The ConfChange context of a promote (etcd's ConfigChangeContext with IsPromote). */
export function encodePromoteContext(id: bigint): Uint8Array {
  return Buffer.from(`{"id":${id.toString(10)},"peerURLs":null,"isPromote":true}`, "utf8");
}
