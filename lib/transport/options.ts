/**
 * What a PeerTransport is built from: its options, its bounds (every queue, buffer, timeout and
 * retry of the transport is one of these, named and configurable; STYLE §2), the logger shape it
 * writes to, and the context its parts (links, listener, streams, snapshot sender) share.
 */
import type { Socket } from "node:net";
import type { Message } from "../proto/gen/raftpb/raft.js";
import type { Registry } from "prom-client";
import type { TransportMetrics } from "./metrics.js";
import type { PeerTls, PeerTlsFiles } from "./tls.js";

/**
 * The logger the transport writes to: pino's Logger fits (`logger.warn({ fields }, "message")`).
 * Field names follow etcd's zap fields (local-member-id, remote-peer-id, …).
 */
export interface TransportLogger {
  debug(fields: Record<string, unknown>, msg: string): void;
  info(fields: Record<string, unknown>, msg: string): void;
  warn(fields: Record<string, unknown>, msg: string): void;
  error(fields: Record<string, unknown>, msg: string): void;
}

/** The transport's bounds. Defaults in defaultTransportLimits. */
export interface TransportLimits {
  /** Largest frame (one encoded raftpb.Message or snapshot chunk) accepted or sent, bytes. */
  maxFrameBytes: number;
  /** Messages queued per peer before new ones are dropped (etcd's streamBufSize, 4096). */
  maxQueuedMessagesPerPeer: number;
  /** Encoded bytes queued per peer before new messages are dropped. */
  maxQueuedBytesPerPeer: number;
  /** Bytes framed into one socket write; a flush writes several under one cork. */
  maxWriteBatchBytes: number;
  /** Bytes the socket may hold unsent before the link stops writing until 'drain'. */
  maxSocketBufferedBytes: number;
  /** Bound on TCP connect + TLS handshake, ms. */
  dialTimeoutMs: number;
  /** Bound on receiving the hello (acceptor) or its reply (dialer) once connected, ms. */
  helloTimeoutMs: number;
  /** A message connection that receives nothing for this long is closed (etcd's ConnReadTimeout). */
  connReadTimeoutMs: number;
  /** Interval of pings on a message connection (round-trip metric and keep-alive), ms. */
  pingIntervalMs: number;
  /** First reconnect delay after a failed dial or a lost connection, ms. */
  reconnectBackoffInitialMs: number;
  /** Reconnect delays double up to this, ms. */
  reconnectBackoffMaxMs: number;
  /** Payload bytes per snapshot chunk frame. */
  snapshotChunkBytes: number;
  /** Received snapshot bytes buffered for a slow consumer before the socket is paused. */
  snapshotReceiveBufferedBytes: number;
  /** Largest snapshot payload accepted, bytes. */
  maxSnapshotBytes: number;
  /** Largest snapshot payload collected in memory when there is no onSnapshot consumer, bytes. */
  maxInlineSnapshotBytes: number;
  /** A snapshot stream that makes no progress (no bytes either way) for this long fails, ms. */
  snapshotStallTimeoutMs: number;
  /** Bound on waiting for the receiver's status after the last snapshot chunk, ms. */
  snapshotStatusTimeoutMs: number;
  /** Accepted connections open at once (handshaking, message and snapshot streams). */
  maxInboundConnections: number;
  /** Interval between "dropped messages" warnings per peer (drops in between are summed), ms. */
  dropLogIntervalMs: number;
}

/** Default bounds: etcd's where it has one (queue 4096, read timeout 5 s). */
export const defaultTransportLimits: Readonly<TransportLimits> = Object.freeze({
  maxFrameBytes: 32 * 1024 * 1024,
  maxQueuedMessagesPerPeer: 4096,
  maxQueuedBytesPerPeer: 64 * 1024 * 1024,
  maxWriteBatchBytes: 1024 * 1024,
  maxSocketBufferedBytes: 8 * 1024 * 1024,
  dialTimeoutMs: 2000,
  helloTimeoutMs: 2000,
  connReadTimeoutMs: 5000,
  pingIntervalMs: 1000,
  reconnectBackoffInitialMs: 100,
  reconnectBackoffMaxMs: 5000,
  snapshotChunkBytes: 64 * 1024,
  snapshotReceiveBufferedBytes: 1024 * 1024,
  maxSnapshotBytes: 8 * 1024 * 1024 * 1024,
  maxInlineSnapshotBytes: 512 * 1024 * 1024,
  snapshotStallTimeoutMs: 30_000,
  snapshotStatusTimeoutMs: 60_000,
  maxInboundConnections: 256,
  dropLogIntervalMs: 1000,
});

