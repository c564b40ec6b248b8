// Hand-made key-value histories: linearizable ones the checker must accept, and one per kind of
// bug it must reject with an explanation that names the offending operations.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  casModRevision,
  casValue,
  checkLinearizability,
  CheckerInputError,
  type LinearizabilityResult,
} from "../../lib/checker/index.js";
import { H, kv } from "./helpers.js";

function assertOk(r: LinearizabilityResult): void {
  assert.equal(r.verdict, "ok", r.verdict === "illegal" ? r.explanation : JSON.stringify(r));
}

function assertIllegal(r: LinearizabilityResult, ...mentions: (string | RegExp)[]) {
  assert.equal(r.verdict, "illegal", JSON.stringify(r));
  if (r.verdict !== "illegal") throw new Error("unreachable");
  for (const m of mentions) {
    if (typeof m === "string")
      assert.ok(r.explanation.includes(m), `"${m}" not in:\n${r.explanation}`);
    else assert.match(r.explanation, m);
  }
  return r;
}

describe("checkLinearizability accepts", () => {
  test("a sequential history with revisions", () => {
    const h = new H()
      .put(1, [0, 1], "a", "1", 2)
      .get(2, [2, 3], "a", kv("1", 2, 2, 1), 2)
      .put(1, [4, 5], "a", "2", 3)
      .get(2, [6, 7], "a", kv("2", 3, 2, 2), 3)
      .del(1, [8, 9], "a", 1, 4)
      .get(2, [10, 11], "a", null, 4)
      .del(1, [12, 13], "a", 0, 4);
    assertOk(checkLinearizability(h.ops));
  });

  test("a read concurrent with a write may see either value", () => {
    for (const seen of ["1", "2"]) {
      const h = new H()
        .put(1, [0, 1], "a", "1")
        .put(1, [2, 10], "a", "2")
        .get(2, [3, 4], "a", seen)
        .get(2, [11, 12], "a", "2");
      assertOk(checkLinearizability(h.ops));
    }
  });

  test("two overlapping reads may see the new value then the old one only if writes overlap", () => {
    // r1 sees "2" (the put took effect), r2 starts after r1 finished and sees "2" too.
    const h = new H()
      .put(1, [0, 1], "a", "1", 2)
      .put(1, [2, 20], "a", "2", 3)
      .get(2, [3, 5], "a", kv("2", 3), 3)
      .get(3, [6, 8], "a", kv("2", 3), 3);
    assertOk(checkLinearizability(h.ops));
  });

  test("compare-and-swap by value and by mod revision, succeeded and failed", () => {
    const h = new H()
      .put(1, [0, 1], "a", "x", 2)
      .txn(1, [2, 3], casValue("a", "x", "y"), true, 3)
      .txn(2, [4, 5], casValue("a", "x", "z"), false, 3)
      .txn(2, [6, 7], casModRevision("a", 3, "w"), true, 4)
      .txn(1, [8, 9], casModRevision("a", 3, "v"), false, 4)
      .get(1, [10, 11], "a", kv("w", 4, 2, 3), 4);
    assertOk(checkLinearizability(h.ops));
  });

  test("a value compare on a missing key fails (etcd applyCompare)", () => {
    const h = new H()
      .txn(
        1,
        [0, 1],
        {
          type: "txn",
          compare: [{ key: "a", target: "value", result: "not_equal", value: "x" }],
          success: [{ type: "put", key: "a", value: "1" }],
          failure: [{ type: "put", key: "a", value: "2" }],
        },
        false,
        2,
      )
      .get(1, [2, 3], "a", kv("2", 2, 2, 1), 2);
    assertOk(checkLinearizability(h.ops));
  });

  test("a txn with reads in its branch sees its own writes at its revision", () => {
    const h = new H().put(1, [0, 1], "a", "1", 2).txn(
      1,
      [2, 3],
      {
        type: "txn",
        compare: [{ key: "a", target: "version", result: "equal", value: 1 }],
        success: [
          { type: "get", key: "a" },
          { type: "put", key: "a", value: "2" },
          { type: "get", key: "a" },
        ],
        failure: [{ type: "get", key: "a" }],
      },
      true,
      3,
      [
        { type: "get", kv: kv("1", 2, 2, 1) },
        { type: "put" },
        { type: "get", kv: kv("2", 3, 2, 2) },
      ],
    );
    assertOk(checkLinearizability(h.ops));
  });

  test("a put that may have happened: seen later, or never seen", () => {
    const seen = new H()
      .put(1, [0, 1], "a", "1", 2)
      .putPending(2, 2, "a", "2")
      .get(1, [5, 6], "a", kv("2", 3), 3)
      .get(1, [7, 8], "a", kv("2", 3), 3);
    assertOk(checkLinearizability(seen.ops));
    const unseen = new H()
      .put(1, [0, 1], "a", "1", 2)
      .putPending(2, 2, "a", "2")
      .get(1, [5, 6], "a", kv("1", 2), 2)
      .put(1, [7, 8], "a", "3", 4);
    assertOk(checkLinearizability(unseen.ops));
  });

  test("an ambiguous compare-and-swap on an unknown mod revision explores both outcomes", () => {
    // "x" is written by a put whose response was lost, so its revision is unknown; a CAS on
    // mod revision 7 then fails or succeeds ambiguously, and a later read decides.
    const h = new H()
      .putPending(1, 0, "a", "x")
      .txn(2, [5, 6], casModRevision("a", 7, "y"), undefined)
      .get(3, [10, 11], "a", kv("y", 8, 7, 2), 8);
    assertOk(checkLinearizability(h.ops));
  });

  test("a range over a prefix and a multi-key txn share one partition", () => {
    const h = new H()
      .put(1, [0, 1], "p/a", "1", 2)
      .put(2, [0, 2], "p/b", "1", 3)
      .txn(
        1,
        [3, 4],
        {
          type: "txn",
          compare: [{ key: "p/a", target: "value", result: "equal", value: "1" }],
          success: [
            { type: "put", key: "p/a", value: "2" },
            { type: "delete", key: "p/b" },
          ],
          failure: [],
        },
        true,
        4,
        [{ type: "put" }, { type: "delete", deleted: 1 }],
      )
      .range(2, [5, 6], "p/", [{ key: "p/a", ...kv("2", 4, 2, 2) }], 4)
      .put(3, [7, 8], "q", "z", 5)
      .range(
        3,
        [9, 10],
        "",
        [
          { key: "p/a", ...kv("2", 4, 2, 2) },
          { key: "q", ...kv("z", 5, 5, 1) },
        ],
        5,
      );
    const r = checkLinearizability(h.ops);
    assertOk(r);
    assert.equal(r.verdict === "ok" && r.partitions, 1);
  });

  test("independent keys are checked as separate partitions", () => {
    const h = new H()
      .put(1, [0, 1], "a", "1", 2)
      .put(2, [0, 1], "b", "1", 3)
      .get(1, [2, 3], "a", kv("1", 2), 3)
      .get(2, [2, 3], "b", kv("1", 3), 3);
    const r = checkLinearizability(h.ops);
    assertOk(r);
    assert.equal(r.verdict === "ok" && r.partitions, 2);
  });

  test("an initial state", () => {
    const h = new H().get(1, [0, 1], "a", kv("0", 5, 4, 2), 9).put(1, [2, 3], "a", "1", 10);
    const initial = {
      revision: 9,
      kvs: [{ key: "a", value: "0", modRevision: 5, createRevision: 4, version: 2 }],
    };
    assertOk(checkLinearizability(h.ops, { initial }));
  });
});

