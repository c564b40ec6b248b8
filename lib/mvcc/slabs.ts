/**
 * Where a record log's long-lived memory comes from: its row and key blocks and its arenas' chunks
 * are carved, in order, out of zero-filled slabs that double in size from `minSlabBytes` up to
 * `maxSlabBytes`. Nothing carved is freed on its own; a slab goes when nothing views it any more
 * (a compaction builds a new log, with new slabs, and the old ones go with the old log).
 *
 * Why (issue 13, measured at 1M keys of 256 B): glibc's malloc serves an allocation below its mmap
 * threshold from the brk heap, and that threshold starts at 128 KiB and rises to the size of each
 * mmapped chunk that is freed (up to 32 MiB). Once a short-lived 1 MiB buffer had been freed (a
 * snapshot's output chunk), the store's 1 MiB value chunks and 256 KiB row blocks came from the
 * brk heap, between short-lived buffers (snapshot chunks, read-ahead blocks, socket reads) whose
 * holes, once freed, stayed resident: the brk heap held ~40 MiB more than the live buffers. A
 * slab over 32 MiB is always mmapped on its own, and its pages become resident only as they are
 * written.
 */

/** The largest slab: over glibc's largest mmap threshold (32 MiB on 64-bit), so never brk. */
export const maxSlabBytes = 64 * 1024 * 1024;

export class Slabs {
  readonly #minSlabBytes: number;
  #slab: ArrayBuffer = new ArrayBuffer(0);
  #used = 0;
  #nextSlabBytes: number;
  /** Where the last take() put its piece in the slab it returned. */
  takenOffset = 0;

  /** `minSlabBytes`: the first slab's size (later ones double, up to maxSlabBytes). */
  constructor(minSlabBytes = 256 * 1024) {
    this.#minSlabBytes = minSlabBytes;
    this.#nextSlabBytes = minSlabBytes;
  }

  /**
   * `bytes` of zeroed memory, 8-byte aligned: returns the slab holding it; it starts at
   * `takenOffset`. A piece larger than a slab gets a slab of its own size.
   */
  take(bytes: number): ArrayBuffer {
    const at = (this.#used + 7) & ~7;
    if (at + bytes > this.#slab.byteLength) {
      const size = Math.max(bytes, this.#nextSlabBytes);
      this.#slab = new ArrayBuffer(size);
      this.#used = 0;
      this.#nextSlabBytes = Math.min(maxSlabBytes, Math.max(this.#minSlabBytes, size * 2));
      this.takenOffset = 0;
      this.#used = bytes;
      return this.#slab;
    }
    this.takenOffset = at;
    this.#used = at + bytes;
    return this.#slab;
  }
}
