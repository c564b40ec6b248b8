/**
 * Options of one load run and their parsing from etcd `benchmark`-style flags
 * (tools/benchmark/cmd in etcd v3.4: root.go's --endpoints/--conns/--clients, put.go's
 * --total/--key-size/--val-size/--key-space-size/--sequential-keys/--rate, range.go's
 * --consistency, txn_put.go's --txn-ops, watch.go's --streams/--watch-per-stream/
 * --watched-key-total/--put-total/--put-rate, root.go's --user name[:password]). Defaults are the
 * benchmark tool's.
 */
import { LoadUsageError } from "./errors.js";

/** Workloads the generator runs. */
export const WORKLOADS = [
  "put",
  "range",
  "txn-put",
  "watch",
  "lease-keepalive",
  "authenticate",
] as const;
export type Workload = (typeof WORKLOADS)[number];

/** Upper bounds on counts, so a typo cannot ask for a billion sockets. */
export const MAX_CONNS = 10_000;
export const MAX_CLIENTS = 100_000;
export const MAX_PROCS = 64;
export const MAX_WATCHERS = 1_000_000;
/** watch: bytes at the start of each put's value: its send time and its put index (float64 LE each). */
export const WATCH_VALUE_HEADER_BYTES = 16;

/** Everything one run needs. Sizes in bytes, rates per second, durations in seconds. */
export interface LoadOptions {
  workload: Workload;
  endpoints: string[];
  conns: number;
  clients: number;
  /** Requests to send in all (ignored when durationSeconds > 0). */
  total: number;
  /** Run for this long instead of a fixed total (0: use total). */
  durationSeconds: number;
  keySizeBytes: number;
  valSizeBytes: number;
  keySpaceSize: number;
  sequentialKeys: boolean;
  /** Requests per second over all clients (0: unlimited). */
  rate: number;
  /** range: the key and optional end (etcd: `benchmark range key [end-range]`). */
  rangeKey: string;
  rangeEnd: string;
  /** range: "l" linearizable (default) or "s" serializable. */
  consistency: "l" | "s";
  /** txn-put: puts per txn. */
  txnOps: number;
  /** watch: streams, watchers per stream, distinct watched keys, puts and their rate. */
  streams: number;
  watchPerStream: number;
  watchedKeyTotal: number;
  putTotal: number;
  putRate: number;
  /**
   * watch: connections of their own for the puts (0: the puts share the watchers' connections).
   * etcd's watch-latency puts on one more connection (`putClient := mustCreateConn()`).
   */
  putConns: number;
  /** watch: give up waiting for events this long after the last put, seconds. */
  watchWaitSeconds: number;
  /**
   * Auth user ("": no auth). Every connection calls Auth/Authenticate once after it connects
   * (as etcd's benchmark tool, whose clientv3 client per connection authenticates on dial) and
   * sends the token as `token` metadata on every call. The authenticate workload sends these
   * credentials in every request instead.
   */
  user: string;
  password: string;
  /** Worker processes sharing the load (1: this process only). */
  procs: number;
  /** Print a progress line to stderr about once a second. */
  progress: boolean;
  /** Print the report as JSON. */
  json: boolean;
  /** Client transport: "raw" (HTTP/2 on node:net, the default), "http2" (node:http2) or "grpc-js" (reference). */
  transport: "raw" | "http2" | "grpc-js";
}

/** The benchmark tool's defaults (a put run of 10,000 requests on one client and connection). */
export function defaultLoadOptions(workload: Workload = "put"): LoadOptions {
  return {
    workload,
    endpoints: ["127.0.0.1:2379"],
    conns: 1,
    clients: 1,
    total: 10_000,
    durationSeconds: 0,
    keySizeBytes: 8,
    valSizeBytes: 8,
    keySpaceSize: 1,
    sequentialKeys: false,
    rate: 0,
    rangeKey: "foo",
    rangeEnd: "",
    consistency: "l",
    txnOps: 1,
    streams: 10,
    watchPerStream: 100,
    watchedKeyTotal: 1,
    putTotal: 1000,
    putRate: 0,
    putConns: 0,
    watchWaitSeconds: 10,
    user: "",
    password: "",
    procs: 1,
    progress: false,
    json: false,
    transport: "raw",
  };
}

function intFlag(name: string, v: string | undefined, min: number, max: number): number {
  if (v === undefined) throw new LoadUsageError(`--${name} needs a value`);
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new LoadUsageError(
      `--${name} must be an integer in [${min}, ${max}], got ${JSON.stringify(v)}`,
    );
  }
  return n;
}

/** Parses "10s", "1m", "500ms" or a bare number of seconds (Go duration subset). */
export function parseDurationSeconds(v: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(v.trim());
  if (m === null)
    throw new LoadUsageError(`bad duration ${JSON.stringify(v)} (use e.g. 10s, 2m, 500ms)`);
  const n = Number(m[1]);
  const unit = m[2] ?? "s";
  return unit === "ms" ? n / 1000 : unit === "m" ? n * 60 : unit === "h" ? n * 3600 : n;
}

function boolFlag(v: string | undefined): boolean {
  return v === undefined || v === "true" || v === "1";
}

/**
 * Parses `argv` (after the program name): the workload first, then flags as `--name value` or
 * `--name=value`; range takes `key [end]` positionals. Throws LoadUsageError on anything unknown.
 */
