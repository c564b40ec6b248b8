/**
 * HPACK (RFC 7541): a header-block decoder with the dynamic table and Huffman decoding, and a small
 * encoder that never indexes (responses of a gRPC server are a handful of constant headers, which
 * are pre-encoded once; see encodeHeaderBlock).
 *
 * Why not npm `hpack.js`: its last release is from 2017, it decodes through streams and
 * allocates per header; this file is small, sync, and bounded by explicit limits.
 */
import { HeaderListTooLargeError, HpackError } from "./errors.js";

/** A decoded header: [name, value], both latin1 strings as on the wire. */
export type Header = [name: string, value: string];

/** RFC 7541 Appendix A (index 1..61). */
const staticTable: readonly Header[] = [
  [":authority", ""],
  [":method", "GET"],
  [":method", "POST"],
  [":path", "/"],
  [":path", "/index.html"],
  [":scheme", "http"],
  [":scheme", "https"],
  [":status", "200"],
  [":status", "204"],
  [":status", "206"],
  [":status", "304"],
  [":status", "400"],
  [":status", "404"],
  [":status", "500"],
  ["accept-charset", ""],
  ["accept-encoding", "gzip, deflate"],
  ["accept-language", ""],
  ["accept-ranges", ""],
  ["accept", ""],
  ["access-control-allow-origin", ""],
  ["age", ""],
  ["allow", ""],
  ["authorization", ""],
  ["cache-control", ""],
  ["content-disposition", ""],
  ["content-encoding", ""],
  ["content-language", ""],
  ["content-length", ""],
  ["content-location", ""],
  ["content-range", ""],
  ["content-type", ""],
  ["cookie", ""],
  ["date", ""],
  ["etag", ""],
  ["expect", ""],
  ["expires", ""],
  ["from", ""],
  ["host", ""],
  ["if-match", ""],
  ["if-modified-since", ""],
  ["if-none-match", ""],
  ["if-range", ""],
  ["if-unmodified-since", ""],
  ["last-modified", ""],
  ["link", ""],
  ["location", ""],
  ["max-forwards", ""],
  ["proxy-authenticate", ""],
  ["proxy-authorization", ""],
  ["range", ""],
  ["referer", ""],
  ["refresh", ""],
  ["retry-after", ""],
  ["server", ""],
  ["set-cookie", ""],
  ["strict-transport-security", ""],
  ["transfer-encoding", ""],
  ["user-agent", ""],
  ["vary", ""],
  ["via", ""],
  ["www-authenticate", ""],
];

/**
 * RFC 7541 Appendix B gives a canonical Huffman code: codes of one length are consecutive and
 * ordered by symbol, so the bit lengths of symbols 0..256 (256 = EOS) define the whole code.
 */
const huffmanBitLengths: readonly number[] = [
  13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28,
  28, 28, 28, 28, 28, 28, 28, 28, 6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5, 5,
  6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, 13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
  7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, 15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, 6,
  7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, 20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23,
  23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, 22, 21, 20, 22,
  22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22,
  23, 22, 22, 23, 26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19, 21, 26, 27,
  27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, 20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25,
  24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, 30,
];
const eosSymbol = 256;
const maxHuffmanBits = 30;

/** Canonical decoding tables: for each length L, the first code, the count and the offset into sortedSymbols. */
const huffFirstCode = new Int32Array(maxHuffmanBits + 1);
const huffCount = new Int32Array(maxHuffmanBits + 1);
const huffOffset = new Int32Array(maxHuffmanBits + 1);
const huffSortedSymbols = new Uint16Array(257);
/** Encoder side: code of each symbol (right-aligned) — used by tests and by encodeHuffman. */
export const huffmanCodes = new Uint32Array(257);
{
  const order = [...huffmanBitLengths.keys()].sort(
    (a, b) => huffmanBitLengths[a] - huffmanBitLengths[b] || a - b,
  );
  let code = 0;
  let prevLen = huffmanBitLengths[order[0]];
  order.forEach((sym, i) => {
    const len = huffmanBitLengths[sym];
    code <<= len - prevLen;
    prevLen = len;
    if (huffCount[len] === 0) {
      huffFirstCode[len] = code;
      huffOffset[len] = i;
    }
    huffCount[len]++;
    huffSortedSymbols[i] = sym;
    huffmanCodes[sym] = code >>> 0;
    code++;
  });
}

/**
 * Decodes a Huffman-coded string (RFC 7541 §5.2) into latin1. Throws HpackError on EOS inside the
 * data, on padding longer than 7 bits or not all ones.
 */
