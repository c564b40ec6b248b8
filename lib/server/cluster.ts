/**
 * The member list as the raft log makes it (etcd 3.4's membership.RaftCluster): members are added,
 * promoted and removed by applied ConfChange entries, their attributes by etcd 3.4's v2 publish
 * entries (v2-request.ts); the list is what Cluster.MemberList reports and the db file keeps.
 */
import { ConfChangeType, type ConfChange } from "../proto/gen/raftpb/raft.js";
import type { Member } from "../proto/gen/etcdserverpb/rpc.js";
import { type MemberRecord, decodeMemberContext } from "./membership.js";

/** What the cluster needs of its member. */
export interface RaftClusterHost {
  /** This member's id (0 until the data dir is opened). */
  localId(): bigint;
  /** This member's --name and --advertise-client-urls. */
  readonly name: string;
  readonly advertiseClientUrls: string[];
}

/** The members of the cluster, keyed by member id. */
export class RaftCluster {
  readonly members = new Map<bigint, MemberRecord>();
  readonly #host: RaftClusterHost;

  constructor(host: RaftClusterHost) {
    this.#host = host;
  }

  /** Applies the membership side of a committed ConfChange (raft's side is applied by the caller). */
  applyConfChange(cc: ConfChange): void {
    if (
      cc.type === ConfChangeType.ConfChangeAddNode ||
      cc.type === ConfChangeType.ConfChangeAddLearnerNode
    ) {
      const m = decodeMemberContext(cc.nodeID, cc.context);
      m.isLearner = cc.type === ConfChangeType.ConfChangeAddLearnerNode;
      if (m.id === this.#host.localId() && m.clientUrls.length === 0) {
        m.clientUrls = this.#host.advertiseClientUrls;
      }
      this.members.set(cc.nodeID, m);
    } else if (cc.type === ConfChangeType.ConfChangeRemoveNode) {
      this.members.delete(cc.nodeID);
    }
    this.pinSelfClientUrls();
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
    const voters = [...this.members.values()].filter((m) => !m.isLearner);
    return voters.length === 1 && voters[0]!.id === this.#host.localId();
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
