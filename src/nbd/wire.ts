/**
 * Encoding and decoding of NBD messages (doc/proto.md: "Fixed newstyle negotiation", "Request
 * message", "Simple reply message", "Structured reply chunk message"). 64-bit offsets are JS
 * numbers (< 2^53, as everywhere in blockgraph); handles are 8 opaque bytes on the server side
 * and numbers below 2^53 on the client side.
 */
import {
  IHAVEOPT,
  OPT_REPLY_MAGIC,
  REQUEST_HEADER,
  REQUEST_MAGIC,
  SIMPLE_REPLY_HEADER,
  SIMPLE_REPLY_MAGIC,
  STRUCTURED_REPLY_HEADER,
  STRUCTURED_REPLY_MAGIC,
} from './protocol.ts';

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

export const encodeString = (s: string): Uint8Array => utf8.encode(s);
export const decodeString = (b: Uint8Array): string => fromUtf8.decode(b);

/** A big-endian reader over one message body; reading past its end is a protocol error. */
export class WireReader {
  private pos = 0;
  private readonly view: DataView;

  constructor(private readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  get remaining(): number {
    return this.bytes.length - this.pos;
  }

  u16(): number {
    this.need(2);
    const v = this.view.getUint16(this.pos);
    this.pos += 2;
    return v;
  }

  u32(): number {
    this.need(4);
    const v = this.view.getUint32(this.pos);
    this.pos += 4;
    return v;
  }

  u64(): number {
    const hi = this.u32();
    return hi * 2 ** 32 + this.u32();
  }

  bytesOf(n: number): Uint8Array {
    this.need(n);
    const out = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  /** A string preceded by its 32-bit length. */
  string32(): string {
    return decodeString(this.bytesOf(this.u32()));
  }

  private need(n: number): void {
    if (this.pos + n > this.bytes.length) throw new ProtocolError('message too short');
  }
}

/** The peer broke the protocol: the connection cannot be trusted any further. */
export class ProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProtocolError';
  }
}

/** Whether the 8 bytes `b` hold the 64-bit magic `v`. */
export function isMagic64(b: Uint8Array, v: bigint): boolean {
  return b.length >= 8 && new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0) === v;
}

/** A big-endian message builder with a fixed size. */
export class WireWriter {
  readonly bytes: Uint8Array;
  private readonly view: DataView;
  private pos = 0;

  constructor(size: number) {
    this.bytes = new Uint8Array(size);
    this.view = new DataView(this.bytes.buffer);
  }

  u16(v: number): this {
    this.view.setUint16(this.pos, v);
    this.pos += 2;
    return this;
  }

  u32(v: number): this {
    this.view.setUint32(this.pos, v);
    this.pos += 4;
    return this;
  }

  u64(v: number | bigint): this {
    if (typeof v === 'bigint') this.view.setBigUint64(this.pos, v);
    else {
      this.view.setUint32(this.pos, Math.floor(v / 2 ** 32));
      this.view.setUint32(this.pos + 4, v >>> 0);
    }
    this.pos += 8;
    return this;
  }

  raw(b: Uint8Array): this {
    this.bytes.set(b, this.pos);
    this.pos += b.length;
    return this;
  }
}

/** C: an option request (IHAVEOPT, option, length, data). */
export function encodeOption(option: number, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  return new WireWriter(16 + data.length).u64(IHAVEOPT).u32(option).u32(data.length).raw(data).bytes;
}

/** S: an option reply (magic, option, reply type, length, data). */
export function encodeOptionReply(
  option: number,
  type: number,
  data: Uint8Array = new Uint8Array(0),
): Uint8Array {
  return new WireWriter(20 + data.length)
    .u64(OPT_REPLY_MAGIC)
    .u32(option)
    .u32(type)
    .u32(data.length)
    .raw(data).bytes;
}

/** C: a request header; a write's payload follows it separately. */
export function encodeRequest(
  flags: number,
  type: number,
  handle: number,
  offset: number,
  length: number,
): Uint8Array {
  return new WireWriter(REQUEST_HEADER)
    .u32(REQUEST_MAGIC)
    .u16(flags)
    .u16(type)
    .u64(handle)
    .u64(offset)
    .u32(length).bytes;
}

export interface RequestHeader {
  readonly flags: number;
  readonly type: number;
  readonly handle: Uint8Array;
  readonly offset: number;
  readonly length: number;
}

/** S: a request header, or a ProtocolError if the magic is wrong. */
export function decodeRequest(b: Uint8Array): RequestHeader {
  const r = new WireReader(b);
  if (r.u32() !== REQUEST_MAGIC) throw new ProtocolError('invalid request magic');
  const flags = r.u16();
  const type = r.u16();
  const handle = r.bytesOf(8).slice();
  return { flags, type, handle, offset: r.u64(), length: r.u32() };
}

/** S: a simple reply header (magic, error, handle). */
export function encodeSimpleReply(error: number, handle: Uint8Array): Uint8Array {
  return new WireWriter(SIMPLE_REPLY_HEADER).u32(SIMPLE_REPLY_MAGIC).u32(error).raw(handle).bytes;
}

/** S: a structured reply chunk header; `length` bytes of payload follow. */
export function encodeChunkHeader(
  flags: number,
  type: number,
  handle: Uint8Array,
  length: number,
): Uint8Array {
  return new WireWriter(STRUCTURED_REPLY_HEADER)
    .u32(STRUCTURED_REPLY_MAGIC)
    .u16(flags)
    .u16(type)
    .raw(handle)
    .u32(length).bytes;
}
