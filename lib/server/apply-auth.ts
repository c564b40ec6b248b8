/**
 * The member's auth: the auth store and its token provider, the auth requests the apply loop
 * applies (etcd 3.4 etcdserver/apply.go's Auth* cases) and the permission checks every request
 * passes on apply (etcd's authApplierV3, apply_auth.go). Kept out of server.ts: the server calls
 * `checkApply` and `apply` for each entry, and gives its state to nothing else.
 */
import type { InternalRaftRequest } from "../proto/gen/etcdserverpb/raft_internal.js";
import type {
  AuthenticateResponse,
  PutRequest,
  RequestOp,
  ResponseHeader,
  TxnRequest,
} from "../proto/gen/etcdserverpb/rpc.js";
import {
  AuthStore,
  SimpleTokens,
  createTokenProvider,
  rootUser,
  defaultBcryptCost,
  maxBcryptCost,
  minBcryptCost,
  type AuthInfo,
  type TokenProvider,
} from "../auth/index.js";
import type { Lessor } from "../lease/index.js";
import type { ServerConfig } from "./config.js";
import { parseGoDurationMs } from "./duration.js";

/** What an applied auth request answers; `op` names it for the apply-duration metric. */
export interface AuthApplyResult {
  op: string;
  response: unknown;
}

/**
 * An applied Authenticate whose token is still to be signed (JWT tokens are signed by the member
 * that took the call, after apply: signing is asynchronous and needs no replicated state).
 */
export interface PendingJwt {
  header: ResponseHeader;
  username: string;
  revision: number;
}

const empty = new Uint8Array(0);

/** The auth part of a member. */
export class MemberAuth {
  readonly store: AuthStore;
  readonly tokens: TokenProvider;
  /** bcrypt cost for new passwords (etcd: an out-of-range --bcrypt-cost falls back to 10) */
  readonly bcryptCost: number;

  /** @throws AuthOptionsError for a bad --auth-token */
  constructor(config: ServerConfig) {
    this.tokens = createTokenProvider(
      config.authToken,
      config.authTokenTtlSeconds,
      parseGoDurationMs,
    );
    this.store = new AuthStore(this.tokens);
    const c = config.bcryptCost;
    this.bcryptCost = c >= minBcryptCost && c <= maxBcryptCost ? c : defaultBcryptCost;
  }

  /** Credentials of `root` at the current revision while auth is on (etcd's WithRoot), else undefined. */
  rootInfo(): AuthInfo | undefined {
    return this.store.enabled ? { username: rootUser, revision: this.store.revision } : undefined;
  }

  // ---------------------------------------------------------------- checks on apply

  /**
   * etcd's authApplierV3: while auth is on, admin requests need root, and puts, deletes, txns
   * (every compare and op, nested too) and lease revokes need the permissions of the user in the
   * request header at the auth revision it carries. Throws the AuthError to answer with.
   */
  checkApply(r: InternalRaftRequest, lessor: Lessor): void {
    const store = this.store;
    if (!store.enabled) return;
    const ai: AuthInfo = {
      username: r.header?.username ?? "",
      revision: r.header?.authRevision ?? 0,
    };
    if (needsAdmin(r)) {
      store.checkAdmin(ai);
      return;
    }
    if (r.put !== undefined) this.#checkPut(ai, r.put, lessor);
    else if (r.deleteRange !== undefined) {
      store.checkDeleteRange(ai, r.deleteRange.key, r.deleteRange.rangeEnd);
      if (r.deleteRange.prevKv) store.checkRange(ai, r.deleteRange.key, r.deleteRange.rangeEnd);
    } else if (r.txn !== undefined) this.checkTxn(ai, r.txn, lessor);
    else if (r.leaseRevoke !== undefined) this.checkLeaseKeys(ai, r.leaseRevoke.iD, lessor, "put");
    else if (r.authUserGet !== undefined) {
      // a user may read itself (etcd authApplierV3.UserGet)
      if (!store.isAdmin(ai) && r.authUserGet.name !== ai.username) store.checkAdmin(ai);
    } else if (r.authRoleGet !== undefined) {
      // ... and the roles it holds (authApplierV3.RoleGet)
      if (!store.isAdmin(ai) && !store.hasRole(ai.username, r.authRoleGet.role))
        store.checkAdmin(ai);
    }
  }

