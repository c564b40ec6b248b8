/**
 * gofail's term syntax (etcd-io/gofail doc/design.md, runtime/terms.go), the actions etcd-ts
 * carries out:
 *
 *     Terms  = Term { "->" Term }
 *     Term   = { Mode } Action [ "(" Value ")" ]
 *     Mode   = float "%" | int "*"
 *     Action = "off" | "panic" | "sleep" | "error" | "drop" | "print"
 *
 * Evaluation as gofail's: the first term whose modes all allow it runs; `N*` lets a term run N
 * times, `P%` with probability P/100 (modes are checked left to right and the first refusal stops
 * the check, so `50%2*panic` spends a count only when the coin said yes). When no term allows, the
 * point does nothing. Examples: `panic`, `50%panic`, `2*off->panic` (the third pass panics),
 * `2*sleep(100)` (100 ms, twice), `sleep("1.5s")`, `10%drop`, `error("disk full")`.
 *
 * gofail's `return(v)` hands a value to Go code; etcd-ts points have no values, so `error` and
 * `drop` stand for what gofail points do with it. `break` (attach gdb) has no Node equivalent.
 */
import { FailpointSyntaxError } from "./errors.js";

/** The longest sleep a term may ask for: 10 minutes (a bound, STYLE §2). */
export const MAX_SLEEP_MS = 600_000;

/** What a term does when it runs. */
export type FailpointAction =
  | { kind: "off" }
  /** exit at once, as kill -9 (SIGKILL to itself): nothing is flushed */
  | { kind: "panic"; message?: string }
  /**
   * block the thread for `ms` (gofail's sleep blocks the goroutine; here the one thread), or, at
   * a point read with failpointSleepMs, hold back only the work that point guards
   */
  | { kind: "sleep"; ms: number }
  /** throw FailpointInjectedError at the point */
  | { kind: "error"; message?: string }
  /** skip the operation the point guards (see FailpointSpec.drop) */
  | { kind: "drop" }
  /** print "failpoint print: <name>" on stderr */
  | { kind: "print" };

/** One mode of a term: a count that runs down, or a probability in [0, 1]. */
export type FailpointMode =
  { kind: "count"; remaining: number } | { kind: "probability"; p: number };

/** One parsed term. */
export interface FailpointTerm {
  /** The term's text as given. */
  desc: string;
  modes: FailpointMode[];
  action: FailpointAction;
}

const actionNames = ["off", "panic", "sleep", "error", "drop", "print"] as const;

/** Go duration units in ms (time.ParseDuration), for sleep("1.5s") and sleep(100ms). */
const durationUnitsMs: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

function parseDurationMs(s: string): number | undefined {
  const re = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/y;
  let total = 0;
  let pos = 0;
  while (pos < s.length) {
    re.lastIndex = pos;
    const m = re.exec(s);
    if (m === null) return undefined;
    total += Number(m[1]) * durationUnitsMs[m[2]!]!;
    pos = re.lastIndex;
  }
  return pos === 0 ? undefined : total;
}

/** A parse position over one terms string; `fail` throws naming the rest. */
class Cursor {
  readonly text: string;
  pos = 0;
  constructor(text: string) {
    this.text = text;
  }
  get rest(): string {
    return this.text.slice(this.pos);
  }
  fail(reason: string): never {
    throw new FailpointSyntaxError(this.text, `${reason} at ${JSON.stringify(this.rest)}`);
  }
}

function parseModes(c: Cursor): FailpointMode[] {
  const modes: FailpointMode[] = [];
  const re = /(\d+(?:\.\d*)?)([%*])/y;
  for (;;) {
    re.lastIndex = c.pos;
    const m = re.exec(c.text);
    if (m === null) return modes;
    const n = Number(m[1]);
    if (m[2] === "%") {
      if (n > 100) c.fail("a probability above 100%");
      modes.push({ kind: "probability", p: n / 100 });
    } else {
      if (!Number.isSafeInteger(n)) c.fail("a count must be a whole number");
      modes.push({ kind: "count", remaining: n });
    }
    c.pos = re.lastIndex;
  }
}

/** The argument of `name(...)`, if any: a quoted string, a number, or a bare word. */
function parseValue(c: Cursor): string | number | undefined {
  if (c.text[c.pos] !== "(") return undefined;
  const close = c.text.indexOf(")", c.pos);
  if (c.text[c.pos + 1] === '"') {
    // a Go-quoted string: JSON's escapes are the ones that matter here
    const m = /"(?:[^"\\]|\\.)*"/y;
    m.lastIndex = c.pos + 1;
    const q = m.exec(c.text);
    if (q === null || c.text[m.lastIndex] !== ")") c.fail("an unterminated string");
    c.pos = m.lastIndex + 1;
    try {
      return JSON.parse(q[0]) as string;
    } catch {
      c.fail("a malformed string");
    }
  }
  if (close < 0) c.fail('a missing ")"');
  const raw = c.text.slice(c.pos + 1, close).trim();
  c.pos = close + 1;
  if (raw === "") return undefined;
  return /^\d+$/.test(raw) ? Number(raw) : raw;
}

function parseAction(c: Cursor): FailpointAction {
  const name = actionNames.find((a) => c.text.startsWith(a, c.pos));
  if (name === undefined) c.fail(`an action (${actionNames.join(", ")}) expected`);
  c.pos += name.length;
  const at = c.pos;
  const v = parseValue(c);
  switch (name) {
    case "off":
    case "drop":
    case "print":
      if (v !== undefined) c.fail(`${name} takes no value`);
      return { kind: name };
    case "panic":
    case "error":
      if (v !== undefined && typeof v !== "string") {
        c.pos = at;
        c.fail(`${name} takes a quoted message`);
      }
      return v === undefined ? { kind: name } : { kind: name, message: v };
    case "sleep": {
      const ms = typeof v === "number" ? v : typeof v === "string" ? parseDurationMs(v) : undefined;
      if (ms === undefined) {
        c.pos = at;
        c.fail('sleep needs milliseconds or a duration: sleep(100), sleep("1.5s")');
      }
      if (ms > MAX_SLEEP_MS) c.fail(`a sleep longer than ${MAX_SLEEP_MS} ms`);
      return { kind: "sleep", ms };
    }
  }
}

/**
 * Parses a terms string (module comment). Throws FailpointSyntaxError naming where it stopped,
 * for an empty string too.
 */
export function parseTerms(text: string): FailpointTerm[] {
  const c = new Cursor(text.trim());
  const chain: FailpointTerm[] = [];
  if (c.text === "") c.fail("no terms");
  for (;;) {
    const start = c.pos;
    const modes = parseModes(c);
    const action = parseAction(c);
    chain.push({ desc: c.text.slice(start, c.pos), modes, action });
    if (c.pos === c.text.length) return chain;
    if (!c.text.startsWith("->", c.pos)) c.fail('"->" expected');
    c.pos += 2;
  }
}

/**
 * The term of `chain` that runs now, or undefined (gofail's terms.eval): checks each term's modes
 * in order, spending counts as it goes. `random` returns a uniform number in [0, 1).
 */
export function selectTerm(
  chain: FailpointTerm[],
  random: () => number,
): FailpointTerm | undefined {
  for (const t of chain) {
    let allowed = true;
    for (const m of t.modes) {
      if (m.kind === "count") {
        if (m.remaining <= 0) allowed = false;
        else m.remaining--;
      } else if (random() >= m.p) allowed = false;
      if (!allowed) break;
    }
    if (allowed) return t;
  }
  return undefined;
}
