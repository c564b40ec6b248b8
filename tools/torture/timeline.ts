/**
 * What a torture run saw over time, for the progress line and the report's timeline: calls per
 * second (succeeded, failed) with latency percentiles, and the faults injected, each with its
 * member, start and end. Times are ms from the run's start.
 */

/** Bound on latency samples kept per second (a reservoir beyond it). */
const SAMPLES_PER_SECOND = 2_000;
/** Bound on seconds kept (a run longer than a day keeps its first day). */
const MAX_SECONDS = 86_400;
/** Bound on distinct failure reasons counted. */
const MAX_REASONS = 200;

/** One second of calls. */
export interface SecondStats {
  second: number;
  ok: number;
  failed: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

/** One injected fault. */
export interface FaultEvent {
  kind: "kill" | "pause" | "restart" | "failpoint" | "power-loss" | "torn-sync" | "partition";
  member: string;
  /** e.g. `raftBeforeSave=3*off->panic`, `SIGSTOP 800 ms` */
  detail: string;
  startMs: number;
  /** When the member was back (healthy), or undefined while it is not. */
  endMs?: number;
  /** What happened: "member exited", "not reached", "restart failed: …". */
  outcome?: string;
}

interface Bucket {
  ok: number;
  failed: number;
  samples: number[];
  seen: number;
}

/** Per-second figures and the fault list of one run. */
export class Timeline {
  readonly #t0 = performance.now();
  readonly #buckets: Bucket[] = [];
  readonly faults: FaultEvent[] = [];
  totalOk = 0;
  totalFailed = 0;
  /** Failed calls by reason (the gRPC status or error message, digits folded). */
  readonly failureReasons = new Map<string, number>();

  /** ms since the run started. */
  nowMs(): number {
    return performance.now() - this.#t0;
  }

  /** Counts one finished call with its latency. */
  op(ok: boolean, latencyMs: number): void {
    const s = Math.floor(this.nowMs() / 1000);
    if (s >= MAX_SECONDS) return;
    while (this.#buckets.length <= s)
      this.#buckets.push({ ok: 0, failed: 0, samples: [], seen: 0 });
    const b = this.#buckets[s]!;
    if (ok) {
      b.ok++;
      this.totalOk++;
    } else {
      b.failed++;
      this.totalFailed++;
    }
    // reservoir sampling keeps the percentiles honest past the bound
    b.seen++;
    if (b.samples.length < SAMPLES_PER_SECOND) b.samples.push(latencyMs);
    else {
      const j = Math.floor(Math.random() * b.seen);
      if (j < SAMPLES_PER_SECOND) b.samples[j] = latencyMs;
    }
  }

  /** Counts a failed call's reason (see failureReasons). */
  failure(err: unknown): void {
    const e = err as { code?: unknown; details?: unknown; message?: unknown };
    const text =
      typeof e?.code === "number" && typeof e.details === "string"
        ? `gRPC ${e.code}: ${e.details}`
        : String(e?.message ?? err);
    const reason = text.replace(/[0-9a-f]{8,}|\d+/g, "N").slice(0, 120);
    if (this.failureReasons.has(reason) || this.failureReasons.size < MAX_REASONS) {
      this.failureReasons.set(reason, (this.failureReasons.get(reason) ?? 0) + 1);
    }
  }

  /** Records the start of a fault; returns it so its end can be filled in. */
  fault(kind: FaultEvent["kind"], member: string, detail: string): FaultEvent {
    const f: FaultEvent = { kind, member, detail, startMs: Math.round(this.nowMs()) };
    this.faults.push(f);
    return f;
  }

  /** The calls of each second so far. */
  seconds(): SecondStats[] {
    return this.#buckets.map((b, second) => {
      const sorted = [...b.samples].sort((x, y) => x - y);
      const at = (q: number) =>
        sorted.length === 0
          ? 0
          : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
      return {
        second,
        ok: b.ok,
        failed: b.failed,
        p50Ms: round(at(0.5)),
        p99Ms: round(at(0.99)),
        maxMs: round(sorted.at(-1) ?? 0),
      };
    });
  }

  /** Faults by kind. */
  faultCounts(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const f of this.faults) out[f.kind] = (out[f.kind] ?? 0) + 1;
    return out;
  }
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
