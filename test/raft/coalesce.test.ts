/** coalesceMessages: what raft sends one peer in a row, merged (lib/raft/coalesce.ts). */
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { type Entry, type Message, MessageType } from "../../lib/proto/gen/raftpb/raft.js";
import { coalesceMessages, ErrProposalDropped, ErrStepPeerNotFound } from "../../lib/raft/index.js";
import { newMessage } from "../../lib/raft/raft.js";
import { Network } from "./network.js";

const enc = (s: string) => new TextEncoder().encode(s);
const ent = (index: number, term: number, s = `v${index}`): Entry => ({
  type: 0,
  term,
  index,
  data: enc(s),
});
const MiB = 1024 * 1024;

/** A MsgApp from 1 to `to` in term 2 after (index, logTerm) with entries [from..to] of term 2. */
function app(to: bigint, index: number, logTerm: number, count: number, commit: number): Message {
  const entries = Array.from({ length: count }, (_, i) => ent(index + 1 + i, 2));
  return newMessage({
    type: MessageType.MsgApp,
    from: 1n,
    to,
    term: 2,
    index,
    logTerm,
    entries,
    commit,
  });
}

function resp(from: bigint, index: number, term = 2): Message {
  return newMessage({ type: MessageType.MsgAppResp, from, to: 1n, term, index });
}

