/**
 * Header-level changes to a closed qcow2 image, made on its protocol node (QEMU does them in
 * qcow2_amend_options / qcow2_change_backing_file, then rewrites cluster 0 with
 * qcow2_update_header). The fixed fields are patched in place; the extensions are rewritten in
 * qcow2_update_header's order — backing format, data file, crypto header, feature table,
 * bitmaps, unknown ones — followed by the end marker and the backing file name.
 * Callers open and close the image through the driver first, so that a dirty lazy-refcounts
 * image has been repaired and marked clean before its header is edited.
 */
import { genericError } from '../../../block/errors.ts';
import type { BlockNode } from '../../../block/node.ts';
import { encodeHeader } from './create-header.ts';
import {
  EXT_BACKING_FORMAT,
  EXT_BITMAPS,
  EXT_CRYPTO_HEADER,
  EXT_DATA_FILE,
  EXT_END,
  EXT_FEATURE_TABLE,
} from './extensions.ts';

const MAGIC = 0x514649fb;
const V2_LENGTH = 72;
const V3_LENGTH = 112;
const COMPAT_LAZY_REFCOUNTS = 1n;
const INCOMPAT_DIRTY = 1n;
const HDR_AUTOCLEAR = 88;

interface Extension {
  readonly type: number;
  readonly data: Uint8Array;
}

/** Cluster 0 taken apart: the fixed fields (as bytes), the extensions, the backing file name. */
interface RawHeader {
  fixed: Uint8Array;
  clusterSize: number;
  extensions: Extension[];
  backingName?: string;
}

const view = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);

async function readHeader(file: BlockNode): Promise<RawHeader> {
  const head = new Uint8Array(V3_LENGTH);
  await file.read(0, head);
  const v = view(head);
  if (v.getUint32(0) !== MAGIC) throw genericError('Image is not in qcow2 format');
  const version = v.getUint32(4);
  const clusterSize = 2 ** v.getUint32(20);
  const cluster = new Uint8Array(clusterSize);
  await file.read(0, cluster);
  const length = version >= 3 ? v.getUint32(100) : V2_LENGTH;
  const backingOffset = Number(v.getBigUint64(8));
  const backingSize = v.getUint32(16);
  const extEnd = backingOffset > 0 ? backingOffset : clusterSize;
  const extensions: Extension[] = [];
  const c = view(cluster);
  for (let pos = length; pos + 8 <= extEnd;) {
    const type = c.getUint32(pos);
    const len = c.getUint32(pos + 4);
    if (type === EXT_END) break;
    extensions.push({ type, data: cluster.slice(pos + 8, pos + 8 + len) });
    pos += 8 + Math.ceil(len / 8) * 8;
  }
  const backingName =
    backingOffset > 0
      ? new TextDecoder().decode(cluster.subarray(backingOffset, backingOffset + backingSize))
      : undefined;
  return { fixed: cluster.slice(0, length), clusterSize, extensions, backingName };
}

/** QEMU's extension order in qcow2_update_header; unknown extensions keep theirs, last. */
const ORDER = [EXT_BACKING_FORMAT, EXT_DATA_FILE, EXT_CRYPTO_HEADER, EXT_FEATURE_TABLE, EXT_BITMAPS];
const rank = (type: number) => (ORDER.includes(type) ? ORDER.indexOf(type) : ORDER.length);

/** Writes `h` as cluster 0 and flushes; throws QEMU's text when it does not fit. */
async function writeHeader(file: BlockNode, h: RawHeader): Promise<void> {
  const out = new Uint8Array(h.clusterSize);
  out.set(h.fixed);
  const o = view(out);
  let at = h.fixed.length;
  const exts = [...h.extensions].sort((a, b) => rank(a.type) - rank(b.type));
  const name = h.backingName === undefined ? undefined : new TextEncoder().encode(h.backingName);
  const need = exts.reduce((n, e) => n + 8 + Math.ceil(e.data.length / 8) * 8, at + 8) + (name?.length ?? 0);
  if (need > h.clusterSize) throw genericError('Header extensions too large for the header cluster');
  for (const e of exts) {
    o.setUint32(at, e.type);
    o.setUint32(at + 4, e.data.length);
    out.set(e.data, at + 8);
    at += 8 + Math.ceil(e.data.length / 8) * 8;
  }
  at += 8; // the end marker: type 0, length 0
  o.setBigUint64(8, name ? BigInt(at) : 0n);
  o.setUint32(16, name?.length ?? 0);
  if (name) out.set(name, at);
  await file.write(0, out);
  await file.flush();
}

/**
 * qcow2_change_backing_file: records `name` (undefined: none) and `format` as the image's
 * backing file, as `qemu-img rebase -u` and QMP change-backing-file do. An empty name is
 * written as QEMU writes it: a backing file offset with a length of 0.
 */
export async function setBackingFile(
  file: BlockNode,
  name: string | undefined,
  format: string | undefined,
): Promise<void> {
  const h = await readHeader(file);
  h.extensions = h.extensions.filter((e) => e.type !== EXT_BACKING_FORMAT);
  if (name !== undefined && format !== undefined) {
    h.extensions.push({ type: EXT_BACKING_FORMAT, data: new TextEncoder().encode(format) });
  }
  h.backingName = name;
  await writeHeader(file, h);
}

