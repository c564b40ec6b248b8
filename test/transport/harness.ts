/**
 * Test harness for lib/transport: transports on loopback port 0 that record what they receive
 * and what they report, a logger that keeps its entries, a raw-socket peer for hostile input,
 * and a throw-away peer PKI made with openssl (CA, one certificate per member with CN = its
 * name and SAN IP:127.0.0.1, and a certificate from an unrelated CA).
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach } from "node:test";
import { type Message, MessageType } from "../../lib/proto/gen/raftpb/raft.js";
import {
  PeerTransport,
  type PeerTlsFiles,
  type PeerTransportOptions,
  type SnapshotStatus,
  type TransportLimits,
  type TransportLogger,
} from "../../lib/transport/index.js";
import { sleep, waitFor } from "../helpers/server.js";

export interface LogEntry {
  level: "debug" | "info" | "warn" | "error";
  fields: Record<string, unknown>;
  msg: string;
}

/** A logger that keeps every entry (bounded: the oldest go past maxEntries). */
export function captureLogger(maxEntries = 5000): TransportLogger & { entries: LogEntry[] } {
  const entries: LogEntry[] = [];
  const at =
    (level: LogEntry["level"]) =>
    (fields: Record<string, unknown>, msg: string): void => {
      entries.push({ level, fields, msg });
      if (entries.length > maxEntries) entries.shift();
      if (process.env.TRANSPORT_TEST_LOG === "1") console.log(level, msg, fields);
    };
  return { entries, debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
}

/** Limits that make reconnects and timeouts quick in tests. */
export const fastLimits: Partial<TransportLimits> = {
  reconnectBackoffInitialMs: 20,
  reconnectBackoffMaxMs: 200,
  pingIntervalMs: 200,
  dialTimeoutMs: 2000,
  helloTimeoutMs: 1000,
};

/** A transport plus what it received and reported. */
export interface TestPeer {
  id: bigint;
  transport: PeerTransport;
  url: string;
  received: Message[];
  unreachable: bigint[];
  snapshots: { id: bigint; status: SnapshotStatus }[];
  removedBy: bigint[];
  /** Peers reported through onPeerRefusing, in order. */
  refusing: bigint[];
  log: ReturnType<typeof captureLogger>;
}

export interface TestPeerOptions {
  clusterId?: bigint;
  tls?: PeerTlsFiles;
  /** Listen URL; default http(s)://127.0.0.1:0. */
  listenUrl?: string;
  limits?: Partial<TransportLimits>;
  onSnapshot?: PeerTransportOptions["onSnapshot"];
  onMessage?: (m: Message) => void;
  /** Also called for each reportUnreachable / reportSnapshot (after recording it). */
  onReportUnreachable?: (id: bigint) => void;
  onReportSnapshot?: (id: bigint, status: SnapshotStatus) => void;
}

/** Starts a transport for member `id` listening on loopback. */
export async function startPeer(id: bigint, o: TestPeerOptions = {}): Promise<TestPeer> {
  const log = captureLogger();
  const p: Omit<TestPeer, "transport" | "url"> = {
    id,
    received: [],
    unreachable: [],
    snapshots: [],
    removedBy: [],
    refusing: [],
    log,
  };
  const scheme = o.tls === undefined ? "http" : "https";
  const transport = new PeerTransport({
    memberId: id,
    clusterId: o.clusterId ?? 0x1000n,
    listenUrls: [o.listenUrl ?? `${scheme}://127.0.0.1:0`],
    ...(o.tls === undefined ? {} : { tls: o.tls }),
    logger: log,
    limits: { ...fastLimits, ...o.limits },
    onMessage: (m) => {
      p.received.push(m);
      o.onMessage?.(m);
    },
    ...(o.onSnapshot === undefined ? {} : { onSnapshot: o.onSnapshot }),
    reportUnreachable: (peer) => {
      p.unreachable.push(peer);
      o.onReportUnreachable?.(peer);
    },
    reportSnapshot: (peer, status) => {
      p.snapshots.push({ id: peer, status });
      o.onReportSnapshot?.(peer, status);
    },
    onRemoved: (by) => p.removedBy.push(by),
    onPeerRefusing: (peer) => p.refusing.push(peer),
  });
  await transport.start();
  return { ...p, transport, url: transport.listenUrls[0]! };
}

/**
 * Registers an afterEach hook that stops every peer started through the returned function since
 * the last test. Call at a test file's top level.
 */
export function peerPool(): (id: bigint, o?: TestPeerOptions) => Promise<TestPeer> {
  let peers: TestPeer[] = [];
  afterEach(async () => {
    await stopAll(peers);
    peers = [];
  });
  return async (id, o = {}) => {
    const p = await startPeer(id, o);
    peers.push(p);
    return p;
  };
}

/** Makes every peer know every other. */
export function mesh(peers: TestPeer[]): void {
  for (const a of peers) for (const b of peers) if (a !== b) a.transport.addPeer(b.id, [b.url]);
}

/** Waits until every peer's outbound link to every other is connected. */
export async function waitConnected(peers: TestPeer[], timeoutMs = 10_000): Promise<void> {
  await waitFor(
    "all peer links connected",
    () =>
      peers.every((a) =>
        peers.every((b) => a === b || a.transport.peerStatus(b.id)?.connected === true),
      ),
    timeoutMs,
    10,
  );
}

/** A raft message with the fields tests care about. */
export function msg(
  from: bigint,
  to: bigint,
  type: MessageType,
  extra: Partial<Message> = {},
): Message {
  return {
    type,
    from,
    to,
    term: 1,
    logTerm: 0,
    index: 0,
    entries: [],
    commit: 0,
    reject: false,
    rejectHint: 0,
    context: new Uint8Array(0),
    ...extra,
  };
}

/** A MsgSnap for a snapshot at `index` of a two-voter configuration. */
export function snapMsg(
  from: bigint,
  to: bigint,
  index: number,
  data = new Uint8Array(0),
): Message {
  const confState = {
    voters: [1n, 2n],
    learners: [],
    votersOutgoing: [],
    learnersNext: [],
    autoLeave: false,
  };
  return msg(from, to, MessageType.MsgSnap, {
    snapshot: { data, metadata: { index, term: 1, confState } },
  });
}

/** Each peer sends `count` messages made by `make` to every other peer. */
export function sendToAll(
  peers: TestPeer[],
  count: number,
  make: (from: bigint, to: bigint, i: number) => Message,
): void {
  for (const a of peers)
    for (const b of peers)
      if (a !== b) a.transport.send(Array.from({ length: count }, (_, i) => make(a.id, b.id, i)));
}

/** Stops peers, ignoring errors. */
export async function stopAll(peers: (TestPeer | undefined)[]): Promise<void> {
  await Promise.all(peers.map((p) => p?.transport.stop().catch(() => {})));
}

/** The value of one sample line of a registry's text exposition, or undefined. */
export async function metricValue(
  p: TestPeer,
  name: string,
  labels: Record<string, string>,
): Promise<number | undefined> {
  const text = await p.transport.metrics.registry.metrics();
  const want = Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .join(",");
  for (const line of text.split("\n")) {
    if (line.startsWith(`${name}{${want}} `)) return Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return undefined;
}

/** A raw TCP connection to a peer listener for sending hand-made bytes. */
export interface RawPeer {
  socket: net.Socket;
  received: Buffer[];
  closed: Promise<void>;
  isClosed(): boolean;
}

/** Opens a raw TCP connection to `url` (http:// only). */
export async function rawConnect(url: string): Promise<RawPeer> {
  const u = new URL(url);
  const socket = net.connect({ host: u.hostname, port: Number(u.port) });
  const received: Buffer[] = [];
  let isClosed = false;
  socket.on("data", (b: Buffer) => received.push(b));
  socket.on("error", () => {});
  const closed = new Promise<void>((r) =>
    socket.once("close", () => {
      isClosed = true;
      r();
    }),
  );
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  return { socket, received, closed, isClosed: () => isClosed };
}

/** Waits for `raw` to be closed by the other side, at most timeoutMs; true when it was. */
export async function closedWithin(raw: RawPeer, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!raw.isClosed() && Date.now() < deadline) await sleep(5);
  return raw.isClosed();
}

/** Paths of a generated peer PKI. */
export interface PeerPki {
  dir: string;
  caCert: string;
  /** certFile/keyFile per member name (CN = name). */
  members: Record<string, { cert: string; key: string }>;
  /** A certificate/key signed by an unrelated CA (CN "intruder"). */
  otherCert: string;
  otherKey: string;
}

function openssl(dir: string, args: string[]): void {
  execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"], timeout: 20_000 });
}

function makeCa(dir: string, name: string, subject: string): void {
  openssl(dir, ["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", `${name}.key`]);
  openssl(dir, [
    "req", "-x509", "-new", "-key", `${name}.key`, "-sha256", "-days", "2",
    "-subj", subject, "-out", `${name}.crt`,
  ]); // prettier-ignore
}

function makeCert(dir: string, name: string, cn: string, ca: string): void {
  openssl(dir, ["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", `${name}.key`]);
  openssl(dir, ["req", "-new", "-key", `${name}.key`, "-subj", `/CN=${cn}`, "-out", `${name}.csr`]);
  openssl(dir, [
    "x509", "-req", "-in", `${name}.csr`, "-CA", `${ca}.crt`, "-CAkey", `${ca}.key`,
    "-CAcreateserial", "-sha256", "-days", "2", "-extfile", "peer.ext", "-out", `${name}.crt`,
  ]); // prettier-ignore
}

/**
 * Generates a CA and one peer certificate per name (serverAuth + clientAuth, SAN IP:127.0.0.1
 * and DNS:localhost, EC P-256 so it takes milliseconds) in a fresh temp dir. The caller removes
 * `dir`.
 */
export function generatePeerPki(names: string[]): PeerPki {
  const dir = mkdtempSync(join(tmpdir(), "etcd-ts-peer-pki-"));
  writeFileSync(
    join(dir, "peer.ext"),
    [
      "basicConstraints=CA:FALSE",
      "keyUsage=digitalSignature,keyEncipherment",
      "extendedKeyUsage=serverAuth,clientAuth",
      "subjectAltName=IP:127.0.0.1,DNS:localhost",
      "",
    ].join("\n"),
  );
  makeCa(dir, "ca", "/CN=etcd-ts peer test CA");
  const members: PeerPki["members"] = {};
  for (const n of names) {
    makeCert(dir, n, n, "ca");
    members[n] = { cert: join(dir, `${n}.crt`), key: join(dir, `${n}.key`) };
  }
  makeCa(dir, "other-ca", "/CN=unrelated CA");
  makeCert(dir, "intruder", "intruder", "other-ca");
  return {
    dir,
    caCert: join(dir, "ca.crt"),
    members,
    otherCert: join(dir, "intruder.crt"),
    otherKey: join(dir, "intruder.key"),
  };
}

/** The --peer-* files for member `name` of `pki`. */
export function peerTlsFiles(
  pki: PeerPki,
  name: string,
  o: Partial<PeerTlsFiles> = {},
): PeerTlsFiles {
  return {
    certFile: pki.members[name]!.cert,
    keyFile: pki.members[name]!.key,
    trustedCaFile: pki.caCert,
    clientCertAuth: true,
    allowedCn: "",
    ...o,
  };
}
