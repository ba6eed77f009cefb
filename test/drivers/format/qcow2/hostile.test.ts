/**
 * Hostile qcow2 images: one valid seed made by qemu-img/qemu-io, broken in one place per case,
 * then given to qemu-img convert and to blockgraph. Where QEMU refuses to open, we must refuse
 * with QEMU's exact text; where QEMU's read fails, ours must fail with a typed error carrying
 * qcow2's corruption text when QEMU prints one; where QEMU reads, we must read the same bytes.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BlockIOError, QmpError } from '../../../../src/block/errors.ts';
import { PROBE_BYTES, probeFormat } from '../../../../src/config/probe.ts';
import { ourVerdict, qemuVerdict, type QemuVerdict } from './compare.ts';
import { getBe64, layoutOf, setBe, setField, type Layout } from './mutate.ts';

const dir = mkdtempSync(join(tmpdir(), 'blockgraph-qcow2-hostile-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** 64 KiB clusters, 4 MiB: data at 0 and 1M, one compressed cluster at 2M. */
function makeSeed(): Uint8Array {
  const path = join(dir, 'seed.qcow2');
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', path, '4M']);
  execFileSync('qemu-io', [
    '-f',
    'qcow2',
    '-c',
    'write -P 1 0 64k',
    '-c',
    'write -P 2 1M 64k',
    '-c',
    'write -c -P 3 2M 64k',
    path,
  ]);
  return new Uint8Array(readFileSync(path));
}

const seed = makeSeed();
const layout = layoutOf(seed);

interface Case {
  readonly name: string;
  /** What QEMU does with it (checked, so the case tests what it says it tests). */
  readonly qemu: QemuVerdict['kind'];
  /** Breaks a copy of the seed; may return a shorter copy. */
  readonly mutate: (img: Uint8Array, at: Layout) => Uint8Array | void;
}

const COPIED = 1n << 63n;
const COMPRESSED = 1n << 62n;
/** For 64 KiB clusters the compressed sector count starts at bit 62 - (16 - 8) (qcow2.txt). */
const CSECTORS_SHIFT = 54n;
/** The first L2 table and its entries: 0 -> data at 0, 16 -> 1M, 32 -> compressed 2M. */
const l2Table = (img: Uint8Array, at: Layout) => Number(getBe64(img, at.l1[0]!) & 0x00ff_ffff_ffff_fe00n);
const l2Entry = (img: Uint8Array, at: Layout, index: number) => l2Table(img, at) + 8 * index;
const set64 = (img: Uint8Array, offset: number, value: bigint) => setBe(img, offset, 8, value);

const CASES: readonly Case[] = [
  { name: 'bad magic', qemu: 'open', mutate: (img) => void img.set([0x51, 0x46, 0x49, 0x00]) },
  {
    name: 'truncated inside the L2 table',
    qemu: 'same',
    mutate: (img, at) => img.slice(0, l2Table(img, at) + 100),
  },
  // Data clusters past the end read as zeros, but the compressed one cannot be decompressed.
  {
    name: 'truncated before the data clusters',
    qemu: 'read',
    mutate: (img, at) => img.slice(0, l2Table(img, at) + at.clusterSize),
  },
  { name: 'truncated inside the header', qemu: 'open', mutate: (img) => img.slice(0, 50) },
  {
    name: 'L1 offset past the end',
    qemu: 'same',
    mutate: (img) => setField(img, 'l1_table_offset', 1n << 40n),
  },
  {
    name: 'L1 offset unaligned',
    qemu: 'open',
    mutate: (img, at) => setField(img, 'l1_table_offset', BigInt(at.l1[0]! + 8)),
  },
  { name: 'absurd L1 size', qemu: 'open', mutate: (img) => setField(img, 'l1_size', 0x7fff_ffffn) },
  { name: 'L1 size just over 32 MiB', qemu: 'open', mutate: (img) => setField(img, 'l1_size', 0x40_0001n) },
  {
    name: 'L1 too small for the size',
    qemu: 'open',
    mutate: (img) => {
      setField(img, 'l1_size', 1n);
      setField(img, 'size', 1n << 40n);
    },
  },
  ...[0, 8, 22, 31, 63].map((bits) => ({
    name: `cluster_bits ${bits}`,
    qemu: 'open' as const,
    mutate: (img: Uint8Array) => setField(img, 'cluster_bits', BigInt(bits)),
  })),
  {
    name: 'refcount table overlapping the header',
    qemu: 'same',
    mutate: (img) => setField(img, 'refcount_table_offset', 0n),
  },
  {
    name: 'refcount table unaligned',
    qemu: 'open',
    mutate: (img) => setField(img, 'refcount_table_offset', 0x10008n),
  },
  {
    name: 'refcount table too large',
    qemu: 'open',
    mutate: (img) => setField(img, 'refcount_table_clusters', 0xff_ffffn),
  },
  { name: 'refcount order 7', qemu: 'open', mutate: (img) => setField(img, 'refcount_order', 7n) },
  { name: 'version 4', qemu: 'open', mutate: (img) => setField(img, 'version', 4n) },
  {
    name: 'unknown incompatible feature bit',
    qemu: 'open',
    mutate: (img) => setField(img, 'incompatible_features', 1n << 9n),
  },
  { name: 'encryption method 3', qemu: 'open', mutate: (img) => setField(img, 'crypt_method', 3n) },
  { name: 'header_length too short', qemu: 'open', mutate: (img) => setField(img, 'header_length', 50n) },
  {
    name: 'header_length past the cluster',
    qemu: 'open',
    mutate: (img) => setField(img, 'header_length', 0x10008n),
  },
  {
    name: 'snapshot table too large',
    qemu: 'open',
    mutate: (img) => {
      setField(img, 'nb_snapshots', 0x7fff_ffffn);
      setField(img, 'snapshots_offset', 0x10000n);
    },
  },
  {
    name: 'backing file name too long',
    qemu: 'open',
    mutate: (img) => {
      setField(img, 'backing_file_offset', 0x200n);
      setField(img, 'backing_file_size', 2000n);
    },
  },
  { name: 'virtual size too big', qemu: 'open', mutate: (img) => setField(img, 'size', 1n << 62n) },
  {
    name: 'L1 entry unaligned',
    qemu: 'read',
    mutate: (img, at) => set64(img, at.l1[0]!, BigInt(l2Table(img, at) + 512) | COPIED),
  },
  {
    name: 'L1 entry past the end',
    qemu: 'same',
    mutate: (img, at) => set64(img, at.l1[0]!, (1n << 40n) | COPIED),
  },
  {
    name: 'L1 entry pointing at the header',
    qemu: 'same',
    mutate: (img, at) => set64(img, at.l1[0]!, COPIED),
  },
  {
    name: 'L2 entry pointing at the header',
    qemu: 'same',
    mutate: (img, at) => set64(img, l2Entry(img, at, 0), COPIED),
  },
  {
    name: 'L2 entry pointing at the L1 table',
    qemu: 'same',
    mutate: (img, at) => set64(img, l2Entry(img, at, 0), BigInt(at.l1[0]!) | COPIED),
  },
  {
    name: 'L2 entry past the end',
    qemu: 'same',
    mutate: (img, at) => set64(img, l2Entry(img, at, 16), (1n << 40n) | COPIED),
  },
  {
    name: 'L2 entry unaligned',
    qemu: 'read',
    mutate: (img, at) =>
      set64(img, l2Entry(img, at, 16), (getBe64(img, l2Entry(img, at, 16)) + 512n) | COPIED),
  },
  {
    name: 'compressed descriptor longer than a cluster',
    qemu: 'same',
    mutate: (img, at) => {
      const e = l2Entry(img, at, 32);
      set64(img, e, getBe64(img, e) | (0xffn << CSECTORS_SHIFT));
    },
  },
  {
    name: 'compressed descriptor past the end',
    qemu: 'read',
    mutate: (img, at) => set64(img, l2Entry(img, at, 32), COMPRESSED | (3n << CSECTORS_SHIFT) | (1n << 40n)),
  },
  {
    name: 'compressed descriptor over the header (not a stream)',
    qemu: 'read',
    mutate: (img, at) => set64(img, l2Entry(img, at, 32), COMPRESSED | (3n << CSECTORS_SHIFT)),
  },
];

