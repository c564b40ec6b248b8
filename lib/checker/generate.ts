/**
 * Seeded linearizable histories, for testing and benchmarking the checker (and for a torture run
 * to check its checker before trusting a verdict): a workload runs against a plain sequential
 * reference store (a Map, independent of kv-model.ts), one operation at a time, each at its own
 * linearization point; each operation's invoke and complete times are then spread around that
 * point, so concurrent calls overlap as they would on a real cluster, while every client still
 * makes one call at a time. Some writes lose their response (output unknown, pending forever),
 * either after taking effect or without ever happening.
 */
import type {
  KeyedKvRecord,
  KvInput,
  KvOperation,
  KvOutput,
  TxnOp,
  TxnOpResult,
} from "./history.js";
import type { WatchWrite } from "./watch.js";

/** Options of {@link generateHistory}; every count is a bound the generator keeps. */
export interface GenerateOptions {
  seed: number;
  /** Number of operations (default 100). */
  operations?: number;
  /** Number of clients (default 4). */
  clients?: number;
  /** Keys (default ["a", "b", "c"]); a key's text up to its first "/" (or all of it) is a range prefix. */
  keys?: readonly string[];
  /** Mean gap between consecutive linearization points, ns (default 1000). */
  spacingNs?: number;
  /** Largest distance from a linearization point to its invoke or complete time, ns (default 3000). */
  overlapNs?: number;
  /** Probability a write's response is lost after it took effect (default 0.05). */
  lostAfterApplyProbability?: number;
  /** Probability a write's response is lost and it never took effect (default 0.03). */
  lostWithoutApplyProbability?: number;
  /** Record header, mod and create revisions in outputs (default true). */
  revisions?: boolean;
  /** Op kinds to draw from (default all). */
  kinds?: readonly OpKind[];
}

/** The kinds of operation a generated workload makes. */
export type OpKind = "put" | "get" | "delete" | "casValue" | "casMod" | "txn" | "range";

/** One version of a key in the reference store (value null = absent). */
export interface KeyVersion {
  value: string | null;
  modRevision: number;
  createRevision: number;
  version: number;
  /** Id of the operation that made this version (-1: the initial absent key). */
  writerId: number;
}

/** A generated history and what really happened. */
export interface GeneratedHistory {
  history: KvOperation[];
  /** Every version each key went through, in order (the first is "absent" at revision 1). */
  versions: Map<string, KeyVersion[]>;
  /** Ids of operations in the order they took effect (lost ones that never happened omitted). */
  linearization: number[];
  /** Every event the store made, as a watch over all keys would deliver them. */
  events: WatchWrite[];
  /** The store's revision at the end. */
  finalRevision: number;
}

const ALL_KINDS: readonly OpKind[] = ["put", "get", "delete", "casValue", "casMod", "txn", "range"];

/** mulberry32: a small seeded PRNG returning [0, 1). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface RefKv {
  value: string;
  mod: number;
  create: number;
  version: number;
}

/** The sequential reference: etcd's semantics on a Map, one revision counter. */
class ReferenceStore {
  readonly kvs = new Map<string, RefKv>();
  revision = 1; // a fresh etcd

  record(key: string, withRevisions: boolean): KeyedKvRecord | null {
    const kv = this.kvs.get(key);
    if (kv === undefined) return null;
    return withRevisions
      ? {
          key,
          value: kv.value,
          modRevision: kv.mod,
          createRevision: kv.create,
          version: kv.version,
        }
      : { key, value: kv.value, version: kv.version };
  }

