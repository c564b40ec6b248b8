import { test } from "node:test";
import assert from "node:assert/strict";
import {
  closeSync,
  fstatSync,
  mkdtempSync,
  openSync,
  rmSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DbValueFile, releaseUnlinked } from "../../lib/server/value-file.js";

test("DbValueFile reads values at their positions; a failed read reports the error, then throws", () => {
  const dir = mkdtempSync(join(tmpdir(), "value-file-"));
  try {
    const path = join(dir, "db");
    writeFileSync(path, Buffer.from("0123456789abcdef"));
    const errors: Error[] = [];
    const fd = openSync(path, "r");
    const f = new DbValueFile(fd, path, (err) => errors.push(err));
    assert.equal(f.sizeBytes, 16);
    const out = Buffer.alloc(8, ".");
    f.read(out, 2, 4, 10);
    assert.equal(out.toString(), "..abcd..");
    // past the end: the member is told (it stops) and the read throws, never returns short
    assert.throws(
      () => f.read(out, 0, 8, 12),
      /value file .*db: read of 8 bytes at 12: the file ends first/,
    );
    assert.equal(errors.length, 1);
    // an I/O error (here EBADF: the descriptor is gone) the same way
    closeSync(fd);
    assert.throws(() => f.read(out, 0, 4, 0), /EBADF/);
    assert.equal(errors.length, 2);
    assert.match(errors[1]!.message, /EBADF/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("releaseUnlinked gives an unlinked file's blocks back in steps before closing it, and only closes a linked one", async () => {
  const dir = mkdtempSync(join(tmpdir(), "value-file-"));
  try {
    // 10 MiB: three ftruncate steps of 4 MiB
    const gone = join(dir, "old-db");
    writeFileSync(gone, Buffer.alloc(10 * 1024 * 1024, 1));
    // read-only, as a db file the member started from
    const fd = openSync(gone, "r");
    const witness = openSync(gone, "r");
    unlinkSync(gone);
    await releaseUnlinked(fd);
    assert.throws(() => fstatSync(fd), /EBADF/, "closed");
    assert.equal(fstatSync(witness).size, 0, "truncated before the close");
    closeSync(witness);

    const live = join(dir, "db");
    writeFileSync(live, Buffer.alloc(64 * 1024, 2));
    const fd2 = openSync(live, "r+");
    await releaseUnlinked(fd2);
    assert.throws(() => fstatSync(fd2), /EBADF/, "closed");
    assert.equal(statSync(live).size, 64 * 1024, "a file still linked keeps its bytes");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
