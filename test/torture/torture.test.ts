/**
 * `etcd-ts-util torture` (issue 16), run as users run it (the built CLI, spawned), short:
 * - 1 member with simulated power loss, kills, torn syncs, failpoints and pauses: passes, with
 *   report.txt / report.json / timeline.svg / history.json;
 * - 3 members with kills, pauses (SIGSTOP/SIGCONT) and partitions (the tool's peer proxies), the
 *   clients spread over the members: passes (issue 14's linearizability check under faults);
 * - a member whose disk lies about fdatasync (walBeforeSync=drop) fails the run, and the report
 *   names the seed and the replay command;
 * - `torture check` replays the checks; a tampered history (a stale read, a dropped watch event)
 *   fails with the smallest failing sub-history;
 * - real etcd 3.4 (--server-command /usr/bin/etcd) with kills, pauses and restarts passes (its
 *   known bug etcd-io/etcd#15220 reported as known);
 * - --endpoints runs the workload and checks against a server the tool does not control.
 * Seeds come from SEED (printed), so a failure replays.
 */
import { test, describe, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, cpSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startMember, testSeed } from "../helpers/server.js";
import { parseTortureArgs } from "../../tools/torture/options.js";
import { UtilUsageError } from "../../tools/util/errors.js";
import { RESTART_READ_CLIENT } from "../../tools/torture/checks.js";
import { identifyServer, knownIssuesOf } from "../../tools/torture/known-issues.js";

const util = new URL("../../tools/etcd-ts-util.js", import.meta.url).pathname;
const seed = testSeed();
const base = mkdtempSync(join(tmpdir(), "torture-test-"));
after(() => {
  if (!process.env.KEEP_TEST_DIRS) rmSync(base, { recursive: true, force: true });
});