  /** Runs a txn (a single op is a txn with one op and no compares); returns its output. */
  apply(input: KvInput, withRevisions: boolean): KvOutput {
    const isTxn = input.type === "txn";
    let succeeded = true;
    if (isTxn) {
      for (const c of input.compare) {
        const kv = this.kvs.get(c.key);
        let cmp: number;
        if (c.target === "value") {
          if (kv === undefined) {
            succeeded = false;
            continue;
          }
          const v = String(c.value);
          cmp = kv.value < v ? -1 : kv.value > v ? 1 : 0;
        } else {
          const mine =
            c.target === "mod"
              ? (kv?.mod ?? 0)
              : c.target === "create"
                ? (kv?.create ?? 0)
                : (kv?.version ?? 0);
          cmp = Math.sign(mine - Number(c.value));
        }
        const ok =
          c.result === "equal"
            ? cmp === 0
            : c.result === "not_equal"
              ? cmp !== 0
              : c.result === "greater"
                ? cmp > 0
                : cmp < 0;
        if (!ok) succeeded = false;
      }
    }
    const ops: readonly TxnOp[] = isTxn ? (succeeded ? input.success : input.failure) : [input];
    const willWrite = ops.some(
      (o) => o.type === "put" || (o.type === "delete" && this.kvs.has(o.key)),
    );
    const rev = willWrite ? this.revision + 1 : this.revision;
    const results: TxnOpResult[] = [];
    for (const o of ops) {
      switch (o.type) {
        case "put": {
          const prev = this.kvs.get(o.key);
          this.kvs.set(o.key, {
            value: o.value,
            mod: rev,
            create: prev?.create ?? rev,
            version: (prev?.version ?? 0) + 1,
          });
          results.push({ type: "put" });
          break;
        }
        case "delete":
          results.push({ type: "delete", deleted: this.kvs.delete(o.key) ? 1 : 0 });
          break;
        case "get": {
          const r = this.record(o.key, withRevisions);
          results.push({ type: "get", kv: r === null ? null : stripKey(r) });
          break;
        }
        case "range": {
          const keys = [...this.kvs.keys()].filter((k) => k.startsWith(o.prefix)).sort();
          results.push({ type: "range", kvs: keys.map((k) => this.record(k, withRevisions)!) });
          break;
        }
      }
    }
    this.revision = rev;
    const header = withRevisions ? { revision: rev } : {};
    if (isTxn) return { type: "txn", succeeded, results, ...header };
    const r = results[0]!;
    switch (r.type) {
      case "put":
        return { type: "put", ...header };
      case "get":
        return { type: "get", kv: r.kv, ...header };
      case "range":
        return { type: "range", kvs: r.kvs, ...header };
      case "delete":
        return { type: "delete", deleted: r.deleted, ...header };
    }
  }
}

function stripKey(r: KeyedKvRecord): Omit<KeyedKvRecord, "key"> {
  const { key: _key, ...rest } = r;
  return rest;
}

/**
 * A seeded linearizable history (see the module comment). Values written are unique
 * ("v<op id>", "v<op id>.<n>" in txns), so a test can mutate a read into a provably stale one.
 */
