/**
 * ReadOnly: the leader's queue of pending ReadIndex requests (etcd-io/raft's read_only.go).
 * In "safe" mode a request is answered once a quorum acknowledged a heartbeat carrying its
 * context (Raft thesis §6.4: confirms the leader was still leader when it recorded the index).
 */
import type { Message } from "../proto/gen/raftpb/raft.js";

export type ReadOnlyOption = "safe" | "lease-based";

/** A pending request: the commit index when it arrived, the original message, and who acked. */
export interface ReadIndexStatus {
  req: Message;
  index: number;
  acks: Set<bigint>;
}

/** Map key for a request context (bytes → latin1 string). */
export function contextKey(ctx: Uint8Array): string {
  let s = "";
  for (let i = 0; i < ctx.length; i++) s += String.fromCharCode(ctx[i]!);
  return s;
}

/** Pending ReadIndex requests awaiting heartbeat acknowledgement from a quorum. */
export class ReadOnly {
  readonly option: ReadOnlyOption;
  /** Bound on queued requests; beyond it new ones are refused (the caller drops them). */
  readonly maxPendingRequests: number;
  #pending = new Map<string, ReadIndexStatus>();
  #queue: string[] = [];

  constructor(option: ReadOnlyOption, maxPendingRequests: number) {
    this.option = option;
    this.maxPendingRequests = maxPendingRequests;
  }

  /** Queues request m (context in m.entries[0].data) at commit index `index`. Returns false if full. Duplicates are ignored. */
  addRequest(index: number, m: Message): boolean {
    const key = contextKey(m.entries[0]!.data);
    if (this.#pending.has(key)) return true;
    if (this.#queue.length >= this.maxPendingRequests) return false;
    this.#pending.set(key, { req: m, index, acks: new Set() });
    this.#queue.push(key);
    return true;
  }

  /** Records a heartbeat ack from `id` for context; returns the acks so far (undefined if unknown). */
  recvAck(id: bigint, context: Uint8Array): Set<bigint> | undefined {
    const rs = this.#pending.get(contextKey(context));
    if (rs === undefined) return undefined;
    rs.acks.add(id);
    return rs.acks;
  }

  /**
   * Dequeues the request with m.context and every request queued before it (an ack for a later
   * heartbeat confirms the earlier ones too); returns them in order.
   */
  advance(context: Uint8Array): ReadIndexStatus[] {
    const key = contextKey(context);
    const at = this.#queue.indexOf(key);
    if (at < 0) return [];
    const keys = this.#queue.splice(0, at + 1);
    const out: ReadIndexStatus[] = [];
    for (const k of keys) {
      const rs = this.#pending.get(k);
      if (rs !== undefined) out.push(rs);
      this.#pending.delete(k);
    }
    return out;
  }

  /** Context of the newest pending request (sent with heartbeats), if any. */
  lastPendingRequestCtx(): Uint8Array | undefined {
    if (this.#queue.length === 0) return undefined;
    return this.#pending.get(this.#queue[this.#queue.length - 1]!)!.req.entries[0]!.data;
  }

  pendingCount(): number {
    return this.#queue.length;
  }
}