  /** etcd checkPutAuth: the key, the keys already on the lease it attaches to, prev_kv's read. */
  #checkPut(ai: AuthInfo, put: PutRequest, lessor: Lessor): void {
    this.store.checkPut(ai, put.key);
    if (put.lease !== 0n) this.checkLeaseKeys(ai, put.lease, lessor, "put");
    if (put.prevKv) this.store.checkRange(ai, put.key, empty);
  }

  /**
   * etcd checkLeasePuts / checkLeaseTimeToLive / checkLeaseRenew: unless root, every key on the
   * lease must be writable ("put") or readable ("range") by the user. An unknown lease passes.
   */
  checkLeaseKeys(ai: AuthInfo, leaseId: bigint, lessor: Lessor, need: "put" | "range"): void {
    const l = lessor.lookup(leaseId);
    if (l === undefined || this.store.isAdmin(ai)) return;
    for (const key of l.keys) {
      if (need === "put") this.store.checkPut(ai, key);
      else this.store.checkRange(ai, key, empty);
    }
  }

  /** etcd checkTxnAuth: every compare is a read; every op as its own request, nested txns too. */
  checkTxn(ai: AuthInfo, txn: TxnRequest, lessor: Lessor): void {
    const store = this.store;
    for (const c of txn.compare) store.checkRange(ai, c.key, c.rangeEnd);
    const ops = (list: RequestOp[]) => {
      for (const op of list) {
        const q = op.request;
        if (q.oneofKind === "requestRange") {
          store.checkRange(ai, q.requestRange.key, q.requestRange.rangeEnd);
        } else if (q.oneofKind === "requestPut") {
          this.#checkPut(ai, q.requestPut, lessor);
        } else if (q.oneofKind === "requestDeleteRange") {
          const d = q.requestDeleteRange;
          if (d.prevKv) store.checkRange(ai, d.key, d.rangeEnd);
          store.checkDeleteRange(ai, d.key, d.rangeEnd);
        } else if (q.oneofKind === "requestTxn") {
          this.checkTxn(ai, q.requestTxn, lessor);
        }
      }
    };
    ops(txn.success);
    ops(txn.failure);
  }

  // ---------------------------------------------------------------- apply

  /**
   * Applies `r` when it is an auth request (etcd applierV3backend's Auth* methods) and returns
   * its response; undefined when it is not one. `index` is the entry's raft index (a simple
   * token's suffix), `header` the response header. Throws the AuthError to answer with.
   */
  apply(
    r: InternalRaftRequest,
    index: number,
    header: () => ResponseHeader,
    nowMs: number,
  ): AuthApplyResult | undefined {
    const s = this.store;
    if (r.authenticate !== undefined) {
      const name = r.authenticate.name;
      s.checkAuthenticate(name);
      if (this.tokens instanceof SimpleTokens) {
        const token = this.tokens.assign(r.authenticate.simpleToken, index, name, nowMs);
        const resp: AuthenticateResponse = { header: header(), token };
        return { op: "Authenticate", response: resp };
      }
      const pending: PendingJwt = { header: header(), username: name, revision: s.revision };
      return { op: "Authenticate", response: pending };
    }
    const done = (op: string, extra: object = {}): AuthApplyResult => ({
      op,
      response: { header: header(), ...extra },
    });
    if (r.authEnable !== undefined) {
      s.authEnable();
      return done("AuthEnable");
    }
    if (r.authDisable !== undefined) {
      s.authDisable();
      return done("AuthDisable");
    }
    if (r.authStatus !== undefined) {
      return done("AuthStatus", { enabled: s.enabled, authRevision: s.revision });
    }
    if (r.authUserAdd !== undefined) {
      s.userAdd(r.authUserAdd);
      return done("UserAdd");
    }
    if (r.authUserDelete !== undefined) {
      s.userDelete(r.authUserDelete.name);
      return done("UserDelete");
    }
    if (r.authUserChangePassword !== undefined) {
      s.userChangePassword(r.authUserChangePassword);
      return done("UserChangePassword");
    }
    if (r.authUserGrantRole !== undefined) {
      s.userGrantRole(r.authUserGrantRole.user, r.authUserGrantRole.role);
      return done("UserGrantRole");
    }
    if (r.authUserGet !== undefined) {
      return done("UserGet", { roles: s.userGet(r.authUserGet.name) });
    }
    if (r.authUserRevokeRole !== undefined) {
      s.userRevokeRole(r.authUserRevokeRole.name, r.authUserRevokeRole.role);
      return done("UserRevokeRole");
    }
    if (r.authUserList !== undefined) return done("UserList", { users: s.userList() });
    if (r.authRoleAdd !== undefined) {
      s.roleAdd(r.authRoleAdd.name);
      return done("RoleAdd");
    }
    if (r.authRoleGet !== undefined) {
      return done("RoleGet", { perm: s.roleGet(r.authRoleGet.role) });
    }
    if (r.authRoleList !== undefined) return done("RoleList", { roles: s.roleList() });
    if (r.authRoleDelete !== undefined) {
      s.roleDelete(r.authRoleDelete.role);
      return done("RoleDelete");
    }
    if (r.authRoleGrantPermission !== undefined) {
      s.roleGrantPermission(r.authRoleGrantPermission);
      return done("RoleGrantPermission");
    }
    if (r.authRoleRevokePermission !== undefined) {
      s.roleRevokePermission(r.authRoleRevokePermission);
      return done("RoleRevokePermission");
    }
    return undefined;
  }
}

/** etcd's needAdminPermission: every auth management request (UserGet and RoleGet have their own rule). */
function needsAdmin(r: InternalRaftRequest): boolean {
  return (
    r.authEnable !== undefined ||
    r.authDisable !== undefined ||
    r.authStatus !== undefined ||
    r.authUserAdd !== undefined ||
    r.authUserDelete !== undefined ||
    r.authUserChangePassword !== undefined ||
    r.authUserGrantRole !== undefined ||
    r.authUserRevokeRole !== undefined ||
    r.authRoleAdd !== undefined ||
    r.authRoleGrantPermission !== undefined ||
    r.authRoleRevokePermission !== undefined ||
    r.authRoleDelete !== undefined ||
    r.authUserList !== undefined ||
    r.authRoleList !== undefined
  );
}