describe("coalesceMessages", () => {
  test("MsgApps that continue each other merge into one with every entry and the last commit", () => {
    const msgs = [app(2n, 10, 2, 1, 9), app(2n, 11, 2, 2, 10), app(2n, 13, 2, 0, 12)];
    const out = coalesceMessages(msgs, MiB);
    assert.equal(out.length, 1);
    assert.deepEqual(
      out[0]!.entries.map((e) => e.index),
      [11, 12, 13],
    );
    assert.equal(out[0]!.index, 10);
    assert.equal(out[0]!.logTerm, 2);
    assert.equal(out[0]!.commit, 12);
    // the inputs are untouched
    assert.equal(msgs[0]!.entries.length, 1);
    assert.equal(msgs[0]!.commit, 9);
  });

  test("an empty MsgApp continues the MsgApp before it from that MsgApp's own index", () => {
    const out = coalesceMessages([app(2n, 10, 2, 0, 8), app(2n, 10, 2, 0, 9)], MiB);
    assert.equal(out.length, 1);
    assert.equal(out[0]!.commit, 9);
  });

  test("MsgApps that do not continue each other (a probe after a rejection) stay apart", () => {
    const out = coalesceMessages([app(2n, 10, 2, 3, 9), app(2n, 7, 2, 1, 9)], MiB);
    assert.equal(out.length, 2);
    const termChange = coalesceMessages(
      [app(2n, 10, 2, 1, 9), { ...app(2n, 11, 2, 1, 9), term: 3 }],
      MiB,
    );
    assert.equal(termChange.length, 2);
    const logTermDiffers = coalesceMessages([app(2n, 10, 2, 1, 9), app(2n, 11, 1, 1, 9)], MiB);
    assert.equal(logTermDiffers.length, 2);
  });

  test("messages to other peers in between do not stop a merge; one to the same peer does", () => {
    const hb = newMessage({ type: MessageType.MsgHeartbeat, from: 1n, to: 2n, term: 2, commit: 9 });
    const out = coalesceMessages(
      [app(2n, 10, 2, 1, 9), app(3n, 10, 2, 1, 9), app(2n, 11, 2, 1, 9), app(3n, 11, 2, 1, 9)],
      MiB,
    );
    assert.deepEqual(
      out.map((m) => [m.to, m.entries.length]),
      [
        [2n, 2],
        [3n, 2],
      ],
    );
    const split = coalesceMessages([app(2n, 10, 2, 1, 9), hb, app(2n, 11, 2, 1, 9)], MiB);
    assert.deepEqual(
      split.map((m) => m.type),
      [MessageType.MsgApp, MessageType.MsgHeartbeat, MessageType.MsgApp],
    );
  });

  test("no merge grows past maxSizeBytes of entries", () => {
    const msgs = [app(2n, 10, 2, 1, 9), app(2n, 11, 2, 1, 9), app(2n, 12, 2, 1, 9)];
    const oneEntryBytes = 3 + 16; // "v11" plus entryOverheadBytes
    const out = coalesceMessages(msgs, 2 * oneEntryBytes);
    assert.deepEqual(
      out.map((m) => m.entries.map((e) => e.index)),
      [[11, 12], [13]],
    );
  });

  test("acknowledgements keep the highest index; rejections are never merged", () => {
    assert.deepEqual(
      coalesceMessages([resp(2n, 11), resp(2n, 14), resp(2n, 12)], MiB).map((m) => m.index),
      [14],
    );
    const reject = newMessage({
      type: MessageType.MsgAppResp,
      from: 2n,
      to: 1n,
      term: 2,
      index: 15,
      reject: true,
      rejectHint: 13,
      logTerm: 2,
    });
    const out = coalesceMessages([resp(2n, 11), reject, resp(2n, 13), resp(2n, 14)], MiB);
    assert.deepEqual(
      out.map((m) => [m.index, m.reject]),
      [
        [11, false],
        [15, true],
        [14, false],
      ],
    );
    assert.equal(coalesceMessages([resp(2n, 11, 2), resp(2n, 12, 3)], MiB).length, 2);
  });

  test("forwarded proposals merge into one MsgProp, entries in order", () => {
    const prop = (s: string) =>
      newMessage({ type: MessageType.MsgProp, from: 2n, to: 1n, entries: [{ ...ent(0, 0, s) }] });
    const read = newMessage({
      type: MessageType.MsgReadIndex,
      from: 2n,
      to: 1n,
      entries: [ent(0, 0, "r")],
    });
    const out = coalesceMessages([prop("a"), prop("b"), read, prop("c"), prop("d")], MiB);
    assert.deepEqual(
      out.map((m) => [m.type, m.entries.map((e) => new TextDecoder().decode(e.data)).join("")]),
      [
        [MessageType.MsgProp, "ab"],
        [MessageType.MsgReadIndex, "r"],
        [MessageType.MsgProp, "cd"],
      ],
    );
  });

  test("a 3-member cluster with coalesced sends agrees on every entry, with fewer messages", () => {
    const run = (coalesce: boolean) => {
      const net = new Network(3);
      net.campaign(1);
      let delivered = 0;
      // Rounds of: many proposals on every member, then one ready pass per member whose messages
      // are delivered (coalesced or not), until everything is applied everywhere.
      let seq = 0;
      for (let round = 0; round < 200; round++) {
        if (round < 20) {
          for (const id of [1, 2, 3]) {
            for (let k = 0; k < 5; k++) {
              try {
                net.get(id).node.propose(enc(`p${seq++}`));
              } catch (e) {
                if (!(e instanceof ErrProposalDropped)) throw e;
              }
            }
          }
        }
        let pending: Message[] = [];
        for (const tn of net.nodes.values()) {
          const msgs = net.processReady(tn);
          pending.push(...(coalesce ? coalesceMessages(msgs, MiB) : msgs));
        }
        if (round >= 20 && pending.length === 0) break;
        for (const m of pending) {
          delivered++;
          try {
            net.deliver(m);
          } catch (e) {
            if (!(e instanceof ErrStepPeerNotFound)) throw e;
          }
        }
        pending = [];
      }
      const applied = [1, 2, 3].map((id) => net.appliedData(id));
      return { applied, delivered, seq };
    };
    const plain = run(false);
    const merged = run(true);
    for (const r of [plain, merged]) {
      assert.equal(r.applied[0]!.length, r.seq, "every proposal applied");
      assert.deepEqual(r.applied[1], r.applied[0]);
      assert.deepEqual(r.applied[2], r.applied[0]);
    }
    assert.ok(
      merged.delivered * 3 < plain.delivered,
      `coalesced ${merged.delivered} messages, plain ${plain.delivered}`,
    );
  });
});
