/**
 * A guest driver for the tests, written from the VIRTIO 1.2 specification rather than from the
 * device code: it finds the structures through the PCI capabilities (§4.1.4), initializes the
 * device (§3.1.1), lays out a split virtqueue in a guest-memory buffer (§2.7), makes chained or
 * indirect requests available, notifies, and reads the used ring. Everything goes through the
 * transport's PCI config bytes and BAR0 reads and writes, as a real driver's would.
 */
import type { GuestMemory } from '../../../src/frontends/virtio-blk/guest-memory.ts';
import type { PciIrq, VirtioPciModern } from '../../../src/frontends/virtio-blk/pci-modern.ts';

/** Guest RAM as a plain buffer. */
export class ArrayMemory implements GuestMemory {
  readonly bytes: Uint8Array;
  constructor(readonly size: number) {
    this.bytes = new Uint8Array(size);
  }
  read(addr: number, len: number): Uint8Array {
    return this.bytes.slice(addr, addr + len);
  }
  write(addr: number, data: Uint8Array): void {
    this.bytes.set(data, addr);
  }
}

/** An INTx line that counts how often it was raised. */
export class TestIrq implements PciIrq {
  level = false;
  raised = 0;
  raise(): void {
    this.level = true;
    this.raised++;
  }
  lower(): void {
    this.level = false;
  }
}

export const F = {
  SEG_MAX: 2,
  RO: 5,
  BLK_SIZE: 6,
  FLUSH: 9,
  DISCARD: 13,
  WRITE_ZEROES: 14,
  INDIRECT_DESC: 28,
  EVENT_IDX: 29,
  VERSION_1: 32,
};
export const fbit = (n: number) => 1n << BigInt(n);
export const T = { IN: 0, OUT: 1, FLUSH: 4, GET_ID: 8, DISCARD: 11, WRITE_ZEROES: 13 };
export const S = { OK: 0, IOERR: 1, UNSUPP: 2 };
const ACK = 1,
  DRIVER = 2,
  DRIVER_OK = 4,
  FEATURES_OK = 8;
const NEXT = 1,
  WRITE = 2,
  INDIRECT = 4;

export interface RequestSpec {
  type: number;
  sector?: number;
  /** Payload the device reads after the header (OUT data, a discard segment). */
  out?: Uint8Array;
  /** Bytes the device may write before the status byte (IN data, GET_ID). */
  inLen?: number;
  /** Split each payload into this many descriptors (default 1). */
  pieces?: number;
  /** Put the chain in an indirect table. */
  indirect?: boolean;
}

export interface Submitted {
  head: number;
  inAddr: number;
  inLen: number;
  statusAddr: number;
}

export interface Completion {
  head: number;
  len: number;
  status: number;
  data: Uint8Array;
}

interface Caps {
  common: number;
  notify: number;
  isr: number;
  device: number;
}

export class DriverSim {
  readonly caps: Caps;
  features = 0n;
  queueSize = 0;
  private desc = 0;
  private avail = 0;
  private used = 0;
  private nextAlloc = 0x1000;
  private freeDesc: number[] = [];
  private availIdx = 0;
  private lastUsed = 0;
  private readonly pending = new Map<number, Submitted & { descs: number[] }>();

  constructor(
    readonly dev: VirtioPciModern,
    readonly mem: ArrayMemory,
  ) {
    this.caps = findCaps(dev.pciConfig);
  }

  // --- registers ---
  common(off: number, size: number): number {
    return this.dev.read(this.caps.common + off, size);
  }
  setCommon(off: number, size: number, v: number): void {
    this.dev.write(this.caps.common + off, size, v);
  }
  config(off: number, size: number): number {
    return this.dev.read(this.caps.device + off, size);
  }
  /** The 64-bit capacity through two 32-bit reads. */
  capacity(): number {
    return this.config(0, 4) + this.config(4, 4) * 2 ** 32;
  }
  status(): number {
    return this.common(20, 1);
  }
  readIsr(): number {
    return this.dev.read(this.caps.isr, 1);
  }
  generation(): number {
    return this.common(21, 1);
  }

  /** Both 32-bit windows of device_feature. */
  deviceFeatures(): bigint {
    this.setCommon(0, 4, 0);
    const lo = BigInt(this.common(4, 4));
    this.setCommon(0, 4, 1);
    return lo | (BigInt(this.common(4, 4)) << 32n);
  }

