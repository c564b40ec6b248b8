import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { DataDirLockedError, lockDataDir } from "../../lib/wal/index.js";
import { tempDataDir } from "./harness.js";

const walIndexUrl = new URL("../../lib/wal/index.js", import.meta.url).href;

/** Tries lockDataDir(dir) in a separate `node` process; returns its error code or "OK". */
function lockFromChild(dir: string): string {
  const script = `
    import { lockDataDir } from ${JSON.stringify(walIndexUrl)};
    try { const l = lockDataDir(process.argv[1]); l.release(); console.log("OK"); }
    catch (e) { console.log(e.code ?? String(e)); if (!String(e.message).includes(process.argv[1])) console.log("NO-DIR-IN-MESSAGE"); }
  `;
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", script, dir], {
    encoding: "utf8",
    timeout: 20_000,
  });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
}

describe("lockDataDir", () => {
  test("a second process cannot lock the data dir while the first holds it, and can after release", () => {
    const t = tempDataDir();
    try {
      const lock = lockDataDir(t.dataDir);
      try {
        assert.equal(lockFromChild(t.dataDir), "DATA_DIR_LOCKED");
      } finally {
        lock.release();
      }
      assert.equal(lockFromChild(t.dataDir), "OK");
    } finally {
      t.cleanup();
    }
  });

  test("a second lock in the same process fails too (flock is per open file description) and names the dir", () => {
    const t = tempDataDir();
    try {
      const lock = lockDataDir(t.dataDir);
      assert.throws(
        () => lockDataDir(t.dataDir),
        (err: unknown) =>
          err instanceof DataDirLockedError &&
          err.dir === t.dataDir &&
          err.message.includes(t.dataDir),
      );
      lock.release();
      lock.release(); // idempotent
      lockDataDir(t.dataDir).release();
    } finally {
      t.cleanup();
    }
  });

  test("the lock is created for a data dir that does not exist yet", () => {
    const t = tempDataDir();
    try {
      const l = lockDataDir(`${t.dataDir}/fresh/data.etcd`);
      l.release();
    } finally {
      t.cleanup();
    }
  });
});
