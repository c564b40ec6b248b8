/**
 * The auth store as etcd 3.4's auth/store.go: users, roles, key permissions, the enabled flag and
 * the auth revision, as a state machine without I/O (DESIGN §2). Every mutating method is called
 * from the apply loop, in log order, on every member, so they must be deterministic: passwords
 * arrive already hashed (lib/api hashes before proposing, as etcd 3.5 does; etcd 3.4 hashed inside
 * apply), and tokens are assigned by the caller.
 *
 * The auth revision counts changes of users, roles, permissions and disables (etcd's
 * commitRevision); a request carries the revision its token was checked against and is refused
 * on apply when the store moved on (errAuthOldRevision), so a permission revoked between a check
 * and an apply is never used. A fresh store is at revision 1, as a fresh etcd writes it.
 */
import {
  Permission_Type,
  type Permission,
  type Role,
  type User,
} from "../proto/gen/authpb/auth.js";
import type {
  AuthRoleGrantPermissionRequest,
  AuthRoleRevokePermissionRequest,
  AuthUserAddRequest,
  AuthUserChangePasswordRequest,
} from "../proto/gen/etcdserverpb/rpc.js";
import {
  errAuthFailed,
  errAuthNotEnabled,
  errAuthOldRevision,
  errInvalidAuthMgmt,
  errNoPasswordUser,
  errPermissionDenied,
  errPermissionNotGiven,
  errPermissionNotGranted,
  errRoleAlreadyExist,
  errRoleEmpty,
  errRoleNotFound,
  errRoleNotGranted,
  errRootRoleNotExist,
  errRootUserNotExist,
  errUserAlreadyExist,
  errUserEmpty,
  errUserNotFound,
} from "./errors.js";
import { UnifiedRangePermissions, isOpenEnded } from "./range-perms.js";

export const rootUser = "root";
export const rootRole = "root";

/** Who a request is from: the token's (or certificate's) user and the auth revision it was checked at. */
export interface AuthInfo {
  username: string;
  /** the auth store revision when the token was checked; 0 = no credentials */
  revision: number;
}

/** What the store holds, for the db file's auth buckets (etcd: auth, authUsers, authRoles). */
export interface AuthSnapshot {
  enabled: boolean;
  revision: number;
  /** sorted by name */
  users: User[];
  /** sorted by name */
  roles: Role[];
}

/** Called when tokens must go: a user's (deleted, new password) or all (auth disabled). */
export interface TokenInvalidation {
  enable(): void;
  disable(): void;
  invalidateUser(username: string): void;
}

const utf8 = new TextEncoder();
const byName = (a: { name: Uint8Array }, b: { name: Uint8Array }) =>
  Buffer.compare(Buffer.from(a.name), Buffer.from(b.name));

function hasRootRole(u: User): boolean {
  return u.roles.includes(rootRole);
}

/** etcd's isValidPermissionRange: a key, and an end after it, empty (one key) or "\0" (from key). */
function isValidPermissionRange(key: Uint8Array, rangeEnd: Uint8Array): boolean {
  if (key.length === 0) return false;
  if (rangeEnd.length === 0) return true;
  if (Buffer.compare(Buffer.from(key), Buffer.from(rangeEnd)) < 0) return true;
  return isOpenEnded(rangeEnd);
}

/**
 * etcd 3.4's authStore. Methods throw AuthError (lib/auth/errors.ts) with etcd's strings.
 */
export class AuthStore {
  #enabled = false;
  #revision = 1;
  readonly #users = new Map<string, User>();
  readonly #roles = new Map<string, Role>();
  /** username → merged permissions, built on first use after a change (etcd's rangePermCache) */
  #permCache = new Map<string, UnifiedRangePermissions>();
  #tokens: TokenInvalidation | undefined;

  /** `tokens` is told about enable/disable and users whose tokens must stop working. */
  constructor(tokens?: TokenInvalidation) {
    this.#tokens = tokens;
  }

  get enabled(): boolean {
    return this.#enabled;
  }

  /** the auth revision (etcd's authStore.Revision) */
  get revision(): number {
    return this.#revision;
  }

