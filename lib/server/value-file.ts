/**
 * A db (snapshot) file the store reads values from (lib/mvcc RecordLog, "Values in a db file";
 * issue 13): etcd's values live in its mmapped bbolt file, in the kernel's page cache, not in the
 * process; here rows point at byte positions of the db file the snapshotter made durable and read
 * them with one positioned read each.
 *
 * Lifetime: the descriptor stays open while anything can reach this object (a record log's file
 * table, a reader in flight), and is closed after the garbage collector finds it unreachable. The
 * rename of a newer db over `member/snap/db` leaves this file's inode readable through it; its disk
 * space goes back once the descriptor is closed.
 */
import { close, fstat, fstatSync, ftruncate, open, readSync } from "node:fs";
import type { ValueFile } from "../mvcc/index.js";

/**
 * Closes the descriptor of a DbValueFile nothing can reach any more, on libuv's thread pool: it is
 * usually the last reference to a db file a newer one was renamed over, and that close frees the
 * whole file's blocks and cached pages (tens to hundreds of MB), which took 50-130 ms on the event
 * loop when done with closeSync (puts stalled that long; bench:snapshots, 2026-12-06 11:56 UTC).
 * The blocks go back in steps first (releaseUnlinked).
 */
const closer = new FinalizationRegistry<number>((fd) => {
  void releaseUnlinked(fd);
});

/** Bytes of an unlinked db file given back per step (releaseUnlinked). */
const releaseStepBytes = 4 * 1024 * 1024;
/** Pause between two steps, ms: the WAL's writes and syncs go first. */
const releasePauseMs = 2;

/**
 * Gives an unlinked file's blocks back to the filesystem a few MB at a time (ftruncate from the
 * end, through a read-write descriptor opened on /proc/self/fd/<fd>: the db may be open read-only),
 * then closes `fd`. Freeing a whole 100-200 MB db file in one close made one large ext4 journal
 * transaction, and every WAL write meanwhile waited for it: a member at 128 clients had WAL writes
 * of 15-21 ms, each right as such a close ran for 34-45 ms (bench/stall-trace.cjs with
 * STALL_TRACE_FS=1, 2026-12-06 16:05 UTC), and puts of 35-46 ms. A file still linked (nlink > 0:
 * still `member/snap/db`) is only closed, never truncated; so is one where a step fails. Never
 * rejects.
 */
export async function releaseUnlinked(fd: number): Promise<void> {
  let rw: number | undefined;
  try {
    const st = await new Promise<{ nlink: number; size: number }>((resolve, reject) =>
      fstat(fd, (err, s) => (err !== null ? reject(err) : resolve(s))),
    );
    if (st.nlink === 0 && st.size > 0) {
      rw = await new Promise<number>((resolve, reject) =>
        open(`/proc/self/fd/${fd}`, "r+", (err, f) => (err !== null ? reject(err) : resolve(f))),
      );
      for (let size = st.size; size > 0;) {
        size = Math.max(0, size - releaseStepBytes);
        await new Promise<void>((resolve, reject) =>
          ftruncate(rw!, size, (err) => (err !== null ? reject(err) : resolve())),
        );
        await new Promise((resolve) => setTimeout(resolve, releasePauseMs));
      }
    }
  } catch {
    // closed already, or not a file that can be truncated: the close below is all there is to do
  }
  for (const f of rw === undefined ? [fd] : [rw, fd]) {
    await new Promise<void>((resolve) =>
      close(f, () => {
        // an error means it was closed already: nothing holds it
        resolve();
      }),
    );
  }
}

/** Short reads in a row before a read is called failed (a regular file returns all it has). */
const maxShortReads = 4;

/** One db file, open for reading, as a lib/mvcc ValueFile. */
export class DbValueFile implements ValueFile {
  readonly #fd: number;
  #sizeBytes: number;
  readonly #path: string;
  readonly #onError: (err: Error) => void;

  /**
   * `fd`: open for reading on the durable db file at `path` (for messages); this object owns it
   * from now on. `onError` is told of a failed read (EIO, a file shorter than a row says) before
   * read() throws: the member must stop (lib/server EtcdServer's fatal path), never answer wrongly.
   */
  constructor(fd: number, path: string, onError: (err: Error) => void) {
    this.#fd = fd;
    this.#path = path;
    this.#onError = onError;
    this.#sizeBytes = fstatSync(fd).size;
    closer.register(this, fd);
  }

  /** The file's size in bytes as last looked at (the read caches stop there). */
  get sizeBytes(): number {
    return this.#sizeBytes;
  }

  /** Looks at the file's size again: it was extended in place (lib/btree's in-place commits). */
  refreshSize(): void {
    this.#sizeBytes = fstatSync(this.#fd).size;
  }

  read(out: Uint8Array, at: number, length: number, position: number): void {
    let done = 0;
    let short = 0;
    while (done < length) {
      let n: number;
      try {
        n = readSync(this.#fd, out, at + done, length - done, position + done);
      } catch (err) {
        this.#fail(`read of ${length} bytes at ${position}: ${(err as Error).message}`);
      }
      if (n === 0 && ++short >= maxShortReads) {
        this.#fail(`read of ${length} bytes at ${position}: the file ends first`);
      }
      done += n;
    }
  }

  #fail(what: string): never {
    const err = new Error(`value file ${this.#path}: ${what}`);
    this.#onError(err);
    throw err;
  }
}
