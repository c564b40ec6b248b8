/**
 * The file writes of the WAL and of the snapshot writers (db file, .snap files), with a test mode
 * that simulates power loss (issue 16, `--experimental-simulate-power-loss`):
 *
 * - Off (production): `writeAt` / `datasync` are pwrite and fdatasync, nothing more (one boolean
 *   check per call).
 * - On: a write is kept inside the process, in order, until an fdatasync of its descriptor; the
 *   sync writes the kept bytes to the file and then fdatasyncs. A kill -9 then loses exactly the
 *   bytes a power cut would lose (those not yet synced) and never a synced one. Without power loss
 *   the kernel would keep them, so a process that exits by itself (process.exit, a signal
 *   handler, the end of the event loop) writes its kept bytes out first, unsynced.
 * - Torn syncs (as lazyfs's torn-seq / torn-op faults): with `tornSync` "prefix" or "reorder", a
 *   failpoint `panic` writes part of the kept bytes before the process dies: whole 4 KiB pages,
 *   either the first k in file order ("prefix") or k chosen in a seeded random order ("reorder"),
 *   k seeded too (0 to all).
 *
 * As lazyfs, only file data is cached: creating, renaming, truncating and removing files, and
 * directory fsyncs, reach the file system at once. Bytes kept for a descriptor that is closed
 * unsynced are written out at `releaseFd` (the kernel would have them); no writer here closes a
 * file with unsynced bytes except after a failed write. Kept bytes are bounded
 * (MAX_PENDING_BYTES): a write past the bound fails as a full disk would.
 */
import { fdatasync, fdatasyncSync, fstatSync, fsync, readSync, write, writeSync } from "node:fs";
import { onFailpointPanic, seededRandom } from "../failpoint/index.js";

/** The most bytes kept unsynced in the process at once in test mode (1 GiB). */
export const MAX_PENDING_BYTES = 1024 * 1024 * 1024;
/** Page size of torn syncs. */
export const PAGE_BYTES = 4096;

/** How a failpoint panic tears the kept bytes: not at all, a prefix of pages, or any pages. */
export type TornSync = "none" | "prefix" | "reorder";

/** Options of the power-loss test mode. */
export interface PowerLossOptions {
  tornSync: TornSync;
  /** Seeds which pages a torn sync writes. */
  seed: number;
}

interface Extent {
  position: number;
  bytes: Buffer;
}

interface PendingFile {
  /** The file's identity when first written through this descriptor (fd numbers are reused). */
  dev: number;
  ino: number;
  extents: Extent[];
}

let enabled = false;
let options: PowerLossOptions = { tornSync: "none", seed: 0 };
let pendingBytes = 0;
const pending = new Map<number, PendingFile>();

/** True when the power-loss test mode is on. */
export function powerLossSimulated(): boolean {
  return enabled;
}

/**
 * Turns the power-loss test mode on for this process (once, at start, before any file is
 * written). Registers the torn-sync hook with lib/failpoint's panic and an exit hook that writes
 * kept bytes out on a clean exit.
 */
export function simulatePowerLoss(opts: PowerLossOptions): void {
  if (enabled) return;
  enabled = true;
  options = { ...opts };
  onFailpointPanic(() => tearPending());
  process.on("exit", () => {
    for (const fd of [...pending.keys()]) flushSync(fd);
  });
}

function keep(fd: number, buf: Uint8Array, offset: number, length: number, position: number) {
  if (pendingBytes + length > MAX_PENDING_BYTES) {
    const err = new Error(
      `simulated power loss: more than ${MAX_PENDING_BYTES} unsynced bytes kept`,
    ) as NodeJS.ErrnoException;
    err.code = "ENOSPC";
    throw err;
  }
  let file = pending.get(fd);
  if (file === undefined) {
    const st = fstatSync(fd);
    file = { dev: st.dev, ino: st.ino, extents: [] };
    pending.set(fd, file);
  }
  file.extents.push({ position, bytes: Buffer.from(buf.subarray(offset, offset + length)) });
  pendingBytes += length;
}

/** Takes the kept extents of `fd` if it still names the file they were written to. */
function take(fd: number): Extent[] {
  const file = pending.get(fd);
  if (file === undefined) return [];
  pending.delete(fd);
  for (const e of file.extents) pendingBytes -= e.bytes.length;
  let st;
  try {
    st = fstatSync(fd);
  } catch {
    return [];
  }
  return st.dev === file.dev && st.ino === file.ino ? file.extents : [];
}

function writeAllSync(fd: number, buf: Uint8Array, offset: number, length: number, pos: number) {
  let done = 0;
  while (done < length) {
    const n = writeSync(fd, buf, offset + done, length - done, pos + done);
    if (n <= 0) throw new Error("write made no progress");
    done += n;
  }
}

function writeOnce(fd: number, buf: Uint8Array, offset: number, length: number, pos: number) {
  return new Promise<number>((resolve, reject) => {
    write(fd, buf, offset, length, pos, (err, n) => (err !== null ? reject(err) : resolve(n)));
  });
}

