/**
 * The server's transmission phase on one connection (doc/proto.md "Transmission", "Request
 * types", "Structured reply chunk message"): requests are read in order and run concurrently
 * through the export's BlockBackend (which orders overlapping ones), and each reply is written
 * as one message when its request completes. Reads answer with one NBD_REPLY_TYPE_OFFSET_DATA
 * chunk when structured replies were negotiated; block status answers `base:allocation` from
 * the node's block status (QEMU's blockalloc_to_extents: HOLE unless data, ZERO when zero).
 */
import type { BlockBackend } from '../block/backend.ts';
import { errnoOf } from '../block/errors.ts';
import type { Channel } from './channel.ts';
import { ConnectionLost } from './channel.ts';
import { BASE_ALLOCATION_ID, type Negotiated } from './server-handshake.ts';
import {
  Cmd,
  CmdFlag,
  DEFAULT_MAX_PAYLOAD,
  NbdErr,
  REPLY_FLAG_DONE,
  Reply,
  REQUEST_HEADER,
  STATE_HOLE,
  STATE_ZERO,
} from './protocol.ts';
import {
  decodeRequest,
  encodeChunkHeader,
  encodeSimpleReply,
  ProtocolError,
  WireWriter,
  type RequestHeader,
} from './wire.ts';

/** Extents one block status reply carries at most (QEMU caps it likewise). */
const MAX_EXTENTS = 1024;

/** Our errnos as NBD error values (QEMU's system_errno_to_nbd_errno; others are EINVAL). */
const NBD_ERRNO: Readonly<Record<string, number>> = {
  EPERM: NbdErr.EPERM,
  EROFS: NbdErr.EPERM,
  EACCES: NbdErr.EPERM,
  EIO: NbdErr.EIO,
  ENOSPC: NbdErr.ENOSPC,
  EFBIG: NbdErr.ENOSPC,
  ENOTSUP: NbdErr.ENOTSUP,
  ECANCELED: NbdErr.ESHUTDOWN,
};

/** A request failed with this NBD error value before reaching the block layer. */
class RequestError extends Error {
  constructor(readonly nbdErrno: number) {
    super(`NBD error ${nbdErrno}`);
  }
}

export class ServerSession {
  private readonly inFlight = new Set<Promise<void>>();

  constructor(
    private readonly ch: Channel,
    private readonly blk: BlockBackend,
    private readonly neg: Negotiated,
  ) {}

  /** Serves requests until NBD_CMD_DISC or the end of the connection; waits for in-flight ones. */
  async run(): Promise<void> {
    try {
      for (;;) {
        const req = decodeRequest(await this.ch.read(REQUEST_HEADER));
        if (req.type === Cmd.DISC) break;
        let payload: Uint8Array | undefined;
        if (req.type === Cmd.WRITE) {
          if (req.length > DEFAULT_MAX_PAYLOAD) throw new ProtocolError('write payload too large');
          payload = await this.ch.read(req.length);
        }
        const p = this.handle(req, payload).finally(() => this.inFlight.delete(p));
        this.inFlight.add(p);
      }
    } catch (err) {
      if (!(err instanceof ConnectionLost) && !(err instanceof ProtocolError)) throw err;
    }
    await Promise.allSettled(this.inFlight);
    this.ch.close();
  }

  private async handle(req: RequestHeader, payload: Uint8Array | undefined): Promise<void> {
    try {
      if (req.type === Cmd.READ) return await this.read(req);
      if (req.type === Cmd.BLOCK_STATUS) return await this.blockStatus(req);
      await this.execute(req, payload);
      this.send(encodeSimpleReply(0, req.handle));
    } catch (err) {
      if (this.ch.closed) return;
      this.replyError(
        req,
        err instanceof RequestError ? err.nbdErrno : (NBD_ERRNO[errnoOf(err)] ?? NbdErr.EINVAL),
      );
    }
  }

  /** Requests without reply data. */
  private async execute(req: RequestHeader, payload: Uint8Array | undefined): Promise<void> {
    const fua = (req.flags & CmdFlag.FUA) !== 0;
    switch (req.type) {
      case Cmd.WRITE:
        this.checkRange(req, true);
        await this.blk.write(req.offset, payload!, { fua });
        return;
      case Cmd.WRITE_ZEROES:
        this.checkRange(req, true);
        await this.blk.writeZeroes(req.offset, req.length, { unmap: !(req.flags & CmdFlag.NO_HOLE) });
        if (fua) await this.blk.flush();
        return;
      case Cmd.TRIM:
        this.checkRange(req, true);
        await this.blk.discard(req.offset, req.length);
        if (fua) await this.blk.flush();
        return;
      case Cmd.FLUSH:
        await this.blk.flush();
        return;
      case Cmd.CACHE:
        this.checkRange(req, false);
        return;
      default:
        throw new RequestError(NbdErr.EINVAL);
    }
  }

  /** EINVAL past the end (ENOSPC for writes, as the spec asks); EPERM on a read-only export. */
  private checkRange(req: RequestHeader, write: boolean): void {
    if (write && !this.neg.exp.writable) throw new RequestError(NbdErr.EPERM);
    if (req.offset + req.length > this.blk.length()) {
      throw new RequestError(write ? NbdErr.ENOSPC : NbdErr.EINVAL);
    }
  }

  private async read(req: RequestHeader): Promise<void> {
    if (req.length > DEFAULT_MAX_PAYLOAD) throw new RequestError(NbdErr.EINVAL);
    this.checkRange(req, false);
    const data = new Uint8Array(req.length);
    await this.blk.read(req.offset, data);
    if (!this.neg.structured) return this.send(encodeSimpleReply(0, req.handle), data);
    const head = encodeChunkHeader(REPLY_FLAG_DONE, Reply.OFFSET_DATA, req.handle, 8 + data.length);
    this.send(head, new WireWriter(8).u64(req.offset).bytes, data);
  }

  private async blockStatus(req: RequestHeader): Promise<void> {
    const node = this.blk.root;
    if (!this.neg.structured || !this.neg.allocation || !node) throw new RequestError(NbdErr.EINVAL);
    this.checkRange(req, false);
    const end = req.offset + req.length;
    const max = req.flags & CmdFlag.REQ_ONE ? 1 : MAX_EXTENTS;
    const extents: [number, number][] = [];
    for (let at = req.offset; at < end && extents.length < max;) {
      const s = await node.blockStatus(at, end - at);
      const flags = (s.data ? 0 : STATE_HOLE) | (s.zero ? STATE_ZERO : 0);
      const last = extents.at(-1);
      if (last && last[1] === flags) last[0] += s.bytes;
      else extents.push([s.bytes, flags]);
      at += s.bytes;
    }
    const body = new WireWriter(4 + 8 * extents.length).u32(BASE_ALLOCATION_ID);
    for (const [length, flags] of extents) body.u32(length).u32(flags);
    this.send(
      encodeChunkHeader(REPLY_FLAG_DONE, Reply.BLOCK_STATUS, req.handle, body.bytes.length),
      body.bytes,
    );
  }

  private replyError(req: RequestHeader, error: number): void {
    if (!this.neg.structured) return this.send(encodeSimpleReply(error, req.handle));
    // NBD_REPLY_TYPE_ERROR: the error value and an empty message.
    const body = new WireWriter(6).u32(error).u16(0).bytes;
    this.send(encodeChunkHeader(REPLY_FLAG_DONE, Reply.ERROR, req.handle, body.length), body);
  }

  /** Writes one whole reply message; a reply to a closed connection is dropped. */
  private send(...parts: Uint8Array[]): void {
    if (!this.ch.closed) this.ch.write(...parts);
  }
}