describe("checkLinearizability rejects", () => {
  test("a stale read (values only)", () => {
    const h = new H().put(1, [0, 1], "a", "1").put(1, [2, 3], "a", "2").get(2, [4, 5], "a", "1");
    const r = assertIllegal(checkLinearizability(h.ops), '"a"', 'get("a")', '"2"');
    assert.deepEqual(r.keys, ["a"]);
    assert.equal(r.stuck.length, 1);
    assert.equal(r.stuck[0]!.op.id, 2);
  });

  test("a stale read (with revisions: a read at an old header revision)", () => {
    const h = new H()
      .put(1, [0, 1], "a", "1", 2)
      .put(1, [2, 3], "a", "2", 3)
      .get(2, [4, 5], "a", kv("1", 2), 2);
    assertIllegal(checkLinearizability(h.ops), "stale read", "revision 3");
  });

  test("a stale read (with revisions: a current header, the old value)", () => {
    const h = new H()
      .put(1, [0, 1], "a", "1", 2)
      .put(1, [2, 3], "a", "2", 3)
      .get(2, [4, 5], "a", kv("1", 2), 3);
    assertIllegal(checkLinearizability(h.ops), `"a" = "1"`, `"2" (mod 3`);
  });

  test("a lost write", () => {
    const h = new H().put(1, [0, 1], "a", "1").get(2, [2, 3], "a", null);
    assertIllegal(checkLinearizability(h.ops), 'found no "a"');
    const later = new H()
      .put(1, [0, 1], "a", "1", 2)
      .put(1, [2, 3], "a", "2", 3)
      .put(2, [4, 5], "b", "x", 4)
      .get(2, [6, 7], "a", kv("1", 2), 4);
    assertIllegal(checkLinearizability(later.ops), '"a"');
  });

  test("a wrong compare-and-swap", () => {
    const succeededWrongly = new H()
      .put(1, [0, 1], "a", "x", 2)
      .txn(2, [2, 3], casValue("a", "y", "z"), true, 3);
    assertIllegal(checkLinearizability(succeededWrongly.ops), "response says succeeded", '"x"');
    const failedWrongly = new H()
      .put(1, [0, 1], "a", "x", 2)
      .txn(2, [2, 3], casModRevision("a", 2, "z"), false, 2);
    assertIllegal(checkLinearizability(failedWrongly.ops), "response says failed");
  });

  test("two compare-and-swaps from the same value both succeeding", () => {
    const h = new H()
      .put(1, [0, 1], "a", "x")
      .txn(1, [2, 5], casValue("a", "x", "y"), true)
      .txn(2, [2, 5], casValue("a", "x", "z"), true);
    assertIllegal(checkLinearizability(h.ops), "succeeded");
  });

  test("a read of a value never written", () => {
    const h = new H().put(1, [0, 1], "a", "1").get(2, [2, 3], "a", "zzz");
    assertIllegal(checkLinearizability(h.ops), "never written", '"zzz"');
  });

  test("a read of a value written to another key", () => {
    const h = new H()
      .put(1, [0, 1], "a", "1", 2)
      .put(1, [0, 1], "b", "2", 3)
      .put(1, [0, 1], "a", "2", 4)
      .get(2, [2, 3], "a", kv("2", 3), 4);
    assertIllegal(checkLinearizability(h.ops), "did not write that key");
  });

  test("a write visible before its invoke", () => {
    const values = new H().get(1, [0, 1], "a", "x").put(2, [2, 3], "a", "x");
    assertIllegal(checkLinearizability(values.ops), 'get("a")', "absent");
    const revisions = new H().get(1, [0, 1], "a", kv("x", 2), 2).put(2, [2, 3], "a", "x", 2);
    assertIllegal(checkLinearizability(revisions.ops), "revision order contradicts real time");
  });

  test("a read whose mod revision is above its header revision", () => {
    const h = new H().put(1, [0, 1], "a", "x", 5).get(1, [2, 3], "a", kv("x", 5), 4);
    assertIllegal(checkLinearizability(h.ops), "above its own header revision");
  });

  test("two writes with one revision", () => {
    const h = new H().put(1, [0, 1], "a", "x", 5).put(2, [0, 1], "b", "y", 5);
    assertIllegal(checkLinearizability(h.ops), "two writes took revision 5");
  });

  test("a delete that reports nothing deleted while the key exists", () => {
    const h = new H().put(1, [0, 1], "a", "x").del(2, [2, 3], "a", 0);
    assertIllegal(checkLinearizability(h.ops), "reported 0 deleted");
  });

  test("a range that misses a key", () => {
    const h = new H()
      .put(1, [0, 1], "p/a", "1", 2)
      .put(1, [2, 3], "p/b", "1", 3)
      .range(2, [4, 5], "p/", [{ key: "p/b", ...kv("1", 3) }], 3);
    assertIllegal(checkLinearizability(h.ops), 'found no "p/a"');
  });

  test("a bad history in a big one is cut down to a small failing prefix", () => {
    const h = new H();
    let t = 0;
    for (let i = 0; i < 200; i++) {
      h.put(1, [t, t + 1], "a", `v${i}`);
      h.get(2, [t + 2, t + 3], "a", i === 50 ? `v${i - 1}` : `v${i}`);
      t += 10;
    }
    const r = assertIllegal(checkLinearizability(h.ops), "v49", "v50");
    assert.ok(r.history.length <= 110, `cut to ${r.history.length} ops`);
    assert.ok(r.linearization.length >= 100);
  });
});

