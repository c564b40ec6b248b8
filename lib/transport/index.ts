/**
 * lib/transport's public face: the peer transport between members (DESIGN §6). Raft messages as
 * `uint32 length + raftpb.Message` frames over TCP or TLS connections opened with a hello checked
 * on both sides, bounded per-peer queues, reconnect with backoff, snapshots on their own
 * connection, etcd's peer metrics. Imports nothing of ours but lib/proto and lib/failpoint.
 */
export { PeerTransport } from "./transport.js";
export type { PeerStatus } from "./link.js";
export {
  defaultTransportLimits,
  type PeerTransportOptions,
  type TransportLimits,
  type TransportLogger,
  type SnapshotHandler,
  type SnapshotStatus,
} from "./options.js";
export type { SnapshotPayload } from "./snapshot.js";
export { TransportMetrics, type PeerCounts } from "./metrics.js";
export { loadPeerTls, parsePeerUrl, type PeerTlsFiles, type PeerUrl } from "./tls.js";
export { PROTOCOL_VERSION, HELLO_MAGIC, HELLO_BYTES, memberIdHex } from "./hello.js";
export {
  TransportError,
  PeerTlsConfigError,
  PeerUrlError,
  PeerIdError,
  TransportStoppedError,
  PeerConnectionError,
  TransportInvariantError,
  type PeerErrorCode,
} from "./errors.js";
