/**
 * The registry of failpoints: every point the code evaluates, where it sits, and what `drop` and
 * `error` mean there. Names are etcd's gofail names where etcd has a point at the same step
 * (server/etcdserver/raft.go, server.go, mvcc/backend, wal/wal.go: the names etcd's robustness
 * tests use), camelCase names of our own elsewhere.
 *
 * etcd's backend commits its bbolt transaction every 100 ms with the consistent index written by a
 * pre-commit hook; etcd-ts keeps the store in memory and reaches disk with the db file of a
 * snapshot, so etcd's commit points sit on that write: commitBeforePreCommitHook before the
 * captured state (with its consistent index) is planned into a db file, commitAfterPreCommitHook
 * once it is planned, beforeCommit / afterCommit around the rename that publishes it.
 *
 * A point is listed here only once the code evaluates it; a test reaches every listed point.
 */

/** What a point is and which optional actions it supports. */
export interface FailpointSpec {
  /** Where the point sits, for `GET /debug/failpoints` and the README. */
  where: string;
  /** True when the name is etcd's gofail name for the same step. */
  etcd: boolean;
  /** What `drop` does here; undefined = `drop` is refused at this point. */
  drop?: string;
  /** What `error` does here; undefined = `error` is refused at this point. */
  error?: string;
  /** True when only a member of a cluster of several reaches it (peer traffic, snapshots sent to it). */
  cluster?: boolean;
}

const walIoError =
  "the WAL call fails as with a disk error: the WAL refuses later writes and the member stops";
const snapshotError =
  "the snapshot fails as with a disk error: logged, retried later, nothing released";

