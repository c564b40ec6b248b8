/**
 * `etcd-ts-util verify --data-dir DIR`: checks a data dir offline without changing it (etcd's
 * `etcdutl` check-and-verify of a data dir, extended): every WAL record's CRC across all segments
 * (the chain included), the db's bbolt meta checksums, page structure and etcd buckets, every .snap
 * file's CRC and metadata, and that the db's consistent index lies in the WAL's range (a snapshot
 * record at or below it exists, and it is not past the WAL's last entry). A progress line per
 * file goes to stderr when asked.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { WAL, WalError } from "../../lib/wal/index.js";
import { DataDirFileError } from "../../lib/server/errors.js";
import { dbFilePath, readDbFile, snapDirPath } from "../../lib/server/recovery.js";
import { listSnapFiles, readSnapFile } from "../../lib/server/snap-file.js";

/** What verify found: `problems` empty means the data dir is sound. */
export interface VerifyResult {
  lines: string[];
  problems: string[];
}

/** Verifies `dataDir` (see the module comment); `progress` receives one line per step. */
export async function verifyDataDir(
  dataDir: string,
  walDirFlag: string,
  progress: (line: string) => void,
): Promise<VerifyResult> {
  const lines: string[] = [];
  const problems: string[] = [];
  const walDir = walDirFlag !== "" ? walDirFlag : join(dataDir, "member", "wal");

  progress(`verifying WAL records in ${walDir}`);
  let wal: Awaited<ReturnType<typeof WAL.validSnapshotEntries>> | undefined;
  try {
    wal = await WAL.validSnapshotEntries(walDir, {
      onSegment: (path, k, n) => progress(`verifying WAL segment ${k}/${n} ${path}`),
    });
    lines.push(
      `wal: ok (last index ${wal.lastIndex}, commit ${wal.hardState.commit}, term ${wal.hardState.term}, snapshot records ${wal.snapshots.map((s) => s.index).join(",") || "none"})`,
    );
  } catch (err) {
    if (!(err instanceof WalError)) throw err;
    problems.push(`wal: ${err.message}`);
  }

  const snapDir = snapDirPath(dataDir);
  for (const name of listSnapFiles(snapDir)) {
    progress(`verifying ${name}`);
    try {
      const s = readSnapFile(join(snapDir, name));
      lines.push(`snap ${name}: ok (index ${s.metadata!.index}, term ${s.metadata!.term})`);
    } catch (err) {
      if (!(err instanceof DataDirFileError)) throw err;
      problems.push(`snap: ${err.message}`);
    }
  }

  const dbPath = dbFilePath(dataDir);
  if (!existsSync(dbPath)) {
    lines.push("db: none (the member has not written a snapshot yet)");
  } else {
    progress(`verifying ${dbPath}`);
    try {
      const db = readDbFile(dbPath);
      let keys = 0;
      for (const _ of db.keyRecords()) keys++;
      lines.push(
        `db: ok (consistent index ${db.consistentIndex}, ${keys} key records, compact revision ${db.compactRevision})`,
      );
      if (wal !== undefined) {
        const ci = db.consistentIndex;
        if (ci > wal.lastIndex) {
          problems.push(
            `db: consistent index ${ci} is ahead of the WAL, whose last entry is ${wal.lastIndex}`,
          );
        } else if (!wal.snapshots.some((s) => s.index <= ci)) {
          problems.push(
            `db: consistent index ${ci} is before every WAL snapshot record (${wal.snapshots.map((s) => s.index).join(",") || "none"}): the entries after it are gone`,
          );
        } else {
          lines.push(`db: consistent index ${ci} is within the WAL's range`);
        }
      }
    } catch (err) {
      if (!(err instanceof DataDirFileError)) throw err;
      problems.push(`db: ${err.message}`);
    }
  }
  return { lines, problems };
}
