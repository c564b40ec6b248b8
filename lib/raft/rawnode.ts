/**
 * RawNode: the application-facing, thread-unaware wrapper around Raft (etcd-io/raft's
 * rawnode.go), with synchronous storage writes.
 */
import {
  ConfChange,
  ConfChangeType,
  type ConfState,
  type Entry,
  EntryType,
  type HardState,
  type Message,
  MessageType,
  type Snapshot,
} from "../proto/gen/raftpb/raft.js";
import { ErrBootstrapNonEmpty, ErrStepLocalMsg, ErrStepPeerNotFound, invariant } from "./errors.js";
import { payloadSizeBytes } from "./entry-size.js";
import {
  isLocalMsg,
  isResponseMsg,
  newMessage,
  None,
  Raft,
  type RaftConfig,
  type ReadState,
  type SoftState,
} from "./raft.js";
import { getStatus, type Status } from "./status.js";
import { isEmptyHardState, snapshotIndex } from "./storage.js";

/**
 * Work handed to the application by RawNode.ready(). Process it in this order: persist
 * `hardState` + `entries` (+ `snapshot`) durably, storage.append(entries), send `messages`,
 * apply `snapshot` then `committedEntries`, then call advance(rd).
 */
export interface Ready {
  /** Present only when changed since the last Ready. */
  softState?: SoftState;
  /** Present only when changed; persist before sending messages. */
  hardState?: HardState;
  /** ReadIndex answers: serve each read once applied ≥ index. */
  readStates: ReadState[];
  /** Entries to append to stable storage (may overwrite a conflicting suffix). */
  entries: Entry[];
  /** Snapshot to persist and apply (only ever received from a leader). */
  snapshot?: Snapshot;
  /** Entries to apply, in order. May include entries of `entries` (persist first). */
  committedEntries: Entry[];
  /** Messages to send after `entries`/`hardState` are persisted. */
  messages: Message[];
  /** True when hardState's term/vote or entries changed: the write must be fsynced. */
  mustSync: boolean;
}

/** True when raft's soft state is not `prev` (read off raft's fields: no SoftState made). */
function softStateChanged(r: Raft, prev: SoftState): boolean {
  return r.lead !== prev.lead || r.state !== prev.raftState;
}

/** isEmptyHardState of raft's hard state, read off raft's fields. */
function hardStateEmpty(r: Raft): boolean {
  return r.term === 0 && r.vote === None && r.raftLog.committed === 0;
}

/** True when raft's hard state is not `prev` (read off raft's fields: no HardState made). */
function hardStateChanged(r: Raft, prev: HardState): boolean {
  return r.term !== prev.term || r.vote !== prev.vote || r.raftLog.committed !== prev.commit;
}

const emptyBytes = new Uint8Array(0);
/** A Ready's messages and readStates when there are none (frozen: a push fails loudly). */
const noMessages: Message[] = Object.freeze([]) as unknown as Message[];
const noReadStates: ReadState[] = Object.freeze([]) as unknown as ReadState[];

/**
 * One raft node, driven by the application: tick() on a timer, step() for each message from a
 * peer, propose()/readIndex() for client requests, and the ready()/advance() loop for I/O.
 *
 * Leader self-acknowledgement (etcd-io/raft's behaviour with synchronous storage): the leader
 * counts its own copy of an entry towards the commit quorum only when advance() reports the
 * Ready carrying it as persisted. So a single voter's proposal shows up first in `entries`,
 * and after advance() in a later Ready's `committedEntries` (with hardState.commit raised).
 * Followers acknowledge through MsgAppResp in `messages`, which the application sends only
 * after persisting. committedEntries may include entries of the same Ready's `entries` on a
 * multi-node leader (followers acked first): the application persists before it applies.
 *
 * Calls between ready() and advance() (step, tick, propose) are allowed; the next ready()
 * returns only what is new.
 *
 * Restart: construct a new RawNode over the same (reloaded) Storage; do not bootstrap again.
 * The configuration comes from the storage snapshot's ConfState, so pass `applied` no higher
 * than the snapshot index (etcd passes nothing, i.e. the snapshot index): committed entries
 * after it, conf changes included, come again in committedEntries and the application
 * re-applies conf changes with applyConfChange (and skips entries its state machine already
 * reflects, e.g. by etcd's consistent index). A node does not campaign while committed conf
 * changes are unapplied (etcd's rule).
 */
export class RawNode {
  readonly #raft: Raft;
  #prevSoftState: SoftState;
  #prevHardState: HardState;

  /** Creates a node from config (restoring state from config.storage). Throws ErrInvalidConfig. */
  constructor(config: RaftConfig) {
    this.#raft = new Raft(config);
    this.#prevSoftState = this.#raft.softState();
    this.#prevHardState = this.#raft.hardState();
  }

  /** The node's current term (raft's, which a Ready reports only once persisted). */
  get term(): number {
    return this.#raft.term;
  }

  /** The underlying state machine (tests and the simulator only). */
  get raft(): Raft {
    return this.#raft;
  }

