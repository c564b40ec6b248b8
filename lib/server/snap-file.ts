/**
 * Raft snapshot metadata files, etcd 3.4's format (etcdserver/api/snap/snapshotter.go):
 * `member/snap/%016x-%016x.snap` (term-index) holding a snappb.Snapshot {crc, data} whose data is a
 * marshaled raftpb.Snapshot (metadata: index, term, conf state; data: the v2 store JSON, see
 * v2-store.ts) and whose crc is the CRC-32C (Castagnoli) of that data.
 *
 * Loading follows etcd's LoadNewestAvailable: newest first, only snapshots the WAL has a snapshot
 * record for; a file that fails a check is logged, renamed to `.broken` (as etcd does) and the next
 * older one is tried.
 */
import {
  closeSync,
  fsyncSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
} from "node:fs";
import { open, rename } from "node:fs/promises";
import { join } from "node:path";
import CRC32C from "crc-32/crc32c.js";
import { Snapshot as RaftSnapshot } from "../proto/gen/raftpb/raft.js";
import { snapshot as SnapPb } from "../proto/gen/snappb/snap.js";
import { DataDirFileError } from "./errors.js";
import { datasync, releaseFd, writeAt } from "../wal/index.js";

export { RaftSnapshot };

const snapNameRe = /^([0-9a-f]{16})-([0-9a-f]{16})\.snap$/;

/** `%016x-%016x.snap` of a snapshot at `term`, `index` (etcd's snapshotter.save). */
export function snapFileName(term: number, index: number): string {
  const h = (n: number) => n.toString(16).padStart(16, "0");
  return `${h(term)}-${h(index)}.snap`;
}

/** A .snap file name's term and index; undefined when the name is not one. */
export function parseSnapFileName(name: string): { term: number; index: number } | undefined {
  const m = snapNameRe.exec(name);
  if (m === null) return undefined;
  return { term: parseInt(m[1]!, 16), index: parseInt(m[2]!, 16) };
}

/** The .snap file names in `dir`, newest (highest term, then index) first (etcd snapNames). */
export function listSnapFiles(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
  return names
    .filter((n) => snapNameRe.test(n))
    .sort()
    .reverse();
}

/** The bytes of a .snap file for `snap`: snappb.Snapshot{crc: CRC-32C(data), data}. */
export function encodeSnapFile(snap: RaftSnapshot): Buffer {
  const data = RaftSnapshot.toBinary(snap);
  return Buffer.from(SnapPb.toBinary({ crc: CRC32C.buf(data, 0) >>> 0, data }));
}

/**
 * Decodes and checks a .snap file's bytes (etcd snap.Read): refuses an empty file, one that does
 * not parse, an empty snapshot (no data or crc 0, etcd's ErrEmptySnapshot), a crc mismatch (etcd's
 * ErrCRCMismatch), a raftpb.Snapshot that does not parse, and (when `name` is given) metadata
 * that disagrees with the file name.
 * @throws DataDirFileError naming `path` and what failed
 */
export function decodeSnapFile(path: string, bytes: Uint8Array, name?: string): RaftSnapshot {
  if (bytes.length === 0) throw new DataDirFileError(path, "snapshot file is empty");
  let s: { crc: number; data: Uint8Array };
  try {
    s = SnapPb.fromBinary(bytes);
  } catch (err) {
    throw new DataDirFileError(path, `not a snappb.Snapshot: ${(err as Error).message}`);
  }
  if (s.data.length === 0 || s.crc === 0) {
    throw new DataDirFileError(path, "empty snapshot (no data or crc 0)");
  }
  const crc = CRC32C.buf(s.data, 0) >>> 0;
  if (crc !== s.crc >>> 0) {
    throw new DataDirFileError(
      path,
      `crc mismatch: file says ${(s.crc >>> 0).toString(16)}, data has ${crc.toString(16)}`,
    );
  }
  let snap: RaftSnapshot;
  try {
    snap = RaftSnapshot.fromBinary(s.data);
  } catch (err) {
    throw new DataDirFileError(path, `data is not a raftpb.Snapshot: ${(err as Error).message}`);
  }
  const md = snap.metadata;
  if (md === undefined) throw new DataDirFileError(path, "snapshot has no metadata");
  if (name !== undefined) {
    const n = parseSnapFileName(name);
    if (n === undefined || n.index !== md.index || n.term !== md.term) {
      throw new DataDirFileError(
        path,
        `metadata (term ${md.term}, index ${md.index}) does not match the file name`,
      );
    }
  }
  return snap;
}

