/**
 * Recording a history for the checkers: HistoryRecorder stamps each client call with its invoke
 * and complete times (process.hrtime, ns from the recorder's creation) and keeps its input and
 * output; a call that throws is classified as a definite failure (left out of the history: it
 * changed nothing) or as "may have happened" (kept with an unknown output, pending forever).
 *
 * etcd3Call runs a {@link KvInput} through the `etcd3` npm client's raw KV service (client.kv) and
 * turns the response into a {@link KvOutput}. It takes the client structurally, so lib/ does not
 * depend on the etcd3 package. The client must not retry: a retried write can be applied twice,
 * and the history would then show one call where the store saw two.
 */
import { CheckerError } from "./errors.js";
import type {
  KeyedKvRecord,
  KvInput,
  KvOperation,
  KvOutput,
  TxnOp,
  TxnOpResult,
} from "./history.js";
import { prefixRangeEnd } from "./watch.js";
import type { WatchEventRecord, WatchRecord } from "./watch.js";

/** What a failed call means for the history. */
export type CallOutcome = "definite-failure" | "may-have-happened";

/**
 * etcd error strings (etcdserver/api/v3rpc/rpctypes/error.go) of requests that were refused before
 * they could be proposed or applied: the call changed nothing.
 */
const DEFINITE_MESSAGES = [
  "etcdserver: key is not provided",
  "etcdserver: value is provided",
  "etcdserver: lease is provided",
  "etcdserver: too many operations in txn request",
  "etcdserver: duplicate key given in txn request",
  "etcdserver: request is too large",
  "etcdserver: too many requests",
  "etcdserver: mvcc: required revision has been compacted",
  "etcdserver: mvcc: required revision is a future revision",
  "etcdserver: mvcc: database space exceeded",
  "etcdserver: requested lease not found",
  "etcdserver: permission denied",
  "etcdserver: invalid auth token",
  "etcdserver: user name is empty",
  "etcdserver: authentication failed",
  "etcdserver: not capable",
  "etcdserver: corrupt cluster",
];

/**
 * etcd error strings of requests that may have been proposed and committed before the failure
 * was seen: a timeout waiting for the apply, a leader change or a stop after the proposal.
 */
const AMBIGUOUS_MESSAGES = [
  "etcdserver: request timed out",
  "etcdserver: leader changed",
  "etcdserver: server stopped",
  "etcdserver: request cancelled",
];

/** gRPC codes that say the server refused the request without applying it. */
const DEFINITE_CODES = new Set([
  3, // INVALID_ARGUMENT
  5, // NOT_FOUND
  6, // ALREADY_EXISTS
  7, // PERMISSION_DENIED
  8, // RESOURCE_EXHAUSTED
  9, // FAILED_PRECONDITION
  11, // OUT_OF_RANGE
  12, // UNIMPLEMENTED
  16, // UNAUTHENTICATED
]);

/** etcd3's error classes for those codes (it replaces grpc-js errors with its own). */
const DEFINITE_CLASSES = new Set([
  "GRPCInvalidArgumentError",
  "GRPCNotFoundError",
  "GRPCAlreadyExistsError",
  "EtcdPermissionDeniedError",
  "GRPCResourceExhastedError",
  "GRPCFailedPreconditionError",
  "GRPCOutOfRangeError",
  "GRPCNotImplementedError",
  "GRPCUnauthenticatedError",
  "EtcdLeaseInvalidError",
  "EtcdInvalidAuthTokenError",
  "EtcdAuthenticationFailedError",
  // the client was closed before the call: nothing was sent
  "ClientClosedError",
]);

/**
 * Whether a failed etcd call may have taken effect. Definite only when the error proves the request
 * was refused or never sent: etcd's refusal strings and gRPC codes (invalid argument, compacted,
 * no space, permission, ...), and UNAVAILABLE before a connection existed ("No connection
 * established", ECONNREFUSED). Everything else, timeouts, leader changes, UNAVAILABLE after the
 * request was sent, unknown errors, may have happened: guessing "definite" wrongly would make the
 * checker reject a correct history, guessing "may have happened" only costs search time.
 */
