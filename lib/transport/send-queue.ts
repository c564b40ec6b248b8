/**
 * One peer's bounded queue of outgoing raft messages, framed into socket writes in batches. A
 * message is kept as the Message object raft handed over (encoded by message-codec.ts when its
 * batch is written, straight into the write buffer) or, for the few the hand encoder leaves to
 * protobuf-ts, as its encoded bytes; either way its encoded size is known when it is queued, so
 * the byte bound holds.
 */
import type { Message } from "../proto/gen/raftpb/raft.js";
import { TransportInvariantError } from "./errors.js";
import { FRAME_HEADER_BYTES } from "./frame.js";
import { putMessage } from "./message-codec.js";

/** Keep at most this many consumed slots at the queue's head before compacting. */
const COMPACT_SLOTS = 1024;

/**
 * A peer's outgoing messages, bounded by count and encoded bytes (see the file comment). Its two
 * arrays are kept and their slots reused when the queue empties (every flush empties it): new
 * arrays there cost two arrays and two backing stores per flush on every peer link.
 */
export class SendQueue {
  readonly #maxMessages: number;
  readonly #maxBytes: number;
  /**
   * #items[#head, #end) are unsent; #sizes[i] is #items[i]'s encoded size (without length word).
   * Slots outside that range hold undefined (no message kept alive) or stale sizes; the arrays
   * keep the most slots the queue ever used (at most maxMessages + COMPACT_SLOTS).
   */
  readonly #items: (Message | Uint8Array | undefined)[] = [];
  readonly #sizes: number[] = [];
  #head = 0;
  #end = 0;
  #bytes = 0;

  constructor(maxMessages: number, maxBytes: number) {
    this.#maxMessages = maxMessages;
    this.#maxBytes = maxBytes;
  }

  /** Messages waiting. */
  get length(): number {
    return this.#end - this.#head;
  }

  /**
   * Queues a message of `sizeBytes` encoded bytes (a Message for putMessage, or its bytes).
   * Returns false, queueing nothing, when either bound would be passed.
   */
  push(item: Message | Uint8Array, sizeBytes: number): boolean {
    if (this.length >= this.#maxMessages || this.#bytes + sizeBytes > this.#maxBytes) return false;
    const at = this.#end;
    if (at < this.#items.length) {
      this.#items[at] = item;
      this.#sizes[at] = sizeBytes;
    } else {
      this.#items.push(item);
      this.#sizes.push(sizeBytes);
    }
    this.#end = at + 1;
    this.#bytes += sizeBytes;
    return true;
  }

  /**
   * Frames the next messages, up to `maxBatchBytes` (at least one message), into one buffer and
   * removes them; undefined when empty.
   */
  takeBatch(maxBatchBytes: number): Buffer | undefined {
    const start = this.#head;
    const items = this.#items;
    const sizes = this.#sizes;
    const queued = this.#end;
    if (start === queued) return undefined;
    let end = start;
    let total = 0;
    while (end < queued) {
      const n = FRAME_HEADER_BYTES + sizes[end]!;
      if (total > 0 && total + n > maxBatchBytes) break;
      total += n;
      end++;
    }
    const out = Buffer.allocUnsafe(total);
    let pos = 0;
    for (let i = start; i < end; i++) {
      const size = sizes[i]!;
      out.writeUInt32BE(size, pos);
      pos += FRAME_HEADER_BYTES;
      const item = items[i]!;
      items[i] = undefined;
      const next =
        item instanceof Uint8Array ? (out.set(item, pos), pos + size) : putMessage(out, pos, item);
      if (next !== pos + size)
        throw new TransportInvariantError(`message encoded to ${next - pos} bytes, sized ${size}`);
      pos = next;
    }
    this.#bytes -= total - FRAME_HEADER_BYTES * (end - start);
    this.#head = end;
    this.#compact();
    return out;
  }

  /** Drops everything queued; returns how many messages that was. */
  clear(): number {
    const n = this.length;
    this.#items.fill(undefined, this.#head, this.#end);
    this.#head = 0;
    this.#end = 0;
    this.#bytes = 0;
    return n;
  }

  /** Moves the unsent messages to the front when the queue empties or its head is far in. */
  #compact(): void {
    if (this.#head === this.#end) {
      this.#head = 0;
      this.#end = 0;
    } else if (this.#head > COMPACT_SLOTS) {
      const n = this.length;
      this.#items.copyWithin(0, this.#head, this.#end).fill(undefined, n, this.#end);
      this.#sizes.copyWithin(0, this.#head, this.#end);
      this.#head = 0;
      this.#end = n;
    }
  }
}
