/**
 * etcd 3.4's command line: flags (`--flag value`, `--flag=value`, `-flag value` as Go's flag package
 * accepts), `ETCD_*` environment variables (a flag wins over its variable, as etcd's
 * `flags.SetFlagsFromEnv`), and `--config-file` (YAML with the flag names as keys and
 * `client-transport-security` / `peer-transport-security` sections; when given, flags and
 * environment are ignored, as etcd does).
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { type ServerConfig, type TlsFiles, defaultConfig } from "../lib/server/config.js";
import { parseGoDurationMs } from "../lib/server/duration.js";

export { parseGoDurationMs };

/** Thrown for a bad command line; the entry point prints it and exits with code 2 (Go flag's code). */
export class FlagError extends Error {
  readonly code = "ErrFlag";
}

type Kind = "string" | "int" | "bool" | "urls" | "duration";
interface FlagSpec {
  kind: Kind;
  set: (c: ServerConfig, v: string) => void;
}

function int(name: string, v: string): number {
  if (!/^-?\d+$/.test(v))
    throw new FlagError(`invalid value "${v}" for flag -${name}: parse error`);
  return Number(v);
}

function bool(name: string, v: string): boolean {
  if (v === "" || v === "true" || v === "1" || v === "t" || v === "T" || v === "TRUE") return true;
  if (v === "false" || v === "0" || v === "f" || v === "F" || v === "FALSE") return false;
  throw new FlagError(`invalid boolean value "${v}" for -${name}: parse error`);
}

function urls(name: string, v: string): string[] {
  const list = v
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  for (const u of list) {
    let parsed: URL;
    try {
      parsed = new URL(u);
    } catch {
      throw new FlagError(`invalid value "${v}" for flag -${name}: parse "${u}": invalid URL`);
    }
    if (!["http:", "https:", "unix:", "unixs:"].includes(parsed.protocol)) {
      throw new FlagError(
        `invalid value "${v}" for flag -${name}: URL scheme must be http, https, unix, or unixs: ${u}`,
      );
    }
  }
  return list;
}

function tls(c: ServerConfig, peer: boolean): TlsFiles {
  return peer ? c.peerTls : c.clientTls;
}

