/**
 * `bench:compare --auth simple,jwt` (`npm run bench:auth`): issue 15's auth benchmarks, real etcd
 * 3.4 and etcd-ts side by side with auth enabled, once per token kind. For each kind both members
 * start fresh with the same flags (`--auth-token simple`, or `--auth-token
 * jwt,pub-key=…,priv-key=…,sign-method=RS256` with an RSA key pair made by openssl), get a `root`
 * user with the `root` role, a role BENCH_ROLE with READWRITE on every key (from "\0": the bench
 * keys are binary, with no common prefix) and a user BENCH_USER with that role, then auth is
 * enabled, all through etcd's JSON gateway. bcrypt runs at each member's default cost (10). Then,
 * in alternation (etcd, etcd-ts, etcd, …) for --rounds rounds after one unmeasured warm-up:
 *
 * - put at 128 clients as BENCH_USER: throughput, p99, server CPU per put (the load generator
 *   authenticates once per connection and sends the token on every put);
 * - Authenticate at AUTHENTICATING_CLIENTS clients: calls/s, p99, server CPU per call (always our
 *   generator: etcd's tool has no such workload);
 * - put at PACED_PUT_CLIENTS clients paced at PACED_PUT_RATE/s, alone and then while
 *   AUTHENTICATING_CLIENTS clients authenticate in a loop (started AUTHENTICATORS_LEAD_MS before
 *   the puts, stopped when they end): the puts' p99 both ways and its ratio per round, the rate the
 *   puts kept, and the Authenticate rate meanwhile. Issue 15 asks that the p99 not jump: a bcrypt
 *   must never run on the member's event loop.
 *
 * With `--loadgen etcd-benchmark` the put workloads run through etcd's tool (`--user=name:pw`, its
 * `--rate` for the paced puts), the Authenticate load through ours; rows our generator drives in
 * such a run say so. Only etcd and etcd-ts run (the grpc-js columns show "—").
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { defaultLoadOptions, runLoad, type LoadOptions, type LoadResult } from "../load/index.js";
import { runEtcdBenchmark, totalFor, type EtcdBenchmarkSpec } from "./etcd-benchmark.js";
import { Member, clockTicksPerSecond, type System } from "./members.js";
import { emptyPerSystem, log, machine, row, type CompareRow } from "./rows.js";
import type { FreshMembersOptions } from "./workloads.js";

/** The token kinds compared, as `--auth-token` names them. */
export const AUTH_TOKEN_MODES = ["simple", "jwt"] as const;
export type AuthTokenMode = (typeof AUTH_TOKEN_MODES)[number];

/** The user the load runs as, its password and role. */
export const BENCH_USER = "bench";
export const BENCH_PASSWORD = "bench-password";
export const BENCH_ROLE = "bench-readwrite";
/** root's password on the benchmark members. */
const ROOT_PASSWORD = "root-password";

/** Clients calling Authenticate in a loop (issue 15: "while 100 clients authenticate"). */
export const AUTHENTICATING_CLIENTS = 100;
/** Connections those clients share. */
export const AUTHENTICATING_CONNS = 10;
/** Clients of the paced puts whose p99 is watched while the others authenticate. */
export const PACED_PUT_CLIENTS = 16;
/** Rate of the paced puts, puts/s over all their clients. */
export const PACED_PUT_RATE = 1000;
/** How long the authenticators run before the paced puts start, ms. */
export const AUTHENTICATORS_LEAD_MS = 1000;
/** Longest openssl may take to make a key, ms. */
const OPENSSL_TIMEOUT_MS = 60_000;

/** The systems an auth comparison runs (the grpc-js member is left out). */
const AUTH_SYSTEMS = ["etcd", "etcd-ts"] as const;

/** What compareAuth needs (a subset of CompareOptions plus the token kinds). */
export interface AuthCompareOptions extends FreshMembersOptions {
  modes: AuthTokenMode[];
  /** Run only the workloads of these names (see AUTH_WORKLOAD_NAMES); null: all. */
  workloadNames: string[] | null;
  /** `--bcrypt-cost` for both members (null: their default, 10, as issue 15's figures use). */
  bcryptCost: number | null;
}

