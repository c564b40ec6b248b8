// Which member the bench/util tests start: the suites' usual target (etcd-ts unless
// ETCD_TS_TARGET=etcd selects real etcd 3.4, as test/helpers/server.ts decides). The load
// generator and check tools are clients, so both targets must pass.
import { TARGET, type Target } from "../helpers/server.js";

/** The target for test/bench and test/util suites. */
export const TOOLS_TEST_TARGET: Target = TARGET;
