/**
 * Spawning and measuring the systems the comparison runs side by side: real etcd 3.4
 * (/usr/bin/etcd), etcd-ts (`node dist/tools/etcd-ts.js`, default fast transport) and etcd-ts on
 * the reference transport (`--experimental-grpc-transport grpc-js`), each a single member with
 * etcd's flags on its own loopback ports and its own data dir. Every process is ended by its pid,
 * and its CPU time is read from /proc/<pid>/stat of that pid only.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { openSync, closeSync, readFileSync, readdirSync, readlinkSync, statSync } from "node:fs";
import * as http from "node:http";
import * as net from "node:net";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";

/** The systems compared: real etcd, etcd-ts (fast transport) and etcd-ts on @grpc/grpc-js. */
export type System = "etcd" | "etcd-ts" | "etcd-ts grpc-js";

/** Longest a member may take to answer /health, ms. */
export const HEALTH_TIMEOUT_MS = 120_000;
/** Interval of /health polls while waiting, ms (bounds the restart-time resolution). */
export const HEALTH_POLL_MS = 10;
/** Longest a member may take to exit after SIGTERM before SIGKILL, ms. */
export const STOP_TIMEOUT_MS = 20_000;

/** A free TCP port on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const a = srv.address();
      if (a === null || typeof a === "string") return reject(new Error("no port"));
      srv.close(() => resolve(a.port));
    });
  });
}

/** GET http://127.0.0.1:port/path; resolves with status and body, rejects on connection errors. */
export function httpGet(
  port: number,
  path: string,
  timeoutMs = 2000,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: "127.0.0.1", port, path, timeout: timeoutMs }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
  });
}

/**
 * POST a JSON body to http://127.0.0.1:port/path (etcd's v3 JSON gateway) with `headers` added;
 * resolves with status and body, rejects on connection errors or after `timeoutMs`.
 */
export function httpPostJson(
  port: number,
  path: string,
  body: unknown,
  timeoutMs = 5000,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string }> {
  const data = Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: "127.0.0.1",
        port,
        path,
        method: "POST",
        timeout: timeoutMs,
        headers: { ...headers, "content-type": "application/json", "content-length": data.length },
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => (text += d));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
    req.end(data);
  });
}

/** How to start one system. */
export interface MemberSpec {
  system: System;
  /** Program and leading arguments (etcd: ["/usr/bin/etcd"]; etcd-ts: [node, dist/tools/etcd-ts.js]). */
  command: string[];
  dataDir: string;
  logFile: string;
  /** Flags appended after etcd's (e.g. ["--experimental-grpc-transport", "grpc-js"]). */
  extraArgs?: readonly string[];
  /** --log-level (default "warn"; "info" for the snapshot rows, read from the log). */
  logLevel?: "debug" | "info" | "warn" | "error";
}

/** A member of a cluster: its --name and the --initial-cluster of every member. */
interface ClusterRole {
  name: string;
  initialCluster: string;
}

/** Clock ticks per second of /proc's utime and stime, when the OS cannot be asked. */
export const DEFAULT_CLOCK_TICKS_PER_SECOND = 100;

let clockTicks: number | null = null;

/**
 * The kernel's USER_HZ (`getconf CLK_TCK`), the unit of utime/stime in /proc/<pid>/stat. Asked
 * once; falls back to DEFAULT_CLOCK_TICKS_PER_SECOND (Linux's USER_HZ on every common
 * architecture) when getconf is missing or answers nonsense.
 */
export function clockTicksPerSecond(): number {
  if (clockTicks !== null) return clockTicks;
  let n = NaN;
  try {
    n = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim());
  } catch {
    // getconf missing: use Linux's USER_HZ.
  }
  clockTicks = Number.isInteger(n) && n > 0 ? n : DEFAULT_CLOCK_TICKS_PER_SECOND;
  return clockTicks;
}

/**
 * utime + stime of process `pid`, in clock ticks, from the text of /proc/<pid>/stat (proc(5):
 * fields 14 and 15, counted after the parenthesised command name, which may itself hold spaces
 * or parentheses, so the fields are split after its last ")"). Threads of the process are
 * included; its children are not. Throws when the text is not a stat line.
 */
