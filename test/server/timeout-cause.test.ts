// The error a timed-out proposal ends with, as etcd 3.4's parseProposeCtxErr chooses it
// (lib/server/timeout-cause.ts).
import { test } from "node:test";
import assert from "node:assert/strict";
import { proposalTimeoutError, type TimeoutCauseView } from "../../lib/server/timeout-cause.js";

const leaderFail = "etcdserver: request timed out, possibly due to previous leader failure";
const connectionLost = "etcdserver: request timed out, possibly due to connection lost";
const timedOut = "etcdserver: request timed out";

/** Members 1..5, this one 1; every peer connected since t=1000 unless `since` says otherwise. */
function view(o: Partial<TimeoutCauseView> & { since?: Record<string, number> }): TimeoutCauseView {
  return {
    electionTimeoutMs: 1000,
    leaderElectedAtMs: 0,
    leaderId: 2n,
    selfId: 1n,
    memberIds: [1n, 2n, 3n, 4n, 5n],
    activeSinceMs: (id) => o.since?.[id.toString()] ?? 1000,
    ...o,
  };
}

test("a proposal made within two election timeouts before this member was elected: previous leader failure", () => {
  const v = view({ leaderId: 1n, leaderElectedAtMs: 10_000 });
  assert.equal(proposalTimeoutError(v, 8_500).message, leaderFail);
  assert.equal(proposalTimeoutError(v, 7_500).message, timedOut, "before the window");
  assert.equal(proposalTimeoutError(v, 10_500).message, timedOut, "after the election");
});

test("a follower whose connection to the leader came up after the proposal: connection lost", () => {
  assert.equal(
    proposalTimeoutError(view({ since: { "2": 6_000 } }), 5_000).message,
    connectionLost,
  );
  assert.equal(proposalTimeoutError(view({ since: { "2": 0 } }), 5_000).message, connectionLost);
  assert.equal(proposalTimeoutError(view({ since: { "3": 0, "4": 0 } }), 5_000).message, timedOut);
});

test("a leader without a quorum of connections up since the proposal: connection lost", () => {
  const lead = { leaderId: 1n };
  // itself and two peers of five: a quorum
  const quorum = view({ ...lead, since: { "4": 0, "5": 7_000 } });
  assert.equal(proposalTimeoutError(quorum, 5_000).message, timedOut);
  const minority = view({ ...lead, since: { "3": 0, "4": 0, "5": 7_000 } });
  assert.equal(proposalTimeoutError(minority, 5_000).message, connectionLost);
});

test("no leader known: request timed out", () => {
  assert.equal(
    proposalTimeoutError(view({ leaderId: 0n, since: { "2": 0 } }), 5_000).message,
    timedOut,
  );
});
