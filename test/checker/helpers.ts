// Builders for hand-made key-value histories: each op is [invoke, complete] in ns, a client id,
// an input and an output; `pending` marks a call whose outcome is unknown.
import type {
  KeyedKvRecord,
  KvInput,
  KvOperation,
  KvOutput,
  KvRecord,
  TxnOpResult,
} from "../../lib/checker/index.js";

/** A history under construction: ops get ids in order. */
export class H {
  readonly ops: KvOperation[] = [];

  #push(client: number, t: [number, number], input: KvInput, output: KvOutput | undefined): this {
    const op: KvOperation = {
      id: this.ops.length,
      clientId: client,
      input,
      invokeNs: t[0],
      completeNs: output === undefined ? Infinity : t[1],
    };
    if (output !== undefined) op.output = output;
    this.ops.push(op);
    return this;
  }

  put(client: number, t: [number, number], key: string, value: string, revision?: number): this {
    return this.#push(client, t, { type: "put", key, value }, rev({ type: "put" }, revision));
  }

  /** A put whose response was lost (may have happened). */
  putPending(client: number, invokeNs: number, key: string, value: string): this {
    return this.#push(client, [invokeNs, Infinity], { type: "put", key, value }, undefined);
  }

  get(
    client: number,
    t: [number, number],
    key: string,
    kv: KvRecord | string | null,
    revision?: number,
  ): this {
    const rec = typeof kv === "string" ? { value: kv } : kv;
    return this.#push(client, t, { type: "get", key }, rev({ type: "get", kv: rec }, revision));
  }

  range(
    client: number,
    t: [number, number],
    prefix: string,
    kvs: KeyedKvRecord[],
    revision?: number,
  ): this {
    return this.#push(client, t, { type: "range", prefix }, rev({ type: "range", kvs }, revision));
  }

  del(client: number, t: [number, number], key: string, deleted: number, revision?: number): this {
    return this.#push(
      client,
      t,
      { type: "delete", key },
      rev({ type: "delete", deleted }, revision),
    );
  }

  txn(
    client: number,
    t: [number, number],
    input: Extract<KvInput, { type: "txn" }>,
    succeeded: boolean | undefined,
    revision?: number,
    results?: TxnOpResult[],
  ): this {
    if (succeeded === undefined) return this.#push(client, [t[0], Infinity], input, undefined);
    const out: KvOutput = { type: "txn", succeeded };
    if (results !== undefined) out.results = results;
    return this.#push(client, t, input, rev(out, revision));
  }
}

function rev<T extends KvOutput>(out: T, revision: number | undefined): T {
  if (revision !== undefined) out.revision = revision;
  return out;
}

/** A KvRecord with revisions: kv("v", mod, create, version). */
export function kv(value: string, mod: number, create?: number, version?: number): KvRecord {
  const r: KvRecord = { value, modRevision: mod };
  if (create !== undefined) r.createRevision = create;
  if (version !== undefined) r.version = version;
  return r;
}
