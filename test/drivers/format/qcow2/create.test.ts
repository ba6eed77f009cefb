/**
 * qcow2 creation against qemu-img 7.2: for each option set, the image our creator writes must be
 * byte-identical to `qemu-img create`'s (header, extensions, refcount structures, L1/L2 — also
 * where QEMU's allocator moves the refcount table or leaves stale bytes) and pass `qemu-img check`.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { qcow2Creator } from '../../../../src/drivers/format/qcow2/create.ts';
import { BlockGraph } from '../../../../src/graph/graph.ts';
import { tempDir } from '../../../cli/helpers.ts';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

/** Creates `path` with our creator; `dataFile`: also an external data file at that path. */
async function ours(path: string, options: Record<string, unknown>, dataFile?: string): Promise<void> {
  writeFileSync(path, '');
  const graph = new BlockGraph();
  const file = await graph.open({ driver: 'file', filename: path });
  const children = new Map();
  if (dataFile) {
    writeFileSync(dataFile, '');
    children.set('data-file', await graph.open({ driver: 'file', filename: dataFile }));
  }
  try {
    await qcow2Creator.create(file, { file: 'x', ...options }, { children });
  } finally {
    await graph.release(file);
    for (const node of children.values()) await graph.release(node);
  }
}

function qemuImg(...args: string[]): { status: number | null; out: string } {
  const r = spawnSync('qemu-img', args, { cwd: tmp.dir, encoding: 'utf8' });
  return { status: r.status, out: r.stdout + r.stderr };
}

// [qemu-img -o options, size, our QAPI options]
const CASES: [string, string, Record<string, unknown>][] = [
  ['', '1G', { size: 1 << 30 }],
  ['', '0', { size: 0 }],
  ['compat=0.10,cluster_size=4k', '100M', { size: 100 << 20, version: 'v2', 'cluster-size': 4096 }],
  [
    'lazy_refcounts=on,refcount_bits=8,extended_l2=on,compression_type=zstd',
    '100M',
    {
      size: 100 << 20,
      'lazy-refcounts': true,
      'refcount-bits': 8,
      'extended-l2': true,
      'compression-type': 'zstd',
    },
  ],
  ['preallocation=metadata', '10M', { size: 10 << 20, preallocation: 'metadata' }],
  ['preallocation=metadata', '1536', { size: 1536, preallocation: 'metadata' }],
  ['preallocation=full', '10M', { size: 10 << 20, preallocation: 'full' }],
  [
    'preallocation=falloc,extended_l2=on',
    '5M',
    { size: 5 << 20, preallocation: 'falloc', 'extended-l2': true },
  ],
  // Refcount blocks beyond the first, allocated mid-way (with QEMU's -EAGAIN restarts).
  ['cluster_size=512,refcount_bits=64', '1G', { size: 1 << 30, 'cluster-size': 512, 'refcount-bits': 64 }],
  // The refcount table outgrows its cluster and moves; the old one is freed and left stale.
  ['cluster_size=512,refcount_bits=64', '16G', { size: 2 ** 34, 'cluster-size': 512, 'refcount-bits': 64 }],
  [
    'cluster_size=512,refcount_bits=1,preallocation=metadata',
    '8M',
    { size: 8 << 20, 'cluster-size': 512, 'refcount-bits': 1, preallocation: 'metadata' },
  ],
  [
    'cluster_size=1024,refcount_bits=2,preallocation=full',
    '32M',
    { size: 32 << 20, 'cluster-size': 1024, 'refcount-bits': 2, preallocation: 'full' },
  ],
  // Data clusters need further refcount blocks, placed between them.
  [
    'cluster_size=4k,preallocation=metadata',
    '24M',
    { size: 24 << 20, 'cluster-size': 4096, preallocation: 'metadata' },
  ],
  [
    'backing_file=base.qcow2,backing_fmt=qcow2',
    '1M',
    { size: 1 << 20, 'backing-file': 'base.qcow2', 'backing-fmt': 'qcow2' },
  ],
  [
    'compat=0.10,backing_file=base.qcow2,backing_fmt=qcow2',
    '1M',
    { size: 1 << 20, version: 'v2', 'backing-file': 'base.qcow2', 'backing-fmt': 'qcow2' },
  ],
];

