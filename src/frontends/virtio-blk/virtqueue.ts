/**
 * The device side of a split virtqueue (VIRTIO 1.2 §2.7): it takes descriptor chains the driver
 * made available, and returns them through the used ring. Supports indirect descriptors
 * (§2.7.5.3) and the event index (§2.7.7, §2.7.10) when negotiated. Completions may be pushed in
 * any order: the used ring carries the head index of each chain.
 *
 * Layout (§2.7, alignment in §2.7.2): descriptor table `size` × 16 bytes; available ring
 * le16 flags, le16 idx, le16 ring[size], le16 used_event; used ring le16 flags, le16 idx,
 * {le32 id, le32 len}[size], le16 avail_event. Indices are free-running 16-bit counters.
 */
import { inRange, leU32, leU64, readU16, writeU16, writeU32, type GuestMemory } from './guest-memory.ts';
import { AVAIL_F_NO_INTERRUPT, Desc } from './spec.ts';

/** A guest buffer the device reads (driver → device) or writes (device → driver). */
export interface Segment {
  addr: number;
  len: number;
}

/** One request: the head index identifies it in the used ring. */
export interface DescChain {
  head: number;
  /** Device-readable segments, in order; they all come before the writable ones (§2.7.4.2). */
  readable: Segment[];
  writable: Segment[];
}

/** The driver broke a rule of the ring; the device must stop and ask for a reset (§2.1.2). */
export class VirtqueueError extends Error {
  override name = 'VirtqueueError';
}

/** Which ring features were negotiated; read at every use, as they are fixed at FEATURES_OK. */
export interface RingFeatures {
  indirect: boolean;
  eventIdx: boolean;
}

const u16 = (n: number) => n & 0xffff;

/** vring_need_event (§2.7.10): did the index move past `event` going from `old` to `next`? */
export function needEvent(event: number, next: number, old: number): boolean {
  return u16(next - event - 1) < u16(next - old);
}

export class SplitVirtqueue {
  /** Queue Size as the driver set it (at most `maxSize`). */
  size: number;
  descAddr = 0;
  availAddr = 0;
  usedAddr = 0;
  enabled = false;
  /** Next available-ring index to take. */
  private lastAvail = 0;
  /** The used index as last written. */
  private usedIdx = 0;
  /** The used index at the last interrupt decision (QEMU's signalled_used). */
  private signalledUsed: number | undefined;

  constructor(
    private readonly mem: GuestMemory,
    readonly maxSize: number,
    private readonly features: () => RingFeatures,
  ) {
    this.size = maxSize;
  }

  /** Back to the state after device reset (§2.4): disabled, addresses zero, indices zero. */
  reset(): void {
    this.size = this.maxSize;
    this.descAddr = this.availAddr = this.usedAddr = 0;
    this.enabled = false;
    this.lastAvail = this.usedIdx = 0;
    this.signalledUsed = undefined;
  }

  /** Enables the queue once its three areas lie in guest memory; throws VirtqueueError if not. */
  enable(): void {
    const ranges: [number, number][] = [
      [this.descAddr, this.size * Desc.SIZE],
      [this.availAddr, 6 + 2 * this.size],
      [this.usedAddr, 6 + 8 * this.size],
    ];
    for (const [addr, len] of ranges) this.checkRange(addr, len);
    this.enabled = true;
  }

  /**
   * Takes the next available chain, or null when the driver has made none available. With the
   * event index, asks for a notification on the next buffer (avail_event = what was taken).
   * Throws VirtqueueError on a malformed chain or ring.
   */
  pop(): DescChain | null {
    if (!this.enabled) return null;
    const availIdx = readU16(this.mem, this.availAddr + 2);
    if (u16(availIdx - this.lastAvail) > this.size) {
      throw new VirtqueueError(`avail idx ${availIdx} is more than ${this.size} ahead of ${this.lastAvail}`);
    }
    if (availIdx === this.lastAvail) return null;
    const head = readU16(this.mem, this.availAddr + 4 + 2 * (this.lastAvail % this.size));
    this.lastAvail = u16(this.lastAvail + 1);
    if (this.features().eventIdx) writeU16(this.mem, this.usedAddr + 4 + 8 * this.size, this.lastAvail);
    return this.walk(head);
  }

  /** Returns chain `head` to the driver with `len` bytes written into its writable part. */
  push(head: number, len: number): void {
    const elem = this.usedAddr + 4 + 8 * (this.usedIdx % this.size);
    writeU32(this.mem, elem, head);
    writeU32(this.mem, elem + 4, len);
    this.usedIdx = u16(this.usedIdx + 1);
    // The element is in place before the index that publishes it (§2.7.8).
    writeU16(this.mem, this.usedAddr + 2, this.usedIdx);
  }

  /**
   * Whether the driver wants an interrupt for what was pushed since the last call: with the
   * event index when used_event was crossed (§2.7.7.2), otherwise unless it set
   * VIRTQ_AVAIL_F_NO_INTERRUPT. Nothing pushed, no interrupt.
   */
  shouldInterrupt(): boolean {
    const old = this.signalledUsed;
    if (old === this.usedIdx) return false;
    this.signalledUsed = this.usedIdx;
    if (this.features().eventIdx) {
      const usedEvent = readU16(this.mem, this.availAddr + 4 + 2 * this.size);
      return old === undefined || needEvent(usedEvent, this.usedIdx, old);
    }
    return (readU16(this.mem, this.availAddr) & AVAIL_F_NO_INTERRUPT) === 0;
  }

  /** Follows a chain from `head` (§2.7.5.2), through an indirect table when there is one. */
  private walk(head: number): DescChain {
    const chain: DescChain = { head, readable: [], writable: [] };
    let table = this.descAddr;
    let tableSize = this.size;
    let i = head;
    let indirect = false;
    for (let count = 0; ; count++) {
      if (i >= tableSize) throw new VirtqueueError(`descriptor ${i} is outside a table of ${tableSize}`);
      if (count >= tableSize) throw new VirtqueueError(`descriptor chain from ${head} loops`);
      const d = this.mem.read(table + i * Desc.SIZE, Desc.SIZE);
      const addr = leU64(d, 0);
      const len = leU32(d, 8);
      const flags = d[12]! | (d[13]! << 8);
      if (flags & Desc.F_INDIRECT) {
        // §2.7.5.3.1: only with the feature, never nested, never with NEXT; one table per chain.
        if (!this.features().indirect || indirect || count > 0 || flags & Desc.F_NEXT) {
          throw new VirtqueueError(`descriptor ${i}: misplaced VIRTQ_DESC_F_INDIRECT`);
        }
        if (len === 0 || len % Desc.SIZE !== 0) throw new VirtqueueError(`indirect table of ${len} bytes`);
        this.checkRange(addr, len);
        [table, tableSize, i, indirect, count] = [addr, len / Desc.SIZE, 0, true, -1];
        continue;
      }
      this.checkRange(addr, len);
      if (flags & Desc.F_WRITE) chain.writable.push({ addr, len });
      else if (chain.writable.length > 0)
        throw new VirtqueueError('readable descriptor after a writable one');
      else chain.readable.push({ addr, len });
      if (!(flags & Desc.F_NEXT)) return chain;
      i = d[14]! | (d[15]! << 8);
    }
  }

  private checkRange(addr: number, len: number): void {
    if (!inRange(this.mem, addr, len)) {
      throw new VirtqueueError(`${len} bytes at 0x${addr.toString(16)} are outside guest memory`);
    }
  }
}
