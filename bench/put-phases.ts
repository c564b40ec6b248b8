#!/usr/bin/env node
/**
 * bench/put-phases — where the time of one client's sequential puts goes, from a loopback packet
 * capture taken while they ran (issue 14: put p99 at 1 client on a 3-member cluster).
 *
 *   tcpdump -r CAPTURE.pcap -tt -nn > CAPTURE.txt
 *   node dist/bench/put-phases.js CAPTURE.txt CLIENT_PORT [LEADER_PEER_PORT FOLLOWER_PEER_PORT...]
 *
 * `bench/cluster-cpu.sh` takes the capture and runs this with CAPTURE=1 (tcpdump from Debian's
 * package of that name; ENTRY=leader, so that the client's member is the leader). CLIENT_PORT is
 * the client port of the member the puts went to. Each put is a request segment towards it (more
 * than 40 payload bytes: HEADERS + DATA; PING, WINDOW_UPDATE and SETTINGS frames alone are 13-47
 * bytes; a request whose HEADERS and DATA came in two segments counts from its DATA) and the first
 * segment back of at least 60 bytes (the response: HEADERS, DATA and trailers in one write, 64
 * bytes from etcd 3.4 and 95 from etcd-ts). Prints, in µs:
 *
 * - server: request in to response out, the member's whole share of a put as the wire sees it;
 * - client turnaround: response in to the next request out, the client's own share between two
 *   puts (its goroutines waking and marshalling the next put): a client starved of CPU shows here.
 *
 * With the peer ports (etcd-ts only: each member sends its raft messages over the connection it
 * dialled, so the leader's MsgApps go to the followers' peer ports and their MsgAppResps to the
 * leader's; etcd's streams run the other way), also the server's phases:
 *
 * - leader send: request in to the first MsgApp (over 200 bytes: it carries the entry) out;
 * - follower ack: that MsgApp to the first segment from a follower after it (its acknowledgement,
 *   or, when that came late, a follower's answer to the previous put's commit);
 * - leader respond: that acknowledgement to the response (the leader's own fsync, commit, apply);
 *
 * and how many puts slower than SLOW_US (env, default 2,000) each phase made slow (the first phase
 * over 1 ms). Timestamps are tcpdump's: when the kernel passed the segment, so a member that was
 * not running shows as a late phase, which its own logs cannot show.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** One TCP segment with a payload: when tcpdump saw it (µs since the epoch), its ports, its bytes. */
export interface Segment {
  atUs: number;
  from: number;
  to: number;
  bytes: number;
}

/** One put as the capture shows it, times in µs (msgAppUs and ackUs only with the peer ports). */
export interface Put {
  requestUs: number;
  responseUs: number;
  msgAppUs?: number;
  ackUs?: number;
}

/** Segments with a payload from `tcpdump -tt -nn` text (IPv4 loopback lines). */
export function parseSegments(text: string): Segment[] {
  const out: Segment[] = [];
  const re = /^(\d+\.\d+) IP [\d.]+\.(\d+) > [\d.]+\.(\d+):.* length (\d+)/;
  for (const line of text.split("\n")) {
    const m = re.exec(line);
    if (m === null || m[4] === "0") continue;
    out.push({
      atUs: Number(m[1]) * 1e6,
      from: Number(m[2]),
      to: Number(m[3]),
      bytes: Number(m[4]),
    });
  }
  return out;
}

/** The puts in `segs` (see the module comment), with their MsgApp and first ack when asked. */
export function findPuts(
  segs: Segment[],
  clientPort: number,
  leaderPeer?: number,
  followerPeers: number[] = [],
): Put[] {
  const puts: Put[] = [];
  let cur: Put | undefined;
  for (const s of segs) {
    if (s.to === clientPort && s.bytes > 40) {
      cur = { requestUs: s.atUs, responseUs: NaN };
    } else if (cur === undefined) {
      continue;
    } else if (s.from === clientPort && s.bytes >= 60) {
      cur.responseUs = s.atUs;
      puts.push(cur);
      cur = undefined;
    } else if (followerPeers.includes(s.to) && s.bytes > 200) {
      cur.msgAppUs ??= s.atUs;
    } else if (s.to === leaderPeer && cur.msgAppUs !== undefined) {
      cur.ackUs ??= s.atUs;
    }
  }
  return puts;
}

