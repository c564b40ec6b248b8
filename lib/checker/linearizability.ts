/**
 * checkLinearizability: is a recorded history of etcd key-value calls linearizable (Herlihy &
 * Wing 1990) with respect to etcd's key-value semantics (lib/checker/kv-model.ts)?
 *
 * How (as Porcupine does it, with etcd's revisions added):
 * 1. Normalise: every op gets an id (its index unless given); an op whose output is unknown is
 *   pending forever (completeNs = +Infinity); one that cannot write (a read) is dropped, since it
 *   constrains nothing. An ambiguous plain put whose value is unique for its key and that a read
 *   observed with a mod revision gets that revision as its response (the read proves it happened
 *   there; as etcd's robustness tests patch their histories).
 * 2. Whole-history checks (precheck.ts): values never written, revision sanity, unique write
 *   revisions, real-time order of revisions across all keys.
 * 3. P-compositionality (Horn & Kroening, "Faster linearizability checking via
 *   P-compositionality", 2015): linearizability is local, so a history over independent objects
 *   is linearizable when each object's sub-history is. A key is an object as long as every
 *   operation touches one key. A txn that compares or writes several keys, or a range over a
 *   prefix, reads or writes its keys atomically: their keys are one object, so the keys each
 *   operation touches are merged (union-find) into partitions and each partition is searched on
 *   its own (search.ts). One txn over every key, or a range over the empty prefix, makes the whole
 *   history one partition and the search pays for all of its concurrency at once. What couples
 *   partitions beyond that is etcd's single revision counter, which step 2 checks globally.
 * 4. The search is bounded by a step and a time budget shared by all partitions (smallest
 *   first); running out gives verdict "unknown", never a guess.
 * 5. When a partition is not linearizable, its history is cut at the earliest completion time
 *   that still fails (ops completed by then are kept, ops in flight become "may have happened",
 *   later ops are dropped; a cut of a linearizable history stays linearizable, so a failing cut
 *   proves the violation), and the report gives that sub-history, the longest partial
 *   linearization found and why each operation that had to come next cannot.
 */
import type { KvInitialState, KvOperation } from "./history.js";
import { describeOperation, inputMayWrite } from "./history.js";
import { compileOp, PartitionKeys, type CompiledOp } from "./kv-compile.js";
import {
  FreeRevisions,
  initialPartitionState,
  KvPartitionModel,
  type PartitionState,
} from "./kv-model.js";
import { normalise, type WatchedWrites } from "./patch.js";
import { observations, precheck, writeEffects, type CheckedOp } from "./precheck.js";
import { searchLinearization, type SearchBudget, type SearchOp } from "./search.js";

/** Default bound on model steps over a whole check. */
export const DEFAULT_MAX_STEPS = 20_000_000;
/** Default bound on a whole check's wall time, ms. */
export const DEFAULT_TIME_BUDGET_MS = 60_000;
/** Default bound on the memory of one partition's search memo, bytes. */
export const DEFAULT_MAX_MEMO_BYTES = 256 * 1024 * 1024;
/** States kept while replaying a linearization for an explanation. */
const EXPLAIN_MAX_STATES = 64;
/** Operations of a linearization shown in an explanation (the last ones). */
const EXPLAIN_TAIL_OPS = 12;

/** Options of {@link checkLinearizability}. */
export interface LinearizabilityOptions {
  /** The store before the history (default: empty, revision unknown). */
  initial?: KvInitialState;
  /** Bound on model steps (default {@link DEFAULT_MAX_STEPS}). */
  maxSteps?: number;
  /** Bound on wall time, ms (default {@link DEFAULT_TIME_BUDGET_MS}). */
  timeBudgetMs?: number;
  /** Bound on one partition search's memo, bytes (default {@link DEFAULT_MAX_MEMO_BYTES}). */
  maxMemoBytes?: number;
  /**
   * Every event of a watch over all the history's keys, complete up to a revision at or above
   * every revision the history saw (and checked by checkWatches): lost writes are resolved from it
   * (see patch.ts), which keeps the search close to linear when many responses were lost.
   */
  watched?: WatchedWrites;
  /** Cut a failing partition down to the smallest failing prefix (default true). */
  minimize?: boolean;
}