/**
 * The header half of qcow2-bitmap.c's update_ext_header_and_dir: the bitmaps extension becomes
 * `ext` (undefined: none) and the autoclear bits `autoclear`, in one write of cluster 0.
 */
export async function setBitmapsExtension(
  file: BlockNode,
  ext: Uint8Array | undefined,
  autoclear: bigint,
): Promise<void> {
  const h = await readHeader(file);
  h.extensions = h.extensions.filter((e) => e.type !== EXT_BITMAPS);
  if (ext) h.extensions.push({ type: EXT_BITMAPS, data: ext });
  view(h.fixed).setBigUint64(HDR_AUTOCLEAR, autoclear);
  await writeHeader(file, h);
}

export interface HeaderAmendment {
  /** 2 (compat=0.10) or 3 (compat=1.1). */
  readonly version?: 2 | 3;
  readonly lazyRefcounts?: boolean;
}

/**
 * The header part of qcow2_amend_options for a clean image: lazy refcounts on or off, and the
 * compat level up (v2 → v3: the version 3 fields and the feature table) or down (qcow2_downgrade's
 * refusals and texts; its zero clusters must have been expanded first: expand-zero.ts).
 */
export async function amendHeader(file: BlockNode, change: HeaderAmendment): Promise<void> {
  const h = await readHeader(file);
  const f = view(h.fixed);
  const current = f.getUint32(4);
  const version = change.version ?? current;
  // A downgrade drops lazy refcounts along with every compatible feature; asking for them fails.
  const lazy =
    change.lazyRefcounts ??
    (current >= 3 && version >= 3 && (f.getBigUint64(80) & COMPAT_LAZY_REFCOUNTS) !== 0n);
  if (lazy && version < 3) {
    throw genericError(
      'Lazy refcounts only supported with compatibility level 1.1 and above (use compat=1.1 or greater)',
    );
  }
  if (version < current) downgrade(h);
  else if (version > current) upgrade(h);
  if (version >= 3) {
    const u = view(h.fixed);
    const features = u.getBigUint64(80);
    u.setBigUint64(80, lazy ? features | COMPAT_LAZY_REFCOUNTS : features & ~COMPAT_LAZY_REFCOUNTS);
  }
  await writeHeader(file, h);
}

/** qcow2_downgrade's refusals, in its order, for the image in `file` (before it changes anything). */
export async function checkDowngrade(file: BlockNode): Promise<void> {
  checkDowngradeOf(await readHeader(file));
}

function checkDowngradeOf(h: RawHeader): void {
  const f = view(h.fixed);
  if (f.getUint32(4) < 3) return;
  if (f.getUint32(96) !== 4) throw genericError('compat=0.10 requires refcount_bits=16');
  const incompat = f.getBigUint64(72) & ~INCOMPAT_DIRTY;
  if (incompat !== 0n) {
    throw genericError(`Cannot downgrade an image with incompatible features 0x${incompat.toString(16)} set`);
  }
}

/** qcow2_downgrade to version 2: its checks, then the v3 fields dropped. */
function downgrade(h: RawHeader): void {
  checkDowngradeOf(h);
  const fixed = h.fixed.slice(0, V2_LENGTH);
  view(fixed).setUint32(4, 2);
  h.fixed = fixed;
  // Version 2 has no feature table (qcow2_update_header writes it for version 3 only).
  h.extensions = h.extensions.filter((e) => e.type !== EXT_FEATURE_TABLE && e.type !== EXT_BITMAPS);
}

/** Version 2 → 3: no features, 16-bit refcounts, zlib, and the feature table a new v3 image has. */
function upgrade(h: RawHeader): void {
  const fixed = new Uint8Array(V3_LENGTH);
  fixed.set(h.fixed.subarray(0, V2_LENGTH));
  const f = view(fixed);
  f.setUint32(4, 3);
  f.setUint32(96, 4);
  f.setUint32(100, V3_LENGTH);
  h.fixed = fixed;
  h.extensions = [...h.extensions, ...featureTableOf(h.clusterSize)];
}

/** The feature table extension create-header.ts writes for a v3 image of this cluster size. */
function featureTableOf(clusterSize: number): Extension[] {
  const fresh = encodeHeader(
    {
      version: 3,
      clusterBits: Math.log2(clusterSize),
      size: 0,
      l1Size: 0,
      l1Offset: 0,
      reftableOffset: 0,
      reftableClusters: 0,
      refcountOrder: 4,
      incompatible: 0n,
      compatible: 0n,
      autoclear: 0n,
      compressionType: 0,
    },
    clusterSize,
  );
  const v = view(fresh);
  const found: Extension[] = [];
  for (let pos = V3_LENGTH; v.getUint32(pos) !== EXT_END;) {
    const len = v.getUint32(pos + 4);
    if (v.getUint32(pos) === EXT_FEATURE_TABLE)
      found.push({ type: EXT_FEATURE_TABLE, data: fresh.slice(pos + 8, pos + 8 + len) });
    pos += 8 + Math.ceil(len / 8) * 8;
  }
  return found;
}