const flags: Record<string, FlagSpec> = {
  name: { kind: "string", set: (c, v) => (c.name = v) },
  "data-dir": { kind: "string", set: (c, v) => (c.dataDir = v) },
  "wal-dir": { kind: "string", set: (c, v) => (c.walDir = v) },
  "snapshot-count": { kind: "int", set: (c, v) => (c.snapshotCount = int("snapshot-count", v)) },
  "experimental-snapshot-max-busy-percent": {
    kind: "int",
    set: (c, v) => {
      const n = int("experimental-snapshot-max-busy-percent", v);
      if (n < 1 || n > 100)
        throw new Error("--experimental-snapshot-max-busy-percent must be between 1 and 100");
      c.snapshotMaxBusyPercent = n;
    },
  },
  "experimental-snapshot-wal-percent-of-db": {
    kind: "int",
    set: (c, v) => {
      const n = int("experimental-snapshot-wal-percent-of-db", v);
      if (n < 0) throw new Error("--experimental-snapshot-wal-percent-of-db must be 0 or more");
      c.snapshotWalPercentOfDb = n;
    },
  },
  "experimental-snapshot-catchup-entries": {
    kind: "int",
    set: (c, v) => (c.snapshotCatchUpEntries = int("experimental-snapshot-catchup-entries", v)),
  },
  "max-snapshots": { kind: "int", set: (c, v) => (c.maxSnapshots = int("max-snapshots", v)) },
  "max-wals": { kind: "int", set: (c, v) => (c.maxWals = int("max-wals", v)) },
  "heartbeat-interval": {
    kind: "int",
    set: (c, v) => (c.heartbeatIntervalMs = int("heartbeat-interval", v)),
  },
  "election-timeout": {
    kind: "int",
    set: (c, v) => (c.electionTimeoutMs = int("election-timeout", v)),
  },
  "listen-client-urls": {
    kind: "urls",
    set: (c, v) => (c.listenClientUrls = urls("listen-client-urls", v)),
  },
  "advertise-client-urls": {
    kind: "urls",
    set: (c, v) => (c.advertiseClientUrls = urls("advertise-client-urls", v)),
  },
  "listen-peer-urls": {
    kind: "urls",
    set: (c, v) => (c.listenPeerUrls = urls("listen-peer-urls", v)),
  },
  "initial-advertise-peer-urls": {
    kind: "urls",
    set: (c, v) => (c.initialAdvertisePeerUrls = urls("initial-advertise-peer-urls", v)),
  },
  "initial-cluster": { kind: "string", set: (c, v) => (c.initialCluster = v) },
  "initial-cluster-state": {
    kind: "string",
    set: (c, v) => {
      if (v !== "new" && v !== "existing") {
        throw new FlagError(
          `invalid value "${v}" for flag -initial-cluster-state: valid values are "new", "existing"`,
        );
      }
      c.initialClusterState = v;
    },
  },
  "initial-cluster-token": { kind: "string", set: (c, v) => (c.initialClusterToken = v) },
  "quota-backend-bytes": {
    kind: "int",
    set: (c, v) => (c.quotaBackendBytes = int("quota-backend-bytes", v)),
  },
  "max-request-bytes": {
    kind: "int",
    set: (c, v) => (c.maxRequestBytes = int("max-request-bytes", v)),
  },
  "max-txn-ops": { kind: "int", set: (c, v) => (c.maxTxnOps = int("max-txn-ops", v)) },
  "auto-compaction-mode": {
    kind: "string",
    set: (c, v) => {
      if (v !== "periodic" && v !== "revision") {
        throw new FlagError(`unknown auto-compaction-mode "${v}" (want periodic or revision)`);
      }
      c.autoCompactionMode = v;
    },
  },
  "auto-compaction-retention": { kind: "string", set: (c, v) => (c.autoCompactionRetention = v) },
  "cert-file": { kind: "string", set: (c, v) => (tls(c, false).certFile = v) },
  "key-file": { kind: "string", set: (c, v) => (tls(c, false).keyFile = v) },
  "trusted-ca-file": { kind: "string", set: (c, v) => (tls(c, false).trustedCaFile = v) },
  "client-cert-auth": {
    kind: "bool",
    set: (c, v) => (tls(c, false).clientCertAuth = bool("client-cert-auth", v)),
  },
  "auth-token": { kind: "string", set: (c, v) => (c.authToken = v) },
  "auth-token-ttl": {
    kind: "int",
    set: (c, v) => (c.authTokenTtlSeconds = int("auth-token-ttl", v)),
  },
  "bcrypt-cost": { kind: "int", set: (c, v) => (c.bcryptCost = int("bcrypt-cost", v)) },
  "auto-tls": { kind: "bool", set: (c, v) => (tls(c, false).autoTls = bool("auto-tls", v)) },
  "peer-cert-file": { kind: "string", set: (c, v) => (tls(c, true).certFile = v) },
  "peer-key-file": { kind: "string", set: (c, v) => (tls(c, true).keyFile = v) },
  "peer-trusted-ca-file": { kind: "string", set: (c, v) => (tls(c, true).trustedCaFile = v) },
  "peer-client-cert-auth": {
    kind: "bool",
    set: (c, v) => (tls(c, true).clientCertAuth = bool("peer-client-cert-auth", v)),
  },
  // Checked by lib/transport on both ends of a peer connection, as etcd 3.4's TLSInfo.AllowedCN.
  "peer-cert-allowed-cn": { kind: "string", set: (c, v) => (tls(c, true).allowedCn = v) },
  "peer-auto-tls": {
    kind: "bool",
    set: (c, v) => (tls(c, true).autoTls = bool("peer-auto-tls", v)),
  },
  "log-level": {
    kind: "string",
    set: (c, v) => {
      if (!["debug", "info", "warn", "error", "panic", "fatal"].includes(v)) {
        throw new FlagError(`unknown log-level "${v}"`);
      }
      c.logLevel = v as ServerConfig["logLevel"];
    },
  },
  "pre-vote": { kind: "bool", set: (c, v) => (c.preVote = bool("pre-vote", v)) },
  "unsafe-no-fsync": {
    kind: "bool",
    set: (c, v) => (c.unsafeNoFsync = bool("unsafe-no-fsync", v)),
  },
  "enable-grpc-gateway": {
    kind: "bool",
    set: (c, v) => (c.enableGrpcGateway = bool("enable-grpc-gateway", v)),
  },
  "grpc-keepalive-min-time": {
    kind: "duration",
    set: (c, v) => (c.grpcKeepaliveMinTimeMs = parseGoDurationMs(v)),
  },
  "experimental-watch-progress-notify-interval": {
    kind: "duration",
    set: (c, v) => (c.watchProgressNotifyIntervalMs = parseGoDurationMs(v)),
  },
  // Accepted for compatibility with etcd command lines; they have no effect in etcd-ts yet.
  logger: { kind: "string", set: () => {} },
  "log-outputs": { kind: "string", set: () => {} },
  metrics: { kind: "string", set: () => {} },
  "enable-pprof": { kind: "bool", set: () => {} },
  "strict-reconfig-check": { kind: "bool", set: () => {} },
  "enable-v2": { kind: "bool", set: () => {} },
  "initial-election-tick-advance": { kind: "bool", set: () => {} },
  "grpc-keepalive-interval": { kind: "duration", set: () => {} },
  "grpc-keepalive-timeout": { kind: "duration", set: () => {} },
  "max-concurrent-streams": { kind: "int", set: () => {} },
  "experimental-initial-corrupt-check": { kind: "bool", set: () => {} },
  "experimental-enable-lease-checkpoint": { kind: "bool", set: () => {} },
};

