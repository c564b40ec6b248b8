/**
 * lib/raft benchmarks (DESIGN §7: measured here, never in timed tests):
 *  - entries committed per second through a 3-node in-memory cluster (no I/O; messages are
 *    handed over synchronously, the leader's proposals batched as the server's ready loop does);
 *  - CPU microseconds per proposal (process.cpuUsage over the same run);
 *  - heap bytes per unstable entry (entries proposed to a leader but not yet handed out).
 * Run: `npx tsc -p . && node dist/bench/raft.bench.js [--entries N] [--batch B] [--bytes S]`.
 */
import { ConfChange, EntryType, type Message } from "../lib/proto/gen/raftpb/raft.js";
import { MemoryStorage, RawNode, StateType } from "../lib/raft/index.js";

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
}

function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface BenchNode {
  id: bigint;
  node: RawNode;
  storage: MemoryStorage;
  applied: number;
  appliedEntries: number;
}

function newCluster(n: number, maxInflightMsgs: number): Map<bigint, BenchNode> {
  const peers = Array.from({ length: n }, (_, i) => ({ id: BigInt(i + 1) }));
  const nodes = new Map<bigint, BenchNode>();
  for (const p of peers) {
    const storage = new MemoryStorage();
    const node = new RawNode({
      id: p.id,
      electionTick: 10,
      heartbeatTick: 1,
      storage,
      random: seeded(Number(p.id)),
      maxInflightMsgs,
      maxSizePerMsg: 1 << 20,
    });
    node.bootstrap(peers);
    nodes.set(p.id, { id: p.id, node, storage, applied: 0, appliedEntries: 0 });
  }
  return nodes;
}

/** Runs every node's ready loop and delivers messages until quiet. */
function pump(nodes: Map<bigint, BenchNode>): void {
  for (;;) {
    const msgs: Message[] = [];
    for (const bn of nodes.values()) {
      while (bn.node.hasReady()) {
        const rd = bn.node.ready();
        if (rd.hardState) bn.storage.setHardState(rd.hardState);
        if (rd.entries.length > 0) bn.storage.append(rd.entries);
        for (const m of rd.messages) msgs.push(m);
        for (const e of rd.committedEntries) {
          if (e.type === EntryType.EntryConfChange)
            bn.node.applyConfChange(ConfChange.fromBinary(e.data));
          else if (e.data.length > 0) bn.appliedEntries++;
          bn.applied = e.index;
        }
        bn.node.advance(rd);
      }
    }
    if (msgs.length === 0) return;
    for (const m of msgs) nodes.get(m.to)!.node.step(m);
  }
}

function throughput(entries: number, batch: number, bytes: number): void {
  const nodes = newCluster(3, 256);
  pump(nodes);
  const leader = nodes.get(1n)!;
  leader.node.campaign();
  pump(nodes);
  if (leader.node.status().softState.raftState !== StateType.Leader) throw new Error("no leader");
  const payload = new Uint8Array(bytes).fill(7);
  const compactEvery = 50_000;
  let nextCompact = compactEvery;
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  let proposed = 0;
  while (proposed < entries) {
    const k = Math.min(batch, entries - proposed);
    for (let i = 0; i < k; i++) leader.node.propose(payload);
    proposed += k;
    pump(nodes);
    if (leader.applied >= nextCompact) {
      // As the server does after a snapshot: drop log entries everyone has applied.
      for (const bn of nodes.values())
        bn.storage.compact(Math.min(bn.applied, leader.applied) - 1000);
      nextCompact += compactEvery;
    }
  }
  const ns = Number(process.hrtime.bigint() - t0);
  const cpu = process.cpuUsage(cpu0);
  for (const bn of nodes.values()) {
    if (bn.appliedEntries !== entries)
      throw new Error(`node ${bn.id} applied ${bn.appliedEntries} of ${entries}`);
  }
  const perSec = entries / (ns / 1e9);
  const cpuUsPerProposal = (cpu.user + cpu.system) / entries;
  console.log(
    `raft 3-node in-memory: ${entries} entries of ${bytes} B, batch ${batch}: ${Math.round(perSec).toLocaleString("en-US")} entries/s committed+applied on all 3; ` +
      `CPU ${cpuUsPerProposal.toFixed(2)} µs/proposal (whole cluster, one thread)`,
  );
}

function memoryPerUnstableEntry(count: number, bytes: number): void {
  const nodes = newCluster(1, 256);
  pump(nodes);
  const bn = nodes.get(1n)!;
  bn.node.campaign();
  pump(nodes);
  const payload = new Uint8Array(bytes);
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const before = process.memoryUsage().heapUsed;
  for (let i = 0; i < count; i++) bn.node.propose(payload); // same payload object: measures raft's own overhead
  gc?.();
  const after = process.memoryUsage().heapUsed;
  if (bn.node.raft.raftLog.lastIndex() < count) throw new Error("proposals were not appended");
  console.log(
    `raft unstable log: ${((after - before) / count).toFixed(1)} heap bytes per unstable entry (excluding payload; ${count} entries${gc ? "" : ", run with --expose-gc for a precise figure"})`,
  );
}

const entries = arg("entries", 500_000);
const batch = arg("batch", 256);
const bytes = arg("bytes", 128);
// Memory first: a heap already grown by the throughput runs skews heapUsed deltas.
memoryPerUnstableEntry(200_000, bytes);
throughput(Math.min(entries, 50_000), batch, bytes); // warm-up
throughput(entries, batch, bytes);
throughput(entries, 16, bytes);
throughput(entries, 1, bytes);
