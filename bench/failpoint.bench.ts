/**
 * lib/failpoint micro-benchmark (issue 16: "unset, they cost nothing measurable"): 1000 passes of
 * a small loop body without a failpoint, with an unset failpoint (nothing set anywhere: the
 * production path), and with the point unset while another one is set (a map lookup per pass).
 *
 *   npx tsc -p . && node dist/bench/failpoint.bench.js
 */
import { bench, do_not_optimize, group, run, summary } from "mitata";
import { clearAllFailpoints, failpoint, setFailpoint } from "../lib/failpoint/index.js";

const passes = 1000;

function withoutPoint(seed: number): number {
  let x = seed;
  for (let i = 0; i < passes; i++) x = (Math.imul(x, 31) + i) | 0;
  return x;
}

function withPoint(seed: number): number {
  let x = seed;
  for (let i = 0; i < passes; i++) {
    if (failpoint("walBeforeWrite")) x++;
    x = (Math.imul(x, 31) + i) | 0;
  }
  return x;
}

let seed = 1;
group(`${passes} passes of a loop body`, () => {
  summary(() => {
    bench("no failpoint", () => do_not_optimize(withoutPoint(seed++)));
    bench("failpoint, nothing set (production)", () => do_not_optimize(withPoint(seed++)));
  });
});

await run();

setFailpoint("walAfterSync", "off");
group(`${passes} passes, another point set`, () => {
  bench("failpoint unset, walAfterSync set", () => do_not_optimize(withPoint(seed++)));
});
await run();
clearAllFailpoints();
