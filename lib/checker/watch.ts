/**
 * checkWatches: do recorded watch streams keep etcd's watch guarantees (etcd docs,
 * api_guarantees.md, "Watch APIs")?
 * - ordered: events are ordered by revision; an event never appears before one already delivered;
 * - unique: an event (revision, key) is never delivered twice;
 * - atomic: the events of one revision arrive in one response, never split over several;
 * - reliable: no event is dropped: if events a < b < c match the watch and a and c were
 *   delivered, b was too, so every matching event from the start revision up to the last
 *   revision delivered is there;
 * - resumable: a watch resumed after a broken stream starts exactly after the last revision the
 *   broken one delivered (none skipped, none repeated);
 * - bookmarkable: a progress notification at revision r means every event ≤ r was delivered
 *   before it, and every later event is above r.
 * Plus validity: every event is one the store made (matches the acknowledged write of that
 * revision, or the same event another watcher saw, or an ambiguous write when those are given),
 * lies in the watch's range and filters, at or above its start revision and at or below its
 * response's header revision.
 *
 * The truth is the acknowledged writes (complete for every revision they name: a txn lists all
 * its writes) plus every event any watcher saw at a revision no acknowledged write names (the
 * write whose response was lost); watchers must agree on those.
 */
import { CheckerInputError } from "./errors.js";
import type { KvOperation } from "./history.js";
import { writeEffects } from "./precheck.js";

/** One change the store made at `revision` (a txn may make several at one revision). */
export interface WatchWrite {
  revision: number;
  key: string;
  type: "put" | "delete";
  /** The value a put wrote; undefined = not compared. */
  value?: string;
}

/** A write whose response was lost: it may have happened, at an unknown revision. */
export interface PossibleWrite {
  key: string;
  type: "put" | "delete";
  value?: string;
}

/** One event as a watch response carried it (etcd's mvccpb.Event: kv.mod_revision, kv.key). */
export interface WatchEventRecord {
  type: "put" | "delete";
  key: string;
  modRevision: number;
  value?: string;
}

/** One WatchResponse (not the "created" one). */
export interface WatchResponseRecord {
  /** header.revision, when recorded. */
  headerRevision?: number;
  events: WatchEventRecord[];
  /** A progress notification (no events; header.revision is the progress). */
  progressNotify?: boolean;
  /** The server canceled the watch (compaction, ...); no responses follow. */
  canceled?: boolean;
}

/** One watch as a client saw it. */
export interface WatchRecord {
  id: string;
  /** The watch's key; with rangeEnd, etcd's range semantics. */
  key: string;
  /**
   * etcd's range_end: undefined or "" = the key alone; "\u0000" = every key ≥ key; otherwise
   * [key, rangeEnd). (A prefix p is [p, prefixRangeEnd(p)).)
   */
  rangeEnd?: string;
  /**
   * The first revision the watch covers (≥ 1). For a watch created with start_revision 0 ("from
   * now"), the created response's header revision + 1.
   */
  startRevision: number;
  /** etcd's NOPUT / NODELETE filters. */
  filters?: { noPut?: boolean; noDelete?: boolean };
  /** Id of the watch this one resumes (it was started after that one's stream broke). */
  resumes?: string;
  responses: WatchResponseRecord[];
}

/** The input of {@link checkWatches}. */
export interface WatchHistory {
  /** Every acknowledged write (all writes of each revision named). */
  writes: WatchWrite[];
  /**
   * Writes whose response was lost. When given, an event at a revision no acknowledged write
   * names must match one of them (each at most once); when undefined, such events are only
   * checked for agreement between watchers.
   */
  possibleWrites?: PossibleWrite[];
  watches: WatchRecord[];
}

/** Which guarantee a violation breaks. */
export type WatchGuarantee =
  "ordered" | "unique" | "atomic" | "reliable" | "resumable" | "bookmarkable" | "valid";

/** One broken guarantee. */
export interface WatchViolation {
  /** The watch's id ("(writes)" for contradictory acknowledged writes). */
  watch: string;
  guarantee: WatchGuarantee;
  revision?: number;
  key?: string;
  explanation: string;
}

/** The verdict of {@link checkWatches}. */
export type WatchCheckResult =
  | { verdict: "ok"; watches: number; events: number }
  | {
      verdict: "violation";
      violations: WatchViolation[];
      /** Violations found beyond {@link MAX_WATCH_VIOLATIONS}, not listed. */
      omitted: number;
    };

/** Bound on violations listed in a result. */
export const MAX_WATCH_VIOLATIONS = 100;

