/**
 * Coalescing of the messages one Ready (or one turn of forwarded requests) hands to the network.
 * Raft emits a message per event: with pipelined replication the leader sends each follower one
 * MsgApp per proposal and one more (empty, carrying the new commit index) per acknowledgement that
 * advances the commit, and a follower answers each MsgApp with its own MsgAppResp and forwards
 * each proposal alone. Under many clients that is several messages per put on every link, each
 * encoded, decoded and stepped on its own (issue 14: 5.5 MsgApp and 3.5 MsgAppResp per put through
 * the leader of a 3-member cluster at 128 clients). Merging what raft sends the same peer in one
 * batch gives that peer the same information in fewer messages:
 *
 * - MsgApp + MsgApp (same term and sender): when the second starts where the first ends (its
 *   index and logTerm are the first's last entry, or the first's own index and logTerm when it
 *   has none), one MsgApp with both entry lists and the larger commit. It is a message the
 *   leader could have sent itself: its log holds those entries contiguously in this term.
 * - MsgAppResp + MsgAppResp (same term and sender, neither a rejection): the one with the larger
 *   index. An acknowledgement of index i in term t says the follower's log matches the leader's
 *   up to i, which later messages of the same leader never undo (it does not truncate its own
 *   entries), so the larger one implies the smaller.
 * - MsgProp + MsgProp (forwarded by the same member): one MsgProp with both entry lists, in order.
 *   The leader appends a proposal's entries together or drops them together (as it would drop
 *   either message); each proposer still waits on its own request id.
 *
 * Only messages that are adjacent in the sequence sent to one peer are merged: any other message
 * to that peer in between (a heartbeat, a vote, a rejection, a read-index request) stays between
 * them, so the order a peer sees is raft's order with some neighbours fused. Merging is bounded
 * by `maxSizeBytes` of entries per message (raft's maxSizePerMsg), so no merged message is much
 * larger than raft would have made. Raft tolerates lost, delayed and merged messages alike: what
 * a merge changes is how many messages carry the same facts, never which facts (Raft §5.3).
 */
import { type Entry, type Message, MessageType } from "../proto/gen/raftpb/raft.js";
import { entrySizeBytes } from "./entry-size.js";

interface Tail {
  /** position in the output of the last message to this peer */
  pos: number;
  /** the output message there was made here (its entries array is ours to push to) */
  owned: boolean;
  /** entrySizeBytes of its entries */
  bytes: number;
}

function entriesBytes(ents: readonly Entry[]): number {
  let s = 0;
  for (let i = 0; i < ents.length; i++) s += entrySizeBytes(ents[i]!);
  return s;
}

/** True when `b` continues `a` (both MsgApp): b's previous entry is a's last. */
function appendContinues(a: Message, b: Message): boolean {
  const last = a.entries[a.entries.length - 1];
  const lastIndex = last !== undefined ? last.index : a.index;
  const lastTerm = last !== undefined ? last.term : a.logTerm;
  return b.index === lastIndex && b.logTerm === lastTerm;
}

function plain(m: Message): boolean {
  return m.snapshot === undefined && !m.reject && m.rejectHint === 0 && m.context.length === 0;
}

/** Which rule (see the module comment) merges `b` into `a`, if any. */
function mergeKind(a: Message, b: Message): MessageType | undefined {
  if (a.type !== b.type || a.from !== b.from || a.term !== b.term) return undefined;
  if (!plain(a) || !plain(b)) return undefined;
  switch (b.type) {
    case MessageType.MsgApp:
      return appendContinues(a, b) ? b.type : undefined;
    case MessageType.MsgAppResp:
    case MessageType.MsgProp:
      return b.type;
    default:
      return undefined;
  }
}

/** Up to this many messages, coalesceMessages first looks for a merge pair-wise (no map). */
const SCAN_MAX_MESSAGES = 16;

/**
 * True when some message of `msgs` has a merge rule with the previous one to the same peer (the
 * size bound aside): when none has, coalescing leaves `msgs` as they are. A Ready with one
 * message per follower (a put of a lone client) is the common case; this answers it without
 * the map and the per-peer records of the full pass.
 */
function anyMergeable(msgs: readonly Message[]): boolean {
  for (let i = 1; i < msgs.length; i++) {
    const m = msgs[i]!;
    for (let j = i - 1; j >= 0; j--) {
      const a = msgs[j]!;
      if (a.to !== m.to) continue;
      if (mergeKind(a, m) !== undefined) return true;
      break;
    }
  }
  return false;
}

/**
 * Returns `msgs` with adjacent same-peer MsgApp, MsgAppResp and MsgProp messages merged (see the
 * module comment); the relative order of what is left is kept. Messages of `msgs` are not
 * modified (merged ones are new objects), but the result may share them and their entries.
 * `maxSizeBytes`: a merge whose entries would exceed it (entrySizeBytes) is not made.
 */
export function coalesceMessages(msgs: readonly Message[], maxSizeBytes: number): Message[] {
  if (msgs.length < 2 || (msgs.length <= SCAN_MAX_MESSAGES && !anyMergeable(msgs))) {
    return msgs.slice();
  }
  const out: Message[] = [];
  const tails = new Map<bigint, Tail>();
  for (const m of msgs) {
    const tail = tails.get(m.to);
    const a = tail !== undefined ? out[tail.pos]! : undefined;
    const kind = a !== undefined ? mergeKind(a, m) : undefined;
    if (tail === undefined || a === undefined || kind === undefined) {
      tails.set(m.to, { pos: out.length, owned: false, bytes: -1 });
      out.push(m);
      continue;
    }
    if (kind === MessageType.MsgAppResp) {
      if (m.index >= a.index) out[tail.pos] = m;
      tail.owned = false;
      continue;
    }
    if (tail.bytes < 0) tail.bytes = entriesBytes(a.entries);
    const addBytes = entriesBytes(m.entries);
    if (tail.bytes + addBytes > maxSizeBytes) {
      tails.set(m.to, { pos: out.length, owned: false, bytes: addBytes });
      out.push(m);
      continue;
    }
    let merged = a;
    if (!tail.owned) {
      merged = { ...a, entries: a.entries.slice() };
      out[tail.pos] = merged;
      tail.owned = true;
    }
    for (let i = 0; i < m.entries.length; i++) merged.entries.push(m.entries[i]!);
    if (m.commit > merged.commit) merged.commit = m.commit;
    tail.bytes += addBytes;
  }
  return out;
}
