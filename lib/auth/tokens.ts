/**
 * Auth tokens as etcd 3.4's auth/simple_token.go and auth/jwt.go, chosen by `--auth-token`:
 *
 * - `simple` (the default): a random 16-letter prefix made by the member that takes the
 *   Authenticate call, joined with the raft index of the entry that applies it ("prefix.index");
 *   every member records the token when it applies the entry, so any member accepts it. A token
 *   lives `--auth-token-ttl` seconds (300) after its last use; disabling auth, deleting a user or
 *   changing its password drops its tokens.
 * - `jwt,pub-key=…,priv-key=…,sign-method=…[,ttl=5m]`: a signed JWT with claims `username`,
 *   `revision` (the auth revision at Authenticate) and `exp`, made with `jose`. Nothing is kept on
 *   the member; any member with the key verifies it.
 */
import {
  randomInt,
  createPrivateKey,
  createPublicKey,
  createSecretKey,
  type KeyObject,
} from "node:crypto";
import { readFileSync } from "node:fs";
import { AuthOptionsError } from "./errors.js";
import type { TokenInvalidation } from "./store.js";

const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
const simpleTokenPrefixLength = 16;
/** etcd's simpleTokenTTLResolution: expired tokens are swept at most this often */
const sweepEveryMs = 1000;
/** etcd's jwt DefaultTTL */
export const defaultJwtTtlMs = 5 * 60 * 1000;
/** etcd's default --auth-token-ttl */
export const defaultSimpleTokenTtlSeconds = 300;

/** A token's owner and the auth revision it speaks for. */
export interface TokenInfo {
  username: string;
  revision: number;
}

/**
 * etcd's tokenSimple. Time comes in as arguments (`nowMs`); expired tokens are swept on use and
 * on assign, so the table stays bounded by the Authenticate rate times the TTL.
 */
export class SimpleTokens implements TokenInvalidation {
  readonly kind = "simple";
  readonly #ttlMs: number;
  #enabled = false;
  readonly #tokens = new Map<string, { username: string; expiresAtMs: number }>();
  #lastSweepMs = 0;

  constructor(ttlSeconds: number = defaultSimpleTokenTtlSeconds) {
    this.#ttlMs = (ttlSeconds > 0 ? ttlSeconds : defaultSimpleTokenTtlSeconds) * 1000;
  }

  get size(): number {
    return this.#tokens.size;
  }

  enable(): void {
    this.#enabled = true;
  }

  disable(): void {
    this.#enabled = false;
    this.#tokens.clear();
  }

