/**
 * Whole-history checks that need no search, run before the per-partition linearizability search.
 * They cover what partitioning by key cannot see (etcd's revision counter is shared by every key)
 * and give short, exact explanations for the common bugs:
 * - a read returned a value no write in the history (or the initial state) ever wrote;
 * - a read's mod revision is above its own header revision, or its create revision above its mod;
 * - two writes took the same revision;
 * - a read returned mod revision M for key k, but the write at revision M did not write that
 *   value to k;
 * - real-time order against revisions: when A completed before B was invoked, B's revision must
 *   be ≥ A's, and > A's when B writes (etcd's revision is a single counter that every write
 *   increments, and a linearizable read is at the revision of its linearization point).
 */
import type { KvInitialState, KvOperation, KvRecord, TxnOp } from "./history.js";
import { describeOperation } from "./history.js";

/** An operation as the checker holds it: normalised times and its stable id. */
export interface CheckedOp {
  id: number;
  op: KvOperation;
  invokeNs: number;
  /** +Infinity when the output is unknown or the op was patched from a pending one. */
  completeNs: number;
}

/** A whole-history violation: what is wrong and the operations that show it. */
export interface PrecheckViolation {
  explanation: string;
  ops: CheckedOp[];
}

/** One key-value a read returned, with the header revision of its response. */
export interface Observation {
  key: string;
  kv: KvRecord;
  headerRevision: number | undefined;
}

/** The branch ops a completed op ran, each with its result when recorded. */
function takenBranch(op: KvOperation): { ops: readonly TxnOp[]; results: readonly unknown[] } {
  const input = op.input;
  const out = op.output;
  if (out === undefined) return { ops: [], results: [] };
  if (input.type !== "txn") return { ops: [input], results: [out] };
  if (out.type !== "txn") return { ops: [], results: [] };
  return { ops: out.succeeded ? input.success : input.failure, results: out.results ?? [] };
}

/** observations() of each op, computed once (several checks and the partitioner ask). */
const observationCache = new WeakMap<KvOperation, readonly Observation[]>();

/** Every key-value the (completed) op's reads returned. */
export function observations(op: KvOperation): readonly Observation[] {
  let cached = observationCache.get(op);
  if (cached === undefined) observationCache.set(op, (cached = computeObservations(op)));
  return cached;
}

function computeObservations(op: KvOperation): Observation[] {
  const { ops, results } = takenBranch(op);
  const header = op.output?.revision;
  const out: Observation[] = [];
  ops.forEach((o, i) => {
    const r = results[i] as
      | { type: "get"; kv: KvRecord | null }
      | { type: "range"; kvs: (KvRecord & { key: string })[] }
      | { type: string }
      | undefined;
    if (r === undefined) return;
    if (o.type === "get" && r.type === "get") {
      const kv = (r as { kv: KvRecord | null }).kv;
      if (kv !== null) out.push({ key: o.key, kv, headerRevision: header });
    } else if (o.type === "range" && r.type === "range") {
      for (const kv of (r as { kvs: (KvRecord & { key: string })[] }).kvs) {
        out.push({ key: kv.key, kv, headerRevision: header });
      }
    }
  });
  return out;
}

/**
 * What a completed op wrote: key -> value (put) or null (delete), and whether the effect on keys
 * not listed is known to be none. Undefined when the op did not write (or it cannot be told).
 */
export function writeEffects(op: KvOperation): Map<string, string | null> | undefined {
  const { ops, results } = takenBranch(op);
  const effects = new Map<string, string | null>();
  ops.forEach((o, i) => {
    if (o.type === "put") effects.set(o.key, o.value);
    if (o.type === "delete") {
      const r = results[i] as { type: string; deleted?: number } | undefined;
      if (r?.type === "delete" && (r.deleted ?? 0) > 0) effects.set(o.key, null);
    }
  });
  return effects.size > 0 ? effects : undefined;
}

/** True when a completed op certainly changed the store (so its revision is a new one). */
function isWrite(op: KvOperation): boolean {
  return writeEffects(op) !== undefined;
}

/** Keys a txn branch could write (puts and deletes), for "did not write k" decisions. */
function mayWriteKeys(op: KvOperation): Set<string> {
  const keys = new Set<string>();
  const input = op.input;
  const all = input.type === "txn" ? [...input.success, ...input.failure] : [input];
  for (const o of all) if (o.type === "put" || o.type === "delete") keys.add(o.key);
  return keys;
}

/** The values ever written to each key: by any op of the history, or the initial state. */
function writtenValues(
  ops: readonly CheckedOp[],
  initial: KvInitialState | undefined,
): Map<string, Set<string>> {
  const written = new Map<string, Set<string>>();
  const add = (k: string, v: string) => {
    let s = written.get(k);
    if (s === undefined) written.set(k, (s = new Set()));
    s.add(v);
  };
  for (const kv of initial?.kvs ?? []) add(kv.key, kv.value);
  for (const { op } of ops) {
    const input = op.input;
    const all = input.type === "txn" ? [...input.success, ...input.failure] : [input];
    for (const o of all) if (o.type === "put") add(o.key, o.value);
  }
  return written;
}

