/**
 * The failpoint runtime: which points are set, and what a point does when the code reaches it.
 *
 * Call sites are one line: `if (failpoint("walBeforeSync")) skip…` (the result is true only for
 * `drop`). With nothing set anywhere, `failpoint` returns at its first line, on a module boolean,
 * so an unset point costs one well-predicted branch (bench/failpoint.bench.ts measures it). The
 * state is per process, as gofail's: a member is one process.
 *
 * Set at start from `ETCD_TS_FAILPOINTS='name=terms;name=terms'` (gofail's GOFAIL_FAILPOINTS; terms
 * as terms.ts) with `loadFailpointsFromEnv`, and at run time over HTTP (http.ts) or with
 * `setFailpoint`. Probabilities draw from a PRNG seeded by `ETCD_TS_FAILPOINTS_SEED` (default:
 * random, logged by the caller), so a run replays.
 */
import { writeSync } from "node:fs";
import {
  FailpointInjectedError,
  FailpointSyntaxError,
  FailpointUnknownError,
  FailpointUnsupportedError,
} from "./errors.js";
import { failpointSpec, isFailpointName, type FailpointName } from "./points.js";
import { seededRandom } from "./random.js";
import { parseTerms, selectTerm, type FailpointTerm } from "./terms.js";

/** The environment variable read at start (gofail: GOFAIL_FAILPOINTS). */
export const FAILPOINTS_ENV = "ETCD_TS_FAILPOINTS";
/** The environment variable that seeds probabilistic terms. */
export const FAILPOINTS_SEED_ENV = "ETCD_TS_FAILPOINTS_SEED";

interface Slot {
  terms: string;
  chain: FailpointTerm[];
  /** Times a term ran (gofail's count). */
  count: number;
}

/** True while any point is set: the one check an unset point pays. */
let armed = false;
const slots = new Map<string, Slot>();
const panicHooks: Array<(name: string) => void> = [];
const sleepCell = new Int32Array(new SharedArrayBuffer(4));
let seedInUse = (Math.random() * 2 ** 32) >>> 0;
let random = seededRandom(seedInUse);

/** Seeds the PRNG of probabilistic terms (`P%`), so a run replays. */
export function seedFailpoints(seed: number): void {
  seedInUse = seed >>> 0;
  random = seededRandom(seedInUse);
}

/**
 * Evaluates the failpoint `name`: returns false at once when no point is set (the production
 * path). Otherwise runs the term the point's chain selects: `off` and `print` return false, `drop`
 * returns true (the caller skips the guarded operation), `sleep` blocks the thread, `panic` runs
 * the panic hooks and SIGKILLs the process (never returns), `error` throws
 * FailpointInjectedError.
 */
export function failpoint(name: FailpointName): boolean {
  if (!armed) return false;
  return evaluate(name);
}

/**
 * Evaluates point `name` as failpoint() does, except that a `sleep` term does not block the
 * thread: its duration in ms is returned (0 for every other term, and when unset) for the caller
 * to wait asynchronously. For points where etcd's sleep holds back one goroutine while the others
 * go on: raftBeforeSave holds etcd's raft loop (the WAL save) while its applier keeps applying.
 * `panic` and `error` act as in failpoint().
 */
export function failpointSleepMs(name: FailpointName): number {
  if (!armed) return 0;
  let sleepMs = 0;
  evaluate(name, (ms) => {
    sleepMs = ms;
  });
  return sleepMs;
}

/** Runs the selected term; a `sleep` is handed to `onSleep` when given, else blocks the thread. */
function evaluate(name: string, onSleep?: (ms: number) => void): boolean {
  const slot = slots.get(name);
  if (slot === undefined) return false;
  const term = selectTerm(slot.chain, random);
  if (term === undefined) return false;
  slot.count++;
  const a = term.action;
  switch (a.kind) {
    case "off":
      return false;
    case "drop":
      return true;
    case "print":
      writeSync(2, `failpoint print: ${name}\n`);
      return false;
    case "sleep":
      if (onSleep !== undefined) onSleep(a.ms);
      else Atomics.wait(sleepCell, 0, 0, a.ms);
      return false;
    case "error":
      throw new FailpointInjectedError(name, a.message);
    case "panic":
      return panic(name, a.message);
  }
}

function panic(name: string, message: string | undefined): never {
  for (const hook of panicHooks) {
    try {
      hook(name);
    } catch (err) {
      writeSync(2, `failpoint panic hook failed: ${String(err)}\n`);
    }
  }
  writeSync(2, `failpoint panic: ${message ?? name}\n`);
  process.kill(process.pid, "SIGKILL");
  // SIGKILL to oneself is delivered before kill() returns on Linux; never fall through
  for (;;) Atomics.wait(sleepCell, 0, 0, 1000);
}

