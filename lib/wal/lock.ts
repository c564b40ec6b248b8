/**
 * Exclusive lock on a data directory (DESIGN §4): an flock(2) LOCK_EX|LOCK_NB taken with fs-ext on
 * the directory itself, so no extra file appears in the etcd-compatible layout. etcd 3.4 gets the
 * same exclusion by flocking every WAL segment it holds (fileutil.TryLockFile); one lock on the
 * directory covers the WAL, the snapshots and the db file at once.
 *
 * flock locks belong to the open file description: a second lock from the same process on a new
 * descriptor conflicts too, and the lock vanishes when the process dies (kill -9 included).
 */
import { closeSync, mkdirSync, openSync } from "node:fs";
import { createRequire } from "node:module";
import { DataDirLockedError } from "./errors.js";

interface FsExt {
  flockSync(fd: number, flags: "ex" | "exnb" | "sh" | "shnb" | "un"): void;
}

const fsExt = createRequire(import.meta.url)("fs-ext") as FsExt;

/**
 * Takes the exclusive, non-blocking lock on `dataDir` (created if missing). Returns `release()`,
 * which unlocks and closes the descriptor (idempotent). Throws DataDirLockedError naming the dir
 * when another open file description (another process, usually) holds it; other failures (no
 * permission, not a directory) are thrown as they come.
 */
export function lockDataDir(dataDir: string): { release(): void } {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const fd = openSync(dataDir, "r");
  try {
    fsExt.flockSync(fd, "exnb");
  } catch (err) {
    closeSync(fd);
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "EWOULDBLOCK" || code === "EAGAIN") throw new DataDirLockedError(dataDir, err);
    throw err;
  }
  let released = false;
  return {
    release(): void {
      if (released) return;
      released = true;
      try {
        fsExt.flockSync(fd, "un");
      } finally {
        closeSync(fd);
      }
    },
  };
}
