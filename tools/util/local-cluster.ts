/**
 * `etcd-ts-util local-cluster --members 3 [--tls]`: a cluster on loopback for trying etcd-ts, as
 * etcd's Procfile (infra1..3 on client ports 2379, 22379, 32379 and peer ports 2380, 22380,
 * 32380). With --tls, a CA and certificates are generated with openssl into <dir>/certs and used
 * for both the client and the peer URLs (--client-cert-auth, --peer-client-cert-auth). Prints the
 * endpoints and an etcdctl line; SIGINT / SIGTERM stop the members (by pid) and exit.
 */
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { mkdirSync, openSync, closeSync, readFileSync, writeFileSync } from "node:fs";
import https from "node:https";
import http from "node:http";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { UtilUsageError } from "./errors.js";

/** Client port offsets of etcd's Procfile members (infra1 2379, infra2 22379, infra3 32379). */
const portOffsets = [0, 20_000, 30_000, 40_000, 50_000];
/** Bound on every member answering /health. */
const startTimeoutMs = 60_000;

/** Options of local-cluster. */
export interface LocalClusterOptions {
  members: number;
  tls: boolean;
  dir: string;
  /** Client port of the first member; its peer port is the next one. */
  basePort: number;
}

/** Parses `--members N --tls --dir D --base-port P`. Throws UtilUsageError. */
export function parseLocalClusterArgs(flags: Map<string, string>): LocalClusterOptions {
  const members = Number(flags.get("members") ?? "3");
  if (![1, 3, 5].includes(members)) throw new UtilUsageError("--members must be 1, 3 or 5");
  const basePort = Number(flags.get("base-port") ?? "2379");
  if (!Number.isInteger(basePort) || basePort < 1 || basePort + 50_001 > 65_535) {
    throw new UtilUsageError("--base-port must leave room for 5 members (at most 15534)");
  }
  return {
    members,
    tls: flags.get("tls") === "true",
    dir: resolve(flags.get("dir") ?? "local-cluster"),
    basePort,
  };
}

function openssl(args: string[], cwd: string): void {
  execFileSync("openssl", args, { cwd, stdio: ["ignore", "ignore", "pipe"] });
}

/** A CA, a member certificate (serverAuth + clientAuth, SAN 127.0.0.1 and localhost), a client one. */
function generateCerts(dir: string): { ca: string; cert: string; key: string } {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeFileSync(
    join(dir, "member.ext"),
    "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n" +
      "extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
  );
  openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key"], dir);
  openssl(
    ["req", "-x509", "-new", "-key", "ca.key", "-sha256", "-days", "30"].concat([
      "-subj",
      "/CN=etcd-ts local-cluster CA",
      "-out",
      "ca.crt",
    ]),
    dir,
  );
  openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "member.key"], dir);
  openssl(["req", "-new", "-key", "member.key", "-subj", "/CN=etcd-ts", "-out", "member.csr"], dir);
  openssl(
    [
      "x509",
      "-req",
      "-in",
      "member.csr",
      "-CA",
      "ca.crt",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
    ].concat(["-sha256", "-days", "30", "-extfile", "member.ext", "-out", "member.crt"]),
    dir,
  );
  return { ca: join(dir, "ca.crt"), cert: join(dir, "member.crt"), key: join(dir, "member.key") };
}

function healthy(url: string, certs: { ca: string; cert: string; key: string } | undefined) {
  return new Promise<boolean>((res) => {
    const opts = certs
      ? { ca: readFileSync(certs.ca), cert: readFileSync(certs.cert), key: readFileSync(certs.key) }
      : {};
    const req = (url.startsWith("https") ? https : http).get(
      `${url}/health`,
      { ...opts, timeout: 2000, agent: false },
      (r) => {
        let body = "";
        r.on("data", (c: Buffer) => (body += c.toString()));
        r.on("end", () => res(body.includes('"true"')));
      },
    );
    req.on("error", () => res(false));
    req.on("timeout", () => req.destroy());
  });
}

/**
 * Starts the members and resolves once each answers /health; `print` receives the lines to show.
 * Resolves with a stop function that ends them (SIGTERM by pid) and waits for their exit.
 */
export async function startLocalCluster(
  o: LocalClusterOptions,
  print: (line: string) => void,
): Promise<{ stop(): Promise<void>; endpoints: string[] }> {
  mkdirSync(o.dir, { recursive: true });
  const certs = o.tls ? generateCerts(join(o.dir, "certs")) : undefined;
  const scheme = o.tls ? "https" : "http";
  const ms = Array.from({ length: o.members }, (_, i) => ({
    name: `infra${i + 1}`,
    client: `${scheme}://127.0.0.1:${o.basePort + portOffsets[i]!}`,
    peer: `${scheme}://127.0.0.1:${o.basePort + portOffsets[i]! + 1}`,
  }));
  const initialCluster = ms.map((m) => `${m.name}=${m.peer}`).join(",");
  const binary = join(dirname(fileURLToPath(import.meta.url)), "..", "etcd-ts.js");
  const children: ChildProcess[] = [];
  for (const m of ms) {
    const args = [
      binary,
      ...["--name", m.name, "--data-dir", join(o.dir, `${m.name}.etcd`)],
      ...["--listen-client-urls", m.client, "--advertise-client-urls", m.client],
      ...["--listen-peer-urls", m.peer, "--initial-advertise-peer-urls", m.peer],
      ...["--initial-cluster", initialCluster, "--initial-cluster-token", "etcd-cluster-1"],
      ...["--initial-cluster-state", "new"],
    ];
    if (certs !== undefined) {
      args.push("--cert-file", certs.cert, "--key-file", certs.key, "--trusted-ca-file", certs.ca);
      args.push("--client-cert-auth", "--peer-cert-file", certs.cert, "--peer-key-file", certs.key);
      args.push("--peer-trusted-ca-file", certs.ca, "--peer-client-cert-auth");
    }
    const log = openSync(join(o.dir, `${m.name}.log`), "a");
    children.push(spawn(process.execPath, args, { stdio: ["ignore", log, log] }));
    closeSync(log);
  }
  const stop = async () => {
    await Promise.all(
      children.map(
        (c) =>
          new Promise<void>((res) => {
            if (c.exitCode !== null || c.pid === undefined) return res();
            c.once("exit", () => res());
            process.kill(c.pid, "SIGTERM");
          }),
      ),
    );
  };
  const deadline = Date.now() + startTimeoutMs;
  for (const m of ms) {
    while (!(await healthy(m.client, certs))) {
      if (Date.now() > deadline || children.some((c) => c.exitCode !== null)) {
        await stop();
        throw new Error(`${m.name} did not become healthy; see ${join(o.dir, `${m.name}.log`)}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  const endpoints = ms.map((m) => m.client);
  for (const m of ms)
    print(`${m.name}: client ${m.client}, peer ${m.peer}, pid ${children[ms.indexOf(m)]!.pid}`);
  const tlsFlags = certs ? ` --cacert ${certs.ca} --cert ${certs.cert} --key ${certs.key}` : "";
  print(`etcdctl --endpoints ${endpoints.join(",")}${tlsFlags} member list -w table`);
  print(`logs and data in ${o.dir}; Ctrl-C stops the members`);
  return { stop, endpoints };
}
