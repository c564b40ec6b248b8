/**
 * The Node.js flags etcd-ts is started with (`npm start`, the `etcd-ts` bin's shebang, the test
 * helpers, bench:compare and bench:profile). V8 cannot change them once the process runs
 * (v8.setFlagsFromString does not resize the young generation), so they belong on the command
 * line.
 *
 * --max-semi-space-size=32 (MiB; Node 20's default on 64-bit is 16): with 1000 clients putting,
 * every scavenge copies the state of every request in flight, and a larger young generation
 * scavenges half as often. Measured on the 2-core reference box: a fresh member started with
 * `node --trace-gc [flag] dist/tools/etcd-ts.js`, loaded by `etcd-ts-bench put --clients 1000
 * --conns 100 --duration 6s --key-space-size 100000 --val-size 256`, scavenge pause summed from
 * the trace over requests served: 10.7–18.7 µs per request at the default, 4.1–4.4 µs at 32 MiB;
 * 64 and 128 MiB gained nothing more and cost memory. The price is up to ~48 MiB more resident
 * memory under write load.
 */
export const serverNodeFlags: readonly string[] = ["--max-semi-space-size=32"];

/** True when the running process was started with a young-generation size of its own choosing. */
export function hasYoungGenerationFlag(
  execArgv: readonly string[] = process.execArgv,
  nodeOptions: string = process.env.NODE_OPTIONS ?? "",
): boolean {
  const set = (s: string) => /--max-semi-space-size|--max-semi-space|--semi-space-growth/.test(s);
  return execArgv.some(set) || set(nodeOptions);
}
