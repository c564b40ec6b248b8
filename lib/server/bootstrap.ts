/**
 * Who a member is when it starts without a data dir (etcd 3.4's NewServer with no WAL): with
 * `--initial-cluster-state new`, every member of `--initial-cluster` derives the same member ids
 * (peer URLs + `--initial-cluster-token`) and cluster id, and raft starts from the same bootstrap
 * ConfChanges; with `existing`, the member asks the running members (their peer /members
 * endpoint) for the cluster id and its own id, which `etcdctl member add` chose, and starts with an
 * empty log for the leader to fill (etcd's GetClusterFromRemotePeers and
 * ValidateClusterAndAssignIDs). A restart from a data dir ignores these flags, as etcd.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "pino";
import { Metadata } from "../proto/gen/etcdserverpb/etcdserver.js";
import { WAL, lockDataDir } from "../wal/index.js";
import type { ServerConfig } from "./config.js";
import { type RecoveredDataDir, recoverDataDir } from "./recovery.js";
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

/** A data dir opened by openDataDir: locked, its WAL open for appends, who the member is. */
export interface OpenedDataDir {
  /** The data dir's flock (fs-ext), held until the member stops. */
  lock: { release(): void };
  wal: WAL;
  memberId: bigint;
  clusterId: bigint;
  /** A restart: what the data dir holds (db contents, snapshot, WAL entries after it). */
  recovered?: RecoveredDataDir;
  /** A first start: how the member starts (a new cluster, or joining a running one). */
  plan?: BootstrapPlan;
}

/**
 * Locks and opens the data dir, as etcd 3.4's NewServer begins: with a WAL there, a restart (who
 * the member is and its cluster come from the WAL's metadata, never the --initial-* flags; the db
 * and WAL are read by recoverDataDir); without one, a first start (planNewCluster or
 * planJoinCluster) that creates the WAL with the member and cluster ids as its metadata. Releases
 * the lock and rethrows when anything fails: DataDirLockedError (another process holds the data
 * dir), WalCorruptError and the db file errors of recoverDataDir, InitialClusterError.
 */
export async function openDataDir(c: ServerConfig, logger: Logger): Promise<OpenedDataDir> {
  mkdirSync(c.dataDir, { recursive: true, mode: 0o700 });
  const lock = lockDataDir(c.dataDir);
  try {
    const walDir = c.walDir !== "" ? c.walDir : join(c.dataDir, "member", "wal");
    mkdirSync(join(c.dataDir, "member", "snap"), { recursive: true, mode: 0o700 });
    const walOptions = {
      segmentSizeBytes: c.walSegmentSizeBytes,
      syncWriteMaxEntries: c.walSyncWriteMaxEntries,
      maxWritesInFlight: c.walMaxWritesInFlight,
      fillAheadBytes: c.walFillAheadBytes,
      maxWalFiles: c.maxWals,
      logger: {
        info: (obj: object, msg?: string) => logger.info(obj, msg),
        warn: (obj: object, msg?: string) => logger.warn(obj, msg),
      },
    };
    if (WAL.exists(walDir)) {
      const recovered = await recoverDataDir(c.dataDir, walDir, walOptions, logger);
      const md = Metadata.fromBinary(recovered.metadata);
      return { lock, wal: recovered.wal, memberId: md.nodeID, clusterId: md.clusterID, recovered };
    }
    const plan =
      c.initialClusterState === "existing" ? await planJoinCluster(c) : planNewCluster(c);
    const metadata = Metadata.toBinary(
      Metadata.create({ nodeID: plan.memberId, clusterID: plan.clusterId }),
    );
    mkdirSync(join(walDir, ".."), { recursive: true, mode: 0o700 });
    const wal = await WAL.create(walDir, metadata, walOptions);
    logger.info(
      {
        memberId: plan.memberId.toString(16),
        clusterId: plan.clusterId.toString(16),
        initialClusterState: c.initialClusterState,
      },
      c.initialClusterState === "existing" ? "joining an existing cluster" : "starting new member",
    );
    return { lock, wal, memberId: plan.memberId, clusterId: plan.clusterId, plan };
  } catch (err) {
    lock.release();
    throw err;
  }
}
