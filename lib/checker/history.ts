/**
 * The shape of a recorded key-value history, as the linearizability checker reads it: one
 * {@link KvOperation} per client call, with what was asked (input), what came back (output, or
 * nothing when the call failed ambiguously) and when it was invoked and completed.
 *
 * Keys and values are strings compared by UTF-16 code unit, which is etcd's byte order for ASCII
 * and for bytes decoded as latin1. Times are nanoseconds from any common origin (the recorder uses
 * process.hrtime). Revisions are etcd's store revisions; every revision field is optional, and
 * each one given makes the check stronger.
 */

/** A key's value as a read returns it (etcd's mvccpb.KeyValue, the fields the checker uses). */
export interface KvRecord {
  value: string;
  /** Revision of the last write to the key (kv.mod_revision). */
  modRevision?: number;
  /** Revision of the write that created the key (kv.create_revision). */
  createRevision?: number;
  /** Number of writes since the key was created (kv.version). */
  version?: number;
}

/** A {@link KvRecord} with its key, as a range over several keys returns it. */
export interface KeyedKvRecord extends KvRecord {
  key: string;
}

/** etcd's Compare.target: value, mod_revision, create_revision or version of the key. */
export type CompareTarget = "value" | "mod" | "create" | "version";
/** etcd's Compare.result. */
export type CompareResult = "equal" | "not_equal" | "greater" | "less";

/**
 * One comparison of a txn (etcd's Compare on a single key). `value` is a string for target
 * "value" and a number for the others. As etcd's applyCompare: a "value" comparison on a missing
 * key is false whatever the operator; the other targets compare against 0 for a missing key.
 */
export interface TxnCompare {
  key: string;
  target: CompareTarget;
  result: CompareResult;
  value: string | number;
}

/**
 * A single request: put, get (range of one key), range over a prefix (etcd's WithPrefix, results
 * sorted by key, no limit) or delete of one key. These are also the operations a txn branch runs.
 */
export type TxnOp =
  | { type: "put"; key: string; value: string }
  | { type: "get"; key: string }
  | { type: "range"; prefix: string }
  | { type: "delete"; key: string };

/** A txn: if every compare holds, run `success` in order, else `failure` (etcd's TxnRequest). */
export interface TxnInput {
  type: "txn";
  compare: TxnCompare[];
  success: TxnOp[];
  failure: TxnOp[];
}

/** What a client asked for. */
export type KvInput = TxnOp | TxnInput;

/** The response to one op of a txn branch (etcd's ResponseOp). */
export type TxnOpResult =
  | { type: "put" }
  | { type: "get"; kv: KvRecord | null }
  | { type: "range"; kvs: KeyedKvRecord[] }
  | { type: "delete"; deleted: number };

/**
 * What came back. `revision` is the response header's revision: the store revision the request
 * read at, or, for a request that wrote, the revision of its write.
 */
export type KvOutput =
  | { type: "put"; revision?: number }
  | { type: "get"; revision?: number; kv: KvRecord | null }
  | { type: "range"; revision?: number; kvs: KeyedKvRecord[] }
  | { type: "delete"; revision?: number; deleted: number }
  | {
      type: "txn";
      revision?: number;
      succeeded: boolean;
      /** The responses of the branch taken, in order; undefined = not recorded. */
      results?: TxnOpResult[];
    };

/**
 * One client call. `output` undefined means the call failed ambiguously (a timeout, UNAVAILABLE
 * after the request was sent, a lost leader): it may or may not have taken effect, at any time
 * after `invokeNs`, so the checker treats it as pending forever (completeNs = +Infinity) whatever
 * `completeNs` says. A call that definitely failed (rejected before it could be applied) does not
 * belong in the history at all.
 */
export interface KvOperation {
  /** Stable id used in reports; defaults to the operation's index in the history. */
  id?: number;
  /** Which client made the call (reports only: the checker does not assume clients are sequential). */
  clientId: number;
  input: KvInput;
  output?: KvOutput;
  /** When the call was invoked, ns. */
  invokeNs: number;
  /** When the response arrived, ns; +Infinity when unknown. */
  completeNs: number;
}

/** A known store state to start from: etcd's revision and the keys that exist at it. */
export interface KvInitialState {
  /** Store revision before the history starts (a fresh etcd is at 1). */
  revision: number;
  kvs: Array<KeyedKvRecord & { modRevision: number; createRevision: number; version: number }>;
}

