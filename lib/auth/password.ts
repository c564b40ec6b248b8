/**
 * Password hashing with bcrypt through @node-rs/bcrypt's native asynchronous binding: the work
 * runs on libuv's thread pool, never on the event loop (a cost-10 hash takes ~50 ms). Hashes use
 * the `$2a$` prefix, as Go's golang.org/x/crypto/bcrypt writes them, so real etcd reads ours
 * from a snapshot and we read etcd's.
 */
import { hash, verify } from "@node-rs/bcrypt";

/** etcd's bcrypt bounds (bcrypt.MinCost, MaxCost) and default (bcrypt.DefaultCost). */
export const minBcryptCost = 4;
export const maxBcryptCost = 31;
export const defaultBcryptCost = 10;

/** The bcrypt hash of `password` at `cost` (etcd UserAdd / UserChangePassword). */
export function hashPassword(password: string, cost: number): Promise<string> {
  return hash(password, { cost, version: "2a" });
}

/** Whether `password` matches `encoded` (etcd CheckPassword); a malformed hash never matches. */
export async function verifyPassword(password: string, encoded: string): Promise<boolean> {
  if (encoded.length === 0) return false;
  try {
    return await verify(password, encoded);
  } catch {
    return false;
  }
}
