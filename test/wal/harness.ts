/** Shared helpers for the lib/wal tests: temp dirs, record listings, seeds, capturing loggers. */
import { mkdtempSync, rmSync, cpSync } from "node:fs";
import { open } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Entry, HardState } from "../../lib/proto/gen/raftpb/raft.js";
import { SegmentDecoder, type RawRecord } from "../../lib/wal/decoder.js";

/** The seed for this run: $SEED when set, else from the clock. Printed so a failure can be replayed. */
export function runSeed(label: string): number {
  const seed = process.env.SEED !== undefined ? Number(process.env.SEED) : Date.now() % 2 ** 31;
  console.log(`# ${label}: SEED=${seed}`);
  return seed;
}

/** A fresh temp data dir; returns it and its `member/wal` path. */
export function tempDataDir(prefix = "wal-test-"): {
  dataDir: string;
  walDir: string;
  cleanup(): void;
} {
  const dataDir = mkdtempSync(join(tmpdir(), prefix));
  return {
    dataDir,
    walDir: join(dataDir, "member", "wal"),
    cleanup: () => rmSync(dataDir, { recursive: true, force: true }),
  };
}

/** Copies a WAL dir to a fresh temp dir (so a test can damage the copy). */
export function copyWalDir(walDir: string): { walDir: string; cleanup(): void } {
  const t = tempDataDir("wal-copy-");
  cpSync(walDir, t.walDir, { recursive: true });
  return { walDir: t.walDir, cleanup: t.cleanup };
}

/** Every record of one segment with its offset and frame size, chaining crc records as WAL.open does. */
export async function listRecords(
  path: string,
): Promise<
  Array<{ type: number; crc: number; data: Buffer; offsetBytes: number; endBytes: number }>
> {
  const fh = await open(path, "r");
  try {
    const dec = new SegmentDecoder(fh, true);
    const out = [];
    for (;;) {
      const o = await dec.next();
      if (o.kind !== "record") {
        if (o.kind !== "eof")
          throw new Error(`listRecords: ${o.kind} at ${o.offsetBytes}: ${o.reason}`);
        return out;
      }
      const r: RawRecord = o.record;
      if (r.type === 4) dec.crc = r.crc;
      out.push({
        type: r.type,
        crc: r.crc,
        data: Buffer.from(r.data),
        offsetBytes: r.offsetBytes,
        endBytes: dec.lastValidOffsetBytes,
      });
    }
  } finally {
    await fh.close();
  }
}

/** A logger that keeps what it was told. */
export function captureLogger(): {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  lines: Array<{ level: string; obj: object; msg: string }>;
} {
  const lines: Array<{ level: string; obj: object; msg: string }> = [];
  return {
    lines,
    info: (obj, msg) => lines.push({ level: "info", obj, msg: msg ?? "" }),
    warn: (obj, msg) => lines.push({ level: "warn", obj, msg: msg ?? "" }),
  };
}

/** A deterministic xorshift PRNG. */
export function prng(seed: number): () => number {
  let x = seed | 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

/** An entry with `size` bytes of non-zero data derived from its index. */
export function entry(index: number, term: number, size = 64): Entry {
  const data = new Uint8Array(size);
  for (let i = 0; i < size; i++) data[i] = ((index * 31 + i * 7) % 255) + 1;
  return { type: 0, term, index, data } as Entry;
}

export function hardState(term: number, vote: bigint, commit: number): HardState {
  return { term, vote, commit };
}

/** Entries as plain comparable objects. */
export function plain(
  es: Entry[],
): Array<{ type: number; term: number; index: number; data: string }> {
  return es.map((e) => ({
    type: e.type,
    term: e.term,
    index: e.index,
    data: Buffer.from(e.data).toString("hex"),
  }));
}
