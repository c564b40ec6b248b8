/**
 * lib/wal micro-benchmarks (issue 3, Performance): WAL.save with 1/10/100/1000 entries of 256 B
 * per call (one write + one fdatasync each), next to a raw 4 KiB write + fdatasync on the same
 * filesystem, plus CRC-32C throughput, encode-only cost and WAL.open replay speed
 * (WAL_BENCH_REPLAY_ENTRIES, default 200,000).
 *
 *   npx tsc -p . && node dist/bench/wal.bench.js
 *
 * WAL_BENCH_DIR=<dir> picks the filesystem (default: a temp dir under the current directory, where
 * a data dir would normally live; /tmp may be tmpfs elsewhere, where fdatasync costs nothing).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { open } from "node:fs/promises";
import { join, resolve } from "node:path";
import { bench, do_not_optimize, group, run, summary } from "mitata";
import type { Entry } from "../lib/proto/gen/raftpb/raft.js";
import { WAL } from "../lib/wal/index.js";
import { crc32c, entrySize, FrameWriter, maxFrameSize } from "../lib/wal/encoder.js";

const ENTRY_BYTES = 256;
const BATCH_SIZES = [1, 10, 100, 1000];
const base = resolve(process.env.WAL_BENCH_DIR ?? ".");
const root = mkdtempSync(join(base, ".wal-bench-"));

function makeEntries(start: number, n: number, term: number): Entry[] {
  const out: Entry[] = [];
  for (let i = 0; i < n; i++) {
    const data = new Uint8Array(ENTRY_BYTES);
    for (let j = 0; j < ENTRY_BYTES; j += 8) data[j] = (start + i + j) & 0xff;
    out.push({ type: 0, term, index: start + i, data } as Entry);
  }
  return out;
}

/** Plain timed loop (entries/s, fsyncs/entry), printed alongside mitata's per-call figures. */
async function throughput(batch: number, seconds: number): Promise<void> {
  const dir = join(root, `tp-${batch}`, "member", "wal");
  const wal = await WAL.create(dir, Buffer.from("bench"));
  let index = 0;
  const t0 = performance.now();
  let calls = 0;
  while (performance.now() - t0 < seconds * 1000) {
    const es = makeEntries(index + 1, batch, 1);
    index += batch;
    await wal.save({ term: 1, vote: 1n, commit: index }, es);
    calls++;
  }
  const el = (performance.now() - t0) / 1000;
  console.log(
    `save ${String(batch).padStart(4)} x ${ENTRY_BYTES} B: ${(calls / el).toFixed(0).padStart(6)} saves/s, ` +
      `${(index / el).toFixed(0).padStart(8)} entries/s, ${(wal.stats.bytes / el / 1e6).toFixed(1).padStart(6)} MB/s, ` +
      `${(wal.stats.fsyncs / index).toFixed(4)} fsyncs/entry, last fsync ${(wal.stats.lastFsyncSeconds * 1e3).toFixed(3)} ms`,
  );
  await wal.close();
}

async function rawFsyncRate(seconds: number): Promise<void> {
  const fh = await open(join(root, "raw-rate"), "w+");
  await fh.truncate(64 * 1024 * 1024);
  const buf = Buffer.alloc(4096, 7);
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < seconds * 1000) {
    await fh.write(buf, 0, buf.length, (n % 16384) * 4096);
    await fh.datasync();
    n++;
  }
  const el = (performance.now() - t0) / 1000;
  console.log(
    `raw 4 KiB write + fdatasync: ${(n / el).toFixed(0)} /s (${((el / n) * 1e3).toFixed(3)} ms each)`,
  );
  await fh.close();
}

/** Restart cost: WAL.open replaying `n` entries of ENTRY_BYTES written in batches of 1000. */
async function replay(n: number): Promise<void> {
  const dir = join(root, "replay", "member", "wal");
  const wal = await WAL.create(dir, Buffer.from("bench"));
  let index = 0;
  while (index < n) {
    const es = makeEntries(index + 1, Math.min(1000, n - index), 1);
    index += es.length;
    await wal.save({ term: 1, vote: 1n, commit: index }, es);
  }
  await wal.close();
  const t0 = performance.now();
  const r = await WAL.open(dir);
  const el = (performance.now() - t0) / 1000;
  console.log(
    `WAL.open replay: ${r.entries.length} entries x ${ENTRY_BYTES} B in ${el.toFixed(2)} s ` +
      `(${(r.entries.length / el).toFixed(0)} entries/s)`,
  );
  await r.wal.close();
  rmSync(join(root, "replay"), { recursive: true, force: true });
}

console.log(`filesystem under test: ${root}`);
await rawFsyncRate(2);
for (const b of BATCH_SIZES) await throughput(b, 2);
await replay(Number(process.env.WAL_BENCH_REPLAY_ENTRIES ?? 200_000));

// mitata: per-call times.
const wals = new Map<number, { wal: WAL; index: number }>();
for (const b of BATCH_SIZES) {
  wals.set(b, {
    wal: await WAL.create(join(root, `m-${b}`, "member", "wal"), Buffer.from("bench")),
    index: 0,
  });
}
const batches = new Map(BATCH_SIZES.map((b) => [b, makeEntries(1, b, 1)]));
const rawFh = await open(join(root, "raw-mitata"), "w+");
await rawFh.truncate(64 * 1024 * 1024);
const rawBuf = Buffer.alloc(4096, 9);
let rawN = 0;

group("fsynced writes", () => {
  summary(() => {
    bench("raw 4 KiB write + fdatasync", async () => {
      await rawFh.write(rawBuf, 0, 4096, (rawN++ % 16384) * 4096);
      await rawFh.datasync();
    });
    for (const b of BATCH_SIZES) {
      bench(`WAL.save ${b} x ${ENTRY_BYTES} B`, async () => {
        const s = wals.get(b)!;
        // Reuse the entry objects with fresh indexes: the encoder, not allocation, is measured.
        const es = batches.get(b)!;
        for (const e of es) e.index = ++s.index;
        await s.wal.save({ term: 1, vote: 1n, commit: s.index }, es);
      });
    }
  });
});

const crcBuf = Buffer.alloc(1024 * 1024);
for (let i = 0; i < crcBuf.length; i++) crcBuf[i] = (i * 131) & 0xff;
const crcSmall = crcBuf.subarray(0, 300);
group("crc32c", () => {
  bench("crc32c 1 MiB", () => do_not_optimize(crc32c(crcBuf, 0)));
  bench("crc32c 300 B (one entry record)", () => do_not_optimize(crc32c(crcSmall, 0)));
});

const enc1000 = makeEntries(1, 1000, 1);
let encBytes = 0;
for (const e of enc1000) encBytes += maxFrameSize(entrySize(e));
const encBuf = Buffer.allocUnsafe(encBytes);
group("encode only (no I/O)", () => {
  bench("encode 1000 x 256 B entries into one buffer", () => {
    const fw = new FrameWriter(encBuf, 0, 0);
    for (const e of enc1000) fw.entry(e);
    do_not_optimize(fw.pos);
  });
});

const result = await run();
// Derived MB/s for crc32c from mitata's average.
for (const trial of result.benchmarks) {
  const name = trial.alias;
  if (!name.startsWith("crc32c 1 MiB")) continue;
  const avgNs = trial.runs[0]?.stats?.avg;
  if (avgNs !== undefined)
    console.log(`crc32c throughput: ${((1024 * 1024) / (avgNs / 1e9) / 1e6).toFixed(0)} MB/s`);
}

for (const { wal } of wals.values()) await wal.close();
await rawFh.close();
rmSync(root, { recursive: true, force: true });
