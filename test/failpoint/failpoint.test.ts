/**
 * lib/failpoint: gofail's term syntax and evaluation, the runtime's set / clear / count, the
 * environment list, the HTTP endpoint's answers, and `panic` killing the process as kill -9.
 */
import { test, describe, afterEach } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  clearAllFailpoints,
  clearFailpoint,
  failpoint,
  failpointCount,
  failpointNames,
  failpointSleepMs,
  failpointTerms,
  FailpointInjectedError,
  FailpointSyntaxError,
  FailpointUnknownError,
  FailpointUnsupportedError,
  loadFailpointsFromEnv,
  parseFailpointList,
  parseTerms,
  seedFailpoints,
  serveFailpointHttp,
  setFailpoint,
} from "../../lib/failpoint/index.js";

const indexUrl = new URL("../../lib/failpoint/index.js", import.meta.url).href;

afterEach(() => clearAllFailpoints());

describe("gofail terms", () => {
  test("parse actions, values and modes as gofail writes them", () => {
    assert.deepEqual(parseTerms("panic"), [
      { desc: "panic", modes: [], action: { kind: "panic" } },
    ]);
    assert.deepEqual(parseTerms("50%panic")[0]!.modes, [{ kind: "probability", p: 0.5 }]);
    assert.deepEqual(parseTerms("2*sleep(100)")[0], {
      desc: "2*sleep(100)",
      modes: [{ kind: "count", remaining: 2 }],
      action: { kind: "sleep", ms: 100 },
    });
    assert.deepEqual(parseTerms('sleep("1.5s")')[0]!.action, { kind: "sleep", ms: 1500 });
    assert.deepEqual(parseTerms("sleep(250ms)")[0]!.action, { kind: "sleep", ms: 250 });
    assert.deepEqual(parseTerms('error("disk full")')[0]!.action, {
      kind: "error",
      message: "disk full",
    });
    assert.deepEqual(
      parseTerms("2*off->1*print->drop").map((t) => t.desc),
      ["2*off", "1*print", "drop"],
    );
    assert.deepEqual(parseTerms("12.5%3*drop")[0]!.modes, [
      { kind: "probability", p: 0.125 },
      { kind: "count", remaining: 3 },
    ]);
  });

  test("refuse what does not parse, naming where the parse stopped", () => {
    for (const bad of [
      "",
      "explode",
      "panic->",
      "panic-sleep",
      "sleep",
      'sleep("soon")',
      "sleep(700000)",
      "drop(1)",
      "panic(3)",
      "150%panic",
      'error("unterminated)',
    ]) {
      assert.throws(() => parseTerms(bad), FailpointSyntaxError, bad);
    }
    assert.throws(() => parseTerms("panic-sleep"), /at "-sleep"/);
  });
});

