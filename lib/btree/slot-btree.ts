/**
 * An ordered set of slots (non-negative int32 ids) kept in the byte order of the keys they stand
 * for, in typed arrays: a B+tree whose nodes hold no per-key objects.
 *
 * Why (issue 13, memory at scale): the generic BTree<V> holds a Buffer key object (~96 bytes on
 * Node 20's 64-bit heap) and a pointer to a value object per key; at 1M keys the key index and its
 * per-key objects were ~250 bytes of V8 heap per key. Here a key costs one Float64 head and one
 * Int32 slot in a node (12 bytes, nodes mostly full), and the key bytes stay wherever the owner
 * keeps them (lib/mvcc keeps them in its key arena), reached through SlotKeys only when two heads
 * tie.
 *
 * Shape, with `cap` = nodeCapacity:
 * - a leaf holds up to `cap` entries (head, slot) in strictly ascending key order, and links to the
 *   next leaf (`next`), so a range walk moves leaf to leaf without climbing;
 * - an inner node holds up to `cap` children; separator i (1 <= i < children) is the first entry
 *   of child i's subtree (B+tree: every entry is in a leaf; separators are copies);
 * - all leaves are at one depth; every node but the root holds at least one entry.
 * Keys only enter (insert) or the whole tree is rebuilt (SlotBTree.build, O(n)): the owner (mvcc)
 * drops keys only at compaction, where it rebuilds. A split puts the new entry in a fresh right
 * node when it goes after every entry of the full node, so ascending inserts (a sequential load)
 * leave full nodes behind, as bbolt's fill percent does for etcd's sequential keys.
 */
import { BTreeInvalidDegreeError, BTreeInvariantError } from "./errors.js";

/** How the tree reaches the key bytes of a slot (the tree never stores them). */
export interface SlotKeys {
  /** Byte-order comparison (as Buffer.compare) of the key of `slot` with key[start, end). */
  compare(slot: number, key: Uint8Array, start: number, end: number): number;
  /** headOfKey(key of `slot`). */
  head(slot: number): number;
  /** The key bytes of `slot` (a view is fine); for checks only, not on hot paths. */
  key(slot: number): Uint8Array;
}

/** Bytes of a key packed into its head: 6 bytes = 48 bits, an exact double. */
const headBytes = 6;

/**
 * The first 6 bytes of `k` as a big-endian integer, missing bytes as 0. If headOfKey(a) <
 * headOfKey(b) then a < b in byte order (a shorter key padded with zeros never sorts after a key
 * it is a prefix of); equal heads decide nothing. Heads live in the nodes' Float64Arrays, so a
 * search over keys that differ early reads only those, not the keys (cache misses).
 */
export function headOfKey(k: Uint8Array, start = 0, end = k.length): number {
  const len = end - start;
  const n = len < headBytes ? len : headBytes;
  let h = 0;
  for (let i = 0; i < n; i++) h = h * 256 + k[start + i]!;
  for (let i = n; i < headBytes; i++) h *= 256;
  return h;
}

/** SlotBTree.builder's: add slots in ascending key order, then finish() once. */
export interface SlotBTreeBuilder {
  add(slot: number): void;
  finish(): SlotBTree;
}

/** Default entries (leaf) or children (inner) per node: 12 bytes an entry, ~1.5 KiB a node. */
export const defaultSlotNodeCapacity = 128;
const minCapacity = 4;
const maxCapacity = 4096;

/**
 * Where a tree's nodes get their memory: `take(bytes)` returns zeroed memory as a buffer and the
 * offset in it (`takenOffset`, 8-byte aligned), never freed on its own (lib/mvcc passes its record
 * log's slabs, so a node costs no ArrayBuffer and backing store of its own).
 */
export interface SlotNodeMemory {
  take(bytes: number): ArrayBuffer;
  readonly takenOffset: number;
}

/** Options of SlotBTree. */
export interface SlotBTreeOptions {
  /** entries per leaf and children per inner node, an integer in [4, 4096] (default 128) */
  nodeCapacity?: number;
  /** where nodes get their memory (default: one ArrayBuffer per node) */
  memory?: SlotNodeMemory;
}

class SlotNode {
  /** entries (leaf) or children (inner) held */
  n = 0;
  /** leaf: entry heads; inner: heads[i] is separator i's (heads[0] unused) */
  readonly heads: Float64Array;
  readonly slots: Int32Array;
  /** null for a leaf */
  readonly children: SlotNode[] | null;
  /** the next leaf in key order (leaves only) */
  next: SlotNode | null = null;