/** etcd's range_end for a prefix watch/range (clientv3 GetPrefixRangeEnd). */
export function prefixRangeEnd(prefix: string): string {
  for (let i = prefix.length - 1; i >= 0; i--) {
    const c = prefix.charCodeAt(i);
    if (c < 0xff) return prefix.slice(0, i) + String.fromCharCode(c + 1);
  }
  return "\u0000"; // every byte 0xff (or empty): the range to the end of the keyspace
}

interface TruthEvent {
  type: "put" | "delete";
  value?: string;
  /** "(writes)" or the id of the watch that first saw it. */
  source: string;
}

function inRange(w: WatchRecord, key: string): boolean {
  if (w.rangeEnd === undefined || w.rangeEnd === "") return key === w.key;
  if (w.rangeEnd === "\u0000") return key >= w.key;
  return key >= w.key && key < w.rangeEnd;
}

function passesFilter(w: WatchRecord, type: "put" | "delete"): boolean {
  return type === "put" ? !w.filters?.noPut : !w.filters?.noDelete;
}

function describeWatch(w: WatchRecord): string {
  const range =
    w.rangeEnd === undefined || w.rangeEnd === ""
      ? JSON.stringify(w.key)
      : `[${JSON.stringify(w.key)}, ${w.rangeEnd === "\u0000" ? "end" : JSON.stringify(w.rangeEnd)})`;
  return `watch ${w.id} on ${range} from revision ${w.startRevision}`;
}

function describeEvent(rev: number, key: string, e: { type: string; value?: string }): string {
  const v = e.type === "put" && e.value !== undefined ? ` = ${JSON.stringify(e.value)}` : "";
  return `${e.type} ${JSON.stringify(key)}${v} at revision ${rev}`;
}

class Violations {
  readonly list: WatchViolation[] = [];
  omitted = 0;
  add(v: WatchViolation): void {
    if (this.list.length < MAX_WATCH_VIOLATIONS) this.list.push(v);
    else this.omitted++;
  }
}

/** The store's events: acknowledged writes, then what watchers saw at other revisions. */
class Truth {
  readonly #byRevision = new Map<number, Map<string, TruthEvent>>();
  readonly #acknowledged = new Set<number>();
  readonly #possible = new Map<string, number>(); // "type\0key\0value" -> count left
  readonly #checkPossible: boolean;
  #sorted: number[] | undefined;

  constructor(history: WatchHistory, out: Violations) {
    for (const w of history.writes) {
      this.#acknowledged.add(w.revision);
      const at = this.#at(w.revision);
      const prior = at.get(w.key);
      if (prior !== undefined) {
        out.add({
          watch: "(writes)",
          guarantee: "valid",
          revision: w.revision,
          key: w.key,
          explanation:
            `two acknowledged writes of ${JSON.stringify(w.key)} at revision ${w.revision}: ` +
            `${describeEvent(w.revision, w.key, prior)} and ${describeEvent(w.revision, w.key, w)}`,
        });
        continue;
      }
      at.set(w.key, {
        type: w.type,
        ...(w.value !== undefined ? { value: w.value } : {}),
        source: "(writes)",
      });
    }
    this.#checkPossible = history.possibleWrites !== undefined;
    for (const p of history.possibleWrites ?? []) {
      const k = this.#possibleKey(p.type, p.key, p.value);
      this.#possible.set(k, (this.#possible.get(k) ?? 0) + 1);
    }
  }

