/**
 * The randomized write workload shared by workload.test.ts and crash.test.ts: a seeded op
 * generator (writes, zero writes with and without unmap, discards, flushes, grows of mixed sizes
 * and alignments), images made by `qemu-img create`, and a raw shadow that knows what every op
 * must do to the guest view, as QEMU 7.2 does it (discard with discard=unmap zeroes the clusters
 * it covers whole on a v3 image and leaves partial clusters alone; a grow reads as zeros).
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BlockNode } from '../../../../src/block/node.ts';

/** A seeded PRNG (mulberry32) with the helpers the generator needs. */
export class Rng {
  private a: number;

  constructor(seed: number) {
    this.a = seed >>> 0;
  }

  next(): number {
    this.a = (this.a + 0x6d2b79f5) >>> 0;
    let t = this.a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  /** `len` pseudo-random bytes. */
  bytes(len: number): Uint8Array {
    const out = new Uint8Array(len);
    for (let i = 0; i < len; i += 4) {
      const word = this.next() * 4294967296;
      for (let k = 0; k < 4 && i + k < len; k++) out[i + k] = (word >>> (8 * k)) & 0xff;
    }
    return out;
  }
}

/** An image to create with qemu-img: its options, and whether it has a raw backing file. */
export interface ImageSpec {
  readonly name: string;
  readonly size: number;
  readonly clusterSize: number;
  readonly refcountBits: number;
  readonly extendedL2?: boolean;
  readonly lazyRefcounts?: boolean;
  readonly backing?: boolean;
}

export type Op =
  | { kind: 'write'; offset: number; data: Uint8Array }
  | { kind: 'zero'; offset: number; bytes: number; unmap: boolean }
  | { kind: 'discard'; offset: number; bytes: number }
  | { kind: 'flush' }
  | { kind: 'grow'; size: number };

/**
 * Creates `spec` in `dir` as `<name>.qcow2` (and `<name>.base.raw`, random content of the same
 * size, as its backing file). Returns the paths and the guest view right after creation.
 */
export function createImage(
  dir: string,
  spec: ImageSpec,
  rng: Rng,
): { path: string; base?: string; view: Uint8Array } {
  const path = join(dir, `${spec.name}.qcow2`);
  const opts = [
    `cluster_size=${spec.clusterSize}`,
    `refcount_bits=${spec.refcountBits}`,
    `extended_l2=${spec.extendedL2 ? 'on' : 'off'}`,
    `lazy_refcounts=${spec.lazyRefcounts ? 'on' : 'off'}`,
  ];
  const args = ['create', '-q', '-f', 'qcow2', '-o', opts.join(',')];
  let view: Uint8Array = new Uint8Array(spec.size);
  let base: string | undefined;
  if (spec.backing) {
    base = join(dir, `${spec.name}.base.raw`);
    view = rng.bytes(spec.size);
    writeFileSync(base, view);
    args.push('-b', base, '-F', 'raw');
  }
  qemuImg([...args, path, String(spec.size)]);
  return { path, base, view };
}

/** Runs qemu-img; throws with its stderr unless it exits with one of `ok`. */
export function qemuImg(args: string[], ok: readonly number[] = [0]): { status: number; stdout: string } {
  const r = spawnSync('qemu-img', args, { encoding: 'utf8' });
  if (!ok.includes(r.status ?? -1)) {
    throw new Error(`qemu-img ${args.join(' ')} exited ${r.status}: ${r.stderr}${r.stdout}`);
  }
  return { status: r.status ?? -1, stdout: r.stdout };
}

/** Op mix: relative weights. */
const WEIGHTS: readonly [Op['kind'], number][] = [
  ['write', 60],
  ['zero', 12],
  ['discard', 10],
  ['flush', 8],
  ['grow', 1],
];
const TOTAL_WEIGHT = WEIGHTS.reduce((s, [, w]) => s + w, 0);

/**
 * One random op on a guest of `size` bytes with clusters of `cluster` bytes: offsets aligned to
 * clusters, sectors or nothing, lengths from a byte to a few clusters; grows add up to 2 clusters
 * in sectors, never past `maxSize`.
 */
export function randomOp(rng: Rng, size: number, cluster: number, maxSize: number): Op {
  let pick = rng.int(TOTAL_WEIGHT);
  let kind: Op['kind'] = 'write';
  for (const [k, w] of WEIGHTS) {
    if (pick < w) {
      kind = k;
      break;
    }
    pick -= w;
  }
  if (kind === 'flush') return { kind };
  if (kind === 'grow') {
    const grown = size + 512 * (1 + rng.int((2 * cluster) / 512));
    return grown <= maxSize ? { kind, size: grown } : { kind: 'flush' };
  }
  const [offset, bytes] = randomRange(rng, size, cluster);
  if (kind === 'write') return { kind, offset, data: rng.bytes(bytes) };
  if (kind === 'zero') return { kind, offset, bytes, unmap: rng.chance(0.5) };
  return { kind, offset, bytes };
}

function randomRange(rng: Rng, size: number, cluster: number): [number, number] {
  const align = [cluster, 512, 1][rng.int(3)] as number;
  const maxLen = Math.min(size, 4 * Math.max(cluster, 4096));
  const lenAlign = [cluster, 512, 1][rng.int(3)] as number;
  let bytes = Math.max(1, Math.floor((1 + rng.int(maxLen)) / lenAlign) * lenAlign);
  if (rng.chance(0.3)) bytes = Math.min(bytes, 1 + rng.int(600));
  bytes = Math.min(bytes, size);
  const offset = Math.floor(rng.int(size - bytes + 1) / align) * align;
  return [offset, bytes];
}

/** The guest range a write, zero write or discard addresses; undefined for flushes and grows. */
export function opRange(op: Op): [number, number] | undefined {
  if (op.kind === 'write') return [op.offset, op.data.length];
  if (op.kind === 'zero' || op.kind === 'discard') return [op.offset, op.bytes];
  return undefined;
}

/** `work()`, failing with `where` if it has not settled after `ms` (a hung request). */
export async function within<T>(ms: number, where: string, work: () => Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const hung = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${where}: not done after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([work(), hung]);
  } finally {
    clearTimeout(timer);
  }
}

