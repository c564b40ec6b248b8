/**
 * Status: a snapshot of a node's raft state for diagnostics and the server's /metrics and
 * Maintenance.Status (etcd-io/raft's status.go).
 */
import type { HardState } from "../proto/gen/raftpb/raft.js";
import type { Raft, SoftState } from "./raft.js";
import { progressStateNames } from "./tracker/progress.js";

/** One follower's replication progress as seen by the leader; `state` is StateProbe / StateReplicate / StateSnapshot. */
export interface ProgressStatus {
  match: number;
  next: number;
  state: string;
  isLearner: boolean;
  recentActive: boolean;
  inflightCount: number;
}

/** See RawNode.status(). `progress` is present only on the leader. */
export interface Status {
  id: bigint;
  hardState: HardState;
  softState: SoftState;
  applied: number;
  progress?: Map<bigint, ProgressStatus>;
  leadTransferee: bigint;
}

/** Builds a Status from the raft state (copies; later changes do not show through). */
export function getStatus(r: Raft): Status {
  const s: Status = {
    id: r.id,
    hardState: r.hardState(),
    softState: r.softState(),
    applied: r.raftLog.applied,
    leadTransferee: r.leadTransferee,
  };
  if (r.softState().raftState === 2 /* StateType.Leader */) {
    const progress = new Map<bigint, ProgressStatus>();
    for (const [id, pr] of r.trk.progress) {
      progress.set(id, {
        match: pr.match,
        next: pr.next,
        state: progressStateNames[pr.state],
        isLearner: pr.isLearner,
        recentActive: pr.recentActive,
        inflightCount: pr.inflights.count(),
      });
    }
    s.progress = progress;
  }
  return s;
}
