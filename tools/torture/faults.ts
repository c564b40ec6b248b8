/**
 * The torture run's fault schedule: one fault at a time, at seeded intervals, on a seeded member.
 *
 * - kill: SIGKILL, down for a seeded while, restarted on the same data dir. With --power-loss the
 *   members keep unsynced bytes in the process (--experimental-simulate-power-loss), so every
 *   kill is a power loss and is named so.
 * - pause: SIGSTOP for a seeded while, then SIGCONT (a stalled process: its peers and clients
 *   time out, its timers fire late).
 * - restart: SIGTERM (graceful stop), start again.
 * - failpoint (etcd-ts only): a panic at a WAL, raft, apply or snapshot point after a seeded
 *   number of passes (the member dies there, as kill -9, and is restarted), or a sleep there.
 * - torn-sync (with --power-loss): a panic just before a WAL fdatasync, so the member's torn-sync
 *   mode writes a seeded part of the pending pages before it dies.
 *
 * A member that cannot be restarted after a fault is a finding: the run records it and stops
 * injecting.
 */
import { seededRandom } from "../../lib/failpoint/index.js";
import type { MemberProcess } from "./members.js";
import type { FaultEvent, Timeline } from "./timeline.js";

/** The kinds of fault the schedule may pick. */
export type FaultKind = "kill" | "pause" | "restart" | "failpoint" | "torn-sync";

/** Options of the schedule. */
export interface FaultOptions {
  seed: number;
  kinds: FaultKind[];
  /** A fault starts every minIntervalMs..maxIntervalMs. */
  minIntervalMs: number;
  maxIntervalMs: number;
  /** Members simulate power loss: kills are power losses. */
  powerLoss: boolean;
}

/** Points a panic is set at, with the highest number of passes to let go first. */
const PANIC_POINTS: ReadonlyArray<readonly [string, number]> = [
  ["raftBeforeSave", 30],
  ["raftAfterSave", 30],
  ["raftBeforeAdvance", 30],
  ["walBeforeWrite", 30],
  ["walAfterWrite", 30],
  ["walBeforeSync", 30],
  ["walAfterSync", 30],
  ["walBeforeSegmentRename", 1],
  ["beforeApplyOneEntryNormal", 50],
  ["afterApplyOneEntry", 50],
  ["commitAfterPreCommitHook", 0],
  ["snapshotDbMidWrite", 0],
  ["beforeCommit", 0],
  ["afterCommit", 0],
  ["raftBeforeSaveSnap", 0],
  ["snapshotAfterSnapFile", 0],
  ["raftAfterSaveSnap", 0],
  ["raftAfterWALRelease", 0],
];

/** Points a sleep is set at: terms. */
const SLEEP_POINTS: ReadonlyArray<readonly [string, string]> = [
  ["walBeforeSync", "5*sleep(200)"],
  ["raftBeforeSave", "3*sleep(400)"],
  ["beforeApplyOneEntryNormal", "20*sleep(20)"],
  ["commitAfterPreCommitHook", "1*sleep(1000)"],
];

/** How long a set panic may wait to be reached before it is cleared, ms. */
const PANIC_WAIT_MS = 6_000;
/** How long a sleep failpoint stays set, ms. */
const SLEEP_SET_MS = 3_000;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Runs the schedule (see the module comment). */
export class FaultInjector {
  readonly #members: MemberProcess[];
  readonly #o: FaultOptions;
  readonly #timeline: Timeline;
  readonly #rand: () => number;
  /** Faults after which a member could not be restarted. */
  readonly restartFailures: FaultEvent[] = [];
  #stop = false;

  constructor(members: MemberProcess[], o: FaultOptions, timeline: Timeline) {
    this.#members = members;
    this.#o = o;
    this.#timeline = timeline;
    this.#rand = seededRandom(o.seed * 7919 + 17);
  }

  /** Asks run() to end after the fault in progress. */
  stop(): void {
    this.#stop = true;
  }

  #between(lo: number, hi: number): number {
    return lo + Math.floor(this.#rand() * (hi - lo + 1));
  }