  /**
   * For a brand-new node only: writes ConfChangeAddNode entries for `peers` at indexes 1..n
   * (term 1), marks them committed, and applies them to the configuration (etcd's
   * RawNode.Bootstrap). They appear in the next Ready's `entries` and `committedEntries`;
   * the application applies them like any conf change (re-applying AddNode is harmless).
   * Throws ErrBootstrapNonEmpty if storage already holds entries.
   */
  bootstrap(peers: { id: bigint; context?: Uint8Array }[]): void {
    invariant(peers.length > 0, "must provide at least one peer to bootstrap");
    const r = this.#raft;
    if (r.raftLog.storage.lastIndex() !== 0) throw new ErrBootstrapNonEmpty();
    // Start from an empty hard state so the first Ready carries term 1 and the commit index.
    this.#prevHardState = { term: 0, vote: None, commit: 0 };
    r.becomeFollower(1, None);
    const ents: Entry[] = peers.map((p, i) => ({
      type: EntryType.EntryConfChange,
      term: 1,
      index: i + 1,
      data: ConfChange.toBinary(
        ConfChange.create({
          type: ConfChangeType.ConfChangeAddNode,
          nodeID: p.id,
          context: p.context ?? emptyBytes,
        }),
      ),
    }));
    r.raftLog.append(ents);
    // The entries are committed by fiat: every member bootstraps with the same list.
    r.raftLog.committed = ents.length;
    for (const p of peers)
      r.applyConfChange(
        ConfChange.create({ type: ConfChangeType.ConfChangeAddNode, nodeID: p.id }),
      );
  }

  /** Advances logical time by one tick (election and heartbeat timeouts are counted in ticks). */
  tick(): void {
    this.#raft.tick();
  }

  /** Starts an election now (pre-vote first if configured). A leader ignores it. */
  campaign(): void {
    this.#raft.step(newMessage({ type: MessageType.MsgHup }));
  }

  /**
   * Makes a follower forget its leader without campaigning (Raft.forgetLeader, etcd-io/raft's
   * RawNode.ForgetLeader): with CheckQuorum it then grants (pre-)votes at once instead of
   * refusing them inside the leader's lease. For a failure detector that knows the leader is
   * gone. No effect on a leader or candidate. Returns true when a leader was forgotten.
   */
  forgetLeader(): boolean {
    return this.#raft.forgetLeader();
  }