/** Runs etcd-ts-util with `args`; bounded by `timeoutMs`. */
function runUtil(
  args: string[],
  timeoutMs = 120_000,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [util, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

interface ReportJson {
  verdict: string;
  run: {
    faults: Array<{ kind: string; outcome?: string }>;
    faultCounts: Record<string, number>;
    operations: { ok: number };
    callsByMember: Record<string, number>;
  };
  checks: { checks: Array<{ name: string; verdict: string; details: string[] }> };
}

function reportOf(dir: string): ReportJson {
  return JSON.parse(readFileSync(join(dir, "report.json"), "utf8")) as ReportJson;
}

describe("etcd-ts-util torture", { timeout: 300_000 }, () => {
  const powerLossDir = join(base, "power-loss");

  test("1 member with power loss, kills, torn syncs, failpoints and pauses passes", async () => {
    const r = await runUtil([
      "torture",
      "--members",
      "1",
      "--duration",
      "10s",
      "--seed",
      String(seed),
      "--power-loss",
      "--fault-interval",
      "1500ms",
      "--out",
      powerLossDir,
      "--quiet",
    ]);
    assert.equal(r.code, 0, `seed ${seed}\n${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /^etcd-ts torture: PASS {3}seed \d+/);
    for (const f of ["report.txt", "report.json", "timeline.svg", "history.json"]) {
      assert.ok(existsSync(join(powerLossDir, f)), f);
    }
    const rep = reportOf(powerLossDir);
    assert.equal(rep.verdict, "pass");
    assert.ok(rep.run.faults.length >= 1, "faults were injected");
    assert.ok(rep.run.operations.ok > 50, "the workload ran");
    assert.deepEqual(
      rep.checks.checks.map((c) => [c.name, c.verdict]),
      [
        ["linearizability", "pass"],
        ["watches", "pass"],
        ["acknowledged-writes", "pass"],
        ["leases", "pass"],
        ["hashkv", "pass"],
        ["recovery", "pass"],
      ],
    );
    assert.match(readFileSync(join(powerLossDir, "timeline.svg"), "utf8"), /^<svg [^>]*>/);
  });

  test("3 members with kills, pauses and partitions pass: linearizable, nothing acknowledged lost, HashKV equal", async () => {
    const out = join(base, "cluster");
    const r = await runUtil(
      [
        "torture",
        "--members",
        "3",
        "--duration",
        "16s",
        "--seed",
        String(seed),
        "--faults",
        "kill,pause,partition",
        "--fault-interval",
        "1s",
        "--clients",
        "6",
        "--rate",
        "200",
        "--out",
        out,
        "--quiet",
      ],
      150_000,
    );
    assert.equal(r.code, 0, `seed ${seed} (replay: SEED=${seed})\n${r.stdout}\n${r.stderr}`);
    const rep = reportOf(out);
    assert.equal(rep.verdict, "pass");
    // the kinds come in seeded rounds, so the first three faults are one of each
    for (const kind of ["kill", "pause", "partition"])
      assert.ok((rep.run.faultCounts[kind] ?? 0) >= 1, `seed ${seed}: no ${kind} injected`);
    for (const m of ["m1", "m2", "m3"])
      assert.ok((rep.run.callsByMember[m] ?? 0) > 0, `seed ${seed}: no call answered by ${m}`);
    assert.deepEqual(
      rep.checks.checks.filter((c) => c.verdict !== "pass").map((c) => c.name),
      [],
    );
  });

  test("torture check replays the checks; a stale read or a dropped watch event fails", async () => {
    const again = await runUtil(["torture", "check", "--out", powerLossDir]);
    assert.equal(again.code, 0, again.stdout);
    assert.match(again.stdout, /: PASS\n/);

    // a read after the final restart that returns a value no one wrote at its revision
    const history = JSON.parse(readFileSync(join(powerLossDir, "history.json"), "utf8"));
    const stale = join(base, "stale");
    cpSync(powerLossDir, stale, { recursive: true, filter: (p) => !p.includes("/data") });
    const read = history.operations.find(
      (op: { clientId: number; output?: { kv: unknown } }) =>
        op.clientId === RESTART_READ_CLIENT && op.output?.kv,
    );
    assert.ok(read !== undefined, "a final read found a key");
    read.output.kv.value = "never-written";
    writeFileSync(join(stale, "history.json"), JSON.stringify(history));
    const bad = await runUtil(["torture", "check", "--out", stale]);
    assert.equal(bad.code, 2, bad.stdout);
    assert.match(bad.stdout, /\[FAIL\] linearizability: .*smallest failing sub-history/);
    assert.match(bad.stdout, /never-written/);
    assert.match(bad.stdout, /\[FAIL\] acknowledged-writes/);

    // a watch event that never arrived
    const h2 = JSON.parse(readFileSync(join(powerLossDir, "history.json"), "utf8"));
    const dropped = join(base, "dropped");
    cpSync(stale, dropped, { recursive: true });
    const withEvents = h2.watches.find((w: { responses: Array<{ events: unknown[] }> }) =>
      w.responses.some((res) => res.events.length > 1),
    );
    assert.ok(withEvents !== undefined);
    const res = withEvents.responses.find((x: { events: unknown[] }) => x.events.length > 1);
    res.events.splice(0, 1);
    writeFileSync(join(dropped, "history.json"), JSON.stringify(h2));
    const bad2 = await runUtil(["torture", "check", "--out", dropped]);
    assert.equal(bad2.code, 2, bad2.stdout);
    assert.match(bad2.stdout, /\[FAIL\] watches: .*\n.*(reliable|atomic)/);
  });

  test("a member whose disk lies about fdatasync fails the run, naming the seed and the replay", async () => {
    const out = join(base, "lying-disk");
    const r = await runUtil([
      "torture",
      "--duration",
      "6s",
      "--seed",
      String(seed),
      "--power-loss",
      "--faults",
      "kill",
      "--member-failpoints",
      "walBeforeSync=drop",
      // its WAL loses even the bootstrap: its restart is refused (or finds a .snap with no WAL record)
      "--start-timeout",
      "8s",
      "--out",
      out,
      "--quiet",
    ]);
    assert.equal(r.code, 2, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, new RegExp(`^etcd-ts torture: FAIL {3}seed ${seed}`));
    assert.match(r.stdout, /\[FAIL\] (acknowledged-writes|recovery|linearizability)/);
    assert.match(r.stdout, /replay:\n {2}etcd-ts-util torture .*--seed \d+ .*--member-failpoints/);
    assert.match(r.stdout, /etcd-ts-util torture check --out /);
    assert.equal(reportOf(out).verdict, "fail");
  });

  test("real etcd 3.4 (--server-command) with kills, pauses and restarts passes", async () => {
    const out = join(base, "etcd");
    const r = await runUtil([
      "torture",
      "--duration",
      "8s",
      "--seed",
      String(seed),
      "--server-command",
      "/usr/bin/etcd",
      "--fault-interval",
      "1500ms",
      "--out",
      out,
      "--quiet",
    ]);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(
      readFileSync(join(out, "m1.log"), "utf8"),
      /etcd Version: 3\.4|"etcd-version":"3\.4/,
    );
    assert.ok(reportOf(out).run.faults.length >= 1);
    // etcd 3.4.23 (Debian's) sometimes sends a requested progress notification before the events
    // it covers (etcd-io/etcd#15220, fixed in 3.4.24): the run says so and still passes
    const watches = /^\[(PASS|KNOWN)\] watches: (.*)$/m.exec(r.stdout);
    assert.ok(watches, r.stdout);
    if (watches[1] === "KNOWN") assert.match(watches[2]!, /etcd-io\/etcd#15220/);
    const etcd = await identifyServer({ cmd: "/usr/bin/etcd", args: [], etcdTs: false });
    if (knownIssuesOf(etcd).length > 0)
      assert.match(r.stdout, /note: etcd \S+ has etcd-io\/etcd#15220 /);
  });

  test("--endpoints: the workload and checks against a server the tool does not control", async () => {
    const member = await startMember();
    try {
      const out = join(base, "endpoints");
      const r = await runUtil([
        "torture",
        "--duration",
        "4s",
        "--seed",
        String(seed),
        "--endpoints",
        member.hostPort,
        "--out",
        out,
        "--quiet",
      ]);
      assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
      assert.match(r.stdout, /note: --endpoints: the tool does not control these servers/);
      assert.equal(reportOf(out).run.faults.length, 0);
      // a second run with the same seed refuses: its keys are there already
      const again = await runUtil([
        "torture",
        "--duration",
        "1s",
        "--seed",
        String(seed),
        "--endpoints",
        member.hostPort,
        "--out",
        join(base, "endpoints2"),
        "--quiet",
      ]);
      assert.equal(again.code, 1);
      assert.match(again.stderr, /already holds \d+ keys: use another --seed/);
    } finally {
      await member.close();
    }
  });
});

test("torture flags: members 1|3|5, known faults, power loss only on members the tool starts", () => {
  assert.equal(parseTortureArgs(["--members", "3", "--seed", "9"]).members, 3);
  assert.equal(parseTortureArgs(["--seed", "9"]).outDir, "torture-9");
  assert.equal(parseTortureArgs(["--duration", "2m"]).durationMs, 120_000);
  assert.throws(() => parseTortureArgs(["--members", "2"]), UtilUsageError);
  assert.throws(() => parseTortureArgs(["--faults", "meteor"]), /unknown fault meteor/);
  assert.throws(
    () => parseTortureArgs(["--power-loss", "--endpoints", "127.0.0.1:2379"]),
    /--power-loss needs members the tool starts/,
  );
  assert.throws(() => parseTortureArgs(["--bogus"]), /unknown flag --bogus/);
  assert.deepEqual(parseTortureArgs(["--faults", "none"]).faults, []);
  assert.deepEqual(parseTortureArgs(["--members", "3", "--faults", "partition"]).faults, [
    "partition",
  ]);
  assert.throws(
    () => parseTortureArgs(["--faults", "partition"]),
    /--faults partition needs several members the tool starts/,
  );
});
