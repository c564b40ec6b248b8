/**
 * Auth at the client API, as etcd 3.4: who a call is from (etcd's AuthInfoFromCtx: the `token`
 * gRPC metadata, or the gateway's `Authorization` header, else the client certificate's common
 * name under --client-cert-auth), the checks etcd makes before a request reaches raft or is
 * served locally (v3_server.go doSerialize / requireAuthInfo / checkLease*, maintenance.go's
 * authMaintenanceServer, watch.go isWatchPermitted), and the Auth service (v3rpc/auth.go,
 * v3_server.go Authenticate / UserAdd / …). Writes are checked again on apply (apply-auth.ts), at
 * the auth revision the call's token was checked against.
 *
 * Passwords are hashed and checked here, with bcrypt on libuv's thread pool (lib/auth/password),
 * before anything is proposed: the apply loop never hashes, and the WAL never holds a password.
 */
import type {
  AuthDisableResponse,
  AuthEnableResponse,
  AuthRoleAddRequest,
  AuthRoleAddResponse,
  AuthRoleDeleteRequest,
  AuthRoleDeleteResponse,
  AuthRoleGetRequest,
  AuthRoleGetResponse,
  AuthRoleGrantPermissionRequest,
  AuthRoleGrantPermissionResponse,
  AuthRoleListResponse,
  AuthRoleRevokePermissionRequest,
  AuthRoleRevokePermissionResponse,
  AuthStatusResponse,
  AuthUserAddRequest,
  AuthUserAddResponse,
  AuthUserChangePasswordRequest,
  AuthUserChangePasswordResponse,
  AuthUserDeleteRequest,
  AuthUserDeleteResponse,
  AuthUserGetRequest,
  AuthUserGetResponse,
  AuthUserGrantRoleRequest,
  AuthUserGrantRoleResponse,
  AuthUserListResponse,
  AuthUserRevokeRoleRequest,
  AuthUserRevokeRoleResponse,
  AuthenticateRequest,
  AuthenticateResponse,
  RangeRequest,
  TxnRequest,
  WatchCreateRequest,
  WatchResponse,
} from "../proto/gen/etcdserverpb/rpc.js";
import type { InternalRaftRequest } from "../proto/gen/etcdserverpb/raft_internal.js";
import {
  SimpleTokens,
  errAuthFailed,
  errAuthOldRevision,
  errInvalidAuthToken,
  errUserEmpty,
  hashPassword,
  verifyPassword,
  type AuthInfo,
  type AuthStore,
} from "../auth/index.js";
import type { EtcdServer } from "../server/index.js";
import { status as GrpcStatus } from "@grpc/grpc-js";
import { ApiError } from "./errors.js";
import type { PendingJwt } from "../server/apply-auth.js";

/**
 * What a call carries that says who it is from, whatever the transport: request metadata
 * (lower-case names; lib/h2's CallContext is one) and, on a TLS connection with a verified
 * client certificate, its common name.
 */
export interface CallAuth {
  readonly metadata: ReadonlyMap<string, string>;
  readonly certCommonName?: string;
  /**
   * True once the client gave up on the call (cancelled, its deadline passed, its connection
   * went); undefined where the transport does not tell (the JSON gateway). A write still waiting
   * for a leader is then never proposed (lib/server/proposals.ts RequestCaller).
   */
  readonly cancelled?: boolean;
}

/**
 * The credentials of `call` without its cancellation: for the cleanup a server does for a client
 * that went away (the Lock and Election servers' deletes), which etcd runs on its own context.
 */
export function credentialsOnly(call: CallAuth | undefined): CallAuth | undefined {
  if (call === undefined) return undefined;
  return call.certCommonName === undefined
    ? { metadata: call.metadata }
    : { metadata: call.metadata, certCommonName: call.certCommonName };
}

/** etcd's rpctypes.TokenFieldNameGRPC and TokenFieldNameSwagger. */
const tokenMetadataNames = ["token", "authorization"] as const;

/** Bound on Authenticate's retries when the auth revision moves during a password check. */
const maxAuthenticateAttempts = 3;

const noCredentials: AuthInfo = { username: "", revision: 0 };

