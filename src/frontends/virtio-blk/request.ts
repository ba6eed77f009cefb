/**
 * One virtio-blk request (VIRTIO 1.2 §5.2.6 Device Operation): a header the device reads
 * (le32 type, le32 reserved, le64 sector), data, and a status byte the device writes last.
 * Checks and status codes follow QEMU 7.2's hw/block/virtio-blk.c (virtio_blk_handle_request,
 * virtio_blk_sect_range_ok, virtio_blk_handle_discard_write_zeroes); a failed backend request is
 * IOERR after the BlockBackend applied its rerror/werror policy (`stop` keeps the request
 * parked in the backend until `cont`, `ignore` completes it as OK).
 */
import type { BlkLimits } from './config.ts';
import { leU32, leU64, type GuestMemory } from './guest-memory.ts';
import {
  bit,
  BlkStatus,
  DWZ_FLAG_UNMAP,
  DWZ_SEGMENT_BYTES,
  Feature,
  ID_BYTES,
  REQ_HEADER_BYTES,
  ReqType,
  SECTOR,
} from './spec.ts';
import { VirtqueueError, type DescChain, type Segment } from './virtqueue.ts';

/** What the device needs of a BlockBackend (src/block/backend.ts satisfies it). */
export interface VirtioBlkBackend {
  readonly readOnly: boolean;
  /** Bytes. */
  length(): number;
  read(offset: number, dst: Uint8Array): Promise<void>;
  write(offset: number, src: Uint8Array): Promise<void>;
  flush(): Promise<void>;
  discard(offset: number, bytes: number): Promise<void>;
  writeZeroes(offset: number, bytes: number, opts?: { unmap?: boolean }): Promise<void>;
  /** Registers a call after each resize of the medium (BlockBackend.onResize). */
  onResize?(listener: () => void): unknown;
}

export interface RequestContext {
  readonly mem: GuestMemory;
  readonly backend: VirtioBlkBackend;
  readonly limits: BlkLimits;
  /** The negotiated features. */
  readonly features: bigint;
  /** The capacity the driver was told, in 512-byte sectors. */
  readonly capacity: number;
}

/** A request split into its parts. */
export interface BlkRequest {
  readonly type: number;
  readonly sector: number;
  /** Device-readable data after the header (write payload, discard segments). */
  readonly out: Segment[];
  /** Device-writable data before the status byte (read payload, GET_ID answer). */
  readonly in: Segment[];
  readonly statusAddr: number;
  /** Bytes the driver offered for writing, status included: the used length QEMU 7.2 reports. */
  readonly inLen: number;
}

/** VIRTIO_BLK_T_BARRIER: legacy, ignored as QEMU does. */
const T_BARRIER = 0x80000000;

/**
 * Splits `chain` into header, data and status. Throws VirtqueueError when a header or the
 * status byte is missing (QEMU's "virtio-blk missing headers": the device needs a reset).
 */
export function parseRequest(mem: GuestMemory, chain: DescChain): BlkRequest {
  const inLen = total(chain.writable);
  if (inLen < 1) throw new VirtqueueError('virtio-blk request without a status byte');
  const header = gather(mem, take(chain.readable, 0, REQ_HEADER_BYTES));
  if (header.length < REQ_HEADER_BYTES) throw new VirtqueueError('virtio-blk request header too short');
  return {
    type: leU32(header, 0),
    sector: leU64(header, 8),
    out: take(chain.readable, REQ_HEADER_BYTES, Infinity),
    in: take(chain.writable, 0, inLen - 1),
    statusAddr: lastByte(chain.writable),
    inLen,
  };
}

/** Runs `req` against the backend; resolves with the status to write (never rejects). */
export async function executeRequest(ctx: RequestContext, req: BlkRequest): Promise<BlkStatus> {
  const type = req.type & ~(ReqType.OUT | T_BARRIER);
  const isOut = (req.type & ReqType.OUT) !== 0;
  switch (type) {
    case ReqType.IN:
      return isOut ? writeData(ctx, req) : readData(ctx, req);
    case ReqType.FLUSH:
      return backendStatus(ctx.backend.flush());
    case ReqType.GET_ID:
      return getId(ctx, req);
    case ReqType.DISCARD & ~ReqType.OUT:
    case ReqType.WRITE_ZEROES & ~ReqType.OUT:
      return discardOrZeroes(ctx, req, type === (ReqType.WRITE_ZEROES & ~ReqType.OUT));
    default:
      return BlkStatus.UNSUPP;
  }
}

async function readData(ctx: RequestContext, req: BlkRequest): Promise<BlkStatus> {
  const bytes = total(req.in);
  if (!rangeOk(ctx, req.sector, bytes)) return BlkStatus.IOERR;
  const data = new Uint8Array(bytes);
  const status = await backendStatus(ctx.backend.read(req.sector * SECTOR, data));
  if (status === BlkStatus.OK) scatter(ctx.mem, req.in, data);
  return status;
}

