/**
 * Zero-fills the tail segment a little ahead of the write position, in the background.
 *
 * Segments are preallocated with `ftruncate` (pipeline.ts), which leaves them sparse: the first
 * write to each block allocates it, and on ext4 an O_DSYNC write (or fdatasync) that allocated
 * blocks must also commit the journal, where an overwrite of allocated blocks flushes only its
 * data. On this project's test box (ext4 on a virtual disk) 3,000-byte O_DSYNC appends took
 * 157-194 µs into a sparse file and 119-130 µs into a zero-filled one. PostgreSQL zero-fills its
 * WAL segments for the same reason (`wal_init_zero`). etcd does not: its fallocate leaves
 * unwritten extents, which need the same journal commit on first write.
 *
 * Filling a whole 64 MB segment at creation would cost every member start and every test member
 * 64 MB of writes, so only `aheadBytes` past the write position are kept filled, one `chunkBytes`
 * write + fdatasync at a time (each fdatasync small, so it never holds the disk long).
 *
 * Safety: a fill never starts below the end of any write the WAL has issued (`issued`), and a WAL
 * write whose range reaches an in-flight fill waits for it first (`clear`), so zeros never land
 * on records. The fill is an optimisation only: a failed fill is logged once and filling stops;
 * the WAL goes on writing into sparse space as before.
 */
import { datasync, writeAt } from "./power-loss.js";

/** Where the filler writes: the tail segment's descriptor and path. */
export interface FillTarget {
  fd: number;
  path: string;
}

/** Background zero-filler of one WAL's tail segment (see the module comment). */
export class FillAhead {
  /** Bytes written as fill (stats, tests). */
  filledBytes = 0;
  /** WAL writes that waited for a fill in flight over their range (stats, tests). */
  writesWaited = 0;
  #aheadBytes: number;
  #chunkBytes: number;
  /** chunkBytes of zeros; a fill writes a prefix of it (the last chunk of a segment is shorter). */
  #zeros: Buffer;
  #leadBytes: number;
  #segmentSizeBytes: number;
  #onError: (err: unknown, path: string) => void;
  #target: FillTarget | null = null;
  /** Every byte below this of the target is allocated (written by the WAL or by a fill). */
  #filledTo = 0;
  /** End of the furthest write the WAL has issued on the target. */
  #issuedTo = 0;
  /** The fill in flight: its range and its promise (never rejects). */
  #inFlight: { start: number; done: Promise<void> } | null = null;
  #stopped = false;

  /**
   * `aheadBytes`: how far past the write position to keep filled (> 0). `chunkBytes`: one fill
   * write. `segmentSizeBytes`: where a segment ends. `onError` is told of the first failed fill.
   */
  constructor(opts: {
    aheadBytes: number;
    chunkBytes: number;
    segmentSizeBytes: number;
    onError: (err: unknown, path: string) => void;
  }) {
    this.#aheadBytes = opts.aheadBytes;
    this.#chunkBytes = opts.chunkBytes;
    this.#zeros = Buffer.alloc(opts.chunkBytes);
    // the first fill after a cut or an open starts this far past the write position, so the
    // next few writes do not wait for it (they allocate their own blocks, as without a filler)
    this.#leadBytes = Math.min(256 * 1024, opts.chunkBytes);
    this.#segmentSizeBytes = opts.segmentSizeBytes;
    this.#onError = opts.onError;
  }

  /** A new tail: `target`, written (and so allocated) up to `writtenToBytes`. */
  retarget(target: FillTarget, writtenToBytes: number): void {
    this.#target = target;
    this.#filledTo = writtenToBytes;
    this.#issuedTo = writtenToBytes;
    this.maybeStart();
  }

  /**
   * Call before issuing a write that ends at `endBytes`: null when no fill in flight overlaps
   * it, else a promise to await first. Records the write as issued either way.
   */
  clear(endBytes: number): Promise<void> | null {
    if (endBytes > this.#issuedTo) this.#issuedTo = endBytes;
    const f = this.#inFlight;
    if (f === null || endBytes <= f.start) return null;
    this.writesWaited++;
    return f.done;
  }

  /** Starts the next fill if the tail is not filled far enough ahead and none is in flight. */
  maybeStart(): void {
    const target = this.#target;
    if (this.#stopped || this.#inFlight !== null || target === null) return;
    if (this.#filledTo >= this.#issuedTo + this.#aheadBytes) return;
    const start =
      this.#filledTo > this.#issuedTo ? this.#filledTo : this.#issuedTo + this.#leadBytes;
    const end = Math.min(start + this.#chunkBytes, this.#segmentSizeBytes);
    if (start >= end) return;
    const done = this.#fill(target, start, end);
    this.#inFlight = { start, done };
  }

  async #fill(target: FillTarget, start: number, end: number): Promise<void> {
    try {
      await writeAt(target.fd, this.#zeros, 0, end - start, start);
      await datasync(target.fd);
      this.filledBytes += end - start;
      if (this.#target === target) this.#filledTo = end;
    } catch (err) {
      this.#stopped = true;
      this.#onError(err, target.path);
    }
    this.#inFlight = null;
    if (this.#target === target) this.maybeStart();
  }

  /** Stops filling the current target and waits for the fill in flight (before a cut). */
  async detach(): Promise<void> {
    this.#target = null;
    while (this.#inFlight !== null) await this.#inFlight.done;
  }

  /** No more fills; waits for the one in flight (before closing). */
  async stop(): Promise<void> {
    this.#stopped = true;
    await this.detach();
  }
}
