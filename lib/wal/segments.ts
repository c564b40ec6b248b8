/**
 * Segment file names and selection (etcd v3.4 wal/util.go): `%016x-%016x.wal` is
 * `<sequence>-<index of the first entry the segment may hold>`; segments sort by name.
 */
import { readdirSync } from "node:fs";
import { readdir } from "node:fs/promises";
import { WalInvariantError } from "./errors.js";

/** A parsed segment name. */
export interface SegmentName {
  name: string;
  seq: number;
  index: number;
}

const NAME_RE = /^([0-9a-f]{16})-([0-9a-f]{16})\.wal$/;

function hex16(n: number): string {
  if (!Number.isSafeInteger(n) || n < 0)
    throw new WalInvariantError(`segment number out of range: ${n}`);
  return n.toString(16).padStart(16, "0");
}

/** The file name of segment `seq` whose first entry index is `index` (etcd walName). */
export function walName(seq: number, index: number): string {
  return `${hex16(seq)}-${hex16(index)}.wal`;
}

/** Parses a segment file name; null when it is not one (etcd parseWALName). */
export function parseWalName(name: string): SegmentName | null {
  const m = NAME_RE.exec(name);
  if (m === null) return null;
  const seq = parseInt(m[1]!, 16);
  const index = parseInt(m[2]!, 16);
  if (!Number.isSafeInteger(seq) || !Number.isSafeInteger(index)) return null;
  return { name, seq, index };
}

/**
 * Segment names in `dir`, sorted (etcd readWALNames + checkWalNames). Files that are not segments
 * are reported through `onIgnored`, except pipeline `.tmp` files, which are expected.
 */
export async function listSegments(
  dir: string,
  onIgnored?: (name: string) => void,
): Promise<SegmentName[]> {
  const names = (await readdir(dir)).sort();
  const out: SegmentName[] = [];
  for (const name of names) {
    const s = parseWalName(name);
    if (s !== null) out.push(s);
    else if (!name.endsWith(".tmp") && !name.endsWith(".broken")) onIgnored?.(name);
  }
  return out;
}

/** True when `dir` holds at least one `.wal` file (etcd wal.Exist). */
export function hasSegments(dir: string): boolean {
  try {
    return readdirSync(dir).some((n) => n.endsWith(".wal"));
  } catch {
    return false;
  }
}

/**
 * Position in `segs` of the last segment whose first index is <= `index`, i.e. the one that holds
 * the snapshot record for `index` (etcd searchIndex); -1 when none does.
 */
export function searchIndex(segs: SegmentName[], index: number): number {
  for (let i = segs.length - 1; i >= 0; i--) {
    if (index >= segs[i]!.index) return i;
  }
  return -1;
}

/**
 * First gap in the sequence numbers of `segs` (etcd isValidSeq): null when they are contiguous,
 * else the expected and the found sequence numbers.
 */
export function findSequenceGap(segs: SegmentName[]): { expected: number; found: number } | null {
  for (let i = 1; i < segs.length; i++) {
    if (segs[i]!.seq !== segs[i - 1]!.seq + 1)
      return { expected: segs[i - 1]!.seq + 1, found: segs[i]!.seq };
  }
  return null;
}
