/**
 * The qcow2 reference corpus: images made by the real qemu-img/qemu-io (QEMU 7.2) in a temp
 * directory, each with what QEMU says about it (`qemu-img convert -O raw` output and `qemu-img map
 * --output=json`), built once per test file (the module keeps the promise) in about a second.
 *
 * Every image file is rewritten densely before QEMU is asked about it: the Node `file` protocol
 * has no SEEK_HOLE, so it reports holes in a qcow2 file as data where QEMU's file-posix reports
 * them as zeros (`"data": true, "zero": true` under preallocation=metadata). Dense files keep the
 * comparison about qcow2 metadata, which is what is under test.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MapExtent } from '../../../../src/cli/map.ts';
import { Prng } from './mutate.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
const TiB = MiB * MiB;

/** One entry of `qemu-img map --output=json` (QEMU 7.2 qemu-img.c, dump_map_entry). */
export type MapEntry = MapExtent;

export interface CorpusImage {
  readonly name: string;
  /** The image file, opened with driver qcow2 over a `file` node. */
  readonly path: string;
  readonly size: number;
  /** `qemu-img convert -O raw` of the image (sparse). */
  readonly raw: string;
  readonly map: readonly MapEntry[];
  /** Internal snapshots with `qemu-img convert -l snapshot.name=...` of each. */
  readonly snapshots: readonly { name: string; raw: string }[];
  /** Too large to read whole: compare data extents only. */
  readonly huge: boolean;
}

/** How to make one image: commands run in the corpus directory (so backing names are relative). */
export interface Recipe {
  readonly name: string;
  readonly size: number;
  readonly steps: readonly Step[];
  readonly snapshots?: readonly string[];
}

/** A command line; `mayDie` for qemu-io runs that kill themselves (sigraise 9). */
type Step = { readonly argv: readonly string[]; readonly mayDie?: boolean };

const create = (file: string, size: number, opts = '', backing?: [string, string]): Step => ({
  argv: [
    'qemu-img',
    'create',
    '-q',
    '-f',
    'qcow2',
    ...(opts ? ['-o', opts] : []),
    ...(backing ? ['-b', backing[0], '-F', backing[1]] : []),
    file,
    String(size),
  ],
});
const io = (file: string, ...cmds: string[]): Step => ({
  argv: ['qemu-io', '-f', 'qcow2', ...cmds.flatMap((c) => ['-c', c]), file],
});
const compress = (src: string, file: string, opts: string): Step => ({
  argv: ['qemu-img', 'convert', '-c', '-f', 'raw', '-O', 'qcow2', ...(opts ? ['-o', opts] : []), src, file],
});

/**
 * Writes at scattered offsets of a `size`-byte image: unaligned, crossing clusters, at the very
 * end; then zero writes and discards over part of what was written and over unwritten ranges.
 */
function scatter(size: number): string[] {
  const third = Math.floor(size / 3 / 512) * 512;
  return [
    'write -P 0x11 1000 3000',
    `write -P 0x22 ${third + 512} 100k`,
    `write -P 0x33 ${size - 70000} 70000`,
    `write -P 0x44 ${size / 2 + 7} 4097`,
    `write -z ${third + 16 * KiB} 8k`,
    `discard ${third + 64 * KiB} 32k`,
    `write -z ${size / 4} 64k`,
  ];
}

/**
 * Overwrites part of a compressed image: inside compressed clusters (COW), zero, discard, and one
 * more compressed cluster (qemu-io `write -c` takes exactly one aligned, unallocated cluster).
 */
const overwrite = (cluster: number): string[] => [
  'write -P 0x5a 70000 5000',
  'write -z 1M 64k',
  'discard 2M 128k',
  `discard ${4 * MiB - cluster} ${cluster}`,
  `write -c -P 0x6b ${4 * MiB - cluster} ${cluster}`,
];

/** The raw source of the compressed images (written by `writeSources`). */
const MIXED = 'mixed.raw';
const CHAIN_BASE = 'chain-base.raw';

const plain = (name: string, size: number, opts: string, cmds = scatter(size)): Recipe => ({
  name,
  size,
  steps: [create(`${name}.qcow2`, size, opts), io(`${name}.qcow2`, ...cmds)],
});

/** A compressed copy of MIXED; `cluster` given: then partly overwritten. */
const compressed = (name: string, opts: string, cluster?: number): Recipe => ({
  name,
  size: 4 * MiB,
  steps: [
    compress(MIXED, `${name}.qcow2`, opts),
    ...(cluster ? [io(`${name}.qcow2`, ...overwrite(cluster))] : []),
  ],
});

