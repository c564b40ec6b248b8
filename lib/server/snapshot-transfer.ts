/**
 * The db file travelling with a MsgSnap (etcd 3.4's createMergedSnapshotMessage on the leader,
 * the rafthttp snapshot handler and applySnapshot / openSnapshotBackend on the follower):
 *
 * - the leader streams its db file as of now (an O(1) capture at its applied index, planned in
 *   steps off the event loop's critical path) and rewrites the message's snapshot metadata to
 *   that index, term and conf state, as etcd does;
 * - the follower writes the payload to `member/snap/%016x.snap.db` (fsynced) before handing the
 *   message to raft; once raft's Ready carries the snapshot and its .snap file and WAL record are
 *   durable, the file is renamed over `member/snap/db` and the state is loaded from it.
 *
 * A crash between the WAL record and the rename leaves `<index>.snap.db` beside an older db:
 * recovery (recovery.ts) renames it into place first, as etcd's recoverSnapshotBackend does.
 */
import { open, readdir, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { BoltFileWriter, type BoltWriteOptions } from "../btree/index.js";
import { dbFilePlanEntriesPerStep, etcdDbBuckets, type DbFileState } from "./db-file.js";
import { dbFilePath, snapDirPath } from "./recovery.js";
import { fsyncDirSync } from "./snap-file.js";
import { runInTurns } from "./turns.js";

const receivedNameRe = /^([0-9a-f]{16})\.snap\.db$/;

/** `member/snap/%016x.snap.db`: a db file received with the snapshot at `index` (etcd's name). */
export function receivedDbPath(dataDir: string, index: number): string {
  return join(snapDirPath(dataDir), `${index.toString(16).padStart(16, "0")}.snap.db`);
}

/**
 * Plans the bbolt layout of `state`'s db file in steps of `entriesPerStep` records, several per
 * event-loop turn up to TURN_BUDGET_MS (turns.ts; the store may be large); `stopped()` is checked
 * between turns and ends the planning with an error.
 */
export async function planDbFile(
  state: DbFileState,
  options: Partial<BoltWriteOptions> = {},
  entriesPerStep = dbFilePlanEntriesPerStep,
  stopped: () => boolean = () => false,
): Promise<BoltFileWriter> {
  return runInTurns(
    BoltFileWriter.planInSteps(etcdDbBuckets(state), options, entriesPerStep),
    stopped,
  );
}

/** The db file of `state`, in chunks (planned in steps, then yielded as bbolt lays it out). */
export async function* dbFileChunks(state: DbFileState): AsyncGenerator<Uint8Array> {
  const writer = await planDbFile(state);
  yield* writer.chunks();
}

/**
 * Writes a received db file for the snapshot at `index` from `payload`, fsynced, under its final
 * name (written to a temp name first). Returns its size. Rejects on a write error (the sender is
 * then told "failure" and raft retries later).
 */
export async function receiveDbFile(
  dataDir: string,
  index: number,
  payload: AsyncIterable<Uint8Array>,
): Promise<number> {
  const path = receivedDbPath(dataDir, index);
  const tmp = `${path}.tmp`;
  const fh = await open(tmp, "w", 0o600);
  let written = 0;
  try {
    for await (const chunk of payload) {
      let off = 0;
      while (off < chunk.length) {
        const { bytesWritten } = await fh.write(chunk, off, chunk.length - off, written);
        off += bytesWritten;
        written += bytesWritten;
      }
    }
    await fh.sync();
  } catch (err) {
    await fh.close().catch(() => {});
    await rm(tmp, { force: true });
    throw err;
  }
  await fh.close();
  await rename(tmp, path);
  fsyncDirSync(snapDirPath(dataDir));
  return written;
}

/** Renames the received db of the snapshot at `index` over `member/snap/db` (fsynced). */
export async function installReceivedDb(dataDir: string, index: number): Promise<void> {
  await rename(receivedDbPath(dataDir, index), dbFilePath(dataDir));
  fsyncDirSync(snapDirPath(dataDir));
}

/**
 * Received db files (and their temp files) of snapshots at or below `index` that were never
 * installed (raft refused a stale snapshot, or a newer one replaced them): removed.
 */
export async function removeStaleReceivedDbs(dataDir: string, index: number): Promise<void> {
  let names: string[];
  try {
    names = await readdir(snapDirPath(dataDir));
  } catch {
    return;
  }
  for (const n of names) {
    const m = receivedNameRe.exec(n.replace(/\.tmp$/, ""));
    if (m === null) continue;
    if (n.endsWith(".tmp") || parseInt(m[1]!, 16) <= index) {
      await rm(join(snapDirPath(dataDir), n), { force: true });
    }
  }
}
