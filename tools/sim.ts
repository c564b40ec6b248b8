/**
 * Raft simulator CLI (`npm run sim -- --seeds N --start-seed S`): runs the deterministic
 * simulator of test/raft/sim for seeds S … S+N-1 and exits 1 on the first broken invariant,
 * printing the seed and the invariant (replay it with `SEED=<seed> npm test -- raft/sim`
 * or `--seeds 1 --start-seed <seed>`).
 * Options: --nodes 1|3|5 (default: chosen by seed), --ticks T, --faultiness F,
 * --knob <skipVoteLogCheck|commitPrevTermByCount|readIndexBeforeCommitInTerm|forgetPersistVote>
 * (a known-wrong variant: the run is expected to fail).
 */
import { runSeed, SimViolation } from "../test/raft/sim/cluster.js";
import type { RaftTestingKnobs } from "../lib/raft/index.js";

function flag(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const seeds = Number(flag("seeds") ?? 100);
const startSeed = Number(flag("start-seed") ?? 1);
const nodes = flag("nodes") !== undefined ? Number(flag("nodes")) : undefined;
const ticks = flag("ticks") !== undefined ? Number(flag("ticks")) : undefined;
const faultiness = flag("faultiness") !== undefined ? Number(flag("faultiness")) : undefined;
const knob = flag("knob") as keyof RaftTestingKnobs | undefined;
if (!Number.isInteger(seeds) || seeds <= 0 || !Number.isInteger(startSeed)) {
  console.error(
    "usage: sim --seeds N --start-seed S [--nodes 1|3|5] [--ticks T] [--faultiness F] [--knob NAME]",
  );
  process.exit(2);
}

const t0 = Date.now();
let committed = 0;
let reads = 0;
for (let s = startSeed; s < startSeed + seeds; s++) {
  try {
    const r = runSeed({
      seed: s,
      nodes,
      ticks,
      faultiness,
      knobs: knob ? { [knob]: true } : undefined,
      skipLiveness: knob !== undefined,
    });
    committed += r.committedIndex;
    reads += r.readsChecked;
  } catch (e) {
    if (e instanceof SimViolation) {
      console.error(`VIOLATION seed=${s} invariant=${e.invariant}\n  ${e.message}`);
    } else {
      console.error(`ERROR seed=${s}: ${(e as Error).message}`);
    }
    process.exit(1);
  }
}
console.log(
  `ok: ${seeds} seeds (${startSeed}..${startSeed + seeds - 1}) in ${((Date.now() - t0) / 1000).toFixed(1)} s; ` +
    `${committed} entries committed, ${reads} reads checked, no invariant broken`,
);