export function decodeHuffman(buf: Uint8Array, start: number, end: number): string {
  // the output is at most 8/5 of the input (shortest code is 5 bits)
  const out = Buffer.allocUnsafe(Math.ceil(((end - start) * 8) / 5));
  let n = 0;
  let code = 0;
  let len = 0;
  for (let i = start; i < end; i++) {
    const byte = buf[i];
    for (let bit = 7; bit >= 0; bit--) {
      code = (code << 1) | ((byte >> bit) & 1);
      len++;
      const count = huffCount[len];
      if (count !== 0) {
        const idx = code - huffFirstCode[len];
        if (idx >= 0 && idx < count) {
          const sym = huffSortedSymbols[huffOffset[len] + idx];
          if (sym === eosSymbol) throw new HpackError("hpack: EOS symbol in Huffman string");
          out[n++] = sym;
          code = 0;
          len = 0;
          continue;
        }
      }
      if (len >= maxHuffmanBits) throw new HpackError("hpack: invalid Huffman code");
    }
  }
  if (len > 7 || code !== (1 << len) - 1) throw new HpackError("hpack: invalid Huffman padding");
  return out.toString("latin1", 0, n);
}

/** Huffman-encodes a latin1 string (RFC 7541 §5.2); used by tests and for the occasional header. */
export function encodeHuffman(s: string): Buffer {
  const bytes: number[] = [];
  let acc = 0;
  let bits = 0;
  for (let i = 0; i < s.length; i++) {
    const sym = s.charCodeAt(i) & 0xff;
    let len = huffmanBitLengths[sym];
    const code = huffmanCodes[sym];
    // emit high bits first; codes are up to 30 bits, so feed them in pieces to keep acc < 2^31
    while (len > 0) {
      const take = Math.min(len, 8);
      acc = (acc << take) | ((code >>> (len - take)) & ((1 << take) - 1));
      bits += take;
      len -= take;
      while (bits >= 8) {
        bytes.push((acc >>> (bits - 8)) & 0xff);
        bits -= 8;
        acc &= (1 << bits) - 1;
      }
    }
  }
  if (bits > 0) bytes.push(((acc << (8 - bits)) | ((1 << (8 - bits)) - 1)) & 0xff);
  return Buffer.from(bytes);
}

/** Limits of one decoder (STYLE §2). */
export interface HpackDecoderLimits {
  /** SETTINGS_HEADER_TABLE_SIZE we advertised: the most the peer may size our dynamic table to */
  maxTableSizeBytes: number;
  /** SETTINGS_MAX_HEADER_LIST_SIZE we advertised: sum of name + value + 32 over a block */
  maxHeaderListBytes: number;
  /** longest single string literal accepted (a bound on one allocation) */
  maxStringBytes: number;
}

const entryOverheadBytes = 32;

/**
 * Decodes header blocks of one connection, keeping the dynamic table across blocks (RFC 7541 §2.3).
 * The table is a ring of [name, value] with its byte size; eviction is from the oldest end.
 */
export class HpackDecoder {
  readonly #limits: HpackDecoderLimits;
  /** dynamic table, newest last; index 62 (first dynamic) is the newest */
  #table: Header[] = [];
  #tableBytes = 0;
  #maxTableBytes: number;
  /** where the last #readInt / #readString stopped (saves a tuple per call) */
  #next = 0;
  /**
   * The list being decoded; decode() hands out an exact-size copy. A list grown by push lives as
   * long as its stream and left a trail of outgrown arrays per request. Never shrunk: it holds at
   * most one header list's worth (maxHeaderListBytes) of entries.
   */
  #scratch: Header[] = [];

  constructor(limits: HpackDecoderLimits) {
    this.#limits = limits;
    this.#maxTableBytes = limits.maxTableSizeBytes;
  }

  /** Current dynamic table size in bytes (RFC 7541 §4.1), for tests. */
  get tableBytes(): number {
    return this.#tableBytes;
  }

