/**
 * Password hashing with bcrypt (@node-rs/bcrypt), never on the event loop: on worker threads of
 * their own (bcrypt-worker.ts) at nice 19, the lowest priority. Hashes use the `$2a$` prefix, as
 * Go's golang.org/x/crypto/bcrypt writes them, so real etcd reads ours from a snapshot and we
 * read etcd's.
 *
 * History of the choice (bench:auth, 100 clients authenticating at cost 10 while 16 others put at
 * 1000/s, on 2 cores): on libuv's thread pool (4 threads), the hashes held every thread and the
 * WAL's writes, which share the pool, waited behind them ("request timed out"); two at a time on
 * the pool raised the puts' p99 5x (etcd's: 260x); one at a time 2.9x, at 0.6x etcd's
 * Authenticate rate. Threads of their own at low priority leave the pool to the disk and yield
 * the CPU to requests when the machine is busy, and use every core for hashes when it is not.
 * At most bcryptWorkers hashes run at once; the rest wait in a bounded queue.
 */
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { errTooManyRequests } from "./errors.js";
import type { BcryptJob, BcryptResponse } from "./bcrypt-worker.js";

/** Worker threads hashing at once: one per core, at most 4. */
export const bcryptWorkers = Math.max(1, Math.min(4, availableParallelism()));
/** password checks waiting for a worker; one more fails with etcd's "too many requests". */
export const maxQueuedBcrypt = 4096;

interface Slot {
  worker: Worker;
  pending: {
    id: number;
    resolve: (v: string | boolean) => void;
    reject: (e: Error) => void;
  } | null;
}
const idle: Slot[] = [];
let nextId = 0;

/** A worker thread for bcrypt; an error or exit fails its request and retires it. */
function startWorker(): Slot {
  const worker = new Worker(new URL("./bcrypt-worker.js", import.meta.url));
  worker.unref();
  const slot: Slot = { worker, pending: null };
  const retire = (err: Error) => {
    const p = slot.pending;
    slot.pending = null;
    const i = idle.indexOf(slot);
    if (i >= 0) idle.splice(i, 1);
    p?.reject(err);
  };
  worker.on("message", (res: BcryptResponse) => {
    const p = slot.pending;
    if (p === null || p.id !== res.id) return;
    slot.pending = null;
    worker.unref(); // an idle worker does not keep the process alive
    idle.push(slot);
    if (res.ok) p.resolve(res.value);
    else p.reject(new Error(res.error));
  });
  worker.on("error", retire);
  worker.on("exit", (code) => retire(new Error(`bcrypt worker exited with code ${code}`)));
  return slot;
}

/** Runs one request on an idle worker (limited() guarantees one exists or can be started). */
function run(req: BcryptJob): Promise<string | boolean> {
  const slot = idle.pop() ?? startWorker();
  const id = nextId++;
  return new Promise((resolve, reject) => {
    slot.pending = { id, resolve, reject };
    slot.worker.ref(); // a request in flight does
    slot.worker.postMessage({ ...req, id });
  });
}

let running = 0;
const waiting: (() => void)[] = [];

/** Runs `work` when fewer than bcryptWorkers hashes run. @throws errTooManyRequests */
async function limited<T>(work: () => Promise<T>): Promise<T> {
  if (running >= bcryptWorkers) {
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
  return limited(async () => (await run({ kind: "hash", password, cost })) as string);
}

/**
 * Whether `password` matches `encoded` (etcd CheckPassword); a malformed hash never matches.
 * @throws errTooManyRequests when maxQueuedBcrypt checks already wait
 */
export function verifyPassword(password: string, encoded: string): Promise<boolean> {
  if (encoded.length === 0) return Promise.resolve(false);
  return limited(async () => {
    try {
      return (await run({ kind: "verify", password, encoded })) === true;
    } catch {
      return false;
    }
  });
}