/** Every failpoint, by name. */
export const failpointSpecs = {
  // lib/wal
  walBeforeWrite: {
    where: "lib/wal: before a batch of records is written to the tail segment",
    etcd: false,
    drop: "the batch is not written but reported as written (a disk that loses writes)",
    error: walIoError,
  },
  walAfterWrite: {
    where: "lib/wal: after a batch is written, before it is fdatasynced",
    etcd: false,
    error: walIoError,
  },
  walBeforeSync: {
    where:
      "lib/wal: before the fdatasync of the tail segment (with an O_DSYNC write, before that write)",
    etcd: true,
    drop: "the fdatasync is skipped but reported done (a disk that lies about flushes)",
    error: walIoError,
  },
  walAfterSync: {
    where: "lib/wal: after the fdatasync of the tail segment",
    etcd: true,
    error: walIoError,
  },
  walBeforeSegmentRename: {
    where:
      "lib/wal: mid segment rollover: the full segment is synced and the next one's head written and synced as a .tmp file, not yet renamed into place",
    etcd: false,
    error: walIoError,
  },
  walAfterSegmentRename: {
    where: "lib/wal: the new segment is renamed into place and the directory synced",
    etcd: false,
    error: walIoError,
  },
  walBeforePurge: {
    where: "lib/wal: released segments exceed --max-wals, before the oldest files are removed",
    etcd: false,
  },
  // lib/server/raft-node.ts (etcd raft.go's raftNode loop)
  raftBeforeSave: {
    where:
      "raft loop: before a Ready's hardState and entries are handed to the WAL; a sleep here holds the save back without blocking the member (its committed entries apply meanwhile, as etcd's applier goroutine goes on while its raft loop sleeps): a slow disk",
    etcd: true,
    error: "the save fails: the member stops on a fatal error, as etcd's Fatal",
  },
  raftAfterSave: {
    where: "raft loop: after a Ready's hardState and entries are durable in the WAL",
    etcd: true,
    error: "the member stops on a fatal error after the save",
  },
  raftBeforeAdvance: {
    where: "raft loop: before raft is told the Ready is done (RawNode.advance)",
    etcd: true,
  },
  raftBeforeLeaderSend: {
    where: "raft loop: a leader's messages of a Ready, before they are handed to the transport",
    etcd: true,
    drop: "the messages are not sent (lost as on a network; raft resends)",
    cluster: true,
  },
  raftBeforeFollowerSend: {
    where:
      "raft loop: a follower's or candidate's messages of a Ready (votes, append answers), after the save, before they are handed to the transport",
    etcd: true,
    drop: "the messages are not sent (lost as on a network; raft resends)",
    cluster: true,
  },
  raftBeforeApplySnap: {
    where:
      "raft loop: a snapshot received from the leader is durable (.snap, WAL record), before raft storage and the member load it",
    etcd: true,
    cluster: true,
  },
  raftAfterApplySnap: {
    where: "raft loop: a snapshot received from the leader is loaded, before later entries apply",
    etcd: true,
    cluster: true,
  },
  applyBeforeOpenSnapshot: {
    where:
      "apply: a received snapshot's db file is read, before it is renamed over member/snap/db and the store replaced from it",
    etcd: true,
    cluster: true,
  },
  // lib/transport (etcd's rafthttp has no gofail points: our own names)
  peerBeforeSend: {
    where:
      "lib/transport: queued raft messages to one peer, before a batch is written to its socket",
    etcd: false,
    drop: "the queued messages are lost (as on a network; raft resends)",
    error: "the connection breaks as on a failed write; the link reconnects",
    cluster: true,
  },
  peerBeforeReceive: {
    where: "lib/transport: a raft message read from a peer, before it is handed to raft",
    etcd: false,
    drop: "the message is lost (as on a network; raft resends)",
    error: "the connection is closed as after a protocol error; the peer reconnects",
    cluster: true,
  },
  snapshotBeforeReceive: {
    where:
      "lib/transport: a snapshot stream's MsgSnap header is read, before its db payload is received",
    etcd: false,
    error:
      "the receive fails: the leader is told (ReportSnapshot failure) and sends a snapshot again later",
    cluster: true,
  },
  // lib/server/apply.ts (etcd server.go applyEntries)
  beforeApplyOneEntryNormal: {
    where: "apply: before a committed normal entry is applied to the store",
    etcd: true,
  },
  beforeApplyOneConfChange: {
    where: "apply: before a committed ConfChange is applied to raft and the member list",
    etcd: true,
  },
  afterApplyOneEntry: {
    where: "apply: after a committed entry is applied (its waiter is answered when its batch ends)",
    etcd: false,
  },
  // lib/server/snapshotter.ts: the periodic snapshot (etcd's backend commit and SaveSnap)
  commitBeforePreCommitHook: {
    where:
      "snapshot: the state at the applied index is captured, before it is planned into a db file with its consistent index",
    etcd: true,
    error: snapshotError,
  },
  commitAfterPreCommitHook: {
    where: "snapshot: the db file is planned (consistent index in place), before db.tmp is written",
    etcd: true,
    error: snapshotError,
  },
  snapshotDbMidWrite: {
    where: "snapshot: half of db.tmp is written, not yet synced",
    etcd: false,
    error: snapshotError,
  },
  beforeCommit: {
    where: "snapshot: db.tmp is written and fsynced, before the rename over member/snap/db",
    etcd: true,
    error: snapshotError,
  },
  afterCommit: {
    where: "snapshot: db.tmp is renamed over member/snap/db and the directory fsynced",
    etcd: true,
    error: snapshotError,
  },
  raftBeforeSaveSnap: {
    where: "snapshot: before the .snap file and the WAL snapshot record are written",
    etcd: true,
    error: snapshotError,
  },
  snapshotAfterSnapFile: {
    where: "snapshot: the .snap file is written, its WAL snapshot record not yet",
    etcd: false,
    error: snapshotError,
  },
  raftAfterSaveSnap: {
    where: "snapshot: the .snap file and the WAL snapshot record are durable",
    etcd: true,
    error: snapshotError,
  },
  raftAfterWALRelease: {
    where:
      "snapshot: WAL segments before the snapshot are released (purged beyond --max-wals), before old .snap files are purged",
    etcd: true,
  },
} satisfies Record<string, FailpointSpec>;

/** A registered failpoint name. */
export type FailpointName = keyof typeof failpointSpecs;

/** The registered names, sorted. */
export function failpointNames(): FailpointName[] {
  return (Object.keys(failpointSpecs) as FailpointName[]).sort();
}

/** True when `name` is a registered failpoint. */
export function isFailpointName(name: string): name is FailpointName {
  return Object.hasOwn(failpointSpecs, name);
}

/** The points a single member reaches (every point but peer traffic and received snapshots). */
export function singleMemberFailpointNames(): FailpointName[] {
  return failpointNames().filter((n) => (failpointSpecs[n] as FailpointSpec).cluster !== true);
}

/** The spec of a registered point. */
export function failpointSpec(name: FailpointName): FailpointSpec {
  return failpointSpecs[name];
}