export function generateHistory(options: GenerateOptions): GeneratedHistory {
  const rand = prng(options.seed);
  const n = options.operations ?? 100;
  const clients = options.clients ?? 4;
  const keys = options.keys ?? ["a", "b", "c"];
  const spacing = options.spacingNs ?? 1000;
  const overlap = options.overlapNs ?? 3000;
  const pAfter = options.lostAfterApplyProbability ?? 0.05;
  const pWithout = options.lostWithoutApplyProbability ?? 0.03;
  const withRevisions = options.revisions ?? true;
  const kinds = options.kinds ?? ALL_KINDS;
  // "p/a" ranges over "p/"; a key without "/" over itself (a one-key range).
  const prefixes = [
    ...new Set(keys.map((k) => (k.includes("/") ? k.slice(0, k.indexOf("/") + 1) : k))),
  ];
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;

  const store = new ReferenceStore();
  const versions = new Map<string, KeyVersion[]>(
    keys.map((k) => [
      k,
      [{ value: null, modRevision: 0, createRevision: 0, version: 0, writerId: -1 }],
    ]),
  );
  const history: KvOperation[] = [];
  const linearization: number[] = [];
  const events: WatchWrite[] = [];
  const clientFree = new Array<number>(clients).fill(0);
  let now = 0;
  for (let id = 0; id < n; id++) {
    now += 1 + Math.floor(rand() * 2 * spacing);
    // The client idle longest makes the next call; if all are busy, the point waits for one.
    let c = 0;
    for (let i = 1; i < clients; i++) if (clientFree[i]! < clientFree[c]!) c = i;
    if (clientFree[c]! >= now) now = clientFree[c]! + 1;
    const invokeNs = Math.max(clientFree[c]! + 1, now - Math.floor(rand() * overlap));
    const completeNs = now + Math.floor(rand() * overlap);
    clientFree[c] = completeNs;

    const key = pick(keys);
    const current = store.kvs.get(key);
    const older = versions.get(key)!.filter((v) => v.value !== null);
    const guessValue =
      rand() < 0.6 && current
        ? current.value
        : (pick([...older, { value: "none" }]).value ?? "none");
    const guessMod =
      rand() < 0.6 && current ? current.mod : Math.floor(rand() * (store.revision + 2));
    const kind = pick(kinds);
    let input: KvInput;
    switch (kind) {
      case "put":
        input = { type: "put", key, value: `v${id}` };
        break;
      case "get":
        input = { type: "get", key };
        break;
      case "delete":
        input = { type: "delete", key };
        break;
      case "casValue":
        input = {
          type: "txn",
          compare: [{ key, target: "value", result: "equal", value: guessValue }],
          success: [{ type: "put", key, value: `v${id}` }],
          failure: [],
        };
        break;
      case "casMod":
        input = {
          type: "txn",
          compare: [{ key, target: "mod", result: "equal", value: guessMod }],
          success: [{ type: "put", key, value: `v${id}` }],
          failure: [{ type: "get", key }],
        };
        break;
      case "txn":
        input = {
          type: "txn",
          compare: [
            {
              key,
              target: "version",
              result: pick(["equal", "greater", "less"] as const),
              value: Math.floor(rand() * 3),
            },
          ],
          success: [
            { type: "get", key },
            { type: "put", key, value: `v${id}.0` },
            { type: "get", key },
          ],
          failure:
            rand() < 0.5
              ? [{ type: "delete", key }]
              : [
                  { type: "get", key },
                  { type: "put", key, value: `v${id}.1` },
                ],
        };
        break;
      case "range":
        input = { type: "range", prefix: pick(prefixes) };
        break;
    }
    const op: KvOperation = { id, clientId: c, input, invokeNs, completeNs };
    const writes = kind !== "get" && kind !== "range";
    const lost = writes ? rand() : 1;
    if (lost < pWithout) {
      op.completeNs = Infinity; // never happened; the client gave up on it
      history.push(op);
      continue;
    }
    const before = store.revision;
    const output = store.apply(input, withRevisions);
    linearization.push(id);
    if (store.revision !== before) {
      for (const k of keys) {
        const kv = store.kvs.get(k);
        const list = versions.get(k)!;
        const last = list[list.length - 1]!;
        const changed = kv === undefined ? last.value !== null : kv.mod === store.revision;
        if (!changed) continue;
        events.push(
          kv === undefined
            ? { revision: store.revision, key: k, type: "delete" }
            : { revision: store.revision, key: k, type: "put", value: kv.value },
        );
        list.push(
          kv === undefined
            ? { value: null, modRevision: 0, createRevision: 0, version: 0, writerId: id }
            : {
                value: kv.value,
                modRevision: kv.mod,
                createRevision: kv.create,
                version: kv.version,
                writerId: id,
              },
        );
      }
    }
    if (lost < pWithout + pAfter) op.completeNs = Infinity;
    else op.output = output;
    history.push(op);
  }
  return { history, versions, linearization, events, finalRevision: store.revision };
}