/** "p50 … p90 … p99 … max … (n …)" of `xs`, rounded to whole units. */
function quantiles(xs: number[]): string {
  if (xs.length === 0) return "n/a";
  const s = [...xs].sort((a, b) => a - b);
  const q = (f: number): string => s[Math.min(s.length - 1, Math.floor(s.length * f))]!.toFixed(0);
  return `p50 ${q(0.5)}  p90 ${q(0.9)}  p99 ${q(0.99)}  max ${q(1)}  (n ${s.length})`;
}

/** The phases of a put that has them (see the module comment), in µs. */
export function phasesOf(p: Put): { send: number; ack: number; respond: number } {
  return {
    send: p.msgAppUs! - p.requestUs,
    ack: p.ackUs! - p.msgAppUs!,
    respond: p.responseUs - p.ackUs!,
  };
}

/**
 * The puts slower than `slowUs` among those with phases, counted by their first phase over 1 ms
 * (leader send, then follower ack, then leader respond; "none over 1 ms" when no single phase is).
 */
export function slowByPhase(puts: Put[], slowUs: number): Record<string, number> {
  const by = { "leader send": 0, "follower ack": 0, "leader respond": 0, "none over 1 ms": 0 };
  for (const p of puts) {
    if (p.msgAppUs === undefined || p.ackUs === undefined) continue;
    if (p.responseUs - p.requestUs <= slowUs) continue;
    const ph = phasesOf(p);
    if (ph.send > 1000) by["leader send"]++;
    else if (ph.ack > 1000) by["follower ack"]++;
    else if (ph.respond > 1000) by["leader respond"]++;
    else by["none over 1 ms"]++;
  }
  return by;
}

function main(argv: string[]): void {
  if (argv.length < 2) {
    process.stderr.write(
      "usage: put-phases CAPTURE.txt CLIENT_PORT [LEADER_PEER_PORT FOLLOWER_PEER_PORT...]\n",
    );
    process.exit(2);
  }
  const [file, client, leaderPeer, ...followers] = argv;
  const slowUs = Number(process.env.SLOW_US ?? 2000);
  const segs = parseSegments(readFileSync(file!, "utf8"));
  const puts = findPuts(
    segs,
    Number(client),
    leaderPeer === undefined ? undefined : Number(leaderPeer),
    followers.map(Number),
  );
  console.log(`puts ${puts.length}, µs:`);
  console.log(`  server             ${quantiles(puts.map((p) => p.responseUs - p.requestUs))}`);
  const turn = puts.slice(1).map((p, i) => p.requestUs - puts[i]!.responseUs);
  console.log(`  client turnaround  ${quantiles(turn)}`);
  if (leaderPeer === undefined) return;
  const phased = puts.filter((p) => p.msgAppUs !== undefined && p.ackUs !== undefined);
  const phases = phased.map(phasesOf);
  console.log(`  leader send        ${quantiles(phases.map((p) => p.send))}`);
  console.log(`  follower ack       ${quantiles(phases.map((p) => p.ack))}`);
  console.log(`  leader respond     ${quantiles(phases.map((p) => p.respond))}`);
  const by = slowByPhase(phased, slowUs);
  const slow = Object.values(by).reduce((a, b) => a + b, 0);
  console.log(
    `puts over ${slowUs} µs: ${slow}, by the first phase over 1 ms: ${JSON.stringify(by)}`,
  );
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  main(process.argv.slice(2));
}
