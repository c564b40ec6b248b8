/**
 * Auto-compaction (etcd's etcdserver/api/v3compactor): `periodic` keeps history for a duration
 * (a bare number means hours), `revision` keeps the last N revisions. Compactions are proposed
 * through raft like a client's Compact call. The compactor only decides; the server proposes.
 */
import { parseGoDurationMs } from "./duration.js";

export interface CompactorHost {
  currentRevision(): number;
  compactRevision(): number;
  /** proposes a compaction; errors (e.g. already compacted) are logged by the host */
  compact(revision: number): Promise<void>;
  isLeader(): boolean;
}

/** etcd's revision compactor checks every 5 minutes. */
export const revisionCompactorCheckIntervalMs = 5 * 60 * 1000;

/** Thrown for an auto-compaction retention that does not parse. */
export class RetentionError extends Error {
  readonly code = "ErrAutoCompactionRetention";
}

/** Parses `--auto-compaction-retention` for the mode; 0 disables. periodic returns ms, revision a count. */
export function parseRetention(mode: "periodic" | "revision", retention: string): number {
  if (mode === "revision") {
    if (!/^\d+$/.test(retention))
      throw new RetentionError(`invalid auto-compaction-retention "${retention}"`);
    return Number(retention);
  }
  if (/^\d+$/.test(retention)) return Number(retention) * 3600 * 1000;
  try {
    return parseGoDurationMs(retention);
  } catch {
    throw new RetentionError(`invalid auto-compaction-retention "${retention}"`);
  }
}

/**
 * Runs the policy on a timer owned by this object (the server starts and stops it).
 * periodic (etcd 3.4 Periodic): samples the revision every retention/10 (retention itself when it is
 * under an hour... etcd uses retention/10 for >= 1h and retention for shorter ones) and compacts to
 * the revision sampled one retention ago. revision: every 5 minutes compacts to current - retention.
 */
export class AutoCompactor {
  #timer: NodeJS.Timeout | undefined;
  readonly #samples: { atMs: number; revision: number }[] = [];
  readonly #maxSamples = 64;

  constructor(
    readonly mode: "periodic" | "revision",
    readonly retention: number,
    readonly host: CompactorHost,
    readonly nowMs: () => number = Date.now,
  ) {}

  start(): void {
    if (this.retention <= 0) return;
    const intervalMs =
      this.mode === "revision"
        ? revisionCompactorCheckIntervalMs
        : this.retention >= 3600_000
          ? this.retention / 10
          : this.retention;
    this.#samples.push({ atMs: this.nowMs(), revision: this.host.currentRevision() });
    this.#timer = setInterval(() => void this.runOnce(), Math.max(10, intervalMs));
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** One policy step (exported for tests). Returns the revision it asked to compact to, or 0. */
  async runOnce(): Promise<number> {
    if (!this.host.isLeader()) return 0;
    const now = this.nowMs();
    let target = 0;
    if (this.mode === "revision") {
      target = this.host.currentRevision() - this.retention;
    } else {
      this.#samples.push({ atMs: now, revision: this.host.currentRevision() });
      while (this.#samples.length > this.#maxSamples) this.#samples.shift();
      for (const s of this.#samples) {
        if (now - s.atMs >= this.retention) target = s.revision;
      }
    }
    if (target <= 0 || target <= this.host.compactRevision()) return 0;
    await this.host.compact(target);
    return target;
  }
}
