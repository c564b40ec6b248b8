/**
 * lib/raft public face: Raft consensus as a pure state machine (no I/O, no timers), driven by
 * RawNode. See rawnode.ts for the ready/advance contract.
 */
export { RawNode, type Ready, isForwardedRequest } from "./rawnode.js";
export { coalesceMessages } from "./coalesce.js";
export {
  None,
  StateType,
  type RaftConfig,
  type RaftLogger,
  type RaftTestingKnobs,
  type ReadState,
  type SoftState,
  isLocalMsg,
  isResponseMsg,
} from "./raft.js";
export {
  MemoryStorage,
  type Storage,
  emptyHardState,
  isEmptyHardState,
  isEmptySnapshot,
} from "./storage.js";
export type { Status, ProgressStatus } from "./status.js";
export type { ReadOnlyOption } from "./read-only.js";
export {
  RaftError,
  ErrProposalDropped,
  ErrCompacted,
  ErrUnavailable,
  ErrSnapOutOfDate,
  ErrSnapshotTemporarilyUnavailable,
  ErrStepLocalMsg,
  ErrStepPeerNotFound,
  ErrBootstrapNonEmpty,
  ErrInvalidConfig,
  ErrInvalidConfChange,
  RaftInvariantError,
} from "./errors.js";
