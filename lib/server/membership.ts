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

/** Go's encoding/json string escaping (it also escapes <, >, & and U+2028/9 for HTML safety). */
export function goJsonString(s: string): string {
  return JSON.stringify(s).replace(/[<>&\u2028\u2029]/g, (c) => {
    return "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0");
  });
}

/**
 * The members-bucket value: Go's json.Marshal of etcd's membership.Member (ID as a decimal
 * number, then RaftAttributes {peerURLs, isLearner omitempty}, then Attributes {name omitempty,
 * clientURLs omitempty}).
 */
export function encodeMemberJson(m: MemberRecord): Buffer {
  const list = (urls: readonly string[]) => `[${urls.map(goJsonString).join(",")}]`;
  let s = `{"id":${m.id.toString(10)},"peerURLs":${m.peerUrls.length === 0 ? "null" : list(m.peerUrls)}`;
  if (m.isLearner) s += `,"isLearner":true`;
  if (m.name !== "") s += `,"name":${goJsonString(m.name)}`;
  if (m.clientUrls.length > 0) s += `,"clientURLs":${list(m.clientUrls)}`;
  return Buffer.from(s + "}", "utf8");
}

/**
 * JSON carried in ConfChange.Context: etcd 3.4's ConfigChangeContext is its membership.Member
 * (isPromote false is omitted), so the same Go JSON as the members bucket; real etcd refuses an id
 * that is not a number.
 */
export function encodeMemberContext(m: MemberRecord): Uint8Array {
  return encodeMemberJson(m);
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