/** Parses `--auth`'s value: token kinds separated by commas ("simple,jwt"). */
export function parseAuthModes(v: string): AuthTokenMode[] {
  const modes = v
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  if (modes.length === 0) throw new Error("--auth needs simple, jwt or simple,jwt");
  for (const m of modes)
    if (!(AUTH_TOKEN_MODES as readonly string[]).includes(m))
      throw new Error(`--auth: unknown token kind ${JSON.stringify(m)} (simple or jwt)`);
  return [...new Set(modes)] as AuthTokenMode[];
}

/** An RSA key pair in PEM files, for `--auth-token jwt,…`. */
export interface JwtKeyFiles {
  publicKey: string;
  privateKey: string;
}

/** Makes a 2048-bit RSA key pair with openssl in `dir` (as etcd's docs do). Throws when openssl fails. */
export function makeJwtKeys(dir: string): JwtKeyFiles {
  mkdirSync(dir, { recursive: true });
  const privateKey = join(dir, "jwt.key");
  const publicKey = join(dir, "jwt.pub");
  const run = (args: string[]): void => {
    execFileSync("openssl", args, {
      timeout: OPENSSL_TIMEOUT_MS,
      stdio: ["ignore", "ignore", "pipe"],
    });
  };
  run(["genrsa", "-out", privateKey, "2048"]);
  run(["rsa", "-in", privateKey, "-pubout", "-out", publicKey]);
  return { publicKey, privateKey };
}

/** The member flags of token kind `mode` (the same for etcd and etcd-ts). */
export function authTokenArgs(mode: AuthTokenMode, keys: JwtKeyFiles | null): string[] {
  if (mode === "simple") return ["--auth-token", "simple"];
  if (keys === null) throw new Error("jwt tokens need a key pair");
  return [
    "--auth-token",
    `jwt,pub-key=${keys.publicKey},priv-key=${keys.privateKey},sign-method=RS256`,
  ];
}

const b64 = (s: string): string => Buffer.from(s, "latin1").toString("base64");

/**
 * One call of a member's JSON gateway (`path` below /v3/), resolving with the parsed answer and
 * rejecting unless it answers 200 (Member.gateway).
 */
export type GatewayPost = (path: string, body: unknown) => Promise<Record<string, unknown>>;

/**
 * Sets up auth on a fresh member through its JSON gateway (`post`): root (root role), BENCH_ROLE
 * with READWRITE on every key, BENCH_USER with BENCH_ROLE, auth enabled; then checks that
 * BENCH_USER can log in. Throws with the member's answer when a step fails.
 */
export async function enableBenchAuth(post: GatewayPost): Promise<void> {
  const steps: [string, unknown][] = [
    ["auth/user/add", { name: "root", password: ROOT_PASSWORD }],
    ["auth/role/add", { name: "root" }],
    ["auth/user/grant", { user: "root", role: "root" }],
    ["auth/role/add", { name: BENCH_ROLE }],
    // key "\0" with range_end "\0": every key (etcdctl's --from-key "")
    [
      "auth/role/grant",
      { name: BENCH_ROLE, perm: { permType: "READWRITE", key: b64("\0"), range_end: b64("\0") } },
    ],
    ["auth/user/add", { name: BENCH_USER, password: BENCH_PASSWORD }],
    ["auth/user/grant", { user: BENCH_USER, role: BENCH_ROLE }],
    ["auth/enable", {}],
  ];
  for (const [path, body] of steps) await post(path, body);
  const r = await post("auth/authenticate", { name: BENCH_USER, password: BENCH_PASSWORD });
  if (typeof r["token"] !== "string" || r["token"] === "")
    throw new Error(`Authenticate as ${BENCH_USER} gave no token`);
}