/** etcd-ts only: the client gRPC transport (issue 6): lib/h2 ("fast", default) or @grpc/grpc-js. */
flags["experimental-grpc-transport"] = {
  kind: "string",
  set: (c, v) => {
    if (v !== "fast" && v !== "grpc-js") {
      throw new FlagError(
        `invalid value "${v}" for flag -experimental-grpc-transport: want fast or grpc-js`,
      );
    }
    c.grpcTransport = v;
  },
};

/** etcd-ts only: a PING ACK waits up to this many ms to go out with the next response. */
flags["experimental-grpc-ping-ack-delay-ms"] = {
  kind: "int",
  set: (c, v) => {
    const ms = int("experimental-grpc-ping-ack-delay-ms", v);
    if (ms < 0)
      throw new FlagError(
        `invalid value "${v}" for flag -experimental-grpc-ping-ack-delay-ms: must be >= 0`,
      );
    c.grpcPingAckDelayMs = ms;
  },
};

/** etcd-ts only: WAL batches up to this many entries use blocking write + fdatasync. */
flags["experimental-wal-sync-write-max-entries"] = {
  kind: "int",
  set: (c, v) => (c.walSyncWriteMaxEntries = int("experimental-wal-sync-write-max-entries", v)),
};

/** etcd-ts only: --experimental-wal-sync-write-max-entries while the member is the only voter. */
flags["experimental-wal-lone-voter-sync-write-max-entries"] = {
  kind: "int",
  set: (c, v) => {
    const n = int("experimental-wal-lone-voter-sync-write-max-entries", v);
    if (n < 0)
      throw new Error("--experimental-wal-lone-voter-sync-write-max-entries must be at least 0");
    c.walLoneVoterSyncWriteMaxEntries = n;
  },
};

/** etcd-ts only: durable WAL writes (raft Ready saves) in flight at once; 1 = one at a time. */
flags["experimental-wal-max-writes-in-flight"] = {
  kind: "int",
  set: (c, v) => {
    const n = int("experimental-wal-max-writes-in-flight", v);
    if (n < 1) throw new Error("--experimental-wal-max-writes-in-flight must be at least 1");
    c.walMaxWritesInFlight = n;
  },
};

/** etcd-ts only: WAL bytes kept zero-filled ahead of the write position; 0 = off. */
flags["experimental-wal-fill-ahead-bytes"] = {
  kind: "int",
  set: (c, v) => {
    const n = int("experimental-wal-fill-ahead-bytes", v);
    if (n < 0) throw new Error("--experimental-wal-fill-ahead-bytes must be at least 0");
    c.walFillAheadBytes = n;
  },
};

/** etcd-ts only: WAL segment size for tests (etcd's is fixed at 64 MiB). */
flags["experimental-wal-segment-size-bytes"] = {
  kind: "int",
  set: (c, v) => (c.walSegmentSizeBytes = int("experimental-wal-segment-size-bytes", v)),
};

/** etcd-ts only, tests: lib/failpoint's endpoint on the client port (gofail's GOFAIL_HTTP). */
flags["experimental-failpoints-http"] = {
  kind: "bool",
  set: (c, v) => (c.failpointsHttp = bool("experimental-failpoints-http", v)),
};

/** etcd-ts only, test mode: unsynced file bytes stay in the process until fdatasync. */
flags["experimental-simulate-power-loss"] = {
  kind: "bool",
  set: (c, v) => (c.simulatePowerLoss = bool("experimental-simulate-power-loss", v)),
};

/** etcd-ts only, test mode: what a failpoint panic writes of the unsynced pages first. */
flags["experimental-torn-sync"] = {
  kind: "string",
  set: (c, v) => {
    if (v !== "none" && v !== "prefix" && v !== "reorder") {
      throw new FlagError(
        `invalid value "${v}" for flag -experimental-torn-sync: want none, prefix or reorder`,
      );
    }
    c.tornSync = v;
  },
};

export interface ParsedCommandLine {
  config: ServerConfig;
  printVersion: boolean;
  printHelp: boolean;
  configFile: string;
  /** notes for the log: which environment variables were used or ignored */
  notes: string[];
}