  /**
   * Decodes one complete header block. Throws HpackError (connection must end) on malformed input,
   * HeaderListTooLargeError after the whole block was decoded (so the table stays in sync and only
   * the stream is refused) when the decoded list is larger than maxHeaderListBytes. An indexed
   * field comes back as the static or dynamic table's own pair (no copy per request): callers
   * must treat the pairs as read-only.
   */
  decode(block: Uint8Array): Header[] {
    // entries past `n` are stale ones of an earlier, longer list; they are overwritten or ignored
    const out = this.#scratch;
    let n = 0;
    let listBytes = 0;
    let tooLarge = false;
    let p = 0;
    const end = block.length;
    let headerSeen = false;
    while (p < end) {
      const b = block[p];
      let name: string;
      let value: string;
      /** the table's own entry when the field is indexed: handed out as is (never mutated) */
      let entry: Header | undefined;
      if (b & 0x80) {
        // §6.1 indexed header field
        const idx = this.#readInt(block, p, 7);
        p = this.#next;
        entry = this.#lookup(idx);
        name = entry[0];
        value = entry[1];
      } else if ((b & 0xe0) === 0x20) {
        // §6.3 dynamic table size update: only at the start of a block
        if (headerSeen) throw new HpackError("hpack: table size update after a header field");
        const size = this.#readInt(block, p, 5);
        p = this.#next;
        if (size > this.#limits.maxTableSizeBytes)
          throw new HpackError("hpack: table size update above the limit");
        this.#maxTableBytes = size;
        this.#evict(0);
        continue;
      } else {
        // §6.2 literal: with incremental indexing (01), without (0000) or never indexed (0001)
        const incremental = (b & 0xc0) === 0x40;
        const idx = this.#readInt(block, p, incremental ? 6 : 4);
        p = this.#next;
        if (idx === 0) {
          name = this.#readString(block, p);
          p = this.#next;
        } else {
          name = this.#lookup(idx)[0];
        }
        value = this.#readString(block, p);
        p = this.#next;
        if (incremental) this.#insert(name, value);
      }
      headerSeen = true;
      listBytes += name.length + value.length + entryOverheadBytes;
      if (listBytes > this.#limits.maxHeaderListBytes) tooLarge = true;
      // an HPACK bomb (one big entry referenced many times) stops growing `out` here
      if (!tooLarge) out[n++] = entry ?? [name, value];
    }
    if (tooLarge)
      throw new HeaderListTooLargeError(
        `header list larger than ${this.#limits.maxHeaderListBytes} bytes`,
      );
    return out.slice(0, n);
  }

  #lookup(idx: number): Header {
    if (idx === 0) throw new HpackError("hpack: index 0");
    if (idx <= staticTable.length) return staticTable[idx - 1];
    const d = idx - staticTable.length;
    if (d > this.#table.length)
      throw new HpackError(`hpack: index ${idx} beyond the dynamic table`);
    return this.#table[this.#table.length - d];
  }

  #insert(name: string, value: string): void {
    const size = name.length + value.length + entryOverheadBytes;
    if (size > this.#maxTableBytes) {
      // §4.4: an entry larger than the table empties it and is not added
      this.#table = [];
      this.#tableBytes = 0;
      return;
    }
    this.#evict(size);
    this.#table.push([name, value]);
    this.#tableBytes += size;
  }

  #evict(room: number): void {
    let drop = 0;
    while (this.#tableBytes + room > this.#maxTableBytes && drop < this.#table.length) {
      const [n, v] = this.#table[drop++];
      this.#tableBytes -= n.length + v.length + entryOverheadBytes;
    }
    if (drop > 0) this.#table.splice(0, drop);
  }

  /** §5.1 integer with an N-bit prefix; bounded to 2^28 so a run of 0xff cannot overflow. */
  #readInt(buf: Uint8Array, p: number, prefixBits: number): number {
    const mask = (1 << prefixBits) - 1;
    let v = buf[p++] & mask;
    if (v < mask) {
      this.#next = p;
      return v;
    }
    let shift = 0;
    for (;;) {
      if (p >= buf.length) throw new HpackError("hpack: truncated integer");
      const b = buf[p++];
      v += (b & 0x7f) * 2 ** shift;
      shift += 7;
      if ((b & 0x80) === 0) break;
      if (shift > 28) throw new HpackError("hpack: integer too large");
    }
    this.#next = p;
    return v;
  }

  /** §5.2 string literal, plain or Huffman. */
  #readString(buf: Uint8Array, p: number): string {
    if (p >= buf.length) throw new HpackError("hpack: truncated string");
    const huffman = (buf[p] & 0x80) !== 0;
    const len = this.#readInt(buf, p, 7);
    const np = this.#next;
    if (len > this.#limits.maxStringBytes) throw new HpackError("hpack: string literal too long");
    const end = np + len;
    if (end > buf.length) throw new HpackError("hpack: truncated string");
    const s = huffman
      ? decodeHuffman(buf, np, end)
      : Buffer.from(buf.buffer, buf.byteOffset + np, len).toString("latin1");
    this.#next = end;
    return s;
  }
}

/**
 * Appends RFC 7541 §5.1 integer `v` with an n-bit prefix (`prefixBits`) after the pattern bits
 * already in `first` (e.g. 0x80 for an indexed field, 0x40 for a literal with indexing).
 */
export function encodeInt(out: number[], first: number, prefixBits: number, v: number): void {
  const mask = (1 << prefixBits) - 1;
  if (v < mask) {
    out.push(first | v);
    return;
  }
  out.push(first | mask);
  v -= mask;
  while (v >= 128) {
    out.push((v % 128) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
}

/**
 * Encodes headers as literals without indexing (RFC 7541 §6.2.2), using a static-table name
 * index where one exists and `:status: 200` as the indexed field. Never touches the peer's dynamic
 * table, so the peer's SETTINGS_HEADER_TABLE_SIZE does not matter. Names must be lower case.
 */
export function encodeHeaderBlock(headers: readonly Header[]): Buffer {
  const out: number[] = [];
  for (const [name, value] of headers) {
    if (name === ":status" && value === "200") {
      out.push(0x88);
      continue;
    }
    const nameIdx = staticTable.findIndex((h) => h[0] === name) + 1;
    encodeInt(out, 0x00, 4, nameIdx);
    if (nameIdx === 0) {
      encodeInt(out, 0x00, 7, name.length);
      for (let i = 0; i < name.length; i++) out.push(name.charCodeAt(i) & 0xff);
    }
    encodeInt(out, 0x00, 7, value.length);
    for (let i = 0; i < value.length; i++) out.push(value.charCodeAt(i) & 0xff);
  }
  return Buffer.from(out);
}