export function parseProcStatCpuTicks(stat: string): number {
  const close = stat.lastIndexOf(")");
  if (close < 0) throw new Error(`not a /proc/<pid>/stat line: ${stat.slice(0, 80)}`);
  // After ")": field 3 (state) is index 0, so utime (14) is index 11 and stime (15) index 12.
  const f = stat
    .slice(close + 1)
    .trim()
    .split(/\s+/);
  const utime = Number(f[11]);
  const stime = Number(f[12]);
  if (!Number.isInteger(utime) || !Number.isInteger(stime))
    throw new Error(`no utime/stime in /proc/<pid>/stat line: ${stat.slice(0, 80)}`);
  return utime + stime;
}

/** A member process the comparison owns. */
/** The member processes this benchmark started that are still running. */
const runningMembers = new Set<ChildProcess>();
let signalsHooked = false;

/**
 * Installed with the first member: SIGINT or SIGTERM to the benchmark sends SIGTERM to every
 * member it started (by its ChildProcess, i.e. its pid) before exiting, so that none is left
 * running with its data dir (they used to outlive a Ctrl-C).
 */
function stopMembersOnSignal(): void {
  if (signalsHooked) return;
  signalsHooked = true;
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    process.once(sig, () => {
      for (const c of runningMembers) c.kill("SIGTERM");
      process.exit(sig === "SIGINT" ? 130 : 143);
    });
  }
}

export class Member {
  readonly spec: MemberSpec;
  readonly clientPort: number;
  readonly peerPort: number;
  #child: ChildProcess | null = null;
  #cluster: ClusterRole | null = null;

  private constructor(spec: MemberSpec, clientPort: number, peerPort: number) {
    this.spec = spec;
    this.clientPort = clientPort;
    this.peerPort = peerPort;
  }

  /** Picks ports; does not start anything yet. */
  static async create(spec: MemberSpec): Promise<Member> {
    const [c, p] = await distinctFreePorts(2);
    return new Member(spec, c!, p!);
  }