describe("checkLinearizability with a complete watch", () => {
  test("a lost put the watch saw is placed at its revision; one it did not see is dropped", () => {
    const h = new H()
      .put(1, [0, 1], "a", "1", 2)
      .putPending(2, 2, "a", "2")
      .putPending(3, 2, "a", "never")
      .put(1, [5, 6], "a", "3", 4)
      .get(1, [7, 8], "a", kv("3", 4, 2, 3), 4);
    const watched = {
      events: [
        { revision: 2, key: "a", type: "put" as const, value: "1" },
        { revision: 3, key: "a", type: "put" as const, value: "2" },
        { revision: 4, key: "a", type: "put" as const, value: "3" },
      ],
      completeRevision: 4,
    };
    assertOk(checkLinearizability(h.ops, { watched }));
    // Without the event at revision 3 the version the read saw (3) has no explanation.
    const missed = { events: watched.events.filter((e) => e.revision !== 3), completeRevision: 4 };
    assertIllegal(checkLinearizability(h.ops, { watched: missed }), "ver 3");
  });

  test("a write a read saw but the watch did not is reported", () => {
    const h = new H().putPending(1, 0, "a", "x").get(2, [5, 6], "a", kv("x", 2), 2);
    assertIllegal(
      checkLinearizability(h.ops, { watched: { events: [], completeRevision: 2 } }),
      "delivered no event of",
      "returned the value it wrote",
    );
  });

  test("a watch that ends below a revision the history saw is refused", () => {
    const h = new H().put(1, [0, 1], "a", "x", 5);
    assert.throws(
      () => checkLinearizability(h.ops, { watched: { events: [], completeRevision: 4 } }),
      CheckerInputError,
    );
  });
});

describe("checkLinearizability budget and input", () => {
  test("an exhausted step budget gives unknown, not a guess", () => {
    const h = new H();
    for (let i = 0; i < 12; i++) h.put(i, [0, 100], "a", `v${i}`);
    h.get(99, [101, 102], "a", "never");
    const r = checkLinearizability(
      h.ops.filter((o) => o.input.type === "put"),
      { maxSteps: 5 },
    );
    assert.equal(r.verdict, "unknown");
    assert.match(r.verdict === "unknown" ? r.reason : "", /step budget/);
  });

  test("a malformed history throws CheckerInputError", () => {
    const h = new H().put(1, [5, 1], "a", "x");
    assert.throws(() => checkLinearizability(h.ops), CheckerInputError);
    const wrongOutput = new H().put(1, [0, 1], "a", "x");
    wrongOutput.ops[0]!.output = { type: "get", kv: null };
    assert.throws(() => checkLinearizability(wrongOutput.ops), /a get output for a put input/);
  });
});