/** A compare-and-swap on the value: `if value(key) == expected then put(key, value)`. */
export function casValue(key: string, expected: string, value: string): TxnInput {
  return {
    type: "txn",
    compare: [{ key, target: "value", result: "equal", value: expected }],
    success: [{ type: "put", key, value }],
    failure: [],
  };
}

/** A compare-and-swap on the mod revision: `if mod_revision(key) == mod then put(key, value)`. */
export function casModRevision(key: string, modRevision: number, value: string): TxnInput {
  return {
    type: "txn",
    compare: [{ key, target: "mod", result: "equal", value: modRevision }],
    success: [{ type: "put", key, value }],
    failure: [],
  };
}

/** The keys a single op names (a range names none: its keys depend on the store). */
export function opKey(op: TxnOp): string | undefined {
  return op.type === "range" ? undefined : op.key;
}

/** True when the input can change the store (a put or delete, or a txn with one in a branch). */
export function inputMayWrite(input: KvInput): boolean {
  if (input.type === "put" || input.type === "delete") return true;
  if (input.type !== "txn") return false;
  return [...input.success, ...input.failure].some((o) => o.type === "put" || o.type === "delete");
}

function q(s: string): string {
  return JSON.stringify(s);
}

function describeRecord(kv: KvRecord | null): string {
  if (kv === null) return "(none)";
  const meta: string[] = [];
  if (kv.modRevision !== undefined) meta.push(`mod ${kv.modRevision}`);
  if (kv.createRevision !== undefined) meta.push(`create ${kv.createRevision}`);
  if (kv.version !== undefined) meta.push(`ver ${kv.version}`);
  return meta.length > 0 ? `${q(kv.value)} (${meta.join(", ")})` : q(kv.value);
}

function describeTxnOp(op: TxnOp): string {
  switch (op.type) {
    case "put":
      return `put(${q(op.key)}, ${q(op.value)})`;
    case "get":
      return `get(${q(op.key)})`;
    case "range":
      return `range(prefix ${q(op.prefix)})`;
    case "delete":
      return `delete(${q(op.key)})`;
  }
}

/** A one-line human form of an input, e.g. `put("k", "v")` or `txn(mod("k") == 5 ? put(…) : )`. */
export function describeInput(input: KvInput): string {
  if (input.type !== "txn") return describeTxnOp(input);
  const cmp = input.compare
    .map((c) => {
      const op = { equal: "==", not_equal: "!=", greater: ">", less: "<" }[c.result];
      const v = typeof c.value === "string" ? q(c.value) : String(c.value);
      return `${c.target}(${q(c.key)}) ${op} ${v}`;
    })
    .join(" && ");
  const branch = (ops: TxnOp[]) => ops.map(describeTxnOp).join(", ");
  return `txn(${cmp} ? ${branch(input.success)} : ${branch(input.failure)})`;
}

function describeResult(r: TxnOpResult): string {
  switch (r.type) {
    case "put":
      return "ok";
    case "get":
      return describeRecord(r.kv);
    case "range":
      return `[${r.kvs.map((kv) => `${q(kv.key)}=${describeRecord(kv)}`).join(", ")}]`;
    case "delete":
      return `deleted ${r.deleted}`;
  }
}

/** A one-line human form of an output, or "unknown (may have happened)". */
export function describeOutput(output: KvOutput | undefined): string {
  if (output === undefined) return "unknown (may have happened)";
  const rev = output.revision !== undefined ? ` @rev ${output.revision}` : "";
  switch (output.type) {
    case "put":
      return `ok${rev}`;
    case "get":
      return `${describeRecord(output.kv)}${rev}`;
    case "range":
      return `${describeResult({ type: "range", kvs: output.kvs })}${rev}`;
    case "delete":
      return `deleted ${output.deleted}${rev}`;
    case "txn": {
      const results =
        output.results === undefined ? "" : ` [${output.results.map(describeResult).join("; ")}]`;
      return `${output.succeeded ? "succeeded" : "failed"}${results}${rev}`;
    }
  }
}

/** A time for reports: ms with µs precision, or plain ns below 1 ms. */
function time(ns: number): string {
  if (!Number.isFinite(ns)) return "∞";
  return ns >= 1e6 ? `${(ns / 1e6).toFixed(3)}ms` : `${ns}ns`;
}

/** `#id client c: input -> output [invoke..complete ms]`, for reports. */
export function describeOperation(op: KvOperation, id: number = op.id ?? -1): string {
  const complete = op.output === undefined ? Infinity : op.completeNs;
  return (
    `#${id} client ${op.clientId}: ${describeInput(op.input)} -> ${describeOutput(op.output)} ` +
    `[${time(op.invokeNs)}..${time(complete)}]`
  );
}