/** auth/store.go's own texts, for the calls etcd 3.4 answers without mapping them. */
const rawAuthMessages = new Map([
  ["ErrUserEmpty", "auth: user name is empty"],
  ["ErrUserNotFound", "auth: user not found"],
  ["ErrPermissionDenied", "auth: permission denied"],
  ["ErrInvalidAuthToken", "auth: invalid auth token"],
]);

/** The auth half of EtcdApi: credentials, pre-checks and the Auth service. */
export class ApiAuth {
  readonly #server: EtcdServer;

  constructor(server: EtcdServer) {
    this.#server = server;
  }

  get #store(): AuthStore {
    return this.#server.auth.store;
  }

  /** Whether auth is on (the handlers' fast path skips everything here while it is off). */
  get enabled(): boolean {
    return this.#server.auth.store.enabled;
  }

  /**
   * etcd's AuthInfoFromCtx: undefined while auth is off or when the call has no credentials.
   * A simple token must name an entry this member has seen committed (it waits for that entry's
   * apply) and still be live; a JWT must verify and not be expired.
   * @throws errInvalidAuthToken
   */
  async authInfo(call: CallAuth | undefined): Promise<AuthInfo | undefined> {
    const store = this.#store;
    if (!store.enabled || call === undefined) return undefined;
    let token: string | undefined;
    for (const name of tokenMetadataNames) {
      token = call.metadata.get(name);
      if (token !== undefined) break;
    }
    if (token === undefined) {
      const cn = this.#server.config.clientTls.clientCertAuth ? call.certCommonName : undefined;
      return cn === undefined || cn === "" ? undefined : { username: cn, revision: store.revision };
    }
    const tokens = this.#server.auth.tokens;
    if (tokens instanceof SimpleTokens) {
      const index = SimpleTokens.indexOf(token);
      if (index === undefined) throw errInvalidAuthToken();
      if (index > this.#server.appliedIndex) await this.#waitForTokenEntry(index);
      const username = tokens.lookup(token, Date.now());
      if (username === undefined) throw errInvalidAuthToken();
      return { username, revision: this.#store.revision };
    }
    const info = await tokens.verify(token);
    if (info === undefined) throw errInvalidAuthToken();
    return info;
  }

  /**
   * etcd's isValidSimpleToken: waits until the entry a simple token names is applied here. The
   * token may come from another member (every member assigns it when it applies that entry) that
   * saw the entry committed before this one did: a follower learns a commit index a heartbeat
   * later. So an index past what this member knows committed is asked of the leader (a ReadIndex
   * round, which also waits for its apply); an index past the cluster's commit index names no
   * entry (etcd would wait for it until the call's deadline), nor does one when there is no leader
   * to ask: the token is invalid.
   * @throws errInvalidAuthToken
   */
  async #waitForTokenEntry(index: number): Promise<void> {
    const server = this.#server;
    // an applied entry is committed, though the member's commitIndex may not say so yet: it
    // moves when the ready round's fsync ends, and apply runs during that fsync (a client that
    // authenticated got its token from an applied entry and may call again before then)
    if (index <= Math.max(server.commitIndex, server.appliedIndex)) {
      await server.waitApplied(index);
      return;
    }
    try {
      await server.linearizableReadNotify();
    } catch {
      throw errInvalidAuthToken();
    }
    if (index > server.appliedIndex) throw errInvalidAuthToken();
  }

  /** etcd requireAuthInfo: while auth is on, the call must carry credentials. */
  async requireAuthInfo(call: CallAuth | undefined): Promise<AuthInfo | undefined> {
    const ai = await this.authInfo(call);
    if (ai === undefined && this.enabled) throw errUserEmpty();
    return ai;
  }

  /** etcd's authMaintenanceServer.isAuthenticated: root only. */
  async requireAdmin(call: CallAuth | undefined): Promise<AuthInfo | undefined> {
    const ai = await this.authInfo(call);
    this.#store.checkAdmin(ai);
    return ai;
  }

  /**
   * requireAdmin as etcd 3.4's authMaintenanceServer answers it for Snapshot, Hash, HashKV and
   * Defragment: the auth store's own error, not turned into its gRPC status (code Unknown, text
   * "auth: …"), exactly as real etcd 3.4.23 answers.
   */
  async requireAdminUnmapped(call: CallAuth | undefined): Promise<void> {
    try {
      await this.requireAdmin(call);
    } catch (err) {
      const raw = rawAuthMessages.get((err as { code?: string }).code ?? "");
      if (raw === undefined) throw err;
      throw new ApiError(GrpcStatus.UNKNOWN, raw);
    }
  }

  /**
   * etcd doSerialize around a local read: check with the call's credentials, read, then refuse
   * the answer if the auth store changed meanwhile.
   */
  async serialized<T>(
    call: CallAuth | undefined,
    check: (ai: AuthInfo) => void,
    read: () => Promise<T>,
  ): Promise<T> {
    const ai = (await this.authInfo(call)) ?? noCredentials;
    check(ai);
    const out = await read();
    if (ai.revision !== 0 && ai.revision !== this.#store.revision) throw errAuthOldRevision();
    return out;
  }

  /** KV.Range's check (IsRangePermitted). */
  checkRange(ai: AuthInfo, req: RangeRequest): void {
    this.#store.checkRange(ai, req.key, req.rangeEnd);
  }

  /** A txn's check (checkTxnAuth). */
  checkTxn(ai: AuthInfo, req: TxnRequest): void {
    this.#server.auth.checkTxn(ai, req, this.#server.lessor);
  }

  /** etcd checkLeaseRenew / checkLeaseTimeToLive for one lease's keys. */
  checkLeaseKeys(ai: AuthInfo | undefined, id: bigint, need: "put" | "range"): void {
    if (!this.enabled) return;
    if (ai === undefined) throw errUserEmpty();
    this.#server.auth.checkLeaseKeys(ai, id, this.#server.lessor, need);
  }

  /**
   * etcd isWatchPermitted: undefined when the watch may be created, else the cancel response
   * (created and canceled, watch id -1, the reason etcd gives).
   */
  async refuseWatch(
    call: CallAuth | undefined,
    c: WatchCreateRequest,
  ): Promise<WatchResponse | undefined> {
    let reason: string | undefined;
    try {
      const ai = (await this.authInfo(call)) ?? noCredentials;
      this.#store.checkRange(ai, c.key, c.rangeEnd);
    } catch (err) {
      // etcd puts the whole gRPC status text in the reason (rpctypes.ErrGRPC….Error())
      const code = (err as { code?: string }).code;
      const grpcCode =
        code === "ErrInvalidAuthToken"
          ? "Unauthenticated"
          : code === "ErrAuthOldRevision" || code === "ErrUserEmpty"
            ? "InvalidArgument"
            : undefined;
      reason =
        grpcCode === undefined
          ? "rpc error: code = PermissionDenied desc = etcdserver: permission denied"
          : `rpc error: code = ${grpcCode} desc = ${(err as Error).message}`;
    }
    if (reason === undefined) return undefined;
    return {
      header: this.#server.header(),
      watchId: -1n,
      created: true,
      canceled: true,
      compactRevision: 0,
      cancelReason: reason,
      fragment: false,
      events: [],
    };
  }

  // ------------------------------------------------------------------ Auth service

  async #propose<T>(r: Partial<InternalRaftRequest>, call: CallAuth | undefined): Promise<T> {
    const ai = await this.authInfo(call);
    return this.#server.proposeRequest<T>(r as InternalRaftRequest, ai);
  }

  authEnable(call?: CallAuth): Promise<AuthEnableResponse> {
    return this.#propose({ authEnable: {} }, call);
  }

  authDisable(call?: CallAuth): Promise<AuthDisableResponse> {
    return this.#propose({ authDisable: {} }, call);
  }

  /** etcd 3.5's AuthStatus (3.4 applies it but has no RPC for it). */
  authStatus(call?: CallAuth): Promise<AuthStatusResponse> {
    return this.#propose({ authStatus: {} }, call);
  }

  /**
   * etcd Authenticate: a linearizable read, the password checked against the stored hash off the
   * event loop, then the token made through raft (simple: "prefix.index" on every member; JWT:
   * signed here after apply). Retried when the auth store changed during the check.
   * @throws errAuthNotEnabled, errAuthFailed, the no-password error
   */
  async authenticate(req: AuthenticateRequest): Promise<AuthenticateResponse> {
    const server = this.#server;
    await server.linearizableReadNotify();
    for (let attempt = 1; ; attempt++) {
      const { hash, revision } = this.#store.passwordOf(req.name);
      if (!(await verifyPassword(req.password, hash))) throw errAuthFailed();
      const tokens = server.auth.tokens;
      const prefix = tokens instanceof SimpleTokens ? tokens.genTokenPrefix() : "";
      const out = await server.proposeRequest<AuthenticateResponse | PendingJwt>({
        authenticate: { name: req.name, password: "", simpleToken: prefix },
      } as InternalRaftRequest);
      if (revision === this.#store.revision || attempt >= maxAuthenticateAttempts) {
        if ("token" in out) return out;
        if (tokens instanceof SimpleTokens) throw new Error("authenticate: no simple token");
        const token = await tokens.sign(out.username, out.revision, Date.now());
        return { header: out.header, token };
      }
    }
  }

  /** etcd UserAdd; the password is hashed here (bcrypt, --bcrypt-cost) unless the user has none. */
  async userAdd(req: AuthUserAddRequest, call?: CallAuth): Promise<AuthUserAddResponse> {
    const noPassword = req.options?.noPassword === true;
    const hashedPassword =
      noPassword || req.name.length === 0
        ? ""
        : req.hashedPassword !== ""
          ? req.hashedPassword
          : await hashPassword(req.password, this.#server.auth.bcryptCost);
    return this.#propose(
      {
        authUserAdd: {
          name: req.name,
          password: "",
          options: { noPassword },
          hashedPassword,
        },
      },
      call,
    );
  }

  async userChangePassword(
    req: AuthUserChangePasswordRequest,
    call?: CallAuth,
  ): Promise<AuthUserChangePasswordResponse> {
    const hashedPassword =
      req.hashedPassword !== ""
        ? req.hashedPassword
        : await hashPassword(req.password, this.#server.auth.bcryptCost);
    return this.#propose(
      { authUserChangePassword: { name: req.name, password: "", hashedPassword } },
      call,
    );
  }

  userGet(req: AuthUserGetRequest, call?: CallAuth): Promise<AuthUserGetResponse> {
    return this.#propose({ authUserGet: req }, call);
  }

  userList(call?: CallAuth): Promise<AuthUserListResponse> {
    return this.#propose({ authUserList: {} }, call);
  }

  userDelete(req: AuthUserDeleteRequest, call?: CallAuth): Promise<AuthUserDeleteResponse> {
    return this.#propose({ authUserDelete: req }, call);
  }

  userGrantRole(
    req: AuthUserGrantRoleRequest,
    call?: CallAuth,
  ): Promise<AuthUserGrantRoleResponse> {
    return this.#propose({ authUserGrantRole: req }, call);
  }

  userRevokeRole(
    req: AuthUserRevokeRoleRequest,
    call?: CallAuth,
  ): Promise<AuthUserRevokeRoleResponse> {
    return this.#propose({ authUserRevokeRole: req }, call);
  }

  roleAdd(req: AuthRoleAddRequest, call?: CallAuth): Promise<AuthRoleAddResponse> {
    return this.#propose({ authRoleAdd: req }, call);
  }

  roleGet(req: AuthRoleGetRequest, call?: CallAuth): Promise<AuthRoleGetResponse> {
    return this.#propose({ authRoleGet: req }, call);
  }

  roleList(call?: CallAuth): Promise<AuthRoleListResponse> {
    return this.#propose({ authRoleList: {} }, call);
  }

  roleDelete(req: AuthRoleDeleteRequest, call?: CallAuth): Promise<AuthRoleDeleteResponse> {
    return this.#propose({ authRoleDelete: req }, call);
  }

  roleGrantPermission(
    req: AuthRoleGrantPermissionRequest,
    call?: CallAuth,
  ): Promise<AuthRoleGrantPermissionResponse> {
    return this.#propose({ authRoleGrantPermission: req }, call);
  }

  roleRevokePermission(
    req: AuthRoleRevokePermissionRequest,
    call?: CallAuth,
  ): Promise<AuthRoleRevokePermissionResponse> {
    return this.#propose({ authRoleRevokePermission: req }, call);
  }
}
