// Hand-made watch histories against etcd's watch guarantees (api_guarantees.md "Watch APIs"):
// good ones accepted, and each broken guarantee reported with the watch, revision and key.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  checkWatches,
  CheckerInputError,
  prefixRangeEnd,
  type WatchCheckResult,
  type WatchEventRecord,
  type WatchGuarantee,
  type WatchHistory,
  type WatchRecord,
  type WatchWrite,
} from "../../lib/checker/index.js";

/** Writes at revisions 2..: a=1, b=1, a=2, (txn) a=3 + b deleted, c=1. */
const writes: WatchWrite[] = [
  { revision: 2, key: "a", type: "put", value: "1" },
  { revision: 3, key: "b", type: "put", value: "1" },
  { revision: 4, key: "a", type: "put", value: "2" },
  { revision: 5, key: "a", type: "put", value: "3" },
  { revision: 5, key: "b", type: "delete" },
  { revision: 6, key: "c", type: "put", value: "1" },
];

function ev(
  rev: number,
  key: string,
  type: "put" | "delete" = "put",
  value?: string,
): WatchEventRecord {
  const w = writes.find((x) => x.revision === rev && x.key === key);
  const v = value ?? w?.value;
  return {
    type,
    key,
    modRevision: rev,
    ...(type === "put" && v !== undefined ? { value: v } : {}),
  };
}

/** A prefix watch on everything from revision 2 with the given responses. */
function all(
  id: string,
  responses: WatchEventRecord[][],
  extra: Partial<WatchRecord> = {},
): WatchRecord {
  return {
    id,
    key: "",
    rangeEnd: "\u0000",
    startRevision: 2,
    responses: responses.map((events) => ({
      events,
      headerRevision: Math.max(0, ...events.map((e) => e.modRevision)),
    })),
    ...extra,
  };
}

function check(watches: WatchRecord[], more: Partial<WatchHistory> = {}): WatchCheckResult {
  return checkWatches({ writes, watches, ...more });
}

function assertViolation(r: WatchCheckResult, guarantee: WatchGuarantee, ...mentions: string[]) {
  assert.equal(r.verdict, "violation", JSON.stringify(r));
  if (r.verdict !== "violation") throw new Error("unreachable");
  const v = r.violations.find(
    (x) => x.guarantee === guarantee && mentions.every((m) => x.explanation.includes(m)),
  );
  assert.ok(
    v,
    `no ${guarantee} violation with ${JSON.stringify(mentions)} in ${JSON.stringify(r.violations, null, 1)}`,
  );
  return v;
}

const complete = [
  [ev(2, "a")],
  [ev(3, "b")],
  [ev(4, "a")],
  [ev(5, "a"), ev(5, "b", "delete")],
  [ev(6, "c")],
];

describe("checkWatches accepts", () => {
  test("a watch on everything that saw every event once, in order", () => {
    const r = check([all("w1", complete)]);
    assert.deepEqual(r, { verdict: "ok", watches: 1, events: 6 });
  });

  test("batched responses, a key watch, a prefix watch, a watch from a later revision", () => {
    const r = check([
      all("batched", [
        [ev(2, "a"), ev(3, "b"), ev(4, "a")],
        [ev(5, "a"), ev(5, "b", "delete"), ev(6, "c")],
      ]),
      {
        id: "key-a",
        key: "a",
        startRevision: 3,
        responses: [{ events: [ev(4, "a")] }, { events: [ev(5, "a")] }],
      },
      {
        id: "prefix-b",
        key: "b",
        rangeEnd: prefixRangeEnd("b"),
        startRevision: 1,
        responses: [{ events: [ev(3, "b")] }, { events: [ev(5, "b", "delete")] }],
      },
    ]);
    assert.equal(r.verdict, "ok", JSON.stringify(r));
  });

  test("a watch that stopped early only answers for what it saw", () => {
    assert.equal(check([all("w1", complete.slice(0, 2))]).verdict, "ok");
  });

  test("a filtered watch (NOPUT) sees only deletes", () => {
    const r = check([{ ...all("w1", [[ev(5, "b", "delete")]]), filters: { noPut: true } }]);
    assert.equal(r.verdict, "ok", JSON.stringify(r));
  });

  test("a resumed watch that continues right after the last revision seen", () => {
    const r = check([
      all("w1", complete.slice(0, 2)),
      all("w2", complete.slice(2), { startRevision: 4, resumes: "w1" }),
    ]);
    assert.equal(r.verdict, "ok", JSON.stringify(r));
  });

  test("a progress notification after the events it covers", () => {
    const w = all("w1", complete.slice(0, 3));
    w.responses.push({ events: [], headerRevision: 4, progressNotify: true });
    w.responses.push({ events: complete[3]!, headerRevision: 5 });
    assert.equal(check([w]).verdict, "ok");
  });

  test("an event at a revision whose write lost its response, seen alike by two watchers", () => {
    const lost = { type: "put" as const, key: "d", modRevision: 7, value: "x" };
    const r = check([all("w1", [...complete, [lost]]), all("w2", [...complete, [lost]])], {
      possibleWrites: [{ key: "d", type: "put", value: "x" }],
    });
    assert.equal(r.verdict, "ok", JSON.stringify(r));
  });
});