/** Raft's snapshot status, as RawNode.reportSnapshot takes it. */
export type SnapshotStatus = "finish" | "failure";

/**
 * A received MsgSnap and its payload. `message.snapshot.data` is empty: the payload (what the
 * sender passed to sendSnapshot, or its message's snapshot.data) arrives in `payload`, in chunks,
 * with flow control: the socket is paused while the consumer is behind.
 */
export type SnapshotHandler = (
  message: Message,
  payload: AsyncIterable<Uint8Array>,
) => Promise<void>;

/** Options of a PeerTransport. */
export interface PeerTransportOptions {
  /** This member's id (non-zero). */
  memberId: bigint;
  /** The cluster's id; hellos from other clusters are refused. */
  clusterId: bigint;
  /** --listen-peer-urls: http(s)://host:port each; port 0 picks a free port (tests). */
  listenUrls: string[];
  /** The --peer-* TLS flags; required (cert and key) when any URL is https://. */
  tls?: PeerTlsFiles;
  logger: TransportLogger;
  /** Registry the etcd_network_* metrics are registered in; a private one when absent. */
  registry?: Registry;
  /** Bounds; anything not given takes defaultTransportLimits. */
  limits?: Partial<TransportLimits>;
  /**
   * Called for every raft message received, in the order each peer sent them (etcd's
   * Raft.Process). `from` has been checked against the connection's hello and `to` is this
   * member. Bytes fields (entries' data, context) are views into a received buffer the transport
   * never writes to again; it may hold other messages too, so copy a field to keep it alone. An
   * exception is logged and the connection kept.
   */
  onMessage(message: Message): void;
  /**
   * Called for each MsgSnap received on a snapshot connection. When it resolves the sender is
   * told "finish" (and reports SnapshotFinish to its raft); when it rejects, "failure". Without
   * it, the payload is collected (up to maxInlineSnapshotBytes) into snapshot.data and the
   * message goes to onMessage.
   */
  onSnapshot?: SnapshotHandler;
  /** Messages to `id` could not be delivered (RawNode.reportUnreachable). */
  reportUnreachable(id: bigint): void;
  /** A snapshot sent to `id` was applied or lost (RawNode.reportSnapshot). */
  reportSnapshot(id: bigint, status: SnapshotStatus): void;
  /**
   * Our connection to peer `id` was lost and the redial made at once after it was refused with
   * ECONNREFUSED: nothing listens on the peer's port any more, so its process is gone while its
   * host is up. A timeout, a reset or a refusal in the hello (a partition, a proxy, a peer that is
   * busy) never calls it. Called once per lost connection. A failure detector for raft's
   * forgetLeader: etcd-io/raft's ForgetLeader doc has followers forget a leader they have strong
   * reason to believe dead ("via a side-channel or external failure detector") so that a quorum of
   * them can elect a new one without waiting out the election timeout.
   */
  onPeerRefusing?(id: bigint): void;
  /**
   * Peer `by` refused this member as removed from the cluster (etcd's errMemberRemoved, "the
   * member has been permanently removed from the cluster"): the member should stop itself.
   * Called at most once per transport.
   */
  onRemoved?(by: bigint): void;
  /**
   * A connection to a listen URL that opens with an HTTP request line instead of a hello (past
   * TLS and the allowed-CN check), handed over with its first bytes put back (etcd serves
   * /members, /leases and /version on the peer port). Without it such a connection is refused.
   */
  onHttpConnection?(socket: Socket): void;
}

/** Whether a member id is a peer, was removed, or is unknown (acceptor's hello check). */
export type PeerStanding = "peer" | "removed" | "unknown";

/** What the transport's parts share. Internal to lib/transport. */
export interface TransportContext {
  readonly memberId: bigint;
  readonly memberIdHex: string;
  readonly clusterId: bigint;
  readonly limits: Readonly<TransportLimits>;
  readonly logger: TransportLogger;
  readonly metrics: TransportMetrics;
  readonly peerTls: PeerTls | undefined;
  standing(id: bigint): PeerStanding;
  /** Hands a received message to onMessage, catching what it throws. */
  deliver(message: Message): void;
  readonly onSnapshot: SnapshotHandler | undefined;
  reportUnreachable(id: bigint): void;
  reportSnapshot(id: bigint, status: SnapshotStatus): void;
  /** Calls onPeerRefusing, catching what it throws. */
  peerRefusing(id: bigint): void;
  removedBy(id: bigint): void;
  readonly onHttpConnection: ((socket: Socket) => void) | undefined;
}