  /**
   * §3.1.1 up to FEATURES_OK with `wanted` ∩ offered (or exactly `exact`). Returns whether the
   * device kept FEATURES_OK.
   */
  negotiate(wanted: bigint, exact = false): boolean {
    this.setCommon(20, 1, 0);
    this.setCommon(20, 1, ACK);
    this.setCommon(20, 1, ACK | DRIVER);
    this.features = exact ? wanted : this.deviceFeatures() & wanted;
    for (const sel of [0, 1]) {
      this.setCommon(8, 4, sel);
      this.setCommon(12, 4, Number((this.features >> BigInt(32 * sel)) & 0xffffffffn));
    }
    this.setCommon(20, 1, ACK | DRIVER | FEATURES_OK);
    return (this.status() & FEATURES_OK) !== 0;
  }

  /** Negotiates, sets up queue 0 (optionally smaller than the maximum) and sets DRIVER_OK. */
  init(wanted: bigint = ~0n & 0xffffffffffn, queueSize?: number): void {
    if (!this.negotiate(wanted)) throw new Error('FEATURES_OK refused');
    this.setCommon(22, 2, 0);
    if (queueSize) this.setCommon(24, 2, queueSize);
    this.queueSize = this.common(24, 2);
    const n = this.queueSize;
    this.desc = this.alloc(16 * n, 16);
    this.avail = this.alloc(6 + 2 * n, 2);
    this.used = this.alloc(6 + 8 * n, 4);
    this.freeDesc = Array.from({ length: n }, (_, i) => i);
    this.setCommon(32, 4, this.desc);
    this.setCommon(36, 4, 0);
    this.setCommon(40, 4, this.avail);
    this.setCommon(44, 4, 0);
    this.setCommon(48, 4, this.used);
    this.setCommon(52, 4, 0);
    this.setCommon(28, 2, 1);
    this.setCommon(20, 1, ACK | DRIVER | FEATURES_OK | DRIVER_OK);
  }

  alloc(bytes: number, align = 16): number {
    this.nextAlloc = Math.ceil(this.nextAlloc / align) * align;
    const at = this.nextAlloc;
    this.nextAlloc += bytes;
    if (this.nextAlloc > this.mem.size) throw new Error('simulated guest out of memory');
    return at;
  }

  /** Builds the request's buffers and chain and makes it available (no notification). */
  submit(spec: RequestSpec): Submitted {
    const header = new Uint8Array(16);
    const hv = new DataView(header.buffer);
    hv.setUint32(0, spec.type, true);
    hv.setBigUint64(8, BigInt(spec.sector ?? 0), true);
    const segs: { addr: number; len: number; flags: number }[] = [];
    segs.push({ addr: this.put(header), len: 16, flags: 0 });
    if (spec.out)
      for (const p of pieces(spec.out.length, spec.pieces))
        segs.push({ addr: this.put(spec.out.subarray(p[0], p[1])), len: p[1] - p[0], flags: 0 });
    const inLen = spec.inLen ?? 0;
    const inAddr = this.alloc(inLen + 1, 1);
    for (const p of pieces(inLen, spec.pieces))
      segs.push({ addr: inAddr + p[0], len: p[1] - p[0], flags: WRITE });
    const statusAddr = inAddr + inLen;
    this.mem.bytes[statusAddr] = 0xff;
    segs.push({ addr: statusAddr, len: 1, flags: WRITE });
    const descs = spec.indirect ? this.indirectChain(segs) : this.chain(segs);
    const sub = { head: descs[0]!, inAddr, inLen, statusAddr };
    this.pending.set(sub.head, { ...sub, descs });
    const v = this.view();
    v.setUint16(this.avail + 4 + 2 * (this.availIdx % this.queueSize), sub.head, true);
    this.availIdx = (this.availIdx + 1) & 0xffff;
    v.setUint16(this.avail + 2, this.availIdx, true);
    return sub;
  }

  /** Writes the notification register for queue 0. */
  kick(): void {
    this.dev.write(this.caps.notify, 2, 0);
  }

  /** Whether a driver using the event index would kick now (§2.7.10): avail_event crossed. */
  wouldKick(oldAvailIdx: number): boolean {
    const availEvent = this.view().getUint16(this.used + 4 + 8 * this.queueSize, true);
    return ((this.availIdx - availEvent - 1) & 0xffff) < ((this.availIdx - oldAvailIdx) & 0xffff);
  }

  get availIndex(): number {
    return this.availIdx;
  }

  usedIdx(): number {
    return this.view().getUint16(this.used + 2, true);
  }

  /** Sets used_event (avail ring's last field): interrupt only after used idx passes it. */
  setUsedEvent(value: number): void {
    this.view().setUint16(this.avail + 4 + 2 * this.queueSize, value, true);
  }