/** A row a workload fills. */
interface RowSpec {
  row: string;
  unit: string;
  lowerIsBetter: boolean;
}

/** What runs need: the load generator, the tool and the rates its warm-ups measured. */
interface RunContext {
  loadgen: AuthCompareOptions["loadgen"];
  toolBinary: string;
  toolRatePerSecond: Map<string, number>;
}

/** A workload of the auth comparison: its name, its rows, and what one run on one member measures. */
interface AuthWorkload {
  name: string;
  rows: RowSpec[];
  /** One run: a value per row of `rows`, in order (null where the run failed), and its results. */
  run(
    m: Member,
    seconds: number,
    ctx: RunContext,
  ): Promise<{ values: (number | null)[]; results: unknown }>;
}

/** The workload names of the auth comparison (for --workloads). */
export const AUTH_WORKLOAD_NAMES = [
  "put 128 clients",
  `authenticate ${AUTHENTICATING_CLIENTS} clients`,
  `put ${PACED_PUT_CLIENTS} clients at ${PACED_PUT_RATE}/s`,
  `put ${PACED_PUT_CLIENTS} clients at ${PACED_PUT_RATE}/s while ${AUTHENTICATING_CLIENTS} clients authenticate`,
] as const;

const credentials = { user: BENCH_USER, password: BENCH_PASSWORD };

function putOptions(m: Member, clients: number, conns: number, seconds: number): LoadOptions {
  return {
    ...defaultLoadOptions("put"),
    ...credentials,
    endpoints: [m.endpoint],
    clients,
    conns,
    durationSeconds: seconds,
    keySizeBytes: 8,
    valSizeBytes: 256,
    keySpaceSize: 100_000,
  };
}

function authenticateOptions(m: Member, seconds: number): LoadOptions {
  return {
    ...defaultLoadOptions("authenticate"),
    ...credentials,
    endpoints: [m.endpoint],
    clients: AUTHENTICATING_CLIENTS,
    conns: AUTHENTICATING_CONNS,
    durationSeconds: seconds,
  };
}

/** etcd's tool: puts of 8 B keys and 256 B values as BENCH_USER, optionally paced. */
function toolPutSpec(clients: number, rate: number): EtcdBenchmarkSpec {
  const args = [
    `--user=${BENCH_USER}:${BENCH_PASSWORD}`,
    "--key-size=8",
    "--val-size=256",
    "--key-space-size=100000",
  ];
  if (rate > 0) args.push(`--rate=${rate}`);
  return {
    command: "put",
    clients,
    conns: Math.min(100, clients),
    args,
    putRatePerSecond: rate,
    expectedPerSecond: 10_000,
  };
}

/** Longest one run of the tool may take. */
function toolTimeoutMs(seconds: number): number {
  return Math.max(120_000, seconds * 30_000);
}

/**
 * A put run through the generator of `ctx`; null (logged) when it failed or failed > 10 %.
 * `ready` runs before the first put: with our generator after its connections logged in, with
 * etcd's tool (which logs in on its own) when the tool starts.
 */
async function runPutLoad(
  m: Member,
  name: string,
  clients: number,
  rate: number,
  seconds: number,
  ctx: RunContext,
  ready: () => Promise<void> = async () => {},
): Promise<LoadResult | null> {
  try {
    let r: LoadResult;
    if (ctx.loadgen === "etcd-benchmark") {
      const spec = toolPutSpec(clients, rate);
      const total = totalFor(spec, seconds, ctx.toolRatePerSecond.get(name) ?? null);
      await ready();
      r = await runEtcdBenchmark(ctx.toolBinary, m.endpoint, spec, total, toolTimeoutMs(seconds));
    } else {
      const conns = rate > 0 ? Math.ceil(clients / 8) : Math.min(100, Math.ceil(clients / 10));
      r = await runLoad({ ...putOptions(m, clients, conns, seconds), rate }, { ready });
    }
    return usable(m, name, r);
  } catch (err) {
    log(`${m.spec.system} ${name}: failed: ${(err as Error).message}`);
    return null;
  }
}

