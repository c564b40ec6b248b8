/**
 * A new data dir from a db snapshot file, as etcd 3.4's `etcdctl snapshot restore`
 * (clientv3/snapshot/v3_snapshot.go Restore): the snapshot's sha256 trailer checked and cut (unless
 * skipped), the db written to `member/snap/db` with consistent_index = the number of members, a
 * WAL holding one ConfChange AddNode entry per member of the new cluster (term 1) and a hardState
 * committing them, a `.snap` at that index whose v2 store data lists the members, and the WAL's
 * snapshot record. Both etcd-ts and real etcd 3.4 start from the result.
 *
 * Unlike etcd 3.4 (whose restore leaves the old cluster's entries in the db's members bucket), the
 * members bucket is rewritten with the new members, as etcd 3.5 does: etcd-ts reads members from
 * the db.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { open } from "node:fs/promises";
import { join } from "node:path";
import { BoltFileWriter } from "../btree/index.js";
import type { MvccSnapshot } from "../mvcc/index.js";
import { Metadata } from "../proto/gen/etcdserverpb/etcdserver.js";
import { ConfChange, ConfChangeType, EntryType } from "../proto/gen/raftpb/raft.js";
import { WAL } from "../wal/index.js";
import { etcdDbBuckets, type ParsedDbFile } from "./db-file.js";
import { DataDirFileError, ServerError } from "./errors.js";
import {
  computeClusterId,
  encodeMemberContext,
  parseInitialCluster,
  type MemberRecord,
} from "./membership.js";
import { dbFilePath, readDbBytes, snapDirPath } from "./recovery.js";
import { fsyncDirSync, writeSnapFile } from "./snap-file.js";
import { encodeV2StoreSnapshot } from "./v2-store.js";

/** etcdctl snapshot restore's options (same names and defaults as its flags). */
export interface RestoreOptions {
  snapshotPath: string;
  /** --name (default "default") */
  name: string;
  /** --data-dir (default `${name}.etcd`) */
  dataDir: string;
  /** --wal-dir (default `${dataDir}/member/wal`) */
  walDir: string;
  /** --initial-cluster (default `${name}=http://localhost:2380`) */
  initialCluster: string;
  /** --initial-cluster-token (default "etcd-cluster") */
  initialClusterToken: string;
  /** --initial-advertise-peer-urls (default "http://localhost:2380") */
  initialAdvertisePeerUrls: string[];
  /** --skip-hash-check */
  skipHashCheck: boolean;
}

/** What a restore made. */
export interface RestoreResult {
  clusterId: bigint;
  memberId: bigint;
  members: MemberRecord[];
  /** raft index of the restored state (the member count) */
  index: number;
  dataDir: string;
  walDir: string;
  snapDir: string;
}

const sha256Bytes = 32;

/**
 * The db bytes of a snapshot file: a file whose size is 32 more than a multiple of 512 carries
 * `etcdctl snapshot save`'s sha256 trailer, checked and cut unless `skipHashCheck`; a file
 * without it (a db copied out of a data dir) needs `skipHashCheck` (etcd's rules and messages).
 */
export function snapshotDbBytes(path: string, bytes: Buffer, skipHashCheck: boolean): Buffer {
  const hasHash = bytes.length % 512 === sha256Bytes;
  if (!hasHash) {
    if (!skipHashCheck) {
      throw new DataDirFileError(path, "snapshot missing hash but --skip-hash-check=false");
    }
    return bytes;
  }
  const body = bytes.subarray(0, bytes.length - sha256Bytes);
  if (!skipHashCheck) {
    const want = bytes.subarray(bytes.length - sha256Bytes);
    const got = createHash("sha256").update(body).digest();
    if (!got.equals(want)) {
      throw new DataDirFileError(
        path,
        `expected sha256 ${[...want].join(" ")}, got ${[...got].join(" ")}`,
      );
    }
  }
  return body;
}