/** Writes the broken copy and returns its path. */
function materialize(c: Case): string {
  const copy = seed.slice();
  const out = c.mutate(copy, layout) ?? copy;
  const path = join(dir, `${c.name.replaceAll(/\W+/g, '-')}.qcow2`);
  writeFileSync(path, out);
  return path;
}

describe('qcow2: hostile images, compared with qemu-img convert', () => {
  it.each(CASES.map((c) => [c.name, c] as const))('%s', async (_, c) => {
    const path = materialize(c);
    const qemu = qemuVerdict(path);
    expect(qemu.kind, 'QEMU verdict (the case itself is wrong if this fails)').toBe(c.qemu);
    const ours = await ourVerdict(path, qemu.kind === 'same' ? qemu.raw : undefined);
    expect(ours.kind, `ours: ${String((ours as { error?: unknown }).error)}`).toBe(qemu.kind);
    if (qemu.kind === 'open' && ours.kind === 'open') {
      expect(ours.error).toBeInstanceOf(QmpError);
      expect((ours.error as Error).message).toBe(qemu.message);
    }
    if (qemu.kind === 'read' && ours.kind === 'read') {
      expect(ours.error).toBeInstanceOf(BlockIOError);
      // QEMU's corruption text names the table and offset; where it prints none (a compressed
      // cluster that does not decompress: only EIO), ours must still name the offset.
      const message = (ours.error as Error).message;
      if (qemu.corruption) expect(message).toContain(qemu.corruption);
      else expect(message).toMatch(/0x[0-9a-f]+|offset \d+/);
    }
    if (qemu.kind === 'same' && ours.kind === 'same') expect(ours.difference).toBeUndefined();
  });

  it('a missing backing file is refused with QEMU text naming it', async () => {
    const path = join(dir, 'no-backing.qcow2');
    execFileSync('qemu-img', [
      'create',
      '-q',
      '-f',
      'qcow2',
      '-u',
      '-b',
      'missing.qcow2',
      '-F',
      'qcow2',
      path,
      '4M',
    ]);
    const qemu = qemuVerdict(path);
    expect(qemu).toEqual({
      kind: 'open',
      message: `Could not open backing file: Could not open '${join(dir, 'missing.qcow2')}': No such file or directory`,
    });
    const ours = await ourVerdict(path);
    expect(ours.kind).toBe('open');
    expect((ours as { error: Error }).error.message).toBe((qemu as { message: string }).message);
  });

  it('a bad magic without a format probes as raw (as qemu-img does)', () => {
    const img = seed.slice(0, PROBE_BYTES);
    img.set([0x51, 0x46, 0x49, 0x00]);
    expect(probeFormat(img, 'x.img')).toBe('raw');
    expect(probeFormat(seed.slice(0, PROBE_BYTES), 'x.img')).toBe('qcow2');
  });
});