  /** Sets VIRTQ_AVAIL_F_NO_INTERRUPT in the available ring's flags. */
  setNoInterrupt(on: boolean): void {
    this.view().setUint16(this.avail, on ? 1 : 0, true);
  }

  /** Takes every new used-ring element, in ring order, and frees its descriptors. */
  poll(): Completion[] {
    const out: Completion[] = [];
    const v = this.view();
    const end = this.usedIdx();
    for (; this.lastUsed !== end; this.lastUsed = (this.lastUsed + 1) & 0xffff) {
      const elem = this.used + 4 + 8 * (this.lastUsed % this.queueSize);
      const head = v.getUint32(elem, true);
      const p = this.pending.get(head);
      if (!p) throw new Error(`used ring names head ${head} that is not in flight`);
      this.pending.delete(head);
      this.freeDesc.push(...p.descs);
      out.push({
        head,
        len: v.getUint32(elem + 4, true),
        status: this.mem.bytes[p.statusAddr]!,
        data: this.mem.bytes.slice(p.inAddr, p.inAddr + p.inLen),
      });
    }
    return out;
  }

  /** Writes a raw descriptor into the ring's table (for malformed-chain tests). */
  writeDesc(table: number, i: number, addr: number, len: number, flags: number, next: number): void {
    const v = this.view();
    const at = table + 16 * i;
    v.setBigUint64(at, BigInt(addr), true);
    v.setUint32(at + 8, len, true);
    v.setUint16(at + 12, flags, true);
    v.setUint16(at + 14, next, true);
  }

  /** Makes descriptor `head` of the main table available as is. */
  publishRaw(head: number): void {
    const v = this.view();
    v.setUint16(this.avail + 4 + 2 * (this.availIdx % this.queueSize), head, true);
    this.availIdx = (this.availIdx + 1) & 0xffff;
    v.setUint16(this.avail + 2, this.availIdx, true);
  }

  get descTable(): number {
    return this.desc;
  }

  private chain(segs: { addr: number; len: number; flags: number }[]): number[] {
    if (this.freeDesc.length < segs.length) throw new Error('simulated driver out of descriptors');
    const ids = this.freeDesc.splice(0, segs.length);
    segs.forEach((s, k) => {
      const last = k === segs.length - 1;
      this.writeDesc(this.desc, ids[k]!, s.addr, s.len, s.flags | (last ? 0 : NEXT), last ? 0 : ids[k + 1]!);
    });
    return ids;
  }

  /** One main-table descriptor pointing at a table holding the whole chain (§2.7.5.3). */
  private indirectChain(segs: { addr: number; len: number; flags: number }[]): number[] {
    const table = this.alloc(16 * segs.length, 16);
    segs.forEach((s, k) => {
      const last = k === segs.length - 1;
      this.writeDesc(table, k, s.addr, s.len, s.flags | (last ? 0 : NEXT), last ? 0 : k + 1);
    });
    const id = this.freeDesc.shift()!;
    this.writeDesc(this.desc, id, table, 16 * segs.length, INDIRECT, 0);
    return [id];
  }

  private put(data: Uint8Array): number {
    const at = this.alloc(data.length, 1);
    this.mem.bytes.set(data, at);
    return at;
  }

  private view(): DataView {
    return new DataView(this.mem.bytes.buffer);
  }
}

/** Byte ranges cutting `len` into `n` nearly equal non-empty parts (fewer when `len` < `n`). */
function pieces(len: number, n = 1): [number, number][] {
  if (len === 0) return [];
  const k = Math.min(n, len);
  const size = Math.ceil(len / k);
  const out: [number, number][] = [];
  for (let s = 0; s < len; s += size) out.push([s, Math.min(len, s + size)]);
  return out;
}

/** Walks the PCI capability list (§4.1.4) for the four virtio structures in BAR0. */
function findCaps(cfg: Uint8Array): Caps {
  const v = new DataView(cfg.buffer, cfg.byteOffset);
  const found: Partial<Record<number, number>> = {};
  for (let at = cfg[0x34]!; at !== 0; at = cfg[at + 1]!) {
    if (cfg[at] !== 0x09) continue;
    if (cfg[at + 4] !== 0) throw new Error('capability in a BAR other than 0');
    found[cfg[at + 3]!] = v.getUint32(at + 8, true);
  }
  const need = (t: number) => {
    if (found[t] === undefined) throw new Error(`no virtio capability of type ${t}`);
    return found[t]!;
  };
  return { common: need(1), notify: need(2), isr: need(3), device: need(4) };
}
