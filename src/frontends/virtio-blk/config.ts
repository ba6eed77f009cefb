/**
 * What the virtio-blk device offers and how its configuration space looks (VIRTIO 1.2 §5.2.3
 * Feature bits, §5.2.4 Device configuration layout). Defaults are QEMU 7.2's virtio-blk-pci
 * properties (`-device virtio-blk-pci,help`): queue-size 256, seg_max = queue-size - 2,
 * max-discard-sectors and max-write-zeroes-sectors 4194303, one segment each.
 */
import { bit, Feature } from './spec.ts';

export interface VirtioBlkOptions {
  /** Entries in the request queue (a power of two); QEMU's default is 256. */
  queueSize?: number;
  /** Logical block size in bytes, a power of two ≥ 512 (QEMU's logical_block_size). */
  blkSize?: number;
  /** What GET_ID answers (QEMU's `serial` property); at most 20 bytes are sent. */
  serial?: string;
  /** Offer discard / write-zeroes (QEMU's `discard`, `write-zeroes`; both on by default). */
  discard?: boolean;
  writeZeroes?: boolean;
}

export interface BlkLimits {
  queueSize: number;
  blkSize: number;
  segMax: number;
  maxDiscardSectors: number;
  maxWriteZeroesSectors: number;
  serial: string;
}

/** BDRV_REQUEST_MAX_SECTORS, QEMU's default for both limits. */
const MAX_SECTORS = 4194303;

export function blkLimits(opts: VirtioBlkOptions): BlkLimits {
  const queueSize = opts.queueSize ?? 256;
  const blkSize = opts.blkSize ?? 512;
  if (!(queueSize >= 4 && queueSize <= 32768 && (queueSize & (queueSize - 1)) === 0)) {
    throw new RangeError(`queue-size must be a power of 2 between 4 and 32768, not ${queueSize}`);
  }
  if (!(blkSize >= 512 && blkSize <= 2 << 20 && (blkSize & (blkSize - 1)) === 0)) {
    throw new RangeError(`logical_block_size must be a power of two between 512 B and 2 MiB`);
  }
  return {
    queueSize,
    blkSize,
    segMax: queueSize - 2,
    maxDiscardSectors: MAX_SECTORS,
    maxWriteZeroesSectors: MAX_SECTORS,
    serial: opts.serial ?? '',
  };
}

/** The features offered: VERSION_1 (modern only), the ring features, and what the disk can do. */
export function offeredFeatures(opts: VirtioBlkOptions, readOnly: boolean): bigint {
  let f = bit(Feature.VERSION_1) | bit(Feature.RING_INDIRECT_DESC) | bit(Feature.RING_EVENT_IDX);
  f |= bit(Feature.BLK_SEG_MAX) | bit(Feature.BLK_BLK_SIZE) | bit(Feature.BLK_FLUSH);
  if (readOnly) return f | bit(Feature.BLK_RO);
  if (opts.discard !== false) f |= bit(Feature.BLK_DISCARD);
  if (opts.writeZeroes !== false) f |= bit(Feature.BLK_WRITE_ZEROES);
  return f;
}

/** Bytes of `struct virtio_blk_config` up to write_zeroes_may_unmap and its padding. */
export const CONFIG_BYTES = 60;

/**
 * `struct virtio_blk_config` (§5.2.4), little-endian: capacity in 512-byte sectors at 0,
 * seg_max at 12, blk_size at 20, max_discard_sectors 36, max_discard_seg 40, discard_sector_alignment
 * 44, max_write_zeroes_sectors 48, max_write_zeroes_seg 52, write_zeroes_may_unmap 56.
 * Fields of features not offered read as zero.
 */
export function configSpace(limits: BlkLimits, capacitySectors: number, features: bigint): Uint8Array {
  const bytes = new Uint8Array(CONFIG_BYTES);
  const v = new DataView(bytes.buffer);
  v.setBigUint64(0, BigInt(capacitySectors), true);
  v.setUint32(12, limits.segMax, true);
  v.setUint32(20, limits.blkSize, true);
  if (features & bit(Feature.BLK_DISCARD)) {
    v.setUint32(36, limits.maxDiscardSectors, true);
    v.setUint32(40, 1, true);
    v.setUint32(44, limits.blkSize / 512, true);
  }
  if (features & bit(Feature.BLK_WRITE_ZEROES)) {
    v.setUint32(48, limits.maxWriteZeroesSectors, true);
    v.setUint32(52, 1, true);
    v.setUint8(56, 1);
  }
  return bytes;
}