  #possibleKey(type: string, key: string, value: string | undefined): string {
    return `${type}\u0000${key}\u0000${type === "put" ? (value ?? "") : ""}`;
  }

  #at(rev: number): Map<string, TruthEvent> {
    let m = this.#byRevision.get(rev);
    if (m === undefined) {
      this.#byRevision.set(rev, (m = new Map()));
      this.#sorted = undefined;
    }
    return m;
  }

  /** Registers an event a watch delivered; a violation when it contradicts the truth. */
  learn(w: WatchRecord, e: WatchEventRecord, out: Violations): void {
    const rev = e.modRevision;
    const known = this.#byRevision.get(rev)?.get(e.key);
    const invalid = (why: string) =>
      out.add({
        watch: w.id,
        guarantee: "valid",
        revision: rev,
        key: e.key,
        explanation: `${describeWatch(w)} delivered ${describeEvent(rev, e.key, e)}, ${why}`,
      });
    if (known !== undefined) {
      const sameValue =
        e.value === undefined || known.value === undefined || e.value === known.value;
      if (known.type === e.type && (e.type === "delete" || sameValue)) return;
      const who =
        known.source === "(writes)" ? "the acknowledged write" : `watch ${known.source} saw`;
      invalid(`but ${who} ${describeEvent(rev, e.key, known)}`);
      return;
    }
    if (this.#acknowledged.has(rev)) {
      const writes = [...this.#byRevision.get(rev)!.entries()]
        .map(([k, t]) => describeEvent(rev, k, t))
        .join(", ");
      invalid(`but revision ${rev} was made by the acknowledged write(s) ${writes}`);
      return;
    }
    if (this.#checkPossible) {
      const k = this.#possibleKey(e.type, e.key, e.value);
      const left = this.#possible.get(k) ?? 0;
      if (left <= 0) {
        invalid(
          "an event no acknowledged or possible write made (or one made more often than it was asked for)",
        );
        return;
      }
      this.#possible.set(k, left - 1);
    }
    this.#at(rev).set(e.key, {
      type: e.type,
      ...(e.value !== undefined ? { value: e.value } : {}),
      source: w.id,
    });
  }

  /** The events with revision in [from, to] that `w` matches, in revision then key order. */
  matching(
    w: WatchRecord,
    from: number,
    to: number,
  ): { rev: number; key: string; e: TruthEvent }[] {
    this.#sorted ??= [...this.#byRevision.keys()].sort((a, b) => a - b);
    const out: { rev: number; key: string; e: TruthEvent }[] = [];
    for (const rev of this.#sorted) {
      if (rev < from) continue;
      if (rev > to) break;
      const keys = [...this.#byRevision.get(rev)!.entries()].sort(([a], [b]) =>
        a < b ? -1 : a > b ? 1 : 0,
      );
      for (const [key, e] of keys) {
        if (inRange(w, key) && passesFilter(w, e.type)) out.push({ rev, key, e });
      }
    }
    return out;
  }
}

/** What one watch delivered, for the reliability and resumption checks. */
interface Delivered {
  /** "rev\0key" of every event delivered. */
  seen: Set<string>;
  /** The last revision the watch is known to have complete (events or progress notify). */
  coveredRevision: number;
}

function checkOneWatch(w: WatchRecord, truth: Truth, out: Violations): Delivered {
  const seen = new Set<string>();
  const responseOfRevision = new Map<number, number>();
  let lastEventRev = 0;
  let lastHeader = 0;
  let bookmark = 0;
  let canceledAt = -1;
  w.responses.forEach((r, i) => {
    if (canceledAt >= 0) {
      out.add({
        watch: w.id,
        guarantee: "valid",
        explanation: `${describeWatch(w)} got response ${i} after it was canceled in response ${canceledAt}`,
      });
      return;
    }
    if (r.canceled) canceledAt = i;
    if (r.headerRevision !== undefined) {
      if (r.headerRevision < lastHeader) {
        out.add({
          watch: w.id,
          guarantee: "ordered",
          revision: r.headerRevision,
          explanation: `${describeWatch(w)}: response ${i} has header revision ${r.headerRevision}, below an earlier response's ${lastHeader}`,
        });
      }
      lastHeader = Math.max(lastHeader, r.headerRevision);
    }
    for (const e of r.events) {
      const rev = e.modRevision;
      const id = `${rev}\u0000${e.key}`;
      // Explanations read "response i delivered <event><tail>"; built only on a violation.
      const v = (guarantee: WatchGuarantee, tail: string) =>
        out.add({
          watch: w.id,
          guarantee,
          revision: rev,
          key: e.key,
          explanation: `${describeWatch(w)}: response ${i} delivered ${describeEvent(rev, e.key, e)}${tail}`,
        });
      if (rev < w.startRevision) v("valid", ", below the start revision");
      if (!inRange(w, e.key)) v("valid", ", outside the watched range");
      else if (!passesFilter(w, e.type)) v("valid", ", which its filters exclude");
      if (r.headerRevision !== undefined && rev > r.headerRevision) {
        v("valid", `, above its header revision ${r.headerRevision}`);
      }
      if (seen.has(id)) {
        v("unique", " again");
        continue;
      }
      seen.add(id);
      if (rev < lastEventRev) {
        v("ordered", ` after an event at revision ${lastEventRev}`);
      } else if (rev === lastEventRev && responseOfRevision.get(rev) !== i) {
        const first = responseOfRevision.get(rev);
        v("atomic", `, but other events of revision ${rev} came in response ${first}: split`);
      }
      if (rev <= bookmark)
        v("bookmarkable", ` after a progress notification at revision ${bookmark}`);
      if (!responseOfRevision.has(rev)) responseOfRevision.set(rev, i);
      lastEventRev = Math.max(lastEventRev, rev);
      truth.learn(w, e, out);
    }
    if (r.progressNotify && r.events.length === 0 && r.headerRevision !== undefined) {
      bookmark = Math.max(bookmark, r.headerRevision);
    }
  });
  return { seen, coveredRevision: Math.max(lastEventRev, bookmark, w.startRevision - 1) };
}

