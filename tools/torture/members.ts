/**
 * The members a torture run starts and hurts: each an OS process (etcd-ts by default, or any
 * etcd given by --server-command) on loopback ports, with its own data dir and log file under the
 * run's output directory. The tool owns these processes and signals them by pid only: SIGKILL
 * (crash, or power loss when the member simulates it), SIGSTOP / SIGCONT (pause), SIGTERM
 * (graceful restart). Failpoints are set over etcd-ts's HTTP endpoint on the client port.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, mkdirSync, openSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { computeMemberId } from "../../lib/server/index.js";
import { PeerProxy } from "./peer-proxy.js";

/** How long a member may take to answer /health with true after a start, ms. */
export const MEMBER_START_TIMEOUT_MS = 30_000;
/** How long a SIGTERM may take before SIGKILL, ms. */
const STOP_TIMEOUT_MS = 10_000;

/** A command line to start a member: the program and its leading arguments. */
export interface ServerCommand {
  cmd: string;
  args: string[];
  /** True for etcd-ts (failpoints and simulated power loss are available). */
  etcdTs: boolean;
}

/** etcd-ts as built next to this tool (dist/tools/etcd-ts.js), run by this Node. */
export function etcdTsCommand(): ServerCommand {
  const script = fileURLToPath(new URL("../etcd-ts.js", import.meta.url));
  return { cmd: process.execPath, args: [script], etcdTs: true };
}

/** Splits a --server-command value on spaces ("/usr/bin/etcd", "node dist/tools/etcd-ts.js"). */
export function parseServerCommand(text: string): ServerCommand {
  const words = text.split(/\s+/).filter((w) => w !== "");
  if (words.length === 0) throw new Error("--server-command is empty");
  return { cmd: words[0]!, args: words.slice(1), etcdTs: /etcd-ts(\.js)?$/.test(words.at(-1)!) };
}

/** A free loopback TCP port (bound and released; another process could take it in between). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/** A plain HTTP request on loopback with a timeout; resolves to status and body. */
export function httpCall(
  url: string,
  opts: { method?: string; body?: string; timeoutMs?: number } = {},
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: opts.method ?? "GET", agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => {
        if (body.length < 1 << 20) body += c;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      res.on("error", reject);
    });
    const timer = setTimeout(
      () => req.destroy(new Error(`no answer within ${opts.timeoutMs ?? 1000} ms: ${url}`)),
      opts.timeoutMs ?? 1000,
    );
    req.on("close", () => clearTimeout(timer));
    req.on("error", reject);
    req.end(opts.body);
  });
}

/** What a member is: its name, ports and files. */
export interface MemberSpec {
  name: string;
  clientPort: number;
  /** The port the member listens for peers on. */
  peerPort: number;
  /** The peer port the cluster knows it by: its PeerProxy's, or peerPort without proxies. */
  advertisedPeerPort: number;
  /** The member id etcd derives from the advertised peer URL and the cluster token. */
  id: bigint;
  dataDir: string;
  logFile: string;
}

/** Options shared by every member of a run. */
export interface MemberRunOptions {
  command: ServerCommand;
  /** Extra flags for every start (after etcd's cluster flags). */
  extraArgs: string[];
  /** Extra environment variables for every start. */
  env: Record<string, string>;
  /** How long a start may take to be healthy, ms (default MEMBER_START_TIMEOUT_MS). */
  startTimeoutMs?: number;
}

/** One member process (see the module comment). */
export class MemberProcess {
  readonly spec: MemberSpec;
  readonly #run: MemberRunOptions;
  readonly #clusterArgs: string[];
  #child: ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();
  #paused = false;
  /** Times the member's process ended without the tool killing or stopping it (a panic). */
  unexpectedExits = 0;
  #expectingExit = false;
  /** Called when the process ends (with the exit code or signal). */
  onExit: (info: string) => void = () => {};

