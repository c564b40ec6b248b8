/**
 * The linearizability search: Wing & Gong's algorithm ("Testing and verifying concurrent objects",
 * J. Parallel Distrib. Comput. 1993) with Lowe's memoisation ("Testing for linearizability",
 * Concurrency Computat.: Pract. Exper. 2017), as Porcupine implements it (checker.go checkSingle).
 *
 * The history is a list of call and return entries sorted by time. The search walks it, and at
 * each call tries to linearize that operation next: the model must accept it in the current state.
 * If it does, and the pair (set of linearized operations, new state) has not been seen before (the
 * memo: a state reached twice with the same operations done has the same future), the operation
 * is lifted out of the list and the search starts again from the head. Reaching a return entry
 * whose call is still in the list means no operation can come next: backtrack (undo the last
 * lift, try the next candidate). The history is linearizable when the list empties, and not when
 * the search backtracks past the first operation.
 *
 * Real-time order: operation A precedes B when A.completeNs < B.invokeNs strictly; equal times
 * are treated as overlapping (a call entry sorts before a return entry at the same time).
 *
 * The model may be non-deterministic: step() can return several successor states (e.g. a txn
 * whose outcome is unknown and whose compare cannot be decided); each is a separate choice point.
 */
import { checkerAssert } from "./errors.js";
import { prng } from "./generate.js";

/** A model the search can drive: states are immutable; equal states have equal keys. */
export interface SearchModel<S, O> {
  /** The successor state(s) of `state` after `op`, or undefined when `op` cannot happen there. */
  step(state: S, op: O): S | readonly S[] | undefined;
  /** A string that is equal for two states exactly when the states are equal (the memo key). */
  stateKey(state: S): string;
}

/** An operation as the search sees it: the model's op and its real-time interval (ns). */
export interface SearchOp<O> {
  op: O;
  invokeNs: number;
  /** +Infinity for an operation that may take effect at any time after its invoke. */
  completeNs: number;
}

/**
 * A budget shared by every search of one check, consumed as they run. `stepsLeft` counts model
 * steps (calls of step()); `deadlineMs` is a performance.now() value (ms), read every
 * {@link CLOCK_CHECK_STEPS} steps; `maxMemoBytes` bounds the memo of one search (each entry
 * holds a copy of the linearized-set bitset, n/8 bytes, plus a map entry keyed by the state's key
 * string, counted as {@link MEMO_ENTRY_OVERHEAD_BYTES}), which is what a long search spends its
 * memory on.
 */
export interface SearchBudget {
  stepsLeft: number;
  deadlineMs: number;
  maxMemoBytes: number;
}

/** Estimated bytes of one memo entry besides its bitset (map entry, key string, bucket). */
export const MEMO_ENTRY_OVERHEAD_BYTES = 96;

/** How often (in model steps) the search reads the clock. */
export const CLOCK_CHECK_STEPS = 1024;

/** The outcome of one search. */
export type SearchResult =
  | { kind: "ok"; steps: number; order: number[] }
  | {
      kind: "illegal";
      steps: number;
      /**
       * The longest prefix of a linearization the search built (indexes into `ops`, in order):
       * the place where it got furthest before every continuation failed.
       */
      longest: number[];
    }
  | { kind: "unknown"; steps: number; reason: "steps" | "time" | "memory" };

const HEAD_NONE = -1;

/**
 * Searches for a linearization of `ops` from `init` under `model`, within `budget` (which it
 * decrements). Returns ok with one linearization order, illegal with the longest partial
 * linearization found, or unknown when the budget ran out first.
 */
