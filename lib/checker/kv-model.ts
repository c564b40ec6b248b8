/**
 * The sequential model of etcd's key-value store that the linearizability search replays
 * operations against, for one partition (a set of keys no operation outside it touches).
 *
 * State: the partition's keys (each: value or absent, mod_revision, create_revision, version) and
 * a lower bound on the store revision after the last operation. Every operation is run as a txn
 * (a plain put/get/delete/range is a txn with no compares and one op), with etcd's semantics:
 * - compares as etcd's applyCompare (a value compare on a missing key is false; mod, create and
 *   version compare against 0 for a missing key);
 * - a txn revision increments only when the branch taken changes something (a put, or a delete of
 *   a key that exists); every write of a txn carries that revision, and later reads in the same
 *   txn see them (etcd's storeTxnWrite.Range reads at beginRev + 1 once it has changes);
 * - a put creates the key (version 1, create = mod = its revision) or bumps its version.
 *
 * Revisions strengthen the model (etcd responses carry them): revisions never decrease along a
 * linearization, a write's revision is above every revision before it, a read's header revision
 * is at least every revision before it, and a read must return the mod/create revisions the model
 * holds. A write whose response was lost has an unknown revision: the model keeps an interval
 * [lo, hi] for it (lo above the revisions before it, hi capped by the first known revision after
 * it) and binds it when a read reports it. What is not kept is the relative order of two such
 * unknown revisions in one partition (each has its own interval), so the check is sound (it never
 * rejects a linearizable history) and very slightly weaker there.
 */
import type { KvInitialState, KvRecord, TxnCompare } from "./history.js";
import {
  compareStrings,
  type CompiledCompare,
  type CompiledOp,
  type PartitionKeys,
} from "./kv-compile.js";
import type { SearchModel } from "./search.js";

/** One key of the partition. Revision bounds are [lo, hi]; known when lo === hi. */
export interface Slot {
  readonly value: string | null;
  readonly modLo: number;
  readonly modHi: number;
  readonly createLo: number;
  readonly createHi: number;
  readonly version: number;
}

const ABSENT: Slot = { value: null, modLo: 0, modHi: 0, createLo: 0, createHi: 0, version: 0 };

/** A partition state (immutable once built; `memoKey` caches the state's key). */
export interface PartitionState {
  /** Lower bound on the store revision after the last linearized operation. */
  readonly rev: number;
  readonly slots: readonly Slot[];
  memoKey?: string;
}

/** The partition's starting state: the initial store restricted to its keys. */
export function initialPartitionState(
  keys: PartitionKeys,
  initial: KvInitialState | undefined,
): PartitionState {
  const slots: Slot[] = keys.keys.map(() => ABSENT);
  for (const kv of initial?.kvs ?? []) {
    if (!keys.has(kv.key)) continue;
    slots[keys.slot(kv.key)] = {
      value: kv.value,
      modLo: kv.modRevision,
      modHi: kv.modRevision,
      createLo: kv.createRevision,
      createHi: kv.createRevision,
      version: kv.version,
    };
  }
  return { rev: initial?.revision ?? 0, slots };
}

function cmpNumber(a: number, b: number): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function holds(result: TxnCompare["result"], cmp: number): boolean {
  switch (result) {
    case "equal":
      return cmp === 0;
    case "not_equal":
      return cmp !== 0;
    case "greater":
      return cmp > 0;
    case "less":
      return cmp < 0;
  }
}

/** A compare against a revision known only to lie in [lo, hi]: true, false or undecided. */
function holdsInterval(
  result: TxnCompare["result"],
  lo: number,
  hi: number,
  x: number,
): boolean | undefined {
  if (lo === hi) return holds(result, cmpNumber(lo, x));
  switch (result) {
    case "equal":
      return x < lo || x > hi ? false : undefined;
    case "not_equal":
      return x < lo || x > hi ? true : undefined;
    case "greater":
      return lo > x ? true : hi <= x ? false : undefined;
    case "less":
      return hi < x ? true : lo >= x ? false : undefined;
  }
}

/** etcd's applyCompare on one key: true, false, or undecided (an unknown revision). */
function evalCompare(slot: Slot, c: CompiledCompare): boolean | undefined {
  switch (c.target) {
    case "value":
      // etcd: a value compare on a missing key always fails.
      if (slot.value === null) return false;
      return holds(c.result, compareStrings(slot.value, String(c.value)));
    case "version":
      return holds(c.result, cmpNumber(slot.version, Number(c.value)));
    case "mod":
      return holdsInterval(c.result, slot.modLo, slot.modHi, Number(c.value));
    case "create":
      return holdsInterval(c.result, slot.createLo, slot.createHi, Number(c.value));
  }
}

