/**
 * Password hashing with bcrypt through @node-rs/bcrypt's native asynchronous binding: the work
 * runs on libuv's thread pool, never on the event loop (a cost-10 hash takes ~50 ms). Hashes use
 * the `$2a$` prefix, as Go's golang.org/x/crypto/bcrypt writes them, so real etcd reads ours
 * from a snapshot and we read etcd's.
 *
 * The thread pool (4 threads unless UV_THREADPOOL_SIZE says otherwise) also runs the WAL's and
 * the snapshot's file writes: 100 clients authenticating at once held every thread for seconds
 * and stalled every commit ("request timed out" on puts). So at most maxConcurrentBcrypt hashes
 * run at a time and the rest wait in a bounded queue, leaving threads for the disk, and a core
 * for the event loop: on 2 cores, two hashes at once took 1.7 cores and raised the p99 of paced
 * puts from other clients 4.5x (bench:auth, 100 clients authenticating).
 */
import { availableParallelism } from "node:os";
import { hash, verify } from "@node-rs/bcrypt";
import { errTooManyRequests } from "./errors.js";

/**
 * bcrypt hashes on libuv's thread pool at one time: one core fewer than the machine has, at
 * least 1 and at most 2 (half the pool's default 4 threads).
 */
export const maxConcurrentBcrypt = Math.max(1, Math.min(2, availableParallelism() - 1));
/** password checks waiting for a thread; one more fails with etcd's "too many requests". */
export const maxQueuedBcrypt = 4096;

let running = 0;
const waiting: (() => void)[] = [];

/** Runs `work` when fewer than maxConcurrentBcrypt hashes run. @throws errTooManyRequests */
async function limited<T>(work: () => Promise<T>): Promise<T> {
  if (running >= maxConcurrentBcrypt) {
    if (waiting.length >= maxQueuedBcrypt) throw errTooManyRequests();
    await new Promise<void>((resolve) => waiting.push(resolve));
  } else {
    running++;
  }
  try {
    return await work();
  } finally {
    // hand the slot straight to the next waiter (running stays the same), or free it
    const next = waiting.shift();
    if (next !== undefined) next();
    else running--;
  }
}

/** etcd's bcrypt bounds (bcrypt.MinCost, MaxCost) and default (bcrypt.DefaultCost). */
export const minBcryptCost = 4;
export const maxBcryptCost = 31;
export const defaultBcryptCost = 10;

/** The bcrypt hash of `password` at `cost` (etcd UserAdd / UserChangePassword). */
export function hashPassword(password: string, cost: number): Promise<string> {
  return limited(() => hash(password, { cost, version: "2a" }));
}

/**
 * Whether `password` matches `encoded` (etcd CheckPassword); a malformed hash never matches.
 * @throws errTooManyRequests when maxQueuedBcrypt checks already wait
 */
export function verifyPassword(password: string, encoded: string): Promise<boolean> {
  if (encoded.length === 0) return Promise.resolve(false);
  return limited(async () => {
    try {
      return await verify(password, encoded);
    } catch {
      return false;
    }
  });
}
