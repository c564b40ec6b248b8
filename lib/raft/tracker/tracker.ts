/**
 * ProgressTracker: the current configuration (voters and learners), one Progress per member,
 * and the votes of the current election (etcd-io/raft's tracker/tracker.go, single-step
 * configurations only: no joint consensus).
 */
import type { ConfState } from "../../proto/gen/raftpb/raft.js";
import { committedIndex, voteResult, VoteResult } from "../quorum/majority.js";
import { Progress } from "./progress.js";

/** Configuration, per-member progress and election votes; see the file comment. */
export class ProgressTracker {
  voters = new Set<bigint>();
  learners = new Set<bigint>();
  progress = new Map<bigint, Progress>();
  votes = new Map<bigint, boolean>();
  readonly maxInflightMsgs: number;
  readonly maxInflightBytes: number;

  constructor(maxInflightMsgs: number, maxInflightBytes: number) {
    this.maxInflightMsgs = maxInflightMsgs;
    this.maxInflightBytes = maxInflightBytes;
  }

  /** The configuration as a ConfState (sorted ids, as etcd). */
  confState(): ConfState {
    const sort = (s: Set<bigint>) => [...s].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    return {
      voters: sort(this.voters),
      learners: sort(this.learners),
      votersOutgoing: [],
      learnersNext: [],
      autoLeave: false,
    };
  }

  /** True when the configuration has exactly one voter. */
  isSingleton(): boolean {
    return this.voters.size === 1;
  }

  /** Largest index acked by a majority of voters. */
  committed(): number {
    return committedIndex(this.voters, this.#matchOf);
  }

  /** A voter's acked index (made once: committed() runs on every append acknowledgement). */
  readonly #matchOf = (id: bigint): number | undefined => this.progress.get(id)?.match;

  /** True when a majority of voters were recently active (the leader counts itself active). */
  quorumActive(selfId: bigint): boolean {
    const votes = new Map<bigint, boolean>();
    for (const [id, pr] of this.progress) {
      if (pr.isLearner) continue;
      votes.set(id, id === selfId || pr.recentActive);
    }
    return voteResult(this.voters, votes) === VoteResult.Won;
  }

  /** Voter ids sorted ascending (stable iteration for deterministic message order). */
  voterIds(): bigint[] {
    return [...this.voters].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  }

  resetVotes(): void {
    this.votes = new Map();
  }

  /** Records id's vote unless it already voted. */
  recordVote(id: bigint, granted: boolean): void {
    if (!this.votes.has(id)) this.votes.set(id, granted);
  }

  /** Outcome of an arbitrary vote (e.g. ReadIndex heartbeat acks) among the voters. */
  tallyVotesFor(votes: ReadonlyMap<bigint, boolean>): VoteResult {
    return voteResult(this.voters, votes);
  }

  /** Current tally: [granted, rejected, result]. */
  tallyVotes(): { granted: number; rejected: number; result: VoteResult } {
    let granted = 0;
    let rejected = 0;
    for (const id of this.voters) {
      const v = this.votes.get(id);
      if (v === undefined) continue;
      if (v) granted++;
      else rejected++;
    }
    return { granted, rejected, result: voteResult(this.voters, this.votes) };
  }
}