  #pick<T>(list: readonly T[]): T {
    return list[Math.floor(this.#rand() * list.length)]!;
  }

  /** Injects faults until stop() or `untilMs` (timeline time); resolves when the last one ended. */
  async run(untilMs: number): Promise<void> {
    if (this.#o.kinds.length === 0) return;
    for (;;) {
      const waitMs = this.#between(this.#o.minIntervalMs, this.#o.maxIntervalMs);
      const wakeAt = this.#timeline.nowMs() + waitMs;
      while (!this.#stop && this.#timeline.nowMs() < Math.min(wakeAt, untilMs)) await sleep(50);
      if (this.#stop || this.#timeline.nowMs() >= untilMs) return;
      const kind = this.#pick(this.#o.kinds);
      const member = this.#pick(this.#members);
      if (!member.running) continue;
      await this.#inject(kind, member);
      if (this.restartFailures.length > 0) return;
    }
  }

  async #inject(kind: FaultKind, m: MemberProcess): Promise<void> {
    const name = m.spec.name;
    switch (kind) {
      case "kill": {
        const downMs = this.#between(100, 1500);
        const f = this.#timeline.fault(
          this.#o.powerLoss ? "power-loss" : "kill",
          name,
          `SIGKILL${this.#o.powerLoss ? " (unsynced bytes lost)" : ""}, down ${downMs} ms`,
        );
        await m.kill9();
        await sleep(downMs);
        await this.#restart(m, f);
        return;
      }
      case "pause": {
        const ms = this.#between(200, 2000);
        const f = this.#timeline.fault("pause", name, `SIGSTOP ${ms} ms`);
        m.pause();
        await sleep(ms);
        m.resume();
        f.endMs = Math.round(this.#timeline.nowMs());
        return;
      }
      case "restart": {
        const f = this.#timeline.fault("restart", name, "SIGTERM, start again");
        await m.stop();
        await this.#restart(m, f);
        return;
      }
      case "failpoint":
        if (this.#rand() < 0.7) {
          const [point, maxPasses] = this.#pick(PANIC_POINTS);
          await this.#panicAt(m, "failpoint", point, this.#between(0, maxPasses));
        } else {
          const [point, terms] = this.#pick(SLEEP_POINTS);
          const f = this.#timeline.fault("failpoint", name, `${point}=${terms}`);
          try {
            await m.setFailpoint(point, terms);
            await sleep(SLEEP_SET_MS);
            f.outcome = "slept where reached";
          } catch (err) {
            f.outcome = `not set: ${(err as Error).message}`;
          }
          await m.clearFailpoint(point);
          f.endMs = Math.round(this.#timeline.nowMs());
        }
        return;
      case "torn-sync":
        await this.#panicAt(m, "torn-sync", "walBeforeSync", this.#between(0, 20));
        return;
    }
  }

  /** Sets `point` to panic after `passes` passes; restarts the member once it died there. */
  async #panicAt(
    m: MemberProcess,
    kind: "failpoint" | "torn-sync",
    point: string,
    passes: number,
  ): Promise<void> {
    const terms = passes === 0 ? "panic" : `${passes}*off->panic`;
    const f = this.#timeline.fault(kind, m.spec.name, `${point}=${terms}`);
    try {
      await m.setFailpoint(point, terms);
    } catch (err) {
      f.outcome = `not set: ${(err as Error).message}`;
      f.endMs = Math.round(this.#timeline.nowMs());
      return;
    }
    const died = await Promise.race([
      m.exited().then(() => true),
      sleep(PANIC_WAIT_MS).then(() => false),
    ]);
    if (!died) {
      await m.clearFailpoint(point);
      f.outcome = `not reached within ${PANIC_WAIT_MS} ms`;
      f.endMs = Math.round(this.#timeline.nowMs());
      return;
    }
    f.outcome = "member died at the point";
    await sleep(this.#between(50, 800));
    await this.#restart(m, f);
  }

  async #restart(m: MemberProcess, f: FaultEvent): Promise<void> {
    try {
      await m.start();
      f.endMs = Math.round(this.#timeline.nowMs());
    } catch (err) {
      f.outcome = `${f.outcome === undefined ? "" : `${f.outcome}; `}restart failed: ${(err as Error).message}`;
      this.restartFailures.push(f);
    }
  }

  /**
   * Ends every fault: resumes paused members, clears failpoints, starts stopped ones. Returns the
   * members that could not be brought back.
   */
  async heal(): Promise<string[]> {
    const failed: string[] = [];
    for (const m of this.#members) {
      m.resume();
      if (m.running) {
        for (const [p] of PANIC_POINTS) await m.clearFailpoint(p);
        continue;
      }
      try {
        await m.start();
      } catch (err) {
        failed.push(`${m.spec.name}: ${(err as Error).message}`);
      }
    }
    return failed;
  }
}