export function searchLinearization<S, O>(
  model: SearchModel<S, O>,
  init: S,
  ops: readonly SearchOp<O>[],
  budget: SearchBudget,
): SearchResult {
  const n = ops.length;
  if (n === 0) return { kind: "ok", steps: 0, order: [] };
  // Entry e: operation e >> 1; e & 1 = 0 for its call, 1 for its return.
  const entries = new Int32Array(2 * n);
  for (let i = 0; i < 2 * n; i++) entries[i] = i;
  const time = (e: number): number => (e & 1 ? ops[e >> 1]!.completeNs : ops[e >> 1]!.invokeNs);
  entries.sort((a, b) => {
    const ta = time(a);
    const tb = time(b);
    if (ta !== tb) return ta < tb ? -1 : 1;
    if ((a & 1) !== (b & 1)) return (a & 1) - (b & 1); // calls first: equal times overlap
    return a - b;
  });
  // A doubly linked list over entries with a head sentinel at index 2n (dancing links).
  const head = 2 * n;
  const next = new Int32Array(2 * n + 1);
  const prev = new Int32Array(2 * n + 1);
  let last = head;
  for (let i = 0; i < 2 * n; i++) {
    const e = entries[i]!;
    next[last] = e;
    prev[e] = last;
    last = e;
  }
  next[last] = HEAD_NONE;

  const lift = (e: number): void => {
    const r = e | 1;
    next[prev[e]!] = next[e]!;
    if (next[e]! !== HEAD_NONE) prev[next[e]!] = prev[e]!;
    next[prev[r]!] = next[r]!;
    if (next[r]! !== HEAD_NONE) prev[next[r]!] = prev[r]!;
  };
  const unlift = (e: number): void => {
    const r = e | 1;
    next[prev[r]!] = r;
    if (next[r]! !== HEAD_NONE) prev[next[r]!] = r;
    next[prev[e]!] = e;
    if (next[e]! !== HEAD_NONE) prev[next[e]!] = e;
  };

  // The set of linearized operations: a bitset plus a Zobrist hash of it (xor of a random word
  // per operation), so the memo key costs O(1) to update; bitsets are compared exactly on a hit.
  const words = (n + 31) >>> 5;
  const bits = new Uint32Array(words);
  const zobrist = new Int32Array(n);
  const random = prng(0x9e3779b9 ^ n);
  for (let i = 0; i < n; i++) zobrist[i] = Math.floor(random() * 2 ** 32) | 0;
  let hash = 0;
  // The memo: key (bitset hash + state key) -> entry numbers; entry i's bitset is arena words
  // [i * words, (i + 1) * words).
  const memo = new Map<string, number | number[]>();
  let arena = new Uint32Array(words * 1024);
  let memoEntries = 0;
  const maxEntries = Math.floor(budget.maxMemoBytes / (words * 4 + MEMO_ENTRY_OVERHEAD_BYTES));

  // The stack of linearized calls: entry, the state before it, its alternatives.
  const stackEntry = new Int32Array(n);
  const stackPrevState: S[] = new Array<S>(n);
  const stackAlts: (readonly S[] | undefined)[] = new Array<readonly S[] | undefined>(n);
  const stackAltIndex = new Int32Array(n);
  let depth = 0;
  let state = init;
  let steps = 0;
  let longest: number[] = [];

  const sameBits = (i: number): boolean => {
    const base = i * words;
    for (let w = 0; w < words; w++) if (arena[base + w] !== bits[w]) return false;
    return true;
  };
  const remember = (): number => {
    if ((memoEntries + 1) * words > arena.length) {
      const grown = new Uint32Array(arena.length * 2);
      grown.set(arena);
      arena = grown;
    }
    arena.set(bits, memoEntries * words);
    return memoEntries++;
  };

  /** Linearizes call entry `e` into `next` if (bits + e, next) is new; true when it did. */
  const tryPush = (
    e: number,
    nextState: S,
    alts: readonly S[] | undefined,
    altIndex: number,
  ): boolean => {
    const op = e >> 1;
    bits[op >>> 5]! |= 1 << (op & 31);
    const h = hash ^ zobrist[op]!;
    const key = `${h}|${model.stateKey(nextState)}`;
    const bucket = memo.get(key);
    const seen =
      bucket === undefined
        ? false
        : typeof bucket === "number"
          ? sameBits(bucket)
          : bucket.some(sameBits);
    if (seen) {
      bits[op >>> 5]! &= ~(1 << (op & 31));
      return false;
    }
    const i = remember();
    if (bucket === undefined) memo.set(key, i);
    else if (typeof bucket === "number") memo.set(key, [bucket, i]);
    else bucket.push(i);
    hash = h;
    stackEntry[depth] = e;
    stackPrevState[depth] = state;
    stackAlts[depth] = alts;
    stackAltIndex[depth] = altIndex;
    depth++;
    state = nextState;
    lift(e);
    return true;
  };

  /** Tries the alternatives from index `from`; true when one was linearized. */
  const tryAlternatives = (e: number, alts: readonly S[], from: number): boolean => {
    for (let i = from; i < alts.length; i++) if (tryPush(e, alts[i]!, alts, i)) return true;
    return false;
  };

  let entry = next[head]!;
  while (next[head]! !== HEAD_NONE) {
    checkerAssert(entry !== HEAD_NONE, "search walked past the last entry");
    if ((entry & 1) === 0) {
      if (budget.stepsLeft <= 0) return { kind: "unknown", steps, reason: "steps" };
      if (memoEntries >= maxEntries) return { kind: "unknown", steps, reason: "memory" };
      if ((steps & (CLOCK_CHECK_STEPS - 1)) === 0 && performance.now() > budget.deadlineMs) {
        return { kind: "unknown", steps, reason: "time" };
      }
      budget.stepsLeft--;
      steps++;
      const result = model.step(state, ops[entry >> 1]!.op);
      let pushed = false;
      if (result !== undefined) {
        if (isStateList(result)) pushed = tryAlternatives(entry, result, 0);
        else pushed = tryPush(entry, result, undefined, 0);
      }
      entry = pushed ? next[head]! : next[entry]!;
      continue;
    }
    // A return entry: its operation had to be linearized by now. Backtrack one step.
    if (depth === 0) return { kind: "illegal", steps, longest };
    if (depth > longest.length) longest = Array.from(stackEntry.subarray(0, depth), (e) => e >> 1);
    depth--;
    const e = stackEntry[depth]!;
    const op = e >> 1;
    state = stackPrevState[depth]!;
    bits[op >>> 5]! &= ~(1 << (op & 31));
    hash ^= zobrist[op]!;
    unlift(e);
    const alts = stackAlts[depth];
    if (alts !== undefined && tryAlternatives(e, alts, stackAltIndex[depth]! + 1)) {
      entry = next[head]!;
      continue;
    }
    entry = next[e]!;
  }
  return { kind: "ok", steps, order: Array.from(stackEntry.subarray(0, depth), (e) => e >> 1) };
}

function isStateList<S>(r: S | readonly S[]): r is readonly S[] {
  return Array.isArray(r);
}
