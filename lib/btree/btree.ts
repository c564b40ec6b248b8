/**
 * A copy-on-write B-tree keyed by Buffer in byte order (Buffer.compare), with O(1) clone().
 *
 * Design follows google/btree's copy-on-write scheme (the in-memory index under etcd's mvcc):
 * every node carries an owner token; a tree may mutate a node in place only when the node's
 * token is the tree's own. clone() gives both trees fresh tokens, so every node that existed
 * before the clone is now owned by neither and is copied (along the touched root-to-leaf path
 * only) by whichever side writes first. Both trees then keep their own view indefinitely.
 *
 * Insertion splits full nodes on the way down and deletion grows thin children on the way down
 * (steal from a sibling or merge), as google/btree does, so each write is one root-to-leaf pass.
 *
 * Node shape, where `m = degree - 1` is the most keys a node holds:
 * - keys[i] < keys[i + 1] (strict, by Buffer.compare); values[i] belongs to keys[i];
 * - an internal node has keys.length + 1 children; children[i] holds keys strictly between
 *   keys[i - 1] and keys[i];
 * - every non-root node holds at least `floor((m - 1) / 2)` keys; all leaves are at one depth.
 */
import { BTreeInvalidDegreeError, BTreeInvariantError } from "./errors.js";

/**
 * Byte-order comparison of two keys: negative, zero or positive as Buffer.compare.
 * Measured on Node 20 (bench/btree.bench.ts): a JS byte loop costs ~2 ns per byte of shared
 * prefix, while Buffer.compare costs ~55-80 ns flat (a call into C++ plus argument checks).
 * So short keys are compared in JS and long ones by Buffer.compare (memcmp).
 */
function compare(a: Buffer, b: Buffer): number {
  const n = a.length < b.length ? a.length : b.length;
  if (n > jsCompareMaxBytes) return Buffer.compare(a, b);
  for (let i = 0; i < n; i++) {
    const x = a[i];
    const y = b[i];
    if (x !== y) return x < y ? -1 : 1;
  }
  return a.length - b.length;
}
/** Keys at most this long (the shorter of the pair) are compared byte by byte in JS. */
const jsCompareMaxBytes = 32;

/** Default `degree` (max children per node); 64 keeps nodes near a few cache lines of pointers. */
export const defaultBTreeDegree = 64;
const minDegree = 4;
const maxDegree = 1024;

/** Identity token for copy-on-write ownership; compared by reference only. */
type Owner = { readonly tag: "btree-owner" };
function newOwner(): Owner {
  return { tag: "btree-owner" };
}

class Node<V> {
  owner: Owner;
  keys: Buffer[];
  /** heads[i] = headOf(keys[i]): lets most compares skip dereferencing the key (cache misses). */
  heads: number[];
  values: V[];
  /** null for a leaf. */
  children: Node<V>[] | null;

  constructor(
    owner: Owner,
    keys: Buffer[],
    heads: number[],
    values: V[],
    children: Node<V>[] | null,
  ) {
    this.owner = owner;
    this.keys = keys;
    this.heads = heads;
    this.values = values;
    this.children = children;
  }

  /** This node if `owner` may write it, else a shallow copy that `owner` may write. */
  mutableFor(owner: Owner): Node<V> {
    if (this.owner === owner) return this;
    return new Node(
      owner,
      this.keys.slice(),
      this.heads.slice(),
      this.values.slice(),
      this.children === null ? null : this.children.slice(),
    );
  }
}

/** Bytes of a key packed into its head: 6 bytes = 48 bits, an exact double. */
const headBytes = 6;

/**
 * The first 6 bytes of `k` as a big-endian integer, missing bytes as 0. If headOf(a) <
 * headOf(b) then a < b in byte order (a shorter key padded with zeros never sorts after a key
 * it is a prefix of); equal heads decide nothing and fall back to a full compare. Heads live in
 * a per-node number array (unboxed doubles), so a binary search over keys that differ early
 * touches only that array, not each key's Buffer object and backing store.
 */
