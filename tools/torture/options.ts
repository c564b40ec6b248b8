/**
 * The command line of `etcd-ts-util torture` (flags as `--name value` or `--name=value`):
 *
 *   etcd-ts-util torture [--members 1|3|5] [--duration 30s] [--seed S] [--power-loss] [--out DIR]
 *                        [--clients 8] [--watchers 2] [--rate 300] [--faults kill,pause,partition,…]
 *                        [--fault-interval 2s] [--snapshot-count 200] [--call-timeout 2s]
 *                        [--check-budget 60s] [--start-timeout 30s] [--quiet]
 *                        [--member-failpoints "name=terms;…"]
 *                        [--endpoints H:P,…] [--server-command "/usr/bin/etcd"]
 *   etcd-ts-util torture check --out DIR [--check-budget 60s]
 */
import { parseDurationSeconds } from "../../bench/load/options.js";
import { UtilUsageError } from "../util/errors.js";
import { parseUtilFlags } from "../util/flags.js";
import type { FaultKind } from "./faults.js";
import { parseServerCommand, type TortureOptions } from "./index.js";

const BOOLEAN = new Set(["power-loss", "quiet"]);
const KNOWN = new Set([
  "members",
  "duration",
  "seed",
  "power-loss",
  "out",
  "clients",
  "watchers",
  "rate",
  "faults",
  "fault-interval",
  "snapshot-count",
  "call-timeout",
  "check-budget",
  "quiet",
  "endpoints",
  "server-command",
  "member-failpoints",
  "start-timeout",
]);
const FAULT_KINDS: FaultKind[] = [
  "kill",
  "pause",
  "restart",
  "failpoint",
  "torn-sync",
  "partition",
];

/** Usage text of the torture command. */
export const TORTURE_USAGE = `  etcd-ts-util torture [--members 1|3|5] [--duration 30s] [--seed S] [--power-loss] [--out DIR] [--clients 8] [--watchers 2] [--rate 300] [--faults kill,pause,restart,failpoint,torn-sync,partition] [--fault-interval 2s] [--snapshot-count 200] [--call-timeout 2s] [--check-budget 60s] [--start-timeout 30s] [--quiet] [--member-failpoints "name=terms;.."] [--endpoints H:P,..] [--server-command CMD]
  etcd-ts-util torture check --out DIR [--check-budget 60s]
`;

function parse(argv: readonly string[]): Map<string, string> {
  return parseUtilFlags(argv, BOOLEAN, KNOWN);
}

function int(
  flags: Map<string, string>,
  name: string,
  dflt: number,
  min: number,
  max: number,
): number {
  const v = flags.get(name);
  if (v === undefined) return dflt;
  if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) {
    throw new UtilUsageError(`--${name} must be a whole number from ${min} to ${max}, got ${v}`);
  }
  return Number(v);
}

function ms(flags: Map<string, string>, name: string, dflt: number): number {
  const v = flags.get(name);
  if (v === undefined) return dflt;
  try {
    return Math.round(parseDurationSeconds(v) * 1000);
  } catch (err) {
    throw new UtilUsageError(`--${name}: ${(err as Error).message}`);
  }
}

/** `torture check --out DIR`. */
export function parseTortureCheckArgs(argv: readonly string[]): {
  outDir: string;
  checkBudgetMs: number;
} {
  const flags = parse(argv);
  const outDir = flags.get("out");
  if (outDir === undefined)
    throw new UtilUsageError("torture check needs --out DIR (a run's output directory)");
  return { outDir, checkBudgetMs: ms(flags, "check-budget", 60_000) };
}

/** Parses a torture run's flags; throws UtilUsageError for anything wrong. */
export function parseTortureArgs(argv: readonly string[]): TortureOptions {
  const flags = parse(argv);
  const members = int(flags, "members", 1, 1, 5);
  if (members !== 1 && members !== 3 && members !== 5)
    throw new UtilUsageError("--members must be 1, 3 or 5");
  const seed = int(flags, "seed", Math.floor(Math.random() * 1_000_000), 0, 2 ** 31 - 1);
  const faultsText = flags.get("faults");
  let faults: FaultKind[] | undefined;
  if (faultsText !== undefined) {
    faults = faultsText.split(",").filter((s) => s !== "" && s !== "none") as FaultKind[];
    for (const f of faults) {
      if (!FAULT_KINDS.includes(f))
        throw new UtilUsageError(
          `--faults: unknown fault ${f} (want ${FAULT_KINDS.join(", ")} or none)`,
        );
    }
  }
  const endpointsText = flags.get("endpoints");
  const endpoints = endpointsText
    ?.split(",")
    .filter((s) => s !== "")
    .map((s) => s.replace(/^https?:\/\//, ""));
  const commandText = flags.get("server-command");
  if (endpoints !== undefined && commandText !== undefined) {
    throw new UtilUsageError("--endpoints and --server-command exclude each other");
  }
  const powerLoss = flags.get("power-loss") === "true";
  if (powerLoss && endpoints !== undefined)
    throw new UtilUsageError("--power-loss needs members the tool starts");
  const durationMs = ms(flags, "duration", 30_000);
  if (faults?.includes("partition") && (endpoints !== undefined || members === 1))
    throw new UtilUsageError("--faults partition needs several members the tool starts");
  return {
    members: endpoints?.length ?? members,
    durationMs,
    seed,
    powerLoss,
    outDir: flags.get("out") ?? `torture-${seed}`,
    clients: int(flags, "clients", 8, 1, 1000),
    watchers: int(flags, "watchers", 2, 0, 100),
    maxOpsPerSecond: int(flags, "rate", 300, 1, 1_000_000),
    callDeadlineMs: ms(flags, "call-timeout", 2_000),
    faults,
    faultIntervalMs: ms(flags, "fault-interval", 2_000),
    endpoints,
    serverCommand: commandText === undefined ? undefined : parseServerCommand(commandText),
    snapshotCount: int(flags, "snapshot-count", 200, 1, 1_000_000_000),
    checkBudgetMs: ms(flags, "check-budget", 60_000),
    startTimeoutMs: ms(flags, "start-timeout", 30_000),
    progress: flags.get("quiet") !== "true",
    memberFailpoints: flags.get("member-failpoints"),
    commandLine: ["etcd-ts-util", "torture", ...argv].join(" "),
  };
}