/**
 * Registers `hook` to run when a `panic` term fires, just before the SIGKILL (the simulated power
 * loss uses it to tear pending writes). Hooks run synchronously; one that throws is reported and
 * skipped.
 */
export function onFailpointPanic(hook: (name: string) => void): void {
  panicHooks.push(hook);
}

/**
 * Sets point `name` to `terms` (replacing what it had, count reset). Throws FailpointUnknownError
 * for an unregistered name, FailpointSyntaxError for terms that do not parse, and
 * FailpointUnsupportedError for `drop` or `error` where the point has no such effect.
 */
export function setFailpoint(name: string, terms: string): void {
  const chain = compile(name, terms);
  slots.set(name, { terms: terms.trim(), chain, count: 0 });
  armed = true;
}

/**
 * Checks that `terms` would set point `name` (the errors of setFailpoint) without setting it.
 */
export function validateFailpoint(name: string, terms: string): void {
  compile(name, terms);
}

/** Parses `terms` for point `name` and checks the point supports each action (see setFailpoint). */
function compile(name: string, terms: string): FailpointTerm[] {
  if (!isFailpointName(name)) throw new FailpointUnknownError(name);
  const chain = parseTerms(terms);
  const spec = failpointSpec(name);
  for (const t of chain) {
    const k = t.action.kind;
    if ((k === "drop" && spec.drop === undefined) || (k === "error" && spec.error === undefined))
      throw new FailpointUnsupportedError(name, k);
  }
  return chain;
}

/** Unsets point `name` (no-op when unset). Throws FailpointUnknownError for an unregistered name. */
export function clearFailpoint(name: string): void {
  if (!isFailpointName(name)) throw new FailpointUnknownError(name);
  slots.delete(name);
  armed = slots.size > 0;
}

/** Unsets every point. */
export function clearAllFailpoints(): void {
  slots.clear();
  armed = false;
}

/** The terms point `name` is set to ("" when unset). Throws FailpointUnknownError. */
export function failpointTerms(name: string): string {
  if (!isFailpointName(name)) throw new FailpointUnknownError(name);
  return slots.get(name)?.terms ?? "";
}

/** Times a term of point `name` ran since it was set (0 when unset). Throws FailpointUnknownError. */
export function failpointCount(name: string): number {
  if (!isFailpointName(name)) throw new FailpointUnknownError(name);
  return slots.get(name)?.count ?? 0;
}

/**
 * Splits `name=terms;name=terms` (GOFAIL_FAILPOINTS's form; a `;` inside a quoted message does
 * not split) into pairs. Throws FailpointSyntaxError for an entry without `=`.
 */
export function parseFailpointList(list: string): Array<{ name: string; terms: string }> {
  const out: Array<{ name: string; terms: string }> = [];
  let start = 0;
  let quoted = false;
  for (let i = 0; i <= list.length; i++) {
    const ch = list[i];
    if (ch === '"' && list[i - 1] !== "\\") quoted = !quoted;
    if (i < list.length && (quoted || ch !== ";")) continue;
    const entry = list.slice(start, i).trim();
    start = i + 1;
    if (entry === "") continue;
    const eq = entry.indexOf("=");
    if (eq <= 0) throw new FailpointSyntaxError(entry, 'expected "name=terms"');
    out.push({ name: entry.slice(0, eq).trim(), terms: entry.slice(eq + 1) });
  }
  return out;
}

/**
 * Sets the points `ETCD_TS_FAILPOINTS` names and seeds the PRNG from `ETCD_TS_FAILPOINTS_SEED`
 * when given. Returns what was set and the seed in use. Throws (FailpointError) on the first bad
 * entry, having set none of them.
 */
export function loadFailpointsFromEnv(env: NodeJS.ProcessEnv = process.env): {
  set: Array<{ name: string; terms: string }>;
  seed: number;
} {
  const seedText = env[FAILPOINTS_SEED_ENV];
  if (seedText !== undefined && seedText !== "") {
    if (!/^\d+$/.test(seedText)) {
      throw new FailpointSyntaxError(seedText, `${FAILPOINTS_SEED_ENV} must be a whole number`);
    }
    seedFailpoints(Number(seedText));
  }
  const seed = seedInUse;
  const list = parseFailpointList(env[FAILPOINTS_ENV] ?? "");
  for (const { name, terms } of list) compile(name, terms);
  for (const { name, terms } of list) setFailpoint(name, terms);
  return { set: list, seed };
}
