/**
 * Auth for the load generator (`--user NAME --password PW`), as etcd 3.4's benchmark tool gets it
 * from clientv3: each connection (the tool's clientv3 client, one per --conns) calls
 * Auth/Authenticate once when it is set up and then sends the token as `token` metadata on every
 * call (clientv3's authTokenBundle). When the server refuses a token as invalid (a simple token
 * past --auth-token-ttl, an expired JWT) or as older than the auth store
 * (`etcdserver: revision of auth store is old`), the connection authenticates again and the call
 * is retried once, as clientv3's retry interceptor does (shouldRefreshToken).
 */
import { AuthenticateRequest, AuthenticateResponse } from "../../lib/proto/gen/etcdserverpb/rpc.js";
import { GrpcCallError } from "./errors.js";
import { frameMessage } from "./grpc-frame.js";
import { GrpcPath } from "./messages.js";

/** What a connection needs for auth: unary calls and a token it sends from then on. */
export interface TokenConnection {
  unary(path: string, frame: Buffer): Promise<Buffer>;
  setToken(token: string | null): void;
}

/** gRPC status codes of etcd's token errors (rpctypes: ErrGRPCInvalidAuthToken, ErrGRPCAuthOldRevision). */
const GRPC_UNAUTHENTICATED = 16;
const GRPC_INVALID_ARGUMENT = 3;

/** A framed AuthenticateRequest{name, password}: the same bytes for every call of a run. */
export function frameAuthenticate(user: string, password: string): Buffer {
  return frameMessage(AuthenticateRequest.toBinary({ name: user, password }));
}

/**
 * True for the errors after which clientv3 gets a new token and retries: `etcdserver: invalid
 * auth token` (UNAUTHENTICATED) and `etcdserver: revision of auth store is old`
 * (INVALID_ARGUMENT).
 */
export function isStaleTokenError(err: unknown): boolean {
  if (!(err instanceof GrpcCallError)) return false;
  return (
    (err.grpcStatus === GRPC_UNAUTHENTICATED && err.grpcMessage.endsWith("invalid auth token")) ||
    (err.grpcStatus === GRPC_INVALID_ARGUMENT &&
      err.grpcMessage.endsWith("revision of auth store is old"))
  );
}

/**
 * The credentials of one load run and the connections logged in with them. `unary` is a
 * connection's unary call that re-authenticates once on a stale token.
 */
export class ConnectionCredentials {
  /** Authenticate calls made after a token went stale. */
  reauthentications = 0;
  readonly #frame: Buffer;
  readonly #refreshing = new Map<TokenConnection, Promise<void>>();

  constructor(user: string, password: string) {
    this.#frame = frameAuthenticate(user, password);
  }

  /**
   * Calls Authenticate on `conn` and makes it send the token from then on. Rejects with
   * GrpcCallError as the server answers (`etcdserver: authentication failed, invalid user ID or
   * password`, `etcdserver: authentication is not enabled`, …).
   */
  async login(conn: TokenConnection): Promise<void> {
    conn.setToken(null); // Authenticate itself goes without a token, as clientv3's getToken
    const resp = AuthenticateResponse.fromBinary(
      await conn.unary(GrpcPath.authenticate, this.#frame),
    );
    conn.setToken(resp.token);
  }

  /** One new login per connection at a time, however many calls found the token stale. */
  #refresh(conn: TokenConnection): Promise<void> {
    let p = this.#refreshing.get(conn);
    if (p === undefined) {
      this.reauthentications++;
      p = this.login(conn).finally(() => this.#refreshing.delete(conn));
      this.#refreshing.set(conn, p);
    }
    return p;
  }

  /** `conn.unary(path, frame)`, retried once after a new login when the token was stale. */
  unary(conn: TokenConnection, path: string, frame: Buffer): Promise<Buffer> {
    return conn.unary(path, frame).catch((err: unknown) => {
      if (!isStaleTokenError(err)) throw err;
      return this.#refresh(conn).then(() => conn.unary(path, frame));
    });
  }
}