export const RECIPES: readonly Recipe[] = [
  plain('cluster-512', 4 * MiB, 'cluster_size=512'),
  plain('cluster-4k', 8 * MiB, 'cluster_size=4k'),
  plain('cluster-64k', 16 * MiB, ''),
  plain('cluster-2M', 16 * MiB, 'cluster_size=2M'),
  plain('v2-512', 4 * MiB, 'compat=0.10,cluster_size=512'),
  plain('v2-64k', 16 * MiB, 'compat=0.10'),
  ...[1, 2, 4, 8, 16, 32, 64].map((bits) =>
    plain(`refcount-${bits}`, 8 * MiB, `cluster_size=4k,refcount_bits=${bits}`),
  ),
  compressed('zlib-4k', 'cluster_size=4k'),
  compressed('zlib-64k', ''),
  compressed('zlib-64k-overwritten', '', 64 * KiB),
  compressed('zstd-64k', 'compression_type=zstd'),
  compressed('zstd-64k-overwritten', 'compression_type=zstd', 64 * KiB),
  compressed('zstd-2M-overwritten', 'compression_type=zstd,cluster_size=2M', 2 * MiB),
  compressed('zlib-v2-512', 'compat=0.10,cluster_size=512'),
  plain('extended-l2', 4 * MiB, 'extended_l2=on', [
    'write -P 0x21 0 64k',
    'write -z 4k 2k',
    'write -z 1050624 6k',
    'write -P 0x22 2103296 2k',
    'write -P 0x23 2128000 3000',
    'discard 2103296 2k',
    'write -z 3M 64k',
    'write -c -P 0x24 3200k 64k',
  ]),
  {
    name: 'extended-l2-over-backing',
    size: 4 * MiB,
    steps: [
      create('ext-l2-base.qcow2', 4 * MiB),
      io('ext-l2-base.qcow2', 'write -P 0x99 0 4M'),
      create('extended-l2-over-backing.qcow2', 4 * MiB, 'extended_l2=on,cluster_size=32k', [
        'ext-l2-base.qcow2',
        'qcow2',
      ]),
      io(
        'extended-l2-over-backing.qcow2',
        'write -P 0x31 1024 1000',
        'write -z 5k 2k',
        'write -P 0x32 1M 3k',
        'write -z 2M 1k',
        'discard 2M 32k',
      ),
    ],
  },
  // raw <- qcow2 (larger, 64k clusters) <- qcow2 (larger still, 4k clusters).
  {
    name: 'chain-mid',
    size: 6 * MiB,
    steps: [
      create('chain-mid.qcow2', 6 * MiB, '', [CHAIN_BASE, 'raw']),
      io(
        'chain-mid.qcow2',
        'write -P 0xb1 512k 128k',
        'discard 3M 128k',
        'write -z 256k 64k',
        'write -z -u 3200k 64k',
        'write -P 0xb2 4M 100k',
        'write -z 5M 64k',
      ),
    ],
  },
  {
    name: 'chain-top',
    size: 8 * MiB,
    steps: [
      create('chain-top.qcow2', 8 * MiB, 'cluster_size=4k', ['chain-mid.qcow2', 'qcow2']),
      io('chain-top.qcow2', 'write -P 0xc1 0 64k', 'write -P 0xc2 7M 64k', 'write -P 0xc3 5243880 10000'),
    ],
  },
  {
    name: 'v2-over-backing',
    size: 4 * MiB,
    steps: [
      create('v2-over-backing.qcow2', 4 * MiB, 'compat=0.10', [CHAIN_BASE, 'raw']),
      io('v2-over-backing.qcow2', 'write -P 0xd1 100k 50k', 'write -z 1M 128k', 'discard 2M 64k'),
    ],
  },
  {
    name: 'snapshots',
    size: 4 * MiB,
    snapshots: ['s1', 's2'],
    steps: [
      create('snapshots.qcow2', 4 * MiB),
      io('snapshots.qcow2', 'write -P 0x61 0 1M', 'write -P 0x62 3M 64k'),
      { argv: ['qemu-img', 'snapshot', '-c', 's1', 'snapshots.qcow2'] },
      io('snapshots.qcow2', 'write -P 0x63 512k 1M', 'write -z 3M 32k'),
      { argv: ['qemu-img', 'snapshot', '-c', 's2', 'snapshots.qcow2'] },
      io('snapshots.qcow2', 'discard 0 256k', 'write -P 0x64 2M 100k'),
    ],
  },
  ...(['on', 'off'] as const).map((raw) => ({
    name: `data-file-raw-${raw}`,
    size: 4 * MiB,
    steps: [
      create(
        `data-file-raw-${raw}.qcow2`,
        4 * MiB,
        `data_file=data-file-raw-${raw}.data,data_file_raw=${raw}`,
      ),
      io(
        `data-file-raw-${raw}.qcow2`,
        'write -P 7 64k 100k',
        'write -z 1M 64k',
        'write -P 8 2M 4k',
        'discard 2M 64k',
        'write -P 9 3146240 1000',
      ),
    ],
  })),
  {
    name: 'lazy-refcounts-dirty',
    size: 4 * MiB,
    steps: [
      create('lazy-refcounts-dirty.qcow2', 4 * MiB, 'lazy_refcounts=on'),
      {
        argv: io('lazy-refcounts-dirty.qcow2', 'write -P 0x55 0 128k', 'write -P 0x56 2M 4k', 'sigraise 9')
          .argv,
        mayDie: true,
      },
    ],
  },
  plain('preallocation-metadata', 4 * MiB, 'preallocation=metadata', [
    'write -P 0x71 1M 64k',
    'write -z 2M 64k',
  ]),
  plain('huge-4T', 4 * TiB, '', [
    'write -P 0x81 0 64k',
    `write -P 0x82 ${TiB} 100k`,
    `write -P 0x83 ${2 * TiB + 12345} 1000`,
    `write -P 0x84 ${4 * TiB - 64 * KiB} 64k`,
  ]),
];