function usable(m: Member, name: string, r: LoadResult): LoadResult | null {
  if (r.errors > 0)
    log(
      `${m.spec.system} ${name}: ${r.errors} errors of ${r.requests}: ${JSON.stringify(r.errorCounts).slice(0, 300)}`,
    );
  return r.requests === 0 || r.errors > r.requests * 0.1 ? null : r;
}

/** Server CPU per completed request, µs (see members.ts cpuMicros). */
function cpuPer(before: number | null, after: number | null, r: LoadResult | null): number | null {
  if (before === null || after === null || r === null || r.requests <= 0) return null;
  return (after - before) / r.requests;
}

/** Row name of a CPU row (as index.ts's cpuRowName). */
function cpuRow(workload: string): string {
  return `server CPU µs per request — ${workload}`;
}

/** The workloads, named by AUTH_WORKLOAD_NAMES; `ours` marks rows our generator drives in a tool run. */
function authWorkloads(loadgen: AuthCompareOptions["loadgen"]): AuthWorkload[] {
  const ours = loadgen === "etcd-benchmark" ? " (etcd-ts-bench)" : "";
  const [put128, authN, paced, pacedWithAuth] = AUTH_WORKLOAD_NAMES;
  const rps = (row: string): RowSpec => ({ row, unit: "req/s", lowerIsBetter: false });
  const ms = (row: string): RowSpec => ({ row, unit: "ms", lowerIsBetter: true });
  const us = (row: string): RowSpec => ({ row, unit: "µs", lowerIsBetter: true });
  return [
    {
      name: put128,
      rows: [rps(put128), ms(`p99 latency ${put128}`), us(cpuRow(put128))],
      async run(m, seconds, ctx) {
        const cpu0 = m.cpuMicros();
        const r = await runPutLoad(m, put128, 128, 0, seconds, ctx);
        const cpu = cpuPer(cpu0, m.cpuMicros(), r);
        return {
          values: [r?.requestsPerSecond ?? null, r?.latencyMs.p99 ?? null, cpu],
          results: r,
        };
      },
    },
    {
      name: authN,
      rows: [
        rps(`${authN}${ours}`),
        ms(`p99 latency ${authN}${ours}`),
        us(cpuRow(`${authN}${ours}`)),
      ],
      async run(m, seconds) {
        const cpu0 = m.cpuMicros();
        let r: LoadResult | null = null;
        try {
          r = usable(m, authN, await runLoad(authenticateOptions(m, seconds)));
        } catch (err) {
          log(`${m.spec.system} ${authN}: failed: ${(err as Error).message}`);
        }
        const cpu = cpuPer(cpu0, m.cpuMicros(), r);
        return {
          values: [r?.requestsPerSecond ?? null, r?.latencyMs.p99 ?? null, cpu],
          results: r,
        };
      },
    },
    {
      name: paced,
      rows: [ms(`p99 latency ${paced}`), rps(`${paced}: puts/s kept`)],
      async run(m, seconds, ctx) {
        const r = await runPutLoad(m, paced, PACED_PUT_CLIENTS, PACED_PUT_RATE, seconds, ctx);
        return { values: [r?.latencyMs.p99 ?? null, r?.requestsPerSecond ?? null], results: r };
      },
    },
    {
      name: pacedWithAuth,
      rows: [
        ms(`p99 latency ${pacedWithAuth}`),
        rps(`${pacedWithAuth}: puts/s kept`),
        rps(`${pacedWithAuth}: Authenticate calls/s${ours}`),
      ],
      async run(m, seconds, ctx) {
        // The put connections log in first (our generator; etcd's tool logs in when it starts,
        // under the authenticators' load), then the authenticators start, then the puts; the
        // authenticators run until the puts end (their duration is only a bound).
        const stop = new AbortController();
        let authenticators: Promise<LoadResult | null> = Promise.resolve(null);
        const startAuthenticators = async (): Promise<void> => {
          authenticators = runLoad(authenticateOptions(m, 60 + seconds * 10), {
            stop: stop.signal,
          }).then(
            (r) => usable(m, `${pacedWithAuth}: authenticators`, r),
            (err: unknown) => {
              log(`${m.spec.system} ${pacedWithAuth}: authenticators failed: ${String(err)}`);
              return null;
            },
          );
          await sleep(AUTHENTICATORS_LEAD_MS);
        };
        let r: LoadResult | null;
        try {
          r = await runPutLoad(
            m,
            pacedWithAuth,
            PACED_PUT_CLIENTS,
            PACED_PUT_RATE,
            seconds,
            ctx,
            startAuthenticators,
          );
        } finally {
          stop.abort();
        }
        const a = await authenticators;
        return {
          values: [
            r?.latencyMs.p99 ?? null,
            r?.requestsPerSecond ?? null,
            a?.requestsPerSecond ?? null,
          ],
          results: { puts: r, authenticators: a },
        };
      },
    },
  ];
}

