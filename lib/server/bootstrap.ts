/**
 * Who a member is when it starts without a data dir (etcd 3.4's NewServer with no WAL): with
 * `--initial-cluster-state new`, every member of `--initial-cluster` derives the same member ids
 * (peer URLs + `--initial-cluster-token`) and cluster id, and raft starts from the same bootstrap
 * ConfChanges; with `existing`, the member asks the running members (their peer /members
 * endpoint) for the cluster id and its own id, which `etcdctl member add` chose, and starts with an
 * empty log for the leader to fill (etcd's GetClusterFromRemotePeers and
 * ValidateClusterAndAssignIDs). A restart from a data dir ignores these flags, as etcd.
 */
import type { ServerConfig } from "./config.js";
import { ServerError } from "./errors.js";
import { type MemberRecord, computeClusterId, parseInitialCluster } from "./membership.js";
import { decodeMembersJson } from "./peer-http.js";
import { requestAny } from "./peer-net.js";
import { loadPeerTls } from "../transport/index.js";

/** How a fresh member starts. */
export interface BootstrapPlan {
  memberId: bigint;
  clusterId: bigint;
  /** new: the members the bootstrap ConfChanges add; existing: the running members */
  members: MemberRecord[];
  /** true: raft starts from bootstrap ConfChanges (new); false: from an empty log (existing) */
  bootstrapRaft: boolean;
}

function sameUrls(a: readonly string[], b: readonly string[]): boolean {
  const x = [...a].sort();
  const y = [...b].sort();
  return x.length === y.length && x.every((u, i) => u === y[i]);
}

/** The local member of --initial-cluster, checked against --initial-advertise-peer-urls. */
function localMember(c: ServerConfig, members: MemberRecord[]): MemberRecord {
  const self = members.find((m) => m.name === c.name);
  if (self === undefined) {
    throw new ServerError(
      "ErrInitialCluster",
      `couldn't find local name "${c.name}" in the initial cluster configuration`,
    );
  }
  // etcd's advertiseMatchesCluster
  if (!sameUrls(self.peerUrls, c.initialAdvertisePeerUrls)) {
    throw new ServerError(
      "ErrInitialCluster",
      `--initial-cluster has ${c.name}=${self.peerUrls.join(",")} but missing from ` +
        `--initial-advertise-peer-urls=${c.initialAdvertisePeerUrls.join(",")}`,
    );
  }
  const seen = new Map<string, string>();
  for (const m of members) {
    for (const u of m.peerUrls) {
      const other = seen.get(u);
      if (other !== undefined && other !== m.name) {
        throw new ServerError(
          "ErrInitialCluster",
          `--initial-cluster has duplicate url ${u} (members ${other} and ${m.name})`,
        );
      }
      seen.set(u, m.name);
    }
  }
  return self;
}

/** --initial-cluster-state new. Throws ServerError("ErrInitialCluster") on a bad configuration. */
export function planNewCluster(c: ServerConfig): BootstrapPlan {
  const members = parseInitialCluster(c.initialCluster, c.initialClusterToken);
  const self = localMember(c, members);
  return {
    memberId: self.id,
    clusterId: computeClusterId(members.map((m) => m.id)),
    members,
    bootstrapRaft: true,
  };
}

/**
 * --initial-cluster-state existing: asks the other members of --initial-cluster for the member
 * list (peer /members), takes the cluster id from its answer and this member's id from the entry
 * with its peer URLs. Throws ServerError("ErrInitialCluster") when no member answers or the lists
 * disagree (etcd: "member count is unequal", "unmatched member while checking PeerURLs").
 */
export async function planJoinCluster(c: ServerConfig): Promise<BootstrapPlan> {
  const local = parseInitialCluster(c.initialCluster, c.initialClusterToken);
  localMember(c, local);
  const tls = loadPeerTls({
    certFile: c.peerTls.certFile,
    keyFile: c.peerTls.keyFile,
    trustedCaFile: c.peerTls.trustedCaFile,
    clientCertAuth: c.peerTls.clientCertAuth,
    allowedCn: c.peerTls.allowedCn,
  });
  const urls = local.filter((m) => m.name !== c.name).flatMap((m) => m.peerUrls);
  const errors: string[] = [];
  for (const u of urls) {
    let remote: MemberRecord[];
    let clusterId: bigint | undefined;
    try {
      const r = await requestAny([u], "GET", "/members", undefined, tls);
      if (r.status !== 200) throw new Error(`status ${r.status}`);
      remote = decodeMembersJson(r.body.toString("utf8"));
      clusterId = r.clusterId;
    } catch (err) {
      errors.push(`${u}: ${(err as Error).message}`);
      continue;
    }
    if (clusterId === undefined) {
      errors.push(`${u}: no cluster id in the answer`);
      continue;
    }
    if (remote.length !== local.length) {
      throw new ServerError(
        "ErrInitialCluster",
        `member count is unequal (--initial-cluster has ${local.length}, the cluster ${remote.length})`,
      );
    }
    const self = remote.find((m) => sameUrls(m.peerUrls, c.initialAdvertisePeerUrls));
    if (self === undefined) {
      throw new ServerError(
        "ErrInitialCluster",
        `unmatched member while checking PeerURLs: ${c.initialAdvertisePeerUrls.join(",")} is not a member of the cluster (add it with etcdctl member add first)`,
      );
    }
    return {
      memberId: self.id,
      clusterId,
      members: remote.filter((m) => m.id !== self.id),
      bootstrapRaft: false,
    };
  }
  throw new ServerError(
    "ErrInitialCluster",
    `cannot fetch cluster info from peer urls: ${errors.join("; ") || "none given"}`,
  );
}
