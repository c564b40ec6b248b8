/**
 * Preparing a history for the linearizability search: validation, ids, and what can be learned
 * about the calls whose response was lost (pending forever, output unknown). Each such call
 * multiplies the search (it could have taken effect at any time after its invoke), so everything
 * the rest of the history proves about it is written into it first, as etcd's robustness tests
 * "patch" their histories before handing them to Porcupine:
 * - from reads (always): a write whose value (unique to its key) a read returned happened before
 *   that read completed, and a plain put seen with mod revision M happened at revision M;
 * - from a watch (when the caller has one over every key, complete up to a revision at or above
 *   every revision the history saw, and checked by checkWatches): a lost write whose put the watch
 *   delivered happened at that event's revision, taking the branch that holds that put; one of
 *   which the watch delivered nothing did not happen, or happened with no effect any operation
 *   saw, and is dropped.
 */
import { CheckerInputError } from "./errors.js";
import type { KvOperation, KvOutput, TxnOp } from "./history.js";
import { describeOperation, inputMayWrite } from "./history.js";
import { observations, writeEffects, type CheckedOp, type PrecheckViolation } from "./precheck.js";
import type { WatchWrite } from "./watch.js";

/**
 * Every event a watch over all the history's keys delivered, complete up to `completeRevision`
 * (the watch's last revision: no write at or below it is missing).
 */
export interface WatchedWrites {
  events: readonly WatchWrite[];
  completeRevision: number;
}

/** Every put and delete an input can make, in either branch. */
function writeOps(op: KvOperation): Extract<TxnOp, { type: "put" | "delete" }>[] {
  const input = op.input;
  const all = input.type === "txn" ? [...input.success, ...input.failure] : [input];
  return all.filter(
    (o): o is Extract<TxnOp, { type: "put" | "delete" }> => o.type !== "get" && o.type !== "range",
  );
}

function kvKey(key: string, value: string): string {
  return `${key}\u0000${value}`;
}

/** How many ops of the history may put each value to each key. */
function writerCounts(ops: readonly CheckedOp[]): Map<string, number> {
  const writers = new Map<string, number>();
  for (const { op } of ops) {
    for (const o of writeOps(op)) {
      if (o.type === "put")
        writers.set(kvKey(o.key, o.value), (writers.get(kvKey(o.key, o.value)) ?? 0) + 1);
    }
  }
  return writers;
}

function validate(op: KvOperation, index: number): void {
  if (!Number.isFinite(op.invokeNs)) throw new CheckerInputError(index, "invokeNs is not finite");
  if (Number.isNaN(op.completeNs) || op.completeNs < op.invokeNs) {
    throw new CheckerInputError(index, "completeNs is before invokeNs");
  }
  const out = op.output;
  if (out !== undefined && out.type !== op.input.type) {
    throw new CheckerInputError(index, `a ${out.type} output for a ${op.input.type} input`);
  }
  if (op.input.type === "txn") {
    for (const c of op.input.compare) {
      if ((c.target === "value") !== (typeof c.value === "string")) {
        throw new CheckerInputError(index, `compare ${c.target} with a ${typeof c.value} value`);
      }
    }
    for (const o of [...op.input.success, ...op.input.failure]) {
      if ((o.type as string) === "txn") throw new CheckerInputError(index, "nested txn");
    }
  }
}

/**
 * Step 1 of checkLinearizability: validates the history (throws CheckerInputError), gives every op
 * its id, makes ops with an unknown output pending forever, drops those that cannot write, and
 * resolves writes whose response was lost from what reads (and, when given, a complete watch) saw.
 */
export function normalise(
  history: readonly KvOperation[],
  watched: WatchedWrites | undefined,
): { ops: CheckedOp[]; violation?: PrecheckViolation } {
  const ops: CheckedOp[] = [];
  history.forEach((op, index) => {
    validate(op, index);
    const id = op.id ?? index;
    if (op.output === undefined) {
      if (!inputMayWrite(op.input)) return;
      ops.push({
        id,
        op: { ...op, id, completeNs: Infinity },
        invokeNs: op.invokeNs,
        completeNs: Infinity,
      });
      return;
    }
    ops.push({ id, op: { ...op, id }, invokeNs: op.invokeNs, completeNs: op.completeNs });
  });
  const fromWatch = watched === undefined ? { ops } : resolveFromWatch(ops, watched);
  patchAmbiguousWrites(fromWatch.ops);
  boundByRevision(fromWatch.ops);
  return fromWatch;
}

/**
 * What reads reveal about writes whose response was lost, when the value they wrote to a key is
 * written by no other op (as etcd's robustness tests patch their histories):
 * - the write happened, before the earliest completion of a read that returned the value: that
 *   becomes its completion time (no longer pending forever);
 * - a plain put seen with mod revision M happened at revision M: that becomes its response.
 */