/** Per-system samples of one row, in round order. */
interface RowSamples {
  unit: string;
  lowerIsBetter: boolean;
  v: Record<System, (number | null)[]>;
}

/** Per-round ratio of two rows of the same system (`num[i] / den[i]`), null where either is missing. */
export function roundRatios(num: (number | null)[], den: (number | null)[]): (number | null)[] {
  return num.map((x, i) => {
    const d = den[i];
    return x === null || d === null || d === undefined || d <= 0 ? null : x / d;
  });
}

/**
 * Runs the auth comparison and returns its rows (prefixed `auth <kind>: `) and every run. A member
 * that fails to start or to set up auth leaves "n/a" in its column for that token kind.
 */
export async function compareAuth(o: AuthCompareOptions): Promise<{
  rows: CompareRow[];
  runs: Record<string, unknown>[];
  warmups: Record<string, unknown>[];
  machine: Record<string, string | number>;
}> {
  const all = authWorkloads(o.loadgen);
  const ws = all.filter((w) => o.workloadNames === null || o.workloadNames.includes(w.name));
  if (o.workloadNames !== null && ws.length !== o.workloadNames.length)
    throw new Error(
      `unknown workload in ${JSON.stringify(o.workloadNames)}; known: ${AUTH_WORKLOAD_NAMES.join(", ")}`,
    );
  const workDir = o.workDir ?? mkdtempSync(join(tmpdir(), "etcd-ts-compare-auth-"));
  mkdirSync(workDir, { recursive: true });
  const ctx: RunContext = {
    loadgen: o.loadgen,
    toolBinary: o.etcdBenchmarkPath,
    toolRatePerSecond: new Map(),
  };
  const mach = { ...machine(workDir), clockTicksPerSecond: clockTicksPerSecond() };
  log(`auth comparison, work dir ${workDir}; machine ${JSON.stringify(mach)}`);
  const rows: CompareRow[] = [];
  const runs: Record<string, unknown>[] = [];
  const warmups: Record<string, unknown>[] = [];
  const failed = emptyPerSystem((): (number | null)[] => [0]);
  try {
    const keys = o.modes.includes("jwt") ? makeJwtKeys(join(workDir, "jwt-keys")) : null;
    for (const mode of o.modes) {
      const prefix = `auth ${mode}: `;
      const members: Member[] = [];
      const up = new Map<System, Member>();
      mkdirSync(join(workDir, mode), { recursive: true });
      try {
        for (const s of AUTH_SYSTEMS) {
          const dir = join(workDir, mode, s);
          const m = await Member.create({
            system: s,
            command: s === "etcd" ? [o.etcdPath] : [process.execPath, o.etcdTsJs],
            dataDir: dir,
            logFile: `${dir}.log`,
            extraArgs: [
              ...authTokenArgs(mode, keys),
              ...(o.bcryptCost === null ? [] : ["--bcrypt-cost", String(o.bcryptCost)]),
            ],
          });
          members.push(m);
          try {
            const ms = await m.start();
            await enableBenchAuth((path, body) => m.gateway(path, body));
            up.set(s, m);
            log(`${prefix}${s} healthy after ${ms.toFixed(0)} ms, auth on (pid ${m.pid})`);
          } catch (err) {
            log(`${prefix}${s}: ${(err as Error).message}`);
          }
        }
        if (o.warmupSeconds > 0)
          for (const w of ws) {
            const rates: number[] = [];
            for (const [s, m] of up) {
              const { values, results } = await w.run(m, o.warmupSeconds, ctx);
              // the tool's measured runs are sized from the faster system's warm-up rate
              for (const r of collectResults(results).slice(0, 1)) rates.push(r.requestsPerSecond);
              warmups.push({ mode, workload: w.name, system: s, value: values[0] });
              log(
                `${prefix}warm-up ${w.name} ${s}: ${values[0]?.toFixed(2) ?? "n/a"} (not measured)`,
              );
            }
            if (rates.length > 0) ctx.toolRatePerSecond.set(w.name, Math.max(...rates));
          }
        const byRow = new Map<string, RowSamples>();
        for (const w of ws)
          for (const x of w.rows)
            byRow.set(prefix + x.row, {
              unit: x.unit,
              lowerIsBetter: x.lowerIsBetter,
              v: emptyPerSystem(() => []),
            });
        for (let round = 0; round < o.rounds; round++) {
          for (const w of ws) {
            for (const s of AUTH_SYSTEMS) {
              const m = up.get(s);
              const got = m === undefined ? null : await w.run(m, o.secondsPerRun, ctx);
              const values = got?.values ?? w.rows.map(() => null);
              w.rows.forEach((x, i) => byRow.get(prefix + x.row)!.v[s].push(values[i] ?? null));
              for (const r of collectResults(got?.results ?? null))
                failed[s] = [(failed[s][0] ?? 0) + r.errors];
              runs.push({
                mode,
                round,
                workload: w.name,
                system: s,
                values: Object.fromEntries(w.rows.map((x, i) => [x.row, values[i] ?? null])),
                result: got?.results ?? null,
              });
              log(
                `${prefix}round ${round + 1}/${o.rounds} ${w.name} ${s}: ${w.rows.map((x, i) => `${x.row} ${values[i]?.toFixed(2) ?? "n/a"}`).join("; ")}`,
              );
            }
          }
        }
        for (const [name, rs] of byRow)
          rows.push(row(name, rs.unit, rs.lowerIsBetter, rs.v, false));
        const alone = byRow.get(`${prefix}p99 latency ${AUTH_WORKLOAD_NAMES[2]}`);
        const during = byRow.get(`${prefix}p99 latency ${AUTH_WORKLOAD_NAMES[3]}`);
        if (alone !== undefined && during !== undefined) {
          const v = emptyPerSystem((): (number | null)[] => []);
          for (const s of AUTH_SYSTEMS) v[s] = roundRatios(during.v[s], alone.v[s]);
          rows.push(
            row(
              `${prefix}put p99 while ${AUTHENTICATING_CLIENTS} clients authenticate / alone (per round)`,
              "ratio",
              true,
              v,
              false,
            ),
          );
        }
      } finally {
        for (const m of members) await m.stop();
      }
    }
    rows.push(row("failed requests, all measured runs", "count", true, failed, false));
    return { rows, runs, warmups, machine: mach };
  } finally {
    if (!o.keep && o.workDir === null) rmSync(workDir, { recursive: true, force: true });
    else log(`kept ${workDir}`);
  }
}

/** The LoadResults inside a run's results (one, or the puts and the authenticators). */
function collectResults(results: unknown): LoadResult[] {
  if (results === null || typeof results !== "object") return [];
  if ("requestsPerSecond" in results) return [results as LoadResult];
  return Object.values(results as Record<string, unknown>).flatMap(collectResults);
}