export function classifyEtcdError(err: unknown): CallOutcome {
  const e = err as {
    message?: unknown;
    details?: unknown;
    code?: unknown;
    constructor?: { name?: string };
  };
  const text = `${String(e?.message ?? "")} ${String(e?.details ?? "")}`;
  if (AMBIGUOUS_MESSAGES.some((m) => text.includes(m))) return "may-have-happened";
  if (DEFINITE_MESSAGES.some((m) => text.includes(m))) return "definite-failure";
  if (typeof e?.code === "number" && DEFINITE_CODES.has(e.code)) return "definite-failure";
  if (DEFINITE_CLASSES.has(e?.constructor?.name ?? "")) return "definite-failure";
  if (/No connection established|ECONNREFUSED/.test(text)) return "definite-failure";
  return "may-have-happened";
}

/** Options of {@link HistoryRecorder}. */
export interface RecorderOptions {
  /** Bound on recorded operations (default {@link DEFAULT_MAX_RECORDED_OPERATIONS}). */
  maxOperations?: number;
  /** Failure classifier (default {@link classifyEtcdError}). */
  classify?: (err: unknown) => CallOutcome;
}

/** Default bound on a recorder's operations. */
export const DEFAULT_MAX_RECORDED_OPERATIONS = 1_000_000;

/** The recorder already holds maxOperations operations. */
export class RecorderFullError extends CheckerError {
  constructor(maxOperations: number) {
    super("CHECKER_RECORDER_FULL", `checker: recorder full (${maxOperations} operations)`);
  }
}

/** Records client calls into a history for checkLinearizability (see the module comment). */
export class HistoryRecorder {
  readonly #originNs = process.hrtime.bigint();
  readonly #ops: KvOperation[] = [];
  readonly #maxOperations: number;
  readonly #classify: (err: unknown) => CallOutcome;
  #definiteFailures = 0;
  #inFlight = 0;

  constructor(options: RecorderOptions = {}) {
    this.#maxOperations = options.maxOperations ?? DEFAULT_MAX_RECORDED_OPERATIONS;
    this.#classify = options.classify ?? classifyEtcdError;
  }

