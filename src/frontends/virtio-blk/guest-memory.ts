/**
 * Guest physical memory as a virtio device sees it: little-endian loads and stores and byte
 * copies. The device model knows nothing else of the emulator; v86-pci.ts implements this over
 * v86's memory, the tests over a plain buffer.
 */
export interface GuestMemory {
  /** Bytes of guest RAM; an access outside [0, size) is a driver bug. */
  readonly size: number;
  /** A copy of `len` bytes at `addr`. */
  read(addr: number, len: number): Uint8Array;
  /** Stores `data` at `addr` (the emulator must forget code it compiled from those bytes). */
  write(addr: number, data: Uint8Array): void;
}

/** Whether [addr, addr + len) lies inside guest memory (addresses come from the driver). */
export function inRange(mem: GuestMemory, addr: number, len: number): boolean {
  return Number.isSafeInteger(addr) && addr >= 0 && len >= 0 && addr + len <= mem.size;
}

export function readU16(mem: GuestMemory, addr: number): number {
  const b = mem.read(addr, 2);
  return b[0]! | (b[1]! << 8);
}

export function readU32(mem: GuestMemory, addr: number): number {
  const b = mem.read(addr, 4);
  return (b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24)) >>> 0;
}

/** A le64 as a JS number; guest addresses and sector numbers beyond 2^53 are refused. */
export function readU64(mem: GuestMemory, addr: number): number {
  return leU64(mem.read(addr, 8), 0);
}

export function writeU16(mem: GuestMemory, addr: number, value: number): void {
  mem.write(addr, new Uint8Array([value & 0xff, (value >>> 8) & 0xff]));
}

export function writeU32(mem: GuestMemory, addr: number, value: number): void {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, value >>> 0, true);
  mem.write(addr, b);
}

/** A le64 at `offset` of `bytes`, as a number (Infinity when it does not fit in 2^53). */
export function leU64(bytes: Uint8Array, offset: number): number {
  const v = new DataView(bytes.buffer, bytes.byteOffset + offset, 8).getBigUint64(0, true);
  return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : Infinity;
}

export function leU32(bytes: Uint8Array, offset: number): number {
  return new DataView(bytes.buffer, bytes.byteOffset + offset, 4).getUint32(0, true);
}
