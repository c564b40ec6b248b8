/**
 * A child process appends to a WAL (small segments, several saves in flight, so cuts and the
 * pipeline's .tmp files are live) and reports every save that resolved; it is SIGKILLed at a
 * seeded random moment. After each kill the WAL must open, hold every acknowledged entry, and
 * take more appends. Several rounds run on the same WAL.
 */
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { WAL } from "../../lib/wal/index.js";
import { prng, runSeed, tempDataDir } from "./harness.js";

const walIndexUrl = new URL("../../lib/wal/index.js", import.meta.url).href;

const childScript = `
import { WAL } from ${JSON.stringify(walIndexUrl)};
const [walDir, create] = process.argv.slice(1);
const opts = { segmentSizeBytes: 4096 };
let wal, last = 0, term = 1;
if (create === "1") wal = await WAL.create(walDir, Buffer.from("crash-meta"), opts);
else { const r = await WAL.open(walDir, opts); wal = r.wal; last = r.entries.length ? r.entries.at(-1).index : 0; term = r.hardState.term + 1; }
process.stdout.write("ready " + last + "\\n");
const inflight = new Set();
for (;;) {
  while (inflight.size < 4) {
    const n = 1 + (last % 7);
    const es = [];
    for (let i = 0; i < n; i++) { last++; es.push({ type: 0, term, index: last, data: Buffer.alloc(40 + (last % 200), last & 0xff) }); }
    const upTo = last;
    const p = wal.save({ term, vote: 1n, commit: upTo }, es).then(() => { process.stdout.write("ack " + upTo + "\\n"); inflight.delete(p); });
    inflight.add(p);
  }
  await Promise.race(inflight);
}
`;

function runChild(
  walDir: string,
  create: boolean,
  killAfterMs: number,
): Promise<{ acked: number; startLast: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ["--input-type=module", "-e", childScript, walDir, create ? "1" : "0"],
      {
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let out = "";
    let err = "";
    let acked = 0;
    let startLast = -1;
    let timer: NodeJS.Timeout | undefined;
    const guard = setTimeout(() => child.kill("SIGKILL"), 20_000);
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      let nl;
      while ((nl = out.indexOf("\n")) >= 0) {
        const line = out.slice(0, nl);
        out = out.slice(nl + 1);
        if (line.startsWith("ready ")) {
          startLast = Number(line.slice(6));
          timer = setTimeout(() => child.kill("SIGKILL"), killAfterMs);
        } else if (line.startsWith("ack ")) acked = Math.max(acked, Number(line.slice(4)));
      }
    });
    child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
    child.on("exit", (code, signal) => {
      clearTimeout(guard);
      if (timer) clearTimeout(timer);
      if (signal !== "SIGKILL") reject(new Error(`child exited ${code}/${signal}: ${err}`));
      else if (startLast < 0) reject(new Error(`child never became ready: ${err}`));
      else resolve({ acked, startLast });
    });
  });
}

describe("kill -9 while appending", () => {
  test("every acknowledged entry survives SIGKILL at random moments, round after round", async () => {
    const seed = runSeed("wal crash");
    const rnd = prng(seed);
    const t = tempDataDir("wal-crash-");
    try {
      let everAcked = 0;
      for (let round = 0; round < 6; round++) {
        const killAfterMs = 20 + Math.floor(rnd() * 250);
        const { acked, startLast } = await runChild(t.walDir, round === 0, killAfterMs);
        assert.ok(
          startLast >= everAcked,
          `round ${round}: child reopened at ${startLast}, below acknowledged ${everAcked} (seed ${seed})`,
        );
        everAcked = Math.max(everAcked, acked);
        const r = await WAL.open(t.walDir, { segmentSizeBytes: 4096 });
        const idx = r.entries.map((e) => e.index);
        assert.ok(
          idx.length >= everAcked,
          `round ${round}: ${idx.length} entries < acknowledged ${everAcked} (seed ${seed})`,
        );
        idx.forEach((v, i) =>
          assert.equal(v, i + 1, `round ${round}: entries contiguous from 1 (seed ${seed})`),
        );
        for (const e of r.entries) {
          assert.equal(e.data.length, 40 + (e.index % 200));
          assert.ok(
            e.data.every((b) => b === (e.index & 0xff)),
            `entry ${e.index} data intact (seed ${seed})`,
          );
        }
        console.log(
          `# round ${round}: killed after ${killAfterMs} ms, acknowledged ${acked}, on disk ${idx.length}`,
        );
        await r.wal.close();
      }
      assert.ok(everAcked > 0, "the child acknowledged something");
    } finally {
      t.cleanup();
    }
  });
});