/** The raw inputs: a mixed (zero / pattern / text / random) source, a dense chain base. */
function writeSources(dir: string): void {
  const rng = new Prng(0x9c0);
  const mixed = new Uint8Array(4 * MiB);
  for (let at = 0; at < mixed.length; at += 64 * KiB) {
    const seg = mixed.subarray(at, at + 64 * KiB);
    const kind = rng.below(4);
    if (kind === 1) seg.fill(rng.below(256));
    if (kind === 2) seg.set(new TextEncoder().encode(`block ${at} `.repeat(8192)).subarray(0, seg.length));
    if (kind === 3) for (let i = 0; i < seg.length; i++) seg[i] = rng.next() & 0xff;
  }
  writeFileSync(join(dir, MIXED), mixed);
  const base = new Uint8Array(4 * MiB);
  for (let i = 0; i < base.length; i += 512) base.fill(0xa0 + ((i >> 20) & 0xf), i, i + 512);
  writeFileSync(join(dir, CHAIN_BASE), base);
}

function run(dir: string, step: Step): void {
  const [cmd, ...args] = step.argv;
  const r = spawnSync(cmd!, args, { cwd: dir, encoding: 'utf8' });
  if (r.status !== 0 && !(step.mayDie && r.signal === 'SIGKILL')) {
    throw new Error(`${step.argv.join(' ')} failed (${r.status ?? r.signal}): ${r.stdout}${r.stderr}`);
  }
}

/** Rewrites every image file without holes (see the module comment). */
function densify(dir: string): void {
  for (const f of readdirSync(dir)) {
    const path = join(dir, f);
    writeFileSync(path, readFileSync(path));
  }
}

/**
 * `qemu-img map --output=json`, run in the image's directory: QEMU 7.2 opens an external data
 * file named in the header relative to its working directory, not to the image.
 */
export function qemuMap(dir: string, image: string): MapEntry[] {
  const out = execFileSync('qemu-img', ['map', '-f', 'qcow2', '--output=json', image], {
    cwd: dir,
    encoding: 'utf8',
  });
  return JSON.parse(out);
}

function toRaw(dir: string, image: string, out: string, snapshot?: string): string {
  const snap = snapshot ? ['-l', `snapshot.name=${snapshot}`] : [];
  execFileSync('qemu-img', ['convert', '-f', 'qcow2', '-O', 'raw', ...snap, image, out], { cwd: dir });
  return join(dir, out);
}

/**
 * Builds `recipes` in `dir` and asks QEMU about each image. Images are made in order, so a
 * recipe may build on the files of an earlier one (chain-top on chain-mid).
 */
export function buildImages(dir: string, recipes: readonly Recipe[]): CorpusImage[] {
  writeSources(dir);
  for (const r of recipes) for (const step of r.steps) run(dir, step);
  densify(dir);
  return recipes.map((r) => ({
    name: r.name,
    path: join(dir, `${r.name}.qcow2`),
    size: r.size,
    raw: toRaw(dir, `${r.name}.qcow2`, `${r.name}.out.raw`),
    map: qemuMap(dir, `${r.name}.qcow2`),
    snapshots: (r.snapshots ?? []).map((s) => ({
      name: s,
      raw: toRaw(dir, `${r.name}.qcow2`, `${r.name}.${s}.raw`, s),
    })),
    huge: r.size > 64 * MiB,
  }));
}

let cached: { dir: string; images: CorpusImage[] } | undefined;

/** The whole corpus, built on first use in this test file's process; `cleanupCorpus` removes it. */
export function corpus(): readonly CorpusImage[] {
  if (!cached) {
    const dir = mkdtempSync(join(tmpdir(), 'blockgraph-qcow2-corpus-'));
    cached = { dir, images: buildImages(dir, RECIPES) };
  }
  return cached.images;
}

export function cleanupCorpus(): void {
  if (cached) rmSync(cached.dir, { recursive: true, force: true });
  cached = undefined;
}