/** The parsed db's key records as the MvccSnapshot the db writer takes. */
function mvccOf(db: ParsedDbFile): MvccSnapshot {
  let count = 0;
  let revision = 1;
  for (const [k] of db.keyRecords()) {
    count++;
    revision = Number(k.readBigUInt64BE(0));
  }
  return {
    revision,
    // a compaction the source db had not finished stays scheduled in the restored one
    compactRevision: Math.max(db.compactRevision, db.scheduledCompactRevision),
    finishedCompactRevision: db.compactRevision,
    recordCount: count,
    records: () => db.keyRecords(),
  };
}

/**
 * Restores `o.snapshotPath` into a new data dir (see the module comment).
 * @throws ServerError when the data dir exists or this member is not in --initial-cluster with
 * its --initial-advertise-peer-urls; DataDirFileError for a snapshot whose hash or contents fail.
 */
export async function restoreSnapshot(o: RestoreOptions): Promise<RestoreResult> {
  if (existsSync(o.dataDir)) {
    throw new ServerError("ErrDataDirExists", `data-dir "${o.dataDir}" exists`);
  }
  const members = parseInitialCluster(o.initialCluster, o.initialClusterToken);
  const self = members.find((m) => m.name === o.name);
  const want = [...o.initialAdvertisePeerUrls].sort().join(",");
  if (self === undefined || [...self.peerUrls].sort().join(",") !== want) {
    throw new ServerError(
      "ErrInitialCluster",
      `--initial-cluster has ${self === undefined ? "no member" : self.peerUrls.join(",")} for "${o.name}" but --initial-advertise-peer-urls is ${want}`,
    );
  }
  const bytes = snapshotDbBytes(o.snapshotPath, readFileSync(o.snapshotPath), o.skipHashCheck);
  const db = readDbBytes(o.snapshotPath, bytes);
  const index = members.length;
  const clusterId = computeClusterId(members.map((m) => m.id));
  const snapDir = snapDirPath(o.dataDir);
  mkdirSync(snapDir, { recursive: true, mode: 0o700 });

  // the db: the snapshot's contents, the new members, consistent_index = the member count
  const writer = new BoltFileWriter(
    etcdDbBuckets({
      mvcc: mvccOf(db),
      consistentIndex: index,
      leases: db.leases,
      members,
      removedMemberIds: [],
      clusterVersion: db.clusterVersion,
      alarms: db.alarms,
      auth: db.auth,
    }),
  );
  const dbPath = dbFilePath(o.dataDir);
  const fh = await open(dbPath, "w", 0o600);
  try {
    let pos = 0;
    for (const chunk of writer.chunks(true)) {
      await fh.write(chunk, 0, chunk.length, pos);
      pos += chunk.length;
    }
    await fh.sync();
  } finally {
    await fh.close();
  }
  fsyncDirSync(snapDir);

  // the WAL: one AddNode per member at term 1, committed; then the .snap and its WAL record
  const wal = await WAL.create(
    o.walDir,
    Metadata.toBinary({ nodeID: self.id, clusterID: clusterId }),
  );
  try {
    const entries = members.map((m, i) => ({
      term: 1,
      index: i + 1,
      type: EntryType.EntryConfChange,
      data: ConfChange.toBinary({
        iD: 0n,
        type: ConfChangeType.ConfChangeAddNode,
        nodeID: m.id,
        context: encodeMemberContext(m),
      }),
    }));
    await wal.save({ term: 1, vote: members[0]!.id, commit: index }, entries);
    await writeSnapFile(snapDir, {
      data: encodeV2StoreSnapshot(members, [], undefined),
      metadata: {
        index,
        term: 1,
        confState: {
          voters: members.map((m) => m.id),
          learners: [],
          votersOutgoing: [],
          learnersNext: [],
          autoLeave: false,
        },
      },
    });
    await wal.saveSnapshot({ index, term: 1 });
  } finally {
    await wal.close();
  }
  return {
    clusterId,
    memberId: self.id,
    members,
    index,
    dataDir: o.dataDir,
    walDir: o.walDir,
    snapDir,
  };
}

/** The default WAL dir of a data dir (etcd's `member/wal`). */
export function defaultWalDir(dataDir: string): string {
  return join(dataDir, "member", "wal");
}