  constructor(cap: number, leaf: boolean, memory: SlotNodeMemory | undefined) {
    // heads and slots side by side in one piece of memory
    const bytes = cap * 12;
    const mem = memory === undefined ? new ArrayBuffer(bytes) : memory.take(bytes);
    const at = memory === undefined ? 0 : memory.takenOffset;
    this.heads = new Float64Array(mem, at, cap);
    this.slots = new Int32Array(mem, at + cap * 8, cap);
    this.children = leaf ? null : [];
  }
}

/**
 * An ordered set of slots by key bytes (see the module comment). Not copy-on-write: a caller that
 * needs a point-in-time view keeps its own (lib/mvcc's snapshots read its append-only record log).
 * Mutating the tree inside an ascend() callback is not supported.
 */
export class SlotBTree {
  readonly #keys: SlotKeys;
  readonly #cap: number;
  readonly #memory: SlotNodeMemory | undefined;
  #root: SlotNode;
  #size = 0;
  /** Path of the last descent: nodes and child indexes (depth-bounded, reused). */
  readonly #pathNodes: SlotNode[] = [];
  readonly #pathIdx: number[] = [];

  /**
   * @param keys how to reach a slot's key bytes
   * @param options see SlotBTreeOptions
   * @throws BTreeInvalidDegreeError for a node capacity outside [4, 4096].
   */
  constructor(keys: SlotKeys, options?: SlotBTreeOptions) {
    const cap = options?.nodeCapacity ?? defaultSlotNodeCapacity;
    if (!Number.isInteger(cap) || cap < minCapacity || cap > maxCapacity) {
      throw new BTreeInvalidDegreeError(cap);
    }
    this.#keys = keys;
    this.#cap = cap;
    this.#memory = options?.memory;
    this.#root = this.#node(true);
  }

  #node(leaf: boolean): SlotNode {
    return new SlotNode(this.#cap, leaf, this.#memory);
  }

  /**
   * A tree holding `slots`, which must be in strictly ascending key order, in full nodes. O(n).
   * @throws BTreeInvariantError when two neighbours are not in ascending order.
   */
  static build(keys: SlotKeys, slots: ArrayLike<number>, options?: SlotBTreeOptions): SlotBTree {
    const count = slots.length;
    const heads = new Float64Array(count);
    const ordered = new Int32Array(count);
    let prevHead = 0;
    for (let i = 0; i < count; i++) {
      const s = slots[i]!;
      const h = keys.head(s);
      const outOfOrder =
        i > 0 &&
        (h < prevHead ||
          (h === prevHead && keys.compare(slots[i - 1]!, keys.key(s), 0, keys.key(s).length) >= 0));
      if (outOfOrder) throw new BTreeInvariantError(`build: slots out of key order at ${i}`);
      prevHead = h;
      heads[i] = h;
      ordered[i] = s;
    }
    const t = new SlotBTree(keys, options);
    t.#fill(heads, ordered);
    return t;
  }

