#!/usr/bin/env node
/**
 * etcd-ts-bench — load generator for any etcd v3 endpoint (etcd-ts or etcd), with the flags of
 * etcd's `benchmark` tool. Usage:
 *
 *   etcd-ts-bench put --endpoints 127.0.0.1:2379 --conns 10 --clients 1000 --total 100000 \
 *       --key-size 8 --val-size 256 --key-space-size 100000 [--sequential-keys] [--rate N]
 *   etcd-ts-bench range foo [end] --consistency s --clients 128 --duration 10s
 *   etcd-ts-bench txn-put --txn-ops 1 ...      etcd-ts-bench lease-keepalive --total 10000
 *   etcd-ts-bench watch --streams 10 --watch-per-stream 100 --watched-key-total 10 --put-total 1000 \
 *       [--put-rate 100] [--put-conns 1]
 *   etcd-ts-bench authenticate --user bench --password pw --clients 100 --conns 10 --duration 5s
 *
 * Common: --user NAME --password PW (or etcd's --user NAME:PW; each connection authenticates once
 * and sends the token on every call), --procs N (worker processes), --transport raw|http2|grpc-js,
 * --progress (default on when stderr is a terminal), --json. Exit 1 on a usage error or a failed
 * login, 2 when the run had failed requests, 0 otherwise.
 */
import {
  formatLoadResult,
  LoadUsageError,
  parseLoadArgs,
  runLoad,
  WORKLOADS,
} from "../bench/load/index.js";

async function main(argv: string[]): Promise<number> {
  if (argv.length === 0 || argv[0] === "--help" || argv[0] === "-h") {
    process.stdout.write(
      `usage: etcd-ts-bench <${WORKLOADS.join("|")}> [flags]\n` +
        "flags: --endpoints --conns --clients --total --duration --key-size --val-size --key-space-size\n" +
        "       --sequential-keys --rate --consistency l|s --txn-ops --streams --watch-per-stream\n" +
        "       --watched-key-total --put-total --put-rate --put-conns --watch-wait\n" +
        "       --user NAME[:PW] --password PW --procs --transport raw|http2|grpc-js --progress --json\n",
    );
    return argv.length === 0 ? 1 : 0;
  }
  let o;
  try {
    o = parseLoadArgs(argv);
  } catch (err) {
    if (err instanceof LoadUsageError) {
      process.stderr.write(`etcd-ts-bench: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
  // A progress line by default when a person is watching (stderr is a terminal).
  if (!argv.some((a) => a.startsWith("--progress")) && process.stderr.isTTY === true)
    o.progress = true;
  const r = await runLoad(o);
  process.stdout.write((o.json ? JSON.stringify(r, null, 2) : formatLoadResult(r)) + "\n");
  return r.errors > 0 ? 2 : 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`etcd-ts-bench: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
