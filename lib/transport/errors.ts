/**
 * Errors raised by lib/transport. Each carries a stable `code` so the member branches on it
 * without matching message text (STYLE §3). Operating errors only: a peer that hangs up, refuses
 * us or speaks garbage is expected and handled inside the transport (logged, counted, reported in
 * PeerTransport.peerStatus); these classes are what the transport's own callers can see thrown.
 */

/** Base class for every lib/transport error. */
export class TransportError extends Error {
  /** Stable machine-readable code. */
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/**
 * The peer TLS flags are incomplete or unreadable: an https:// peer URL without
 * --peer-cert-file/--peer-key-file (etcd: "cannot listen on TLS for …: KeyFile and CertFile are
 * not presented"), only one of the two files given (etcd: "KeyFile and CertFile must both be
 * present"), or a file that cannot be read or parsed.
 */
export class PeerTlsConfigError extends TransportError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("PEER_TLS_CONFIG", message, options);
  }
}

/** A peer or listen URL that is not http(s)://host:port. */
export class PeerUrlError extends TransportError {
  readonly url: string;
  constructor(url: string, reason: string) {
    super("PEER_URL_INVALID", `invalid peer URL ${JSON.stringify(url)}: ${reason}`);
    this.url = url;
  }
}

/** A member id that cannot be used: 0 (raft's None), outside uint64, or one already removed. */
export class PeerIdError extends TransportError {
  constructor(message: string) {
    super("PEER_ID_INVALID", message);
  }
}

/** The transport was stopped (or not started) and cannot do what was asked. */
export class TransportStoppedError extends TransportError {
  constructor(what: string) {
    super("TRANSPORT_STOPPED", `peer transport is stopped: cannot ${what}`);
  }
}

/**
 * A broken invariant inside the transport: a programmer error, not an operating one (STYLE §2).
 * It is thrown, not handled, so the member stops with a clear message instead of limping on.
 */
export class TransportInvariantError extends TransportError {
  constructor(message: string) {
    super("TRANSPORT_INVARIANT", `transport invariant broken: ${message}`);
  }
}

/**
 * Why a peer connection was closed or refused. Used inside the transport for logging and for
 * PeerTransport.peerStatus(id).lastError; never thrown to the member.
 */
export class PeerConnectionError extends TransportError {
  constructor(code: PeerErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/**
 * Codes of PeerConnectionError. The first group are refusals sent in the hello reply (and so seen
 * by both sides); the rest are decided by one side alone.
 */
export type PeerErrorCode =
  | "protocol-version-mismatch"
  | "cluster-id-mismatch"
  | "wrong-receiver"
  | "unknown-member"
  | "member-removed"
  | "certificate-cn-not-allowed"
  | "bad-hello"
  | "unavailable"
  | "frame-too-large"
  | "bad-frame"
  | "wrong-member-id"
  | "dial-failed"
  | "timeout"
  | "connection-lost"
  | "snapshot-failed";