function finish(c: ServerConfig): ServerConfig {
  // etcd embed.Config.Validate
  if (c.heartbeatIntervalMs <= 0)
    throw new FlagError(`--heartbeat-interval must be >0 (set to ${c.heartbeatIntervalMs}ms)`);
  if (c.electionTimeoutMs <= 0)
    throw new FlagError(`--election-timeout must be >0 (set to ${c.electionTimeoutMs}ms)`);
  if (5 * c.heartbeatIntervalMs > c.electionTimeoutMs) {
    throw new FlagError(
      `--election-timeout[${c.electionTimeoutMs}ms] should be at least as 5 times as --heartbeat-interval[${c.heartbeatIntervalMs}ms]`,
    );
  }
  if (c.tornSync !== "none" && !c.simulatePowerLoss) {
    throw new FlagError("--experimental-torn-sync needs --experimental-simulate-power-loss");
  }
  if (c.dataDir === "") c.dataDir = `${c.name}.etcd`;
  if (c.initialCluster === "") {
    c.initialCluster = c.initialAdvertisePeerUrls.map((u) => `${c.name}=${u}`).join(",");
  }
  return c;
}

function applyConfigFile(path: string): ServerConfig {
  let doc: unknown;
  try {
    // loaded only for --config-file: importing it costs ~30 ms of every member's start-up
    const yaml = createRequire(import.meta.url)("yaml") as typeof import("yaml");
    doc = yaml.parse(readFileSync(path, "utf8"));
  } catch (err) {
    throw new FlagError(`error reading config file ${path}: ${(err as Error).message}`);
  }
  const c = defaultConfig();
  if (doc === null || typeof doc !== "object") return finish(c);
  for (const [key, raw] of Object.entries(doc as Record<string, unknown>)) {
    if (key === "client-transport-security" || key === "peer-transport-security") {
      const prefix = key === "peer-transport-security" ? "peer-" : "";
      for (const [k, v] of Object.entries((raw ?? {}) as Record<string, unknown>)) {
        const name = prefix === "" && k === "auto-tls" ? "auto-tls" : `${prefix}${k}`;
        const spec = flags[name];
        if (spec !== undefined) spec.set(c, String(v));
      }
      continue;
    }
    const spec = flags[key];
    if (spec === undefined || raw === null || raw === undefined) continue;
    spec.set(c, Array.isArray(raw) ? raw.join(",") : String(raw));
  }
  return finish(c);
}

/**
 * Parses argv (without node and script) and the environment into a ServerConfig.
 * Throws FlagError with Go flag's wording for unknown flags and bad values.
 */
export function parseCommandLine(argv: string[], env: NodeJS.ProcessEnv): ParsedCommandLine {
  const c = defaultConfig();
  const seen = new Set<string>();
  const notes: string[] = [];
  let printVersion = false;
  let printHelp = false;
  let configFile = "";
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith("-") || arg === "-" || arg === "--") {
      throw new FlagError(`'${arg}' is not a valid flag`);
    }
    const body = arg.replace(/^--?/, "");
    const eq = body.indexOf("=");
    const name = eq >= 0 ? body.slice(0, eq) : body;
    let value: string | undefined = eq >= 0 ? body.slice(eq + 1) : undefined;
    if (name === "version") {
      printVersion = true;
      continue;
    }
    if (name === "help" || name === "h") {
      printHelp = true;
      continue;
    }
    if (name === "config-file") {
      if (value === undefined) value = argv[++i];
      if (value === undefined) throw new FlagError("flag needs an argument: -config-file");
      configFile = value;
      continue;
    }
    const spec = flags[name];
    if (spec === undefined) throw new FlagError(`flag provided but not defined: -${name}`);
    if (value === undefined) {
      if (spec.kind === "bool") value = "true";
      else {
        value = argv[++i];
        if (value === undefined) throw new FlagError(`flag needs an argument: -${name}`);
      }
    }
    spec.set(c, value);
    seen.add(name);
  }
  if (configFile === "" && env.ETCD_CONFIG_FILE) configFile = env.ETCD_CONFIG_FILE;
  if (configFile !== "") {
    return { config: applyConfigFile(configFile), printVersion, printHelp, configFile, notes };
  }
  for (const [key, value] of Object.entries(env)) {
    if (!key.startsWith("ETCD_") || value === undefined) continue;
    // etcd-ts's test variables (ETCD_TS_FAILPOINTS, …) are read by their own parts, not flags
    if (key.startsWith("ETCD_TS_")) continue;
    const name = key.slice(5).toLowerCase().replace(/_/g, "-");
    const spec = flags[name];
    if (spec === undefined) {
      notes.push(`unrecognized environment variable ${key}=${value}`);
      continue;
    }
    if (seen.has(name)) {
      notes.push(`ignored environment variable ${key}: the flag --${name} is set`);
      continue;
    }
    spec.set(c, value);
    notes.push(`recognized and used environment variable ${key}=${value}`);
  }
  return { config: finish(c), printVersion, printHelp, configFile, notes };
}

/** One line per flag, for --help. */
export function flagNames(): string[] {
  return Object.keys(flags).sort();
}
