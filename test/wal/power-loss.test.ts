/**
 * Simulated power loss (lib/wal/power-loss.ts, issue 16): a child process writes a WAL with the
 * test mode on and dies by SIGKILL. Bytes it never fdatasynced are gone, synced ones never are;
 * without the mode the kernel keeps the unsynced ones (the control). Torn syncs write a seeded
 * choice of the pending pages before a failpoint panic, and the WAL still opens with every
 * acknowledged entry.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { WAL } from "../../lib/wal/index.js";
import { prng, runSeed, tempDataDir } from "./harness.js";

const walUrl = new URL("../../lib/wal/index.js", import.meta.url).href;
const failpointUrl = new URL("../../lib/failpoint/index.js", import.meta.url).href;

interface ChildResult {
  /** highest index whose save resolved (synced) */
  acked: number;
  lines: string[];
  stderr: string;
  signal: NodeJS.Signals | null;
}

/** Runs `body` (module code with `wal`, `save(n, sync)` and `ack(i)` in scope) in a child. */
function runChild(args: {
  walDir: string;
  simulate: boolean;
  torn?: "prefix" | "reorder";
  seed?: number;
  failpoints?: string;
  body: string;
  killAfterMs?: number;
}): Promise<ChildResult> {
  const script = `
    import { WAL, simulatePowerLoss } from ${JSON.stringify(walUrl)};
    import { loadFailpointsFromEnv } from ${JSON.stringify(failpointUrl)};
    loadFailpointsFromEnv();
    if (${args.simulate}) simulatePowerLoss({ tornSync: ${JSON.stringify(args.torn ?? "none")}, seed: ${args.seed ?? 0} });
    const wal = await WAL.create(${JSON.stringify(args.walDir)}, Buffer.from("meta"), { syncWriteMaxEntries: 0 });
    let last = 0;
    const say = (s) => process.stdout.write(s + "\\n");
    const save = async (n, bytes = 300) => {
      const es = [];
      for (let i = 0; i < n; i++) { last++; es.push({ type: 0, term: 1, index: last, data: Buffer.alloc(bytes, last & 0xff) }); }
      const upTo = last;
      await wal.save({ term: 1, vote: 1n, commit: 0 }, es);
      say("ack " + upTo);
    };
    say("ready");
    ${args.body}
  `;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--input-type=module", "-e", script], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, ETCD_TS_FAILPOINTS: args.failpoints ?? "" },
    });
    let out = "";
    let stderr = "";
    const guard = setTimeout(() => child.kill("SIGKILL"), 20_000);
    let killer: NodeJS.Timeout | undefined;
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      // the kill is timed from the WAL's creation, not from the process's start
      if (killer === undefined && args.killAfterMs !== undefined && out.includes("ready\n")) {
        killer = setTimeout(() => child.kill("SIGKILL"), args.killAfterMs);
      }
    });
    child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (_code, signal) => {
      clearTimeout(guard);
      clearTimeout(killer);
      const lines = out.split("\n").filter((l) => l !== "" && l !== "ready");
      let acked = 0;
      for (const l of lines) if (l.startsWith("ack ")) acked = Number(l.slice(4));
      resolve({ acked, lines, stderr, signal });
    });
  });
}

test("a commit-only hardState (written, never synced) is lost at kill -9 under power loss, kept without", async (t) => {
  const body = `
    await save(5);
    await wal.save({ term: 1, vote: 1n, commit: 5 }, []);  // raft.MustSync is false: no fdatasync
    say("commit written");
    process.kill(process.pid, "SIGKILL");
  `;
  for (const simulate of [true, false]) {
    const d = tempDataDir();
    t.after(d.cleanup);
    const r = await runChild({ walDir: d.walDir, simulate, body });
    assert.equal(r.signal, "SIGKILL");
    assert.deepEqual(r.lines, ["ack 5", "commit written"]);
    const w = await WAL.read(d.walDir);
    assert.deepEqual(
      w.entries.map((e) => e.index),
      [1, 2, 3, 4, 5],
      "synced entries are never lost",
    );
    assert.equal(w.hardState.commit, simulate ? 0 : 5, `simulate=${simulate}`);
  }
});

test("walBeforeSync=drop under power loss: the 'acknowledged' entries were never synced and are gone", async (t) => {
  const d = tempDataDir();
  t.after(d.cleanup);
  const r = await runChild({
    walDir: d.walDir,
    simulate: true,
    failpoints: "walBeforeSync=1*off->drop",
    body: `await save(2); await save(3); process.kill(process.pid, "SIGKILL");`,
  });
  assert.deepEqual(r.lines, ["ack 2", "ack 5"]);
  const w = await WAL.read(d.walDir);
  assert.deepEqual(
    w.entries.map((e) => e.index),
    [1, 2],
  );
});

test("kill -9 at seeded moments under power loss: every synced save survives, the WAL reopens", async () => {
  const seed = runSeed("wal power-loss kill");
  const rand = prng(seed);
  for (let round = 0; round < 4; round++) {
    const d = tempDataDir();
    try {
      // saves of 1-8 entries, a commit-only (unsynced) hardState after each
      const r = await runChild({
        walDir: d.walDir,
        simulate: true,
        killAfterMs: 20 + Math.floor(rand() * 300),
        body: `
          for (let i = 0; i < 100000; i++) {
            await save(1 + (i % 8));
            await wal.save({ term: 1, vote: 1n, commit: last }, []);
          }
        `,
      });
      assert.equal(r.signal, "SIGKILL", `seed ${seed} round ${round}`);
      const w = await WAL.open(d.walDir);
      const last = w.entries.at(-1)?.index ?? 0;
      assert.ok(last >= r.acked, `seed ${seed} round ${round}: acked ${r.acked}, found ${last}`);
      w.entries.forEach((e, i) => assert.equal(e.index, i + 1));
      await w.wal.close();
    } finally {
      d.cleanup();
    }
  }
});

for (const torn of ["prefix", "reorder"] as const) {
  test(`a torn sync (${torn}) before a failpoint panic: part of the batch reaches the file, the WAL opens with every acknowledged entry`, async () => {
    const seed = runSeed(`torn ${torn}`);
    const written = new Set<string>();
    for (let round = 0; round < 6; round++) {
      const d = tempDataDir();
      try {
        // the 4th sync panics: 3 saves acknowledged, the 4th (6 pages of entries) torn
        const r = await runChild({
          walDir: d.walDir,
          simulate: true,
          torn,
          seed: seed + round,
          failpoints: "walBeforeSync=3*off->panic",
          body: `await save(2); await save(2); await save(2); await save(8, 3000);`,
        });
        assert.equal(r.signal, "SIGKILL");
        assert.equal(r.acked, 6);
        const m =
          /torn sync \(\w+\) wrote (\d+) of (\d+) dirty pages of fd \d+: \[([\d, ]*)\]/.exec(
            r.stderr,
          );
        assert.ok(m !== null, r.stderr);
        written.add(m[3]!);
        const w = await WAL.open(d.walDir);
        const indexes = w.entries.map((e) => e.index);
        assert.deepEqual(indexes.slice(0, 6), [1, 2, 3, 4, 5, 6], `seed ${seed + round}`);
        indexes.forEach((x, i) => assert.equal(x, i + 1));
        for (const e of w.entries) assert.ok(e.data.every((b) => b === (e.index & 0xff)));
        await w.wal.close();
      } finally {
        d.cleanup();
      }
    }
    assert.ok(written.size > 1, `seeds chose different pages: ${[...written].join(" | ")}`);
  });
}