  #commit(): void {
    this.#revision++;
    this.#permCache = new Map();
  }

  // ------------------------------------------------------------------ enable / disable

  /** etcd AuthEnable: needs a `root` user holding the `root` role; enabling twice is a no-op. */
  authEnable(): void {
    if (this.#enabled) return;
    const root = this.#users.get(rootUser);
    if (root === undefined) throw errRootUserNotExist();
    if (!hasRootRole(root)) throw errRootRoleNotExist();
    this.#enabled = true;
    this.#permCache = new Map();
    this.#tokens?.enable();
  }

  /** etcd AuthDisable: every token stops working; the revision moves. */
  authDisable(): void {
    if (!this.#enabled) return;
    this.#enabled = false;
    this.#commit();
    this.#tokens?.disable();
  }

  // ------------------------------------------------------------------ authenticate

  /**
   * What a password check needs, before the (asynchronous) bcrypt comparison outside apply:
   * the user's hash and the revision it was read at (etcd CheckPassword).
   * @throws errAuthNotEnabled, errAuthFailed (no such user), errNoPasswordUser
   */
  passwordOf(username: string): { hash: string; revision: number } {
    if (!this.#enabled) throw errAuthNotEnabled();
    const u = this.#users.get(username);
    if (u === undefined) throw errAuthFailed();
    if (u.options?.noPassword === true) throw errNoPasswordUser();
    return { hash: Buffer.from(u.password).toString("latin1"), revision: this.#revision };
  }

  /**
   * etcd Authenticate on apply (the password was checked before proposing): the user must
   * still exist and have a password. The caller assigns the token.
   * @throws errAuthNotEnabled, errAuthFailed
   */
  checkAuthenticate(username: string): void {
    if (!this.#enabled) throw errAuthNotEnabled();
    const u = this.#users.get(username);
    if (u === undefined || u.options?.noPassword === true) throw errAuthFailed();
  }

  // ------------------------------------------------------------------ users

  /**
   * etcd UserAdd with the hash already made (`hashedPassword`; empty for a no-password user).
   * @throws errUserEmpty, errUserAlreadyExist
   */
  userAdd(r: AuthUserAddRequest): void {
    if (r.name.length === 0) throw errUserEmpty();
    if (this.#users.has(r.name)) throw errUserAlreadyExist();
    const noPassword = r.options?.noPassword === true;
    this.#users.set(r.name, {
      name: utf8.encode(r.name),
      password: noPassword ? new Uint8Array(0) : Buffer.from(r.hashedPassword, "latin1"),
      roles: [],
      options: { noPassword },
    });
    this.#commit();
  }

  /** etcd UserDelete; `root` cannot be deleted while auth is on. @throws errInvalidAuthMgmt, errUserNotFound */
  userDelete(name: string): void {
    if (this.#enabled && name === rootUser) throw errInvalidAuthMgmt();
    if (!this.#users.delete(name)) throw errUserNotFound();
    this.#commit();
    this.#tokens?.invalidateUser(name);
  }

  /** etcd UserChangePassword with the new hash already made. @throws errUserNotFound */
  userChangePassword(r: AuthUserChangePasswordRequest): void {
    const u = this.#users.get(r.name);
    if (u === undefined) throw errUserNotFound();
    this.#users.set(r.name, { ...u, password: Buffer.from(r.hashedPassword, "latin1") });
    this.#commit();
    this.#tokens?.invalidateUser(r.name);
  }

  /**
   * etcd UserGrantRole: the role must exist unless it is `root`; granting a held role changes
   * nothing. @throws errUserNotFound, errRoleNotFound
   */
  userGrantRole(user: string, role: string): void {
    const u = this.#users.get(user);
    if (u === undefined) throw errUserNotFound();
    if (role !== rootRole && !this.#roles.has(role)) throw errRoleNotFound();
    if (u.roles.includes(role)) return;
    this.#users.set(user, { ...u, roles: [...u.roles, role].sort() });
    this.#commit();
  }

  /** etcd UserGet: the user's roles. @throws errUserNotFound */
  userGet(name: string): string[] {
    const u = this.#users.get(name);
    if (u === undefined) throw errUserNotFound();
    return [...u.roles];
  }

  /** etcd UserList: every user name in byte order (the authUsers bucket's order). */
  userList(): string[] {
    return [...this.#users.values()].sort(byName).map((u) => Buffer.from(u.name).toString());
  }

  /**
   * etcd UserRevokeRole; `root` keeps the `root` role while auth is on.
   * @throws errInvalidAuthMgmt, errUserNotFound, errRoleNotGranted
   */
  userRevokeRole(name: string, role: string): void {
    if (this.#enabled && name === rootUser && role === rootRole) throw errInvalidAuthMgmt();
    const u = this.#users.get(name);
    if (u === undefined) throw errUserNotFound();
    const roles = u.roles.filter((r) => r !== role);
    if (roles.length === u.roles.length) throw errRoleNotGranted();
    this.#users.set(name, { ...u, roles });
    this.#commit();
  }

  /** etcd HasRole. */
  hasRole(user: string, role: string): boolean {
    return this.#users.get(user)?.roles.includes(role) ?? false;
  }

  // ------------------------------------------------------------------ roles

  /** etcd RoleAdd. @throws errRoleEmpty, errRoleAlreadyExist */
  roleAdd(name: string): void {
    if (name.length === 0) throw errRoleEmpty();
    if (this.#roles.has(name)) throw errRoleAlreadyExist();
    this.#roles.set(name, { name: utf8.encode(name), keyPermission: [] });
    this.#commit();
  }

  /** etcd RoleGet: the role's permissions, sorted by key. @throws errRoleNotFound */
  roleGet(name: string): Permission[] {
    const r = this.#roles.get(name);
    if (r === undefined) throw errRoleNotFound();
    return r.keyPermission.map((p) => ({ ...p }));
  }

  /** etcd RoleList: every role name in byte order. */
  roleList(): string[] {
    return [...this.#roles.values()].sort(byName).map((r) => Buffer.from(r.name).toString());
  }

  /**
   * etcd RoleDelete: the role goes from every user too; `root` stays while auth is on.
   * @throws errInvalidAuthMgmt, errRoleNotFound
   */
  roleDelete(name: string): void {
    if (this.#enabled && name === rootRole) throw errInvalidAuthMgmt();
    if (!this.#roles.delete(name)) throw errRoleNotFound();
    for (const [userName, u] of this.#users) {
      if (u.roles.includes(name)) {
        this.#users.set(userName, { ...u, roles: u.roles.filter((r) => r !== name) });
      }
    }
    this.#commit();
  }

  /**
   * etcd RoleGrantPermission: a permission on the same key and range end replaces the old one's
   * type; others are added, kept sorted by key.
   * @throws errPermissionNotGiven, errInvalidAuthMgmt (bad range), errRoleNotFound
   */
  roleGrantPermission(r: AuthRoleGrantPermissionRequest): void {
    const perm = r.perm;
    if (perm === undefined) throw errPermissionNotGiven();
    if (!isValidPermissionRange(perm.key, perm.rangeEnd)) throw errInvalidAuthMgmt();
    const role = this.#roles.get(r.name);
    if (role === undefined) throw errRoleNotFound();
    const same = (p: Permission) =>
      Buffer.compare(Buffer.from(p.key), Buffer.from(perm.key)) === 0 &&
      Buffer.compare(Buffer.from(p.rangeEnd), Buffer.from(perm.rangeEnd)) === 0;
    const perms = role.keyPermission.map((p) => ({ ...p }));
    const existing = perms.find(same);
    if (existing !== undefined) existing.permType = perm.permType;
    else {
      perms.push({
        permType: perm.permType,
        key: new Uint8Array(perm.key),
        rangeEnd: new Uint8Array(perm.rangeEnd),
      });
      // stable, by key only (etcd's permSlice)
      perms.sort((a, b) => Buffer.compare(Buffer.from(a.key), Buffer.from(b.key)));
    }
    this.#roles.set(r.name, { ...role, keyPermission: perms });
    this.#commit();
  }

  /**
   * etcd RoleRevokePermission: removes the permissions on exactly this key and range end.
   * @throws errRoleNotFound, errPermissionNotGranted
   */
  roleRevokePermission(r: AuthRoleRevokePermissionRequest): void {
    const role = this.#roles.get(r.role);
    if (role === undefined) throw errRoleNotFound();
    const key = Buffer.from(r.key);
    const end = Buffer.from(r.rangeEnd);
    const kept = role.keyPermission.filter(
      (p) => !key.equals(Buffer.from(p.key)) || !end.equals(Buffer.from(p.rangeEnd)),
    );
    if (kept.length === role.keyPermission.length) throw errPermissionNotGranted();
    this.#roles.set(r.role, { ...role, keyPermission: kept });
    this.#commit();
  }

  // ------------------------------------------------------------------ permission checks

  #permsOf(username: string): UnifiedRangePermissions | undefined {
    let p = this.#permCache.get(username);
    if (p !== undefined) return p;
    const u = this.#users.get(username);
    if (u === undefined) return undefined;
    const all: Permission[] = [];
    for (const roleName of u.roles) {
      const role = this.#roles.get(roleName);
      if (role !== undefined) all.push(...role.keyPermission);
    }
    p = new UnifiedRangePermissions(all);
    this.#permCache.set(username, p);
    return p;
  }

  /**
   * etcd isOpPermitted: nothing is checked while auth is off; otherwise the request needs
   * credentials, checked at the current revision, of a user who is root or whose roles cover
   * the key (empty `rangeEnd`) or the range.
   * @throws errUserEmpty, errAuthOldRevision, errPermissionDenied
   */
  #check(
    ai: AuthInfo | undefined,
    key: Uint8Array,
    rangeEnd: Uint8Array,
    type: Permission_Type.READ | Permission_Type.WRITE,
  ): void {
    if (!this.#enabled) return;
    if (ai === undefined || ai.revision === 0) throw errUserEmpty();
    if (ai.revision < this.#revision) throw errAuthOldRevision();
    const u = this.#users.get(ai.username);
    if (u === undefined) throw errPermissionDenied();
    if (hasRootRole(u)) return;
    if (this.#permsOf(ai.username)?.allows(type, key, rangeEnd) === true) return;
    throw errPermissionDenied();
  }

  /** etcd IsPutPermitted. */
  checkPut(ai: AuthInfo | undefined, key: Uint8Array): void {
    this.#check(ai, key, new Uint8Array(0), Permission_Type.WRITE);
  }

  /** etcd IsRangePermitted (`rangeEnd` empty: one key; "\0": from key). */
  checkRange(ai: AuthInfo | undefined, key: Uint8Array, rangeEnd: Uint8Array): void {
    this.#check(ai, key, rangeEnd, Permission_Type.READ);
  }

  /** etcd IsDeleteRangePermitted. */
  checkDeleteRange(ai: AuthInfo | undefined, key: Uint8Array, rangeEnd: Uint8Array): void {
    this.#check(ai, key, rangeEnd, Permission_Type.WRITE);
  }

  /**
   * etcd IsAdminPermitted: the user must hold the root role (no revision check, as etcd's).
   * @throws errUserEmpty, errUserNotFound, errPermissionDenied
   */
  checkAdmin(ai: AuthInfo | undefined): void {
    if (!this.#enabled) return;
    if (ai === undefined || ai.username === "") throw errUserEmpty();
    const u = this.#users.get(ai.username);
    if (u === undefined) throw errUserNotFound();
    if (!hasRootRole(u)) throw errPermissionDenied();
  }

  /** Whether `ai` is root (IsAdminPermitted without the error). */
  isAdmin(ai: AuthInfo | undefined): boolean {
    try {
      this.checkAdmin(ai);
      return true;
    } catch {
      return false;
    }
  }

  // ------------------------------------------------------------------ snapshot

  /** A copy of the whole store, for the db file. */
  snapshot(): AuthSnapshot {
    return {
      enabled: this.#enabled,
      revision: this.#revision,
      users: [...this.#users.values()].sort(byName).map((u) => ({ ...u, roles: [...u.roles] })),
      roles: [...this.#roles.values()]
        .sort(byName)
        .map((r) => ({ ...r, keyPermission: r.keyPermission.map((p) => ({ ...p })) })),
    };
  }

  /**
   * Replaces the store with `s` (etcd Recover from a db file, or a snapshot a follower gets from
   * the leader). A revision of 0 (an etcd that never wrote one) becomes 1. While auth stays on,
   * tokens stay valid (etcd's Recover keeps its token provider), except those of users that are
   * gone or whose password changed, as applying those changes would have dropped them; auth off
   * drops every token.
   */
  restore(s: AuthSnapshot): void {
    const before = new Map(this.#users);
    const wasEnabled = this.#enabled;
    this.#users.clear();
    this.#roles.clear();
    for (const u of s.users) {
      const roles = [...u.roles].sort();
      this.#users.set(Buffer.from(u.name).toString(), { ...u, roles });
    }
    for (const r of s.roles) this.#roles.set(Buffer.from(r.name).toString(), { ...r });
    this.#revision = Math.max(1, s.revision);
    this.#permCache = new Map();
    this.#enabled = s.enabled;
    if (!s.enabled) this.#tokens?.disable();
    else if (!wasEnabled) this.#tokens?.enable();
    else {
      for (const [name, old] of before) {
        const now = this.#users.get(name);
        if (now === undefined || !Buffer.from(now.password).equals(Buffer.from(old.password)))
          this.#tokens?.invalidateUser(name);
      }
    }
  }
}
