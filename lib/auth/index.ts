/**
 * lib/auth's public face: the auth store (users, roles, permissions, revision; etcd 3.4
 * auth/store.go), its tokens (simple and JWT), password hashing, and typed errors.
 */
export {
  AuthStore,
  rootUser,
  rootRole,
  type AuthInfo,
  type AuthSnapshot,
  type TokenInvalidation,
} from "./store.js";
export { UnifiedRangePermissions, isOpenEnded } from "./range-perms.js";
export {
  SimpleTokens,
  JwtTokens,
  createTokenProvider,
  defaultJwtTtlMs,
  defaultSimpleTokenTtlSeconds,
  type TokenProvider,
  type TokenInfo,
} from "./tokens.js";
export {
  hashPassword,
  verifyPassword,
  defaultBcryptCost,
  minBcryptCost,
  maxBcryptCost,
} from "./password.js";
export * from "./errors.js";