function patchAmbiguousWrites(ops: CheckedOp[]): void {
  const writers = writerCounts(ops);
  const seen = new Map<string, { revision: number | undefined; completeNs: number }>();
  for (const c of ops) {
    for (const o of observations(c.op)) {
      const k = kvKey(o.key, o.kv.value);
      const prior = seen.get(k);
      seen.set(k, {
        revision: o.kv.modRevision ?? prior?.revision,
        completeNs: Math.min(c.completeNs, prior?.completeNs ?? Infinity),
      });
    }
  }
  for (const c of ops) {
    if (c.op.output !== undefined) continue;
    for (const o of writeOps(c.op)) {
      if (o.type !== "put") continue;
      const k = kvKey(o.key, o.value);
      const s = seen.get(k);
      if (s === undefined || writers.get(k) !== 1) continue;
      c.completeNs = Math.min(c.completeNs, s.completeNs);
      if (c.op.input.type === "put" && s.revision !== undefined) {
        c.op = { ...c.op, output: { type: "put", revision: s.revision } };
      }
    }
  }
}

/**
 * Resolves lost writes from a complete watch (see the module comment). A lost write the watch
 * shows nothing of while a read returned its value is a contradiction: returned as a violation.
 */
function resolveFromWatch(
  ops: CheckedOp[],
  watched: WatchedWrites,
): { ops: CheckedOp[]; violation?: PrecheckViolation } {
  let maxSeen = 0;
  for (const c of ops) maxSeen = Math.max(maxSeen, c.op.output?.revision ?? 0);
  if (maxSeen > watched.completeRevision) {
    throw new CheckerInputError(
      -1,
      `the watch is complete up to revision ${watched.completeRevision}, below revision ${maxSeen} the history saw`,
    );
  }
  const writers = writerCounts(ops);
  const putAt = new Map<string, number>(); // "key\0value" -> revision of the event
  for (const e of watched.events) {
    if (e.type === "put" && e.value !== undefined) putAt.set(kvKey(e.key, e.value), e.revision);
  }
  // Delete events no completed op explains: a lost delete of that key may have made them.
  const explained = new Set<string>();
  for (const c of ops) {
    const rev = c.op.output?.revision;
    if (rev === undefined) continue;
    for (const [key, value] of writeEffects(c.op) ?? []) {
      if (value === null) explained.add(`${rev}\u0000${key}`);
    }
  }
  const unexplainedDeletes = new Set<string>();
  for (const e of watched.events) {
    if (e.type === "delete" && !explained.has(`${e.revision}\u0000${e.key}`))
      unexplainedDeletes.add(e.key);
  }
  const readers = new Map<string, CheckedOp>(); // "key\0value" -> a read that returned it
  for (const c of ops) for (const o of observations(c.op)) readers.set(kvKey(o.key, o.kv.value), c);
  const out: CheckedOp[] = [];
  for (const c of ops) {
    if (c.op.output !== undefined) {
      out.push(c);
      continue;
    }
    const input = c.op.input;
    let resolved: KvOutput | undefined;
    let undecided = false;
    for (const o of writeOps(c.op)) {
      if (o.type === "delete") {
        if (unexplainedDeletes.has(o.key)) undecided = true;
        continue;
      }
      const k = kvKey(o.key, o.value);
      if (writers.get(k) !== 1) {
        undecided = true;
        continue;
      }
      const revision = putAt.get(k);
      if (revision === undefined) continue;
      resolved =
        input.type === "txn"
          ? { type: "txn", revision, succeeded: input.success.includes(o) }
          : { type: "put", revision };
    }
    if (resolved !== undefined) {
      out.push({ ...c, op: { ...c.op, output: resolved } });
      continue;
    }
    if (undecided) {
      out.push(c);
      continue;
    }
    // The watch saw nothing of it: it did not happen (or changed nothing), so it goes, unless a
    // read returned what it wrote.
    for (const o of writeOps(c.op)) {
      const reader = o.type === "put" ? readers.get(kvKey(o.key, o.value)) : undefined;
      if (reader === undefined) continue;
      return {
        ops,
        violation: {
          explanation:
            `the watch (complete up to revision ${watched.completeRevision}) delivered no event of ` +
            `${describeOperation(c.op, c.id)}, whose response was lost, but ` +
            `${describeOperation(reader.op, reader.id)} returned the value it wrote`,
          ops: [c, reader],
        },
      };
    }
  }
  return { ops: out };
}

/**
 * A lost write now known to be at revision w took effect before every operation at a revision
 * above w (etcd's revision is one counter, read and written in linearization order), so before
 * the earliest completion of those: that becomes its completion time.
 */
function boundByRevision(ops: CheckedOp[]): void {
  const completed = ops
    .filter((c) => c.op.output?.revision !== undefined && Number.isFinite(c.completeNs))
    .sort((a, b) => a.op.output!.revision! - b.op.output!.revision!);
  // earliest[i]: the earliest completion among completed[i..].
  const earliest = new Array<number>(completed.length + 1).fill(Infinity);
  for (let i = completed.length - 1; i >= 0; i--) {
    earliest[i] = Math.min(earliest[i + 1]!, completed[i]!.completeNs);
  }
  for (const c of ops) {
    const w = c.op.output?.revision;
    if (w === undefined || Number.isFinite(c.completeNs)) continue;
    let lo = 0;
    let hi = completed.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (completed[mid]!.op.output!.revision! <= w) lo = mid + 1;
      else hi = mid;
    }
    // Never before its own invoke: a bound below it means the history is not linearizable,
    // which the search and the real-time checks report with the ops involved.
    c.completeNs = Math.max(c.invokeNs, earliest[lo]!);
  }
}
