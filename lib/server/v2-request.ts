/**
 * etcd 3.4's v2 requests in the raft log. A real etcd 3.4 member proposes two kinds of entries that
 * are not InternalRaftRequests: a member publishing its attributes (`PUT /0/members/<id>/attributes`
 * with `{"name":…,"clientURLs":[…]}`, etcdserver/server.go publish) and the cluster version
 * (`PUT /0/version`, updateClusterVersion). They are bare `etcdserverpb.Request` messages, and etcd's
 * applyEntryNormal falls back to that type when an entry does not decode as an
 * InternalRaftRequest (or carries one in InternalRaftRequest.v2). etcd-ts follows that rule, so a
 * data dir real etcd wrote replays here; the membership paths update the member list and the
 * cluster version as etcd's applyV2Request does, and any other v2 path (the v2 API, off by default
 * in 3.4) changes nothing here and is logged.
 */
import { InternalRaftRequest } from "../proto/gen/etcdserverpb/raft_internal.js";
import { decodePutProposal } from "./raft-request-codec.js";
import { Request as V2Request } from "../proto/gen/etcdserverpb/etcdserver.js";
import type { MemberRecord } from "./membership.js";

export { V2Request };

/** An applied entry's payload: an InternalRaftRequest, or (etcd 3.4's fallback) a v2 Request. */
export type DecodedEntry =
  { kind: "v3"; request: InternalRaftRequest } | { kind: "v2"; request: V2Request };

/**
 * Decodes a normal entry's data as etcd 3.4's applyEntryNormal does: an InternalRaftRequest when
 * it parses (its `v2` field, when set, is the v2 request), else an etcdserverpb.Request.
 * @throws Error naming both failures when the bytes are neither (a damaged log).
 */
export function decodeEntryData(data: Uint8Array): DecodedEntry {
  const put = decodePutProposal(data);
  if (put !== undefined) return { kind: "v3", request: put };
  let v3Error: Error;
  try {
    const r = InternalRaftRequest.fromBinary(data);
    if (r.v2 !== undefined) return { kind: "v2", request: r.v2 };
    return { kind: "v3", request: r };
  } catch (err) {
    v3Error = err as Error;
  }
  try {
    return { kind: "v2", request: V2Request.fromBinary(data) };
  } catch (err) {
    throw new Error(
      `neither an InternalRaftRequest (${v3Error.message}) nor a v2 Request (${(err as Error).message})`,
    );
  }
}

/** Where a v2 request's effect lands: the member list and the cluster version. */
export interface V2ApplyTarget {
  members: Map<bigint, MemberRecord>;
  setClusterVersion(version: string): void;
  /** a v2 request etcd-ts does not keep (anything outside the membership paths) */
  ignored(req: V2Request, why: string): void;
}

/** etcd membership's store paths (membership/store.go). */
const attributesPath = /^\/0\/members\/([0-9a-f]{1,16})\/attributes$/;
const versionPath = "/0/version";

/**
 * Applies a v2 request as etcd 3.4's applyV2Request does for the membership keys: a PUT of a
 * member's attributes sets its name and client URLs (etcd's RaftCluster.UpdateAttributes; a member
 * not in the list is ignored, as etcd logs and skips a removed one); a PUT of /0/version sets the
 * cluster version. Other requests are reported through `ignored`.
 */
export function applyV2Request(req: V2Request, target: V2ApplyTarget): void {
  if (req.method !== "PUT") {
    target.ignored(req, `method ${req.method}`);
    return;
  }
  if (req.path === versionPath) {
    target.setClusterVersion(req.val);
    return;
  }
  const m = attributesPath.exec(req.path);
  if (m === null) {
    target.ignored(req, "not a membership path");
    return;
  }
  const id = BigInt("0x" + m[1]!);
  const member = target.members.get(id);
  if (member === undefined) {
    target.ignored(req, "no such member");
    return;
  }
  let attrs: { name?: unknown; clientURLs?: unknown };
  try {
    attrs = JSON.parse(req.val) as typeof attrs;
  } catch {
    target.ignored(req, "attributes are not JSON");
    return;
  }
  member.name = typeof attrs.name === "string" ? attrs.name : "";
  member.clientUrls = Array.isArray(attrs.clientURLs)
    ? attrs.clientURLs.filter((u): u is string => typeof u === "string")
    : [];
}
