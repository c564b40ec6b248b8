/**
 * Prepares the next segment file ahead of time (etcd v3.4 wal/file_pipeline.go), so cutting a
 * segment does not wait for the allocation: `<count % 2>.tmp` is created and preallocated to the
 * segment size while the current segment fills; a cut takes it, renames it into place, and the
 * pipeline starts on the other name.
 *
 * Preallocation is `ftruncate` to the segment size: Node has no fallocate, and ftruncate is what
 * etcd's fileutil.Preallocate falls back to when the filesystem lacks fallocate.
 */
import { open, rm, type FileHandle } from "node:fs/promises";
import { join } from "node:path";

/** A prepared segment file, open for reading and writing. */
export interface PreparedFile {
  fh: FileHandle;
  path: string;
}

/** Creates (or truncates) `path` and extends it to `sizeBytes` of zeros. */
export async function createPreallocated(path: string, sizeBytes: number): Promise<FileHandle> {
  // "w+" truncates: a stale .tmp from a crashed run must not leave old bytes behind the header.
  const fh = await open(path, "w+", 0o600);
  try {
    await fh.truncate(sizeBytes);
  } catch (err) {
    await fh.close();
    throw err;
  }
  return fh;
}

/** Background allocator of the next segment file. Holds at most one prepared file. */
export class FilePipeline {
  #dir: string;
  #sizeBytes: number;
  #count = 0;
  #pending: Promise<PreparedFile> | null = null;
  #closed = false;

  constructor(dir: string, sizeBytes: number) {
    this.#dir = dir;
    this.#sizeBytes = sizeBytes;
    this.#startNext();
  }

  #startNext(): void {
    const path = join(this.#dir, `${this.#count % 2}.tmp`);
    this.#count++;
    const p = createPreallocated(path, this.#sizeBytes).then((fh) => ({ fh, path }));
    p.catch(() => {}); // surfaced by take(); never an unhandled rejection
    this.#pending = p;
  }

  /** The prepared file (waits for it if still being allocated); starts preparing the next one. */
  async take(): Promise<PreparedFile> {
    const p = this.#pending;
    if (p === null || this.#closed) throw new Error("wal: file pipeline closed");
    const f = await p;
    this.#startNext();
    return f;
  }

  /** Stops the pipeline and removes the file it prepared (etcd does the same on Close). */
  async close(): Promise<void> {
    this.#closed = true;
    const p = this.#pending;
    this.#pending = null;
    if (p === null) return;
    try {
      const f = await p;
      await f.fh.close();
      await rm(f.path, { force: true });
    } catch {
      // An allocation that failed left nothing worth keeping.
    }
  }
}
