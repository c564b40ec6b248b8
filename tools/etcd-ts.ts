#!/usr/bin/env node
/**
 * etcd-ts: one member, started with etcd's flags, `ETCD_*` variables or `--config-file`
 * (see tools/flags.ts). Logs are structured JSON (pino) on stderr, as etcd's zap logger.
 * SIGTERM / SIGINT stop the member cleanly: listeners close, the WAL is closed, the lock released.
 */
import { pino } from "pino";
import { parseCommandLine, flagNames } from "./flags.js";
import { EtcdServer } from "../lib/server/index.js";
import { serveClients } from "../lib/api/index.js";
import { serverVersion, etcdTsVersion } from "../lib/version/index.js";
import { loadFailpointsFromEnv, FAILPOINTS_ENV } from "../lib/failpoint/index.js";
import { simulatePowerLoss } from "../lib/wal/index.js";

async function main(): Promise<void> {
  let parsed;
  try {
    parsed = parseCommandLine(process.argv.slice(2), process.env);
  } catch (err) {
    process.stderr.write(`etcd-ts: ${(err as Error).message}\n`);
    process.exit(2);
  }
  if (parsed.printVersion) {
    process.stdout.write(
      `etcd Version: ${serverVersion}\netcd-ts Version: ${etcdTsVersion}\nNode Version: ${process.version}\n`,
    );
    return;
  }
  if (parsed.printHelp) {
    process.stdout.write(`usage: etcd-ts [flags]\n\nflags (etcd's; also as ETCD_* variables):\n`);
    for (const f of flagNames()) process.stdout.write(`  --${f}\n`);
    return;
  }
  const cfg = parsed.config;
  const logger = pino(
    { level: cfg.logLevel === "panic" ? "fatal" : cfg.logLevel, base: { name: cfg.name } },
    pino.destination({ fd: 2, sync: true }),
  );
  for (const note of parsed.notes) logger.info(note);
  if (parsed.configFile !== "")
    logger.info(
      { configFile: parsed.configFile },
      "loaded server configuration, other configuration command line flags and environment variables will be ignored if provided",
    );
  logger.info(
    {
      version: serverVersion,
      etcdTs: etcdTsVersion,
      dataDir: cfg.dataDir,
      listenClientUrls: cfg.listenClientUrls,
    },
    "starting etcd-ts",
  );

  // Test modes (issue 16), before any file is written: failpoints from ETCD_TS_FAILPOINTS, and the
  // simulated power loss, whose torn syncs draw from the same seed.
  let failpointSeed: number;
  try {
    const fp = loadFailpointsFromEnv(process.env);
    failpointSeed = fp.seed;
    if (fp.set.length > 0) logger.warn({ failpoints: fp.set, seed: fp.seed }, "failpoints set");
  } catch (err) {
    process.stderr.write(`etcd-ts: ${FAILPOINTS_ENV}: ${(err as Error).message}\n`);
    process.exit(2);
  }
  if (cfg.simulatePowerLoss) {
    simulatePowerLoss({ tornSync: cfg.tornSync, seed: failpointSeed });
    logger.warn(
      { tornSync: cfg.tornSync, seed: failpointSeed },
      "TEST MODE: simulated power loss: unsynced file bytes are kept in the process",
    );
  }
  if (cfg.failpointsHttp)
    logger.warn("TEST MODE: failpoints settable over HTTP at /debug/failpoints");

  let server: EtcdServer;
  try {
    server = await EtcdServer.start({ config: cfg, logger, servePeers: true });
  } catch (err) {
    logger.fatal({ err: (err as Error).message }, "failed to start member");
    logger.flush();
    process.stderr.write(`etcd-ts: ${(err as Error).message}\n`);
    process.exit(1);
  }
  let serving;
  try {
    serving = await serveClients(server, logger);
  } catch (err) {
    logger.fatal({ err: (err as Error).message }, "failed to serve clients");
    await server.stop();
    logger.flush();
    process.stderr.write(`etcd-ts: ${(err as Error).message}\n`);
    process.exit(1);
  }
  logger.info(
    { urls: serving.listeners.map((l) => l.url), memberId: server.memberId.toString(16) },
    "ready to serve client requests",
  );
  // etcd exits when its storage fails; a member that cannot persist must not keep its port open
  server.onFatal = () => {
    void serving.close().finally(() => {
      logger.flush();
      process.exit(1);
    });
  };
  // a member removed from the cluster stops and exits, as etcd does
  server.onRemoved = () => {
    void serving.close().finally(() => {
      logger.flush();
      process.exit(0);
    });
  };
  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "received signal; shutting down");
    const force = setTimeout(() => process.exit(1), 10_000);
    force.unref();
    await serving.close();
    await server.stop();
    logger.info("stopped");
    logger.flush();
    process.exit(0);
  };
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  process.on("SIGINT", () => void shutdown("SIGINT"));
  process.on("uncaughtException", (err) => {
    // DESIGN §8: an unexpected exception fails what it was doing; it must not take the member down
    // silently. Storage failures stop the member inside lib/server.
    logger.error({ err: err.stack }, "uncaught exception");
  });
}

void main();