async function writeData(ctx: RequestContext, req: BlkRequest): Promise<BlkStatus> {
  const data = gather(ctx.mem, req.out);
  if (!rangeOk(ctx, req.sector, data.length)) return BlkStatus.IOERR;
  return backendStatus(ctx.backend.write(req.sector * SECTOR, data));
}

/** The serial, NUL-terminated only when shorter than the buffer (QEMU's convention). */
function getId(ctx: RequestContext, req: BlkRequest): BlkStatus {
  const serial = new TextEncoder().encode(ctx.limits.serial + '\0');
  scatter(ctx.mem, req.in, serial.subarray(0, Math.min(serial.length, total(req.in), ID_BYTES)));
  return BlkStatus.OK;
}

/**
 * One `virtio_blk_discard_write_zeroes` segment (max_discard_seg and max_write_zeroes_seg are
 * 1). UNSUPP without the feature, without the OUT bit, with more than one segment, with an unknown
 * flag, or for a discard with UNMAP; IOERR beyond the limits or the disk.
 */
async function discardOrZeroes(ctx: RequestContext, req: BlkRequest, zeroes: boolean): Promise<BlkStatus> {
  const feature = zeroes ? Feature.BLK_WRITE_ZEROES : Feature.BLK_DISCARD;
  const outLen = total(req.out);
  if (!(ctx.features & bit(feature)) || !(req.type & ReqType.OUT) || outLen > DWZ_SEGMENT_BYTES) {
    return BlkStatus.UNSUPP;
  }
  if (outLen < DWZ_SEGMENT_BYTES) throw new VirtqueueError('discard/write_zeroes header too short');
  const seg = gather(ctx.mem, req.out);
  const sector = leU64(seg, 0);
  const sectors = leU32(seg, 8);
  const flags = leU32(seg, 12);
  const max = zeroes ? ctx.limits.maxWriteZeroesSectors : ctx.limits.maxDiscardSectors;
  if (sectors > max || !rangeOk(ctx, sector, sectors * SECTOR)) return BlkStatus.IOERR;
  if (flags & ~DWZ_FLAG_UNMAP || (!zeroes && flags & DWZ_FLAG_UNMAP)) return BlkStatus.UNSUPP;
  const [offset, bytes] = [sector * SECTOR, sectors * SECTOR];
  const io = zeroes
    ? ctx.backend.writeZeroes(offset, bytes, { unmap: (flags & DWZ_FLAG_UNMAP) !== 0 })
    : ctx.backend.discard(offset, bytes);
  return backendStatus(io);
}

/** virtio_blk_sect_range_ok: aligned to the logical block, inside the capacity. */
function rangeOk(ctx: RequestContext, sector: number, bytes: number): boolean {
  const blockSectors = ctx.limits.blkSize / SECTOR;
  const sectors = bytes / SECTOR;
  if (sector % blockSectors !== 0 || bytes % ctx.limits.blkSize !== 0) return false;
  return sector <= ctx.capacity && sectors <= ctx.capacity - sector;
}

async function backendStatus(io: Promise<void>): Promise<BlkStatus> {
  try {
    await io;
    return BlkStatus.OK;
  } catch {
    return BlkStatus.IOERR;
  }
}

function total(segs: Segment[]): number {
  return segs.reduce((n, s) => n + s.len, 0);
}

/** The part of `segs` from byte `start`, at most `len` bytes, as segments. */
function take(segs: Segment[], start: number, len: number): Segment[] {
  const out: Segment[] = [];
  let pos = 0;
  for (const s of segs) {
    const from = Math.max(start, pos);
    const to = Math.min(start + len, pos + s.len);
    if (to > from) out.push({ addr: s.addr + (from - pos), len: to - from });
    pos += s.len;
  }
  return out;
}

function lastByte(segs: Segment[]): number {
  const last = segs.filter((s) => s.len > 0).at(-1)!;
  return last.addr + last.len - 1;
}

function gather(mem: GuestMemory, segs: Segment[]): Uint8Array {
  const out = new Uint8Array(total(segs));
  let pos = 0;
  for (const s of segs) {
    out.set(mem.read(s.addr, s.len), pos);
    pos += s.len;
  }
  return out;
}

/** Writes `data` across `segs` from their start; stops when either runs out. */
function scatter(mem: GuestMemory, segs: Segment[], data: Uint8Array): void {
  let pos = 0;
  for (const s of segs) {
    if (pos >= data.length) return;
    const n = Math.min(s.len, data.length - pos);
    mem.write(s.addr, data.subarray(pos, pos + n));
    pos += n;
  }
}