  constructor(
    spec: MemberSpec,
    cluster: { initialCluster: string; token: string },
    run: MemberRunOptions,
  ) {
    this.spec = spec;
    this.#run = run;
    const clientUrl = `http://127.0.0.1:${spec.clientPort}`;
    const peerUrl = `http://127.0.0.1:${spec.peerPort}`;
    const advertisedPeerUrl = `http://127.0.0.1:${spec.advertisedPeerPort}`;
    this.#clusterArgs = [
      "--name",
      spec.name,
      "--data-dir",
      spec.dataDir,
      "--listen-client-urls",
      clientUrl,
      "--advertise-client-urls",
      clientUrl,
      "--listen-peer-urls",
      peerUrl,
      "--initial-advertise-peer-urls",
      advertisedPeerUrl,
      "--initial-cluster",
      cluster.initialCluster,
      "--initial-cluster-state",
      "new",
      "--initial-cluster-token",
      cluster.token,
    ];
  }

  /** "127.0.0.1:port" of the client API. */
  get endpoint(): string {
    return `127.0.0.1:${this.spec.clientPort}`;
  }

  /** The process id, 0 when not running. */
  get pid(): number {
    return this.#child?.pid ?? 0;
  }

  /** True while the process runs (paused or not). */
  get running(): boolean {
    return this.#child !== undefined;
  }

  get paused(): boolean {
    return this.#paused;
  }

  /** Spawns the process and waits until /health says true (throws after the timeout, killing it). */
  async start(timeoutMs = this.#run.startTimeoutMs ?? MEMBER_START_TIMEOUT_MS): Promise<void> {
    if (this.#child !== undefined) return;
    mkdirSync(join(this.spec.dataDir, ".."), { recursive: true });
    const fd = openSync(this.spec.logFile, "a");
    let child: ChildProcess;
    try {
      child = spawn(
        this.#run.command.cmd,
        [...this.#run.command.args, ...this.#clusterArgs, ...this.#run.extraArgs],
        {
          stdio: ["ignore", fd, fd],
          env: { ...cleanEnv(), ...this.#run.env },
        },
      );
    } finally {
      closeSync(fd);
    }
    this.#child = child;
    this.#paused = false;
    this.#expectingExit = false;
    this.#exited = new Promise((resolve) => {
      const done = (info: string) => {
        if (this.#child === child) this.#child = undefined;
        if (!this.#expectingExit) this.unexpectedExits++;
        this.onExit(info);
        resolve();
      };
      child.once("exit", (code, signal) => done(`exit code=${code} signal=${signal}`));
      child.once("error", (err) => done(`spawn error: ${err.message}`));
    });
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.#child !== child)
        throw new Error(
          `member ${this.spec.name} exited while starting (see ${this.spec.logFile})`,
        );
      if (await this.healthy()) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    await this.kill9();
    throw new Error(
      `member ${this.spec.name} not healthy within ${timeoutMs} ms (see ${this.spec.logFile})`,
    );
  }

  /** GET /health answered {"health":"true"} within a second. */
  async healthy(): Promise<boolean> {
    if (this.#child === undefined || this.#paused) return false;
    try {
      const r = await httpCall(`http://${this.endpoint}/health`, { timeoutMs: 1000 });
      return r.status === 200 && (JSON.parse(r.body) as { health?: string }).health === "true";
    } catch {
      return false;
    }
  }

  /**
   * The leader this member reports (Maintenance.Status through the JSON gateway), 0n when it has
   * none or does not answer within a second.
   */
  async leaderId(): Promise<bigint> {
    if (this.#child === undefined || this.#paused) return 0n;
    try {
      const r = await httpCall(`http://${this.endpoint}/v3/maintenance/status`, {
        method: "POST",
        body: "{}",
        timeoutMs: 1000,
      });
      if (r.status !== 200) return 0n;
      return BigInt((JSON.parse(r.body) as { leader?: string }).leader ?? "0");
    } catch {
      return 0n;
    }
  }

  #signal(signal: NodeJS.Signals): boolean {
    const pid = this.pid;
    if (pid === 0) return false;
    try {
      process.kill(pid, signal);
      return true;
    } catch {
      return false;
    }
  }

  /** SIGKILL (resuming a paused process first is not needed: SIGKILL ends it) and waits for it. */
  async kill9(): Promise<void> {
    this.#expectingExit = true;
    if (this.#signal("SIGKILL")) await this.#exited;
    this.#paused = false;
  }

  /** SIGTERM, SIGKILL after a bound; waits for the exit. */
  async stop(): Promise<void> {
    this.#expectingExit = true;
    if (this.#paused) this.resume();
    if (!this.#signal("SIGTERM")) return;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      this.#exited.then(() => false),
      new Promise<boolean>((r) => (timer = setTimeout(() => r(true), STOP_TIMEOUT_MS))),
    ]);
    clearTimeout(timer);
    if (timedOut) await this.kill9();
  }

  /** SIGSTOP: the process stops where it is (its sockets stay open). */
  pause(): void {
    if (this.#signal("SIGSTOP")) this.#paused = true;
  }

  /** SIGCONT after pause(). */
  resume(): void {
    if (this.#paused && this.#signal("SIGCONT")) this.#paused = false;
  }

  /** Resolves when the current process has ended. */
  exited(): Promise<void> {
    return this.#exited;
  }

  /** Sets an etcd-ts failpoint over HTTP (needs --experimental-failpoints-http). Throws on refusal. */
  async setFailpoint(name: string, terms: string): Promise<void> {
    const r = await httpCall(`http://${this.endpoint}/debug/failpoints/${name}`, {
      method: "PUT",
      body: terms,
      timeoutMs: 2000,
    });
    if (r.status !== 204)
      throw new Error(`failpoint ${name}=${terms}: HTTP ${r.status} ${r.body.trim()}`);
  }

  /** Unsets an etcd-ts failpoint; errors (a dead member) are ignored. */
  async clearFailpoint(name: string): Promise<void> {
    await httpCall(`http://${this.endpoint}/debug/failpoints/${name}`, {
      method: "DELETE",
      timeoutMs: 1000,
    }).catch(() => undefined);
  }
}

/** The parent's environment without ETCD_* variables (they would change a member's flags). */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("ETCD")) env[k] = v;
  return env;
}

/**
 * Picks ports and paths for `count` members under `outDir` and builds their processes (not yet
 * started): names m1..mN, data in `<outDir>/data/<name>`, logs in `<outDir>/<name>.log`. With
 * `proxies`, each member's advertised peer port is a PeerProxy's (started here, closed by the
 * caller) in front of its real one, so a fault can cut it off from the others.
 */
export async function planMembers(
  count: number,
  outDir: string,
  token: string,
  run: MemberRunOptions,
  proxies = false,
): Promise<{ members: MemberProcess[]; proxies: PeerProxy[] }> {
  const used = new Set<number>();
  const port = async () => {
    for (;;) {
      const p = await freePort();
      if (!used.has(p)) {
        used.add(p);
        return p;
      }
    }
  };
  const specs: MemberSpec[] = [];
  for (let i = 1; i <= count; i++) {
    const name = `m${i}`;
    const peerPort = await port();
    const advertisedPeerPort = proxies ? await port() : peerPort;
    specs.push({
      name,
      clientPort: await port(),
      peerPort,
      advertisedPeerPort,
      id: computeMemberId([`http://127.0.0.1:${advertisedPeerPort}`], token),
      dataDir: join(outDir, "data", name),
      logFile: join(outDir, `${name}.log`),
    });
  }
  const started: PeerProxy[] = [];
  try {
    if (proxies)
      for (const s of specs)
        started.push(await PeerProxy.start(s.advertisedPeerPort, s.peerPort, s.id));
  } catch (err) {
    for (const p of started) p.close();
    throw err;
  }
  const initialCluster = specs
    .map((s) => `${s.name}=http://127.0.0.1:${s.advertisedPeerPort}`)
    .join(",");
  return {
    members: specs.map((s) => new MemberProcess(s, { initialCluster, token }, run)),
    proxies: started,
  };
}