  /**
   * Proposes `data` for the log. On a follower it is forwarded to the leader. Throws
   * ErrProposalDropped when it cannot be accepted (no leader, forwarding disabled, transfer in
   * progress, uncommitted-size limit). Acceptance is not commitment: watch committedEntries.
   */
  propose(data: Uint8Array): void {
    this.#raft.step(
      newMessage({
        type: MessageType.MsgProp,
        from: this.#raft.id,
        entries: [{ type: EntryType.EntryNormal, term: 0, index: 0, data }],
      }),
    );
  }

  /**
   * Proposes a single-step membership change. Only one may be pending: the leader replaces a
   * second one (or one that would remove the last voter) with an empty entry. Apply it with
   * applyConfChange() when it is committed. Throws ErrProposalDropped as propose().
   */
  proposeConfChange(cc: ConfChange): void {
    this.#raft.step(
      newMessage({
        type: MessageType.MsgProp,
        from: this.#raft.id,
        entries: [
          { type: EntryType.EntryConfChange, term: 0, index: 0, data: ConfChange.toBinary(cc) },
        ],
      }),
    );
  }

  /**
   * Feeds a message received from a peer. Throws ErrStepLocalMsg for local-only types,
   * ErrStepPeerNotFound for a response from a peer not in the configuration, and
   * ErrProposalDropped when a forwarded proposal is dropped (as etcd's RawNode.Step).
   */
  step(m: Message): void {
    if (isLocalMsg(m.type)) throw new ErrStepLocalMsg();
    if (this.#raft.trk.progress.has(m.from) || !isResponseMsg(m.type)) {
      this.#raft.step(m);
      return;
    }
    throw new ErrStepPeerNotFound();
  }

  /**
   * Requests a linearizable read point. The answer arrives in a later Ready's readStates with
   * the same requestCtx (make it unique); the read is safe once applied ≥ its index. The leader
   * answers only after committing an entry of its term (thesis §6.4) and, in "safe" mode, after
   * a heartbeat round confirms its leadership. Throws ErrProposalDropped with no leader.
   */
  readIndex(requestCtx: Uint8Array): void {
    this.#raft.step(
      newMessage({
        type: MessageType.MsgReadIndex,
        entries: [{ type: EntryType.EntryNormal, term: 0, index: 0, data: requestCtx }],
      }),
    );
  }

  /** Asks the leader to hand leadership to `to` (it sends MsgTimeoutNow once `to` is caught up). */
  transferLeader(to: bigint): void {
    this.#raft.step(newMessage({ type: MessageType.MsgTransferLeader, from: to }));
  }

  /**
   * Removes and returns the pending MsgProp and MsgReadIndex messages a follower forwards to its
   * leader. They carry no state of this member (term 0, nothing it must have persisted first), so
   * the caller may send them before the current Ready's WAL save ends, instead of with the next
   * Ready (etcd-io/raft's async-storage mode holds back only MsgAppResp and vote responses until
   * the append is durable). Everything else stays for ready().
   */
  takeForwardedRequests(): Message[] {
    const r = this.#raft;
    if (r.msgs.length === 0) return [];
    const taken: Message[] = [];
    const kept: Message[] = [];
    for (const m of r.msgs) {
      (isForwardedRequest(m) && m.to !== r.id ? taken : kept).push(m);
    }
    if (taken.length > 0) r.msgs = kept;
    return taken;
  }

  /** True when ready() would return something to do. */
  hasReady(): boolean {
    const r = this.#raft;
    if (softStateChanged(r, this.#prevSoftState)) return true;
    if (!hardStateEmpty(r) && hardStateChanged(r, this.#prevHardState)) return true;
    if (r.raftLog.nextUnstableSnapshot() !== undefined) return true;
    if (r.msgs.length > 0 || r.raftLog.hasNextUnstableEnts() || r.raftLog.hasNextCommittedEnts())
      return true;
    return r.readStates.length > 0;
  }

  /**
   * Collects the pending work (see Ready) and marks it handed out: the next ready() returns
   * only newer work. Call advance(rd) once it is processed.
   */
  ready(): Ready {
    const r = this.#raft;
    // raft's message and read-state arrays are handed over when they hold something (raft then
    // starts new ones); an empty one stays raft's and the Ready gets a shared frozen empty array
    const rd: Ready = {
      readStates: r.readStates.length > 0 ? r.readStates : noReadStates,
      entries: r.raftLog.nextUnstableEnts(),
      committedEntries: r.raftLog.nextCommittedEnts(),
      messages: r.msgs.length > 0 ? r.msgs : noMessages,
      mustSync: false,
    };
    if (softStateChanged(r, this.#prevSoftState)) {
      const ss = r.softState();
      rd.softState = ss;
      this.#prevSoftState = ss;
    }
    if (hardStateChanged(r, this.#prevHardState)) {
      const hs = r.hardState();
      // Test-only known-wrong variant: the vote never reaches stable storage.
      rd.hardState = r.knobs.forgetPersistVote ? { ...hs, vote: None } : hs;
      rd.mustSync = hs.term !== this.#prevHardState.term || hs.vote !== this.#prevHardState.vote;
      this.#prevHardState = hs;
    }
    const snap = r.raftLog.nextUnstableSnapshot();
    if (snap !== undefined) rd.snapshot = snap;
    if (rd.entries.length > 0) rd.mustSync = true;
    if (r.readStates.length > 0) r.readStates = [];
    if (r.msgs.length > 0) r.msgs = [];
    r.raftLog.unstable.acceptInProgress();
    if (rd.committedEntries.length > 0)
      r.raftLog.acceptApplying(rd.committedEntries[rd.committedEntries.length - 1]!.index);
    return rd;
  }

  /**
   * Reports rd processed: its entries/snapshot are persisted (the leader's self-ack, which may
   * commit and produce a new Ready) and its committed entries applied.
   */
  advance(rd: Ready): void {
    const r = this.#raft;
    if (rd.snapshot !== undefined) {
      const si = snapshotIndex(rd.snapshot);
      r.raftLog.stableSnapTo(si);
      if (si > r.raftLog.applied && si <= r.raftLog.committed) r.raftLog.appliedTo(si);
    }
    if (rd.entries.length > 0) {
      const last = rd.entries[rd.entries.length - 1]!;
      r.raftLog.stableTo(last.index, last.term);
      r.selfAckPersisted(last.index, last.term);
    }
    if (rd.committedEntries.length > 0) {
      const idx = rd.committedEntries[rd.committedEntries.length - 1]!.index;
      if (idx > r.raftLog.applied) r.raftLog.appliedTo(idx);
      if (r.state === 2 /* Leader */)
        r.reduceUncommittedSize(payloadSizeBytes(rd.committedEntries));
    }
  }

  /** Applies a committed conf change to the configuration; returns the new ConfState. */
  applyConfChange(cc: ConfChange): ConfState {
    return this.#raft.applyConfChange(cc);
  }

  /** Tells the leader that messages to `id` could not be delivered (it falls back to probing). */
  reportUnreachable(id: bigint): void {
    this.#raft.step(newMessage({ type: MessageType.MsgUnreachable, from: id }));
  }

  /** Tells the leader whether the snapshot it sent to `id` was applied ("finish") or lost ("failure"). */
  reportSnapshot(id: bigint, status: "finish" | "failure"): void {
    this.#raft.step(
      newMessage({ type: MessageType.MsgSnapStatus, from: id, reject: status === "failure" }),
    );
  }

  /** Current id, hard/soft state, applied index, per-peer progress (leader only), transferee. */
  status(): Status {
    return getStatus(this.#raft);
  }
}

/**
 * A proposal or read request a follower forwards to its leader (MsgProp, MsgReadIndex): it needs
 * nothing of the sender's disk, so it may leave before the sender's WAL save ends.
 */
export function isForwardedRequest(m: Message): boolean {
  return m.type === MessageType.MsgProp || m.type === MessageType.MsgReadIndex;
}
