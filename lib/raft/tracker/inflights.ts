/**
 * Inflights: the window of MsgApp messages sent to one follower and not yet acknowledged
 * (etcd-io/raft's tracker/inflights.go). Bounded by a message count and a byte total; when full,
 * the leader stops sending new appends to that follower until acks free the window.
 */
import { invariant } from "../errors.js";

/** A bounded ring of in-flight MsgApp (last index, bytes); see the file comment. */
export class Inflights {
  /** Max messages in flight. */
  readonly maxCount: number;
  /** Max payload bytes in flight (0 = no byte limit). */
  readonly maxBytes: number;
  // Ring buffer: #index[(#start + i) % maxCount] is the last entry index of the i-th message.
  #index: number[] = [];
  #bytes: number[] = [];
  #start = 0;
  #count = 0;
  #totalBytes = 0;

  constructor(maxCount: number, maxBytes: number) {
    invariant(maxCount > 0, "inflights maxCount must be positive");
    this.maxCount = maxCount;
    this.maxBytes = maxBytes;
  }

  /** A fresh window with the same limits. */
  clone(): Inflights {
    const c = new Inflights(this.maxCount, this.maxBytes);
    c.#index = this.#index.slice();
    c.#bytes = this.#bytes.slice();
    c.#start = this.#start;
    c.#count = this.#count;
    c.#totalBytes = this.#totalBytes;
    return c;
  }

  /** Records a message whose last entry has `index` and payload `bytes`. Asserts the window is not full. */
  add(index: number, bytes: number): void {
    invariant(!this.full(), "cannot add into a full inflights");
    let next = this.#start + this.#count;
    if (next >= this.maxCount) next -= this.maxCount;
    // Grow the ring lazily up to maxCount so idle followers cost little memory.
    if (next >= this.#index.length) {
      this.#index.push(index);
      this.#bytes.push(bytes);
    } else {
      this.#index[next] = index;
      this.#bytes[next] = bytes;
    }
    this.#count++;
    this.#totalBytes += bytes;
  }

  /** Frees every message whose last index is ≤ to (they were acknowledged). */
  freeLE(to: number): void {
    if (this.#count === 0 || to < this.#index[this.#start]!) return;
    let idx = this.#start;
    let i = 0;
    let bytes = 0;
    for (; i < this.#count; i++) {
      if (to < this.#index[idx]!) break;
      bytes += this.#bytes[idx]!;
      idx++;
      if (idx >= this.maxCount) idx -= this.maxCount;
    }
    this.#count -= i;
    this.#totalBytes -= bytes;
    this.#start = this.#count === 0 ? 0 : idx;
  }

  /** Frees the oldest message (used when a heartbeat response shows the follower alive but the window full). */
  freeFirstOne(): void {
    if (this.#count === 0) return;
    this.freeLE(this.#index[this.#start]!);
  }

  /** True when no more messages may be sent: count or byte limit reached. */
  full(): boolean {
    return (
      this.#count === this.maxCount || (this.maxBytes !== 0 && this.#totalBytes >= this.maxBytes)
    );
  }

  count(): number {
    return this.#count;
  }

  totalBytes(): number {
    return this.#totalBytes;
  }

  reset(): void {
    this.#start = 0;
    this.#count = 0;
    this.#totalBytes = 0;
  }
}
