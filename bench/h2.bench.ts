/**
 * bench/h2: requests/s of unary Put calls through lib/h2 ("fast") versus @grpc/grpc-js with the
 * same in-memory handler (a Map set, no storage), at 1, 128 and 1000 concurrent clients, driven
 * by bench/load's raw HTTP/2 gRPC client in this process; the server runs in a child process so
 * its CPU per request can be measured (process.cpuUsage, µs).
 *
 *   node dist/bench/h2.bench.js [--seconds 5] [--transports fast,grpc-js] [--clients 1,128,1000] [--prof DIR]
 *
 * --prof DIR runs each server under `node --cpu-prof --cpu-prof-dir DIR` and prints its top
 * self-time functions. Never a timed test: numbers go to stdout only.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import net from "node:net";
import * as grpc from "@grpc/grpc-js";
import { H2GrpcServer, unaryMethod } from "../lib/h2/index.js";
import { kVDefinition } from "../lib/proto/gen/etcdserverpb/rpc.grpc-server.js";
import { PutRequest, PutResponse, ResponseHeader } from "../lib/proto/gen/etcdserverpb/rpc.js";
import { defaultLoadOptions, runLoad } from "./load/index.js";

type Transport = "fast" | "grpc-js";

const store = new Map<string, Uint8Array>();
let revision = 0;
async function put(req: PutRequest): Promise<PutResponse> {
  store.set(Buffer.from(req.key).toString("latin1"), req.value);
  return PutResponse.create({
    header: ResponseHeader.create({
      clusterId: 1n,
      memberId: 2n,
      revision: ++revision,
      raftTerm: 2,
    }),
  });
}

/** Child mode: serve Put on an ephemeral port, print "PORT n", answer "cpu" lines with cpuUsage. */
async function serve(transport: Transport): Promise<void> {
  let port: number;
  if (transport === "fast") {
    const h2 = new H2GrpcServer(
      new Map([["/etcdserverpb.KV/Put", unaryMethod(PutRequest, PutResponse, put)]]),
    );
    const srv = net.createServer((s) => {
      s.setNoDelay(true);
      h2.handleConnection(s);
    });
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
    port = (srv.address() as net.AddressInfo).port;
  } else {
    const srv = new grpc.Server({ "grpc.max_concurrent_streams": 2 ** 31 - 1 });
    srv.addService(kVDefinition, {
      put: (
        call: grpc.ServerUnaryCall<PutRequest, PutResponse>,
        cb: grpc.sendUnaryData<PutResponse>,
      ) => {
        put(call.request).then(
          (r) => cb(null, r),
          (e: Error) => cb(e, null),
        );
      },
    } as unknown as grpc.UntypedServiceImplementation as never);
    port = await new Promise<number>((resolve, reject) =>
      srv.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) =>
        err ? reject(err) : resolve(p),
      ),
    );
  }
  process.stdout.write(`PORT ${port}\n`);
  const rl = createInterface({ input: process.stdin });
  rl.on("line", (line) => {
    if (line === "cpu") {
      const u = process.cpuUsage();
      process.stdout.write(`CPU ${u.user + u.system}\n`);
    }
  });
  rl.on("close", () => process.exit(0));
}

class Child {
  readonly proc: ChildProcess;
  #lines: string[] = [];
  #waiters: (() => void)[] = [];
  constructor(transport: Transport, profDir: string | undefined) {
    const args = [
      ...(profDir ? ["--cpu-prof", "--cpu-prof-dir", profDir] : []),
      fileURLToPath(import.meta.url),
      "--serve",
      transport,
    ];
    this.proc = spawn(process.execPath, args, { stdio: ["pipe", "pipe", "inherit"] });
    createInterface({ input: this.proc.stdout! }).on("line", (l) => {
      this.#lines.push(l);
      for (const w of this.#waiters.splice(0)) w();
    });
  }
  async line(prefix: string): Promise<string> {
    for (;;) {
      const i = this.#lines.findIndex((l) => l.startsWith(prefix));
      if (i >= 0) return this.#lines.splice(i, 1)[0].slice(prefix.length);
      await new Promise<void>((r) => this.#waiters.push(r));
    }
  }
  async cpuUs(): Promise<number> {
    this.proc.stdin!.write("cpu\n");
    return Number(await this.line("CPU "));
  }
  async stop(): Promise<void> {
    const exited = new Promise((r) => this.proc.once("exit", r));
    this.proc.stdin!.end();
    await exited;
  }
}

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : dflt;
}

/** Top self-time functions of the newest .cpuprofile in dir. */
function topFunctions(dir: string, n: number): string[] {
  const files = readdirSync(dir)
    .filter((f) => f.endsWith(".cpuprofile"))
    .sort();
  if (files.length === 0) return [];
  const prof = JSON.parse(readFileSync(join(dir, files[files.length - 1]), "utf8")) as {
    nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
    samples: number[];
  };
  const byId = new Map(prof.nodes.map((nd) => [nd.id, nd]));
  const counts = new Map<string, number>();
  for (const s of prof.samples) {
    const cf = byId.get(s)!.callFrame;
    const key = `${cf.functionName || "(anonymous)"} ${cf.url.replace(/^.*\/(node_modules|dist)\//, "$1/")}:${cf.lineNumber + 1}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  const total = prof.samples.length;
  return [...counts.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([k, c]) => `${((100 * c) / total).toFixed(1).padStart(5)}%  ${k}`);
}

async function main(): Promise<void> {
  const seconds = Number(arg("seconds", "5"));
  const transports = arg("transports", "fast,grpc-js").split(",") as Transport[];
  const clientCounts = arg("clients", "1,128,1000").split(",").map(Number);
  const profDir = process.argv.includes("--prof") ? arg("prof", "/tmp/h2-prof") : undefined;
  console.log(
    `Put through lib/h2 vs @grpc/grpc-js, in-memory handler, ${seconds}s per row, client: bench/load raw h2`,
  );
  console.log("transport  clients  conns  req/s      p99 ms   server CPU µs/req");
  for (const transport of transports) {
    for (const clients of clientCounts) {
      const dir = profDir === undefined ? undefined : join(profDir, `${transport}-${clients}`);
      const child = new Child(transport, dir);
      const port = Number(await child.line("PORT "));
      const conns = Math.min(clients, 100);
      const o = {
        ...defaultLoadOptions("put"),
        endpoints: [`127.0.0.1:${port}`],
        clients,
        conns,
        durationSeconds: 1,
        keySpaceSize: 100_000,
      };
      await runLoad(o); // warm-up
      const cpu0 = await child.cpuUs();
      const r = await runLoad({ ...o, durationSeconds: seconds });
      const cpu1 = await child.cpuUs();
      await child.stop();
      const cpuPerReq = (cpu1 - cpu0) / Math.max(1, r.requests);
      console.log(
        `${transport.padEnd(9)}  ${String(clients).padStart(7)}  ${String(conns).padStart(5)}  ${r.requestsPerSecond.toFixed(0).padStart(8)}  ${r.latencyMs.p99.toFixed(2).padStart(7)}  ${cpuPerReq.toFixed(1).padStart(8)}${r.errors > 0 ? `  (${r.errors} errors)` : ""}`,
      );
      if (dir !== undefined) for (const l of topFunctions(dir, 12)) console.log(`      ${l}`);
    }
  }
}

if (process.argv.includes("--serve")) void serve(arg("serve", "fast") as Transport);
else
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