/** Narrows [lo, hi] so that `result` against x has the given truth; undefined if impossible. */
function narrow(
  result: TxnCompare["result"],
  lo: number,
  hi: number,
  x: number,
  truth: boolean,
): [number, number] | undefined {
  let l = lo;
  let h = hi;
  if (result === "equal" || result === "not_equal") {
    // Only "is x" can be represented as an interval; "is not x" stays as it is.
    if ((result === "equal") === truth) l = h = x;
  } else if (result === "greater") {
    if (truth) l = Math.max(l, x + 1);
    else h = Math.min(h, x);
  } else {
    if (truth) h = Math.min(h, x - 1);
    else l = Math.max(l, x);
  }
  return l <= h ? [l, h] : undefined;
}

function applyNarrowing(
  work: Slot[],
  c: CompiledCompare,
  truth: boolean,
  why: string[] | undefined,
): boolean {
  const slot = work[c.slot]!;
  const x = Number(c.value);
  const isMod = c.target === "mod";
  const r = isMod
    ? narrow(c.result, slot.modLo, slot.modHi, x, truth)
    : narrow(c.result, slot.createLo, slot.createHi, x, truth);
  if (r === undefined) {
    why?.push(`compare ${c.target} ${c.result} ${x} cannot be ${truth}`);
    return false;
  }
  work[c.slot] = isMod
    ? { ...slot, modLo: r[0], modHi: r[1] }
    : { ...slot, createLo: r[0], createHi: r[1] };
  return true;
}

function describeRange(lo: number, hi: number): string {
  if (lo === hi) return String(lo);
  return hi === Infinity ? `unknown (≥ ${lo})` : `unknown (${lo}..${hi})`;
}

/**
 * `"v" (mod 5, create 3, ver 2)` or `absent`; revisions nothing bounds from above (a history
 * recorded without revisions) are left out.
 */
export function describeSlot(slot: Slot): string {
  if (slot.value === null) return "absent";
  const meta: string[] = [];
  if (slot.modHi !== Infinity) meta.push(`mod ${describeRange(slot.modLo, slot.modHi)}`);
  if (slot.createHi !== Infinity)
    meta.push(`create ${describeRange(slot.createLo, slot.createHi)}`);
  meta.push(`ver ${slot.version}`);
  return `${JSON.stringify(slot.value)} (${meta.join(", ")})`;
}

/**
 * The revisions no known write took, across the whole history (every key shares etcd's counter).
 * A write whose revision is unknown took one of these: so after the store is at revision ≥ r,
 * such a write is at ≥ next(r), not merely r + 1. Between two known writes at consecutive
 * revisions no unknown write fits, which prunes most places the search would try one.
 */
export class FreeRevisions {
  /** Taken revisions, sorted, unique. */
  readonly #taken: Float64Array;
  /** #freeAfter[i]: the smallest free revision above #taken[i]. */
  readonly #freeAfter: Float64Array;
  constructor(taken: Iterable<number>) {
    this.#taken = Float64Array.from(new Set(taken)).sort();
    const n = this.#taken.length;
    this.#freeAfter = new Float64Array(n);
    for (let i = n - 1; i >= 0; i--) {
      const t = this.#taken[i]!;
      this.#freeAfter[i] =
        i + 1 < n && this.#taken[i + 1] === t + 1 ? this.#freeAfter[i + 1]! : t + 1;
    }
  }
  /** The smallest revision above `rev` that no known write took. */
  next(rev: number): number {
    const candidate = rev + 1;
    let lo = 0;
    let hi = this.#taken.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#taken[mid]! < candidate) lo = mid + 1;
      else hi = mid;
    }
    return lo < this.#taken.length && this.#taken[lo] === candidate
      ? this.#freeAfter[lo]!
      : candidate;
  }
}

/** The model of one partition, with the search's interface and an explain() for reports. */
export class KvPartitionModel implements SearchModel<PartitionState, CompiledOp> {
  readonly keys: PartitionKeys;
  readonly #free: FreeRevisions;
  constructor(keys: PartitionKeys, free: FreeRevisions = new FreeRevisions([])) {
    this.keys = keys;
    this.#free = free;
  }

  stateKey(state: PartitionState): string {
    if (state.memoKey !== undefined) return state.memoKey;
    let k = `${state.rev}`;
    for (const s of state.slots) {
      k +=
        s.value === null
          ? ";-"
          : `;${s.modLo},${s.modHi},${s.createLo},${s.createHi},${s.version},${s.value.length}:${s.value}`;
    }
    state.memoKey = k;
    return k;
  }