export function parseLoadArgs(argv: readonly string[]): LoadOptions {
  const positional: string[] = [];
  const flags = new Map<string, string | undefined>();
  const booleans = new Set([
    "sequential-keys",
    "progress",
    "json",
    "target-leader",
    "precise",
    "sample",
  ]);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith("--")) {
      positional.push(a);
      continue;
    }
    const eq = a.indexOf("=");
    const name = eq >= 0 ? a.slice(2, eq) : a.slice(2);
    if (eq >= 0) flags.set(name, a.slice(eq + 1));
    else if (booleans.has(name)) flags.set(name, undefined);
    else flags.set(name, argv[++i]);
  }
  const w = positional.shift();
  if (w === undefined || !(WORKLOADS as readonly string[]).includes(w)) {
    throw new LoadUsageError(`first argument must be a workload: ${WORKLOADS.join(", ")}`);
  }
  const o = defaultLoadOptions(w as Workload);
  if (o.workload === "range") {
    if (positional.length > 0) o.rangeKey = positional.shift()!;
    if (positional.length > 0) o.rangeEnd = positional.shift()!;
  }
  if (positional.length > 0)
    throw new LoadUsageError(`unexpected arguments: ${positional.join(" ")}`);
  for (const [name, v] of flags) {
    switch (name) {
      case "endpoints":
        if (v === undefined || v === "") throw new LoadUsageError("--endpoints needs a value");
        o.endpoints = v
          .split(",")
          .map((s) => s.trim())
          .filter((s) => s !== "");
        break;
      case "conns":
        o.conns = intFlag(name, v, 1, MAX_CONNS);
        break;
      case "clients":
        o.clients = intFlag(name, v, 1, MAX_CLIENTS);
        break;
      case "total":
        o.total = intFlag(name, v, 1, Number.MAX_SAFE_INTEGER);
        break;
      case "duration":
        if (v === undefined) throw new LoadUsageError("--duration needs a value");
        o.durationSeconds = parseDurationSeconds(v);
        break;
      case "key-size":
        o.keySizeBytes = intFlag(name, v, 1, 1 << 20);
        break;
      case "val-size":
        o.valSizeBytes = intFlag(name, v, 0, 64 << 20);
        break;
      case "key-space-size":
        o.keySpaceSize = intFlag(name, v, 1, Number.MAX_SAFE_INTEGER);
        break;
      case "sequential-keys":
        o.sequentialKeys = boolFlag(v);
        break;
      case "rate":
        o.rate = intFlag(name, v, 0, 100_000_000);
        break;
      case "consistency":
        if (v !== "l" && v !== "s")
          throw new LoadUsageError(`--consistency must be l or s, got ${String(v)}`);
        o.consistency = v;
        break;
      case "txn-ops":
        o.txnOps = intFlag(name, v, 1, 128);
        break;
      case "streams":
        o.streams = intFlag(name, v, 1, MAX_WATCHERS);
        break;
      case "watch-per-stream":
        o.watchPerStream = intFlag(name, v, 1, MAX_WATCHERS);
        break;
      case "watched-key-total":
        o.watchedKeyTotal = intFlag(name, v, 1, MAX_WATCHERS);
        break;
      case "put-total":
        o.putTotal = intFlag(name, v, 1, Number.MAX_SAFE_INTEGER);
        break;
      case "put-rate":
        o.putRate = intFlag(name, v, 0, 100_000_000);
        break;
      case "put-conns":
        o.putConns = intFlag(name, v, 0, MAX_CONNS);
        break;
      case "user": {
        if (v === undefined || v === "") throw new LoadUsageError("--user needs a value");
        // etcd's benchmark --user name:password; a password given with --password wins
        const colon = v.indexOf(":");
        o.user = colon < 0 ? v : v.slice(0, colon);
        if (colon >= 0 && !flags.has("password")) o.password = v.slice(colon + 1);
        break;
      }
      case "password":
        if (v === undefined) throw new LoadUsageError("--password needs a value");
        o.password = v;
        break;
      case "watch-wait":
        o.watchWaitSeconds = v === undefined ? 10 : parseDurationSeconds(v);
        break;
      case "procs":
        o.procs = intFlag(name, v, 1, MAX_PROCS);
        break;
      case "transport":
        if (v !== "raw" && v !== "http2" && v !== "grpc-js") {
          throw new LoadUsageError(`--transport must be raw, http2 or grpc-js, got ${String(v)}`);
        }
        o.transport = v;
        break;
      case "progress":
        o.progress = boolFlag(v);
        break;
      case "json":
        o.json = boolFlag(v);
        break;
      case "target-leader":
      case "precise":
      case "sample":
      case "dial-timeout":
        break; // accepted for etcd compatibility; a single endpoint list has no leader choice here
      default:
        throw new LoadUsageError(`unknown flag --${name}`);
    }
  }
  validateLoadOptions(o);
  return o;
}

/** Checks cross-field rules; throws LoadUsageError. */
export function validateLoadOptions(o: LoadOptions): void {
  if (o.endpoints.length === 0) throw new LoadUsageError("no endpoints");
  if (o.streams * o.watchPerStream > MAX_WATCHERS) {
    throw new LoadUsageError(`--streams x --watch-per-stream exceeds ${MAX_WATCHERS}`);
  }
  // the put's send time and its index ride in the value (see runWatch)
  if (o.workload === "watch" && o.valSizeBytes < WATCH_VALUE_HEADER_BYTES)
    o.valSizeBytes = WATCH_VALUE_HEADER_BYTES;
  if (o.password !== "" && o.user === "") throw new LoadUsageError("--password needs --user");
  if (o.workload === "authenticate" && o.user === "")
    throw new LoadUsageError("the authenticate workload needs --user NAME --password PW");
  if (o.workload === "txn-put" && o.txnOps > o.keySpaceSize) {
    throw new LoadUsageError(
      "--txn-ops must not exceed --key-space-size (a txn may not put one key twice)",
    );
  }
  if (o.procs > o.clients && o.workload !== "watch") o.procs = o.clients;
}
