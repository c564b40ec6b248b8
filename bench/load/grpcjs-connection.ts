/**
 * The reference transport: @grpc/grpc-js with identity (de)serializers, so the load generator can
 * show what a stock Node gRPC client costs per call compared with the lean transports
 * (`--transport grpc-js`). Same surface as H2GrpcConnection.
 */
import * as grpc from "@grpc/grpc-js";
import { ConnectionLostError, GrpcCallError } from "./errors.js";
import { GRPC_PREFIX_BYTES } from "./grpc-frame.js";
import type { BidiHandlers, BidiStream } from "./h2-connection.js";

/** Longest waitForReady may take on connect, ms. */
export const GRPCJS_CONNECT_TIMEOUT_MS = 10_000;

const identity = (b: Buffer): Buffer => b;

/** One grpc-js channel to one endpoint. Frames passed in carry the 5-byte prefix, stripped here. */
export class GrpcJsConnection {
  readonly endpoint: string;
  #client: grpc.Client;
  #metadata = new grpc.Metadata();

  private constructor(endpoint: string, client: grpc.Client) {
    this.endpoint = endpoint;
    this.#client = client;
  }

  /** Opens a channel (a distinct one per call: grpc-js would otherwise share a subchannel). */
  static connect(endpoint: string): Promise<GrpcJsConnection> {
    const target = endpoint.replace(/^http:\/\//, "");
    const client = new grpc.Client(target, grpc.credentials.createInsecure(), {
      "grpc.use_local_subchannel_pool": 1,
      "grpc.max_receive_message_length": -1,
    });
    return new Promise((resolve, reject) => {
      client.waitForReady(Date.now() + GRPCJS_CONNECT_TIMEOUT_MS, (err) => {
        if (err) {
          client.close();
          reject(new ConnectionLostError(endpoint, err.message));
        } else resolve(new GrpcJsConnection(endpoint, client));
      });
    });
  }

  /** Sends `token` as `token` metadata on every call from now on (null: none). */
  setToken(token: string | null): void {
    const md = new grpc.Metadata();
    if (token !== null) md.set("token", token);
    this.#metadata = md;
  }

  /** One unary call; see H2GrpcConnection.unary. */
  unary(path: string, frame: Buffer): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      this.#client.makeUnaryRequest(
        path,
        identity,
        identity,
        frame.subarray(GRPC_PREFIX_BYTES),
        this.#metadata,
        (err, res) => {
          if (err) reject(new GrpcCallError(path, err.code ?? 2, err.details ?? err.message));
          else resolve(res ?? Buffer.alloc(0));
        },
      );
    });
  }

  /** A bidirectional stream; see H2GrpcConnection.bidi. */
  bidi(path: string, handlers: BidiHandlers): BidiStream {
    const call = this.#client.makeBidiStreamRequest(path, identity, identity, this.#metadata);
    let ended = false;
    const finish = (err: Error | null): void => {
      if (ended) return;
      ended = true;
      handlers.onEnd(err);
    };
    call.on("data", (b: Buffer) => handlers.onMessage(b));
    call.on("error", (e: grpc.ServiceError) =>
      finish(new GrpcCallError(path, e.code ?? 2, e.details ?? e.message)),
    );
    call.on("status", (s: grpc.StatusObject) =>
      finish(s.code === 0 ? null : new GrpcCallError(path, s.code, s.details)),
    );
    return {
      write: (frame) => {
        if (!ended) call.write(frame.subarray(GRPC_PREFIX_BYTES));
      },
      end: () => call.end(),
      cancel: () => call.cancel(),
    };
  }

  /** Closes the channel. */
  close(): Promise<void> {
    this.#client.close();
    return Promise.resolve();
  }
}
