/**
 * The member's configuration: etcd 3.4's flags with etcd's defaults (etcd `embed.NewConfig`,
 * `etcdmain/config.go`). Parsed from argv / `ETCD_*` / `--config-file` by tools/flags.ts.
 */
import { DEFAULT_FILL_AHEAD_BYTES } from "../wal/index.js";

export interface TlsFiles {
  certFile: string;
  keyFile: string;
  trustedCaFile: string;
  clientCertAuth: boolean;
  autoTls: boolean;
  /** --peer-cert-allowed-cn (peer TLS only): the CN a peer's certificate must carry; "" = any. */
  allowedCn: string;
}

export type AutoCompactionMode = "periodic" | "revision";

export interface ServerConfig {
  name: string;
  dataDir: string;
  walDir: string;
  snapshotCount: number;
  /**
   * The largest share of the time periodic snapshots may take, percent (lib/server/snapshotter.ts
   * maxBusyPercent): weighs on those that rewrite the whole db file (the first, one after a
   * compaction). etcd-ts only:
   * `--experimental-snapshot-max-busy-percent`.
   */
  snapshotMaxBusyPercent: number;
  /**
   * Entry bytes applied since the last snapshot, in percent of the db file's size beyond its first
   * 16 MiB, that a periodic snapshot also waits for (lib/server/snapshotter.ts walPercentOfDb;
   * 0: every snapshotCount entries, as etcd). etcd-ts only:
   * `--experimental-snapshot-wal-percent-of-db`.
   */
  snapshotWalPercentOfDb: number;
  /**
   * --experimental-snapshot-catchup-entries (etcd 3.5.14+): entries raft keeps in memory behind
   * the applied index for slow followers; one further behind gets a snapshot. etcd's 5000.
   */
  snapshotCatchUpEntries: number;
  /** --max-snapshots: .snap files kept (0 = unlimited); etcd's default 5. */
  maxSnapshots: number;
  /** --max-wals: WAL segment files kept once released (0 = unlimited); etcd's default 5. */
  maxWals: number;
  heartbeatIntervalMs: number;
  electionTimeoutMs: number;
  listenClientUrls: string[];
  advertiseClientUrls: string[];
  listenPeerUrls: string[];
  initialAdvertisePeerUrls: string[];
  initialCluster: string;
  initialClusterState: "new" | "existing";
  initialClusterToken: string;
  /** 0 means etcd's default quota (2 GiB). */
  quotaBackendBytes: number;
  maxRequestBytes: number;
  maxTxnOps: number;
  autoCompactionMode: AutoCompactionMode;
  autoCompactionRetention: string;
  clientTls: TlsFiles;
  peerTls: TlsFiles;
  logLevel: "debug" | "info" | "warn" | "error" | "panic" | "fatal";
  preVote: boolean;
  unsafeNoFsync: boolean;
  enableGrpcGateway: boolean;
  /** WAL segment size; etcd's is a fixed 64 MiB (wal.SegmentSizeBytes). Exposed for tests. */
  walSegmentSizeBytes: number;
  /**
   * Which gRPC transport serves the client port: "fast" (lib/h2 on node:net/tls) or "grpc-js"
   * (@grpc/grpc-js, the reference). etcd-ts only: `--experimental-grpc-transport`.
   */
  grpcTransport: "fast" | "grpc-js";
  /**
   * WAL batches of at most this many entries are written and fdatasynced with blocking calls
   * (lib/wal syncWriteMaxEntries). etcd-ts only: `--experimental-wal-sync-write-max-entries`.
   */
  walSyncWriteMaxEntries: number;
  /**
   * The same while this member is the only voter (a single-member cluster): it has one save in
   * flight at a time and nothing to overlap with it. etcd-ts only:
   * `--experimental-wal-lone-voter-sync-write-max-entries`.
   */
  walLoneVoterSyncWriteMaxEntries: number;
  /**
   * Durable WAL writes in flight at once, and raft Readies whose save may be in flight together
   * (lib/wal maxWritesInFlight; etcd-io/raft's asynchronous storage writes). 1 saves one Ready at
   * a time. etcd-ts only: `--experimental-wal-max-writes-in-flight`.
   */
  walMaxWritesInFlight: number;
  /**
   * Bytes past the WAL's write position kept zero-filled in the background (lib/wal
   * fillAheadBytes); 0 turns it off. etcd-ts only: `--experimental-wal-fill-ahead-bytes`.
   */
  walFillAheadBytes: number;
  /**
   * etcd's --auth-token: "simple" or "jwt,pub-key=…,priv-key=…,sign-method=…[,ttl=…]"
   * (lib/auth/tokens.ts).
   */
  authToken: string;
  /** etcd's --auth-token-ttl: a simple token lives this long after its last use. */
  authTokenTtlSeconds: number;
  /** etcd's --bcrypt-cost for new passwords (4..31; others fall back to 10, as etcd). */
  bcryptCost: number;
  /** etcd's ExperimentalWatchProgressNotifyInterval (10 minutes). */
  watchProgressNotifyIntervalMs: number;
  /**
   * etcd's --grpc-keepalive-min-time (5 s): the shortest interval between client PINGs that
   * carry no response in between before they count as strikes (grpc-go's keepalive
   * EnforcementPolicy.MinTime; lib/h2 H2Limits.keepaliveMinTimeMs).
   */
  grpcKeepaliveMinTimeMs: number;
  /**
   * etcd-ts only (`--experimental-grpc-ping-ack-delay-ms`): how long a PING ACK may wait to share
   * a socket write with the next response on its connection (lib/h2 H2Limits.pingAckDelayMs).
   */
  grpcPingAckDelayMs: number;
  /**
   * etcd-ts only, for tests: serve lib/failpoint's endpoint (/debug/failpoints, gofail's HTTP
   * interface) on the client port. `--experimental-failpoints-http`, off by default.
   */
  failpointsHttp: boolean;
  /**
   * etcd-ts only, test mode: keep file bytes not yet fdatasynced inside the process, so kill -9
   * loses what a power cut would (lib/wal/power-loss.ts). `--experimental-simulate-power-loss`.
   */
  simulatePowerLoss: boolean;
  /**
   * With simulatePowerLoss: what a failpoint panic writes of the unsynced pages first ("none",
   * a seeded "prefix" or a seeded "reorder"ed subset). `--experimental-torn-sync`.
   */
  tornSync: "none" | "prefix" | "reorder";
}

