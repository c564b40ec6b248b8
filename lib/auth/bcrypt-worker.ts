/**
 * The bcrypt worker thread (password.ts starts it): hashes and checks passwords with
 * @node-rs/bcrypt's synchronous calls, one request at a time, at nice 19. On Linux a thread's
 * nice value is its own, so when the machine is busy the event loop, the WAL's writes and other
 * processes run first, and when it is idle the hashes get the whole core.
 *
 * Messages in: {id, kind: "hash", password, cost} | {id, kind: "verify", password, encoded}.
 * Messages out: {id, ok: true, value: string | boolean} | {id, ok: false, error: string}.
 */
import { setPriority } from "node:os";
import { parentPort } from "node:worker_threads";
import { hashSync, verifySync } from "@node-rs/bcrypt";

/**
 * Nice value of the worker thread: the lowest (0 is normal). At nice 10 (CFS weight 110 against
 * 1024) paced puts from other clients still saw their p99 rise from ~2 to 8-14 ms while 100
 * clients authenticated on 2 cores; at 19 (weight 15) hashes take what requests and the WAL
 * leave.
 */
const bcryptNice = 19;

/** What password.ts asks of a worker. */
export type BcryptJob =
  | { kind: "hash"; password: string; cost: number }
  | { kind: "verify"; password: string; encoded: string };
export type BcryptRequest = BcryptJob & { id: number };
export type BcryptResponse =
  { id: number; ok: true; value: string | boolean } | { id: number; ok: false; error: string };

if (parentPort !== null) {
  const port = parentPort;
  try {
    setPriority(bcryptNice); // this thread only (Linux)
  } catch {
    // not permitted here: run at normal priority
  }
  port.on("message", (req: BcryptRequest) => {
    let res: BcryptResponse;
    try {
      const value =
        req.kind === "hash"
          ? hashSync(req.password, { cost: req.cost, version: "2a" })
          : verifySync(req.password, req.encoded);
      res = { id: req.id, ok: true, value };
    } catch (err) {
      res = { id: req.id, ok: false, error: (err as Error).message };
    }
    port.postMessage(res);
  });
}
