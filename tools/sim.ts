/**
 * Raft simulator CLI (`npm run sim -- --seeds N --start-seed S`): runs the deterministic
 * simulator of tools/sim (its tests: test/raft/sim) for seeds S … S+N-1 and exits 1 on the first broken invariant,
 * printing the seed and the invariant (replay it with `SEED=<seed> npm test -- raft/sim`
 * or `--seeds 1 --start-seed <seed>`).
 * Options: --nodes 1|3|5 (default: chosen by seed), --ticks T, --faultiness F,
 * --knob <skipVoteLogCheck|commitPrevTermByCount|readIndexBeforeCommitInTerm|forgetPersistVote>
 * (a known-wrong variant: the run is expected to fail).
 * --member: each node also runs the member's real apply path (tools/sim/member.ts: the
 * applier into a real mvcc store; HashKV, revisions and answers compared across members);
 * --member-knob <skipOneApply|flipTxnCompare> (a known-wrong member: expected to fail).
 */
import { runSeed, SimViolation } from "./sim/cluster.js";
import type { RaftTestingKnobs } from "../lib/raft/index.js";
import type { MemberKnobs } from "./sim/member.js";

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
const memberKnob = flag("member-knob") as keyof MemberKnobs | undefined;
const member = process.argv.includes("--member") || memberKnob !== undefined;
if (!Number.isInteger(seeds) || seeds <= 0 || !Number.isInteger(startSeed)) {
  console.error(
    "usage: sim --seeds N --start-seed S [--nodes 1|3|5] [--ticks T] [--faultiness F] [--knob NAME] [--member] [--member-knob NAME]",
  );
  process.exit(2);
}

const t0 = Date.now();
let committed = 0;
let reads = 0;
let hashes = 0;
let proposerAnswers = 0;
let dbFilesLoaded = 0;
let dbAheadRestarts = 0;
for (let s = startSeed; s < startSeed + seeds; s++) {
  try {
    const r = runSeed({
      seed: s,
      nodes,
      ticks,
      faultiness,
      knobs: knob ? { [knob]: true } : undefined,
      skipLiveness: knob !== undefined || memberKnob !== undefined,
      member,
      memberKnobs: memberKnob ? { [memberKnob]: true } : undefined,
    });
    committed += r.committedIndex;
    reads += r.readsChecked;
    hashes += r.hashesCompared;
    proposerAnswers += r.proposerAnswers;
    dbFilesLoaded += r.dbFilesLoaded;
    dbAheadRestarts += r.dbAheadRestarts;
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
    `${committed} entries committed, ${reads} reads checked` +
    (member
      ? `, ${hashes} member hashes compared, ${proposerAnswers} proposers' answers, ${dbFilesLoaded} db files loaded (${dbAheadRestarts} restarts with the db ahead of the snapshot)`
      : "") +
    ", no invariant broken",
);
