/** lib/server's public face: one member, its configuration and errors. */
export { EtcdServer, type ServerOptions } from "./server.js";
export { type ServerConfig, type TlsFiles, defaultConfig, defaultQuotaBytes } from "./config.js";
export { ServerError } from "./errors.js";
export { parseGoDurationMs, DurationError } from "./duration.js";
export { computeMemberId, computeClusterId, parseInitialCluster } from "./membership.js";