async function writeAll(fd: number, buf: Uint8Array, offset: number, length: number, pos: number) {
  let done = 0;
  while (done < length) {
    const n = await writeOnce(fd, buf, offset + done, length - done, pos + done);
    if (n <= 0) throw new Error("write made no progress");
    done += n;
  }
}

function flushSync(fd: number): void {
  for (const e of take(fd)) writeAllSync(fd, e.bytes, 0, e.bytes.length, e.position);
}

/**
 * Writes `buf[offset, offset + length)` at byte `position` of `fd`, all of it (short writes
 * looped). In test mode the bytes are kept until `datasync(fd)`. Throws what the write throws.
 */
export async function writeAt(
  fd: number,
  buf: Uint8Array,
  offset: number,
  length: number,
  position: number,
): Promise<void> {
  if (enabled) return keep(fd, buf, offset, length, position);
  return writeAll(fd, buf, offset, length, position);
}

/** writeAt with a blocking write. */
export function writeAtSync(
  fd: number,
  buf: Uint8Array,
  offset: number,
  length: number,
  position: number,
): void {
  if (enabled) keep(fd, buf, offset, length, position);
  else writeAllSync(fd, buf, offset, length, position);
}

/**
 * fdatasync of `fd` (fsync with `full`: a file the caller renames into place afterwards, as etcd's
 * fileutil.Fsync); in test mode the kept bytes of `fd` are written first.
 */
export async function datasync(fd: number, opts?: { full?: boolean }): Promise<void> {
  if (enabled) {
    for (const e of take(fd)) await writeAll(fd, e.bytes, 0, e.bytes.length, e.position);
  }
  const sync = opts?.full === true ? fsync : fdatasync;
  await new Promise<void>((resolve, reject) =>
    sync(fd, (err) => (err !== null ? reject(err) : resolve())),
  );
}

/** datasync with blocking calls. */
export function datasyncSync(fd: number): void {
  if (enabled) flushSync(fd);
  fdatasyncSync(fd);
}

/**
 * Call before closing `fd` without a sync: in test mode its kept bytes are written out, unsynced
 * (the kernel would have them after close). A no-op otherwise.
 */
export function releaseFd(fd: number): void {
  if (enabled && pending.has(fd)) flushSync(fd);
}

/** Bytes kept unsynced in the process now (0 when the test mode is off). */
export function pendingSyncBytes(): number {
  return pendingBytes;
}

/**
 * A torn sync (module comment): for every descriptor with kept bytes, writes a seeded choice of
 * its dirty pages, each page as the file holds it with the kept writes laid over it in order.
 * Runs just before a failpoint panic's SIGKILL; nothing is synced (the kernel keeps the pages).
 */
function tearPending(): void {
  if (options.tornSync === "none") return;
  const random = seededRandom(options.seed);
  for (const fd of [...pending.keys()]) {
    const extents = take(fd);
    const pages = new Map<number, Buffer>();
    // pages are written whole, but never past the end the file or a kept write reaches
    let endBytes = fstatSync(fd).size;
    for (const e of extents) endBytes = Math.max(endBytes, e.position + e.bytes.length);
    for (const e of extents) {
      const first = Math.floor(e.position / PAGE_BYTES);
      const last = Math.floor((e.position + e.bytes.length - 1) / PAGE_BYTES);
      for (let p = first; p <= last; p++) {
        if (!pages.has(p)) {
          const page = Buffer.alloc(PAGE_BYTES);
          readSync(fd, page, 0, PAGE_BYTES, p * PAGE_BYTES);
          pages.set(p, page);
        }
      }
    }
    for (const e of extents) {
      for (let i = 0; i < e.bytes.length;) {
        const at = e.position + i;
        const p = Math.floor(at / PAGE_BYTES);
        const inPage = at - p * PAGE_BYTES;
        const n = Math.min(PAGE_BYTES - inPage, e.bytes.length - i);
        e.bytes.copy(pages.get(p)!, inPage, i, i + n);
        i += n;
      }
    }
    let order = [...pages.keys()].sort((a, b) => a - b);
    if (options.tornSync === "reorder") {
      for (let i = order.length - 1; i > 0; i--) {
        const j = Math.floor(random() * (i + 1));
        [order[i], order[j]] = [order[j]!, order[i]!];
      }
    }
    order = order.slice(0, Math.floor(random() * (order.length + 1)));
    for (const p of order) {
      const n = Math.min(PAGE_BYTES, endBytes - p * PAGE_BYTES);
      writeAllSync(fd, pages.get(p)!, 0, n, p * PAGE_BYTES);
    }
    writeSync(
      2,
      `simulated power loss: torn sync (${options.tornSync}) wrote ${order.length} of ${pages.size} ` +
        `dirty pages of fd ${fd}: [${order.join(", ")}]\n`,
    );
  }
}
