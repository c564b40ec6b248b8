/**
 * Cluster membership as etcd derives it (etcdserver/api/membership): member ids from peer URLs and
 * the cluster token, the cluster id from the member ids, and the member record carried in the
 * Context of the bootstrap ConfChange entries (JSON, as etcd's).
 */
import { createHash } from "node:crypto";

/** A member as the Cluster API reports it. `id` is etcd's 64-bit member id. */
export interface MemberRecord {
  id: bigint;
  name: string;
  peerUrls: string[];
  clientUrls: string[];
  isLearner: boolean;
}

/** Thrown for an `--initial-cluster` that does not parse or does not name this member. */
export class InitialClusterError extends Error {
  readonly code = "ErrInitialCluster";
}

function sha1First8(bytes: Buffer): bigint {
  return createHash("sha1").update(bytes).digest().readBigUInt64BE(0);
}

/**
 * etcd's membership.NewMember id: sha1(sorted peer URLs joined, then the cluster token), the first
 * 8 bytes big-endian. Same inputs give the same id as real etcd.
 */
export function computeMemberId(peerUrls: string[], clusterToken: string): bigint {
  const sorted = [...peerUrls].sort();
  return sha1First8(Buffer.from(sorted.join("") + clusterToken, "utf8"));
}

/** etcd's RaftCluster.genID: sha1 over the sorted member ids, 8 bytes big-endian each. */
export function computeClusterId(memberIds: bigint[]): bigint {
  const sorted = [...memberIds].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const b = Buffer.alloc(8 * sorted.length);
  sorted.forEach((id, i) => b.writeBigUInt64BE(id, 8 * i));
  return sha1First8(b);
}

/**
 * Parses `--initial-cluster` ("name=url,name=url2,other=url3") into members (several URLs per name
 * allowed, as etcd). Throws InitialClusterError on a malformed entry.
 */
export function parseInitialCluster(initialCluster: string, clusterToken: string): MemberRecord[] {
  const byName = new Map<string, string[]>();
  for (const part of initialCluster.split(",")) {
    const item = part.trim();
    if (item === "") continue;
    const eq = item.indexOf("=");
    if (eq <= 0) throw new InitialClusterError(`invalid initial-cluster entry "${item}"`);
    const name = item.slice(0, eq);
    const url = item.slice(eq + 1);
    const urls = byName.get(name) ?? [];
    urls.push(url);
    byName.set(name, urls);
  }
  return [...byName].map(([name, peerUrls]) => ({
    id: computeMemberId(peerUrls, clusterToken),
    name,
    peerUrls,
    clientUrls: [],
    isLearner: false,
  }));
}

/** JSON carried in ConfChange.Context, shaped as etcd's membership.Member JSON. */
export function encodeMemberContext(m: MemberRecord): Uint8Array {
  return Buffer.from(
    JSON.stringify({
      id: m.id.toString(16),
      peerURLs: m.peerUrls,
      name: m.name,
      clientURLs: m.clientUrls,
      isLearner: m.isLearner || undefined,
    }),
  );
}

/** The fields of etcd's membership.Member JSON (ConfChange context, db file "members" bucket). */
export interface MemberJson {
  peerURLs?: string[] | null;
  name?: string;
  clientURLs?: string[] | null;
  isLearner?: boolean;
}

/** A MemberRecord from etcd's member JSON; `id` comes from where the JSON was found. */
export function memberFromJson(id: bigint, j: MemberJson): MemberRecord {
  return {
    id,
    name: j.name ?? "",
    peerUrls: j.peerURLs ?? [],
    clientUrls: j.clientURLs ?? [],
    isLearner: j.isLearner === true,
  };
}

/** Inverse of encodeMemberContext; the id comes from the ConfChange itself. */
export function decodeMemberContext(id: bigint, ctx: Uint8Array): MemberRecord {
  return memberFromJson(id, JSON.parse(Buffer.from(ctx).toString("utf8")) as MemberJson);
}