function headOf(k: Buffer): number {
  const n = k.length < headBytes ? k.length : headBytes;
  let h = 0;
  for (let i = 0; i < n; i++) h = h * 256 + k[i];
  for (let i = n; i < headBytes; i++) h *= 256;
  return h;
}

/** Index of `key` in node `n` if present, else `~insertionPoint` (a negative number). */
function search<V>(n: Node<V>, key: Buffer, head: number): number {
  const heads = n.heads;
  const keys = n.keys;
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const h = heads[mid];
    const c = h < head ? -1 : h > head ? 1 : compare(keys[mid], key);
    if (c < 0) lo = mid + 1;
    else if (c > 0) hi = mid;
    else return mid;
  }
  return ~lo;
}

/** Number of keys in node `n` that are < `key` (the first index whose key is >= `key`). */
function lowerBound<V>(n: Node<V>, key: Buffer, head: number): number {
  const heads = n.heads;
  const keys = n.keys;
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const h = heads[mid];
    if (h < head || (h === head && compare(keys[mid], key) < 0)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Callback of ascend/descend: return `false` to stop the walk early. */
export type BTreeVisitor<V> = (key: Buffer, value: V) => boolean | void;

/** Options of {@link BTree.entries}: the half-open range [gte, lt) and the direction. */
export interface BTreeEntriesOptions {
  gte?: Buffer;
  lt?: Buffer;
  reverse?: boolean;
}

/**
 * An ordered map from Buffer keys (byte order, as Buffer.compare) to values of type V, with an
 * O(1) copy-on-write clone().
 *
 * Keys are stored by reference, exactly as passed to set(): a caller must not mutate a key's
 * bytes after inserting it (the tree's order would silently break). Replacing the value of an
 * existing key keeps the key object first inserted. Mutating the tree inside an ascend/descend
 * callback or while an entries() iterator is live is not supported; iterate over a clone() if
 * you need to write while walking.
 */
export class BTree<V> {
  #root: Node<V>;
  #owner: Owner;
  #size = 0;
  readonly #degree: number;
  /** Most keys a node holds (degree - 1). */
  readonly #maxKeys: number;
  /** Fewest keys a non-root node holds. */
  readonly #minKeys: number;
  /** Out-parameters of #removeMax, kept on the tree to avoid a per-call allocation. */
  #movedKey: Buffer | undefined = undefined;
  #movedHead = 0;
  #movedValue: V | undefined = undefined;

  /**
   * @param options.degree max children per node, an integer in [4, 1024] (default 64).
   * @throws BTreeInvalidDegreeError for any other degree.
   */
  constructor(options?: { degree?: number }) {
    const degree = options?.degree ?? defaultBTreeDegree;
    if (!Number.isInteger(degree) || degree < minDegree || degree > maxDegree) {
      throw new BTreeInvalidDegreeError(degree);
    }
    this.#degree = degree;
    this.#maxKeys = degree - 1;
    this.#minKeys = (this.#maxKeys - 1) >>> 1;
    this.#owner = newOwner();
    this.#root = new Node<V>(this.#owner, [], [], [], null);
  }

  /** Number of keys in the tree. O(1). */
  get size(): number {
    return this.#size;
  }

  /** Max children per node, as configured. */
  get degree(): number {
    return this.#degree;
  }

  /** The value stored under `key`, or undefined. O(log n), no allocation. */
  get(key: Buffer): V | undefined {
    const head = headOf(key);
    let n = this.#root;
    for (;;) {
      const i = search(n, key, head);
      if (i >= 0) return n.values[i];
      if (n.children === null) return undefined;
      n = n.children[~i];
    }
  }

  /** Whether `key` is present. O(log n), no allocation. */
  has(key: Buffer): boolean {
    const head = headOf(key);
    let n = this.#root;
    for (;;) {
      const i = search(n, key, head);
      if (i >= 0) return true;
      if (n.children === null) return false;
      n = n.children[~i];
    }
  }

  /**
   * Inserts `key` -> `value`, or replaces the value of an existing key (keeping the stored key
   * object). Copies only the nodes on the root-to-leaf path that this tree does not own.
   * @returns the previous value, or undefined if the key was new.
   */
  set(key: Buffer, value: V): V | undefined {
    const owner = this.#owner;
    const maxKeys = this.#maxKeys;
    const head = headOf(key);
    let n = this.#root.mutableFor(owner);
    if (n.keys.length >= maxKeys) {
      // Split a full root first so the descent below never meets a full parent.
      const mid = maxKeys >>> 1;
      const midKey = n.keys[mid];
      const midHead = n.heads[mid];
      const midValue = n.values[mid];
      const right = splitOff(n, mid, owner);
      n = new Node<V>(owner, [midKey], [midHead], [midValue], [n, right]);
    }
    this.#root = n;
    for (;;) {
      let i = search(n, key, head);
      if (i >= 0) {
        const prev = n.values[i];
        n.values[i] = value;
        return prev;
      }
      i = ~i;
      const children = n.children;
      if (children === null) {
        n.keys.splice(i, 0, key);
        n.heads.splice(i, 0, head);
        n.values.splice(i, 0, value);
        this.#size++;
        return undefined;
      }
      let child = children[i];
      if (child.owner !== owner) {
        child = child.mutableFor(owner);
        children[i] = child;
      }
      if (child.keys.length >= maxKeys) {
        // Preemptive split (google/btree maybeSplitChild): the parent has room by construction.
        const mid = maxKeys >>> 1;
        const midKey = child.keys[mid];
        const midHead = child.heads[mid];
        const midValue = child.values[mid];
        const right = splitOff(child, mid, owner);
        n.keys.splice(i, 0, midKey);
        n.heads.splice(i, 0, midHead);
        n.values.splice(i, 0, midValue);
        children.splice(i + 1, 0, right);
        const c = midHead < head ? 1 : midHead > head ? -1 : compare(key, midKey);
        if (c === 0) {
          n.values[i] = value;
          return midValue;
        }
        if (c > 0) child = right;
      }
      n = child;
    }
  }

  /**
   * Removes `key`. A miss changes nothing (and copies nothing shared with a clone).
   * @returns the removed value, or undefined if the key was absent.
   */
  delete(key: Buffer): V | undefined {
    if (!this.has(key)) return undefined;
    const root = this.#root.mutableFor(this.#owner);
    this.#root = root;
    const removed = this.#remove(root, key, headOf(key));
    this.#size--;
    if (root.keys.length === 0 && root.children !== null) {
      // The root's last key merged down: its only child becomes the root (height shrinks).
      this.#root = root.children[0];
    }
    return removed;
  }

  /**
   * O(1) copy-on-write clone. The clone and this tree share every node; afterwards a write to
   * either copies only the path it touches, and each keeps its own view forever (google/btree
   * Clone). Clones of clones work the same way.
   */
  clone(): BTree<V> {
    const out = new BTree<V>({ degree: this.#degree });
    out.#root = this.#root;
    out.#size = this.#size;
    // Both sides get fresh tokens: no tree owns the shared nodes any more.
    this.#owner = newOwner();
    return out;
  }

  /**
   * Calls `fn` for every key in [gte, lt) in ascending order. Either bound may be undefined
   * (open). An empty or reversed range (gte >= lt) visits nothing. `fn` returning `false` stops.
   */
  ascend(gte: Buffer | undefined, lt: Buffer | undefined, fn: BTreeVisitor<V>): void {
    if (gte !== undefined && lt !== undefined && compare(gte, lt) >= 0) return;
    ascendNode(this.#root, gte, lt, fn);
  }

  /**
   * Calls `fn` for every key in [gte, lt) in descending order (largest first). Bounds and stop
   * rule as {@link ascend}.
   */
  descend(gte: Buffer | undefined, lt: Buffer | undefined, fn: BTreeVisitor<V>): void {
    if (gte !== undefined && lt !== undefined && compare(gte, lt) >= 0) return;
    descendNode(this.#root, gte, lt, fn);
  }

  /**
   * Lazy iterator over [gte, lt) as [key, value] pairs, ascending unless `reverse`. Uses an
   * explicit path stack (depth = tree height), not recursion.
   */
  *entries(opts?: BTreeEntriesOptions): IterableIterator<[Buffer, V]> {
    const gte = opts?.gte;
    const lt = opts?.lt;
    if (gte !== undefined && lt !== undefined && compare(gte, lt) >= 0) return;
    if (opts?.reverse === true) yield* descendingEntries(this.#root, gte, lt);
    else yield* ascendingEntries(this.#root, gte, lt);
  }

  /** The smallest key and its value, or undefined when empty. */
  min(): [Buffer, V] | undefined {
    if (this.#size === 0) return undefined;
    let n = this.#root;
    while (n.children !== null) n = n.children[0];
    return [n.keys[0], n.values[0]];
  }

  /** The largest key and its value, or undefined when empty. */
  max(): [Buffer, V] | undefined {
    if (this.#size === 0) return undefined;
    let n = this.#root;
    while (n.children !== null) n = n.children[n.children.length - 1];
    const last = n.keys.length - 1;
    return [n.keys[last], n.values[last]];
  }

  /**
   * Number of keys in [gte, lt) (bounds as {@link ascend}). Subtrees wholly inside the range are
   * counted by node sizes, so the cost is O(log n + k / degree) node visits, not O(k) compares.
   */
  count(gte: Buffer | undefined, lt: Buffer | undefined): number {
    if (gte === undefined && lt === undefined) return this.#size;
    if (gte !== undefined && lt !== undefined && compare(gte, lt) >= 0) return 0;
    return countNode(this.#root, gte, lt);
  }

  /**
   * Walks the whole tree and checks every structural invariant (order, node fill, uniform leaf
   * depth, child counts, size). For tests and debugging: O(n).
   * @throws BTreeInvariantError naming the first broken invariant.
   */
  checkInvariants(): void {
    let leafDepth = -1;
    let total = 0;
    const visit = (
      n: Node<V>,
      depth: number,
      lo: Buffer | undefined,
      hi: Buffer | undefined,
      isRoot: boolean,
    ): void => {
      const k = n.keys.length;
      for (let i = 0; i < k; i++) {
        if (n.heads[i] !== headOf(n.keys[i])) throw new BTreeInvariantError(`stale head at ${i}`);
      }
      if (n.heads.length !== k || n.values.length !== k)
        throw new BTreeInvariantError(`values.length ${n.values.length} != keys.length ${k}`);
      if (k > this.#maxKeys)
        throw new BTreeInvariantError(`node has ${k} keys > max ${this.#maxKeys}`);
      if (!isRoot && k < this.#minKeys)
        throw new BTreeInvariantError(`node has ${k} keys < min ${this.#minKeys}`);
      if (isRoot && k === 0 && n.children !== null)
        throw new BTreeInvariantError("empty internal root");
      for (let i = 0; i < k; i++) {
        if (i > 0 && compare(n.keys[i - 1], n.keys[i]) >= 0)
          throw new BTreeInvariantError(`keys out of order at ${i}`);
        if (lo !== undefined && compare(n.keys[i], lo) <= 0)
          throw new BTreeInvariantError("key <= separator on the left");
        if (hi !== undefined && compare(n.keys[i], hi) >= 0)
          throw new BTreeInvariantError("key >= separator on the right");
      }
      total += k;
      if (n.children === null) {
        if (leafDepth === -1) leafDepth = depth;
        else if (leafDepth !== depth)
          throw new BTreeInvariantError(`leaf at depth ${depth}, expected ${leafDepth}`);
        return;
      }
      if (n.children.length !== k + 1)
        throw new BTreeInvariantError(`${n.children.length} children for ${k} keys`);
      for (let i = 0; i <= k; i++) {
        visit(
          n.children[i],
          depth + 1,
          i === 0 ? lo : n.keys[i - 1],
          i === k ? hi : n.keys[i],
          false,
        );
      }
    };
    visit(this.#root, 0, undefined, undefined, true);
    if (total !== this.#size)
      throw new BTreeInvariantError(`size ${this.#size} != ${total} keys found`);
  }

  /**
   * Removes `key` from the subtree at `n` (which this tree owns and which has more than the
   * minimum keys, unless it is the root). The key is known to be present.
   */
  #remove(n: Node<V>, key: Buffer, head: number): V {
    for (;;) {
      let i = search(n, key, head);
      const found = i >= 0;
      if (!found) i = ~i;
      const children = n.children;
      if (children === null) {
        if (!found)
          throw new BTreeInvariantError("delete: key vanished between lookup and removal");
        const value = n.values[i];
        n.keys.splice(i, 1);
        n.heads.splice(i, 1);
        n.values.splice(i, 1);
        return value;
      }
      if (children[i].keys.length <= this.#minKeys) {
        // Top-down fix (google/btree growChildAndRemove): make the child roomy, then retry here
        // because stealing or merging moved keys across this node.
        this.#growChild(n, i);
        continue;
      }
      const child = this.#mutableChild(n, i);
      if (found) {
        // Replace the separator with its predecessor, the largest key of the left subtree.
        const value = n.values[i];
        this.#removeMax(child);
        n.keys[i] = this.#movedKey as Buffer;
        n.heads[i] = this.#movedHead;
        n.values[i] = this.#movedValue as V;
        this.#movedKey = undefined;
        this.#movedValue = undefined;
        return value;
      }
      n = child;
    }
  }

  /** Removes the largest key under `n` (owned, roomy) into #movedKey / #movedValue. */
  #removeMax(n: Node<V>): void {
    for (;;) {
      const children = n.children;
      if (children === null) {
        this.#movedKey = n.keys.pop();
        this.#movedHead = n.heads.pop() as number;
        this.#movedValue = n.values.pop();
        return;
      }
      const i = n.keys.length;
      if (children[i].keys.length <= this.#minKeys) {
        this.#growChild(n, i);
        continue;
      }
      n = this.#mutableChild(n, i);
    }
  }

  /** children[i] of owned `n`, copied first if this tree does not own it. */
  #mutableChild(n: Node<V>, i: number): Node<V> {
    const children = n.children as Node<V>[];
    let c = children[i];
    if (c.owner !== this.#owner) {
      c = c.mutableFor(this.#owner);
      children[i] = c;
    }
    return c;
  }

  /** Gives children[i] of owned `n` more than the minimum: steal from a sibling, else merge. */
  #growChild(n: Node<V>, i: number): void {
    const children = n.children as Node<V>[];
    const minKeys = this.#minKeys;
    if (i > 0 && children[i - 1].keys.length > minKeys) {
      const child = this.#mutableChild(n, i);
      const left = this.#mutableChild(n, i - 1);
      child.keys.unshift(n.keys[i - 1]);
      child.heads.unshift(n.heads[i - 1]);
      child.values.unshift(n.values[i - 1]);
      n.keys[i - 1] = left.keys.pop() as Buffer;
      n.heads[i - 1] = left.heads.pop() as number;
      n.values[i - 1] = left.values.pop() as V;
      if (left.children !== null)
        (child.children as Node<V>[]).unshift(left.children.pop() as Node<V>);
      return;
    }
    if (i < n.keys.length && children[i + 1].keys.length > minKeys) {
      const child = this.#mutableChild(n, i);
      const right = this.#mutableChild(n, i + 1);
      child.keys.push(n.keys[i]);
      child.heads.push(n.heads[i]);
      child.values.push(n.values[i]);
      n.keys[i] = right.keys.shift() as Buffer;
      n.heads[i] = right.heads.shift() as number;
      n.values[i] = right.values.shift() as V;
      if (right.children !== null)
        (child.children as Node<V>[]).push(right.children.shift() as Node<V>);
      return;
    }
    // Both siblings are thin: merge children[j] + separator + children[j + 1] into one node.
    const j = i >= n.keys.length ? i - 1 : i;
    const child = this.#mutableChild(n, j);
    const sibling = children[j + 1]; // only read, so it need not be owned
    child.keys.push(n.keys[j], ...sibling.keys);
    child.heads.push(n.heads[j], ...sibling.heads);
    child.values.push(n.values[j], ...sibling.values);
    if (child.children !== null) child.children.push(...(sibling.children as Node<V>[]));
    n.keys.splice(j, 1);
    n.heads.splice(j, 1);
    n.values.splice(j, 1);
    children.splice(j + 1, 1);
    if (child.keys.length > this.#maxKeys)
      throw new BTreeInvariantError(`merge overfilled a node (${child.keys.length})`);
  }
}

/** Moves keys (and children) after index `mid` of owned `n` into a new right sibling. */
function splitOff<V>(n: Node<V>, mid: number, owner: Owner): Node<V> {
  const right = new Node<V>(
    owner,
    n.keys.slice(mid + 1),
    n.heads.slice(mid + 1),
    n.values.slice(mid + 1),
    n.children === null ? null : n.children.slice(mid + 1),
  );
  n.keys.length = mid;
  n.heads.length = mid;
  n.values.length = mid;
  if (n.children !== null) n.children.length = mid + 1;
  return right;
}

/**
 * In-order walk of [gte, lt) under `n`. Keys with index in [lo, hi) of this node are in range;
 * children lo..hi may hold keys in range, and only children lo and hi need the bounds.
 * Returns false when `fn` asked to stop.
 */
function ascendNode<V>(
  n: Node<V>,
  gte: Buffer | undefined,
  lt: Buffer | undefined,
  fn: BTreeVisitor<V>,
): boolean {
  const keys = n.keys;
  const values = n.values;
  let lo = 0;
  let skipFirstChild = false;
  if (gte !== undefined) {
    lo = search(n, gte, headOf(gte));
    // gte equals keys[lo]: children[lo] holds only smaller keys.
    if (lo >= 0) skipFirstChild = true;
    else lo = ~lo;
  }
  const hi = lt === undefined ? keys.length : lowerBound(n, lt, headOf(lt));
  const children = n.children;
  if (children === null) {
    for (let i = lo; i < hi; i++) {
      if (fn(keys[i], values[i]) === false) return false;
    }
    return true;
  }
  for (let i = lo; i <= hi; i++) {
    if (!(i === lo && skipFirstChild)) {
      if (!ascendNode(children[i], i === lo ? gte : undefined, i === hi ? lt : undefined, fn))
        return false;
    }
    if (i < hi && fn(keys[i], values[i]) === false) return false;
  }
  return true;
}

/** Reverse in-order walk of [gte, lt) under `n`; mirror of ascendNode. */
function descendNode<V>(
  n: Node<V>,
  gte: Buffer | undefined,
  lt: Buffer | undefined,
  fn: BTreeVisitor<V>,
): boolean {
  const keys = n.keys;
  const values = n.values;
  let lo = 0;
  let skipLastChild = false;
  if (gte !== undefined) {
    lo = search(n, gte, headOf(gte));
    if (lo >= 0) skipLastChild = true;
    else lo = ~lo;
  }
  const hi = lt === undefined ? keys.length : lowerBound(n, lt, headOf(lt));
  const children = n.children;
  if (children === null) {
    for (let i = hi - 1; i >= lo; i--) {
      if (fn(keys[i], values[i]) === false) return false;
    }
    return true;
  }
  for (let i = hi; i >= lo; i--) {
    if (!(i === lo && skipLastChild)) {
      if (!descendNode(children[i], i === lo ? gte : undefined, i === hi ? lt : undefined, fn))
        return false;
    }
    if (i > lo && fn(keys[i - 1], values[i - 1]) === false) return false;
  }
  return true;
}

/** Keys under `n` in [gte, lt); whole subtrees inside the range are summed without compares. */
function countNode<V>(n: Node<V>, gte: Buffer | undefined, lt: Buffer | undefined): number {
  if (gte === undefined && lt === undefined) return countAll(n);
  const keys = n.keys;
  let lo = 0;
  let skipFirstChild = false;
  if (gte !== undefined) {
    lo = search(n, gte, headOf(gte));
    if (lo >= 0) skipFirstChild = true;
    else lo = ~lo;
  }
  const hi = lt === undefined ? keys.length : lowerBound(n, lt, headOf(lt));
  let total = hi > lo ? hi - lo : 0;
  const children = n.children;
  if (children === null) return total;
  for (let i = lo; i <= hi; i++) {
    if (i === lo && skipFirstChild) continue;
    total += countNode(children[i], i === lo ? gte : undefined, i === hi ? lt : undefined);
  }
  return total;
}

function countAll<V>(n: Node<V>): number {
  let total = n.keys.length;
  const children = n.children;
  if (children !== null) {
    for (let i = 0; i < children.length; i++) total += countAll(children[i]);
  }
  return total;
}

/** Ascending iterator over [gte, lt) with an explicit stack of (node, next key index). */
function* ascendingEntries<V>(
  root: Node<V>,
  gte: Buffer | undefined,
  lt: Buffer | undefined,
): Generator<[Buffer, V]> {
  const nodes: Node<V>[] = [];
  const idx: number[] = [];
  // Descend to the first key >= gte. Entry (n, i) means: next yield n.keys[i], then walk
  // children[i + 1] from its leftmost key.
  const gteHead = gte === undefined ? 0 : headOf(gte);
  let n: Node<V> | null = root;
  while (n !== null) {
    let i = 0;
    let found = false;
    if (gte !== undefined) {
      i = search(n, gte, gteHead);
      found = i >= 0;
      if (!found) i = ~i;
    }
    nodes.push(n);
    idx.push(i);
    n = found || n.children === null ? null : n.children[i];
  }
  while (nodes.length > 0) {
    const top = nodes.length - 1;
    const node = nodes[top];
    const i = idx[top];
    if (i >= node.keys.length) {
      nodes.pop();
      idx.pop();
      continue;
    }
    const key = node.keys[i];
    if (lt !== undefined && compare(key, lt) >= 0) return;
    idx[top] = i + 1;
    // Push the leftmost path of the next child before yielding so the state is consistent.
    if (node.children !== null) {
      let c: Node<V> | null = node.children[i + 1];
      while (c !== null) {
        nodes.push(c);
        idx.push(0);
        c = c.children === null ? null : c.children[0];
      }
    }
    yield [key, node.values[i]];
  }
}

/** Descending iterator over [gte, lt). Entry (n, i) means: next yield n.keys[i - 1]. */
function* descendingEntries<V>(
  root: Node<V>,
  gte: Buffer | undefined,
  lt: Buffer | undefined,
): Generator<[Buffer, V]> {
  const nodes: Node<V>[] = [];
  const idx: number[] = [];
  const ltHead = lt === undefined ? 0 : headOf(lt);
  let n: Node<V> | null = root;
  while (n !== null) {
    const i: number = lt === undefined ? n.keys.length : lowerBound(n, lt, ltHead);
    nodes.push(n);
    idx.push(i);
    n = n.children === null ? null : n.children[i];
  }
  while (nodes.length > 0) {
    const top = nodes.length - 1;
    const node = nodes[top];
    const i = idx[top];
    if (i <= 0) {
      nodes.pop();
      idx.pop();
      continue;
    }
    const key = node.keys[i - 1];
    if (gte !== undefined && compare(key, gte) < 0) return;
    idx[top] = i - 1;
    if (node.children !== null) {
      let c: Node<V> | null = node.children[i - 1];
      while (c !== null) {
        nodes.push(c);
        idx.push(c.keys.length);
        c = c.children === null ? null : c.children[c.keys.length];
      }
    }
    yield [key, node.values[i - 1]];
  }
}