  step(state: PartitionState, op: CompiledOp): PartitionState | PartitionState[] | undefined {
    return this.#step(state, op, undefined);
  }

  /** Why `op` cannot happen in `state` (empty when it can). */
  explain(state: PartitionState, op: CompiledOp): string {
    const why: string[] = [];
    const r = this.#step(state, op, why);
    if (r !== undefined && (!Array.isArray(r) || r.length > 0)) return "";
    return why.join("; ");
  }

  /** The state in words, key by key. */
  describeState(state: PartitionState): string {
    const keys = this.keys.keys
      .map((k, i) => `${JSON.stringify(k)} ${describeSlot(state.slots[i]!)}`)
      .join(", ");
    return `${keys}; store revision ≥ ${state.rev}`;
  }

  #step(
    state: PartitionState,
    op: CompiledOp,
    why: string[] | undefined,
  ): PartitionState | PartitionState[] | undefined {
    if (op.invalid !== undefined) {
      why?.push(op.invalid);
      return undefined;
    }
    let anyFalse = false;
    let undecided: CompiledCompare[] | undefined;
    for (const c of op.compare) {
      const r = evalCompare(state.slots[c.slot]!, c);
      if (r === false) anyFalse = true;
      else if (r === undefined) (undecided ??= []).push(c);
    }
    const definite = anyFalse ? false : undecided === undefined ? true : undefined;
    if (op.succeeded !== undefined) {
      if (definite !== undefined && definite !== op.succeeded) {
        why?.push(
          `its compare ${this.#describeCompares(state, op)} is ${definite} here, ` +
            `but the response says ${op.succeeded ? "succeeded" : "failed"}`,
        );
        return undefined;
      }
      return this.#branch(state, op, op.succeeded, definite === undefined ? undecided : [], why);
    }
    if (definite !== undefined) return this.#branch(state, op, definite, [], why);
    const out: PartitionState[] = [];
    const a = this.#branch(state, op, true, undecided, why);
    if (a !== undefined) out.push(a);
    const b = this.#branch(state, op, false, undecided, why);
    if (b !== undefined) out.push(b);
    return out.length === 0 ? undefined : out.length === 1 ? out[0] : out;
  }

  #describeCompares(state: PartitionState, op: CompiledOp): string {
    return op.compare
      .map((c) => {
        const k = JSON.stringify(this.keys.keys[c.slot]);
        const v = typeof c.value === "string" ? JSON.stringify(c.value) : c.value;
        return `${c.target}(${k}) ${c.result} ${v} [${k} is ${describeSlot(state.slots[c.slot]!)}]`;
      })
      .join(" && ");
  }

  /**
   * Runs the branch `succeeded` of `op` from `state`. `undecided` are the compares whose truth
   * depends on an unknown revision: they are narrowed to agree with the outcome.
   */
  #branch(
    state: PartitionState,
    op: CompiledOp,
    succeeded: boolean,
    undecided: readonly CompiledCompare[] | undefined,
    why: string[] | undefined,
  ): PartitionState | undefined {
    const work = state.slots.slice();
    if (undecided !== undefined && undecided.length > 0) {
      // All compares true: each undecided one is true. Outcome false with exactly one undecided
      // compare and none definitely false: that one is false. Otherwise nothing can be learned.
      if (succeeded) {
        for (const c of undecided) if (!applyNarrowing(work, c, true, why)) return undefined;
      } else if (undecided.length === 1) {
        if (!applyNarrowing(work, undecided[0]!, false, why)) return undefined;
      }
    }
    const ops = succeeded ? op.success : op.failure;
    const results = op.succeeded === succeeded ? op.results : undefined;
    // Writes of this op get its header revision, or an interval from the next free revision.
    const wLo = op.revision ?? this.#free.next(state.rev);
    const wHi = op.revision ?? Infinity;
    let wrote = false;
    let written: Set<number> | undefined;
    let maxObserved = 0;
    const observe = (slot: number, kv: KvRecord | null, what: string): boolean => {
      const r = checkRecord(work, slot, kv, why, what, this.keys.keys[slot]!);
      if (r === false) return false;
      if (!written?.has(slot)) maxObserved = Math.max(maxObserved, r);
      return true;
    };
    for (let i = 0; i < ops.length; i++) {
      const o = ops[i]!;
      const res = results?.[i];
      switch (o.t) {
        case "put": {
          const prev = work[o.slot]!;
          const created = prev.value === null;
          work[o.slot] = {
            value: o.value,
            modLo: wLo,
            modHi: wHi,
            createLo: created ? wLo : prev.createLo,
            createHi: created ? wHi : prev.createHi,
            version: created ? 1 : prev.version + 1,
          };
          wrote = true;
          (written ??= new Set()).add(o.slot);
          break;
        }
        case "delete": {
          const deleted = work[o.slot]!.value === null ? 0 : 1;
          if (res !== undefined && res.t === "delete" && res.deleted !== deleted) {
            why?.push(
              `delete(${JSON.stringify(this.keys.keys[o.slot])}) reported ${res.deleted} deleted, ` +
                `but the key is ${describeSlot(work[o.slot]!)} here`,
            );
            return undefined;
          }
          if (deleted === 1) {
            work[o.slot] = ABSENT;
            wrote = true;
            (written ??= new Set()).add(o.slot);
          }
          break;
        }
        case "get":
          if (res !== undefined && res.t === "get" && !observe(o.slot, res.kv, "get")) {
            return undefined;
          }
          break;
        case "range":
          if (res !== undefined && res.t === "range") {
            for (let j = 0; j < o.slots.length; j++) {
              if (!observe(o.slots[j]!, res.kvs[j]!, `range(prefix ${JSON.stringify(o.prefix)})`)) {
                return undefined;
              }
            }
          }
          break;
      }
    }
    let rev = state.rev;
    if (op.revision !== undefined) {
      if (wrote ? op.revision <= state.rev : op.revision < state.rev) {
        why?.push(
          `its revision ${op.revision} would go back: the store is already at revision ≥ ${state.rev} here` +
            (wrote ? " and a write must take a new revision" : ""),
        );
        return undefined;
      }
      if (wrote ? maxObserved >= op.revision : maxObserved > op.revision) {
        why?.push(`it read revision ${maxObserved}, beyond its own revision ${op.revision}`);
        return undefined;
      }
      rev = op.revision;
      // Writes before this op that have unknown revisions are below this revision.
      const cap = wrote ? op.revision - 1 : op.revision;
      for (let i = 0; i < work.length; i++) {
        const s = work[i]!;
        if (written?.has(i) || (s.modHi <= cap && s.createHi <= cap)) continue;
        work[i] = { ...s, modHi: Math.min(s.modHi, cap), createHi: Math.min(s.createHi, cap) };
      }
    } else if (wrote) {
      rev = wLo;
    }
    return { rev: Math.max(rev, maxObserved), slots: work };
  }
}

