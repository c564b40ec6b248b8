/**
 * Which error a proposal that timed out ends with, as etcd 3.4's parseProposeCtxErr
 * (etcdserver/v3_server.go) chooses it:
 *
 * - it started within two election timeouts before this member was elected leader: "request
 *   timed out, possibly due to previous leader failure" (the old leader likely died with it);
 * - this member leads and its peer connections to a quorum were not all up since the proposal
 *   started, or it follows and its connection to the leader was not up since then: "request timed
 *   out, possibly due to connection lost";
 * - otherwise (no leader known included): "request timed out".
 *
 * Times are wall-clock milliseconds (Date.now()); a peer's connection is "up since" its transport's
 * ActiveSince (0 while it is down).
 */
import { errTimeout, errTimeoutDueToConnectionLost, errTimeoutDueToLeaderFail } from "./errors.js";

/** What the choice looks at, at the moment the proposal timed out. */
export interface TimeoutCauseView {
  electionTimeoutMs: number;
  /** when this member last became leader (0: never) */
  leaderElectedAtMs: number;
  /** the leader this member knows now (0n: none) */
  leaderId: bigint;
  selfId: bigint;
  /** every member of the cluster, this one included (etcd's cluster.Members()) */
  memberIds: readonly bigint[];
  /** since when the connection to peer `id` is up, 0 when it is down */
  activeSinceMs(id: bigint): number;
}

/** etcd's isConnectedSince: the connection to `id` was up before `sinceMs` and still is. */
function connectedSince(v: TimeoutCauseView, sinceMs: number, id: bigint): boolean {
  const t = v.activeSinceMs(id);
  return t !== 0 && t < sinceMs;
}

/** etcd's isConnectedToQuorumSince: this member counts, every other member if connectedSince. */
function connectedToQuorumSince(v: TimeoutCauseView, sinceMs: number): boolean {
  let connected = 0;
  for (const id of v.memberIds) {
    if (id === v.selfId || connectedSince(v, sinceMs, id)) connected++;
  }
  return connected >= Math.floor(v.memberIds.length / 2) + 1;
}

/** The error for a proposal that started at `startedMs` and timed out (see the module comment). */
export function proposalTimeoutError(v: TimeoutCauseView, startedMs: number): Error {
  const elected = v.leaderElectedAtMs;
  const previousLeaderLost = elected - 2 * v.electionTimeoutMs;
  if (elected !== 0 && startedMs > previousLeaderLost && startedMs < elected) {
    return errTimeoutDueToLeaderFail();
  }
  if (v.leaderId === 0n) return errTimeout();
  if (v.leaderId === v.selfId) {
    if (!connectedToQuorumSince(v, startedMs)) return errTimeoutDueToConnectionLost();
  } else if (!connectedSince(v, startedMs, v.leaderId)) {
    return errTimeoutDueToConnectionLost();
  }
  return errTimeout();
}
