/**
 * Membership changes and leader transfer as etcd 3.4's EtcdServer does them (server.go AddMember,
 * RemoveMember, UpdateMember, PromoteMember, MoveLeader, with StrictReconfigCheck on, its
 * default): one single-step ConfChange at a time through raft, checked first against what would
 * break the cluster's quorum, and answered once applied with the member list.
 */
import { ConfChangeType, type ConfChange } from "../proto/gen/raftpb/raft.js";
import type { Member } from "../proto/gen/etcdserverpb/rpc.js";
import type { RawNode } from "../raft/index.js";
import { encodePromoteContext, type RaftCluster } from "./cluster.js";
import {
  errBadLeaderTransferee,
  errLearnerNotReady,
  errMemberBadUrls,
  errMemberNotFound,
  errMemberNotLearner,
  errNotLeader,
  errNotEnoughStartedMembers,
  errTimeout,
  errTimeoutLeaderTransfer,
  errUnhealthy,
} from "./errors.js";
import { type MemberRecord, computeMemberId, encodeMemberContext } from "./membership.js";
import { decodeMembersJson, peerError } from "./peer-http.js";
import { callLeader, type LeaderCallHost } from "./leader-call.js";
import type { Proposals } from "./proposals.js";

/** etcd's readyPercent: a learner is promotable once its match index is 90 % of the leader's. */
const learnerReadyPercent = 0.9;

/** What membership changes need of the member (and, to forward a promote, LeaderCallHost). */
export interface ReconfigureHost extends LeaderCallHost {
  readonly cluster: RaftCluster;
  readonly proposals: Proposals;
  raw(): RawNode;
  /** Runs the ready loop soon (after a direct call on raw()). */
  scheduleReady(): void;
  /** Polls the leader id every heartbeat until `until` holds or the deadline passes. */
  tickMs: number;
}

/** etcd's types.NewURLs: http(s)://host:port, no path, query or fragment. */
function validPeerUrls(urls: readonly string[]): boolean {
  if (urls.length === 0) return false;
  for (const u of urls) {
    let p: URL;
    try {
      p = new URL(u);
    } catch {
      return false;
    }
    if (p.protocol !== "http:" && p.protocol !== "https:") return false;
    if (p.port === "" || (p.pathname !== "/" && p.pathname !== "") || p.search || p.hash)
      return false;
    if (u.endsWith("/")) return false;
  }
  return true;
}

/** etcd's Member.IsStarted: a member that has published its name. */
function isStarted(m: MemberRecord): boolean {
  return m.name !== "";
}

/** Membership changes of one member (see the module comment). */
export class Reconfigure {
  readonly #host: ReconfigureHost;

  constructor(host: ReconfigureHost) {
    this.#host = host;
  }

  /** Voting members this member has a live connection to, itself included. */
  #connectedVoters(): number {
    const peers = this.#host.peers();
    let n = 0;
    for (const m of this.#host.cluster.voters()) {
      if (m.id === this.#host.memberId() || peers?.isConnected(m.id) === true) n++;
    }
    return n;
  }