/** Runs every whole-history check; the first violation found, or undefined. */
export function precheck(
  ops: readonly CheckedOp[],
  initial: KvInitialState | undefined,
): PrecheckViolation | undefined {
  return (
    checkNeverWritten(ops, initial) ??
    checkResponseRevisions(ops) ??
    checkWriteRevisions(ops) ??
    checkRealTimeRevisions(ops)
  );
}

function checkNeverWritten(
  ops: readonly CheckedOp[],
  initial: KvInitialState | undefined,
): PrecheckViolation | undefined {
  const written = writtenValues(ops, initial);
  for (const c of ops) {
    for (const o of observations(c.op)) {
      if (written.get(o.key)?.has(o.kv.value)) continue;
      return {
        explanation:
          `read of a value never written: ${describeOperation(c.op, c.id)} returned ` +
          `${JSON.stringify(o.key)} = ${JSON.stringify(o.kv.value)}, but no operation in the history ` +
          `(nor the initial state) wrote that value to that key`,
        ops: [c],
      };
    }
  }
  return undefined;
}

function checkResponseRevisions(ops: readonly CheckedOp[]): PrecheckViolation | undefined {
  for (const c of ops) {
    for (const o of observations(c.op)) {
      const { modRevision: mod, createRevision: create } = o.kv;
      if (mod !== undefined && o.headerRevision !== undefined && mod > o.headerRevision) {
        return {
          explanation:
            `${describeOperation(c.op, c.id)} returned ${JSON.stringify(o.key)} with mod revision ` +
            `${mod}, above its own header revision ${o.headerRevision}`,
          ops: [c],
        };
      }
      if (mod !== undefined && create !== undefined && create > mod) {
        return {
          explanation:
            `${describeOperation(c.op, c.id)} returned ${JSON.stringify(o.key)} with create ` +
            `revision ${create} above its mod revision ${mod}`,
          ops: [c],
        };
      }
    }
  }
  return undefined;
}

function checkWriteRevisions(ops: readonly CheckedOp[]): PrecheckViolation | undefined {
  const byRevision = new Map<number, CheckedOp>();
  for (const c of ops) {
    const rev = c.op.output?.revision;
    if (rev === undefined || !isWrite(c.op)) continue;
    const other = byRevision.get(rev);
    if (other !== undefined) {
      return {
        explanation:
          `two writes took revision ${rev}: ${describeOperation(other.op, other.id)} and ` +
          `${describeOperation(c.op, c.id)} (every write gets a new revision)`,
        ops: [other, c],
      };
    }
    byRevision.set(rev, c);
  }
  for (const c of ops) {
    for (const o of observations(c.op)) {
      const mod = o.kv.modRevision;
      if (mod === undefined) continue;
      const w = byRevision.get(mod);
      if (w === undefined) continue;
      const effect = writeEffects(w.op)?.get(o.key);
      const couldWrite = mayWriteKeys(w.op).has(o.key);
      const wrong =
        effect === null ||
        (effect !== undefined && effect !== o.kv.value) ||
        (effect === undefined && !couldWrite);
      if (!wrong) continue;
      const what =
        effect === null
          ? "deleted that key"
          : effect !== undefined
            ? `wrote ${JSON.stringify(effect)} there`
            : "did not write that key";
      return {
        explanation:
          `${describeOperation(c.op, c.id)} returned ${JSON.stringify(o.key)} = ` +
          `${JSON.stringify(o.kv.value)} with mod revision ${mod}, but the write at revision ${mod}, ` +
          `${describeOperation(w.op, w.id)}, ${what}`,
        ops: [w, c],
      };
    }
  }
  return undefined;
}

function checkRealTimeRevisions(ops: readonly CheckedOp[]): PrecheckViolation | undefined {
  const known = ops.filter((c) => c.op.output?.revision !== undefined);
  const byComplete = known
    .filter((c) => Number.isFinite(c.completeNs))
    .sort((a, b) => a.completeNs - b.completeNs);
  const byInvoke = [...known].sort((a, b) => a.invokeNs - b.invokeNs);
  let j = 0;
  let maxRev = -Infinity;
  let maxOp: CheckedOp | undefined;
  for (const b of byInvoke) {
    while (j < byComplete.length && byComplete[j]!.completeNs < b.invokeNs) {
      const a = byComplete[j++]!;
      const rev = a.op.output!.revision!;
      if (rev > maxRev) {
        maxRev = rev;
        maxOp = a;
      }
    }
    if (maxOp === undefined) continue;
    const rev = b.op.output!.revision!;
    const write = isWrite(b.op);
    if (write ? rev > maxRev : rev >= maxRev) continue;
    const a = maxOp;
    return {
      explanation:
        `revision order contradicts real time: ${describeOperation(a.op, a.id)} completed at revision ` +
        `${maxRev} before ${describeOperation(b.op, b.id)} was invoked, so ${
          write
            ? `that write's revision must be above ${maxRev}`
            : `its read must be at revision ≥ ${maxRev}`
        }, but it is ${rev}` +
        (write
          ? " (its effect would be ordered before an operation that finished first)"
          : " (a stale read)"),
      ops: [a, b],
    };
  }
  return undefined;
}
