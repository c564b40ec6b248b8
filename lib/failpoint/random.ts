/**
 * The seeded PRNG that picks faults (probabilistic failpoint terms, torn-sync pages, the torture
 * schedule): mulberry32, small and fast, so a seed replays the same choices.
 */

/** A generator of uniform numbers in [0, 1) from `seed` (taken as a uint32). */
export function seededRandom(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