/** An operation that could have come next after the longest linearization, and why it cannot. */
export interface StuckOperation {
  op: KvOperation;
  reason: string;
}

/** The verdict of {@link checkLinearizability}. */
export type LinearizabilityResult =
  | {
      verdict: "ok";
      /** Number of partitions searched. */
      partitions: number;
      /** Model steps used. */
      steps: number;
    }
  | {
      verdict: "illegal";
      /** What is wrong, for a person: the failing operations, the state, the reason. */
      explanation: string;
      /** The keys of the failing partition (or of the ops a whole-history check named). */
      keys: string[];
      /** The smallest failing sub-history found (ids as in the input). */
      history: KvOperation[];
      /** Ids of the longest partial linearization of `history` (empty for a whole-history check). */
      linearization: number[];
      /** The operations that had to come next after `linearization`, with why each cannot. */
      stuck: StuckOperation[];
      steps: number;
    }
  | {
      verdict: "unknown";
      /** Which budget ran out. */
      reason: string;
      /** Keys of the partitions not decided. */
      keys: string[];
      steps: number;
    };

/** Keys an op names, and the prefixes its ranges cover. */
function keysOf(op: KvOperation): { keys: string[]; prefixes: string[] } {
  const keys: string[] = [];
  const prefixes: string[] = [];
  const input = op.input;
  const all = input.type === "txn" ? [...input.success, ...input.failure] : [input];
  if (input.type === "txn") for (const c of input.compare) keys.push(c.key);
  for (const o of all) {
    if (o.type === "range") prefixes.push(o.prefix);
    else keys.push(o.key);
  }
  for (const o of observations(op)) keys.push(o.key);
  return { keys, prefixes };
}