  /**
   * Members of one new cluster (`specs.length` of them, named `<prefix>0`, `<prefix>1`, …) on
   * their own loopback ports, every one with the same --initial-cluster of plain http:// peer
   * URLs. Picks ports; does not start anything (startCluster does).
   */
  static async createCluster(specs: MemberSpec[], prefix: string): Promise<Member[]> {
    const ports = await distinctFreePorts(2 * specs.length);
    const members = specs.map((spec, i) => new Member(spec, ports[2 * i]!, ports[2 * i + 1]!));
    const initialCluster = members
      .map((m, i) => `${prefix}${i}=http://127.0.0.1:${m.peerPort}`)
      .join(",");
    members.forEach((m, i) => (m.#cluster = { name: `${prefix}${i}`, initialCluster }));
    return members;
  }

  /** The member's --name. */
  get name(): string {
    return this.#cluster?.name ?? "bench";
  }

  get endpoint(): string {
    return `127.0.0.1:${this.clientPort}`;
  }

  get pid(): number {
    return this.#child?.pid ?? 0;
  }

  #args(): string[] {
    const name = this.name;
    const client = `http://127.0.0.1:${this.clientPort}`;
    const peer = `http://127.0.0.1:${this.peerPort}`;
    const a = [
      "--name",
      name,
      "--data-dir",
      this.spec.dataDir,
      "--listen-client-urls",
      client,
      "--advertise-client-urls",
      client,
      "--listen-peer-urls",
      peer,
      "--initial-advertise-peer-urls",
      peer,
      "--initial-cluster",
      this.#cluster?.initialCluster ?? `${name}=${peer}`,
      "--initial-cluster-state",
      "new",
      "--log-level",
      this.spec.logLevel ?? "warn",
    ];
    if (this.spec.system === "etcd") a.push("--logger", "zap");
    a.push(...(this.spec.extraArgs ?? []));
    return a;
  }

  /**
   * Starts the process and waits until /health says true; resolves with the ms from spawn to
   * healthy. Rejects (after killing it) if it exits or stays unhealthy past HEALTH_TIMEOUT_MS.
   */
  async start(): Promise<number> {
    const t0 = this.launch();
    return await this.waitHealthy(t0);
  }

  /**
   * Spawns the process without waiting for it (a cluster's members must all be running before
   * any is healthy); returns the spawn time (performance.now()) for waitHealthy.
   */
  launch(): number {
    if (this.#child !== null)
      throw new Error(`${this.spec.system} already running (pid ${this.pid})`);
    const fd = openSync(this.spec.logFile, "a");
    const [cmd, ...pre] = this.spec.command;
    const t0 = performance.now();
    const child = spawn(cmd!, [...pre, ...this.#args()], { stdio: ["ignore", fd, fd] });
    closeSync(fd);
    this.#child = child;
    runningMembers.add(child);
    child.once("exit", () => runningMembers.delete(child));
    stopMembersOnSignal();
    return t0;
  }

  /**
   * Waits until the launched process answers /health true; resolves with the ms since `t0`.
   * Rejects (after killing it) if it exits or stays unhealthy past HEALTH_TIMEOUT_MS.
   */
  async waitHealthy(t0: number): Promise<number> {
    const child = this.#child;
    if (child === null) throw new Error(`${this.spec.system} is not running`);
    let exited = child.exitCode !== null || child.signalCode !== null;
    child.once("exit", () => (exited = true));
    const deadline = t0 + HEALTH_TIMEOUT_MS;
    while (performance.now() < deadline) {
      if (exited) {
        this.#child = null;
        throw new Error(`${this.spec.system} exited during start-up; see ${this.spec.logFile}`);
      }
      try {
        const r = await httpGet(this.clientPort, "/health", 1000);
        // only this member's own answer counts: another process may hold the port it was given
        // (picked, released, taken by someone else before the member bound it), and this member
        // then exits, while the other's /health and /metrics answer in its place
        if (
          r.status === 200 &&
          r.body.includes('"health":"true"') &&
          listensOn(child.pid!, this.clientPort)
        )
          return performance.now() - t0;
      } catch {
        // not listening yet
      }
      await sleep(HEALTH_POLL_MS);
    }
    await this.stop();
    throw new Error(
      `${this.spec.system} not healthy within ${HEALTH_TIMEOUT_MS} ms; see ${this.spec.logFile}`,
    );
  }

  /** SIGTERM, then SIGKILL after STOP_TIMEOUT_MS; resolves when the process is gone. */
  stop(): Promise<void> {
    return this.#end("SIGTERM");
  }

  /** SIGKILL (by its pid); resolves when the process is gone. */
  kill9(): Promise<void> {
    return this.#end("SIGKILL");
  }

  async #end(signal: "SIGTERM" | "SIGKILL"): Promise<void> {
    const child = this.#child;
    if (child === null) return;
    this.#child = null;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    child.kill(signal);
    const t = setTimeout(() => child.kill("SIGKILL"), STOP_TIMEOUT_MS);
    await gone;
    clearTimeout(t);
  }

  /** Resident set size of the member process, bytes (VmRSS from /proc). */
  rssBytes(): number {
    if (this.pid === 0) return 0;
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${this.pid}/status`, "utf8"));
    return m === null ? 0 : Number(m[1]) * 1024;
  }

  /**
   * CPU time the member process has used so far (user + system, all its threads), µs; null when
   * it is not running or /proc cannot be read. Reads /proc/<pid>/stat of the pid this Member
   * spawned, never a process found by name. Resolution is one clock tick (10 ms at USER_HZ 100).
   */
  cpuMicros(): number | null {
    if (this.pid === 0) return null;
    try {
      const ticks = parseProcStatCpuTicks(readFileSync(`/proc/${this.pid}/stat`, "utf8"));
      return (ticks * 1e6) / clockTicksPerSecond();
    } catch {
      return null;
    }
  }

  /** Bytes of all files under the data dir (apparent size; preallocated WAL segments count in full). */
  diskBytes(): number {
    return dirBytes(this.spec.dataDir);
  }

  /**
   * Puts one key through the v3 JSON gateway (POST /v3/kv/put, which etcd 3.4 and etcd-ts both
   * serve). Throws when the member does not answer 200.
   */
  async put(key: Buffer, value: Buffer): Promise<void> {
    const r = await httpPostJson(this.clientPort, "/v3/kv/put", {
      key: key.toString("base64"),
      value: value.toString("base64"),
    });
    if (r.status !== 200)
      throw new Error(
        `${this.spec.system}: /v3/kv/put answered ${r.status}: ${r.body.slice(0, 200)}`,
      );
  }

  /**
   * One call of etcd's v3 JSON gateway (`path` below /v3/, e.g. "auth/user/add"), with `token` in
   * the Authorization header as etcd's gateway takes it; resolves with the parsed answer. Throws
   * when the member does not answer 200. Bounded by `timeoutMs` (Authenticate and user/add run a
   * bcrypt at the member's cost).
   */
  async gateway(
    path: string,
    body: unknown,
    token?: string,
    timeoutMs = 30_000,
  ): Promise<Record<string, unknown>> {
    const headers: Record<string, string> = token === undefined ? {} : { authorization: token };
    const r = await httpPostJson(this.clientPort, `/v3/${path}`, body, timeoutMs, headers);
    if (r.status !== 200)
      throw new Error(
        `${this.spec.system}: /v3/${path} answered ${r.status}: ${r.body.slice(0, 200)}`,
      );
    return JSON.parse(r.body) as Record<string, unknown>;
  }

  /** Scrapes /metrics into name{labels} → value. */
  async metrics(): Promise<Map<string, number>> {
    const r = await httpGet(this.clientPort, "/metrics", 5000);
    const out = new Map<string, number>();
    for (const line of r.body.split("\n")) {
      if (line === "" || line.startsWith("#")) continue;
      const sp = line.lastIndexOf(" ");
      const v = Number(line.slice(sp + 1));
      if (Number.isFinite(v)) out.set(line.slice(0, sp), v);
    }
    return out;
  }
}

/**
 * Ports handed to members by this process. A port is picked (bound to 0, released) long before its
 * member starts, and the kernel may hand a released port out again: without this, two members
 * created one after the other (bench:snapshots' member and its no-snapshot twin) could get the
 * same port and one member's metrics be read from the other.
 */
const portsHandedOut = new Set<number>();

/** `n` distinct free loopback ports, none handed to another member of this process before. */
async function distinctFreePorts(n: number): Promise<number[]> {
  const ports: number[] = [];
  for (let tries = 0; ports.length < n && tries < 100 * n; tries++) {
    const p = await freePort();
    if (!ports.includes(p) && !portsHandedOut.has(p)) ports.push(p);
  }
  if (ports.length < n) throw new Error(`could not find ${n} distinct free ports`);
  for (const p of ports) portsHandedOut.add(p);
  return ports;
}

/**
 * Whether process `pid` holds the listening TCP socket on 127.0.0.1:`port` (Linux: the socket's
 * inode in /proc/net/tcp among the process's file descriptors). False when either is unreadable.
 */
export function listensOn(pid: number, port: number): boolean {
  let inode: string | undefined;
  try {
    const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, "0")}`;
    for (const line of readFileSync("/proc/net/tcp", "utf8").split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      // sl local_address rem_address st ... inode (field 9); st 0A = LISTEN
      if (f[1] === local && f[3] === "0A") inode = f[9];
    }
    if (inode === undefined) return false;
    const want = `socket:[${inode}]`;
    const dir = `/proc/${pid}/fd`;
    return readdirSync(dir).some((fd) => {
      try {
        return readlinkSync(join(dir, fd)) === want;
      } catch {
        return false;
      }
    });
  } catch {
    return false;
  }
}

/** Total size of regular files under `dir`, bytes. */
export function dirBytes(dir: string): number {
  let n = 0;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return 0;
  }
  for (const name of names) {
    const p = join(dir, name);
    const st = statSync(p);
    n += st.isDirectory() ? dirBytes(p) : st.size;
  }
  return n;
}