/** etcd's DefaultQuotaBytes: 2 GiB. */
export const defaultQuotaBytes = 2 * 1024 * 1024 * 1024;
/** etcd's MaxQuotaBytes: 8 GiB (larger quotas are accepted with a warning). */
export const maxQuotaBytes = 8 * 1024 * 1024 * 1024;

function emptyTls(): TlsFiles {
  return {
    certFile: "",
    keyFile: "",
    trustedCaFile: "",
    clientCertAuth: false,
    autoTls: false,
    allowedCn: "",
  };
}

/** etcd 3.4's defaults (embed/config.go NewConfig). dataDir "" means `${name}.etcd`. */
export function defaultConfig(): ServerConfig {
  return {
    name: "default",
    dataDir: "",
    walDir: "",
    // etcd 3.4's default (3.6 lowered it to 10,000): a restart replays at most this many entries.
    // Measured against 10,000 in bench/README.md "The default snapshot count" (2026-12-07).
    snapshotCount: 100000,
    snapshotMaxBusyPercent: 50,
    snapshotWalPercentOfDb: 50,
    snapshotCatchUpEntries: 5000,
    maxSnapshots: 5,
    maxWals: 5,
    heartbeatIntervalMs: 100,
    electionTimeoutMs: 1000,
    listenClientUrls: ["http://localhost:2379"],
    advertiseClientUrls: ["http://localhost:2379"],
    listenPeerUrls: ["http://localhost:2380"],
    initialAdvertisePeerUrls: ["http://localhost:2380"],
    initialCluster: "",
    initialClusterState: "new",
    initialClusterToken: "etcd-cluster",
    quotaBackendBytes: 0,
    maxRequestBytes: 1.5 * 1024 * 1024,
    maxTxnOps: 128,
    autoCompactionMode: "periodic",
    autoCompactionRetention: "0",
    clientTls: emptyTls(),
    peerTls: emptyTls(),
    logLevel: "info",
    preVote: false,
    unsafeNoFsync: false,
    enableGrpcGateway: true,
    walSegmentSizeBytes: 64 * 1024 * 1024,
    watchProgressNotifyIntervalMs: 10 * 60 * 1000,
    authToken: "simple",
    authTokenTtlSeconds: 300,
    bcryptCost: 10,
    grpcTransport: "fast",
    walSyncWriteMaxEntries: 1,
    walLoneVoterSyncWriteMaxEntries: 1024,
    walMaxWritesInFlight: 2,
    walFillAheadBytes: DEFAULT_FILL_AHEAD_BYTES,
    grpcKeepaliveMinTimeMs: 5_000,
    grpcPingAckDelayMs: 0,
    failpointsHttp: false,
    simulatePowerLoss: false,
    tornSync: "none",
  };
}
