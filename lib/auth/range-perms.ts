/**
 * A user's key permissions merged across its roles, as etcd 3.4's auth/range_perm_cache.go:
 * a permission with an empty range_end is the single key, range_end "\0" is every key from `key`
 * on, anything else is [key, range_end). A request for one key needs a permission interval that
 * holds the key; a request for a range needs the union of the intervals to cover the whole range
 * (etcd's adt IntervalTree.Contains), so two adjacent grants together allow a range that spans
 * both.
 *
 * Intervals are kept merged (sorted, disjoint, adjacent ones joined), so each check is a binary
 * search. `end` undefined means unbounded (etcd's BytesAffineComparable with empty bytes).
 */
import { Permission_Type, type Permission } from "../proto/gen/authpb/auth.js";

interface Interval {
  begin: Buffer;
  /** exclusive; undefined = no end */
  end: Buffer | undefined;
}

/** etcd's isOpenEnded: range_end "\0" means "to the end of the keyspace". */
export function isOpenEnded(rangeEnd: Uint8Array): boolean {
  return rangeEnd.length === 1 && rangeEnd[0] === 0;
}

const zero = Buffer.from([0]);

function intervalOf(key: Uint8Array, rangeEnd: Uint8Array): Interval {
  const begin = Buffer.from(key.buffer, key.byteOffset, key.byteLength);
  // a single key k is the interval [k, k + "\0"): the next key in byte order
  if (rangeEnd.length === 0) return { begin, end: Buffer.concat([begin, zero]) };
  if (isOpenEnded(rangeEnd)) return { begin, end: undefined };
  return { begin, end: Buffer.from(rangeEnd.buffer, rangeEnd.byteOffset, rangeEnd.byteLength) };
}

/** a < b for exclusive ends, undefined being +infinity */
function endLess(a: Buffer | undefined, b: Buffer | undefined): boolean {
  if (a === undefined) return false;
  if (b === undefined) return true;
  return Buffer.compare(a, b) < 0;
}

function merge(list: Interval[]): Interval[] {
  list.sort((a, b) => Buffer.compare(a.begin, b.begin));
  const out: Interval[] = [];
  for (const iv of list) {
    const last = out[out.length - 1];
    // contiguous when the next one starts at or before the current end (etcd's Contains)
    if (last !== undefined && (last.end === undefined || Buffer.compare(iv.begin, last.end) <= 0)) {
      if (endLess(last.end, iv.end)) last.end = iv.end;
      continue;
    }
    out.push({ begin: iv.begin, end: iv.end });
  }
  return out;
}

/** The last merged interval whose begin is <= key, or undefined. */
function floor(list: readonly Interval[], key: Buffer): Interval | undefined {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (Buffer.compare(list[mid]!.begin, key) <= 0) lo = mid + 1;
    else hi = mid;
  }
  return lo === 0 ? undefined : list[lo - 1];
}

/** One user's merged READ and WRITE intervals (etcd's unifiedRangePermissions). */
export class UnifiedRangePermissions {
  readonly #read: Interval[];
  readonly #write: Interval[];

  /** Merges every permission of every role given (roles the user names but that do not exist are skipped by the caller). */
  constructor(perms: Iterable<Permission>) {
    const read: Interval[] = [];
    const write: Interval[] = [];
    for (const p of perms) {
      const iv = intervalOf(p.key, p.rangeEnd);
      if (p.permType === Permission_Type.READ || p.permType === Permission_Type.READWRITE)
        read.push(iv);
      if (p.permType === Permission_Type.WRITE || p.permType === Permission_Type.READWRITE)
        write.push({ ...iv });
    }
    this.#read = merge(read);
    this.#write = merge(write);
  }

  /**
   * etcd's isRangeOpPermitted: with an empty `rangeEnd`, does a permission of `type` hold `key`;
   * otherwise do the permissions cover all of [key, rangeEnd) ("\0" = to the end).
   */
  allows(
    type: Permission_Type.READ | Permission_Type.WRITE,
    key: Uint8Array,
    rangeEnd: Uint8Array,
  ): boolean {
    const list = type === Permission_Type.READ ? this.#read : this.#write;
    const want = intervalOf(key, rangeEnd);
    const iv = floor(list, want.begin);
    if (iv === undefined) return false;
    // the merged interval that starts at or before the key must hold it ...
    if (iv.end !== undefined && Buffer.compare(want.begin, iv.end) >= 0) return false;
    // ... and, for a range, reach at least its end (merged intervals are disjoint and not adjacent)
    return rangeEnd.length === 0 || !endLess(iv.end, want.end);
  }
}
