// Which member the bench/util tests start: etcd-ts when ETCD_TS_TARGET=etcd-ts, else real etcd 3.4
// when it is installed (the load generator and check tools are clients: they must work against
// the reference), else etcd-ts.
import { existsSync } from "node:fs";
import type { Target } from "../helpers/server.js";

/** The target for test/bench and test/util suites (see the file comment). */
export const TOOLS_TEST_TARGET: Target =
  process.env.ETCD_TS_TARGET === "etcd-ts"
    ? "etcd-ts"
    : existsSync(process.env.ETCD_BIN ?? "/usr/bin/etcd")
      ? "etcd"
      : "etcd-ts";
