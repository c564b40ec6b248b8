/**
 * lib/btree micro-benchmarks on a 1M-key tree of random 16-byte keys (issue 3, Performance).
 *
 *   npx tsc -p . && node --expose-gc dist/bench/btree.bench.js
 *
 * BTREE_BENCH_KEYS=<n> changes the key count (default 1,000,000). Memory per key is measured with
 * process.memoryUsage() after global.gc() when --expose-gc is given (else it is skipped).
 */
import { randomBytes } from "node:crypto";
import { bench, do_not_optimize, group, run, summary } from "mitata";
import { BTree } from "../lib/btree/index.js";

const keyCount = Number(process.env.BTREE_BENCH_KEYS ?? 1_000_000);
const keyBytes = 16;
const gc = (globalThis as { gc?: () => void }).gc;

function makeKeys(n: number): Buffer[] {
  const raw = randomBytes(n * keyBytes);
  const keys = new Array<Buffer>(n);
  // Buffer.from copies each key into Node's pooled slabs, as a server copying request keys would.
  for (let i = 0; i < n; i++) keys[i] = Buffer.from(raw.subarray(i * keyBytes, (i + 1) * keyBytes));
  return keys;
}

function heapUsedBytes(): number {
  gc?.();
  gc?.();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

function measureMemory(): void {
  if (gc === undefined) {
    console.log("memory: skipped (run node with --expose-gc)");
    return;
  }
  const before = heapUsedBytes();
  const keys = makeKeys(keyCount);
  const afterKeys = heapUsedBytes();
  const t = new BTree<number>();
  for (let i = 0; i < keys.length; i++) t.set(keys[i], i);
  const afterTree = heapUsedBytes();
  const perKeyKeys = (afterKeys - before) / keyCount;
  const perKeyTree = (afterTree - afterKeys) / keyCount;
  console.log(
    `memory for ${keyCount} keys of ${keyBytes} B (number values): ` +
      `keys ${perKeyKeys.toFixed(1)} B/key, tree nodes ${perKeyTree.toFixed(1)} B/key, ` +
      `total ${(perKeyKeys + perKeyTree).toFixed(1)} B/key`,
  );
  do_not_optimize(t);
}

measureMemory();

const keys = makeKeys(keyCount);
const tree = new BTree<number>();
let t0 = performance.now();
for (let i = 0; i < keys.length; i++) tree.set(keys[i], i);
console.log(`build: ${keyCount} random inserts in ${(performance.now() - t0).toFixed(0)} ms`);
const sorted = keys.slice().sort(Buffer.compare);
t0 = performance.now();
const seq = new BTree<number>();
for (let i = 0; i < sorted.length; i++) seq.set(sorted[i], i);
console.log(`build: ${keyCount} ascending inserts in ${(performance.now() - t0).toFixed(0)} ms`);

const fresh = makeKeys(1 << 16);
const mask = (1 << 16) - 1;
let cursor = 0;
const nextKey = (): Buffer => keys[(cursor = (cursor + 7919) % keyCount)];

group(`btree, ${keyCount} keys of ${keyBytes} B`, () => {
  summary(() => {
    bench("get (hit)", () => do_not_optimize(tree.get(nextKey())));
    bench("get (miss)", () => do_not_optimize(tree.get(fresh[cursor++ & mask])));
    bench("set (replace existing)", () => do_not_optimize(tree.set(nextKey(), 1)));
    bench("set (new key) + delete it", () => {
      const k = fresh[cursor++ & mask];
      tree.set(k, 1);
      do_not_optimize(tree.delete(k));
    });
    bench("delete + set back (existing key)", () => {
      const k = nextKey();
      const v = tree.delete(k) as number;
      tree.set(k, v);
    });
    bench("ascend 100 from a random key", () => {
      let n = 0;
      tree.ascend(nextKey(), undefined, () => ++n < 100);
      do_not_optimize(n);
    });
    bench("descend 100 below a random key", () => {
      let n = 0;
      tree.descend(undefined, nextKey(), () => ++n < 100);
      do_not_optimize(n);
    });
    bench("entries() 100 from a random key", () => {
      let n = 0;
      for (const e of tree.entries({ gte: nextKey() })) {
        do_not_optimize(e);
        if (++n >= 100) break;
      }
    });
    bench("count of a 10k-key range", () => {
      const i = cursor++ % (keyCount - 10_000);
      do_not_optimize(tree.count(sorted[i], sorted[i + 10_000]));
    });
    bench("clone + one set on the clone", () => {
      const c = tree.clone();
      do_not_optimize(c.set(nextKey(), 2));
    });
    bench("clone + one set on the original", () => {
      do_not_optimize(tree.clone());
      do_not_optimize(tree.set(nextKey(), 3));
    });
  });
});

await run();
