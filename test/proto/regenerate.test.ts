// `npm run proto` must reproduce the committed generated code exactly (STYLE §5: generated code is
// committed and never edited by hand). Regenerates into a temporary copy and compares every file.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  cpSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  mkdirSync,
} from "node:fs";
import { spawnSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const repo = join(fileURLToPath(new URL(".", import.meta.url)), "..", "..", "..");
const hasProtoc = spawnSync("protoc", ["--version"]).status === 0;

function files(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) files(p, out);
    else out.push(p);
  }
  return out;
}

test(
  "lib/proto/generate.sh reproduces lib/proto/gen byte for byte",
  {
    skip: hasProtoc ? false : "protoc not installed (apt-get install -y protobuf-compiler)",
    timeout: 60_000,
  },
  () => {
    const tmp = mkdtempSync(join(tmpdir(), "etcd-ts-proto-"));
    try {
      const protoDir = join(tmp, "lib", "proto");
      mkdirSync(protoDir, { recursive: true });
      cpSync(join(repo, "lib", "proto", "src"), join(protoDir, "src"), { recursive: true });
      cpSync(join(repo, "lib", "proto", "generate.sh"), join(protoDir, "generate.sh"));
      symlinkSync(join(repo, "node_modules"), join(tmp, "node_modules"));
      const r = spawnSync("bash", [join(protoDir, "generate.sh")], { encoding: "utf8" });
      assert.equal(r.status, 0, r.stderr);
      const committed = join(repo, "lib", "proto", "gen");
      const fresh = join(protoDir, "gen");
      const a = files(committed).map((f) => relative(committed, f));
      const b = files(fresh).map((f) => relative(fresh, f));
      assert.deepEqual(b, a, "generated file list differs");
      for (const f of a) {
        assert.ok(
          readFileSync(join(fresh, f)).equals(readFileSync(join(committed, f))),
          `${f} differs: run npm run proto`,
        );
      }
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  },
);