/** Issues `op` on the qcow2 node. */
export async function apply(node: BlockNode, op: Op): Promise<void> {
  switch (op.kind) {
    case 'write':
      return node.write(op.offset, op.data);
    case 'zero':
      return node.writeZeroes(op.offset, op.bytes, { unmap: op.unmap });
    case 'discard':
      return node.discard(op.offset, op.bytes);
    case 'flush':
      return node.flush();
    case 'grow':
      return node.truncate(op.size);
  }
}

/**
 * The guest bytes `op` changes, as [offset, new content] (empty for flushes): what QEMU 7.2's
 * qcow2 makes of it. `size` is the guest size before the op.
 */
export function effect(op: Op, size: number, cluster: number): [number, Uint8Array][] {
  switch (op.kind) {
    case 'write':
      return [[op.offset, op.data]];
    case 'zero':
      return [[op.offset, new Uint8Array(op.bytes)]];
    case 'discard': {
      // Whole clusters only; the last one may end at the (unaligned) end of the image.
      const first = Math.ceil(op.offset / cluster) * cluster;
      const end = Math.min(op.offset + op.bytes, size);
      const last = end === size ? end : Math.floor(end / cluster) * cluster;
      return last > first ? [[first, new Uint8Array(last - first)]] : [];
    }
    case 'grow':
      return [[size, new Uint8Array(op.size - size)]];
    case 'flush':
      return [];
  }
}

/** The first byte where the node's view differs from `want` over [offset, offset+len), or -1. */
export async function firstMismatch(
  node: BlockNode,
  want: Uint8Array,
  offset = 0,
  len = want.length,
): Promise<number> {
  const CHUNK = 1 << 20;
  const buf = new Uint8Array(Math.min(CHUNK, len));
  for (let at = offset; at < offset + len; at += CHUNK) {
    const n = Math.min(CHUNK, offset + len - at);
    const got = buf.subarray(0, n);
    await node.read(at, got);
    const expected = want.subarray(at, at + n);
    const i = Buffer.compare(got, expected) === 0 ? -1 : got.findIndex((b, k) => b !== expected[k]);
    if (i >= 0) return at + i;
  }
  return -1;
}

/** `qemu-img check` on `path`: exit 0 (clean) or 3 (leaks only, if `leaksAllowed`), else throws. */
export function qemuCheck(path: string, leaksAllowed = false): { leaks: number } {
  const r = qemuImg(['check', '--output=json', '-f', 'qcow2', path], leaksAllowed ? [0, 3] : [0]);
  const out = JSON.parse(r.stdout) as { leaks?: number; corruptions?: number; 'check-errors': number };
  if ((out.corruptions ?? 0) !== 0 || out['check-errors'] !== 0)
    throw new Error(`qemu-img check: ${r.stdout}`);
  return { leaks: out.leaks ?? 0 };
}

/** `qemu-img compare` of the qcow2 image with the raw shadow: must be identical. */
export function qemuCompare(path: string, raw: string): string {
  const r = spawnSync('qemu-img', ['compare', '-f', 'qcow2', '-F', 'raw', path, raw], { encoding: 'utf8' });
  return r.stdout + r.stderr;
}