  invalidateUser(username: string): void {
    for (const [t, v] of this.#tokens) if (v.username === username) this.#tokens.delete(t);
  }

  /** etcd genTokenPrefix: 16 random letters. */
  genTokenPrefix(): string {
    let s = "";
    for (let i = 0; i < simpleTokenPrefixLength; i++) s += letters[randomInt(letters.length)];
    return s;
  }

  /**
   * etcd assign on apply: "prefix.index", recorded for `username` (not recorded while auth is
   * off, as etcd's keeper is stopped then).
   */
  assign(prefix: string, index: number, username: string, nowMs: number): string {
    const token = `${prefix}.${index}`;
    this.#sweep(nowMs);
    if (this.#enabled) this.#tokens.set(token, { username, expiresAtMs: nowMs + this.#ttlMs });
    return token;
  }

  /** The raft index a simple token names, or undefined when it is not "prefix.index". */
  static indexOf(token: string): number | undefined {
    const parts = token.split(".");
    if (parts.length !== 2 || !/^\d+$/.test(parts[1]!)) return undefined;
    return Number(parts[1]);
  }

  /** The token's user (its TTL starts again), or undefined for an unknown or expired token. */
  lookup(token: string, nowMs: number): string | undefined {
    const t = this.#tokens.get(token);
    if (t === undefined) return undefined;
    if (t.expiresAtMs <= nowMs) {
      this.#tokens.delete(token);
      return undefined;
    }
    t.expiresAtMs = nowMs + this.#ttlMs;
    return t.username;
  }

  #sweep(nowMs: number): void {
    if (nowMs - this.#lastSweepMs < sweepEveryMs) return;
    this.#lastSweepMs = nowMs;
    for (const [t, v] of this.#tokens) if (v.expiresAtMs <= nowMs) this.#tokens.delete(t);
  }
}

/** The algorithms etcd 3.4 accepts in `sign-method` (jwt-go's names). */
const jwtAlgorithms = new Set([
  "RS256",
  "RS384",
  "RS512",
  "PS256",
  "PS384",
  "PS512",
  "ES256",
  "ES384",
  "ES512",
  "HS256",
  "HS384",
  "HS512",
]);

/** `jose`, imported on the first JWT signed or verified: it costs ~30 ms of every member's start. */
let jose: Promise<typeof import("jose")> | undefined;
function loadJose(): Promise<typeof import("jose")> {
  return (jose ??= import("jose"));
}

/** Verified JWTs remembered by JwtTokens (oldest dropped first past this many). */
const verifiedJwtCacheEntries = 10_000;

/**
 * etcd's tokenJWT, signing and verifying with `jose`. A token that verified is remembered, by its
 * exact bytes, until its `exp`: a client sends the same token on every request, and a signature
 * check (RS256: tens of µs) per request is what etcd pays. The answer for the same bytes cannot
 * change before `exp`; nothing else (auth revision, user deletion) is decided here.
 */
export class JwtTokens implements TokenInvalidation {
  readonly kind = "jwt";
  readonly algorithm: string;
  readonly ttlMs: number;
  readonly #signKey: KeyObject | undefined;
  readonly #verifyKey: KeyObject;
  /** token -> its claims and exp (ms since the epoch), in insertion order */
  readonly #verified = new Map<string, { info: TokenInfo; expiresAtMs: number }>();

  /**
   * Reads the key files named by `opts` (pub-key, priv-key, sign-method, ttl as a Go duration).
   * With only a public key the member verifies but cannot sign (etcd's verify-only mode).
   * @throws AuthOptionsError
   */
  constructor(opts: ReadonlyMap<string, string>, parseDurationMs: (s: string) => number) {
    const alg = opts.get("sign-method") ?? "";
    if (!jwtAlgorithms.has(alg)) throw new AuthOptionsError(`invalid sign-method "${alg}"`);
    this.algorithm = alg;
    const ttl = opts.get("ttl");
    this.ttlMs = ttl === undefined || ttl === "" ? defaultJwtTtlMs : parseDurationMs(ttl);
    const read = (name: string): Buffer | undefined => {
      const file = opts.get(name);
      if (file === undefined || file === "") return undefined;
      try {
        return readFileSync(file);
      } catch (err) {
        throw new AuthOptionsError(`cannot read ${name} ${file}: ${(err as Error).message}`);
      }
    };
    const priv = read("priv-key");
    const pub = read("pub-key");
    try {
      if (alg.startsWith("HS")) {
        if (priv === undefined) throw new AuthOptionsError("missing key data");
        this.#signKey = createSecretKey(priv);
        this.#verifyKey = this.#signKey;
      } else {
        if (priv === undefined && pub === undefined) throw new AuthOptionsError("missing key data");
        this.#signKey = priv === undefined ? undefined : createPrivateKey(priv);
        this.#verifyKey =
          pub !== undefined ? createPublicKey(pub) : createPublicKey(this.#signKey!);
      }
    } catch (err) {
      if (err instanceof AuthOptionsError) throw err;
      throw new AuthOptionsError(`bad key: ${(err as Error).message}`);
    }
  }

  enable(): void {}
  disable(): void {}
  invalidateUser(): void {}

  /** A token for `username` at auth `revision`, expiring ttl from `nowMs`. @throws AuthOptionsError when verify-only */
  async sign(username: string, revision: number, nowMs: number): Promise<string> {
    if (this.#signKey === undefined)
      throw new AuthOptionsError("token signing attempted with verify-only key");
    const { SignJWT } = await loadJose();
    return new SignJWT({ username, revision })
      .setProtectedHeader({ alg: this.algorithm, typ: "JWT" })
      .setExpirationTime(Math.floor((nowMs + this.ttlMs) / 1000))
      .sign(this.#signKey);
  }

  /**
   * The claims of a valid, unexpired token signed with our key and algorithm; else undefined.
   * `nowMs` (default: the clock) decides whether a remembered token has expired.
   */
  async verify(token: string, nowMs = Date.now()): Promise<TokenInfo | undefined> {
    const known = this.#verified.get(token);
    if (known !== undefined) {
      if (nowMs < known.expiresAtMs) return known.info;
      this.#verified.delete(token);
    }
    try {
      const { jwtVerify } = await loadJose();
      const { payload } = await jwtVerify(token, this.#verifyKey, {
        algorithms: [this.algorithm],
        currentDate: new Date(nowMs),
      });
      const { username, revision } = payload as { username?: unknown; revision?: unknown };
      if (typeof username !== "string" || typeof revision !== "number") return undefined;
      const info = { username, revision };
      if (typeof payload.exp === "number") {
        if (this.#verified.size >= verifiedJwtCacheEntries) {
          this.#verified.delete(this.#verified.keys().next().value!);
        }
        this.#verified.set(token, { info, expiresAtMs: payload.exp * 1000 });
      }
      return info;
    } catch {
      return undefined;
    }
  }
}

/** The token provider `--auth-token` asks for. */
export type TokenProvider = SimpleTokens | JwtTokens;

/**
 * Parses `--auth-token` ("simple", or "jwt,k=v,…") as etcd's decomposeOpts / NewTokenProvider.
 * @throws AuthOptionsError for an unknown type, a malformed or repeated option, bad keys
 */
export function createTokenProvider(
  option: string,
  simpleTtlSeconds: number,
  parseDurationMs: (s: string) => number,
): TokenProvider {
  const parts = option.split(",");
  const type = parts[0];
  const opts = new Map<string, string>();
  for (const p of parts.slice(1)) {
    const kv = p.split("=");
    if (kv.length !== 2) throw new AuthOptionsError(`malformed option "${p}"`);
    if (opts.has(kv[0]!)) throw new AuthOptionsError(`option "${kv[0]}" given twice`);
    opts.set(kv[0]!, kv[1]!);
  }
  if (type === "simple") return new SimpleTokens(simpleTtlSeconds);
  if (type === "jwt") return new JwtTokens(opts, parseDurationMs);
  throw new AuthOptionsError(`unknown token type "${type}"`);
}
