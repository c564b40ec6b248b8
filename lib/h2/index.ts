/**
 * lib/h2's public face: a lean HTTP/2 (RFC 9113) + HPACK (RFC 7541) + gRPC server transport on
 * node:net / node:tls sockets, serving transport-independent handlers (DESIGN §2).
 */
export {
  H2GrpcServer,
  GrpcCode,
  unaryMethod,
  serverStreamMethod,
  bidiMethod,
  percentEncodeGrpcMessage,
  parseGrpcTimeoutMs,
  defaultGrpcLimits,
  type MethodHandler,
  type MessageCodec,
  type CallContext,
  type GrpcBidiStream,
  type GrpcServerStream,
  type GrpcLimits,
  type GrpcStatusInfo,
  type ErrorMapper,
  type H2GrpcServerOptions,
} from "./grpc.js";
export {
  H2Connection,
  H2Stream,
  defaultH2Limits,
  type H2Limits,
  type H2ConnectionHandler,
  type H2ConnectionErrorInfo,
  type H2StreamHandler,
} from "./connection.js";
export {
  HpackDecoder,
  encodeHeaderBlock,
  decodeHuffman,
  encodeHuffman,
  type Header,
} from "./hpack.js";
export {
  H2ErrorCode,
  H2ConnectionError,
  H2StreamError,
  h2DefenceReasons,
  type H2CloseReason,
  HpackError,
  HeaderListTooLargeError,
} from "./errors.js";
export {
  WriteOffload,
  SocketWriteOffload,
  writeOffload,
  defaultWriteOffloadOptions,
  type WriteOffloadOptions,
} from "./write-offload.js";
export * as frames from "./frames.js";