  /** Nanoseconds since the recorder was created. */
  nowNs(): number {
    return Number(process.hrtime.bigint() - this.#originNs);
  }

  /**
   * Runs `call` as client `clientId`'s operation `input` and records it; resolves to its output.
   * A rejection is rethrown after it is classified: "may have happened" is recorded with an
   * unknown output, a definite failure is only counted. Throws RecorderFullError (before calling)
   * when the recorder is full.
   */
  async record(clientId: number, input: KvInput, call: () => Promise<KvOutput>): Promise<KvOutput> {
    if (this.#ops.length + this.#inFlight >= this.#maxOperations) {
      throw new RecorderFullError(this.#maxOperations);
    }
    this.#inFlight++;
    const invokeNs = this.nowNs();
    try {
      const output = await call();
      this.#ops.push({ clientId, input, output, invokeNs, completeNs: this.nowNs() });
      return output;
    } catch (err) {
      if (this.#classify(err) === "may-have-happened") {
        this.#ops.push({ clientId, input, invokeNs, completeNs: Infinity });
      } else {
        this.#definiteFailures++;
      }
      throw err;
    } finally {
      this.#inFlight--;
    }
  }

  /** The operations recorded so far, ids in recording order. */
  history(): KvOperation[] {
    return this.#ops.map((op, id) => ({ ...op, id }));
  }

  /** Counts: operations recorded, of which pending (may have happened), definite failures left out. */
  stats(): { recorded: number; pending: number; definiteFailures: number } {
    const pending = this.#ops.filter((op) => op.output === undefined).length;
    return { recorded: this.#ops.length, pending, definiteFailures: this.#definiteFailures };
  }
}

/** The `etcd3` npm client's mvccpb.KeyValue as its raw KV service returns it (longs as strings). */
export interface Etcd3KeyValue {
  key: Buffer;
  value: Buffer;
  mod_revision: string;
  create_revision: string;
  version: string;
}

interface Etcd3Header {
  header: { revision: string };
}
type Etcd3RangeResponse = Etcd3Header & { kvs: Etcd3KeyValue[] };
type Etcd3DeleteResponse = Etcd3Header & { deleted: string };
interface Etcd3ResponseOp {
  response_range?: Etcd3RangeResponse | null;
  response_put?: Etcd3Header | null;
  response_delete_range?: Etcd3DeleteResponse | null;
}
interface Etcd3RequestOp {
  request_range?: { key: Buffer; range_end?: Buffer };
  request_put?: { key: Buffer; value: Buffer };
  request_delete_range?: { key: Buffer };
}

/** The part of the `etcd3` client's raw KV service (client.kv) that etcd3Call uses. */
export interface Etcd3Kv {
  range(req: { key: Buffer; range_end?: Buffer }): Promise<Etcd3RangeResponse>;
  put(req: { key: Buffer; value: Buffer }): Promise<Etcd3Header>;
  deleteRange(req: { key: Buffer }): Promise<Etcd3DeleteResponse>;
  txn(req: {
    compare: Array<Record<string, unknown>>;
    success: Etcd3RequestOp[];
    failure: Etcd3RequestOp[];
  }): Promise<Etcd3Header & { succeeded: boolean; responses: Etcd3ResponseOp[] }>;
}

function record(kv: Etcd3KeyValue): KeyedKvRecord {
  return {
    key: kv.key.toString(),
    value: kv.value.toString(),
    modRevision: Number(kv.mod_revision),
    createRevision: Number(kv.create_revision),
    version: Number(kv.version),
  };
}

function single(kvs: Etcd3KeyValue[]): Omit<KeyedKvRecord, "key"> | null {
  if (kvs.length === 0) return null;
  const { key: _key, ...rest } = record(kvs[0]!);
  return rest;
}

function requestOp(op: TxnOp): Etcd3RequestOp {
  switch (op.type) {
    case "put":
      return { request_put: { key: Buffer.from(op.key), value: Buffer.from(op.value) } };
    case "get":
      return { request_range: { key: Buffer.from(op.key) } };
    case "range":
      return {
        request_range: {
          key: Buffer.from(op.prefix),
          range_end: Buffer.from(prefixRangeEnd(op.prefix)),
        },
      };
    case "delete":
      return { request_delete_range: { key: Buffer.from(op.key) } };
  }
}

function resultOf(op: TxnOp, r: Etcd3ResponseOp | undefined): TxnOpResult {
  switch (op.type) {
    case "put":
      return { type: "put" };
    case "get":
      return { type: "get", kv: single(r?.response_range?.kvs ?? []) };
    case "range":
      return { type: "range", kvs: (r?.response_range?.kvs ?? []).map(record) };
    case "delete":
      return { type: "delete", deleted: Number(r?.response_delete_range?.deleted ?? 0) };
  }
}

const TARGETS = { value: "Value", mod: "Mod", create: "Create", version: "Version" } as const;
const RESULTS = {
  equal: "Equal",
  not_equal: "NotEqual",
  greater: "Greater",
  less: "Less",
} as const;
const TARGET_FIELDS = {
  value: "value",
  mod: "mod_revision",
  create: "create_revision",
  version: "version",
} as const;

/**
 * Runs `input` through the etcd3 client's raw KV service and returns the checker's output for it.
 * Keys and values are sent as UTF-8 and read back with Buffer.toString(). A prefix range is
 * etcd's [prefix, prefixRangeEnd(prefix)) with no limit. Rejects as the client does.
 */
export async function etcd3Call(kv: Etcd3Kv, input: KvInput): Promise<KvOutput> {
  switch (input.type) {
    case "put": {
      const r = await kv.put({ key: Buffer.from(input.key), value: Buffer.from(input.value) });
      return { type: "put", revision: Number(r.header.revision) };
    }
    case "get": {
      const r = await kv.range({ key: Buffer.from(input.key) });
      return { type: "get", revision: Number(r.header.revision), kv: single(r.kvs) };
    }
    case "range": {
      const req = requestOp(input).request_range!;
      const r = await kv.range(req);
      return { type: "range", revision: Number(r.header.revision), kvs: r.kvs.map(record) };
    }
    case "delete": {
      const r = await kv.deleteRange({ key: Buffer.from(input.key) });
      return { type: "delete", revision: Number(r.header.revision), deleted: Number(r.deleted) };
    }
    case "txn": {
      const r = await kv.txn({
        compare: input.compare.map((c) => ({
          key: Buffer.from(c.key),
          target: TARGETS[c.target],
          result: RESULTS[c.result],
          [TARGET_FIELDS[c.target]]:
            c.target === "value" ? Buffer.from(String(c.value)) : String(c.value),
        })),
        success: input.success.map(requestOp),
        failure: input.failure.map(requestOp),
      });
      const branch = r.succeeded ? input.success : input.failure;
      return {
        type: "txn",
        revision: Number(r.header.revision),
        succeeded: r.succeeded,
        results: branch.map((op, i) => resultOf(op, r.responses[i])),
      };
    }
  }
}

/** The `etcd3` client's watch response as its 'data' event delivers it. */
export interface Etcd3WatchResponse {
  header: { revision: string };
  events: Array<{ type: string; kv: Etcd3KeyValue }>;
}

/** The part of the `etcd3` client's Watcher that recordEtcd3Watch listens to. */
export interface Etcd3Watcher {
  on(event: string, handler: (arg: never) => void): unknown;
}

/** Bound on responses a recorded watch keeps. */
export const MAX_RECORDED_WATCH_RESPONSES = 1_000_000;

/**
 * Records an etcd3 Watcher's responses as WatchRecords for checkWatches. The etcd3 client resumes
 * a watch by itself after its stream breaks ('disconnected', then 'connecting' with the request it
 * sends again, whose start_revision is where it resumes): each resumption starts a new record
 * with `resumes` naming the previous one, so checkWatches can check the resumption. Returns the
 * list the records are appended to (it grows as responses arrive; responses past
 * MAX_RECORDED_WATCH_RESPONSES in total are dropped and counted in `dropped`).
 */
export function recordEtcd3Watch(
  watcher: Etcd3Watcher,
  spec: { id: string; key: string; rangeEnd?: string; startRevision: number },
): { records: WatchRecord[]; dropped: number } {
  const out = { records: [] as WatchRecord[], dropped: 0 };
  let total = 0;
  let current: WatchRecord = { ...spec, responses: [] };
  out.records.push(current);
  let broken = false;
  watcher.on("disconnected", (() => {
    broken = true;
  }) as (arg: never) => void);
  watcher.on("connecting", ((req: { start_revision?: string | number }) => {
    if (!broken) return;
    broken = false;
    const next: WatchRecord = {
      ...spec,
      id: `${spec.id}.${out.records.length}`,
      startRevision: Number(req.start_revision ?? spec.startRevision),
      resumes: current.id,
      responses: [],
    };
    out.records.push(next);
    current = next;
  }) as (arg: never) => void);
  watcher.on("data", ((res: Etcd3WatchResponse) => {
    if (total++ >= MAX_RECORDED_WATCH_RESPONSES) {
      out.dropped++;
      return;
    }
    const events: WatchEventRecord[] = res.events.map((e) => {
      const type = e.type.toLowerCase() === "delete" ? "delete" : "put";
      const ev: WatchEventRecord = {
        type,
        key: e.kv.key.toString(),
        modRevision: Number(e.kv.mod_revision),
      };
      if (type === "put") ev.value = e.kv.value.toString();
      return ev;
    });
    current.responses.push({
      headerRevision: Number(res.header.revision),
      events,
      ...(events.length === 0 ? { progressNotify: true } : {}),
    });
  }) as (arg: never) => void);
  return out;
}