describe("checkWatches rejects", () => {
  test("a missing event", () => {
    const v = assertViolation(
      check([all("w1", [complete[0]!, complete[2]!, complete[3]!])]),
      "reliable",
      "watch w1",
      "missed",
      'put "b" = "1" at revision 3',
    );
    assert.equal(v.revision, 3);
    assert.equal(v.key, "b");
  });

  test("a repeated event", () => {
    assertViolation(
      check([all("w1", [complete[0]!, complete[1]!, [ev(3, "b")], complete[2]!])]),
      "unique",
      'put "b" = "1" at revision 3 again',
    );
  });

  test("events out of order", () => {
    assertViolation(
      check([all("w1", [complete[0]!, complete[2]!, complete[1]!])]),
      "ordered",
      "revision 3",
      "after an event at revision 4",
    );
  });

  test("a revision split over two responses", () => {
    assertViolation(
      check([
        all("w1", [...complete.slice(0, 3), [ev(5, "a")], [ev(5, "b", "delete")], complete[4]!]),
      ]),
      "atomic",
      "other events of revision 5 came in response 3: split",
    );
  });

  test("a resumed watch that skips", () => {
    const r = check([
      all("w1", complete.slice(0, 2)),
      all("w2", complete.slice(3), { startRevision: 5, resumes: "w1" }),
    ]);
    assertViolation(r, "resumable", "resumes watch w1", "must start at 4", "skips", "revision 4");
  });

  test("a resumed watch that repeats", () => {
    const r = check([
      all("w1", complete.slice(0, 2)),
      all("w2", complete.slice(1), { startRevision: 3, resumes: "w1" }),
    ]);
    assertViolation(r, "resumable", "repeats", "revision 3");
  });

  test("an event no write made, or with the wrong value", () => {
    assertViolation(
      check([all("w1", [[ev(2, "a", "put", "9")]])]),
      "valid",
      'put "a" = "9" at revision 2',
      "acknowledged write",
    );
    assertViolation(
      check([all("w1", [[{ type: "put", key: "z", modRevision: 3, value: "1" }]])]),
      "valid",
      "revision 3 was made by",
    );
    assertViolation(
      check([all("w1", [...complete, [{ type: "put", key: "d", modRevision: 7, value: "x" }]])], {
        possibleWrites: [],
      }),
      "valid",
      "no acknowledged or possible write",
    );
  });

  test("two watchers that disagree about an unacknowledged revision", () => {
    const r = check([
      all("w1", [...complete, [{ type: "put", key: "d", modRevision: 7, value: "x" }]]),
      all("w2", [...complete, [{ type: "put", key: "d", modRevision: 7, value: "y" }]]),
    ]);
    assertViolation(r, "valid", "watch w1 saw");
  });

  test("an event outside the range, below the start, or above its header", () => {
    assertViolation(
      check([{ id: "w", key: "a", startRevision: 2, responses: [{ events: [ev(3, "b")] }] }]),
      "valid",
      "outside the watched range",
    );
    assertViolation(
      check([
        { id: "w", key: "a", startRevision: 3, responses: [{ events: [ev(2, "a"), ev(4, "a")] }] },
      ]),
      "valid",
      "below the start revision",
    );
    assertViolation(
      check([
        {
          id: "w",
          key: "a",
          startRevision: 2,
          responses: [{ events: [ev(2, "a")], headerRevision: 1 }],
        },
      ]),
      "valid",
      "above its header revision",
    );
  });

  test("an event after a progress notification that covered it", () => {
    const w = all("w1", complete.slice(0, 2));
    w.responses.push({ events: [], headerRevision: 4, progressNotify: true });
    w.responses.push({ events: complete[2]!, headerRevision: 4 });
    assertViolation(check([w]), "bookmarkable", "progress notification at revision 4");
  });

  test("a progress notification that skipped an event", () => {
    const w = all("w1", complete.slice(0, 1));
    w.responses.push({ events: [], headerRevision: 4, progressNotify: true });
    assertViolation(check([w]), "reliable", "revision 3");
  });

  test("malformed input throws CheckerInputError", () => {
    assert.throws(() => check([all("w1", [], { startRevision: 0 })]), CheckerInputError);
    assert.throws(() => check([all("w1", [], { resumes: "nope" })]), /resumes unknown watch nope/);
  });
});
