/**
 * Entry of a --procs worker process (forked by procs.ts): waits for {type:"run"}, runs its shard,
 * sends the result and exits. Not meant to be started by hand.
 */
import type { ParentMessage, WorkerMessage } from "./procs.js";
import { runShard } from "./runner.js";

function send(m: WorkerMessage): void {
  process.send?.(m);
}

let go: (() => void) | null = null;
const goPromise = new Promise<void>((resolve) => (go = resolve));

process.on("message", (m: ParentMessage) => {
  if (m.type === "go") {
    go?.();
    return;
  }
  runShard(m.options, m.shard, {
    ready: async () => {
      send({ type: "ready" });
      await goPromise;
    },
    progress: (done) => send({ type: "progress", done }),
  }).then(
    (result) => {
      send({ type: "result", result });
      process.disconnect?.();
    },
    (err: unknown) => {
      send({ type: "error", message: err instanceof Error ? err.message : String(err) });
      process.disconnect?.();
    },
  );
});
process.on("disconnect", () => setTimeout(() => process.exit(0), 100).unref());
