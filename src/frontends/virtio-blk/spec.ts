/**
 * Numbers from the VIRTIO 1.2 specification (OASIS, virtio-v1.2-cs01) that the virtio-blk device
 * model and its PCI transport use. Section numbers are VIRTIO 1.2's; VIRTIO 1.1 numbers the split
 * virtqueue sections one lower (2.6 instead of 2.7).
 */

/** §2.1 Device Status Field. */
export const Status = {
  ACKNOWLEDGE: 1,
  DRIVER: 2,
  DRIVER_OK: 4,
  FEATURES_OK: 8,
  DEVICE_NEEDS_RESET: 64,
  FAILED: 128,
} as const;

/**
 * Feature bits, as bit numbers: §6 Reserved Feature Bits (transport and ring) and §5.2.3
 * Block Device Feature bits.
 */
export const Feature = {
  BLK_SIZE_MAX: 1,
  BLK_SEG_MAX: 2,
  BLK_RO: 5,
  BLK_BLK_SIZE: 6,
  BLK_FLUSH: 9,
  BLK_DISCARD: 13,
  BLK_WRITE_ZEROES: 14,
  RING_INDIRECT_DESC: 28,
  RING_EVENT_IDX: 29,
  VERSION_1: 32,
} as const;

/** A feature bit number as a member of a feature set. */
export const bit = (n: number): bigint => 1n << BigInt(n);

/** §2.7.5 The Virtqueue Descriptor Table: `struct virtq_desc` flags; 16 bytes a descriptor. */
export const Desc = {
  F_NEXT: 1,
  F_WRITE: 2,
  F_INDIRECT: 4,
  SIZE: 16,
} as const;

/** §2.7.6 The Virtqueue Available Ring: `flags` bit the driver sets to suppress interrupts. */
export const AVAIL_F_NO_INTERRUPT = 1;

/** §5.2.6 Device Operation: `struct virtio_blk_req` types and status values. */
export const ReqType = {
  IN: 0,
  OUT: 1,
  FLUSH: 4,
  GET_ID: 8,
  DISCARD: 11,
  WRITE_ZEROES: 13,
} as const;

export const BlkStatus = {
  OK: 0,
  IOERR: 1,
  UNSUPP: 2,
} as const;
export type BlkStatus = (typeof BlkStatus)[keyof typeof BlkStatus];

/** The request header: le32 type, le32 reserved, le64 sector. */
export const REQ_HEADER_BYTES = 16;
/** `struct virtio_blk_discard_write_zeroes`: le64 sector, le32 num_sectors, le32 flags. */
export const DWZ_SEGMENT_BYTES = 16;
export const DWZ_FLAG_UNMAP = 1;
/** GET_ID answers at most this many bytes (VIRTIO_BLK_ID_BYTES). */
export const ID_BYTES = 20;
/** Sector numbers in requests are always in 512-byte units, whatever blk_size says (§5.2.6). */
export const SECTOR = 512;

/** §4.1.4 Virtio Structure PCI Capabilities: cfg_type values. */
export const PciCap = {
  COMMON_CFG: 1,
  NOTIFY_CFG: 2,
  ISR_CFG: 3,
  DEVICE_CFG: 4,
  PCI_CFG: 5,
} as const;

/** §4.1.4.5 ISR status: bit 0 a used buffer, bit 1 a configuration change. */
export const Isr = {
  QUEUE: 1,
  CONFIG: 2,
} as const;

/** §4.1.2 PCI Device Discovery: vendor 0x1AF4, device 0x1040 + 2 (block), modern only. */
export const PCI_VENDOR_VIRTIO = 0x1af4;
export const PCI_DEVICE_VIRTIO_BLK = 0x1042;
export const VIRTIO_ID_BLOCK = 2;
