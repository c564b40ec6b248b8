/**
 * Runs a load in several worker processes (--procs N) to get more than one core of client CPU:
 * each worker runs one shard (runner.ts), reports "ready" after its set-up, and all start on one
 * "go" so their windows overlap; the parent merges their histograms (report.ts).
 *
 * IPC messages: parent→worker {type:"run", options, shard} then {type:"go"};
 * worker→parent {type:"ready"}, {type:"progress", done}, {type:"result", result} or {type:"error", message}.
 */
import { fork, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { WorkerError } from "./errors.js";
import type { LoadOptions } from "./options.js";
import type { Shard, ShardResult } from "./runner.js";

/** Longest a worker may take from spawn to "ready", ms. */
export const WORKER_READY_TIMEOUT_MS = 60_000;

/** Messages a worker sends. */
export type WorkerMessage =
  | { type: "ready" }
  | { type: "progress"; done: number }
  | { type: "result"; result: ShardResult }
  | { type: "error"; message: string };

/** Messages the parent sends. */
export type ParentMessage = { type: "run"; options: LoadOptions; shard: Shard } | { type: "go" };

/**
 * Forks `o.procs` workers (bench/load/worker.js), runs one shard in each, and resolves with their
 * results. `onProgress` gets the summed completed count. Rejects with WorkerError if any worker
 * fails (the others are killed by pid).
 */
export async function runInWorkers(
  o: LoadOptions,
  onProgress?: (done: number) => void,
): Promise<ShardResult[]> {
  const script = fileURLToPath(new URL("./worker.js", import.meta.url));
  const n = o.procs;
  const children: ChildProcess[] = [];
  const done = new Array<number>(n).fill(0);
  let readyCount = 0;
  const results: Promise<ShardResult>[] = [];
  let goSent = false;
  let readyTimer: NodeJS.Timeout | null = null;
  const killAll = (): void => {
    for (const c of children) if (c.exitCode === null && c.pid !== undefined) c.kill("SIGKILL");
  };
  try {
    for (let i = 0; i < n; i++) {
      const child = fork(script, [], {
        stdio: ["ignore", "inherit", "inherit", "ipc"],
        serialization: "advanced",
      });
      children.push(child);
      results.push(
        new Promise<ShardResult>((resolve, reject) => {
          child.on("message", (m: WorkerMessage) => {
            switch (m.type) {
              case "ready":
                readyCount++;
                if (readyCount === n && !goSent) {
                  goSent = true;
                  if (readyTimer !== null) clearTimeout(readyTimer);
                  for (const c of children) c.send({ type: "go" } satisfies ParentMessage);
                }
                break;
              case "progress":
                done[i] = m.done;
                onProgress?.(done.reduce((a, b) => a + b, 0));
                break;
              case "result":
                resolve(m.result);
                break;
              case "error":
                reject(new WorkerError(`worker ${i}: ${m.message}`));
                break;
            }
          });
          child.on("exit", (code, signal) =>
            reject(new WorkerError(`worker ${i} exited (${code ?? signal}) before its result`)),
          );
          child.on("error", (err) => reject(new WorkerError(`worker ${i}: ${err.message}`)));
        }),
      );
      child.send({
        type: "run",
        options: o,
        shard: { index: i, count: n },
      } satisfies ParentMessage);
    }
    readyTimer = setTimeout(killAll, WORKER_READY_TIMEOUT_MS);
    readyTimer.unref();
    return await Promise.all(results);
  } catch (err) {
    killAll();
    throw err;
  } finally {
    if (readyTimer !== null) clearTimeout(readyTimer);
    for (const c of children) c.disconnect?.();
  }
}
