/** Runs every data-driven scenario in test/raft/testdata/*.txt (see script.ts for the language). */
import { test, describe } from "node:test";
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { runScript } from "./script.js";

// Compiled to dist/test/raft; the scripts stay in the source tree.
const dir = fileURLToPath(new URL("../../../test/raft/testdata/", import.meta.url));

describe("raft scenarios (testdata/*.txt)", () => {
  for (const f of readdirSync(dir)
    .filter((n) => n.endsWith(".txt"))
    .sort()) {
    const text = readFileSync(join(dir, f), "utf8");
    const goal =
      text
        .split("\n")
        .find((l) => l.startsWith("#"))
        ?.slice(1)
        .trim() ?? f;
    test(`${f}: ${goal}`, () => runScript(f, text));
  }
});