describe('qcow2 creation', () => {
  qemuImg('create', '-q', '-f', 'qcow2', 'base.qcow2', '1M');

  it.each(CASES)('-o %s, size %s: byte-identical to qemu-img, clean check', async (opts, size, options) => {
    const ref = tmp.path('ref.qcow2');
    const mine = tmp.path('ours.qcow2');
    const args = ['create', '-q', '-f', 'qcow2', '-u', ...(opts ? ['-o', opts] : []), ref, size];
    expect(qemuImg(...args).status).toBe(0);
    await ours(mine, options);
    expect(spawnSync('cmp', [mine, ref]).status).toBe(0);
    expect(qemuImg('check', mine)).toEqual({
      status: 0,
      out: expect.stringContaining('No errors were found'),
    });
  });

  it('an external raw data file: 1:1 metadata, the data file sized, both identical', async () => {
    expect(
      qemuImg('create', '-q', '-f', 'qcow2', '-o', 'data_file=ref.raw,data_file_raw=on', 'ref.qcow2', '10M')
        .status,
    ).toBe(0);
    await ours(tmp.path('ours.qcow2'), { size: 10 << 20, 'data-file-raw': true }, tmp.path('ref.raw'));
    // The data file's name is recorded as given to the node; rename ours into place to compare.
    expect(qemuImg('check', tmp.path('ours.qcow2')).status).toBe(0);
    const header = readFileSync(tmp.path('ours.qcow2')).subarray(0, 65536);
    expect(header.includes(Buffer.from(tmp.path('ref.raw')))).toBe(true);
    expect(readFileSync(tmp.path('ref.raw')).length).toBe(10 << 20);
  });

  // [options, QEMU 7.2's text]
  const REFUSED: [Record<string, unknown>, string][] = [
    [{ size: 1000 }, 'Image size must be a multiple of 512 bytes'],
    [{ size: 0, 'cluster-size': 1000 }, 'Cluster size must be a power of two between 512 and 2048k'],
    [
      { size: 0, version: 'v2', 'extended-l2': true, 'cluster-size': 1000 },
      'Extended L2 entries are only supported with compatibility level 1.1 and above (use version=v3 or greater)',
    ],
    [
      { size: 0, 'extended-l2': true, 'cluster-size': 8192 },
      'Extended L2 entries are only supported with cluster sizes of at least 16384 bytes',
    ],
    [
      { size: 0, 'backing-file': 'b', preallocation: 'metadata' },
      'Backing file and preallocation can only be used at the same time if extended_l2 is on',
    ],
    [{ size: 0, 'backing-fmt': 'qcow2' }, 'Backing format cannot be used without backing file'],
    [
      { size: 0, version: 'v2', 'lazy-refcounts': true, 'refcount-bits': 3 },
      'Lazy refcounts only supported with compatibility level 1.1 and above (use version=v3 or greater)',
    ],
    [{ size: 0, 'refcount-bits': 3 }, 'Refcount width must be a power of two and may not exceed 64 bits'],
    [
      { size: 0, version: 'v2', 'refcount-bits': 8 },
      'Different refcount widths than 16 bits require compatibility level 1.1 or above (use version=v3 or greater)',
    ],
    [{ size: 0, 'data-file-raw': true }, 'data-file-raw requires data-file'],
    [
      { size: 0, version: 'v2', 'compression-type': 'zstd' },
      'Non-zlib compression type is only supported with compatibility level 1.1 and above (use version=v3 or greater)',
    ],
    [
      { size: 2 ** 52, 'cluster-size': 4096 },
      "The image size is too large for file format 'qcow2' (try using a larger cluster size)",
    ],
  ];

  it.each(REFUSED)('refuses %j with QEMU’s text', async (options, text) => {
    await expect(ours(tmp.path('bad.qcow2'), options)).rejects.toThrow(text);
  });
});
