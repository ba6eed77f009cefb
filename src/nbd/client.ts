/**
 * One NBD client connection in the transmission phase (doc/proto.md "Transmission"): requests
 * go out as they are made, each with its own handle, and replies — simple or structured chunks,
 * in any order — are matched back by handle, so any number of requests can be in flight.
 * Requests larger than the server's maximum are split. When the connection ends, every pending
 * request fails with ConnectionLost (the reconnecting layer, reconnect.ts, decides what then).
 */
import { ioError, type Errno } from '../block/errors.ts';
import type { Channel } from './channel.ts';
import { ConnectionLost } from './channel.ts';
import type { ExportInfo } from './client-handshake.ts';
import {
  Cmd,
  CmdFlag,
  NbdErr,
  REPLY_FLAG_DONE,
  Reply,
  SIMPLE_REPLY_MAGIC,
  STATE_HOLE,
  STATE_ZERO,
  STRUCTURED_REPLY_MAGIC,
  TFlag,
} from './protocol.ts';
import { encodeRequest, ProtocolError, WireReader } from './wire.ts';

/** The NBD error values a server may send, as our errnos (unknown ones are EIO). */
const ERRNO_OF: Readonly<Record<number, Errno>> = {
  [NbdErr.EPERM]: 'EPERM',
  [NbdErr.EIO]: 'EIO',
  [NbdErr.EINVAL]: 'EINVAL',
  [NbdErr.ENOSPC]: 'ENOSPC',
  [NbdErr.EOVERFLOW]: 'EINVAL',
  [NbdErr.ENOTSUP]: 'ENOTSUP',
};

/** Zero/trim/block-status lengths are 32-bit; larger ranges are split at this size. */
const MAX_RANGE = 2 ** 31;

interface Pending {
  readonly type: number;
  readonly offset: number;
  /** Where a read's data goes. */
  readonly dst?: Uint8Array;
  /** A block status answer: the first extent. */
  extent?: { length: number; flags: number };
  /** The first error a chunk reported (NBD error value). */
  error: number;
  resolve(done: Pending): void;
  reject(err: Error): void;
}

/** The first extent of a block status reply. */
export interface Extent {
  readonly length: number;
  readonly hole: boolean;
  readonly zero: boolean;
}

export class NbdClientSession {
  private readonly pending = new Map<number, Pending>();
  private nextHandle = 1;
  /** Settles (never rejects) when the connection is over. */
  readonly ended: Promise<ConnectionLost>;

  constructor(
    private readonly ch: Channel,
    readonly info: ExportInfo,
  ) {
    this.ended = new Promise((resolve) => ch.onEnd(resolve));
    ch.onEnd((err) => {
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    });
    void this.receiveLoop();
  }

  has(flag: number): boolean {
    return (this.info.flags & flag) !== 0;
  }

  async read(offset: number, dst: Uint8Array): Promise<void> {
    const max = this.info.maxBlock;
    const parts: Promise<Pending>[] = [];
    for (let done = 0; done < dst.length; done += max) {
      const piece = dst.subarray(done, Math.min(dst.length, done + max));
      parts.push(this.request(Cmd.READ, 0, offset + done, piece.length, undefined, piece));
    }
    await Promise.all(parts);
  }

  async write(offset: number, src: Uint8Array, fua: boolean): Promise<void> {
    const max = this.info.maxBlock;
    const flags = fua && this.has(TFlag.SEND_FUA) ? CmdFlag.FUA : 0;
    const parts: Promise<Pending>[] = [];
    for (let done = 0; done < src.length; done += max) {
      const piece = src.subarray(done, Math.min(src.length, done + max));
      parts.push(this.request(Cmd.WRITE, flags, offset + done, piece.length, piece));
    }
    await Promise.all(parts);
    if (fua && !flags) await this.flush();
  }

  /** NBD_CMD_WRITE_ZEROES; without `unmap` the server must not punch holes (NO_HOLE). */
  writeZeroes(offset: number, bytes: number, unmap: boolean): Promise<void> {
    return this.ranged(Cmd.WRITE_ZEROES, unmap ? 0 : CmdFlag.NO_HOLE, offset, bytes);
  }

  trim(offset: number, bytes: number): Promise<void> {
    return this.ranged(Cmd.TRIM, 0, offset, bytes);
  }

  async flush(): Promise<void> {
    await this.request(Cmd.FLUSH, 0, 0, 0);
  }

  /** NBD_CMD_BLOCK_STATUS (REQ_ONE) for base:allocation: the extent starting at `offset`. */
  async blockStatus(offset: number, bytes: number): Promise<Extent> {
    const length = Math.min(bytes, MAX_RANGE - this.info.minBlock);
    const e = (await this.request(Cmd.BLOCK_STATUS, CmdFlag.REQ_ONE, offset, length)).extent;
    if (!e || e.length === 0) throw ioError('EIO', 'Protocol error: server sent no usable extent');
    return {
      length: Math.min(e.length, bytes),
      hole: (e.flags & STATE_HOLE) !== 0,
      zero: (e.flags & STATE_ZERO) !== 0,
    };
  }