  /**
   * Cluster.MemberAdd: a member with a fresh id (etcd's NewMember: sha1 of the sorted peer URLs
   * and the time), as a learner or a voter. Throws "given member URLs are invalid", "unhealthy
   * cluster" (a voter while this member does not reach every voter: the new quorum would be at
   * risk), and the apply's errors ("Peer URLs already exists", "too many learner members").
   */
  async addMember(
    peerUrls: string[],
    isLearner: boolean,
  ): Promise<{ member: MemberRecord; members: Member[] }> {
    if (!validPeerUrls(peerUrls)) throw errMemberBadUrls();
    const voters = this.#host.cluster.voters();
    if (!isLearner) {
      // etcd's IsReadyToAddVotingMember: the started voters must stay a quorum of the larger
      // cluster, except when a lone member takes a second (restoring a cluster from a backup)
      const started = voters.filter(isStarted).length;
      const n = voters.length + 1;
      if (!(started === 1 && n === 2) && started < Math.floor(n / 2) + 1) {
        throw errNotEnoughStartedMembers();
      }
      if (this.#connectedVoters() < voters.length) throw errUnhealthy();
    }
    const member: MemberRecord = {
      id: computeMemberId(peerUrls, String(Math.floor(Date.now() / 1000))),
      name: "",
      peerUrls,
      clientUrls: [],
      isLearner,
    };
    const cc: ConfChange = {
      type: isLearner ? ConfChangeType.ConfChangeAddLearnerNode : ConfChangeType.ConfChangeAddNode,
      nodeID: member.id,
      context: encodeMemberContext(member),
      iD: 0n,
    };
    const members = await this.#host.proposals.proposeConfChange<Member[]>(cc);
    return { member, members };
  }

  /**
   * Cluster.MemberRemove. A learner goes at once; a voter only while the rest keep a quorum this
   * member can reach ("unhealthy cluster"), never the last one ("re-configuration failed due to
   * not enough started members"); a member that is down may always go (etcd's mayRemoveMember).
   */
  async removeMember(id: bigint): Promise<Member[]> {
    const cluster = this.#host.cluster;
    const m = cluster.members.get(id);
    if (m === undefined) throw errMemberNotFound();
    if (!m.isLearner) {
      const voters = cluster.voters();
      // etcd's IsReadyToRemoveVotingMember: the other started voters stay a quorum
      const startedOthers = voters.filter((v) => v.id !== id && isStarted(v)).length;
      if (voters.length <= 1 || startedOthers < Math.floor((voters.length - 1) / 2) + 1) {
        throw errNotEnoughStartedMembers();
      }
      const peers = this.#host.peers();
      const targetUp = id === this.#host.memberId() || peers?.isConnected(id) === true;
      if (targetUp) {
        const remaining = voters.length - 1;
        if (this.#connectedVoters() - 1 < Math.floor(remaining / 2) + 1) throw errUnhealthy();
      }
    }
    const cc: ConfChange = {
      type: ConfChangeType.ConfChangeRemoveNode,
      nodeID: id,
      context: new Uint8Array(0),
      iD: 0n,
    };
    return this.#host.proposals.proposeConfChange<Member[]>(cc);
  }

  /** Cluster.MemberUpdate: new peer URLs for a member. */
  async updateMember(id: bigint, peerUrls: string[]): Promise<Member[]> {
    if (!validPeerUrls(peerUrls)) throw errMemberBadUrls();
    const m = this.#host.cluster.members.get(id);
    if (m === undefined) throw errMemberNotFound();
    const cc: ConfChange = {
      type: ConfChangeType.ConfChangeUpdateNode,
      nodeID: id,
      context: encodeMemberContext({ ...m, peerUrls, name: "", clientUrls: [] }),
      iD: 0n,
    };
    return this.#host.proposals.proposeConfChange<Member[]>(cc);
  }

  /**
   * Cluster.MemberPromote. Only the leader knows whether the learner caught up, so a follower
   * forwards it to the leader's peer endpoint (etcd's promoteMemberHTTP). Throws "can only promote
   * a learner member which is in sync with leader" while the learner's match index is under 90 %
   * of the leader's, "can only promote a learner member", "member not found".
   */
  async promoteMember(id: bigint): Promise<Member[]> {
    const cluster = this.#host.cluster;
    const m = cluster.members.get(id);
    if (m === undefined) throw errMemberNotFound();
    if (!m.isLearner) throw errMemberNotLearner();
    if (!this.#host.isLeader()) return this.#forwardPromote(id);
    this.#checkLearnerReady(id);
    const cc: ConfChange = {
      type: ConfChangeType.ConfChangeAddNode,
      nodeID: id,
      context: encodePromoteContext(id),
      iD: 0n,
    };
    return this.#host.proposals.proposeConfChange<Member[]>(cc);
  }

  /** etcd's isLearnerReady, on the leader. */
  #checkLearnerReady(id: bigint): void {
    const st = this.#host.raw().status();
    if (st.progress === undefined) throw errNotLeader();
    const learner = st.progress.get(id);
    const leader = st.progress.get(st.id);
    if (learner === undefined || leader === undefined) return;
    if (learner.match < leader.match * learnerReadyPercent) throw errLearnerNotReady();
  }

  /** MemberPromote on a follower: forwarded to the leader's peer endpoint (leader-call.ts). */
  async #forwardPromote(id: bigint): Promise<Member[]> {
    const r = await callLeader(
      this.#host,
      `/members/promote/${id.toString(10)}`,
      undefined,
      (status) => status === 200 || status === 404 || status === 412 || status === 408,
    );
    // this member became the leader while the call waited: it promotes itself
    if (r === "self") return this.promoteMember(id);
    if (r.status === 404) throw errMemberNotFound();
    if (r.status === 412) throw peerError(r, [errLearnerNotReady, errMemberNotLearner]);
    if (r.status === 408) throw errTimeout();
    return decodeMembersJson(r.body.toString("utf8")).map((x) => ({
      iD: x.id,
      name: x.name,
      peerURLs: x.peerUrls,
      clientURLs: x.clientUrls,
      isLearner: x.isLearner,
    }));
  }

  /**
   * Maintenance.MoveLeader on the leader: raft hands leadership to `target` once it has caught up
   * (MsgTimeoutNow); resolves when this member sees `target` lead. Throws "bad leader transferee"
   * for a learner or unknown member, "request timed out, leader transfer took too long".
   */
  async moveLeader(target: bigint): Promise<void> {
    const m = this.#host.cluster.members.get(target);
    if (m === undefined || m.isLearner) throw errBadLeaderTransferee();
    if (!this.#host.isLeader()) throw errNotLeader();
    if (target === this.#host.memberId()) return;
    this.#host.raw().transferLeader(target);
    this.#host.scheduleReady();
    const deadline = Date.now() + this.#host.requestTimeoutMs();
    while (this.#host.leaderId() !== target) {
      if (Date.now() >= deadline) throw errTimeoutLeaderTransfer();
      await new Promise((r) => setTimeout(r, this.#host.tickMs));
    }
  }
}
