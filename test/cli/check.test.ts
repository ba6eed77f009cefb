/**
 * `blockgraph check` against `qemu-img check` (QEMU 7.2) on the same files: images broken on
 * purpose (broken.ts) checked, repaired with `-r leaks` and `-r all`, and checked again, with
 * the same stdout, stderr lines and exit code as qemu-img's; a repair by us leaves an image
 * qemu-img then finds exactly as after its own repair, with the guest content unchanged (where
 * QEMU can read it at all). Plus
 * the argument errors and a format without checks.
 */
import { copyFileSync, truncateSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { percent, run as check } from '../../src/cli/check.ts';
import {
  COPIED,
  getU64,
  hostCluster,
  l2EntryAt,
  refcountTableOffset,
  setRefcount,
  setU64,
} from '../drivers/format/qcow2/broken.ts';
import { normalized, runOurs, runTool, tempDir } from './helpers.ts';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

function must(cmd: string, args: string[]): void {
  const r = runTool(cmd, args, tmp.dir);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
}

/**
 * A 4 MiB image with 64 KiB clusters: header, refcount table, refcount block, L1, L2 in clusters
 * 0-4, guest data in 5-7 (clusters 0-1 of the guest in 5-6, guest 1 MiB in 7).
 */
function base(name: string, snapshot = false): string {
  must('qemu-img', ['create', '-q', '-f', 'qcow2', name, '4M']);
  must('qemu-io', ['-f', 'qcow2', '-c', 'write -P 1 0 128k', '-c', 'write -P 2 1M 64k', name]);
  if (snapshot) must('qemu-img', ['snapshot', '-c', 's1', name]);
  return tmp.path(name);
}

const CLUSTER = 65536;

/** How each broken image is made; `fixable`: qemu-img check -r all leaves it without errors. */
const BROKEN: Record<string, { make: (name: string) => void; fixable: boolean }> = {
  // A cluster past the used ones that only the refcounts claim.
  leak: {
    make: (name) => {
      const path = base(name);
      truncateSync(path, 9 * CLUSTER);
      setRefcount(path, 8, 1);
    },
    fixable: true,
  },
  // A data cluster's refcount raised: leaked, and its COPIED flag is then wrong too.
  'refcount-raised': {
    make: (name) => {
      const path = base(name);
      setRefcount(path, hostCluster(path, 0), 2);
    },
    fixable: true,
  },
  // A cluster shared with a snapshot counted once: a corruption, fixed by raising it.
  'refcount-lowered': {
    make: (name) => {
      const path = base(name, true);
      setRefcount(path, hostCluster(path, 0), 1);
    },
    fixable: true,
  },
  // A refcount of 0 for a used cluster: only rebuilding the refcount structure fixes it.
  'refcount-zero': {
    make: (name) => {
      const path = base(name);
      setRefcount(path, hostCluster(path, 1024 * 1024), 0);
    },
    fixable: true,
  },
  'copied-cleared': {
    make: (name) => {
      const path = base(name);
      const at = l2EntryAt(path, 0);
      setU64(path, at, getU64(path, at) & ~COPIED);
    },
    fixable: true,
  },
  // A guest cluster mapped onto the refcount table (its own cluster leaks).
  'l2-into-metadata': {
    make: (name) => {
      const path = base(name);
      setU64(path, l2EntryAt(path, 0), COPIED | BigInt(refcountTableOffset(path)));
    },
    fixable: true,
  },
  // Mapped into the header, unaligned: QEMU cannot fix that one.
  'l2-into-header': {
    make: (name) => {
      const path = base(name);
      setU64(path, l2EntryAt(path, 64 * 1024), COPIED | 0x200n);
    },
    fixable: false,
  },
};

beforeAll(() => {
  for (const [name, { make }] of Object.entries(BROKEN)) make(`${name}.qcow2`);
});

/** A fresh copy of broken image `name` for one run, by its file name in tmp.dir. */
function copy(name: string, tag: string): string {
  const file = `${name}.${tag}.qcow2`;
  copyFileSync(tmp.path(`${name}.qcow2`), tmp.path(file));
  return file;
}

async function bothCheck(name: string, args: string[], tag: string) {
  const ours = copy(name, `${tag}-ours`);
  const theirs = copy(name, `${tag}-qemu`);
  const o = normalized(await runOurs(check, [...args, ours], tmp.dir));
  const q = normalized(runTool('qemu-img', ['check', ...args, theirs], tmp.dir));
  const unname = (s: string) => s.replaceAll(ours, 'IMG').replaceAll(theirs, 'IMG');
  return {
    ours: { ...o, stdout: unname(o.stdout), stderr: unname(o.stderr) },
    qemu: { ...q, stdout: unname(q.stdout), stderr: unname(q.stderr) },
    oursFile: ours,
    qemuFile: theirs,
  };
}

const cases = Object.keys(BROKEN).flatMap((name) =>
  [[], ['-r', 'leaks'], ['-r', 'all'], ['--output=json'], ['--output=json', '-r', 'all']].map(
    (args) => [name, args.join(' ') || '(no repair)', args] as const,
  ),
);

describe('check of broken images equals qemu-img check', () => {
  it.each(cases)('%s %s', async (name, tag, args) => {
    const r = await bothCheck(name, args, tag.replace(/\W+/g, '_'));
    expect(r.ours).toEqual(r.qemu);
    if (args.length === 0) expect(r.ours.status).not.toBe(0);
    if (!args.includes('-r')) return;
    // After the repairs, QEMU sees the two images alike and the guest content unchanged.
    const after = (file: string) => normalized(runTool('qemu-img', ['check', file], tmp.dir));
    const oursAfter = after(r.oursFile);
    expect(oursAfter).toEqual(after(r.qemuFile));
    if (!BROKEN[name]!.fixable) return; // QEMU cannot even read it (an unaligned data cluster)
    if (args.includes('all')) expect(oursAfter.status).toBe(0);
    const same = runTool(
      'qemu-img',
      ['compare', '-f', 'qcow2', '-F', 'qcow2', `${name}.qcow2`, r.oursFile],
      tmp.dir,
    );
    expect(same.stdout).toBe('Images are identical.\n');
  });
});

describe('check: arguments and formats as qemu-img', () => {
  beforeAll(() => {
    base('good.qcow2');
    must('qemu-img', ['create', '-q', '-f', 'raw', 'disk.raw', '1M']);
  });

  it.each([
    [['good.qcow2']],
    [['-q', 'good.qcow2']],
    [['--output=json', 'good.qcow2']],
    [['-r', 'all', 'good.qcow2']],
    [['disk.raw']],
    [['-f', 'raw', '--output=json', 'disk.raw']],
    [['-r', 'foo', 'good.qcow2']],
    [['--output=xml', 'good.qcow2']],
    [['-U', '-r', 'all', 'good.qcow2']],
    [[]],
    [['good.qcow2', 'disk.raw']],
    [['missing.qcow2']],
  ])('%j', async (args) => {
    const ours = normalized(await runOurs(check, args, tmp.dir));
    const qemu = normalized(runTool('qemu-img', ['check', ...args], tmp.dir));
    expect(ours).toEqual(qemu);
  });
});

describe('percent: printf("%0.2f")', () => {
  it('rounds exact ties to even and everything else to nearest', () => {
    expect([0.125, 0.375, 4.6875, 100 / 3, 2.5].map(percent)).toEqual([
      '0.12',
      '0.38',
      '4.69',
      '33.33',
      '2.50',
    ]);
  });
});

describe('check -r all of dirty lazy-refcounts images (refcount rebuild) equals qemu-img', () => {
  const OPTIONS = [
    'refcount_bits=1,cluster_size=4k',
    'refcount_bits=2,cluster_size=512',
    'refcount_bits=4,cluster_size=2M',
    'refcount_bits=8,extended_l2=on',
    'refcount_bits=32',
    'refcount_bits=64',
  ];
  it.each(OPTIONS)('%s', async (options) => {
    const name = `lazy-${options.replace(/\W+/g, '_')}`;
    must('qemu-img', [
      'create',
      '-q',
      '-f',
      'qcow2',
      '-o',
      `lazy_refcounts=on,${options}`,
      `${name}.qcow2`,
      '64M',
    ]);
    // qemu-io killed before it updates the refcounts: the image stays dirty.
    const io = ['write -P 1 0 300k', 'write -P 2 40M 64k', 'write -z 10M 64k', 'sigraise 9'];
    runTool('qemu-io', ['-f', 'qcow2', ...io.flatMap((c) => ['-c', c]), `${name}.qcow2`], tmp.dir);
    const r = await bothCheck(name, ['-r', 'all'], 'all');
    expect(r.ours).toEqual(r.qemu);
    expect(runTool('qemu-img', ['check', r.oursFile], tmp.dir).status).toBe(0);
    const same = runTool('qemu-img', ['compare', r.oursFile, r.qemuFile], tmp.dir);
    expect(same.stdout).toBe('Images are identical.\n');
  });
});
