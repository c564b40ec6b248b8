/**
 * Sizes of log entries, used by every byte-bounded limit in lib/raft (maxSizePerMsg,
 * maxCommittedSizePerReady, maxInflightBytes, maxUncommittedEntriesSize).
 */
import type { Entry } from "../proto/gen/raftpb/raft.js";

/** Per-entry framing overhead (type, term, index varints) counted on top of the payload, in bytes. */
export const entryOverheadBytes = 16;

/** Approximate encoded size of one entry in bytes (payload plus fixed overhead), as etcd's Entry.Size(). */
export function entrySizeBytes(e: Entry): number {
  return e.data.length + entryOverheadBytes;
}

/** Sum of payload bytes only: etcd counts uncommitted size by payload so empty entries cost nothing. */
export function payloadSizeBytes(ents: readonly Entry[]): number {
  let s = 0;
  for (let i = 0; i < ents.length; i++) s += ents[i]!.data.length;
  return s;
}

/**
 * Returns the longest prefix of `ents` whose total entrySizeBytes is at most `maxSizeBytes`, but
 * always at least one entry (etcd's limitSize: a single over-sized entry must still make progress).
 */
export function limitSize(ents: Entry[], maxSizeBytes: number): Entry[] {
  if (ents.length === 0) return ents;
  let size = entrySizeBytes(ents[0]!);
  let n = 1;
  for (; n < ents.length; n++) {
    size += entrySizeBytes(ents[n]!);
    if (size > maxSizeBytes) break;
  }
  return n === ents.length ? ents : ents.slice(0, n);
}
