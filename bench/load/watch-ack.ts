/**
 * Watch latency from the put's acknowledgement, as etcd 3.4's `benchmark watch-latency` measures
 * it (tools/benchmark/cmd/watch_latency.go starts each result's clock when Put returns and stops
 * it when a watcher takes the event): the time from a put's response at the client to each of its
 * events at a watcher. An event that arrives before its put's response counts as 0 (the tool's
 * watchers wait for the put to return before they read, so they record about nothing), and is
 * counted in `eventsBeforeAck`. Both times are this process's `performance.now()`, so only the
 * puts this process makes are measured (with --procs N, each process measures its own puts' events
 * at its own watchers).
 */
import { newHistogram, recordMs, type LatencyHistogram } from "./histogram.js";

/**
 * Put-ack-to-event latencies of the puts with indexes [firstPut, firstPut + putCount). State is
 * kept only for puts that still expect events, so it is bounded by the puts in flight plus the
 * puts whose events never came.
 */
export class AckToEventLatency {
  /** Latencies, µs (see histogram.ts). */
  readonly histogram: LatencyHistogram = newHistogram();
  /** Events that arrived before their put's response (recorded as 0). */
  eventsBeforeAck = 0;
  readonly #firstPut: number;
  readonly #endPut: number;
  readonly #eventsPerPut: (putIndex: number) => number;
  /** put index → its response time, while events are still expected. */
  readonly #ackMs = new Map<number, number>();
  /** put index → events still expected after its response. */
  readonly #remaining = new Map<number, number>();
  /** put index → events seen before its response. */
  readonly #early = new Map<number, number>();

  /**
   * `eventsPerPut(i)`: how many events put `i` makes at this process's watchers (its key's
   * watchers here).
   */
  constructor(firstPut: number, putCount: number, eventsPerPut: (putIndex: number) => number) {
    this.#firstPut = firstPut;
    this.#endPut = firstPut + putCount;
    this.#eventsPerPut = eventsPerPut;
  }

  /** Put `putIndex` was acknowledged at `nowMs` (performance.now()). */
  onAck(putIndex: number, nowMs: number): void {
    const early = this.#early.get(putIndex) ?? 0;
    if (early > 0) {
      this.#early.delete(putIndex);
      this.eventsBeforeAck += early;
      for (let i = 0; i < early; i++) recordMs(this.histogram, 0);
    }
    const left = this.#eventsPerPut(putIndex) - early;
    if (left <= 0) return;
    this.#ackMs.set(putIndex, nowMs);
    this.#remaining.set(putIndex, left);
  }

  /** A watcher received put `putIndex`'s event at `nowMs`; puts of other processes are ignored. */
  onEvent(putIndex: number, nowMs: number): void {
    if (putIndex < this.#firstPut || putIndex >= this.#endPut) return;
    const ack = this.#ackMs.get(putIndex);
    if (ack === undefined) {
      this.#early.set(putIndex, (this.#early.get(putIndex) ?? 0) + 1);
      return;
    }
    recordMs(this.histogram, nowMs - ack);
    const left = this.#remaining.get(putIndex)! - 1;
    if (left > 0) this.#remaining.set(putIndex, left);
    else {
      this.#remaining.delete(putIndex);
      this.#ackMs.delete(putIndex);
    }
  }

  /** Puts still holding state (acknowledged with events missing, or events before their ack). */
  get pendingPuts(): number {
    return this.#ackMs.size + this.#early.size;
  }
}
