/**
 * Breaking qcow2 images made by qemu-img on purpose, byte by byte, for the check tests: refcounts
 * raised (leaks) or lowered (corruptions), OFLAG_COPIED flipped, L2 entries pointed at metadata.
 * Images must have 16-bit refcounts and standard L2 entries (qemu-img's defaults).
 */
import { closeSync, openSync, readSync, writeSync } from 'node:fs';

export const COPIED = 1n << 63n;

function u64(path: string, at: number): bigint {
  const fd = openSync(path, 'r');
  try {
    const b = Buffer.alloc(8);
    readSync(fd, b, 0, 8, at);
    return b.readBigUInt64BE(0);
  } finally {
    closeSync(fd);
  }
}

function write(path: string, at: number, bytes: Buffer): void {
  const fd = openSync(path, 'r+');
  try {
    writeSync(fd, bytes, 0, bytes.length, at);
  } finally {
    closeSync(fd);
  }
}

export function setU64(path: string, at: number, value: bigint): void {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(value);
  write(path, at, b);
}

export const getU64 = u64;

const clusterSize = (path: string) => 2 ** Number(u64(path, 16) & 0xffffffffn);

/** Where the 16-bit refcount of host cluster `cluster` is stored. */
function refcountAt(path: string, cluster: number): number {
  const cs = clusterSize(path);
  const perBlock = cs / 2;
  const reftable = Number(u64(path, 48));
  const block = Number(u64(path, reftable + 8 * Math.floor(cluster / perBlock)));
  return block + 2 * (cluster % perBlock);
}

export function setRefcount(path: string, cluster: number, value: number): void {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(value);
  write(path, refcountAt(path, cluster), b);
}

/** The host offset of the active L2 entry mapping guest offset `guest`. */
export function l2EntryAt(path: string, guest: number): number {
  const cs = clusterSize(path);
  const l2Entries = cs / 8;
  const l1 = Number(u64(path, 40));
  const l1Index = Math.floor(guest / cs / l2Entries);
  const l2 = Number(u64(path, l1 + 8 * l1Index) & 0x00fffffffffffe00n);
  return l2 + 8 * (Math.floor(guest / cs) % l2Entries);
}

/** The host cluster index the active L2 entry for `guest` points at. */
export function hostCluster(path: string, guest: number): number {
  return Number((u64(path, l2EntryAt(path, guest)) & 0x00fffffffffffe00n) / BigInt(clusterSize(path)));
}

export function refcountTableOffset(path: string): number {
  return Number(u64(path, 48));
}
