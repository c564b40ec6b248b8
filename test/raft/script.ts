/**
 * A small interpreter for data-driven raft scenarios (in the spirit of etcd-io/raft's
 * testdata/*.txt): a prose goal in `#` comments, then one command per line. Commands act on
 * a Network (network.ts) and `expect-*` commands assert; a failure names file and line.
 *
 *   cluster <n> [preVote] [checkQuorum] [key=value …]   new cluster of n bootstrapped voters
 *   campaign <id> | stabilize | tick <id> <n> | tick-all <n> | isolate <id> | heal | cut <a> <b>
 *   propose <id> <data> | propose-dropped <id> <data> | read-index <id> <ctx>
 *   transfer-leader <from> <to> | add-learner <leader> <id> | add-voter <leader> <id>
 *   remove <leader> <id> | compact <id> | report-snapshot <leader> <id> finish|failure
 *   expect-state <id> leader|follower|candidate|precandidate | expect-term <id> <n>
 *   expect-applied <id> <a,b,…|-> | expect-read <id> <ctx> [index] | expect-no-read <id> <ctx>
 *   expect-voters <id> <1,2,…> | expect-commit <id> <n> | expect-lead <id> <leader>
 *   expect-one-leader
 */
import assert from "node:assert/strict";
import { ConfChange, ConfChangeType } from "../../lib/proto/gen/raftpb/raft.js";
import { ErrProposalDropped, StateType } from "../../lib/raft/index.js";
import { Network, type NodeOptions } from "./network.js";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

/** Runs `text` (the contents of `name`); throws an AssertionError naming the failing line. */
export function runScript(name: string, text: string): void {
  let net: Network | undefined;
  const lines = text.split("\n");
  for (let ln = 0; ln < lines.length; ln++) {
    const line = lines[ln]!.trim();
    if (line === "" || line.startsWith("#")) continue;
    const [cmd, ...args] = line.split(/\s+/) as [string, ...string[]];
    const where = `${name}:${ln + 1}: ${line}`;
    try {
      if (cmd === "cluster") {
        const opts: NodeOptions & Record<string, unknown> = {};
        for (const a of args.slice(1)) {
          const [k, v] = a.split("=");
          opts[k!] = v === undefined ? true : Number.isNaN(Number(v)) ? v : Number(v);
        }
        net = new Network(Number(args[0]), opts);
        continue;
      }
      assert.ok(net !== undefined, "no cluster: start with `cluster <n>`");
      execute(net, cmd, args);
    } catch (e) {
      const err = new assert.AssertionError({ message: `${where}\n  ${(e as Error).message}` });
      throw err;
    }
  }
}

const stateNames: Record<string, StateType> = {
  leader: StateType.Leader,
  follower: StateType.Follower,
  candidate: StateType.Candidate,
  precandidate: StateType.PreCandidate,
};

function execute(net: Network, cmd: string, a: string[]): void {
  const id = (i: number) => BigInt(a[i]!);
  switch (cmd) {
    case "campaign":
      return net.campaign(id(0));
    case "stabilize":
      return net.stabilize();
    case "tick":
      net.tick(id(0), Number(a[1]));
      return net.stabilize();
    case "tick-all":
      return net.tickAll(Number(a[0]));
    case "isolate":
      return net.isolate(id(0));
    case "heal":
      return net.heal();
    case "cut":
      net.cut.add(`${a[0]}->${a[1]}`);
      net.cut.add(`${a[1]}->${a[0]}`);
      return;
    case "propose":
      return net.propose(id(0), a[1]!);
    case "propose-dropped":
      assert.throws(() => net.get(id(0)).node.propose(enc(a[1]!)), ErrProposalDropped);
      return;
    case "read-index":
      net.get(id(0)).node.readIndex(enc(a[1]!));
      return net.stabilize();
    case "transfer-leader":
      net.get(id(0)).node.transferLeader(id(1));
      return net.stabilize();
    case "add-learner":
    case "add-voter":
    case "remove": {
      const type =
        cmd === "add-learner"
          ? ConfChangeType.ConfChangeAddLearnerNode
          : cmd === "add-voter"
            ? ConfChangeType.ConfChangeAddNode
            : ConfChangeType.ConfChangeRemoveNode;
      if (cmd !== "remove" && !net.nodes.has(id(1))) net.add(id(1));
      net.get(id(0)).node.proposeConfChange(ConfChange.create({ type, nodeID: id(1) }));
      return net.stabilize();
    }
    case "compact": {
      const tn = net.get(id(0));
      const applied = tn.node.raft.raftLog.applied;
      tn.storage.createSnapshot(applied, tn.node.raft.trk.confState(), enc(`snap@${applied}`));
      tn.storage.compact(applied);
      return;
    }
    case "report-snapshot":
      net.get(id(0)).node.reportSnapshot(id(1), a[2] as "finish" | "failure");
      return net.stabilize();
    case "expect-state":
      assert.equal(StateType[net.get(id(0)).node.raft.state], StateType[stateNames[a[1]!]!]);
      return;
    case "expect-term":
      assert.equal(net.get(id(0)).node.raft.term, Number(a[1]));
      return;
    case "expect-lead":
      assert.equal(net.get(id(0)).node.raft.lead, id(1));
      return;
    case "expect-commit":
      assert.equal(net.get(id(0)).node.raft.raftLog.committed, Number(a[1]));
      return;
    case "expect-applied":
      assert.deepEqual(net.appliedData(id(0)), a[1] === "-" ? [] : a[1]!.split(","));
      return;
    case "expect-voters":
      assert.deepEqual(
        net.get(id(0)).node.raft.trk.confState().voters.map(String),
        a[1]!.split(","),
      );
      return;
    case "expect-read": {
      const rs = net.get(id(0)).readStates.find((r) => dec(r.requestCtx) === a[1]);
      assert.ok(rs !== undefined, `no read state for ${a[1]}`);
      if (a[2] !== undefined) assert.equal(rs.index, Number(a[2]));
      return;
    }
    case "expect-one-leader": {
      const leaders = [...net.nodes.values()].filter((t) => t.node.raft.state === StateType.Leader);
      assert.equal(leaders.length, 1, `leaders: ${leaders.map((t) => t.id).join(",")}`);
      return;
    }
    case "expect-no-read":
      assert.ok(
        !net.get(id(0)).readStates.some((r) => dec(r.requestCtx) === a[1]),
        `unexpected read state ${a[1]}`,
      );
      return;
    default:
      throw new Error(`unknown command ${cmd}`);
  }
}
