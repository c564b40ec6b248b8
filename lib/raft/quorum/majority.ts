/**
 * Majority quorum arithmetic (etcd-io/raft's quorum/majority.go) for a single (non-joint)
 * voter set: the committed index and the outcome of a vote.
 */

/** Outcome of a vote tally. */
export enum VoteResult {
  Pending = 0,
  Lost = 1,
  Won = 2,
}

/**
 * The largest index acknowledged by a majority of `voters`. `matchOf` gives each voter's acked
 * index (missing = 0). An empty voter set yields MAX_SAFE_INTEGER, as etcd (so it never limits).
 */
export function committedIndex(
  voters: ReadonlySet<bigint>,
  matchOf: (id: bigint) => number | undefined,
): number {
  const n = voters.size;
  if (n === 0) return Number.MAX_SAFE_INTEGER;
  if (n === 1) {
    for (const id of voters) return matchOf(id) ?? 0;
  }
  // descending by insertion: a handful of voters, and Array.prototype.sort with a comparator
  // allocates its work arrays on every call (this runs on every append acknowledgement)
  const srt: number[] = new Array(n);
  let i = 0;
  for (const id of voters) {
    const m = matchOf(id) ?? 0;
    let j = i++;
    for (; j > 0 && srt[j - 1]! < m; j--) srt[j] = srt[j - 1]!;
    srt[j] = m;
  }
  // Descending: the (n/2+1)-th largest is acked by a majority.
  return srt[n >> 1]!;
}

/**
 * Outcome of a vote among `voters` given the recorded `votes` (true = granted). Won when a
 * majority granted, Lost when a majority can no longer be reached, else Pending. Empty set: Won.
 */
export function voteResult(
  voters: ReadonlySet<bigint>,
  votes: ReadonlyMap<bigint, boolean>,
): VoteResult {
  if (voters.size === 0) return VoteResult.Won;
  let granted = 0;
  let missing = 0;
  for (const id of voters) {
    const v = votes.get(id);
    if (v === undefined) missing++;
    else if (v) granted++;
  }
  const q = (voters.size >> 1) + 1;
  if (granted >= q) return VoteResult.Won;
  if (granted + missing >= q) return VoteResult.Pending;
  return VoteResult.Lost;
}
