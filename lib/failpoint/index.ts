/**
 * lib/failpoint — named failpoints (etcd's gofail, issue 16): points in lib/wal and lib/server that
 * a test or `etcd-ts-util torture` sets to panic (exit as kill -9), sleep, error or drop, with a
 * count or a probability, from `ETCD_TS_FAILPOINTS` at start or over HTTP at run time. Unset, a
 * point costs one boolean check. Imports nothing of ours, so every part may use it.
 */
export {
  failpoint,
  failpointSleepMs,
  setFailpoint,
  validateFailpoint,
  clearFailpoint,
  clearAllFailpoints,
  failpointTerms,
  failpointCount,
  seedFailpoints,
  onFailpointPanic,
  parseFailpointList,
  loadFailpointsFromEnv,
  FAILPOINTS_ENV,
  FAILPOINTS_SEED_ENV,
} from "./runtime.js";
export { seededRandom } from "./random.js";
export {
  failpointSpecs,
  failpointNames,
  singleMemberFailpointNames,
  failpointSpec,
  isFailpointName,
} from "./points.js";
export type { FailpointName, FailpointSpec } from "./points.js";
export { parseTerms, selectTerm, MAX_SLEEP_MS } from "./terms.js";
export type { FailpointAction, FailpointMode, FailpointTerm } from "./terms.js";
export { serveFailpointHttp, FAILPOINTS_HTTP_PATH } from "./http.js";
export type { FailpointHttpAnswer } from "./http.js";
export {
  FailpointError,
  FailpointSyntaxError,
  FailpointUnknownError,
  FailpointUnsupportedError,
  FailpointInjectedError,
} from "./errors.js";
