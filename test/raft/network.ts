/**
 * A tiny synchronous cluster harness for rule tests (etcd-io/raft's `network` in raft_test.go):
 * nodes over MemoryStorage, a ready loop like the server's, and message delivery with
 * per-link cuts and isolation.
 */
import {
  ConfChange,
  EntryType,
  type Entry,
  type Message,
  MessageType,
} from "../../lib/proto/gen/raftpb/raft.js";
import {
  ErrProposalDropped,
  ErrStepPeerNotFound,
  MemoryStorage,
  RawNode,
  type RaftConfig,
  type ReadState,
} from "../../lib/raft/index.js";
import { Prng } from "../../tools/sim/prng.js";

export interface TestNode {
  id: bigint;
  node: RawNode;
  storage: MemoryStorage;
  applied: Entry[];
  readStates: ReadState[];
}

export type NodeOptions = Partial<Omit<RaftConfig, "id" | "storage" | "random">>;

export class Network {
  nodes = new Map<bigint, TestNode>();
  /** Directed links that drop everything ("1->2"). */
  cut = new Set<string>();
  /** Message types dropped everywhere. */
  dropTypes = new Set<MessageType>();
  /** Every message delivered, for assertions. */
  log: Message[] = [];
  readonly rng = new Prng(42);

  /** n voters bootstrapped together (ids 1..n), ready loops drained. */
  constructor(n: number, opts: NodeOptions = {}) {
    const peers = Array.from({ length: n }, (_, i) => ({ id: BigInt(i + 1) }));
    for (const p of peers) this.add(p.id, opts).node.bootstrap(peers);
    this.stabilize();
  }

  add(id: bigint, opts: NodeOptions = {}, storage = new MemoryStorage()): TestNode {
    const node = new RawNode({
      electionTick: 10,
      heartbeatTick: 1,
      ...opts,
      id,
      storage,
      random: this.rng.fork(),
    });
    const tn: TestNode = { id, node, storage, applied: [], readStates: [] };
    this.nodes.set(id, tn);
    return tn;
  }

  get(id: number | bigint): TestNode {
    return this.nodes.get(BigInt(id))!;
  }

  isolate(id: number | bigint): void {
    for (const other of this.nodes.keys()) {
      if (other === BigInt(id)) continue;
      this.cut.add(`${id}->${other}`);
      this.cut.add(`${other}->${id}`);
    }
  }

  heal(): void {
    this.cut.clear();
    this.dropTypes.clear();
  }

  /** Drains one node's ready; returns its messages (persisted first, as the server does). */
  processReady(tn: TestNode): Message[] {
    const out: Message[] = [];
    while (tn.node.hasReady()) {
      const rd = tn.node.ready();
      if (rd.snapshot) {
        tn.storage.applySnapshot(rd.snapshot);
      }
      if (rd.hardState) tn.storage.setHardState(rd.hardState);
      tn.storage.append(rd.entries);
      out.push(...rd.messages);
      tn.readStates.push(...rd.readStates);
      for (const e of rd.committedEntries) {
        if (e.type === EntryType.EntryConfChange)
          tn.node.applyConfChange(ConfChange.fromBinary(e.data));
        tn.applied.push(e);
      }
      tn.node.advance(rd);
    }
    return out;
  }

  /** Delivers messages (and everything they cause) until the cluster is quiet. Bounded. */
  stabilize(maxRounds = 1000): void {
    let pending: Message[] = [];
    for (let round = 0; round < maxRounds; round++) {
      for (const tn of this.nodes.values()) pending.push(...this.processReady(tn));
      if (pending.length === 0) return;
      const batch = pending;
      pending = [];
      for (const m of batch) this.deliver(m);
    }
    throw new Error("network did not stabilize");
  }

  deliver(m: Message): void {
    if (this.cut.has(`${m.from}->${m.to}`) || this.dropTypes.has(m.type)) return;
    const to = this.nodes.get(m.to);
    if (to === undefined) return;
    this.log.push(m);
    try {
      to.node.step({ ...m, entries: m.entries.map((e) => ({ ...e })) });
    } catch (e) {
      // As the server: dropped proposals and responses from removed peers are ignored.
      if (!(e instanceof ErrProposalDropped) && !(e instanceof ErrStepPeerNotFound)) throw e;
    }
  }

  tick(id: number | bigint, n = 1): void {
    for (let i = 0; i < n; i++) this.get(id).node.tick();
  }

  /** Ticks every node n times, stabilizing after each tick. */
  tickAll(n: number): void {
    for (let i = 0; i < n; i++) {
      for (const tn of this.nodes.values()) tn.node.tick();
      this.stabilize();
    }
  }

  campaign(id: number | bigint): void {
    this.get(id).node.campaign();
    this.stabilize();
  }

  propose(id: number | bigint, s: string): void {
    this.get(id).node.propose(new TextEncoder().encode(s));
    this.stabilize();
  }

  /** Normal (non-empty) entries applied by a node, as strings. */
  appliedData(id: number | bigint): string[] {
    return this.get(id)
      .applied.filter((e) => e.type === EntryType.EntryNormal && e.data.length > 0)
      .map((e) => new TextDecoder().decode(e.data));
  }
}
