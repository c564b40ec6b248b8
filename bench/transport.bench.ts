/**
 * lib/transport benchmarks (DESIGN §7: measured here, never in timed tests):
 *  - mitata: encoding raft messages into frames and decoding them back (frames/s of the CPU path
 *    alone: protobuf-ts encode/decode plus framing), for heartbeats and for MsgApp with one entry;
 *  - loopback: messages/s and MB/s from one PeerTransport to another over 127.0.0.1, plain TCP
 *    and mutual TLS, both transports in this process (so the figure is the whole path's CPU on one
 *    thread: encode, batch, socket, decode, deliver). The sender keeps at most `window` messages
 *    outstanding so the per-peer queue (4096) never drops.
 *
 *   npx tsc -p . && node dist/bench/transport.bench.js [--messages N] [--bytes B] [--window W]
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { bench, do_not_optimize, group, run } from "mitata";
import {
  type Message,
  Message as MessageCodec,
  MessageType,
} from "../lib/proto/gen/raftpb/raft.js";
import { FRAME_HEADER_BYTES, FrameDecoder, encodeFrames } from "../lib/transport/frame.js";
import { PeerTransport, type PeerTlsFiles, type TransportLogger } from "../lib/transport/index.js";
import { messageSize } from "../lib/transport/message-codec.js";
import { SendQueue } from "../lib/transport/send-queue.js";

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
}

function message(type: MessageType, index: number, entryBytes: number): Message {
  return {
    type,
    from: 1n,
    to: 2n,
    term: 7,
    logTerm: 7,
    index,
    entries:
      entryBytes > 0
        ? [{ type: 0, term: 7, index: index + 1, data: new Uint8Array(entryBytes).fill(3) }]
        : [],
    commit: index,
    reject: false,
    rejectHint: 0,
    context: new Uint8Array(0),
  };
}

const batch = 256;

function codecBench(label: string, msgs: Message[]): void {
  const bodies = msgs.map((m) => MessageCodec.toBinary(m));
  let total = 0;
  for (const b of bodies) total += FRAME_HEADER_BYTES + b.length;
  const framed = encodeFrames(bodies, 0, bodies.length, total);
  group(`${label}: ${batch} per batch, ${bodies[0]!.length} B each`, () => {
    bench(`encode ${batch} ${label} into frames (send queue, hand encoder)`, () => {
      const q = new SendQueue(batch, 1 << 30);
      for (const m of msgs) q.push(m, messageSize(m));
      do_not_optimize(q.takeBatch(1 << 30));
    });
    bench(`encode ${batch} ${label} into frames (protobuf-ts toBinary)`, () => {
      const bs = msgs.map((m) => MessageCodec.toBinary(m));
      let n = 0;
      for (const b of bs) n += FRAME_HEADER_BYTES + b.length;
      do_not_optimize(encodeFrames(bs, 0, bs.length, n));
    });
    bench(`decode ${batch} ${label} frames`, () => {
      const d = new FrameDecoder(1 << 20, false);
      d.push(framed);
      let k = 0;
      for (let f = d.next(); f !== undefined; f = d.next())
        if (f.kind === "data") k += MessageCodec.fromBinary(f.body).index;
      do_not_optimize(k);
    });
  });
}

codecBench(
  "MsgHeartbeat",
  Array.from({ length: batch }, (_, i) => message(MessageType.MsgHeartbeat, i, 0)),
);
codecBench(
  "MsgApp (1 entry of 128 B)",
  Array.from({ length: batch }, (_, i) => message(MessageType.MsgApp, i, 128)),
);

const result = await run();
// Median and best batch times as frames/s (the mean is skewed by a busy machine's stalls).
for (const trial of result.benchmarks) {
  const stats = trial.runs[0]?.stats;
  if (stats === undefined) continue;
  const perSec = (ns: number): string => Math.round(batch / (ns / 1e9)).toLocaleString("en-US");
  console.log(
    `${trial.alias}: ${perSec(stats.p50)} frames/s (median), ${perSec(stats.min)} (best)`,
  );
}

const quietLogger: TransportLogger = {
  debug: () => {},
  info: () => {},
  warn: (f, m) => console.error("warn", m, f),
  error: (f, m) => console.error("error", m, f),
};

/** Throw-away CA and two peer certificates (CN m1, m2; SAN IP:127.0.0.1). */
function makePki(dir: string): { m1: PeerTlsFiles; m2: PeerTlsFiles } {
  const o = (args: string[]): void => {
    execFileSync("openssl", args, { cwd: dir, stdio: "ignore" });
  };
  writeFileSync(
    join(dir, "peer.ext"),
    "extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=IP:127.0.0.1\n",
  );
  o(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key"]);
  o(["req", "-x509", "-new", "-key", "ca.key", "-days", "1", "-subj", "/CN=ca", "-out", "ca.crt"]);
  const files = (n: string): PeerTlsFiles => {
    o(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", `${n}.key`]);
    o(["req", "-new", "-key", `${n}.key`, "-subj", `/CN=${n}`, "-out", `${n}.csr`]);
    o([
      "x509", "-req", "-in", `${n}.csr`, "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
      "-days", "1", "-extfile", "peer.ext", "-out", `${n}.crt`,
    ]); // prettier-ignore
    return {
      certFile: join(dir, `${n}.crt`),
      keyFile: join(dir, `${n}.key`),
      trustedCaFile: join(dir, "ca.crt"),
      clientCertAuth: true,
      allowedCn: "",
    };
  };
  return { m1: files("m1"), m2: files("m2") };
}

async function loopback(
  label: string,
  tls: { m1: PeerTlsFiles; m2: PeerTlsFiles } | undefined,
  count: number,
  entryBytes: number,
  window: number,
): Promise<void> {
  let received = 0;
  let wake: (() => void) | undefined;
  const scheme = tls === undefined ? "http" : "https";
  const make = (id: bigint, files: PeerTlsFiles | undefined, onMessage: () => void) =>
    new PeerTransport({
      memberId: id,
      clusterId: 1n,
      listenUrls: [`${scheme}://127.0.0.1:0`],
      ...(files === undefined ? {} : { tls: files }),
      logger: quietLogger,
      onMessage,
      reportUnreachable: () => {},
      reportSnapshot: () => {},
    });
  const a = make(1n, tls?.m1, () => {});
  const b = make(2n, tls?.m2, () => {
    received++;
    if (wake !== undefined && received % 256 === 0) {
      const w = wake;
      wake = undefined;
      w();
    }
  });
  await a.start();
  await b.start();
  a.addPeer(2n, b.listenUrls);
  b.addPeer(1n, a.listenUrls);
  while (a.peerStatus(2n)?.connected !== true) await new Promise((r) => setTimeout(r, 5));
  const type = entryBytes > 0 ? MessageType.MsgApp : MessageType.MsgHeartbeat;
  const template = Array.from({ length: 256 }, (_, i) => message(type, i, entryBytes));
  const bytesPerMessage = MessageCodec.toBinary(template[0]!).length + FRAME_HEADER_BYTES;
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  // Whole batches only, so `received` passes every multiple of 256 and each one wakes us.
  const total = Math.ceil(count / 256) * 256;
  let sent = 0;
  while (received < total) {
    while (sent < total && sent - received < window) {
      a.send(template);
      sent += template.length;
    }
    await new Promise<void>((r) => (wake = r));
  }
  const s = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  await a.stop();
  await b.stop();
  const drops = a.metrics.peer("2").droppedMessages;
  console.log(
    `loopback ${label}: ${count.toLocaleString("en-US")} ${MessageType[type]} of ${bytesPerMessage} B framed: ` +
      `${Math.round(received / s).toLocaleString("en-US")} messages/s, ` +
      `${((received * bytesPerMessage) / s / 1e6).toFixed(1)} MB/s, ` +
      `CPU ${((cpu.user + cpu.system) / received).toFixed(2)} µs/message (both ends, one thread)` +
      (drops > 0 ? `, ${drops} dropped` : ""),
  );
}

const count = arg("messages", 1_000_000);
const bytes = arg("bytes", 128);
const window = arg("window", 3072);
const dir = mkdtempSync(join(tmpdir(), "etcd-ts-transport-bench-"));
try {
  const pki = makePki(dir);
  await loopback("tcp (warm-up)", undefined, Math.min(count, 100_000), bytes, window);
  await loopback("tcp", undefined, count, 0, window);
  await loopback("tcp", undefined, count, bytes, window);
  await loopback("mutual TLS", pki, count, 0, window);
  await loopback("mutual TLS", pki, count, bytes, window);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
