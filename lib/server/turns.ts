/**
 * Background work in bounded steps, several per event-loop turn.
 *
 * A member's background jobs (planning and writing a snapshot's db file, moving values into it,
 * a compaction's copy) run in bounded steps between requests. One step per turn made their speed
 * depend on how long a turn takes: a lone voter writes its group commits with blocking calls
 * (lib/wal syncWriteMaxEntries), so under load a turn includes a whole fdatasync, and a 100k-key
 * Defragment under 128 clients took twice as long as with one step per shorter turn. Here a job
 * runs steps until TURN_BUDGET_MS have passed in the turn (at least one step), then yields with
 * setImmediate (after pending I/O, so requests waiting on sockets go first).
 */

/** How long one turn may spend on a background job's steps, in ms. */
export const TURN_BUDGET_MS = 2;

/** Resolves in a later turn of the event loop, after the I/O callbacks that are ready. */
export function nextTurn(): Promise<void> {
  return new Promise<void>((resolve) => setImmediate(resolve));
}

/**
 * Yields to the event loop once TURN_BUDGET_MS have passed since the last yield: call it between
 * the steps of a job. `turn` holds the time of the last yield (performance.now() ms), updated here.
 */
export async function yieldWhenDue(turn: { startedMs: number }): Promise<void> {
  if (performance.now() - turn.startedMs < TURN_BUDGET_MS) return;
  await nextTurn();
  turn.startedMs = performance.now();
}

/**
 * Runs `steps` (a generator whose every `next()` is one bounded step) to its end, yielding with
 * yieldWhenDue between steps; returns its result. `stopped()` is checked after each yield: when it
 * returns true the job ends with Error("member stopping").
 */
export async function runInTurns<T>(
  steps: Iterator<unknown, T>,
  stopped: () => boolean = () => false,
): Promise<T> {
  const turn = { startedMs: performance.now() };
  for (;;) {
    const r = steps.next();
    if (r.done === true) return r.value;
    const before = turn.startedMs;
    await yieldWhenDue(turn);
    if (turn.startedMs !== before && stopped()) throw new Error("member stopping");
  }
}
