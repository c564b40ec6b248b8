/**
 * Compiling operations for one partition of the linearizability search (kv-model.ts): keys
 * become slot indexes into the partition's sorted keys, a prefix range becomes the slots it
 * covers, a plain request becomes a txn with no compares and one op, and the response becomes the
 * outcome, revision and per-op results the model checks. A response etcd can never give (a range
 * result out of order or outside its prefix, results that do not match the branch) compiles to an
 * op no state accepts, with the reason.
 */
import type { KvOperation, KvRecord, TxnCompare } from "./history.js";
import { checkerAssert } from "./errors.js";

/** One op of a compiled txn branch; keys are slot indexes into the partition's sorted keys. */
export type CompiledTxnOp =
  | { t: "put"; slot: number; value: string }
  | { t: "get"; slot: number }
  | { t: "range"; prefix: string; slots: readonly number[] }
  | { t: "delete"; slot: number };

/** A compiled result of one branch op; range records are aligned with the op's slots. */
export type CompiledResult =
  | { t: "put" }
  | { t: "get"; kv: KvRecord | null }
  | { t: "range"; kvs: readonly (KvRecord | null)[] }
  | { t: "delete"; deleted: number };

export interface CompiledCompare {
  slot: number;
  target: TxnCompare["target"];
  result: TxnCompare["result"];
  value: string | number;
}

/** An operation compiled against a partition's keys. */
export interface CompiledOp {
  compare: readonly CompiledCompare[];
  success: readonly CompiledTxnOp[];
  failure: readonly CompiledTxnOp[];
  /** The outcome the response reported; undefined when the response is unknown. */
  succeeded?: boolean;
  /** The response header revision, when known. */
  revision?: number;
  /** The taken branch's results (aligned with its ops); undefined = not checked. */
  results?: readonly CompiledResult[];
  /** Set when the response is one etcd can never give (e.g. a range result out of order). */
  invalid?: string;
}

/** The keys of a partition, sorted, with their slot indexes. */
export class PartitionKeys {
  readonly keys: readonly string[];
  readonly #index = new Map<string, number>();
  constructor(keys: Iterable<string>) {
    this.keys = [...new Set(keys)].sort(compareStrings);
    this.keys.forEach((k, i) => this.#index.set(k, i));
  }
  /** The slot of `key`; throws when the key is not in the partition (a partitioning bug). */
  slot(key: string): number {
    const i = this.#index.get(key);
    checkerAssert(i !== undefined, `key ${JSON.stringify(key)} not in its partition`);
    return i;
  }
  has(key: string): boolean {
    return this.#index.has(key);
  }
  /** Slots of the keys starting with `prefix`, in key order. */
  prefixSlots(prefix: string): number[] {
    const out: number[] = [];
    this.keys.forEach((k, i) => {
      if (k.startsWith(prefix)) out.push(i);
    });
    return out;
  }
}

/** Code-unit order: etcd's byte order for ASCII / latin1 keys and values. */
export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function compileTxnOp(keys: PartitionKeys, op: KvOperation["input"]): CompiledTxnOp {
  switch (op.type) {
    case "put":
      return { t: "put", slot: keys.slot(op.key), value: op.value };
    case "get":
      return { t: "get", slot: keys.slot(op.key) };
    case "delete":
      return { t: "delete", slot: keys.slot(op.key) };
    case "range":
      return { t: "range", prefix: op.prefix, slots: keys.prefixSlots(op.prefix) };
    case "txn":
      checkerAssert(false, "nested txn");
  }
}

/**
 * Aligns a range response with the op's slots; a string when the response cannot be right
 * (a key outside the prefix or unknown to the partition, keys out of order or repeated).
 */
function alignRange(
  keys: PartitionKeys,
  op: Extract<CompiledTxnOp, { t: "range" }>,
  kvs: readonly (KvRecord & { key: string })[],
): (KvRecord | null)[] | string {
  const aligned: (KvRecord | null)[] = op.slots.map(() => null);
  let lastKey: string | undefined;
  for (const kv of kvs) {
    if (!kv.key.startsWith(op.prefix)) {
      return `range(prefix ${JSON.stringify(op.prefix)}) returned key ${JSON.stringify(kv.key)} outside the prefix`;
    }
    if (lastKey !== undefined && compareStrings(lastKey, kv.key) >= 0) {
      return `range(prefix ${JSON.stringify(op.prefix)}) returned keys out of order or twice (${JSON.stringify(lastKey)}, ${JSON.stringify(kv.key)})`;
    }
    lastKey = kv.key;
    const pos = op.slots.indexOf(keys.slot(kv.key));
    checkerAssert(pos >= 0, "range key with the prefix not among the prefix slots");
    aligned[pos] = kv;
  }
  return aligned;
}

/**
 * Compiles a (validated) operation against a partition's keys. An output the store can never
 * produce compiles to an op with `invalid` set, which no state accepts.
 */
export function compileOp(keys: PartitionKeys, op: KvOperation): CompiledOp {
  const input = op.input;
  const out = op.output;
  const isTxn = input.type === "txn";
  const compare = isTxn
    ? input.compare.map((c) => ({
        slot: keys.slot(c.key),
        target: c.target,
        result: c.result,
        value: c.value,
      }))
    : [];
  const success = isTxn
    ? input.success.map((o) => compileTxnOp(keys, o))
    : [compileTxnOp(keys, input)];
  const failure = isTxn ? input.failure.map((o) => compileTxnOp(keys, o)) : [];
  const compiled: CompiledOp = { compare, success, failure };
  if (out === undefined) return compiled;
  if (out.revision !== undefined) compiled.revision = out.revision;
  compiled.succeeded = out.type === "txn" ? out.succeeded : true;
  const branch = compiled.succeeded ? success : failure;
  let raw: readonly (
    | { type: "put" }
    | { type: "get"; kv: KvRecord | null }
    | { type: "range"; kvs: (KvRecord & { key: string })[] }
    | { type: "delete"; deleted: number }
  )[];
  if (out.type === "txn") {
    if (out.results === undefined) return compiled;
    raw = out.results;
  } else {
    raw = [out];
  }
  if (raw.length !== branch.length) {
    compiled.invalid = `the response has ${raw.length} results for a branch of ${branch.length} ops`;
    return compiled;
  }
  const results: CompiledResult[] = [];
  for (let i = 0; i < raw.length; i++) {
    const r = raw[i]!;
    const o = branch[i]!;
    if (r.type !== o.t) {
      compiled.invalid = `result ${i} is a ${r.type} response to a ${o.t}`;
      return compiled;
    }
    if (r.type === "range" && o.t === "range") {
      const aligned = alignRange(keys, o, r.kvs);
      if (typeof aligned === "string") {
        compiled.invalid = aligned;
        return compiled;
      }
      results.push({ t: "range", kvs: aligned });
    } else if (r.type === "get") {
      results.push({ t: "get", kv: r.kv });
    } else if (r.type === "delete") {
      results.push({ t: "delete", deleted: r.deleted });
    } else {
      results.push({ t: "put" });
    }
  }
  compiled.results = results;
  return compiled;
}