  /** NBD_CMD_DISC and close: the soft disconnect of "Terminating the transmission phase". */
  disconnect(): void {
    if (this.ch.closed) return;
    this.ch.write(encodeRequest(0, Cmd.DISC, this.nextHandle++, 0, 0));
    this.ch.close();
  }

  private async ranged(type: number, flags: number, offset: number, bytes: number): Promise<void> {
    const step = MAX_RANGE - this.info.minBlock;
    const parts: Promise<Pending>[] = [];
    for (let done = 0; done < bytes; done += step) {
      parts.push(this.request(type, flags, offset + done, Math.min(step, bytes - done)));
    }
    await Promise.all(parts);
  }

  private request(
    type: number,
    flags: number,
    offset: number,
    length: number,
    payload?: Uint8Array,
    dst?: Uint8Array,
  ): Promise<Pending> {
    if (this.ch.closed) return Promise.reject(new ConnectionLost());
    const handle = this.nextHandle++;
    const done = new Promise<Pending>((resolve, reject) => {
      this.pending.set(handle, { type, offset, dst, error: 0, resolve, reject });
    });
    const header = encodeRequest(flags, type, handle, offset, length);
    if (payload) this.ch.write(header, payload);
    else this.ch.write(header);
    return done;
  }

  /** Reads replies until the connection ends; a protocol violation ends it. */
  private async receiveLoop(): Promise<void> {
    try {
      for (;;) {
        const head = new WireReader(await this.ch.read(4));
        const magic = head.u32();
        if (magic === SIMPLE_REPLY_MAGIC) await this.simpleReply();
        else if (magic === STRUCTURED_REPLY_MAGIC) await this.structuredChunk();
        else throw new ProtocolError('invalid reply magic');
      }
    } catch (err) {
      if (!(err instanceof ConnectionLost)) this.ch.end(`NBD protocol error: ${(err as Error).message}`);
      this.ch.close();
    }
  }

  private async simpleReply(): Promise<void> {
    const r = new WireReader(await this.ch.read(12));
    const error = r.u32();
    const p = this.take(r.u64());
    // Only without structured replies does a simple reply carry a read's data.
    if (p.type === Cmd.READ && error === 0) await this.ch.readInto(p.dst!);
    p.error ||= error;
    this.complete(p);
  }

  private async structuredChunk(): Promise<void> {
    const r = new WireReader(await this.ch.read(16));
    const flags = r.u16();
    const type = r.u16();
    const handle = r.u64();
    const length = r.u32();
    const p = this.pending.get(handle);
    if (!p) throw new ProtocolError(`reply for unknown handle ${handle}`);
    if (type === Reply.OFFSET_DATA) await this.offsetData(p, length);
    else this.chunk(p, type, new WireReader(await this.ch.read(length)));
    if (flags & REPLY_FLAG_DONE) this.complete(this.take(handle));
  }

  /** NBD_REPLY_TYPE_OFFSET_DATA: the data goes straight from the stream into the read buffer. */
  private async offsetData(p: Pending, length: number): Promise<void> {
    const at = new WireReader(await this.ch.read(8)).u64() - p.offset;
    const n = length - 8;
    if (!p.dst || n < 0 || at < 0 || at + n > p.dst.length) throw new ProtocolError('data outside the read');
    await this.ch.readInto(p.dst.subarray(at, at + n));
  }

  /** Applies one structured chunk to its request (doc/proto.md "Structured reply types"). */
  private chunk(p: Pending, type: number, r: WireReader): void {
    switch (type) {
      case Reply.NONE:
        return;
      case Reply.OFFSET_HOLE: {
        const at = r.u64() - p.offset;
        const len = r.u32();
        if (!p.dst || at < 0 || at + len > p.dst.length) throw new ProtocolError('hole outside the read');
        p.dst.fill(0, at, at + len);
        return;
      }
      case Reply.BLOCK_STATUS:
        r.u32();
        p.extent ??= { length: r.u32(), flags: r.u32() };
        return;
      default:
        // Error chunks (bit 15), known or not, carry the error value first.
        if (!(type & 0x8000)) throw new ProtocolError(`unexpected reply type ${type}`);
        p.error ||= r.u32() || NbdErr.EINVAL;
    }
  }

  private take(handle: number): Pending {
    const p = this.pending.get(handle);
    if (!p) throw new ProtocolError(`reply for unknown handle ${handle}`);
    this.pending.delete(handle);
    return p;
  }

  private complete(p: Pending): void {
    if (p.error === 0) p.resolve(p);
    else p.reject(ioError(ERRNO_OF[p.error] ?? 'EIO'));
  }
}