/** Reads and checks one .snap file (decodeSnapFile). @throws DataDirFileError */
export function readSnapFile(path: string): RaftSnapshot {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    throw new DataDirFileError(path, `cannot read: ${(err as Error).message}`);
  }
  return decodeSnapFile(path, bytes, path.slice(path.lastIndexOf("/") + 1));
}

/** The logger subset the snapshot files report to. */
export interface SnapLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

/**
 * etcd's LoadNewestAvailable: the newest .snap in `dir` whose (index, term) the WAL holds a
 * snapshot record for (`walSnapshots`), checked. A file that fails its checks is logged, renamed
 * to `<name>.broken` and skipped (etcd does the same), so an older one is used: the caller then
 * reads the WAL from that older snapshot. `snapshot` is undefined when none is usable; `failures`
 * lists the files refused and why.
 */
export function loadNewestAvailableSnap(
  dir: string,
  walSnapshots: readonly { index: number; term: number }[],
  logger: SnapLogger,
): { snapshot: RaftSnapshot | undefined; file: string; failures: DataDirFileError[] } {
  const failures: DataDirFileError[] = [];
  const held = new Set(walSnapshots.map((s) => `${s.term}/${s.index}`));
  for (const name of listSnapFiles(dir)) {
    const n = parseSnapFileName(name)!;
    const path = join(dir, name);
    if (!held.has(`${n.term}/${n.index}`)) {
      logger.info({ file: path }, "snapshot file has no WAL snapshot record; skipped");
      continue;
    }
    try {
      return { snapshot: readSnapFile(path), file: path, failures };
    } catch (err) {
      if (!(err instanceof DataDirFileError)) throw err;
      failures.push(err);
      logger.warn(
        { file: path, err: (err as Error).message, renamedTo: `${path}.broken` },
        "snapshot file is corrupt; falling back to an older one",
      );
      renameSync(path, `${path}.broken`);
    }
  }
  return { snapshot: undefined, file: "", failures };
}

/** fsync a directory so a rename or unlink in it is durable (off the event loop). */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** fsyncDir with blocking calls (offline tools). */
export function fsyncDirSync(dir: string): void {
  const fd = openSync(dir, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Writes `snap` as `dir/<term>-<index>.snap`: to `<name>.tmp`, fsync, rename, fsync the directory,
 * so a crash leaves the whole file or none (etcd writes in place and relies on the crc; this also
 * keeps a torn file out). Returns the path.
 */
export async function writeSnapFile(dir: string, snap: RaftSnapshot): Promise<string> {
  const md = snap.metadata!;
  const name = snapFileName(md.term, md.index);
  const path = join(dir, name);
  const tmp = `${path}.tmp`;
  const fh = await open(tmp, "w", 0o644);
  try {
    // lib/wal's file writes: under simulated power loss they stay in the process until synced
    const bytes = encodeSnapFile(snap);
    await writeAt(fh.fd, bytes, 0, bytes.length, 0);
    await datasync(fh.fd, { full: true });
  } finally {
    releaseFd(fh.fd);
    await fh.close();
  }
  await rename(tmp, path);
  await fsyncDir(dir);
  return path;
}

/**
 * Removes the oldest .snap files while more than `maxSnapshots` remain (etcd's purgeFile on the
 * snap dir with --max-snapshots; 0 keeps all), and leftover `.snap.tmp` files. Returns the removed
 * paths.
 */
export async function purgeSnapFiles(dir: string, maxSnapshots: number): Promise<string[]> {
  const removed: string[] = [];
  for (const n of readdirSync(dir)) {
    if (n.endsWith(".snap.tmp")) rmSync(join(dir, n), { force: true });
  }
  if (maxSnapshots <= 0) return removed;
  const names = listSnapFiles(dir);
  for (const name of names.slice(maxSnapshots)) {
    rmSync(join(dir, name), { force: true });
    removed.push(join(dir, name));
  }
  if (removed.length > 0) await fsyncDir(dir);
  return removed;
}
