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
 *   number of passes (the member dies there, as kill -9, and is restarted), or a sleep there;
 *   with several members also drops, sleeps and errors on peer send and receive for a while, and
 *   panics while a snapshot from the leader is received or installed.
 * - torn-sync (with --power-loss): a panic just before a WAL fdatasync, so the member's torn-sync
 *   mode writes a seeded part of the pending pages before it dies.
 * - partition (several members, etcd-ts): the member's peer traffic is cut in both directions at
 *   the PeerProxies (peer-proxy.ts) for a seeded while, then healed; its clients still reach it.
 *
 * With several members a fault hits the current leader about half the time (when one is known),
 * else a seeded member, so both leader failover and a lagging follower are exercised.
 *
 * A member that cannot be restarted after a fault is a finding: the run records it and stops
 * injecting.
 */
import { seededRandom } from "../../lib/failpoint/index.js";
import type { MemberProcess } from "./members.js";
import { healProxies, partitionProxies, type PeerProxy } from "./peer-proxy.js";
import type { FaultEvent, Timeline } from "./timeline.js";

/** The kinds of fault the schedule may pick. */
export type FaultKind = "kill" | "pause" | "restart" | "failpoint" | "torn-sync" | "partition";

/** Options of the schedule. */
export interface FaultOptions {
  seed: number;
  kinds: FaultKind[];
  /** A fault starts every minIntervalMs..maxIntervalMs. */
  minIntervalMs: number;
  maxIntervalMs: number;
  /** Members simulate power loss: kills are power losses. */
  powerLoss: boolean;
  /** Proxies in front of the members' peer ports (member order), for partitions. */
  proxies: PeerProxy[];
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

/** Points a panic is set at with several members (a snapshot from the leader being installed). */
const CLUSTER_PANIC_POINTS: ReadonlyArray<readonly [string, number]> = [
  ["raftBeforeApplySnap", 0],
  ["raftAfterApplySnap", 0],
  ["applyBeforeOpenSnapshot", 0],
  ["raftBeforeLeaderSend", 20],
  ["raftBeforeFollowerSend", 20],
];

/** Peer-traffic faults with several members: point, terms, held for a while then cleared. */
const PEER_POINTS: ReadonlyArray<readonly [string, string]> = [
  ["peerBeforeReceive", "30%drop"],
  ["peerBeforeReceive", "10*sleep(100)"],
  ["peerBeforeReceive", "2*error"],
  ["peerBeforeSend", "30%drop"],
  ["peerBeforeSend", "1*error"],
  ["raftBeforeLeaderSend", "50%drop"],
  ["raftBeforeFollowerSend", "50%drop"],
  ["snapshotBeforeReceive", "error"],
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
  /** What is left of the current round of kinds (#nextKind). */
  #round: FaultKind[] = [];

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

  /**
   * The next fault kind: the kinds come in rounds, each kind once per round in a seeded order, so
   * even a short run injects every kind asked for.
   */
  #nextKind(): FaultKind {
    if (this.#round.length === 0) {
      this.#round = [...this.#o.kinds];
      for (let i = this.#round.length - 1; i > 0; i--) {
        const j = Math.floor(this.#rand() * (i + 1));
        [this.#round[i], this.#round[j]] = [this.#round[j]!, this.#round[i]!];
      }
    }
    return this.#round.pop()!;
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
      const kind = this.#nextKind();
      const member = await this.#target();
      if (!member.running) continue;
      await this.#inject(kind, member);
      if (this.restartFailures.length > 0) return;
    }
  }

  /** The member the next fault hits: the leader half the time when one is known (module comment). */
  async #target(): Promise<MemberProcess> {
    const seeded = this.#pick(this.#members);
    if (this.#members.length === 1 || this.#rand() < 0.5) return seeded;
    const ids = await Promise.all(this.#members.map((m) => m.leaderId()));
    const lead = ids.find((id) => id !== 0n);
    return this.#members.find((m) => m.spec.id === lead) ?? seeded;
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
      case "failpoint": {
        const cluster = this.#members.length > 1;
        const r = this.#rand();
        if (r < 0.6) {
          const [point, maxPasses] = this.#pick(
            cluster && this.#rand() < 0.3 ? CLUSTER_PANIC_POINTS : PANIC_POINTS,
          );
          await this.#panicAt(m, "failpoint", point, this.#between(0, maxPasses));
        } else {
          const [point, terms] = this.#pick(cluster && r < 0.8 ? PEER_POINTS : SLEEP_POINTS);
          const f = this.#timeline.fault("failpoint", name, `${point}=${terms}`);
          try {
            await m.setFailpoint(point, terms);
            await sleep(SLEEP_SET_MS);
            f.outcome = "set, then cleared";
          } catch (err) {
            f.outcome = `not set: ${(err as Error).message}`;
          }
          await m.clearFailpoint(point);
          f.endMs = Math.round(this.#timeline.nowMs());
        }
        return;
      }
      case "torn-sync":
        await this.#panicAt(m, "torn-sync", "walBeforeSync", this.#between(0, 20));
        return;
      case "partition": {
        const ms = this.#between(300, 3000);
        const f = this.#timeline.fault("partition", name, `peers cut off ${ms} ms`);
        partitionProxies(
          this.#o.proxies,
          this.#members.map((x) => x.spec.id),
          new Set([m.spec.id]),
        );
        await sleep(ms);
        healProxies(this.#o.proxies);
        f.endMs = Math.round(this.#timeline.nowMs());
        return;
      }
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
    healProxies(this.#o.proxies);
    for (const m of this.#members) {
      m.resume();
      if (m.running) {
        for (const [p] of [...PANIC_POINTS, ...CLUSTER_PANIC_POINTS, ...PEER_POINTS])
          await m.clearFailpoint(p);
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
