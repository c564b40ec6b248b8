/**
 * The request-header encoder of the load generator's raw transport, indexing as real gRPC clients
 * do (grpc-go's and grpc C core's HPACK encoders, RFC 7541 §6.2.1): the first request of a
 * connection sends each header as a literal with incremental indexing, later requests send the
 * one-byte index of the entry the server now holds. Sending every request as literals without
 * indexing (as this generator once did) made both servers decode :path, :authority, content-type
 * and te on every request, a cost no real client imposes.
 */
import { encodeInt, type Header } from "../../lib/h2/hpack.js";

/** RFC 7541 Appendix A entries a gRPC request uses: exact pairs, then names only. */
const staticPairs = new Map<string, number>([
  [":method\0POST", 3],
  [":scheme\0http", 6],
  [":scheme\0https", 7],
]);
const staticNames = new Map<string, number>([
  [":authority", 1],
  [":method", 2],
  [":path", 4],
  [":scheme", 6],
  ["content-type", 31],
  ["user-agent", 58],
]);
const staticTableLength = 61;

function pushString(out: number[], s: string): void {
  encodeInt(out, 0x00, 7, s.length);
  for (let i = 0; i < s.length; i++) out.push(s.charCodeAt(i) & 0xff);
}

/**
 * One connection's encoder: it mirrors the entries it has asked the server to add to its dynamic
 * table and never lets that table evict (entries go in only while their RFC 7541 §4.1 sizes sum
 * to at most `tableSizeBytes`, the server's SETTINGS_HEADER_TABLE_SIZE; others are sent as
 * literals without indexing), so an index it sends always names the entry it means.
 */
export class IndexingHeaderEncoder {
  readonly #tableSizeBytes: number;
  /** "name\0value" → its insertion number (0 = first inserted). */
  readonly #inserted = new Map<string, number>();
  #usedBytes = 0;
  #blocks = new Map<string, Buffer>();

  constructor(tableSizeBytes = 4096) {
    this.#tableSizeBytes = tableSizeBytes;
  }

  /** The block `encode` last cached under `cacheKey`, if it is still valid. */
  cached(cacheKey: string): Buffer | undefined {
    return this.#blocks.get(cacheKey);
  }

  /**
   * Drops every cached block: call it when a header list behind a cache key changes (a new auth
   * token). The entries the server holds stay mirrored.
   */
  forgetBlocks(): void {
    this.#blocks.clear();
  }

  /**
   * The header block for `headers`. `cacheKey` names a header list that is always the same (the
   * request headers of one method): its block is reused until an insertion changes the indexes.
   */
  encode(cacheKey: string, headers: readonly Header[]): Buffer {
    const cached = this.#blocks.get(cacheKey);
    if (cached !== undefined) return cached;
    const out: number[] = [];
    let inserted = false;
    for (const [name, value] of headers) {
      const pair = `${name}\0${value}`;
      const s = staticPairs.get(pair);
      if (s !== undefined) {
        encodeInt(out, 0x80, 7, s);
        continue;
      }
      const seq = this.#inserted.get(pair);
      if (seq !== undefined) {
        // the newest entry has the lowest dynamic index (RFC 7541 §2.3.3)
        encodeInt(out, 0x80, 7, staticTableLength + this.#inserted.size - seq);
        continue;
      }
      const nameIdx = staticNames.get(name) ?? 0;
      const size = 32 + name.length + value.length;
      const index = this.#usedBytes + size <= this.#tableSizeBytes;
      if (index) {
        encodeInt(out, 0x40, 6, nameIdx);
        this.#inserted.set(pair, this.#inserted.size);
        this.#usedBytes += size;
        inserted = true;
      } else {
        encodeInt(out, 0x00, 4, nameIdx);
      }
      if (nameIdx === 0) pushString(out, name);
      pushString(out, value);
    }
    const block = Buffer.from(out);
    if (inserted) this.#blocks.clear();
    else this.#blocks.set(cacheKey, block);
    return block;
  }
}