function checkReliable(w: WatchRecord, d: Delivered, truth: Truth, out: Violations): void {
  for (const { rev, key, e } of truth.matching(w, w.startRevision, d.coveredRevision)) {
    if (d.seen.has(`${rev}\u0000${key}`)) continue;
    out.add({
      watch: w.id,
      guarantee: "reliable",
      revision: rev,
      key,
      explanation:
        `${describeWatch(w)} missed ${describeEvent(rev, key, e)}` +
        ` (it delivered events up to revision ${d.coveredRevision})`,
    });
  }
}

function checkResumed(
  w: WatchRecord,
  from: WatchRecord,
  fromDelivered: Delivered,
  truth: Truth,
  out: Violations,
): void {
  const expected = fromDelivered.coveredRevision + 1;
  if (w.startRevision === expected) return;
  // Starting late skips the events in between; starting early delivers some a second time.
  const late = w.startRevision > expected;
  const affected = late
    ? truth.matching(w, expected, w.startRevision - 1)
    : truth.matching(w, w.startRevision, expected - 1);
  if (affected.length === 0) return;
  out.add({
    watch: w.id,
    guarantee: "resumable",
    revision: affected[0]!.rev,
    key: affected[0]!.key,
    explanation:
      `${describeWatch(w)} resumes watch ${from.id}, which had delivered up to revision ` +
      `${fromDelivered.coveredRevision}, so it must start at ${expected}; it ${late ? "skips" : "repeats"} ` +
      affected.map((s) => describeEvent(s.rev, s.key, s.e)).join(", "),
  });
}

/**
 * Checks every watch of `history` against etcd's watch guarantees (see the module comment).
 * Returns "ok" or every violation found (up to {@link MAX_WATCH_VIOLATIONS}). Throws
 * CheckerInputError for a malformed record (a start revision below 1, an unknown `resumes` id, a
 * resume cycle).
 */
export function checkWatches(history: WatchHistory): WatchCheckResult {
  const out = new Violations();
  const byId = new Map<string, WatchRecord>();
  history.watches.forEach((w, i) => {
    if (!(w.startRevision >= 1))
      throw new CheckerInputError(i, `watch ${w.id}: startRevision below 1`);
    if (byId.has(w.id)) throw new CheckerInputError(i, `watch id ${w.id} used twice`);
    byId.set(w.id, w);
  });
  history.watches.forEach((w, i) => {
    const seenIds = new Set<string>([w.id]);
    for (let r = w.resumes; r !== undefined; r = byId.get(r)?.resumes) {
      if (!byId.has(r)) throw new CheckerInputError(i, `watch ${w.id} resumes unknown watch ${r}`);
      if (seenIds.has(r)) throw new CheckerInputError(i, `watch ${w.id}: resume cycle`);
      seenIds.add(r);
    }
  });
  const truth = new Truth(history, out);
  // Events first (every watch), so each watch's reliability is judged against all of them.
  const delivered = new Map<string, Delivered>();
  let events = 0;
  for (const w of history.watches) {
    delivered.set(w.id, checkOneWatch(w, truth, out));
    events += w.responses.reduce((n, r) => n + r.events.length, 0);
  }
  for (const w of history.watches) {
    checkReliable(w, delivered.get(w.id)!, truth, out);
    if (w.resumes !== undefined) {
      checkResumed(w, byId.get(w.resumes)!, delivered.get(w.resumes)!, truth, out);
    }
  }
  if (out.list.length === 0) return { verdict: "ok", watches: history.watches.length, events };
  return { verdict: "violation", violations: out.list, omitted: out.omitted };
}

/**
 * The watch checker's view of a key-value history: every completed write (its revision and each
 * key it put or deleted) and, for each call whose outcome is unknown, every put or delete it could
 * have made. Writes recorded without a revision are left out (a watch cannot be checked against
 * them).
 */
export function writesOfHistory(history: readonly KvOperation[]): {
  writes: WatchWrite[];
  possibleWrites: PossibleWrite[];
} {
  const writes: WatchWrite[] = [];
  const possibleWrites: PossibleWrite[] = [];
  for (const op of history) {
    if (op.output === undefined) {
      const input = op.input;
      const all = input.type === "txn" ? [...input.success, ...input.failure] : [input];
      for (const o of all) {
        if (o.type === "put") possibleWrites.push({ key: o.key, type: "put", value: o.value });
        if (o.type === "delete") possibleWrites.push({ key: o.key, type: "delete" });
      }
      continue;
    }
    const revision = op.output.revision;
    if (revision === undefined) continue;
    for (const [key, value] of writeEffects(op) ?? []) {
      writes.push(
        value === null ? { revision, key, type: "delete" } : { revision, key, type: "put", value },
      );
    }
  }
  return { writes, possibleWrites };
}