  /**
   * A tree with this tree's entries in full nodes (no key is read: the heads are in the leaves),
   * its nodes from `options.memory`; this tree is left as it is. A tree filled by inserts in
   * random order is ~70 % full; this packs it. O(n).
   */
  repacked(options?: SlotBTreeOptions): SlotBTree {
    const heads = new Float64Array(this.#size);
    const slots = new Int32Array(this.#size);
    let at = 0;
    let leaf: SlotNode | null = firstEntryOf(this.#root);
    for (; leaf !== null; leaf = leaf.next) {
      heads.set(leaf.heads.subarray(0, leaf.n), at);
      slots.set(leaf.slots.subarray(0, leaf.n), at);
      at += leaf.n;
    }
    const t = new SlotBTree(this.#keys, { nodeCapacity: this.#cap, ...options });
    t.#fill(heads, slots);
    return t;
  }

  /** Replaces the contents with entries (heads[i], slots[i]) already in key order, nodes full. */
  #fill(heads: Float64Array, slots: Int32Array): void {
    const cap = this.#cap;
    const count = slots.length;
    const spine = new InnerSpine(cap, () => this.#node(false));
    let prev: SlotNode | null = null;
    for (let at = 0; at < count; at += cap) {
      const leaf = this.#node(true);
      const end = Math.min(count, at + cap);
      leaf.heads.set(heads.subarray(at, end));
      leaf.slots.set(slots.subarray(at, end));
      leaf.n = end - at;
      if (prev !== null) prev.next = leaf;
      prev = leaf;
      spine.add(leaf);
    }
    this.#size = count;
    this.#root = spine.root() ?? this.#node(true);
  }

  /**
   * Builds a tree one slot at a time, in ascending key order, in full nodes: SlotBTree.build for a
   * caller that finds the slots over many calls (lib/mvcc's stepped compaction), with nothing
   * copied at the end. add() is O(1) amortized (a full leaf goes into the inner levels at once);
   * finish() is O(height). add() throws BTreeInvariantError when a key's head is below the
   * previous one's (equal heads are not compared: checkInvariants does that).
   */
  static builder(keys: SlotKeys, options?: SlotBTreeOptions): SlotBTreeBuilder {
    const t = new SlotBTree(keys, options);
    const cap = t.#cap;
    const spine = new InnerSpine(cap, () => t.#node(false));
    let leaf: SlotNode | null = null;
    let count = 0;
    let prevHead = 0;
    return {
      add(slot: number): void {
        const h = keys.head(slot);
        if (h < prevHead) throw new BTreeInvariantError(`builder: slot ${slot} out of key order`);
        prevHead = h;
        const fresh = leaf === null || leaf.n === cap;
        if (fresh) {
          const next = t.#node(true);
          if (leaf !== null) leaf.next = next;
          leaf = next;
        }
        leaf!.heads[leaf!.n] = h;
        leaf!.slots[leaf!.n] = slot;
        leaf!.n++;
        count++;
        // into the inner levels once it has its first entry (its separator)
        if (fresh) spine.add(leaf!);
      },
      finish(): SlotBTree {
        t.#size = count;
        t.#root = spine.root() ?? t.#root;
        return t;
      },
    };
  }

  /** Slots held. O(1). */
  get size(): number {
    return this.#size;
  }

  /** Levels of nodes (1: the root is a leaf). O(height). */
  get height(): number {
    let h = 1;
    for (let n = this.#root; n.children !== null; n = n.children[0]!) h++;
    return h;
  }

  /** The slot whose key equals key[start, end), or -1. O(log n), no allocation. */
  find(key: Uint8Array, start = 0, end = key.length): number {
    const head = headOfKey(key, start, end);
    let n = this.#root;
    while (n.children !== null) n = n.children[this.#childIndex(n, key, start, end, head)]!;
    let lo = 0;
    let hi = n.n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const c = this.#cmp(n, mid, key, start, end, head);
      if (c < 0) lo = mid + 1;
      else if (c > 0) hi = mid;
      else return n.slots[mid]!;
    }
    return -1;
  }

  /**
   * Adds `slot` for `key`, which must not be present (find() first) and must be the key the
   * SlotKeys resolve for `slot`. O(log n).
   * @throws BTreeInvariantError when `key` is present already.
   */
  insert(key: Uint8Array, slot: number): void {
    const size = this.#size;
    this.insertOrFind(key, slot);
    if (this.#size === size) throw new BTreeInvariantError("insert: key already present");
  }

  /**
   * The slot of `key` if present (nothing changes); else adds `slot` for it, in one descent, and
   * returns `slot`. The SlotKeys need not resolve `slot` yet: a slot being added is never read
   * while it is inserted, so a caller can insert the next free slot and then record its key.
   * The key is key[start, end). O(log n).
   */
  insertOrFind(key: Uint8Array, slot: number, start = 0, end = key.length): number {
    const got = this.#insertOrFind(key, slot, start, end);
    // the path must not keep nodes alive (a repacked tree's old ones)
    this.#pathNodes.length = 0;
    return got;
  }

  #insertOrFind(key: Uint8Array, slot: number, start: number, end: number): number {
    const head = headOfKey(key, start, end);
    const nodes = this.#pathNodes;
    const idx = this.#pathIdx;
    nodes.length = 0;
    idx.length = 0;
    let n = this.#root;
    while (n.children !== null) {
      const c = this.#childIndex(n, key, start, end, head);
      nodes.push(n);
      idx.push(c);
      n = n.children[c]!;
    }
    const pos = this.#lowerBound(n, key, start, end, head);
    if (pos < n.n && this.#cmp(n, pos, key, start, end, head) === 0) return n.slots[pos]!;
    this.#size++;
    if (n.n < this.#cap) {
      insertEntry(n, pos, head, slot);
      return slot;
    }
    // Full leaf: split, then push the right half's first entry up as its separator.
    let right = this.#split(n, pos);
    if (right.n === 0) insertEntry(right, 0, head, slot);
    else if (pos <= n.n) insertEntry(n, pos, head, slot);
    else insertEntry(right, pos - n.n, head, slot);
    right.next = n.next;
    n.next = right;
    let sepHead = right.heads[0]!;
    let sepSlot = right.slots[0]!;
    for (let d = nodes.length - 1; d >= 0; d--) {
      const parent = nodes[d]!;
      const at = idx[d]! + 1; // the new child goes right after the one that split
      if (parent.n < this.#cap) {
        insertChild(parent, at, sepHead, sepSlot, right);
        return slot;
      }
      const upRight = this.#split(parent, at);
      // inner split: upRight's first child's separator (heads[0]) moves up
      if (upRight.n === 0) insertChild(upRight, 0, sepHead, sepSlot, right);
      else if (at <= parent.n) insertChild(parent, at, sepHead, sepSlot, right);
      else insertChild(upRight, at - parent.n, sepHead, sepSlot, right);
      sepHead = upRight.heads[0]!;
      sepSlot = upRight.slots[0]!;
      right = upRight;
    }
    // The root split: a new root above the two halves.
    const root = this.#node(false);
    root.children!.push(this.#root, right);
    root.heads[1] = sepHead;
    root.slots[1] = sepSlot;
    root.n = 2;
    this.#root = root;
    return slot;
  }

  /**
   * Calls `fn(slot)` for every key in [gte, lt) in ascending order; either bound may be undefined
   * (open). `fn` returning false stops the walk.
   */
  ascend(
    gte: Uint8Array | undefined,
    lt: Uint8Array | undefined,
    fn: (slot: number) => boolean | void,
  ): void {
    let n = this.#root;
    let i = 0;
    if (gte === undefined) {
      while (n.children !== null) n = n.children[0]!;
    } else {
      const head = headOfKey(gte);
      const end = gte.length;
      while (n.children !== null) n = n.children[this.#childIndex(n, gte, 0, end, head)]!;
      i = this.#lowerBound(n, gte, 0, end, head);
    }
    const ltHead = lt === undefined ? 0 : headOfKey(lt);
    for (let leaf: SlotNode | null = n; leaf !== null; leaf = leaf.next, i = 0) {
      const count = leaf.n;
      for (; i < count; i++) {
        if (lt !== undefined && this.#cmp(leaf, i, lt, 0, lt.length, ltHead) >= 0) return;
        if (fn(leaf.slots[i]!) === false) return;
      }
    }
  }

  /**
   * Walks the whole tree and checks every invariant (key order within and across nodes, heads,
   * separators, uniform leaf depth, fill, the leaf chain, size). For tests: O(n).
   * @throws BTreeInvariantError naming the first broken one.
   */
  checkInvariants(): void {
    const keys = this.#keys;
    const leaves: SlotNode[] = [];
    let leafDepth = -1;
    let total = 0;
    const visit = (n: SlotNode, depth: number, isRoot: boolean): void => {
      if (n.n > this.#cap) throw new BTreeInvariantError(`node holds ${n.n} > ${this.#cap}`);
      if (!isRoot && n.n < 1) throw new BTreeInvariantError("empty non-root node");
      if (n.children === null) {
        if (leafDepth === -1) leafDepth = depth;
        else if (leafDepth !== depth) throw new BTreeInvariantError(`leaf at depth ${depth}`);
        for (let i = 0; i < n.n; i++) {
          if (n.heads[i] !== keys.head(n.slots[i]!)) throw new BTreeInvariantError("stale head");
        }
        leaves.push(n);
        total += n.n;
        return;
      }
      if (n.children.length !== n.n) throw new BTreeInvariantError("children count != n");
      if (isRoot && n.n < 2) throw new BTreeInvariantError("inner root with one child");
      for (let i = 0; i < n.n; i++) {
        const child = n.children[i]!;
        if (i > 0) {
          const first = firstEntryOf(child);
          if (first.slots[0] !== n.slots[i] || first.heads[0] !== n.heads[i]) {
            throw new BTreeInvariantError(`separator ${i} is not its child's first entry`);
          }
        }
        visit(child, depth + 1, false);
      }
    };
    visit(this.#root, 0, true);
    if (total !== this.#size) throw new BTreeInvariantError(`size ${this.#size} != ${total}`);
    let prevKey: Uint8Array | undefined;
    for (let l = 0; l < leaves.length; l++) {
      const leaf = leaves[l]!;
      if (leaf.next !== (leaves[l + 1] ?? null)) throw new BTreeInvariantError("leaf chain broken");
      for (let i = 0; i < leaf.n; i++) {
        const k = keys.key(leaf.slots[i]!);
        if (prevKey !== undefined && Buffer.compare(prevKey, k) >= 0) {
          throw new BTreeInvariantError("keys out of order");
        }
        prevKey = k;
      }
    }
  }

  /** Compares entry i of node n (leaf entry or inner separator) with key[start, end). */
  #cmp(n: SlotNode, i: number, key: Uint8Array, start: number, end: number, head: number): number {
    const h = n.heads[i]!;
    return h < head ? -1 : h > head ? 1 : this.#keys.compare(n.slots[i]!, key, start, end);
  }

  /** First index of leaf `n` whose key is >= key[start, end) (n.n if none). */
  #lowerBound(n: SlotNode, key: Uint8Array, start: number, end: number, head: number): number {
    let lo = 0;
    let hi = n.n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#cmp(n, mid, key, start, end, head) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** The child of inner node `n` whose subtree would hold key[start, end): the last separator <= it. */
  #childIndex(n: SlotNode, key: Uint8Array, start: number, end: number, head: number): number {
    let lo = 1;
    let hi = n.n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#cmp(n, mid, key, start, end, head) <= 0) lo = mid + 1;
      else hi = mid;
    }
    return lo - 1;
  }

  /**
   * Moves the upper part of full node `n` into a new right sibling and returns it. `pos` is where
   * the pending entry or child goes: past the end, `n` keeps everything (ascending inserts leave
   * full nodes); else the halves split evenly.
   */
  #split(n: SlotNode, pos: number): SlotNode {
    const right = this.#node(n.children === null);
    const at = pos >= n.n ? n.n : n.n >>> 1;
    const moved = n.n - at;
    right.heads.set(n.heads.subarray(at, n.n));
    right.slots.set(n.slots.subarray(at, n.n));
    right.n = moved;
    if (n.children !== null) {
      right.children!.push(...n.children.splice(at, moved));
    }
    n.n = at;
    return right;
  }
}

/**
 * The inner levels of a tree built left to right (bulk load): leaves, each with its first entry,
 * come in key order; each level keeps its rightmost node open and starts a new one when that is
 * full, adding the new one to the level above (a level above begins when a level's second node
 * does). Every node but the rightmost of its level ends up full.
 */
class InnerSpine {
  readonly #cap: number;
  readonly #newInner: () => SlotNode;
  /** The open (rightmost) inner node of each level, level 0 just above the leaves. */
  readonly #open: SlotNode[] = [];
  #first: SlotNode | null = null;

  constructor(cap: number, newInner: () => SlotNode) {
    this.#cap = cap;
    this.#newInner = newInner;
  }

  /** Adds the next leaf (holding at least one entry) to the right. */
  add(leaf: SlotNode): void {
    if (this.#first === null) this.#first = leaf;
    this.#push(0, leaf);
  }

  /** The root: null without leaves; a lone leaf; else the top level's node (2+ children). */
  root(): SlotNode | null {
    const top = this.#open[this.#open.length - 1];
    if (top === undefined || top.n === 1) return this.#first;
    return top;
  }

  #push(level: number, child: SlotNode): void {
    const node = this.#open[level];
    if (node !== undefined && node.n < this.#cap) {
      const first = firstEntryOf(child);
      node.heads[node.n] = first.heads[0]!;
      node.slots[node.n] = first.slots[0]!;
      node.children!.push(child);
      node.n++;
      return;
    }
    const fresh = this.#newInner();
    fresh.children!.push(child);
    fresh.n = 1;
    this.#open[level] = fresh;
    if (node === undefined) return;
    // the level's second node or later: the level above takes it (and, if new, the first too)
    if (this.#open[level + 1] === undefined) {
      const parent = this.#newInner();
      parent.children!.push(node);
      parent.n = 1;
      this.#open[level + 1] = parent;
    }
    this.#push(level + 1, fresh);
  }
}

function firstEntryOf(n: SlotNode): SlotNode {
  while (n.children !== null) n = n.children[0]!;
  return n;
}

function insertEntry(n: SlotNode, pos: number, head: number, slot: number): void {
  const count = n.n;
  if (pos < count) {
    n.heads.copyWithin(pos + 1, pos, count);
    n.slots.copyWithin(pos + 1, pos, count);
  }
  n.heads[pos] = head;
  n.slots[pos] = slot;
  n.n = count + 1;
}

/** Inserts child `c` at index `at` of inner node `n`, with separator (head, slot) for it. */
function insertChild(n: SlotNode, at: number, head: number, slot: number, c: SlotNode): void {
  insertEntry(n, at, head, slot);
  n.children!.splice(at, 0, c);
}
