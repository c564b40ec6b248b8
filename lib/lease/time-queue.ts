/**
 * A min-heap of (lease id, time in ms) with at most one entry per id, so an update moves the
 * entry instead of adding a duplicate (etcd's LeaseExpiredNotifier.RegisterOrUpdate keeps one
 * item per lease the same way). Used for lease expiries and for scheduled checkpoints.
 * Ties on time are broken by the smaller id, so the order is deterministic.
 */
import { LeaseInvariantError } from "./errors.js";

export class LeaseTimeQueue {
  #ids: bigint[] = [];
  #timesMs: number[] = [];
  /** id -> index in #ids / #timesMs */
  #positions = new Map<bigint, number>();

  /** Number of queued ids. */
  get size(): number {
    return this.#ids.length;
  }

  /** The id with the smallest time, or undefined when empty. */
  peekId(): bigint | undefined {
    return this.#ids[0];
  }

  /** The smallest time, or undefined when empty. */
  peekTimeMs(): number | undefined {
    return this.#timesMs[0];
  }

  /** The queued time of `id`, or undefined. */
  timeOf(id: bigint): number | undefined {
    const i = this.#positions.get(id);
    return i === undefined ? undefined : this.#timesMs[i];
  }

  /** Queues `id` at `timeMs`, or moves it there if already queued. O(log n). */
  upsert(id: bigint, timeMs: number): void {
    const i = this.#positions.get(id);
    if (i === undefined) {
      this.#ids.push(id);
      this.#timesMs.push(timeMs);
      const at = this.#ids.length - 1;
      this.#positions.set(id, at);
      this.#up(at);
      return;
    }
    const old = this.#timesMs[i];
    this.#timesMs[i] = timeMs;
    if (timeMs < old) this.#up(i);
    else this.#down(i);
  }

  /** Drops `id` if queued. O(log n). */
  remove(id: bigint): void {
    const i = this.#positions.get(id);
    if (i === undefined) return;
    const last = this.#ids.length - 1;
    this.#positions.delete(id);
    if (i !== last) {
      this.#ids[i] = this.#ids[last];
      this.#timesMs[i] = this.#timesMs[last];
      this.#positions.set(this.#ids[i], i);
    }
    this.#ids.pop();
    this.#timesMs.pop();
    if (i < this.#ids.length) {
      this.#up(i);
      this.#down(i);
    }
  }

  /** Empties the queue. */
  clear(): void {
    this.#ids = [];
    this.#timesMs = [];
    this.#positions.clear();
  }

  /** Checks the heap property and the position index (tests). */
  checkInvariants(): void {
    if (this.#positions.size !== this.#ids.length)
      throw new LeaseInvariantError("time queue index size mismatch");
    for (let i = 0; i < this.#ids.length; i++) {
      if (this.#positions.get(this.#ids[i]) !== i)
        throw new LeaseInvariantError(`time queue index wrong at ${i}`);
      if (i > 0 && this.#less(i, (i - 1) >> 1))
        throw new LeaseInvariantError(`time queue heap order broken at ${i}`);
    }
  }

  #less(a: number, b: number): boolean {
    const ta = this.#timesMs[a];
    const tb = this.#timesMs[b];
    return ta < tb || (ta === tb && this.#ids[a] < this.#ids[b]);
  }

  #swap(a: number, b: number): void {
    const ids = this.#ids;
    const times = this.#timesMs;
    const id = ids[a];
    ids[a] = ids[b];
    ids[b] = id;
    const t = times[a];
    times[a] = times[b];
    times[b] = t;
    this.#positions.set(ids[a], a);
    this.#positions.set(ids[b], b);
  }

  #up(i: number): void {
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.#less(i, parent)) return;
      this.#swap(i, parent);
      i = parent;
    }
  }

  #down(i: number): void {
    const n = this.#ids.length;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) return;
      const r = l + 1;
      const child = r < n && this.#less(r, l) ? r : l;
      if (!this.#less(child, i)) return;
      this.#swap(i, child);
      i = child;
    }
  }
}