/** Union-find over keys. */
class KeyUnion {
  readonly #parent = new Map<string, string>();
  add(k: string): void {
    if (!this.#parent.has(k)) this.#parent.set(k, k);
  }
  find(k: string): string {
    let root = k;
    while (this.#parent.get(root) !== root) root = this.#parent.get(root)!;
    let x = k;
    while (x !== root) {
      const next = this.#parent.get(x)!;
      this.#parent.set(x, root);
      x = next;
    }
    return root;
  }
  union(a: string, b: string): void {
    const ra = this.find(a);
    const rb = this.find(b);
    if (ra !== rb) this.#parent.set(ra, rb);
  }
  keys(): IterableIterator<string> {
    return this.#parent.keys();
  }
}

interface Partition {
  keys: PartitionKeys;
  ops: CheckedOp[];
}

/** Step 3: groups ops whose keys overlap (through txns and prefix ranges) into partitions. */
function partition(ops: readonly CheckedOp[], initial: KvInitialState | undefined): Partition[] {
  const union = new KeyUnion();
  const touched = ops.map((c) => keysOf(c.op));
  for (const t of touched) for (const k of t.keys) union.add(k);
  for (const kv of initial?.kvs ?? []) union.add(kv.key);
  const universe = [...union.keys()].sort();
  const opKeys: string[][] = touched.map((t) => {
    const set = new Set(t.keys);
    for (const p of t.prefixes) {
      let lo = 0;
      let hi = universe.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (universe[mid]! < p) lo = mid + 1;
        else hi = mid;
      }
      for (let i = lo; i < universe.length && universe[i]!.startsWith(p); i++)
        set.add(universe[i]!);
    }
    return [...set];
  });
  for (const ks of opKeys) for (let i = 1; i < ks.length; i++) union.union(ks[0]!, ks[i]!);
  const groups = new Map<string, { keys: Set<string>; ops: CheckedOp[] }>();
  const group = (root: string) => {
    let g = groups.get(root);
    if (g === undefined) groups.set(root, (g = { keys: new Set(), ops: [] }));
    return g;
  };
  for (const k of universe) group(union.find(k)).keys.add(k);
  ops.forEach((c, i) => {
    const ks = opKeys[i]!;
    // An op over no key at all (a range of a prefix nothing has) constrains nothing here; its
    // header revision took part in the whole-history checks.
    if (ks.length > 0) group(union.find(ks[0]!)).ops.push(c);
  });
  return [...groups.values()]
    .filter((g) => g.ops.length > 0)
    .map((g) => ({ keys: new PartitionKeys(g.keys), ops: g.ops }))
    .sort((a, b) => a.ops.length - b.ops.length);
}

/** What every partition's search shares. */
interface SearchContext {
  initial: KvInitialState | undefined;
  free: FreeRevisions;
}

/** The revisions no known write took (see FreeRevisions). */
function freeRevisions(ops: readonly CheckedOp[]): FreeRevisions {
  const taken: number[] = [];
  for (const c of ops) {
    const rev = c.op.output?.revision;
    if (rev !== undefined && writeEffects(c.op) !== undefined) taken.push(rev);
  }
  return new FreeRevisions(taken);
}

type PartitionSearch =
  | { kind: "ok"; steps: number }
  | { kind: "unknown"; steps: number; reason: "steps" | "time" | "memory" }
  | {
      kind: "illegal";
      steps: number;
      longest: number[];
      model: KvPartitionModel;
      init: PartitionState;
      compiled: CompiledOp[];
      searchOps: SearchOp<CompiledOp>[];
    };

function searchPartition(
  keys: PartitionKeys,
  ops: readonly CheckedOp[],
  ctx: SearchContext,
  budget: SearchBudget,
): PartitionSearch {
  const { initial, free } = ctx;
  const model = new KvPartitionModel(keys, free);
  const init = initialPartitionState(keys, initial);
  const compiled = ops.map((c) => compileOp(keys, c.op));
  const searchOps = ops.map((c, i) => ({
    op: compiled[i]!,
    invokeNs: c.invokeNs,
    completeNs: c.completeNs,
  }));
  const r = searchLinearization(model, init, searchOps, budget);
  if (r.kind === "ok") return { kind: "ok", steps: r.steps };
  if (r.kind === "unknown") return { kind: "unknown", steps: r.steps, reason: r.reason };
  return { kind: "illegal", steps: r.steps, longest: r.longest, model, init, compiled, searchOps };
}

/**
 * Searches a partition in two phases. A pending write with unknown output can always be
 * linearized last, after everything, where it changes nothing any read saw: so if the history
 * without some pending writes is linearizable, so is the whole one. Phase 1 leaves out the pending
 * writes no read observed (each multiplies the search: it could have happened anywhere after its
 * invoke) and answers "ok" when it can; otherwise phase 2 searches the whole partition, which
 * alone decides "illegal".
 */
function searchPartitionPhased(
  keys: PartitionKeys,
  ops: readonly CheckedOp[],
  ctx: SearchContext,
  budget: SearchBudget,
): PartitionSearch {
  const observed = new Set<string>();
  for (const c of ops) {
    for (const o of observations(c.op)) observed.add(`${o.key}\u0000${o.kv.value}`);
  }
  const seen = (c: CheckedOp): boolean => {
    const input = c.op.input;
    const all = input.type === "txn" ? [...input.success, ...input.failure] : [input];
    return all.some((o) => o.type === "put" && observed.has(`${o.key}\u0000${o.value}`));
  };
  const slim = ops.filter((c) => c.op.output !== undefined || seen(c));
  if (slim.length === ops.length) return searchPartition(keys, ops, ctx, budget);
  const first = searchPartition(keys, slim, ctx, budget);
  if (first.kind !== "illegal") return first;
  const second = searchPartition(keys, ops, ctx, budget);
  return { ...second, steps: first.steps + second.steps };
}

/** Step 5: the history of `ops` cut at time `t` (see the module comment). */
function cutAt(ops: readonly CheckedOp[], t: number): CheckedOp[] {
  const out: CheckedOp[] = [];
  for (const c of ops) {
    if (c.completeNs <= t) out.push(c);
    else if (c.invokeNs <= t && inputMayWrite(c.op.input)) {
      const { output: _dropped, ...rest } = c.op;
      out.push({ ...c, op: { ...rest, completeNs: Infinity }, completeNs: Infinity });
    }
  }
  return out;
}

/** The earliest cut of a failing partition that still fails (binary search over completions). */
function minimise(
  keys: PartitionKeys,
  ops: readonly CheckedOp[],
  ctx: SearchContext,
  failingSteps: number,
  deadlineMs: number,
  maxMemoBytes: number,
): { ops: CheckedOp[]; search: Extract<PartitionSearch, { kind: "illegal" }> } | undefined {
  const times = [...new Set(ops.map((c) => c.completeNs).filter(Number.isFinite))].sort(
    (a, b) => a - b,
  );
  let lo = -1;
  let hi = times.length; // times.length = the whole history, known to fail
  let best: { ops: CheckedOp[]; search: Extract<PartitionSearch, { kind: "illegal" }> } | undefined;
  while (hi - lo > 1) {
    const mid = (lo + hi) >>> 1;
    const cut = cutAt(ops, times[mid]!);
    const budget = { stepsLeft: 2 * failingSteps + 10_000, deadlineMs, maxMemoBytes };
    const r = searchPartitionPhased(keys, cut, ctx, budget);
    if (r.kind === "illegal") {
      hi = mid;
      best = { ops: cut, search: r };
    } else {
      lo = mid;
    }
  }
  return best;
}

/** The report for a failing partition: longest linearization, stuck ops, explanation. */
function explainPartition(
  keys: PartitionKeys,
  ops: readonly CheckedOp[],
  search: Extract<PartitionSearch, { kind: "illegal" }>,
  cutNote: string,
): { explanation: string; stuck: StuckOperation[]; linearization: number[] } {
  const { model, init, compiled, searchOps, longest } = search;
  // Replay the longest linearization. A step with several successor states (an outcome the
  // model cannot decide) keeps them all, deduplicated and at most EXPLAIN_MAX_STATES of them.
  let states: PartitionState[] = [init];
  for (const i of longest) {
    const next = new Map<string, PartitionState>();
    for (const s of states) {
      const r = model.step(s, compiled[i]!);
      for (const n of r === undefined ? [] : Array.isArray(r) ? r : [r as PartitionState]) {
        if (next.size < EXPLAIN_MAX_STATES) next.set(model.stateKey(n), n);
      }
    }
    if (next.size > 0) states = [...next.values()];
  }
  const state = states[0]!;
  const done = new Set(longest);
  let frontier = Infinity;
  searchOps.forEach((s, i) => {
    if (!done.has(i)) frontier = Math.min(frontier, s.completeNs);
  });
  const stuck: StuckOperation[] = [];
  const couldGo: StuckOperation[] = [];
  searchOps.forEach((s, i) => {
    if (done.has(i) || s.invokeNs > frontier) return;
    const reasons = states.map((st) => model.explain(st, compiled[i]!)).filter((r) => r !== "");
    if (reasons.length === states.length) stuck.push({ op: ops[i]!.op, reason: reasons[0]! });
    else {
      couldGo.push({
        op: ops[i]!.op,
        reason: "it can go next here, but every order of the operations after it fails further on",
      });
    }
  });
  // When each candidate can go next on its own, the failure is in what follows: list them.
  if (stuck.length === 0) stuck.push(...couldGo);
  const lin = longest.map((i) => ops[i]!.id);
  const shown = longest.slice(-EXPLAIN_TAIL_OPS);
  const lines = [
    `not linearizable: keys ${keys.keys.map((k) => JSON.stringify(k)).join(", ")}` +
      ` (a sub-history of ${ops.length} operations${cutNote}).`,
    longest.length === 0
      ? "No operation can go first."
      : `The longest order that respects real time and etcd's semantics has ${longest.length} ` +
        `operations${longest.length > shown.length ? `; its last ${shown.length}` : ""}:`,
    ...shown.map((i) => `  ${describeOperation(ops[i]!.op, ops[i]!.id)}`),
    `After it the store holds ${model.describeState(state)},`,
    "and none of the operations that must come next can:",
    ...stuck.map((s) => `  ${describeOperation(s.op, s.op.id)}: ${s.reason}`),
  ];
  return { explanation: lines.join("\n"), stuck, linearization: lin };
}

/**
 * Checks that `history` is linearizable under etcd's key-value semantics. Returns "ok",
 * "illegal" (with the smallest failing sub-history found, a partial linearization and an
 * explanation) or "unknown" when the step or time budget ran out. Throws CheckerInputError on a
 * malformed history. See the module comment for the method.
 */
export function checkLinearizability(
  history: readonly KvOperation[],
  options: LinearizabilityOptions = {},
): LinearizabilityResult {
  const normalised = normalise(history, options.watched);
  const ops = normalised.ops;
  const violation = normalised.violation ?? precheck(ops, options.initial);
  if (violation !== undefined) {
    const keys = new Set<string>();
    for (const c of violation.ops) for (const k of keysOf(c.op).keys) keys.add(k);
    return {
      verdict: "illegal",
      explanation: violation.explanation,
      keys: [...keys].sort(),
      history: violation.ops.map((c) => c.op),
      linearization: [],
      stuck: [],
      steps: 0,
    };
  }
  const budget: SearchBudget = {
    stepsLeft: options.maxSteps ?? DEFAULT_MAX_STEPS,
    deadlineMs: performance.now() + (options.timeBudgetMs ?? DEFAULT_TIME_BUDGET_MS),
    maxMemoBytes: options.maxMemoBytes ?? DEFAULT_MAX_MEMO_BYTES,
  };
  const partitions = partition(ops, options.initial);
  const ctx: SearchContext = { initial: options.initial, free: freeRevisions(ops) };
  let steps = 0;
  for (let p = 0; p < partitions.length; p++) {
    const { keys, ops: pops } = partitions[p]!;
    const r = searchPartitionPhased(keys, pops, ctx, budget);
    steps += r.steps;
    if (r.kind === "ok") continue;
    if (r.kind === "unknown") {
      return {
        verdict: "unknown",
        reason: {
          steps: `step budget of ${options.maxSteps ?? DEFAULT_MAX_STEPS} model steps exhausted`,
          time: `time budget of ${options.timeBudgetMs ?? DEFAULT_TIME_BUDGET_MS} ms exhausted`,
          memory: `memo budget of ${budget.maxMemoBytes} bytes exhausted`,
        }[r.reason],
        keys: partitions.slice(p).flatMap((q) => [...q.keys.keys]),
        steps,
      };
    }
    let failing = { ops: pops, search: r };
    let cutNote = "";
    if (options.minimize ?? true) {
      const m = minimise(keys, pops, ctx, r.steps, budget.deadlineMs, budget.maxMemoBytes);
      if (m !== undefined && m.ops.length < pops.length) {
        failing = m;
        cutNote = `, cut from ${pops.length} at the earliest completion that still fails; ops in flight there count as "may have happened"`;
      }
    }
    const report = explainPartition(keys, failing.ops, failing.search, cutNote);
    return {
      verdict: "illegal",
      explanation: report.explanation,
      keys: [...keys.keys],
      history: failing.ops.map((c) => c.op),
      linearization: report.linearization,
      stuck: report.stuck,
      steps,
    };
  }
  return { verdict: "ok", partitions: partitions.length, steps };
}