describe("runtime", () => {
  test("an unset point does nothing; nothing set anywhere is the fast path", () => {
    assert.equal(failpoint("walBeforeWrite"), false);
    setFailpoint("walAfterWrite", "off"); // only walAfterWrite set
    assert.equal(failpoint("walBeforeWrite"), false);
    assert.equal(failpointCount("walBeforeWrite"), 0);
  });

  test("counts run down, then the next term of the chain runs", () => {
    setFailpoint("walBeforeWrite", "2*drop->1*off");
    assert.deepEqual(
      [1, 2, 3, 4].map(() => failpoint("walBeforeWrite")),
      [true, true, false, false],
    );
    // 2 drops + 1 off ran; the 4th pass found no term allowed
    assert.equal(failpointCount("walBeforeWrite"), 3);
  });

  test("error throws FailpointInjectedError naming the point and message", () => {
    setFailpoint("walAfterSync", 'error("disk on fire")');
    assert.throws(
      () => failpoint("walAfterSync"),
      (e: unknown) =>
        e instanceof FailpointInjectedError &&
        e.failpoint === "walAfterSync" &&
        e.message === "failpoint walAfterSync: disk on fire",
    );
  });

  test("sleep blocks the thread for its duration", () => {
    setFailpoint("walAfterWrite", "1*sleep(60)");
    const t0 = performance.now();
    assert.equal(failpoint("walAfterWrite"), false);
    assert.ok(performance.now() - t0 >= 55, "slept");
    const t1 = performance.now();
    failpoint("walAfterWrite");
    assert.ok(performance.now() - t1 < 50, "count spent: no second sleep");
  });

  test("failpointSleepMs hands a sleep to the caller instead of blocking; other terms act as usual", () => {
    assert.equal(failpointSleepMs("raftBeforeSave"), 0, "unset");
    setFailpoint("raftBeforeSave", "1*sleep(5000)->error(full)");
    const t0 = performance.now();
    assert.equal(failpointSleepMs("raftBeforeSave"), 5000);
    assert.ok(performance.now() - t0 < 1000, "the thread did not sleep");
    assert.equal(failpointCount("raftBeforeSave"), 1);
    assert.throws(() => failpointSleepMs("raftBeforeSave"), FailpointInjectedError);
  });

  test("probabilities draw from the seeded PRNG: the same seed, the same choices", () => {
    const draw = () => {
      seedFailpoints(42);
      setFailpoint("walBeforeWrite", "30%drop");
      return Array.from({ length: 200 }, () => failpoint("walBeforeWrite"));
    };
    const a = draw();
    assert.deepEqual(draw(), a);
    const drops = a.filter(Boolean).length;
    assert.ok(drops > 35 && drops < 85, `about 30% of 200, got ${drops}`);
    setFailpoint("walBeforeWrite", "0%drop");
    assert.equal(failpoint("walBeforeWrite"), false);
    setFailpoint("walBeforeWrite", "100%drop");
    assert.equal(failpoint("walBeforeWrite"), true);
  });

  test("unknown points and unsupported actions are refused; clear unsets", () => {
    assert.throws(() => setFailpoint("noSuchPoint", "panic"), FailpointUnknownError);
    // walBeforePurge has no drop or error effect
    assert.throws(() => setFailpoint("walBeforePurge", "drop"), FailpointUnsupportedError);
    assert.throws(() => setFailpoint("walBeforePurge", "off->error"), FailpointUnsupportedError);
    setFailpoint("walBeforePurge", "sleep(1)");
    assert.equal(failpointTerms("walBeforePurge"), "sleep(1)");
    clearFailpoint("walBeforePurge");
    assert.equal(failpointTerms("walBeforePurge"), "");
  });

  test("the environment list: name=terms;… with ; inside a quoted message", () => {
    assert.deepEqual(parseFailpointList('a=panic; b=error("x;y") ;;c=2*off->drop'), [
      { name: "a", terms: "panic" },
      { name: "b", terms: 'error("x;y")' },
      { name: "c", terms: "2*off->drop" },
    ]);
    assert.throws(() => parseFailpointList("panic"), FailpointSyntaxError);
    const r = loadFailpointsFromEnv({
      ETCD_TS_FAILPOINTS: "walBeforeWrite=1*drop;walAfterSync=print",
      ETCD_TS_FAILPOINTS_SEED: "7",
    });
    assert.equal(r.seed, 7);
    assert.equal(failpointTerms("walBeforeWrite"), "1*drop");
    assert.equal(failpointTerms("walAfterSync"), "print");
    clearAllFailpoints();
    // one bad entry sets none of them
    assert.throws(
      () =>
        loadFailpointsFromEnv({ ETCD_TS_FAILPOINTS: "walBeforeWrite=drop;walBeforePurge=drop" }),
      FailpointUnsupportedError,
    );
    assert.equal(failpointTerms("walBeforeWrite"), "");
  });

  test("panic exits at once by SIGKILL, after its hooks, saying which point", () => {
    const script = `
      import { setFailpoint, failpoint, onFailpointPanic } from ${JSON.stringify(indexUrl)};
      onFailpointPanic((name) => process.stdout.write("hook " + name + "\\n"));
      process.on("exit", () => process.stdout.write("exit handler ran\\n"));
      setFailpoint("walBeforeSync", "1*off->panic");
      failpoint("walBeforeSync");
      process.stdout.write("first pass survived\\n");
      failpoint("walBeforeSync");
      process.stdout.write("second pass survived\\n");
    `;
    const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], {
      encoding: "utf8",
      timeout: 15_000,
    });
    assert.equal(r.signal, "SIGKILL");
    assert.equal(r.stdout, "first pass survived\nhook walBeforeSync\n");
    assert.match(r.stderr, /failpoint panic: walBeforeSync/);
  });
});

describe("HTTP endpoint (gofail's interface under /debug/failpoints)", () => {
  const P = "/debug/failpoints";

  test("PUT sets after the answer, GET reads, count counts, DELETE unsets", () => {
    const put = serveFailpointHttp("PUT", `${P}/walBeforeWrite`, "2*drop");
    assert.equal(put.status, 204);
    assert.equal(failpointTerms("walBeforeWrite"), "", "not yet: applied after the answer");
    put.apply!();
    assert.equal(serveFailpointHttp("GET", `${P}/walBeforeWrite`, "").body, "2*drop\n");
    failpoint("walBeforeWrite");
    assert.equal(serveFailpointHttp("GET", `${P}/walBeforeWrite/count`, "").body, "1");
    const list = serveFailpointHttp("GET", P, "");
    assert.equal(list.status, 200);
    const lines = list.body.trimEnd().split("\n");
    assert.equal(lines.length, failpointNames().length);
    assert.ok(lines.includes("walBeforeWrite=2*drop"));
    assert.ok(lines.includes("walAfterSync="));
    assert.equal(serveFailpointHttp("DELETE", `${P}/walBeforeWrite`, "").status, 204);
    assert.equal(failpointTerms("walBeforeWrite"), "");
  });

  test("bad terms 400, unknown point 404, other methods 405; nothing changes", () => {
    const bad = serveFailpointHttp("PUT", `${P}/walBeforeWrite`, "explode");
    assert.equal(bad.status, 400);
    assert.match(bad.body, /^failed to PUT failpoint walBeforeWrite: failpoint: could not parse/);
    assert.equal(bad.apply, undefined);
    assert.equal(serveFailpointHttp("PUT", `${P}/walBeforePurge`, "drop").status, 400);
    assert.equal(serveFailpointHttp("PUT", `${P}/nope`, "panic").status, 404);
    assert.equal(serveFailpointHttp("GET", `${P}/nope/count`, "").status, 404);
    assert.equal(serveFailpointHttp("POST", `${P}/walBeforeWrite`, "panic").status, 405);
    assert.equal(serveFailpointHttp("DELETE", P, "").status, 405);
    assert.equal(failpointTerms("walBeforeWrite"), "");
  });
});