/**
 * Checks a read result against slot `i` and binds its unknown revisions to what the read saw.
 * Returns the highest revision observed (0 for none) or false when the read cannot be right.
 */
function checkRecord(
  work: Slot[],
  i: number,
  kv: KvRecord | null,
  why: string[] | undefined,
  what: string,
  key: string,
): number | false {
  const slot = work[i]!;
  const k = JSON.stringify(key);
  if (kv === null) {
    if (slot.value === null) return 0;
    why?.push(`${what} found no ${k}, but ${k} is ${describeSlot(slot)} here`);
    return false;
  }
  if (slot.value === null) {
    why?.push(`${what} returned ${k} = ${JSON.stringify(kv.value)}, but ${k} is absent here`);
    return false;
  }
  if (slot.value !== kv.value || (kv.version !== undefined && kv.version !== slot.version)) {
    const ver = kv.version !== undefined ? ` (ver ${kv.version})` : "";
    why?.push(
      `${what} returned ${k} = ${JSON.stringify(kv.value)}${ver}, but ${k} is ${describeSlot(slot)} here`,
    );
    return false;
  }
  let bound = slot;
  let observed = 0;
  if (kv.modRevision !== undefined) {
    const m = kv.modRevision;
    if (m < slot.modLo || m > slot.modHi) {
      why?.push(
        `${what} returned ${k} with mod revision ${m}, but ${k} is ${describeSlot(slot)} here`,
      );
      return false;
    }
    if (slot.modLo !== slot.modHi) bound = { ...bound, modLo: m, modHi: m };
    observed = m;
  }
  if (kv.createRevision !== undefined) {
    const c = kv.createRevision;
    if (c < slot.createLo || c > slot.createHi || c > bound.modHi) {
      why?.push(
        `${what} returned ${k} with create revision ${c}, but ${k} is ${describeSlot(slot)} here`,
      );
      return false;
    }
    if (slot.createLo !== slot.createHi) bound = { ...bound, createLo: c, createHi: c };
  }
  work[i] = bound;
  return observed;
}
